import type Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';

import type { AuditActor } from '../../audit/audit.service.js';
import type { Config } from '../../config/config.js';
import { AppError } from '../../http/app-error.js';
import { parseForm } from '../../http/form-body.js';
import type { FormFields } from '../../http/form-body.js';
import type { PageRenderer } from '../../http/render-page.js';
import type { CsrfTokens } from '../../sign-in/csrf.js';
import type { Logger } from '../../logging/logger.js';
import type { FirstPartySignIn, SignedIn } from '../../oidc/first-party-sign-in.js';
import { ADMIN_BASE_PATH, ADMIN_CLIENT_ID } from '../admin-client.js';

/**
 * What every console page is built from: the signed-in admin, CSRF, forms and rendering.
 * Page modules (client.pages.ts, user.pages.ts, …) register their routes with these steps.
 *
 * The console is used only with a recent, multi-factor authentication:
 *  - the session's `acr` must be the multi-factor class, which the sign-in gives only for an
 *    authenticator app (TOTP or one of its recovery codes; src/oidc/policy.ts), not for a code
 *    by email; anything less signs in again, asking for that (`acr_values`, a step-up);
 *  - the authentication (`auth_time`) must be younger than ADMIN_SESSION_MAX_AGE, and a console
 *    page must have been used within ADMIN_SESSION_IDLE; otherwise the console sign-in forces a
 *    new authentication (`max_age=0`). The last use is a signed cookie bound to the SSO
 *    session's uid, so it costs no database write and says nothing about another session.
 */

export interface ConsoleState {
  form: FormFields;
  admin: SignedIn;
  formActionOrigins: string[];
  log?: Logger;
}

export type ConsoleStep = RouterMiddleware<ConsoleState>;
export type ConsoleContext = RouterContext<ConsoleState>;
export type ConsoleRouter = Router<ConsoleState>;

/** The console's sections, for the navigation bar. */
export type ConsoleSection = 'clients' | 'api-resources' | 'users' | 'invitations' | 'audit' | 'mail' | 'registration-tokens' | 'api-token';

export interface ConsoleKit {
  /**
   * Loads the signed-in admin: sign-in if none, 403 page if not an admin, a new authentication
   * if too old or idle, step-up if not multi-factor (POST: 401, nothing done).
   */
  requireAdmin: ConsoleStep;
  /** Parses a url-encoded form (size-limited). */
  form: ConsoleStep;
  /** The form's CSRF token must be this session's. */
  checkCsrf: ConsoleStep;
  /** Every POST: [form, requireAdmin, checkCsrf]. */
  post: ConsoleStep[];
  render(ctx: ConsoleContext, view: string, section: ConsoleSection, locals: Record<string, unknown>, status?: number): Promise<void>;
  /** The audit actor for changes made through the console. */
  actor(ctx: ConsoleContext): AuditActor;
  /** 303 to a console path. */
  redirect(ctx: ConsoleContext, path: string): void;
}

/** Why the console asks for a sign-in again. */
export type AdminSessionVerdict = 'ok' | 'too_old' | 'idle' | 'not_multi_factor';

export interface AdminSessionInput {
  acr: string | undefined;
  /** auth_time, epoch seconds. */
  authTime: number | undefined;
  /** The last console use this session made (the activity cookie), epoch seconds. */
  lastActivity: number | undefined;
  now: number;
}

export interface AdminSessionSettings {
  multiFactorAcr: string;
  maxAgeSeconds: number;
  idleSeconds: number;
}

/**
 * Whether a signed-in admin's session may use the console now. The authentication itself counts
 * as use: right after signing in the console is not idle, whatever the cookie says.
 */
export function adminSessionVerdict(input: AdminSessionInput, settings: AdminSessionSettings): AdminSessionVerdict {
  const { authTime, now } = input;
  if (authTime === undefined || now - authTime > settings.maxAgeSeconds) return 'too_old';
  const lastUse = Math.max(authTime, input.lastActivity ?? authTime);
  if (now - lastUse > settings.idleSeconds) return 'idle';
  if (input.acr !== settings.multiFactorAcr) return 'not_multi_factor';
  return 'ok';
}

/** The console's activity cookie: `<session uid>.<epoch seconds>`, signed with the app's keys. */
export const ADMIN_ACTIVITY_COOKIE = 'admin.activity';

