import { z } from 'zod';

import type { AccountService } from '../accounts/account.service.js';
import type { TotpService } from '../accounts/totp.service.js';
import type { AuditAction } from '../audit/audit-actions.js';
import type { AuditOutcome } from '../audit/audit.service.js';
import type { Config } from '../config/config.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import { describeWait, recoveryCodesText } from '../sign-in/messages.js';
import type { AccountContext, AccountKit, AccountRouter, RenderOptions } from './account-kit.js';
import { ACCOUNT_SECTIONS } from './account-kit.js';

/**
 * Two-step verification in the account centre (/account/security): set up or remove the
 * authenticator app, make new recovery codes. Every change needs a recent authentication and a
 * CSRF token (account-kit.ts), proofs are counted like the same factor on the sign-in pages, and
 * every change is audited (never a code or the password).
 */

const SECURITY_PATH = ACCOUNT_SECTIONS.security.path;
const ENROL_PATH = `${SECURITY_PATH}/totp`;
/** The security page's inputs, as the view names them: a refused form marks and focuses its field. */
const REGEN_CODE = 'regen-code';
const REMOVE_PASSWORD = 'remove-password';
const REMOVE_CODE = 'remove-code';

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

export interface SecurityPagesDeps {
  config: Config;
  accounts: AccountService;
  totp: TotpService;
  limits: SignInLimits;
}

