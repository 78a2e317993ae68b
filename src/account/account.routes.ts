import Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';
import type Provider from 'oidc-provider';
import { z } from 'zod';

import type { AccountService, AccountView } from '../accounts/account.service.js';
import { ACCOUNT_CLIENT_ID } from './account-client.js';
import { createFirstPartySignIn } from '../oidc/first-party-sign-in.js';
import type { TotpService } from '../accounts/totp.service.js';
import type { AuditAction } from '../audit/audit-actions.js';
import type { AuditOutcome, AuditService } from '../audit/audit.service.js';
import { accountActor } from '../audit/audit.service.js';
import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { parseForm } from '../http/form-body.js';
import type { FormFields } from '../http/form-body.js';
import type { PageRenderer } from '../http/render-page.js';
import { describeWait } from '../sign-in/messages.js';
import type { CsrfTokens } from '../sign-in/csrf.js';
import { recoveryCodesText } from '../sign-in/messages.js';
import type { Gate } from '../limits/attempt-limiter.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';

/**
 * The person's own security page (/account/security): set up or remove the authenticator
 * app, make new recovery codes.
 *
 * Who is signed in comes from the single sign-on session itself. To get one, the page is a
 * relying party of this server (the built-in first-party client `account-console`): it sends the
 * browser through an ordinary authorization request with PKCE, so the login page, second factors
 * and the MFA policy all apply. Its callback checks state and PKCE and redeems the code in-process
 * (it needs the session, not tokens).
 *
 * Changing the second factor (showing the enrolment page, turning the app on, removing it, new
 * recovery codes) needs a recent authentication, younger than RECENT_AUTH_MAX_AGE: a session
 * borrowed from an unattended browser must not be enough. Otherwise the page sends the person
 * through a new authentication for the same account (first-party-sign-in.ts, `fresh`), then
 * back: to the page itself after a GET; after a POST, which did nothing, to the security page
 * with a notice to do it again (the form's contents are not kept across the sign-in).
 */

const SECURITY_PATH = '/account/security';
const ENROL_PATH = `${SECURITY_PATH}/totp`;
/** Where a POST refused for an old authentication returns after the new one (shows a notice). */
const AFTER_STEP_UP_PATH = `${SECURITY_PATH}?signed-in-again=1`;

interface AccountState {
  form: FormFields;
  account: AccountView;
  sessionUid: string;
  /** When the person last authenticated (auth_time), epoch seconds. */
  authTime: number | undefined;
  formActionOrigins: string[];
  log?: Logger;
}
type Step = RouterMiddleware<AccountState>;
type Ctx = RouterContext<AccountState>;

export interface AccountRouterDeps {
  config: Config;
  provider: Provider;
  accounts: AccountService;
  totp: TotpService;
  limits: SignInLimits;
  pages: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  audit: AuditService;
  /** Epoch milliseconds. */
  now?: () => number;
}

const codeSchema = z
  .string()
  .max(32)
  .transform((s) => s.replace(/\s+/g, ''))
  .pipe(z.string().regex(/^\d{6}$/));

/** The sealed enrolment the enrolment form carries (totp.service.ts); opened and checked there. */
const enrolmentField = z.string().max(2048);

const ENROLMENT_EXPIRED = 'This setup page has expired. Scan the new QR code (or enter the new key), then enter the code the app shows.';

/** Removing the authenticator: the current password or a current code from the app. */
const removeForm = z.object({
  csrf: z.string(),
  password: z.string().max(1024).optional(),
  code: z.string().max(32).optional(),
});

