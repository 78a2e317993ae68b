import { z } from 'zod';

import type { AccountView } from '../../accounts/account.service.js';
import { emailSchema } from '../../accounts/account.service.js';
import type { EmailCodePurpose } from '../../accounts/email-code.service.js';
import type { AuditOutcome } from '../../audit/audit.service.js';
import { accountActor } from '../../audit/audit.service.js';
import { codeForm } from '../forms.js';
import { describeWait } from '../messages.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { FlowActions, SignInStrategy } from '../strategy.js';

const emailForm = z.object({ csrf: z.string(), email: emailSchema });

/** The refusals whose wait the page recomputes from the stored resend time. */
const RESEND_WAITS = new Set(['code_sent_recently', 'resend_throttled']);

/**
 * A one-time code by email: as the first factor (passwordless: step `email-code`, the account
 * found by the address), and as the second factor of accounts without an authenticator app.
 */
export function createEmailCodeStrategy(kit: SignInKit): SignInStrategy {
  const { config, accounts, emailCodes, audit, pages } = kit.deps;
  // Shown to people and in the mail: whole minutes, never "0 minutes" for a short TTL.
  const codeMinutes = Math.max(1, Math.ceil(config.emailCode.ttlSeconds / 60));

  /** The code page (GET only: refusals come through the query, see page-errors.ts). */
  const render = async (ctx: SignInContext, purpose: EmailCodePurpose, email: string, stepUp = false) => {
    const base = kit.page(ctx);
    const pending = await emailCodes.pending({ binding: base.uid, purpose });
    const refusal = kit.pageError(ctx);
    // The real time left, from the stored resend time (not the wait the redirect carried).
    const resendWait = pending && pending.resendAfterSeconds > 0 ? pending.resendAfterSeconds : undefined;
    // In seconds under two minutes: "2 minutes" for 61 seconds would overstate the wait.
    const resendText = resendWait ? `You can ask for a new code in ${resendWait < 120 ? `${resendWait} second${resendWait === 1 ? '' : 's'}` : describeWait(resendWait)}.` : undefined;
    let message = refusal?.message;
    if (refusal && RESEND_WAITS.has(refusal.code)) message = resendWait ? `A code was sent moments ago. ${resendText}` : 'You can ask for a new code now.';
    const view = {
      ...base,
      title: 'Enter your code',
      secondFactor: purpose === 'second-factor',
      stepUp,
      email,
      codeMinutes,
      action: purpose === 'sign-in' ? `/interaction/${base.uid}/email-code/verify` : `/interaction/${base.uid}/second-factor/email`,
      resendAction: `/interaction/${base.uid}/email-code/resend`,
      resendText,
      // A second factor by email at a step-up starts with no code sent: the page offers to send
      // one (a POST), rather than mailing on a GET.
      sent: Boolean(pending) || purpose === 'sign-in',
      notice:
        refusal?.notice ? message : pending || purpose === 'second-factor' ? undefined : 'No valid code is waiting for you: it has expired, or a newer one replaced it. Send a new one.',
      error: refusal && !refusal.notice ? message : undefined,
    };
    await pages.render(ctx, 'interactions/email-code', view);
  };

  /** The second-factor page, for the flow's account. */
  const renderSecondFactor = (ctx: SignInContext) => {
    const { account, stepUp } = kit.requireAccount(ctx);
    return render(ctx, 'second-factor', account.email, stepUp);
  };

  /** A refused send, for `flow.fail`. */
  type SendRefusal = { code: 'code_sent_recently' | 'resend_throttled' | 'resend_throttled_ip' | 'resend_throttled_address' | 'mail_delayed'; wait?: number };

  /** Sends the code for a second factor by email (accounts without an authenticator app). */
  const sendSecondFactorCode = async (ctx: SignInContext, account: AccountView): Promise<SendRefusal | undefined> => {
    const binding = ctx.state.interaction.uid;
    const sending = await kit.beginSending(ctx, account.email);
    if (!sending.allowed) return { code: sending.reason === 'throttled_ip' ? 'resend_throttled_ip' : 'resend_throttled_address', wait: sending.retryAfterSeconds };
    const issued = await emailCodes.issue({ email: account.email, accountId: account.id, binding, purpose: 'second-factor' });
    if (!issued.ok) {
      await sending.attempt.released();
      ctx.set('Retry-After', String(issued.retryAfterSeconds));
      return { code: 'resend_throttled', wait: issued.retryAfterSeconds };
    }
    await sending.attempt.failed();
    // Kept when SMTP is down: the outbox delivers it when SMTP is back (before the code expires).
    const sent = await kit.mailCode(ctx, account.email, 'sign-in-code', { code: issued.code, expiresInMinutes: codeMinutes }, issued.expiresAt);
    return sent ? undefined : { code: 'mail_delayed' };
  };

  /**
   * Issues a sign-in code for `email` bound to this interaction and mails it when the address
   * belongs to a usable account. The same writes, limits and answer for unknown and disabled
   * accounts (no enumeration): their code is recorded but can never be redeemed, and not mailed.
   */
  const issueSignInCode = async (
    ctx: SignInContext,
    flow: FlowActions,
    email: string,
  ): Promise<{ ok: true } | { ok: false; code: 'codes_throttled_ip' | 'codes_throttled_address' | 'code_sent_recently'; wait: number }> => {
    const binding = ctx.state.interaction.uid;
    const account = await accounts.findByEmail(email);
    const usable = account && !account.disabled ? account : undefined;
    // Against the account when the address names one; anonymous (the address left out) when not.
    const requested = (outcome: AuditOutcome, reason?: string) =>
      audit.record({ action: 'sign_in.email_code_requested', outcome, actor: account ? accountActor(account) : { type: 'anonymous' }, target: account ? accountActor(account) : undefined, clientId: kit.clientId(ctx), reason });
    const sending = await kit.beginSending(ctx, email);
    if (!sending.allowed) {
      await requested('failure', sending.reason);
      return { ok: false, code: sending.reason === 'throttled_ip' ? 'codes_throttled_ip' : 'codes_throttled_address', wait: sending.retryAfterSeconds };
    }
    const issued = await emailCodes.issue({ email, accountId: usable?.id ?? null, binding, purpose: 'sign-in' });
    if (!issued.ok) {
      await sending.attempt.released();
      ctx.set('Retry-After', String(issued.retryAfterSeconds));
      await requested('failure', 'throttled');
      return { ok: false, code: 'code_sent_recently', wait: issued.retryAfterSeconds };
    }
    await sending.attempt.failed();
    await flow.commit(ctx, { type: 'code_sent', email });
    // NOTE: mailed in the background so the answer takes the same time whether or not an
    // account exists. When SMTP fails the mail stays in the outbox and goes out when SMTP is
    // back; the page says nothing either way (it would tell known addresses from unknown ones).
    const log = kit.log(ctx);
    const background = (delivery: Promise<unknown>) => void delivery.catch((err: unknown) => log.warn('code mail handling failed', { reason: (err as Error).message }));
    if (usable) {
      background(kit.mailCode(ctx, usable.email, 'sign-in-code', { code: issued.code, expiresInMinutes: codeMinutes }, issued.expiresAt));
    } else if (!account && config.emailCode.noAccountMail) {
      background(kit.mailCode(ctx, email, 'no-account', {}, issued.expiresAt));
    }
    log.info('sign-in code requested', { client: ctx.state.interaction.params.client_id });
    await requested('success');
    return { ok: true };
  };

  return {
    id: 'email-code',
    async show(ctx) {
      const { flow } = ctx.state;
      if (flow.step === 'email-code') return render(ctx, 'sign-in', flow.email);
      return renderSecondFactor(ctx);
    },
    /** Entering the second factor by email after a first factor: the code goes out at once. */
    async enter(ctx, flow) {
      if (ctx.state.flow.step !== 'second-factor') return false;
      const { account } = kit.requireAccount(ctx);
      const refusal = await sendSecondFactorCode(ctx, account);
      if (!refusal) return false;
      await flow.fail(ctx, refusal.code, { wait: refusal.wait });
      return true;
    },
    routes: [
      {
        // "Email me a sign-in code" on the login page (passwordless first factor).
        path: '/email-code',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          const parsed = emailForm.safeParse({ csrf: ctx.state.form.csrf, email: ctx.state.form.email });
          if (!parsed.success) return flow.fail(ctx, 'email_required', { restart: true });
          const { email } = parsed.data;
          const outcome = await issueSignInCode(ctx, flow, email);
          if (!outcome.ok) return flow.fail(ctx, outcome.code, { wait: outcome.wait, restart: true, keep: { email } });
          return flow.showCurrentStep(ctx);
        },
      },
      {
        path: '/email-code/verify',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          const { email } = kit.requireStep(ctx, 'email-code');
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'email_code_required');
          const account = await accounts.findByEmail(email);
          const usable = account && !account.disabled ? account : undefined;
          // NOTE: guarded per address, for known and unknown addresses alike, so that the answers to a
          // run of wrong codes (401 … then 429) are the same whoever has the address.
          return kit.guarded(
            ctx,
            { kind: 'email-code', account: { id: usable?.id, email }, auditAction: 'sign_in.email_code' },
            (code, wait) => flow.fail(ctx, code, { wait }),
            async (attempt) => {
              const result = await emailCodes.verify({ binding: ctx.state.interaction.uid, purpose: 'sign-in', code: parsed.data.code });
              if (!result.ok || !usable || result.accountId !== usable.id) {
                await attempt.failed();
                kit.log(ctx).info('sign-in code refused', { reason: result.ok ? 'account' : result.reason, client: ctx.state.interaction.params.client_id });
                const reason = !account ? 'unknown_account' : account.disabled ? 'account_disabled' : result.ok ? 'account_mismatch' : `code_${result.reason}`;
                await (account
                  ? kit.auditFactor(ctx, 'sign_in.email_code', account, 'failure', { reason })
                  : audit.record({ action: 'sign_in.email_code', outcome: 'failure', actor: { type: 'anonymous' }, clientId: kit.clientId(ctx), reason }));
                return flow.fail(ctx, `code_${result.ok ? 'invalid' : result.reason}`);
              }
              await attempt.succeeded();
              await accounts.markEmailVerified(usable.id);
              await kit.auditFactor(ctx, 'sign_in.email_code', usable, 'success');
              return flow.identified(ctx, { ...usable, emailVerified: true }, 'email');
            },
          );
        },
      },
      {
        path: '/email-code/resend',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const state = ctx.state.flow;
          if (ctx.state.interaction.prompt.name === 'login' && state.step === 'email-code') {
            // Same as the first request: throttled per address, mailed only to a usable account.
            const outcome = await issueSignInCode(ctx, flow, state.email);
            if (!outcome.ok) return flow.fail(ctx, outcome.code === 'code_sent_recently' ? 'resend_throttled' : outcome.code === 'codes_throttled_ip' ? 'resend_throttled_ip' : 'resend_throttled_address', { wait: outcome.wait });
            return flow.showCurrentStep(ctx);
          }
          const { account } = kit.requireMethod(ctx, 'email-code');
          const refusal = await sendSecondFactorCode(ctx, account);
          if (refusal) return flow.fail(ctx, refusal.code, { wait: refusal.wait });
          return flow.showCurrentStep(ctx);
        },
      },
      {
        path: '/second-factor/email',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireMethod(ctx, 'email-code');
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'email_code_required');
          return kit.guarded(ctx, { kind: 'email-code', account, auditAction: 'mfa.email_code' }, (code, wait) => flow.fail(ctx, code, { wait }), async (attempt) => {
            const result = await emailCodes.verify({ binding: ctx.state.interaction.uid, purpose: 'second-factor', code: parsed.data.code });
            if (!result.ok || result.accountId !== account.id) {
              await attempt.failed();
              kit.log(ctx).info('second factor failed', { accountId: account.id, method: 'email', reason: result.ok ? 'account' : result.reason });
              await kit.auditFactor(ctx, 'mfa.email_code', account, 'failure', { reason: result.ok ? 'account_mismatch' : `code_${result.reason}` });
              return flow.fail(ctx, `code_${result.ok ? 'invalid' : result.reason}`);
            }
            await attempt.succeeded();
            await accounts.markEmailVerified(account.id);
            kit.log(ctx).info('second factor succeeded', { accountId: account.id, method: 'email' });
            await kit.auditFactor(ctx, 'mfa.email_code', account, 'success');
            return flow.advance(ctx, { type: 'verified', factor: 'email' });
          });
        },
      },
    ],
  };
}
