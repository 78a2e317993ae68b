import type Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';
import type Provider from 'oidc-provider';

import type { AccountService, AccountView } from '../accounts/account.service.js';
import type { AuditAction } from '../audit/audit-actions.js';
import type { AuditDetails, AuditOutcome, AuditService, AuditTarget } from '../audit/audit.service.js';
import { accountActor } from '../audit/audit.service.js';
import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { parseForm } from '../http/form-body.js';
import type { FormFields } from '../http/form-body.js';
import type { PageRenderer } from '../http/render-page.js';
import type { Gate } from '../limits/attempt-limiter.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import type { FirstPartySignIn } from '../oidc/first-party-sign-in.js';
import { createFirstPartySignIn } from '../oidc/first-party-sign-in.js';
import type { CsrfTokens } from '../sign-in/csrf.js';
import { describeWait } from '../sign-in/messages.js';
import { ACCOUNT_CLIENT_ID } from './account-client.js';

/**
 * What every page of the account centre (/account) is built from: the signed-in person, the
 * recent-authentication gate, CSRF, forms, rendering with the centre's navigation, audit.
 * Page modules (`*.pages.ts`) register their routes with these steps; account.routes.ts mounts them.
 *
 * Who is signed in comes from the single sign-on session itself: the centre is a relying party
 * of this server (the built-in first-party client `account-console`, first-party-sign-in.ts), so
 * the login page, second factors and the MFA policy all apply, and signing out anywhere signs
 * out here too.
 *
 * Sensitive pages and actions (password, email, second factors, deletion, the data download)
 * need an authentication younger than RECENT_AUTH_MAX_AGE: a session borrowed from an unattended
 * browser must not be enough. Otherwise the person goes through a new authentication for the same
 * account (`max_age=0`), then back: to the page itself after a GET; after a POST, which did
 * nothing, to the section's page with a notice to do it again (the form's contents are not kept
 * across the sign-in: some are passwords).
 */

export const ACCOUNT_BASE_PATH = '/account';
/** Where signing out lands: the post_logout_redirect_uri registered for the centre (account-client.ts). */
export const ACCOUNT_SIGNED_OUT_PATH = `${ACCOUNT_BASE_PATH}/signed-out`;

/** The centre's sections: each is a page at its path, and a link in the navigation. */
export const ACCOUNT_SECTIONS = {
  overview: { path: '/account/overview', label: 'Overview' },
  profile: { path: '/account/profile', label: 'Profile' },
  email: { path: '/account/email', label: 'Email' },
  password: { path: '/account/password', label: 'Password' },
  security: { path: '/account/security', label: 'Two-step verification' },
  sessions: { path: '/account/sessions', label: 'Sessions' },
  apps: { path: '/account/apps', label: 'Connected apps' },
  data: { path: '/account/data', label: 'Your data' },
  delete: { path: '/account/delete', label: 'Delete account' },
} as const;

export type AccountSection = keyof typeof ACCOUNT_SECTIONS;

/** The query a section's page reads after a refused POST sent the person to sign in again. */
export const SIGNED_IN_AGAIN = 'signed-in-again=1';

/** Other pages a sign-in may return to (GETs behind the recent-authentication gate). */
const EXTRA_RETURN_PATHS = ['/account/security/totp'];

export interface AccountState {
  form: FormFields;
  account: AccountView;
  sessionUid: string;
  /** When the person last authenticated (auth_time), epoch seconds. */
  authTime: number | undefined;
  formActionOrigins: string[];
  log?: Logger;
}
export type AccountStep = RouterMiddleware<AccountState>;
export type AccountContext = RouterContext<AccountState>;
export type AccountRouter = Router<AccountState>;

export interface AccountKitDeps {
  config: Config;
  provider: Provider;
  accounts: AccountService;
  limits: SignInLimits;
  pages: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  audit: AuditService;
  /** Epoch milliseconds. */
  now?: () => number;
}

export interface RenderOptions {
  error?: string | undefined;
  /**
   * The id of the input the error is about: the page marks it (`aria-invalid`, `aria-describedby`
   * to the message beside it) and focuses it (`autofocus`), so the person lands on what to fix.
   */
  field?: string | undefined;
  notice?: string | undefined;
  status?: number | undefined;
}

