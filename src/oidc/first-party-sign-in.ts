import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';

import type { AccountService, AccountView } from '../accounts/account.service.js';
import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';

/**
 * Sign-in for our own pages (/account, /admin) as relying parties of this very server.
 *
 * The browser goes through an ordinary authorization request for a built-in first-party client
 * (RFC 7636 PKCE, `state` in a signed cookie), so the login page, second factors, the MFA policy
 * and single sign-on all apply. The callback checks state and PKCE and redeems the code in-process
 * (the page needs the session the sign-in created, not tokens); afterwards who is signed in comes
 * from the SSO session itself, so signing out anywhere signs out here too.
 */

export interface FirstPartySignInOptions {
  provider: Provider;
  config: Pick<Config, 'issuer' | 'ttl'>;
  accounts: AccountService;
  clientId: string;
  /** e.g. `/admin`: sign-in at `${base}/sign-in`, callback at `${base}/callback`. */
  basePath: string;
  /** Where a finished sign-in lands. */
  landingPath: string;
  /** Where a cancelled sign-in lands. */
  cancelledPath: string;
  /** Extra authorization request parameters (e.g. acr_values). */
  extraParams?: Record<string, string>;
}

export interface SignedIn {
  account: AccountView;
  /** The SSO session's uid (stable for the session; binds CSRF tokens). */
  sessionUid: string;
  /** RFC 8176 methods of the session's sign-in. */
  amr: string[];
}

export interface FirstPartySignIn {
  /** GET `${basePath}/sign-in`: starts the authorization request. */
  start: Middleware;
  /** GET `${basePath}/callback`. */
  callback: Middleware;
  /** The signed-in, enabled account of this browser's SSO session, if any. */
  current(ctx: Context): Promise<SignedIn | undefined>;
}

const pendingSchema = z.object({ state: z.string(), verifier: z.string() });

function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

function sameString(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function createFirstPartySignIn(options: FirstPartySignInOptions): FirstPartySignIn {
  const { provider, config, accounts, clientId, basePath } = options;
  const redirectUri = `${config.issuer}${basePath}/callback`;
  const cookieName = `${basePath.replace(/^\//, '').replace(/\W+/g, '-')}.login`;
  const cookieOptions = { httpOnly: true, sameSite: 'lax' as const, signed: true, path: basePath, overwrite: true };

  return {
    async start(ctx) {
      const state = randomBytes(16).toString('base64url');
      const verifier = randomBytes(32).toString('base64url');
      ctx.cookies.set(cookieName, JSON.stringify({ state, verifier }), { ...cookieOptions, maxAge: config.ttl.interaction * 1000 });
      const query = new URLSearchParams({
        client_id: clientId,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: redirectUri,
        code_challenge: s256(verifier),
        code_challenge_method: 'S256',
        state,
        ...options.extraParams,
      });
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(`/auth?${query.toString()}`);
    },

    async callback(ctx) {
      ctx.set('Cache-Control', 'no-store');
      const raw = ctx.cookies.get(cookieName, { signed: true });
      ctx.cookies.set(cookieName, null, cookieOptions);
      let pending: z.infer<typeof pendingSchema> | undefined;
      try {
        pending = raw ? pendingSchema.parse(JSON.parse(raw)) : undefined;
      } catch {
        pending = undefined;
      }
      const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
      const code = typeof ctx.query.code === 'string' && ctx.query.code.length <= 256 ? ctx.query.code : undefined;
      if (!pending || !sameString(state, pending.state)) {
        throw new AppError(400, 'sign_in.state', 'This sign-in link has expired or was opened in another browser. Try again.');
      }
      if (!code) {
        // access_denied and friends: the person cancelled.
        ctx.status = 303;
        ctx.redirect(options.cancelledPath);
        return;
      }
      const authorizationCode = await provider.AuthorizationCode.find(code);
      const valid =
        authorizationCode &&
        !authorizationCode.isExpired &&
        // NOTE: `consumed` is in the stored payload but missing from the type definitions.
        !(authorizationCode as unknown as { consumed?: unknown }).consumed &&
        authorizationCode.clientId === clientId &&
        authorizationCode.redirectUri === redirectUri &&
        typeof authorizationCode.codeChallenge === 'string' &&
        sameString(authorizationCode.codeChallenge, s256(pending.verifier));
      if (!authorizationCode || !valid) throw new AppError(400, 'sign_in.code', 'This sign-in could not be completed. Try again.');
      // Redeemed here, in-process: the page needs the session the sign-in created, not tokens.
      await authorizationCode.consume();
      ctx.status = 303;
      ctx.redirect(options.landingPath);
    },

    async current(ctx) {
      const session = await provider.Session.get(ctx);
      if (!session.accountId) return undefined;
      const account = await accounts.findById(session.accountId);
      if (!account || account.disabled) return undefined;
      return { account, sessionUid: session.uid, amr: Array.isArray(session.amr) ? session.amr : [] };
    },
  };
}
