import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';
import type Provider from 'oidc-provider';
import { z } from 'zod';

import type { AccountService, AccountView } from '../accounts/account.service.js';
import { ACCOUNT_CALLBACK_PATH, ACCOUNT_CLIENT_ID } from './account-client.js';
import type { FactorThrottle } from '../accounts/factor-throttle.js';
import type { TotpService } from '../accounts/totp.service.js';
import type { AuditOutcome, AuditService } from '../audit/audit.service.js';
import { accountActor } from '../audit/audit.service.js';
import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { parseForm } from '../http/form-body.js';
import type { FormFields } from '../http/form-body.js';
import type { PageRenderer } from '../http/render-page.js';
import { describeWait } from '../interactions/interaction-steps.js';
import type { CsrfTokens } from '../interactions/csrf.js';
import { recoveryCodesText } from '../interactions/factor.routes.js';
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
 */

const SECURITY_PATH = '/account/security';
const LOGIN_COOKIE = 'account.login';

interface AccountState {
  form: FormFields;
  account: AccountView;
  sessionUid: string;
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
  factorThrottle: FactorThrottle;
  pages: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  audit: AuditService;
}

const codeSchema = z
  .string()
  .max(32)
  .transform((s) => s.replace(/\s+/g, ''))
  .pipe(z.string().regex(/^\d{6}$/));

/** Removing the authenticator: the current password or a current code from the app. */
const removeForm = z.object({
  csrf: z.string(),
  password: z.string().max(1024).optional(),
  code: z.string().max(32).optional(),
});

const loginCookieSchema = z.object({ state: z.string(), verifier: z.string() });

function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