export type ProofResult = { ok: true } | { ok: false; message: string; status: number };

export interface AccountKit {
  signIn: FirstPartySignIn;
  /** `Cache-Control: no-store` on every page of the centre. */
  noStore: AccountStep;
  /** Parses a url-encoded form (size-limited). */
  form: AccountStep;
  /** Loads the signed-in account, or 303 to the centre's sign-in (returning to a GET's own page afterwards). */
  requireSession: AccountStep;
  /** The form's CSRF token must be this session's (400 page otherwise, nothing done). */
  checkCsrf: AccountStep;
  /**
   * The authentication must be younger than RECENT_AUTH_MAX_AGE; otherwise 303 to a new one and
   * nothing else. A GET comes back to its own path; a POST to `section`'s page with a notice.
   */
  requireRecentAuth(section: AccountSection): AccountStep;
  /** Every GET page: [noStore, requireSession]. */
  page: AccountStep[];
  /** A sensitive GET page: [noStore, requireSession, requireRecentAuth(section)]. */
  sensitivePage(section: AccountSection): AccountStep[];
  /** Every POST: [noStore, form, requireSession, checkCsrf]. */
  post: AccountStep[];
  /** A sensitive POST: [noStore, form, requireSession, checkCsrf, requireRecentAuth(section)]. */
  sensitivePost(section: AccountSection): AccountStep[];
  /** A fresh CSRF token for this session's forms. */
  csrfToken(ctx: AccountContext): string;
  /**
   * Renders `view` inside the centre (views/account/layout.pug): adds productName, title, the
   * navigation with `section` current, the account, a CSRF token and the sign-out form's target;
   * `error`, `errorField` (options.field) and `notice` for the page's messages.
   */
  render(ctx: AccountContext, view: string, section: AccountSection | undefined, locals: Record<string, unknown>, options?: RenderOptions): Promise<void>;
  /** An event in the audit log with the person as actor and (by default) as target. */
  audit(ctx: AccountContext, action: AuditAction, outcome: AuditOutcome, extra?: { reason?: string; target?: AuditTarget; details?: AuditDetails; clientId?: string }): Promise<void>;
  log(ctx: AccountContext): Logger;
  /** 303 to a path of the centre. */
  redirect(ctx: AccountContext, path: string): void;
  /** Whether the authentication is younger than RECENT_AUTH_MAX_AGE. */
  isRecent(ctx: AccountContext): boolean;
  /**
   * One guarded proof (the current password, or a current authenticator code), counted like the
   * same factor on the sign-in pages (src/limits), so a borrowed session cannot be used to guess.
   */
  guardedProof(ctx: AccountContext, factor: 'totp' | 'password', prove: () => Promise<boolean>, wrong: string): Promise<ProofResult>;
}