export function registerSecurityPages(router: AccountRouter, kit: AccountKit, deps: SecurityPagesDeps): void {
  const { config, accounts, totp, limits } = deps;
  /** A change to the person's own second factor, in the audit log (never a code or the password). */
  const auditChange = (ctx: AccountContext, action: AuditAction, outcome: AuditOutcome, reason?: string) => kit.audit(ctx, action, outcome, reason ? { reason } : {});
  const refusal = (check: { status: number }, wrong: string) => (check.status === 429 ? 'throttled' : wrong);

  const renderSecurity = async (ctx: AccountContext, options: RenderOptions = {}) => {
    const status = await totp.status(ctx.state.account.id);
    await kit.render(
      ctx,
      'account/security',
      'security',
      {
        title: 'Two-step verification',
        totp: { enabled: status.enabled, enabledAt: status.enabledAt?.toISOString().slice(0, 10), recoveryCodesLeft: status.recoveryCodesLeft },
      },
      options,
    );
  };

  /**
   * The enrolment page. Writes nothing (a GET must not): the secret travels sealed in the form
   * (totp.service.ts); `enrolment` is that sealed value when re-rendering after a wrong code, so
   * the person need not scan again.
   */
  const renderEnrol = async (ctx: AccountContext, options: { error?: string; status?: number; enrolment?: string | undefined } = {}) => {
    const { account } = ctx.state;
    const enrolment = await totp.beginEnrolment({ id: account.id, email: account.email }, { continueFrom: options.enrolment });
    await kit.render(
      ctx,
      'interactions/totp-enrol',
      'security',
      {
        title: 'Set up two-step verification',
        required: false,
        qrCodeDataUrl: enrolment.qrCodeDataUrl,
        otpauthUri: enrolment.otpauthUri,
        secretGroups: enrolment.secret.match(/.{1,4}/g) ?? [enrolment.secret],
        enrolment: enrolment.sealed,
        action: ENROL_PATH,
        cancelHref: SECURITY_PATH,
      },
      { error: options.error, status: options.status },
    );
  };

  const renderCodes = async (ctx: AccountContext, codes: string[]) => {
    await kit.render(ctx, 'interactions/recovery-codes', 'security', {
      title: 'Save your recovery codes',
      codes,
      download: `data:text/plain;charset=utf-8,${encodeURIComponent(recoveryCodesText(config.productName, codes))}`,
      action: `${SECURITY_PATH}/done`,
      continueLabel: "I've saved them",
    });
  };

  const checkCurrentCode = (ctx: AccountContext, code: string) =>
    kit.guardedProof(ctx, 'totp', async () => (await totp.verify(ctx.state.account.id, code)).ok, 'That code is not right. Check your authenticator app and try again.');

  router.get('/security', ...kit.page, async function showSecurity(ctx) {
    await renderSecurity(ctx);
  });

  /** The enrolment page is for accounts without an app; with one, the security page. */
  const unlessEnrolled = async function unlessEnrolled(ctx: AccountContext, next: () => Promise<unknown>) {
    if (!ctx.state.account.totpEnabled) return next();
    kit.redirect(ctx, SECURITY_PATH);
  };

  router.get('/security/totp', kit.noStore, kit.requireSession, unlessEnrolled, kit.requireRecentAuth('security'), async function showEnrol(ctx) {
    await renderEnrol(ctx);
  });

  router.post('/security/totp', ...kit.sensitivePost('security'), async function activate(ctx) {
    const { account } = ctx.state;
    if (account.totpEnabled) return renderSecurity(ctx, { notice: 'Two-step verification is already on.' });
    const enrolment = enrolmentField.safeParse(ctx.state.form.enrolment).data;
    const code = codeSchema.safeParse(ctx.state.form.code);
    if (!code.success) return renderEnrol(ctx, { error: 'Enter the 6-digit code your app shows for this account.', status: 400, enrolment });
    const gate = await limits.limiter.begin([limits.signInFromIp(ctx.ip), limits.factor(account.id, 'totp')]);
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
    kit.log(ctx).info('authenticator app enrolled', { accountId: account.id, during: 'account' });
    await auditChange(ctx, 'mfa.enrolled', 'success');
    return renderCodes(ctx, result.recoveryCodes);
  });

  router.post('/security/done', ...kit.post, async function done(ctx) {
    kit.redirect(ctx, SECURITY_PATH);
  });

  router.post('/security/recovery-codes', ...kit.sensitivePost('security'), async function regenerate(ctx) {
    const { account } = ctx.state;
    if (!account.totpEnabled) return renderSecurity(ctx, { error: 'Set up an authenticator app first.', status: 400 });
    const code = codeSchema.safeParse(ctx.state.form.code);
    if (!code.success) return renderSecurity(ctx, { error: 'Enter the current 6-digit code from your authenticator app to make new recovery codes.', field: REGEN_CODE, status: 400 });
    const check = await checkCurrentCode(ctx, code.data);
    if (!check.ok) {
      await auditChange(ctx, 'mfa.recovery_codes_regenerated', 'failure', refusal(check, 'code_invalid'));
      return renderSecurity(ctx, { error: check.message, field: REGEN_CODE, status: check.status });
    }
    const codes = await totp.regenerateRecoveryCodes(account.id);
    kit.log(ctx).info('recovery codes regenerated', { accountId: account.id });
    await auditChange(ctx, 'mfa.recovery_codes_regenerated', 'success');
    return renderCodes(ctx, codes);
  });

  router.post('/security/totp/remove', ...kit.sensitivePost('security'), async function remove(ctx) {
    const { account } = ctx.state;
    if (!account.totpEnabled) return renderSecurity(ctx, { notice: 'Two-step verification is already off.' });
    const parsed = removeForm.safeParse(ctx.state.form);
    const password = parsed.success ? parsed.data.password : undefined;
    const code = parsed.success && parsed.data.code ? codeSchema.safeParse(parsed.data.code) : undefined;
    if (password) {
      const check = await kit.guardedProof(ctx, 'password', () => accounts.verifyPassword(account.id, password), 'That password is not right.');
      if (!check.ok) {
        kit.log(ctx).info('authenticator removal refused', { accountId: account.id, reason: 'password' });
        await auditChange(ctx, 'mfa.removed', 'failure', refusal(check, 'wrong_password'));
        return renderSecurity(ctx, { error: check.message, field: REMOVE_PASSWORD, status: check.status });
      }
    } else if (code?.success) {
      const check = await checkCurrentCode(ctx, code.data);
      if (!check.ok) {
        await auditChange(ctx, 'mfa.removed', 'failure', refusal(check, 'code_invalid'));
        return renderSecurity(ctx, { error: check.message, field: REMOVE_CODE, status: check.status });
      }
    } else {
      // A code that is not 6 digits is about the code field; nothing at all, about the first field.
      const field = code || !account.hasPassword ? REMOVE_CODE : REMOVE_PASSWORD;
      const error = code ? 'Enter the 6-digit code your authenticator app shows, or your password.' : 'Enter your current password or a current code from your authenticator app.';
      return renderSecurity(ctx, { error, field, status: 400 });
    }
    await totp.remove(account.id);
    kit.log(ctx).info('authenticator app removed', { accountId: account.id });
    await auditChange(ctx, 'mfa.removed', 'success');
    return renderSecurity(ctx, { notice: 'Two-step verification is off. Your authenticator app and recovery codes no longer work.' });
  });
}
