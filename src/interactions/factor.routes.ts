import type Router from '@koa/router';
import type Provider from 'oidc-provider';
import { z } from 'zod';

import type { AccountService, AccountView } from '../accounts/account.service.js';
import { emailSchema, passwordSchema } from '../accounts/account.service.js';
import type { EmailCodePurpose, EmailCodeService } from '../accounts/email-code.service.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../accounts/password.js';
import type { TotpService } from '../accounts/totp.service.js';
import type { AuditDetails, AuditOutcome, AuditService } from '../audit/audit.service.js';
import { accountActor } from '../audit/audit.service.js';
import type { Config } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import type { PageRenderer } from '../http/render-page.js';
import type { Attempt, Gate } from '../limits/attempt-limiter.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import type { Mailer, MailTemplate } from '../mail/mailer.js';
import type { Factor } from '../oidc/policy.js';
import type { Assurance } from '../oidc/policy.js';
import { assuranceOf, factorsFromAmr, loginResult, mfaReasons, requiredAssurance, secondFactorOptions } from '../oidc/policy.js';
import type { CsrfTokens } from './csrf.js';
import type { InteractionState, InteractionSteps, SignInProgress, Step, StepContext } from './interaction-steps.js';
import { describeWait, readProgress, saveProgress, tooManyAttempts as tooManyFailedAttempts, uniqueFactors } from './interaction-steps.js';

/**
 * Every factor after (or instead of) the password: the sign-in code by email, the authenticator
 * app (TOTP), recovery codes, enrolment when a second factor is required and the account has
 * none, and the password as a second step after a passwordless first one.
 *
 * The rule that holds it together: the provider hears `login` only from `advance`, and `advance`
 * sends it only when the factors done satisfy the policy (src/oidc/policy.ts). No route here
 * finishes a sign-in any other way.
 */

export interface FactorRouteDeps {
  config: Config;
  provider: Provider;
  accounts: AccountService;
  emailCodes: EmailCodeService;
  totp: TotpService;
  limits: SignInLimits;
  mailer: Mailer;
  pages: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  audit: AuditService;
}

/** Six digits; spaces people type or paste in the middle are dropped. */
const codeForm = z.object({
  csrf: z.string(),
  code: z
    .string()
    .max(32)
    .transform((s) => s.replace(/\s+/g, ''))
    .pipe(z.string().regex(/^\d{6}$/)),
});

const recoveryForm = z.object({
  csrf: z.string(),
  code: z
    .string()
    .max(64)
    .transform((s) => s.trim())
    .pipe(z.string().regex(/^[A-Za-z0-9 -]{8,40}$/)),
});

const emailForm = z.object({ csrf: z.string(), email: emailSchema });

const passwordForm = z.object({
  csrf: z.string(),
  password: z.string().min(1).max(1024).refine((s) => !s.includes('\u0000')),
});

/** A new password (required by an administrator), typed twice. Its rules are passwordSchema's. */
const newPasswordForm = z.object({
  csrf: z.string(),
  password: z.string().max(PASSWORD_MAX_LENGTH),
  confirm: z.string().max(PASSWORD_MAX_LENGTH),
});

type Method = 'totp' | 'recovery' | 'email' | 'password' | 'enrol';

interface SecondFactorContext {
  account: AccountView;
  /** Factors already done: the session's (step-up) and this interaction's. */
  factors: Factor[];
  stepUp: boolean;
  /** The level this sign-in must reach (src/oidc/policy.ts). */
  required: Assurance;
}

function acrValuesOf(params: Record<string, unknown>): string[] {
  return typeof params.acr_values === 'string' ? params.acr_values.split(' ').filter(Boolean) : [];
}

const SESSION_ENDED = 'Your sign-in has ended. Go back to the application and sign in again.';
const WRONG_STEP = 'This step of the sign-in is not the current one. Go back to the application and try again.';