function sameString(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function createAccountRouter(deps: AccountRouterDeps): Router<AccountState> {
  const { config, provider, accounts, totp, factorThrottle, pages, csrf, logger, audit } = deps;
  const router = new Router<AccountState>({ prefix: '/account' });
  const redirectUri = `${config.issuer}${ACCOUNT_CALLBACK_PATH}`;
  const cookieOptions = { httpOnly: true, sameSite: 'lax' as const, signed: true, path: '/account', overwrite: true };
  const logFor = (ctx: Ctx) => ctx.state.log ?? logger;
  const csrfKey = (ctx: Ctx) => `account:${ctx.state.sessionUid}`;
  /** A change to the person's own second factor, in the audit log (never a code or the password). */
  const auditChange = (ctx: Ctx, action: string, outcome: AuditOutcome, reason?: string) =>
    audit.record({ action, outcome, actor: accountActor(ctx.state.account), target: accountActor(ctx.state.account), reason, details: { during: 'account' } });
  const refusal = (check: { status: number }, wrong: string) => (check.status === 429 ? 'throttled' : wrong);

  const noStore: Step = async function noStore(ctx, next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  /** The account of the browser's SSO session, or a redirect to sign in. */
  const requireSession: Step = async function requireSession(ctx, next) {
    const session = await provider.Session.get(ctx);
    const account = session.accountId ? await accounts.findById(session.accountId) : undefined;
    if (!account || account.disabled) {
      ctx.status = 303;
      ctx.redirect('/account/sign-in');
      return;
    }
    ctx.state.account = account;
    ctx.state.sessionUid = session.uid;
    ctx.state.formActionOrigins = [];
    await next();
  };

  const checkCsrf: Step = async function checkCsrf(ctx, next) {
    if (!csrf.verify(csrfKey(ctx), ctx.state.form.csrf)) {
      throw new AppError(403, 'request.csrf', 'The form has expired or did not come from this site. Go back and try again.');
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

  const renderEnrol = async (ctx: Ctx, error?: string, status = 200) => {
    const { account } = ctx.state;
    const enrolment = await totp.beginEnrolment({ id: account.id, email: account.email });
    await pages.render(
      ctx,
      'interactions/totp-enrol',
      {
        title: 'Set up two-step verification',
        required: false,
        qrCodeDataUrl: enrolment.qrCodeDataUrl,
        secretGroups: enrolment.secret.match(/.{1,4}/g) ?? [enrolment.secret],
        action: `${SECURITY_PATH}/totp`,
        csrf: csrf.issue(csrfKey(ctx)),
        cancelHref: SECURITY_PATH,
        error,
      },
      status,
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

  /**
   * One guarded proof (a current authenticator code or the password), counted per account like
   * every second-factor attempt, so a borrowed session cannot be used to guess either.
   */
  const guardedProof = async (ctx: Ctx, prove: () => Promise<boolean>, wrong: string): Promise<{ ok: true } | { ok: false; message: string; status: number }> => {
    const gate = await factorThrottle.begin(ctx.state.account.id);
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
    guardedProof(ctx, async () => (await totp.verify(ctx.state.account.id, code)).ok, 'That code is not right. Check your authenticator app and try again.');

  const form = parseForm({ limit: config.formBodyLimit });

  router.get('/', noStore, async function accountHome(ctx) {
    ctx.status = 303;
    ctx.redirect(SECURITY_PATH);
  });

  /** Starts an authorization request for the account console (RFC 7636 PKCE, state). */
  router.get('/sign-in', noStore, async function startSignIn(ctx) {
    const state = randomBytes(16).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    ctx.cookies.set(LOGIN_COOKIE, JSON.stringify({ state, verifier }), { ...cookieOptions, maxAge: config.ttl.interaction * 1000 });
    const url = new URL('/auth', config.issuer);
    url.search = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: redirectUri,
      code_challenge: s256(verifier),
      code_challenge_method: 'S256',
      state,
    }).toString();
    ctx.status = 303;
    ctx.redirect(url.pathname + url.search);
  });

  router.get('/callback', noStore, async function finishSignIn(ctx) {
    const raw = ctx.cookies.get(LOGIN_COOKIE, { signed: true });
    ctx.cookies.set(LOGIN_COOKIE, null, cookieOptions);
    let pending: z.infer<typeof loginCookieSchema> | undefined;
    try {
      pending = raw ? loginCookieSchema.parse(JSON.parse(raw)) : undefined;
    } catch {
      pending = undefined;
    }
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const code = typeof ctx.query.code === 'string' && ctx.query.code.length <= 256 ? ctx.query.code : undefined;
    if (!pending || !sameString(state, pending.state)) {
      throw new AppError(400, 'account.sign_in_state', 'This sign-in link has expired or was opened in another browser. Try again.');
    }
    if (!code) {
      // access_denied and friends: the person cancelled.
      ctx.status = 303;
      ctx.redirect('/account/signed-out');
      return;
    }
    const authorizationCode = await provider.AuthorizationCode.find(code);
    const valid =
      authorizationCode &&
      !authorizationCode.isExpired &&
      // NOTE: `consumed` is in the stored payload but missing from the type definitions.
      !(authorizationCode as unknown as { consumed?: unknown }).consumed &&
      authorizationCode.clientId === ACCOUNT_CLIENT_ID &&
      authorizationCode.redirectUri === redirectUri &&
      typeof authorizationCode.codeChallenge === 'string' &&
      sameString(authorizationCode.codeChallenge, s256(pending.verifier));
    if (!authorizationCode || !valid) throw new AppError(400, 'account.sign_in_code', 'This sign-in could not be completed. Try again.');
    // Redeemed here, in-process: the page needs the session the sign-in created, not tokens.
    await authorizationCode.consume();
    ctx.status = 303;
    ctx.redirect(SECURITY_PATH);
  });

  router.get('/signed-out', noStore, async function signedOut(ctx) {
    await pages.render(ctx, 'account/signed-out', { title: 'Not signed in', signInHref: '/account/sign-in' });
  });

  router.get('/security', noStore, requireSession, async function showSecurity(ctx) {
    await renderSecurity(ctx);
  });

  router.get('/security/totp', noStore, requireSession, async function showEnrol(ctx) {
    if (ctx.state.account.totpEnabled) {
      ctx.status = 303;
      ctx.redirect(SECURITY_PATH);
      return;
    }
    await renderEnrol(ctx);
  });

  router.post('/security/totp', noStore, form, requireSession, checkCsrf, async function activate(ctx) {
    const { account } = ctx.state;
    if (account.totpEnabled) return renderSecurity(ctx, { notice: 'Two-step verification is already on.' });
    const code = codeSchema.safeParse(ctx.state.form.code);
    if (!code.success) return renderEnrol(ctx, 'Enter the 6-digit code your app shows for this account.', 400);
    const gate = await factorThrottle.begin(account.id);
    if (!gate.allowed) {
      ctx.set('Retry-After', String(gate.retryAfterSeconds));
      await auditChange(ctx, 'mfa.enrolled', 'failure', 'throttled');
      return renderEnrol(ctx, `Too many wrong codes. Wait ${describeWait(gate.retryAfterSeconds)}, then try again.`, 429);
    }
    const result = await totp.activate(account.id, code.data);
    if (!result.ok && result.reason === 'already_enrolled') {
      await gate.attempt.failed();
      return renderSecurity(ctx, { notice: 'Two-step verification is already on.' });
    }
    if (!result.ok) {
      await gate.attempt.failed();
      await auditChange(ctx, 'mfa.enrolled', 'failure', `code_${result.reason}`);
      return renderEnrol(ctx, 'That code is not right. Check that the app added this account, then enter its current code.', 401);
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

  router.post('/security/recovery-codes', noStore, form, requireSession, checkCsrf, async function regenerate(ctx) {
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

  router.post('/security/totp/remove', noStore, form, requireSession, checkCsrf, async function remove(ctx) {
    const { account } = ctx.state;
    if (!account.totpEnabled) return renderSecurity(ctx, { notice: 'Two-step verification is already off.' });
    const parsed = removeForm.safeParse(ctx.state.form);
    const password = parsed.success ? parsed.data.password : undefined;
    const code = parsed.success && parsed.data.code ? codeSchema.safeParse(parsed.data.code) : undefined;
    if (password) {
      const check = await guardedProof(ctx, () => accounts.verifyPassword(account.id, password), 'That password is not right.');
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
