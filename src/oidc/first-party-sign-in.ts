import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
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
 *
 * A page that needs a recent authentication (the admin console after its maximum age or idle
 * time, a sensitive change on the account page) sends the browser to `${basePath}/sign-in?fresh=1`:
 * the authorization request then carries `max_age=0` (OIDC Core §3.1.2.1), so the provider asks
 * for the person's factors again even with a session, and `login_hint` with the signed-in
 * account's email. `return=<path>` lands there afterwards, only if the path is one the page
 * listed (`returnPaths`): never a path from the request itself, so no open redirect.
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
  /** Local paths (query included, exact match) a sign-in may land on instead of landingPath. */
  returnPaths?: readonly string[];
}

/** What a sign-in asks of the provider, and where it lands. */
export interface SignInRequest {
  /** A new authentication even with a session (`max_age=0`), for the signed-in account (`login_hint`). */
  fresh?: boolean;
  /** Land here afterwards; one of `returnPaths`, otherwise ignored (landingPath). */
  returnTo?: string;
}

export interface SignedIn {
  account: AccountView;
  /** The SSO session's uid (stable for the session; binds CSRF tokens). */
  sessionUid: string;
  /** RFC 8176 methods of the session's sign-in. */
  amr: string[];
  /** The session's authentication context class (OIDC Core §2 `acr`), as the sign-in set it. */
  acr: string | undefined;
  /** When the person last authenticated (OIDC Core §2 `auth_time`, the session's loginTs), in epoch seconds. */
  authTime: number | undefined;
}

export interface FirstPartySignIn {
  /** GET `${basePath}/sign-in[?fresh=1][&return=<path>]`: starts the authorization request. */
  start: Middleware;
  /** The sign-in URL for `request` (what `start` reads back). */
  signInPath(request?: SignInRequest): string;
  /** GET `${basePath}/callback`. */
  callback: Middleware;
  /** The signed-in, enabled account of this browser's SSO session, if any. */
  current(ctx: Context): Promise<SignedIn | undefined>;
}

const pendingSchema = z.object({ state: z.string(), verifier: z.string(), returnTo: z.string().optional() });

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

  const returnPaths = new Set(options.returnPaths ?? []);
  /** Only a path the page listed, compared as a whole string: nothing from the request is trusted. */
  const allowedReturn = (path: unknown): string | undefined => (typeof path === 'string' && returnPaths.has(path) ? path : undefined);

  async function current(ctx: Context): Promise<SignedIn | undefined> {
    const session = await provider.Session.get(ctx);
    if (!session.accountId) return undefined;
    const account = await accounts.findById(session.accountId);
    if (!account || account.disabled) return undefined;
    return {
      account,
      sessionUid: session.uid,
      amr: Array.isArray(session.amr) ? session.amr : [],
      acr: typeof session.acr === 'string' ? session.acr : undefined,
      authTime: typeof session.loginTs === 'number' ? session.loginTs : undefined,
    };
  }

  return {
    signInPath(request = {}) {
      const query = new URLSearchParams();
      if (request.fresh) query.set('fresh', '1');
      const returnTo = allowedReturn(request.returnTo);
      if (returnTo) query.set('return', returnTo);
      const search = query.toString();
      return `${basePath}/sign-in${search ? `?${search}` : ''}`;
    },

    async start(ctx) {
      const fresh = ctx.query.fresh === '1';
      const returnTo = allowedReturn(ctx.query.return);
      const state = randomBytes(16).toString('base64url');
      const verifier = randomBytes(32).toString('base64url');
      ctx.cookies.set(cookieName, JSON.stringify({ state, verifier, returnTo }), { ...cookieOptions, secure: ctx.secure, maxAge: config.ttl.interaction * 1000 });
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
      if (fresh) {
        // OIDC Core §3.1.2.1: max_age=0 makes the provider authenticate the person again
        // whatever session the browser has; the login page is filled in for the account that is
        // signed in (another account there ends this session first, the provider's own rule).
        query.set('max_age', '0');
        const signedIn = await current(ctx);
        if (signedIn) query.set('login_hint', signedIn.account.email);
      }
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(`/auth?${query.toString()}`);
    },

    async callback(ctx) {
      ctx.set('Cache-Control', 'no-store');
      const raw = ctx.cookies.get(cookieName, { signed: true });
      ctx.cookies.set(cookieName, null, { ...cookieOptions, secure: ctx.secure });
      let pending: z.infer<typeof pendingSchema> | undefined;
      try {
        pending = raw ? pendingSchema.parse(JSON.parse(raw)) : undefined;
      } catch {
        pending = undefined;
      }
      const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
      const code = typeof ctx.query.code === 'string' && ctx.query.code.length <= 256 ? ctx.query.code : undefined;
      if (!pending || !sameString(state, pending.state)) {
        throw new AppError('sign_in.state');
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
      if (!authorizationCode || !valid) throw new AppError('sign_in.code');
      // Redeemed here, in-process: the page needs the session the sign-in created, not tokens.
      // A replay meets the consume claim (mongo-adapter.ts): refused the same way.
      try {
        await authorizationCode.consume();
      } catch (err) {
        if (err instanceof errors.InvalidGrant) throw new AppError('sign_in.code');
        throw err;
      }
      ctx.status = 303;
      // Checked again: the cookie is signed, but the list is what decides.
      ctx.redirect(allowedReturn(pending.returnTo) ?? options.landingPath);
    },

    current,
  };
}