export function createFactorFlow(deps: FactorRouteDeps, steps: InteractionSteps) {
  const { config, accounts, emailCodes, totp, limits, mailer, pages, csrf, logger, audit } = deps;
  const { finish, showCurrentStep } = steps;
  const logFor = (ctx: StepContext) => ctx.state.log ?? logger;
  /** One factor check in the audit log, against the account it was for (never the code itself). */
  const auditFactor = (ctx: StepContext, action: string, account: { id: string; email?: string }, outcome: AuditOutcome, extra: { reason?: string; details?: AuditDetails } = {}) => {
    const actor = account.email ? accountActor({ id: account.id, email: account.email }) : ({ type: 'account', id: account.id } as const);
    return audit.record({ action, outcome, actor, target: actor, clientId: String(ctx.state.interaction.params.client_id), ...extra });
  };
  // Shown to people and in the mail: whole minutes, never "0 minutes" for a short TTL.
  const codeMinutes = Math.max(1, Math.ceil(config.emailCode.ttlSeconds / 60));

  const common = (ctx: StepContext) => {
    const { uid } = ctx.state.interaction;
    return {
      uid,
      client: ctx.state.client,
      csrf: csrf.issue(uid),
      abortAction: `/interaction/${uid}/abort`,
      restartAction: `/interaction/${uid}/restart`,
    };
  };

  /** The account and factors a second-factor page works on: from the server-side interaction only. */
  const secondFactorContext = async (ctx: StepContext): Promise<SecondFactorContext> => {
    const { interaction } = ctx.state;
    const progress = readProgress(interaction);
    let accountId: string | undefined;
    let factors: Factor[];
    let stepUp = false;
    if (interaction.prompt.name === 'mfa') {
      // Step-up: the session is signed in with fewer factors than this request needs.
      accountId = interaction.session?.accountId;
      factors = uniqueFactors(factorsFromAmr(interaction.session?.amr as string[] | undefined), progress?.factors ?? []);
      stepUp = true;
    } else if (interaction.prompt.name === 'login' && progress?.accountId && progress.step !== 'email-code') {
      accountId = progress.accountId;
      factors = progress.factors;
    } else {
      throw new AppError(400, 'interaction.wrong_step', WRONG_STEP);
    }
    const account = accountId ? await accounts.findById(accountId) : undefined;
    if (!account || account.disabled) throw new AppError(400, 'interaction.no_account', SESSION_ENDED);
    return { account, factors, stepUp, required: requiredFor(ctx, account) };
  };

  /** The level the policy asks of this sign-in, for this account. */
  const requiredFor = (ctx: StepContext, account: AccountView): Assurance =>
    requiredAssurance({ account, clientRequiresMfa: ctx.state.client.requiresMfa, acrValues: acrValuesOf(ctx.state.interaction.params) }, config);

  const methodFor = (context: SecondFactorContext, requested: unknown): Method => {
    const options = secondFactorOptions(context.account, context.factors, config, context.required);
    if (options.totp) return requested === 'recovery' ? 'recovery' : 'totp';
    if (options.email) return 'email';
    if (options.password) return 'password';
    return 'enrol';
  };

  const requireMethod = async (ctx: StepContext, method: Method): Promise<SecondFactorContext> => {
    const context = await secondFactorContext(ctx);
    const available = methodFor(context, method);
    if (available !== method) throw new AppError(400, 'interaction.wrong_step', WRONG_STEP);
    return context;
  };

  // Pages ----------------------------------------------------------------------------------

  const renderEmailCode = async (
    ctx: StepContext,
    options: { purpose: EmailCodePurpose; email: string; error?: string | undefined; notice?: string | undefined; status?: number; stepUp?: boolean },
  ) => {
    const base = common(ctx);
    const pending = await emailCodes.pending({ binding: base.uid, purpose: options.purpose });
    await pages.render(
      ctx,
      'interactions/email-code',
      {
        ...base,
        title: 'Enter your code',
        secondFactor: options.purpose === 'second-factor',
        stepUp: options.stepUp ?? false,
        email: options.email,
        codeMinutes,
        action: options.purpose === 'sign-in' ? `/interaction/${base.uid}/email-code/verify` : `/interaction/${base.uid}/second-factor/email`,
        resendAction: `/interaction/${base.uid}/email-code/resend`,
        // A second factor by email at a step-up starts with no code sent: the page offers to send
        // one (a POST), rather than mailing on a GET.
        sent: Boolean(pending) || options.purpose === 'sign-in',
        // A code that could not be mailed was discarded: say so, and offer a new one.
        notice:
          options.notice ??
          (pending || options.purpose === 'second-factor' ? undefined : 'No valid code is waiting for you: it could not be sent, or it has expired. Send a new one.'),
        error: options.error,
      },
      options.status ?? 200,
    );
  };

  const renderTotp = async (ctx: StepContext, context: SecondFactorContext, mode: 'totp' | 'recovery', error?: string, status = 200) => {
    const base = common(ctx);
    await pages.render(
      ctx,
      'interactions/totp',
      {
        ...base,
        title: mode === 'totp' ? 'Two-step verification' : 'Use a recovery code',
        mode,
        stepUp: context.stepUp,
        email: context.account.email,
        action: `/interaction/${base.uid}/second-factor/${mode}`,
        switchHref: `/interaction/${base.uid}${mode === 'totp' ? '?method=recovery' : ''}`,
        error,
      },
      status,
    );
  };

  const renderPassword = async (ctx: StepContext, context: SecondFactorContext, error?: string, status = 200) => {
    const base = common(ctx);
    await pages.render(
      ctx,
      'interactions/password',
      { ...base, title: 'Enter your password', stepUp: context.stepUp, email: context.account.email, action: `/interaction/${base.uid}/second-factor/password`, error },
      status,
    );
  };

  /**
   * Forced enrolment. Writes nothing (the page is also shown on a GET): the secret travels sealed
   * in the form (totp.service.ts); `enrolment` is that sealed value when re-rendering after a
   * wrong code, so the person need not scan again.
   */
  const renderEnrol = async (ctx: StepContext, context: SecondFactorContext, error?: string, status = 200, enrolment?: string) => {
    const base = common(ctx);
    const fresh = await totp.beginEnrolment({ id: context.account.id, email: context.account.email }, { continueFrom: enrolment });
    await pages.render(
      ctx,
      'interactions/totp-enrol',
      {
        ...base,
        title: 'Set up two-step verification',
        stepUp: context.stepUp,
        required: true,
        qrCodeDataUrl: fresh.qrCodeDataUrl,
        secretGroups: fresh.secret.match(/.{1,4}/g) ?? [fresh.secret],
        enrolment: fresh.sealed,
        action: `/interaction/${base.uid}/second-factor/enrol`,
        error,
      },
      status,
    );
  };

  const renderRecoveryCodes = async (ctx: StepContext, codes: string[] | undefined) => {
    const base = common(ctx);
    await pages.render(ctx, 'interactions/recovery-codes', {
      ...base,
      title: 'Save your recovery codes',
      codes,
      download: codes ? `data:text/plain;charset=utf-8,${encodeURIComponent(recoveryCodesText(config.productName, codes))}` : undefined,
      action: `/interaction/${base.uid}/second-factor/continue`,
    });
  };

  const renderNewPassword = async (ctx: StepContext, context: SecondFactorContext, errors: { password?: string; confirm?: string } = {}, status = 200) => {
    const base = common(ctx);
    await pages.render(
      ctx,
      'interactions/new-password',
      {
        ...base,
        title: 'Choose a new password',
        stepUp: context.stepUp,
        email: context.account.email,
        minLength: PASSWORD_MIN_LENGTH,
        maxLength: PASSWORD_MAX_LENGTH,
        action: `/interaction/${base.uid}/new-password`,
        errors,
      },
      status,
    );
  };

  /** The new-password step, for this interaction's account only (from the server-side progress). */
  const newPasswordContext = async (ctx: StepContext): Promise<SecondFactorContext & { progress: SignInProgress }> => {
    const context = await secondFactorContext(ctx);
    const progress = readProgress(ctx.state.interaction);
    if (progress?.step !== 'new-password' || progress.accountId !== context.account.id) {
      throw new AppError(400, 'interaction.wrong_step', WRONG_STEP);
    }
    return { ...context, progress };
  };

  /** The page for the current second-factor step (GET). */
  const showSecondFactor = async (ctx: StepContext) => {
    const context = await secondFactorContext(ctx);
    const progress = readProgress(ctx.state.interaction);
    if (progress?.step === 'new-password') return renderNewPassword(ctx, await newPasswordContext(ctx));
    if (progress?.step === 'recovery-codes') return renderRecoveryCodes(ctx, undefined);
    const method = methodFor(context, ctx.query.method);
    if (method === 'totp' || method === 'recovery') return renderTotp(ctx, context, method);
    if (method === 'email') return renderEmailCode(ctx, { purpose: 'second-factor', email: context.account.email, stepUp: context.stepUp });
    if (method === 'password') return renderPassword(ctx, context);
    return renderEnrol(ctx, context);
  };

  // Shared steps -----------------------------------------------------------------------------

  /** What a refused check says, with Retry-After set: the IP's limit, or the factor's own. */
  const tooManyAttempts = (ctx: StepContext, retryAfterSeconds: number, fromIp: boolean, method: Method) => {
    ctx.set('Retry-After', String(retryAfterSeconds));
    if (fromIp || method === 'password') return tooManyFailedAttempts(fromIp, retryAfterSeconds);
    return `Too many wrong codes. Wait ${describeWait(retryAfterSeconds)}, then try again.`;
  };

  /**
   * The gates a check passes: the client IP's sign-in failures, and the factor's own counter.
   * NOTE: one counter per factor, so that guessing one (say, email codes, which anyone who knows
   * an address can ask for) never delays the owner's others (the authenticator app). Email codes
   * and passwords are counted per address, known or not, so a delay says nothing about accounts.
   */
  const gatesFor = (ctx: StepContext, method: Method, account: { id?: string | undefined; email: string }): Gate[] => {
    const ip = limits.signInFromIp(ctx.ip);
    if (method === 'email') return [ip, limits.emailCode(account.email)];
    if (method === 'password') return [ip, limits.password(account.email)];
    if (!account.id) throw new Error(`a ${method} check needs an account`);
    return [ip, limits.factor(account.id, method === 'recovery' ? 'recovery' : 'totp')];
  };

  /** The gates of mailing a code: from this IP, to this address, and to this address from this IP. */
  const sendingGates = (ctx: StepContext, email: string): Gate[] => [
    limits.codeSendsFromIp(ctx.ip),
    limits.codesToAddress(email),
    limits.codesToAddressFromIp(email, ctx.ip),
  ];

  /**
   * Reserves the sending of one code (counted once `sent()` is called, released otherwise), or
   * says how long to wait and why. The same for known and unknown addresses.
   */
  const beginSending = async (ctx: StepContext, email: string) => {
    const gates = sendingGates(ctx, email);
    const verdict = await limits.limiter.begin(gates);
    if (verdict.allowed) return verdict;
    ctx.set('Retry-After', String(verdict.retryAfterSeconds));
    const fromIp = verdict.key === gates[0]?.key;
    const message = fromIp
      ? `Too many codes were asked for from your network. You can ask for a new one in ${describeWait(verdict.retryAfterSeconds)}.`
      : `Too many codes were sent to this address. You can ask for a new one in ${describeWait(verdict.retryAfterSeconds)}.`;
    return { allowed: false as const, retryAfterSeconds: verdict.retryAfterSeconds, message, reason: fromIp ? 'throttled_ip' : 'throttled_address' };
  };

  /**
   * Mails a code. A failure is logged (by the mailer, without the code); with `discard`, the
   * code is withdrawn too, so nothing half-done stays behind and the caller shows a retry message
   * (only where the account is known already: a second factor).
   */
  const mailCode = async (ctx: StepContext, to: string, template: MailTemplate, locals: Record<string, unknown>, discard?: () => Promise<void>) => {
    try {
      await mailer.sendTemplate(to, template, { productName: config.productName, email: to, ...locals });
      return true;
    } catch (err) {
      // The mailer logged delivery failures itself (without the code); name the error here so a
      // programming error is not mistaken for a delivery problem.
      logFor(ctx).warn('code mail not delivered', { template, error: (err as Error).name, reason: (err as Error).message, client: ctx.state.interaction.params.client_id });
      if (discard) await discard();
      return false;
    }
  };

  /** Sends the code for a second factor by email (accounts without an authenticator app). */
  const sendSecondFactorCode = async (ctx: StepContext, account: AccountView): Promise<{ error?: string; notice?: string; status?: number }> => {
    const binding = ctx.state.interaction.uid;
    const sending = await beginSending(ctx, account.email);
    if (!sending.allowed) return { notice: sending.message, status: 429 };
    const issued = await emailCodes.issue({ email: account.email, accountId: account.id, binding, purpose: 'second-factor' });
    if (!issued.ok) {
      await sending.attempt.released();
      ctx.set('Retry-After', String(issued.retryAfterSeconds));
      return { notice: `A code was sent moments ago. You can ask for a new one in ${describeWait(issued.retryAfterSeconds)}.`, status: 429 };
    }
    await sending.attempt.failed();
    const sent = await mailCode(ctx, account.email, 'sign-in-code', { code: issued.code, expiresInMinutes: codeMinutes }, () =>
      emailCodes.discard({ binding, purpose: 'second-factor' }),
    );
    return sent ? {} : { error: 'We could not send the email just now. Wait a moment, then send a new code.', status: 503 };
  };

  /**
   * After a verified factor: finish the sign-in if the policy is satisfied, otherwise move to the
   * second-factor step. The only place that tells the provider someone is signed in.
   */
  const advance = async (ctx: StepContext, accountId: string, factors: Factor[]) => {
    const { interaction, client } = ctx.state;
    const account = await accounts.findById(accountId);
    if (!account || account.disabled) throw new AppError(400, 'interaction.no_account', SESSION_ENDED);
    const input = { account, clientRequiresMfa: client.requiresMfa, acrValues: acrValuesOf(interaction.params) };
    const reasons = mfaReasons(input, config);
    const required = requiredAssurance(input, config);
    // Done when the factors reach the level asked for; a step-up (mfa prompt) never ends with
    // fewer factors than the session already had, since `factors` includes the session's.
    if (assuranceOf(factors) >= required) {
      // NOTE: every factor is done, but an administrator asked for a new password: the provider
      // hears `login` only after it is set (setNewPassword comes back here).
      if (account.passwordResetRequired) {
        await saveProgress(interaction, { accountId, factors, step: 'new-password' });
        logFor(ctx).info('new password required', { accountId, client: interaction.params.client_id });
        return showCurrentStep(ctx);
      }
      const login = loginResult(accountId, factors, config);
      logFor(ctx).info('sign-in succeeded', { accountId, amr: login.amr, acr: login.acr, client: interaction.params.client_id });
      return finish(ctx, { login });
    }
    await saveProgress(interaction, { accountId, factors, step: 'second-factor' });
    logFor(ctx).info('second factor required', { accountId, reasons, client: interaction.params.client_id });
    const options = secondFactorOptions(account, factors, config, required);
    if (options.email) {
      const outcome = await sendSecondFactorCode(ctx, account);
      if (outcome.error) return renderEmailCode(ctx, { purpose: 'second-factor', email: account.email, ...outcome });
    }
    return showCurrentStep(ctx);
  };

  /**
   * Runs one guarded check: reserved at the client IP's gate and the factor's own before it runs
   * (src/limits), refused with a wait after repeated failures.
   */
  const guarded = async (
    ctx: StepContext,
    check: { method: Method; account: { id?: string | undefined; email: string }; auditAction: string },
    onRefused: (message: string) => Promise<void>,
    verify: (attempt: Attempt) => Promise<void>,
  ) => {
    const gates = gatesFor(ctx, check.method, check.account);
    const verdict = await limits.limiter.begin(gates);
    if (!verdict.allowed) {
      const fromIp = verdict.key === gates[0]?.key;
      logFor(ctx).info('second factor delayed', { accountId: check.account.id, method: check.method, limit: fromIp ? 'ip' : 'factor', retryAfterSeconds: verdict.retryAfterSeconds });
      const reason = fromIp ? 'throttled_ip' : 'throttled';
      await (check.account.id
        ? auditFactor(ctx, check.auditAction, { id: check.account.id }, 'failure', { reason })
        : audit.record({ action: check.auditAction, outcome: 'failure', actor: { type: 'anonymous' }, clientId: String(ctx.state.interaction.params.client_id), reason }));
      return onRefused(tooManyAttempts(ctx, verdict.retryAfterSeconds, fromIp, check.method));
    }
    return verify(verdict.attempt);
  };

  // Routes ----------------------------------------------------------------------------------

  /**
   * Issues a sign-in code for `email` bound to this interaction and mails it when the address
   * belongs to a usable account. The same writes, limits and answer for unknown and disabled
   * accounts (no enumeration): their code is recorded but can never be redeemed, and not mailed.
   */
  const issueSignInCode = async (ctx: StepContext, email: string): Promise<{ ok: true } | { ok: false; message: string }> => {
    const binding = ctx.state.interaction.uid;
    const account = await accounts.findByEmail(email);
    const usable = account && !account.disabled ? account : undefined;
    // Against the account when the address names one; anonymous (the address left out) when not.
    const requested = (outcome: AuditOutcome, reason?: string) =>
      audit.record({ action: 'sign_in.email_code_requested', outcome, actor: account ? accountActor(account) : { type: 'anonymous' }, target: account ? accountActor(account) : undefined, clientId: String(ctx.state.interaction.params.client_id), reason });
    const sending = await beginSending(ctx, email);
    if (!sending.allowed) {
      await requested('failure', sending.reason);
      return { ok: false, message: sending.message };
    }
    const issued = await emailCodes.issue({ email, accountId: usable?.id ?? null, binding, purpose: 'sign-in' });
    if (!issued.ok) {
      await sending.attempt.released();
      ctx.set('Retry-After', String(issued.retryAfterSeconds));
      await requested('failure', 'throttled');
      return { ok: false, message: `A code was sent to this address moments ago. You can ask for a new one in ${describeWait(issued.retryAfterSeconds)}.` };
    }
    await sending.attempt.failed();
    await saveProgress(ctx.state.interaction, { factors: [], step: 'email-code', email });
    const expiresInMinutes = codeMinutes;
    // NOTE: mailed in the background so the answer takes the same time whether or not an
    // account exists. A failed delivery is logged and the code kept: discarding it only for
    // addresses that were mailed would tell known addresses from unknown ones (the page would
    // say "no valid code is waiting" for those alone).
    const log = logFor(ctx);
    const background = (delivery: Promise<unknown>) =>
      void delivery.catch((err: unknown) => log.warn('code mail handling failed', { reason: (err as Error).message }));
    if (usable) {
      background(mailCode(ctx, usable.email, 'sign-in-code', { code: issued.code, expiresInMinutes }));
    } else if (!account && config.emailCode.noAccountMail) {
      background(mailCode(ctx, email, 'no-account', {}));
    }
    log.info('sign-in code requested', { client: ctx.state.interaction.params.client_id });
    await requested('success');
    return { ok: true };
  };

  /** "Email me a sign-in code" on the login page (passwordless first factor). */
  const sendSignInCode: Step = async function sendSignInCode(ctx) {
    const parsed = emailForm.safeParse({ csrf: ctx.state.form.csrf, email: ctx.state.form.email });
    if (!parsed.success) return renderLoginAgain(ctx, { error: 'Enter your email address to get a sign-in code.', status: 400 });
    const { email } = parsed.data;
    const outcome = await issueSignInCode(ctx, email);
    if (!outcome.ok) return renderLoginAgain(ctx, { email, error: outcome.message, status: 429 });
    return showCurrentStep(ctx);
  };

  const verifySignInCode: Step = async function verifySignInCode(ctx) {
    const progress = readProgress(ctx.state.interaction);
    if (progress?.step !== 'email-code' || !progress.email) throw new AppError(400, 'interaction.wrong_step', WRONG_STEP);
    const email = progress.email;
    const parsed = codeForm.safeParse(ctx.state.form);
    if (!parsed.success) return renderEmailCode(ctx, { purpose: 'sign-in', email, error: 'Enter the 6-digit code from the email.', status: 400 });
    const account = await accounts.findByEmail(email);
    const usable = account && !account.disabled ? account : undefined;
    // NOTE: guarded per address, for known and unknown addresses alike, so that the answers to a
    // run of wrong codes (401 … then 429) are the same whoever has the address.
    return guarded(
      ctx,
      { method: 'email', account: { id: usable?.id, email }, auditAction: 'sign_in.email_code' },
      (message) => renderEmailCode(ctx, { purpose: 'sign-in', email, error: message, status: 429 }),
      async (attempt) => {
        const result = await emailCodes.verify({ binding: ctx.state.interaction.uid, purpose: 'sign-in', code: parsed.data.code });
        if (!result.ok || !usable || result.accountId !== usable.id) {
          await attempt.failed();
          logFor(ctx).info('sign-in code refused', { reason: result.ok ? 'account' : result.reason, client: ctx.state.interaction.params.client_id });
          const reason = !account ? 'unknown_account' : account.disabled ? 'account_disabled' : result.ok ? 'account_mismatch' : `code_${result.reason}`;
          await (account
            ? auditFactor(ctx, 'sign_in.email_code', account, 'failure', { reason })
            : audit.record({ action: 'sign_in.email_code', outcome: 'failure', actor: { type: 'anonymous' }, clientId: String(ctx.state.interaction.params.client_id), reason }));
          return renderEmailCode(ctx, { purpose: 'sign-in', email, error: codeError(result.ok ? 'invalid' : result.reason), status: 401 });
        }
        await attempt.succeeded();
        await accounts.markEmailVerified(usable.id);
        await auditFactor(ctx, 'sign_in.email_code', usable, 'success');
        return advance(ctx, usable.id, ['email']);
      },
    );
  };

  const resendCode: Step = async function resendCode(ctx) {
    const { interaction } = ctx.state;
    const progress = readProgress(interaction);
    if (interaction.prompt.name === 'login' && progress?.step === 'email-code' && progress.email) {
      // Same as the first request: throttled per address, mailed only to a usable account.
      const outcome = await issueSignInCode(ctx, progress.email);
      if (!outcome.ok) return renderEmailCode(ctx, { purpose: 'sign-in', email: progress.email, notice: outcome.message, status: 429 });
      return showCurrentStep(ctx);
    }
    const context = await requireMethod(ctx, 'email');
    const outcome = await sendSecondFactorCode(ctx, context.account);
    if (outcome.error || outcome.notice) {
      return renderEmailCode(ctx, { purpose: 'second-factor', email: context.account.email, stepUp: context.stepUp, ...outcome });
    }
    return showCurrentStep(ctx);
  };

  const verifyTotp: Step = async function verifyTotp(ctx) {
    const context = await requireMethod(ctx, 'totp');
    const parsed = codeForm.safeParse(ctx.state.form);
    if (!parsed.success) return renderTotp(ctx, context, 'totp', 'Enter the 6-digit code from your authenticator app.', 400);
    const { account } = context;
    return guarded(ctx, { method: 'totp', account, auditAction: 'mfa.totp' }, (message) => renderTotp(ctx, context, 'totp', message, 429), async (attempt) => {
      const result = await totp.verify(account.id, parsed.data.code);
      if (!result.ok) {
        await attempt.failed();
        logFor(ctx).info('second factor failed', { accountId: account.id, method: 'totp', reason: result.reason });
        await auditFactor(ctx, 'mfa.totp', account, 'failure', { reason: `code_${result.reason}` });
        const message = result.reason === 'replayed' ? 'That code was already used. Wait for the next code in your app.' : 'That code is not right. Check your authenticator app and try again.';
        return renderTotp(ctx, context, 'totp', message, 401);
      }
      await attempt.succeeded();
      logFor(ctx).info('second factor succeeded', { accountId: account.id, method: 'totp' });
      await auditFactor(ctx, 'mfa.totp', account, 'success');
      return advance(ctx, account.id, uniqueFactors(context.factors, ['totp']));
    });
  };

  const verifyRecovery: Step = async function verifyRecovery(ctx) {
    const context = await requireMethod(ctx, 'recovery');
    const parsed = recoveryForm.safeParse(ctx.state.form);
    if (!parsed.success) return renderTotp(ctx, context, 'recovery', 'Enter one of your recovery codes.', 400);
    const { account } = context;
    return guarded(ctx, { method: 'recovery', account, auditAction: 'mfa.recovery_code' }, (message) => renderTotp(ctx, context, 'recovery', message, 429), async (attempt) => {
      const result = await totp.verifyRecoveryCode(account.id, parsed.data.code);
      if (!result.ok) {
        await attempt.failed();
        logFor(ctx).info('second factor failed', { accountId: account.id, method: 'recovery', reason: result.reason });
        await auditFactor(ctx, 'mfa.recovery_code', account, 'failure', { reason: `code_${result.reason}` });
        return renderTotp(ctx, context, 'recovery', 'That recovery code is not valid, or it was already used.', 401);
      }
      await attempt.succeeded();
      logFor(ctx).info('second factor succeeded', { accountId: account.id, method: 'recovery', recoveryCodesLeft: result.remaining });
      await auditFactor(ctx, 'mfa.recovery_code', account, 'success', { details: { recoveryCodesLeft: result.remaining } });
      return advance(ctx, account.id, uniqueFactors(context.factors, ['recovery']));
    });
  };

  const verifySecondFactorCode: Step = async function verifySecondFactorCode(ctx) {
    const context = await requireMethod(ctx, 'email');
    const { account } = context;
    const render = (error: string, status: number) => renderEmailCode(ctx, { purpose: 'second-factor', email: account.email, stepUp: context.stepUp, error, status });
    const parsed = codeForm.safeParse(ctx.state.form);
    if (!parsed.success) return render('Enter the 6-digit code from the email.', 400);
    return guarded(ctx, { method: 'email', account, auditAction: 'mfa.email_code' }, (message) => render(message, 429), async (attempt) => {
      const result = await emailCodes.verify({ binding: ctx.state.interaction.uid, purpose: 'second-factor', code: parsed.data.code });
      if (!result.ok || result.accountId !== account.id) {
        await attempt.failed();
        logFor(ctx).info('second factor failed', { accountId: account.id, method: 'email', reason: result.ok ? 'account' : result.reason });
        await auditFactor(ctx, 'mfa.email_code', account, 'failure', { reason: result.ok ? 'account_mismatch' : `code_${result.reason}` });
        return render(codeError(result.ok ? 'invalid' : result.reason), 401);
      }
      await attempt.succeeded();
      await accounts.markEmailVerified(account.id);
      logFor(ctx).info('second factor succeeded', { accountId: account.id, method: 'email' });
      await auditFactor(ctx, 'mfa.email_code', account, 'success');
      return advance(ctx, account.id, uniqueFactors(context.factors, ['email']));
    });
  };

  const verifySecondPassword: Step = async function verifySecondPassword(ctx) {
    const context = await requireMethod(ctx, 'password');
    const parsed = passwordForm.safeParse(ctx.state.form);
    if (!parsed.success) return renderPassword(ctx, context, 'Enter your password.', 400);
    const { account } = context;
    return guarded(ctx, { method: 'password', account, auditAction: 'mfa.password' }, (message) => renderPassword(ctx, context, message, 429), async (attempt) => {
      if (!(await accounts.verifyPassword(account.id, parsed.data.password))) {
        await attempt.failed();
        logFor(ctx).info('second factor failed', { accountId: account.id, method: 'password' });
        await auditFactor(ctx, 'mfa.password', account, 'failure', { reason: 'wrong_password' });
        return renderPassword(ctx, context, 'That password is not right.', 401);
      }
      await attempt.succeeded();
      logFor(ctx).info('second factor succeeded', { accountId: account.id, method: 'password' });
      await auditFactor(ctx, 'mfa.password', account, 'success');
      return advance(ctx, account.id, uniqueFactors(context.factors, ['pwd']));
    });
  };

  /** Forced enrolment: the policy needs a second factor and the account has none it may use. */
  const activateTotp: Step = async function activateTotp(ctx) {
    const context = await requireMethod(ctx, 'enrol');
    // The sealed secret from the enrolment form; totp.activate opens and checks it.
    const enrolment = z.string().max(2048).safeParse(ctx.state.form.enrolment).data;
    const parsed = codeForm.safeParse(ctx.state.form);
    if (!parsed.success) return renderEnrol(ctx, context, 'Enter the 6-digit code your app shows for this account.', 400, enrolment);
    const { account } = context;
    return guarded(ctx, { method: 'enrol', account, auditAction: 'mfa.enrolled' }, (message) => renderEnrol(ctx, context, message, 429, enrolment), async (attempt) => {
      const result = await totp.activate(account.id, parsed.data.code, enrolment ?? '');
      if (!result.ok && result.reason === 'already_enrolled') {
        // Finished in another tab a moment ago: the page for the current step now asks for a code.
        // Counted as a failure (conservative): only a verified code may reset the count.
        await attempt.failed();
        return showCurrentStep(ctx);
      }
      if (!result.ok) {
        await attempt.failed();
        await auditFactor(ctx, 'mfa.enrolled', account, 'failure', { reason: `code_${result.reason}`, details: { during: 'sign-in' } });
        if (result.reason === 'expired') {
          // A new secret: the old page can no longer be activated.
          return renderEnrol(ctx, context, 'This setup page has expired. Scan the new QR code (or enter the new key), then enter the code the app shows.', 400);
        }
        return renderEnrol(ctx, context, 'That code is not right. Check that the app added this account, then enter its current code.', 401, enrolment);
      }
      await attempt.succeeded();
      logFor(ctx).info('authenticator app enrolled', { accountId: account.id, during: 'sign-in' });
      await auditFactor(ctx, 'mfa.enrolled', account, 'success', { details: { during: 'sign-in' } });
      const progress: SignInProgress = { accountId: account.id, factors: uniqueFactors(context.factors, ['totp']), step: 'recovery-codes' };
      await saveProgress(ctx.state.interaction, progress);
      // Shown in this response only: the codes are stored hashed and cannot be shown again.
      return renderRecoveryCodes(ctx, result.recoveryCodes);
    });
  };

  const continueAfterRecoveryCodes: Step = async function continueAfterRecoveryCodes(ctx) {
    const progress = readProgress(ctx.state.interaction);
    if (progress?.step !== 'recovery-codes' || !progress.accountId) throw new AppError(400, 'interaction.wrong_step', WRONG_STEP);
    return advance(ctx, progress.accountId, progress.factors);
  };

  /** The new password an administrator asked for; then the sign-in finishes as it would have. */
  const setNewPassword: Step = async function setNewPassword(ctx) {
    const context = await newPasswordContext(ctx);
    const { account, progress } = context;
    const render = (errors: { password?: string; confirm?: string }) => renderNewPassword(ctx, context, errors, 400);
    const parsed = newPasswordForm.safeParse(ctx.state.form);
    if (!parsed.success) return render({ password: 'Enter a new password, then the same password again.' });
    const { password, confirm } = parsed.data;
    const rule = passwordSchema.safeParse(password);
    if (!rule.success) return render({ password: `The new password ${rule.error.issues[0]?.message ?? 'is not allowed'}.` });
    if (confirm !== password) return render({ confirm: 'The two passwords are not the same. Type the new password again.' });
    // A reset that keeps the old password would not be one.
    if (account.hasPassword && (await accounts.verifyPassword(account.id, password))) {
      return render({ password: 'Choose a password different from your current one.' });
    }
    await accounts.changePassword(account.id, password);
    logFor(ctx).info('password changed', { accountId: account.id, during: 'sign-in' });
    await auditFactor(ctx, 'user.password_changed', account, 'success', { details: { during: 'sign-in', required: true } });
    return advance(ctx, account.id, progress.factors);
  };

  /** "Use another account" / "back": forget this interaction's progress and start again. */
  const restart: Step = async function restart(ctx) {
    await saveProgress(ctx.state.interaction, undefined);
    return showCurrentStep(ctx);
  };

  // Set by the interaction router: re-renders its login page (the email field is shared).
  let renderLoginAgain: (ctx: StepContext, options: { email?: string; error: string; status: number }) => Promise<void> = () => {
    throw new Error('login page renderer not set');
  };

  function register(router: Router<InteractionState>, chain: { post(...route: Step[]): Step[]; login: Step; loginOrMfa: Step }) {
    const { post, login, loginOrMfa } = chain;
    router.post('/:uid/email-code', ...post(login, sendSignInCode));
    router.post('/:uid/email-code/verify', ...post(login, verifySignInCode));
    router.post('/:uid/email-code/resend', ...post(loginOrMfa, resendCode));
    router.post('/:uid/second-factor/totp', ...post(loginOrMfa, verifyTotp));
    router.post('/:uid/second-factor/recovery', ...post(loginOrMfa, verifyRecovery));
    router.post('/:uid/second-factor/email', ...post(loginOrMfa, verifySecondFactorCode));
    router.post('/:uid/second-factor/password', ...post(loginOrMfa, verifySecondPassword));
    router.post('/:uid/second-factor/enrol', ...post(loginOrMfa, activateTotp));
    router.post('/:uid/second-factor/continue', ...post(loginOrMfa, continueAfterRecoveryCodes));
    router.post('/:uid/new-password', ...post(loginOrMfa, setNewPassword));
    router.post('/:uid/restart', ...post(login, restart));
  }

  return {
    advance,
    register,
    showSecondFactor,
    renderEmailCode,
    setLoginRenderer(fn: typeof renderLoginAgain) {
      renderLoginAgain = fn;
    },
  };
}

function codeError(reason: 'invalid' | 'expired' | 'exhausted' | 'missing'): string {
  switch (reason) {
    case 'expired':
      return 'This code has expired. Send a new one.';
    case 'exhausted':
      return 'Too many wrong tries for this code. Send a new one.';
    case 'missing':
      return 'This code is no longer valid (a newer one may have been sent). Use the latest code, or send a new one.';
    default:
      return 'That code is not right. Check the email and try again.';
  }
}

export function recoveryCodesText(productName: string, codes: string[]): string {
  return [
    `${productName} recovery codes`,
    '',
    'Each code works once, when you cannot use your authenticator app.',
    'Keep them somewhere safe, like a password manager.',
    '',
    ...codes,
    '',
  ].join('\n');
}