export function createAccountRouter(deps: AccountRouterDeps): Router<AccountState> {
  const { config, provider, accounts, totp, limits, pages, csrf, logger, audit, now = Date.now } = deps;
  const router = new Router<AccountState>({ prefix: '/account' });
  const signIn = createFirstPartySignIn({
    provider,
    config,
    accounts,
    clientId: ACCOUNT_CLIENT_ID,
    basePath: '/account',
    landingPath: SECURITY_PATH,
    cancelledPath: '/account/signed-out',
    returnPaths: [SECURITY_PATH, ENROL_PATH, AFTER_STEP_UP_PATH],
  });
  const logFor = (ctx: Ctx) => ctx.state.log ?? logger;
  const csrfKey = (ctx: Ctx) => `account:${ctx.state.sessionUid}`;
  /** A change to the person's own second factor, in the audit log (never a code or the password). */
  const auditChange = (ctx: Ctx, action: AuditAction, outcome: AuditOutcome, reason?: string) =>
    audit.record({ action, outcome, actor: accountActor(ctx.state.account), target: accountActor(ctx.state.account), reason, details: { during: 'account' } });
  const refusal = (check: { status: number }, wrong: string) => (check.status === 429 ? 'throttled' : wrong);

  const noStore: Step = async function noStore(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  /** The account of the browser's SSO session, or a redirect to sign in. */
  const requireSession: Step = async function requireSession(ctx, next) {
    const current = await signIn.current(ctx);
    if (!current) {
      ctx.status = 303;
      ctx.redirect('/account/sign-in');
      return;
    }
    ctx.state.account = current.account;
    ctx.state.sessionUid = current.sessionUid;
    ctx.state.authTime = current.authTime;
    ctx.state.formActionOrigins = [];
    await next();
  };

  /**
   * The authentication must be younger than RECENT_AUTH_MAX_AGE; otherwise a new one (303 to the
   * fresh sign-in) and nothing else: a GET comes back to its page, a POST to the security page
   * with a notice to do it again.
   */
  const requireRecentAuth: Step = async function requireRecentAuth(ctx, next) {
    const { authTime } = ctx.state;
    const age = authTime === undefined ? Infinity : Math.floor(now() / 1000) - authTime;
    if (age <= config.recentAuthMaxAgeSeconds) return next();
    logFor(ctx).info('recent authentication required', { accountId: ctx.state.account.id, path: ctx.path, method: ctx.method });
    ctx.status = 303;
    ctx.redirect(signIn.signInPath({ fresh: true, returnTo: ctx.method === 'GET' ? ctx.path : AFTER_STEP_UP_PATH }));
  };

  const checkCsrf: Step = async function checkCsrf(ctx, next) {
    if (!csrf.verify(csrfKey(ctx), ctx.state.form.csrf)) {
      throw new AppError('request.csrf');
    }
    await next();
  };

  const renderSecurity = async (ctx: Ctx, options: { error?: string; notice?: string; status?: number } = {}) => {
    const { account } = ctx.state;
    const status = await totp.status(account.id);
    await pages.render(
      ctx,
      'account/security',
      {
        title: 'Security',
        account: { email: account.email, name: account.name, hasPassword: account.hasPassword },
        totp: { enabled: status.enabled, enabledAt: status.enabledAt?.toISOString().slice(0, 10), recoveryCodesLeft: status.recoveryCodesLeft },
        csrf: csrf.issue(csrfKey(ctx)),
        error: options.error,
        notice: options.notice,
        signOutHref: '/session/end',
      },
      options.status ?? 200,
    );
  };

  /**
   * The enrolment page. Writes nothing (a GET must not): the secret travels sealed in the form
   * (totp.service.ts); `enrolment` is that sealed value when re-rendering after a wrong code, so
   * the person need not scan again.
   */
  const renderEnrol = async (ctx: Ctx, options: { error?: string; status?: number; enrolment?: string | undefined } = {}) => {
    const { account } = ctx.state;
    const enrolment = await totp.beginEnrolment({ id: account.id, email: account.email }, { continueFrom: options.enrolment });
    await pages.render(
      ctx,
      'interactions/totp-enrol',
      {
        title: 'Set up two-step verification',
        required: false,
        qrCodeDataUrl: enrolment.qrCodeDataUrl,
        otpauthUri: enrolment.otpauthUri,
        secretGroups: enrolment.secret.match(/.{1,4}/g) ?? [enrolment.secret],
        enrolment: enrolment.sealed,
        action: `${SECURITY_PATH}/totp`,
        csrf: csrf.issue(csrfKey(ctx)),
        cancelHref: SECURITY_PATH,
        error: options.error,
      },
      options.status ?? 200,
    );
  };

  const renderCodes = async (ctx: Ctx, codes: string[]) => {
    await pages.render(ctx, 'interactions/recovery-codes', {
      title: 'Save your recovery codes',
      codes,
      download: `data:text/plain;charset=utf-8,${encodeURIComponent(recoveryCodesText(config.productName, codes))}`,
      action: `${SECURITY_PATH}/done`,
      csrf: csrf.issue(csrfKey(ctx)),
      continueLabel: "I've saved them",
    });
  };

  /** The gates of a proof on this page: the client IP's, and the factor's own (src/limits). */
  const proofGates = (ctx: Ctx, factor: 'totp' | 'password'): Gate[] => [
    limits.signInFromIp(ctx.ip),
    factor === 'password' ? limits.password(ctx.state.account.email) : limits.factor(ctx.state.account.id, 'totp'),
  ];

  /**
   * One guarded proof (a current authenticator code or the password), counted like the same
   * factor on the sign-in pages, so a borrowed session cannot be used to guess either.
   */
  const guardedProof = async (ctx: Ctx, factor: 'totp' | 'password', prove: () => Promise<boolean>, wrong: string): Promise<{ ok: true } | { ok: false; message: string; status: number }> => {
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
  };

  const checkCurrentCode = (ctx: Ctx, code: string) =>
    guardedProof(ctx, 'totp', async () => (await totp.verify(ctx.state.account.id, code)).ok, 'That code is not right. Check your authenticator app and try again.');

  const form = parseForm({ limit: config.formBodyLimit });

  router.get('/', noStore, async function accountHome(ctx) {
    ctx.status = 303;
    ctx.redirect(SECURITY_PATH);
  });

  router.get('/sign-in', signIn.start);
  router.get('/callback', signIn.callback);

  router.get('/signed-out', noStore, async function signedOut(ctx) {
    await pages.render(ctx, 'account/signed-out', { title: 'Not signed in', signInHref: '/account/sign-in' });
  });

  router.get('/security', noStore, requireSession, async function showSecurity(ctx) {
    // Back from the new authentication a refused change asked for (the link itself changes nothing).
    const notice = ctx.query['signed-in-again'] === '1' ? 'You signed in again. Nothing was changed yet: do it once more now.' : undefined;
    await renderSecurity(ctx, { notice });
  });

  /** The enrolment page is for accounts without an app; with one, the security page. */
  const unlessEnrolled: Step = async function unlessEnrolled(ctx, next) {
    if (!ctx.state.account.totpEnabled) return next();
    ctx.status = 303;
    ctx.redirect(SECURITY_PATH);
  };

  router.get('/security/totp', noStore, requireSession, unlessEnrolled, requireRecentAuth, async function showEnrol(ctx) {
    await renderEnrol(ctx);
  });

  router.post('/security/totp', noStore, form, requireSession, checkCsrf, requireRecentAuth, async function activate(ctx) {
    const { account } = ctx.state;
    if (account.totpEnabled) return renderSecurity(ctx, { notice: 'Two-step verification is already on.' });
    const enrolment = enrolmentField.safeParse(ctx.state.form.enrolment).data;
    const code = codeSchema.safeParse(ctx.state.form.code);
    if (!code.success) return renderEnrol(ctx, { error: 'Enter the 6-digit code your app shows for this account.', status: 400, enrolment });
    const gate = await limits.limiter.begin(proofGates(ctx, 'totp'));
    if (!gate.allowed) {
      ctx.set('Retry-After', String(gate.retryAfterSeconds));
      await auditChange(ctx, 'mfa.enrolled', 'failure', 'throttled');
      return renderEnrol(ctx, { error: `Too many wrong codes. Wait ${describeWait(gate.retryAfterSeconds)}, then try again.`, status: 429, enrolment });
    }
    const result = await totp.activate(account.id, code.data, enrolment ?? '');
    if (!result.ok && result.reason === 'already_enrolled') {
      await gate.attempt.failed();
      return renderSecurity(ctx, { notice: 'Two-step verification is already on.' });
    }
    if (!result.ok) {
      await gate.attempt.failed();
      await auditChange(ctx, 'mfa.enrolled', 'failure', `code_${result.reason}`);
      if (result.reason === 'expired') return renderEnrol(ctx, { error: ENROLMENT_EXPIRED, status: 400 });
      return renderEnrol(ctx, { error: 'That code is not right. Check that the app added this account, then enter its current code.', status: 401, enrolment });
    }
    await gate.attempt.succeeded();
    logFor(ctx).info('authenticator app enrolled', { accountId: account.id, during: 'account' });
    await auditChange(ctx, 'mfa.enrolled', 'success');
    return renderCodes(ctx, result.recoveryCodes);
  });

  router.post('/security/done', noStore, form, requireSession, checkCsrf, async function done(ctx) {
    ctx.status = 303;
    ctx.redirect(SECURITY_PATH);
  });

  router.post('/security/recovery-codes', noStore, form, requireSession, checkCsrf, requireRecentAuth, async function regenerate(ctx) {
    const { account } = ctx.state;
    if (!account.totpEnabled) return renderSecurity(ctx, { error: 'Set up an authenticator app first.', status: 400 });
    const code = codeSchema.safeParse(ctx.state.form.code);
    if (!code.success) return renderSecurity(ctx, { error: 'Enter the current 6-digit code from your authenticator app to make new recovery codes.', status: 400 });
    const check = await checkCurrentCode(ctx, code.data);
    if (!check.ok) {
      await auditChange(ctx, 'mfa.recovery_codes_regenerated', 'failure', refusal(check, 'code_invalid'));
      return renderSecurity(ctx, { error: check.message, status: check.status });
    }
    const codes = await totp.regenerateRecoveryCodes(account.id);
    logFor(ctx).info('recovery codes regenerated', { accountId: account.id });
    await auditChange(ctx, 'mfa.recovery_codes_regenerated', 'success');
    return renderCodes(ctx, codes);
  });

  router.post('/security/totp/remove', noStore, form, requireSession, checkCsrf, requireRecentAuth, async function remove(ctx) {
    const { account } = ctx.state;
    if (!account.totpEnabled) return renderSecurity(ctx, { notice: 'Two-step verification is already off.' });
    const parsed = removeForm.safeParse(ctx.state.form);
    const password = parsed.success ? parsed.data.password : undefined;
    const code = parsed.success && parsed.data.code ? codeSchema.safeParse(parsed.data.code) : undefined;
    if (password) {
      const check = await guardedProof(ctx, 'password', () => accounts.verifyPassword(account.id, password), 'That password is not right.');
      if (!check.ok) {
        logFor(ctx).info('authenticator removal refused', { accountId: account.id, reason: 'password' });
        await auditChange(ctx, 'mfa.removed', 'failure', refusal(check, 'wrong_password'));
        return renderSecurity(ctx, { error: check.message, status: check.status });
      }
    } else if (code?.success) {
      const check = await checkCurrentCode(ctx, code.data);
      if (!check.ok) {
        await auditChange(ctx, 'mfa.removed', 'failure', refusal(check, 'code_invalid'));
        return renderSecurity(ctx, { error: check.message, status: check.status });
      }
    } else {
      return renderSecurity(ctx, { error: 'Enter your current password or a current code from your authenticator app.', status: 400 });
    }
    await totp.remove(account.id);
    logFor(ctx).info('authenticator app removed', { accountId: account.id });
    await auditChange(ctx, 'mfa.removed', 'success');
    return renderSecurity(ctx, { notice: 'Two-step verification is off. Your authenticator app and recovery codes no longer work.' });
  });

  return router;
}