export function createConsoleKit(deps: {
  config: Config;
  pages: PageRenderer;
  csrf: CsrfTokens;
  signIn: FirstPartySignIn;
  /** Epoch milliseconds. */
  now?: () => number;
}): ConsoleKit {
  const { config, pages, csrf, signIn, now = Date.now } = deps;
  const csrfKey = (ctx: ConsoleContext) => `admin:${ctx.state.admin.sessionUid}`;
  const settings: AdminSessionSettings = {
    multiFactorAcr: config.acr.multiFactor,
    maxAgeSeconds: config.adminSession.maxAgeSeconds,
    idleSeconds: config.adminSession.idleSeconds,
  };
  const activityCookie = {
    httpOnly: true,
    sameSite: 'lax' as const,
    signed: true,
    path: ADMIN_BASE_PATH,
    overwrite: true,
    // It cannot matter for longer than an authentication is accepted.
    maxAge: config.adminSession.maxAgeSeconds * 1000,
  };

  /** The last console use of this SSO session; another session's cookie says nothing. */
  const lastActivity = (ctx: ConsoleContext, sessionUid: string): number | undefined => {
    const raw = ctx.cookies.get(ADMIN_ACTIVITY_COOKIE, { signed: true });
    const dot = raw?.lastIndexOf('.') ?? -1;
    if (!raw || dot <= 0 || raw.slice(0, dot) !== sessionUid) return undefined;
    const at = Number(raw.slice(dot + 1));
    return Number.isSafeInteger(at) ? at : undefined;
  };

  /** GET: to the console sign-in (303). Anything else: 401, and nothing is done. */
  const signInAgain = (ctx: ConsoleContext, fresh: boolean, code: 'admin.signed_out' | 'admin.mfa_required') => {
    if (ctx.method !== 'GET') throw new AppError(code);
    ctx.status = 303;
    ctx.redirect(signIn.signInPath({ fresh }));
  };

  const requireAdmin: ConsoleStep = async function requireAdmin(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    const current = await signIn.current(ctx);
    if (!current) return signInAgain(ctx, false, 'admin.signed_out');
    if (!current.account.roles.includes('admin')) {
      throw new AppError('admin.forbidden');
    }
    const nowSeconds = Math.floor(now() / 1000);
    const verdict = adminSessionVerdict(
      { acr: current.acr, authTime: current.authTime, lastActivity: lastActivity(ctx, current.sessionUid), now: nowSeconds },
      settings,
    );
    if (verdict !== 'ok') {
      ctx.state.log?.info('admin console asks for a sign-in again', { accountId: current.account.id, reason: verdict });
      // Too old or idle: a new authentication, whatever the session has. Not multi-factor: the
      // console sign-in asks for the authenticator app (acr_values), a step-up.
      if (verdict === 'not_multi_factor') return signInAgain(ctx, false, 'admin.mfa_required');
      return signInAgain(ctx, true, 'admin.signed_out');
    }
    // Secure whenever the issuer is https (ctx.secure follows the issuer: src/http/public-origin.ts).
    ctx.cookies.set(ADMIN_ACTIVITY_COOKIE, `${current.sessionUid}.${nowSeconds}`, { ...activityCookie, secure: ctx.secure });
    ctx.state.admin = current;
    ctx.state.formActionOrigins = [];
    await next();
  };

  const form = parseForm({ limit: config.formBodyLimit }) as ConsoleStep;

  // OIDC RP-Initiated Logout 1.0 §2: with the console's client_id and its registered
  // post_logout_redirect_uri, the provider's logout ends on the console's signed-out page
  // ("Sign in again") instead of its own bare "signed out" page. No id_token_hint: the console
  // keeps no ID token (first-party-sign-in.ts redeems the code in-process), so the provider
  // asks the person to confirm, which also stops a cross-site link from signing them out.
  const signOutHref = `/session/end?${new URLSearchParams({
    client_id: ADMIN_CLIENT_ID,
    post_logout_redirect_uri: `${config.issuer}${ADMIN_BASE_PATH}/signed-out`,
  }).toString()}`;

  const checkCsrf: ConsoleStep = async function checkCsrf(ctx, next) {
    if (!csrf.verify(csrfKey(ctx), ctx.state.form.csrf)) {
      throw new AppError('request.csrf');
    }
    await next();
  };

  return {
    requireAdmin,
    form,
    checkCsrf,
    post: [form, requireAdmin, checkCsrf],
    async render(ctx, view, section, locals, status = 200) {
      await pages.render(
        ctx,
        view,
        {
          section,
          admin: { email: ctx.state.admin.account.email, name: ctx.state.admin.account.name, id: ctx.state.admin.account.id },
          csrf: csrf.issue(csrfKey(ctx)),
          signOutHref,
          ...locals,
        },
        status,
      );
    },
    actor(ctx) {
      return { type: 'account', id: ctx.state.admin.account.id, label: ctx.state.admin.account.email };
    },
    redirect(ctx, path) {
      ctx.status = 303;
      ctx.redirect(path.startsWith('/') ? path : `${ADMIN_BASE_PATH}/${path}`);
    },
  };
}

/** "10 minutes", "1 day 2 hours": a duration in its two largest units ('' under a second). */
export function durationInWords(totalSeconds: number): string {
  const units: [number, string][] = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  const parts: string[] = [];
  let rest = Math.trunc(totalSeconds);
  for (const [size, name] of units) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0) parts.push(`${count} ${name}${count === 1 ? '' : 's'}`);
  }
  return parts.slice(0, 2).join(' ');
}

/** A token lifetime setting: its own, or the server default, in seconds and in words. */
export function lifetimeText(value: number | undefined, serverDefault: number): string {
  return value === undefined
    ? `Server default (${serverDefault} s, ${durationInWords(serverDefault)})`
    : `${value} s (${durationInWords(value)})`;
}

/** To the second, in UTC (a grace period may be seconds long). */
export function utcTime(date: Date): string {
  return `${date.toISOString().replace('T', ' ').slice(0, 19)} UTC`;
}

/** The fixed notice a redirect's `?notice=` names: nothing from the query string is shown as text. */
export function noticeFrom(notices: Readonly<Record<string, string>>, query: unknown): string | undefined {
  const key = typeof query === 'string' ? query : '';
  return Object.hasOwn(notices, key) ? notices[key] : undefined;
}
