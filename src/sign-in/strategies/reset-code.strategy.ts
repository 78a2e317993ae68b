import { codeForm } from '../forms.js';
import { codeError, tooManyCodes } from '../messages.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';
import { requestResetCode, requireResetEnabled } from './reset-request.strategy.js';

interface CodePage {
  error?: string | undefined;
  notice?: string | undefined;
  status?: number;
}

/**
 * "Check your inbox": the step `reset-code`. The 6-digit code from the reset mail proves the
 * mailbox; the service then gives this interaction a grant to set the new password (kept in the
 * interaction record, never in the page). Unknown addresses get the same page and the same
 * refusals: their code exists but can never be redeemed.
 */
export function createResetCodeStrategy(kit: SignInKit): SignInStrategy {
  const { passwordReset, pages } = kit.deps;
  // Shown to people and in the mail: whole minutes, never "0 minutes" for a short TTL.
  const codeMinutes = Math.max(1, Math.ceil(kit.config.passwordReset.ttlSeconds / 60));

  /** Every page of this step (and every refusal) is rendered here. */
  const render = async (ctx: SignInContext, options: CodePage = {}) => {
    const { email } = kit.requireStep(ctx, 'reset-code');
    const base = kit.page(ctx);
    const view = {
      ...base,
      title: 'Check your email',
      email,
      codeMinutes,
      action: `/interaction/${base.uid}/reset/code`,
      resendAction: `/interaction/${base.uid}/reset/resend`,
      error: options.error,
      notice: options.notice,
    };
    await pages.render(ctx, 'interactions/reset-code', view, options.status ?? 200);
  };

  return {
    id: 'reset-code',
    show(ctx) {
      requireResetEnabled(kit);
      return render(ctx, ctx.query.sent === '1' ? { notice: 'We sent a new code. Use the latest one.' } : {});
    },
    routes: [
      {
        path: '/reset/code',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          requireResetEnabled(kit);
          const { flowId } = kit.requireStep(ctx, 'reset-code');
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return render(ctx, { error: 'Enter the 6-digit code from the email.', status: 400 });
          const result = await passwordReset.verifyCode({ flowId, code: parsed.data.code, ip: ctx.ip });
          if (!result.ok && result.reason === 'throttled') {
            ctx.set('Retry-After', String(result.retryAfterSeconds));
            return render(ctx, { error: tooManyCodes(result.retryAfterSeconds), status: 429 });
          }
          if (!result.ok) return render(ctx, { error: codeError(result.reason), status: 401 });
          await flow.commit(ctx, { type: 'reset_verified', grant: result.grant });
          return flow.showCurrentStep(ctx);
        },
      },
      {
        // A new code: a new reset request for the same address, under the same limits.
        path: '/reset/resend',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          requireResetEnabled(kit);
          const { email } = kit.requireStep(ctx, 'reset-code');
          const outcome = await requestResetCode(kit, ctx, flow, email);
          if (!outcome.ok) return render(ctx, { notice: outcome.message, status: outcome.status });
          return flow.showCurrentStep(ctx, '?sent=1');
        },
      },
    ],
  };
}