export function createAccountKit(deps: AccountKitDeps): AccountKit {
  const { config, provider, accounts, limits, pages, csrf, logger, audit, now = Date.now } = deps;
  const sectionPaths = Object.values(ACCOUNT_SECTIONS).map((s) => s.path);
  const signIn = createFirstPartySignIn({
    provider,
    config,
    accounts,
    clientId: ACCOUNT_CLIENT_ID,
    basePath: ACCOUNT_BASE_PATH,
    landingPath: ACCOUNT_SECTIONS.overview.path,
    cancelledPath: ACCOUNT_SIGNED_OUT_PATH,
    returnPaths: [...sectionPaths, ...sectionPaths.map((p) => `${p}?${SIGNED_IN_AGAIN}`), ...EXTRA_RETURN_PATHS],
  });
  const log = (ctx: AccountContext) => ctx.state.log ?? logger;
  const csrfKey = (ctx: AccountContext) => `account:${ctx.state.sessionUid}`;

  const noStore: AccountStep = async function noStore(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  const form = parseForm({ limit: config.formBodyLimit }) as AccountStep;

  const requireSession: AccountStep = async function requireSession(ctx, next) {
    const current = await signIn.current(ctx);
    if (!current) {
      // A page asked for (a bookmark, a link from a mail) is where the sign-in returns, when it is
      // one of the centre's (signInPath drops any other); a POST did nothing, so the landing page.
      ctx.status = 303;
      ctx.redirect(signIn.signInPath(ctx.method === 'GET' ? { returnTo: ctx.path } : {}));
      return;
    }
    ctx.state.account = current.account;
    ctx.state.sessionUid = current.sessionUid;
    ctx.state.authTime = current.authTime;
    ctx.state.formActionOrigins = [];
    await next();
  };

  const checkCsrf: AccountStep = async function checkCsrf(ctx, next) {
    if (!csrf.verify(csrfKey(ctx), ctx.state.form.csrf)) throw new AppError('request.csrf');
    await next();
  };

  const isRecent = (ctx: AccountContext) => {
    const { authTime } = ctx.state;
    const age = authTime === undefined ? Infinity : Math.floor(now() / 1000) - authTime;
    return age <= config.recentAuthMaxAgeSeconds;
  };

  const requireRecentAuth = (section: AccountSection): AccountStep =>
    async function requireRecentAuth(ctx, next) {
      if (isRecent(ctx)) return next();
      log(ctx).info('recent authentication required', { accountId: ctx.state.account.id, path: ctx.path, method: ctx.method });
      const returnTo = ctx.method === 'GET' ? ctx.path : `${ACCOUNT_SECTIONS[section].path}?${SIGNED_IN_AGAIN}`;
      ctx.status = 303;
      ctx.redirect(signIn.signInPath({ fresh: true, returnTo }));
    };

  const proofGates = (ctx: AccountContext, factor: 'totp' | 'password'): Gate[] => [
    limits.signInFromIp(ctx.ip),
    factor === 'password' ? limits.password(ctx.state.account.email) : limits.factor(ctx.state.account.id, 'totp'),
  ];

  return {
    signIn,
    noStore,
    form,
    requireSession,
    checkCsrf,
    requireRecentAuth,
    page: [noStore, requireSession],
    sensitivePage: (section) => [noStore, requireSession, requireRecentAuth(section)],
    post: [noStore, form, requireSession, checkCsrf],
    sensitivePost: (section) => [noStore, form, requireSession, checkCsrf, requireRecentAuth(section)],
    csrfToken: (ctx) => csrf.issue(csrfKey(ctx)),
    isRecent,
    log,

    async render(ctx, view, section, locals, options = {}) {
      const { account } = ctx.state;
      const notice = options.notice ?? (ctx.query['signed-in-again'] === '1' ? 'You signed in again. Nothing was changed yet: do it once more now.' : undefined);
      await pages.render(
        ctx,
        view,
        {
          section,
          sections: Object.entries(ACCOUNT_SECTIONS).map(([id, s]) => ({ id, href: s.path, label: s.label })),
          account: { email: account.email, name: account.name, emailVerified: account.emailVerified, hasPassword: account.hasPassword },
          csrf: csrf.issue(csrfKey(ctx)),
          signOutAction: `${ACCOUNT_BASE_PATH}/sign-out`,
          ...locals,
          error: options.error,
          errorField: options.error ? options.field : undefined,
          notice,
        },
        options.status ?? 200,
      );
    },

    async audit(ctx, action, outcome, extra = {}) {
      const self = accountActor(ctx.state.account);
      await audit.record({
        action,
        outcome,
        actor: self,
        target: extra.target ?? self,
        reason: extra.reason,
        clientId: extra.clientId,
        details: { during: 'account', ...extra.details },
      });
    },

    redirect(ctx, path) {
      ctx.status = 303;
      ctx.redirect(path);
    },

    async guardedProof(ctx, factor, prove, wrong) {
      const gate = await limits.limiter.begin(proofGates(ctx, factor));
      if (!gate.allowed) {
        ctx.set('Retry-After', String(gate.retryAfterSeconds));
        return { ok: false, message: `Too many wrong attempts. Wait ${describeWait(gate.retryAfterSeconds)}, then try again.`, status: 429 };
      }
      if (!(await prove())) {
        await gate.attempt.failed();
        return { ok: false, message: wrong, status: 401 };
      }
      await gate.attempt.succeeded();
      return { ok: true };
    },
  };
}
