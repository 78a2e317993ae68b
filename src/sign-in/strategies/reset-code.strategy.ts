import { codeForm } from '../forms.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';
import { requestResetCode, requireResetEnabled } from './reset-request.strategy.js';

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

  /** The page (GET); a refused POST's message comes from the query (post/redirect/get). */
  const render = async (ctx: SignInContext) => {
    const { email } = kit.requireStep(ctx, 'reset-code');
    const base = kit.page(ctx);
    const refusal = kit.pageError(ctx);
    const sent = !refusal && ctx.query.sent === '1' ? 'We sent a new code. Use the latest one.' : undefined;
    const view = {
      ...base,
      title: 'Check your email',
      email,
      codeMinutes,
      action: `/interaction/${base.uid}/reset/code`,
      resendAction: `/interaction/${base.uid}/reset/resend`,
      error: refusal && !refusal.notice ? refusal.message : undefined,
      notice: refusal?.notice ? refusal.message : sent,
    };
    await pages.render(ctx, 'interactions/reset-code', view);
  };

  return {
    id: 'reset-code',
    show(ctx) {
      requireResetEnabled(kit);
      return render(ctx);
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
          if (!parsed.success) return flow.fail(ctx, 'email_code_required');
          const result = await passwordReset.verifyCode({ flowId, code: parsed.data.code, ip: ctx.ip });
          if (!result.ok && result.reason === 'throttled') return flow.fail(ctx, 'code_throttled', { wait: result.retryAfterSeconds });
          if (!result.ok) return flow.fail(ctx, `code_${result.reason}`);
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
          if (!outcome.ok && outcome.reason === 'throttled') return flow.fail(ctx, 'reset_resend_throttled', { wait: outcome.wait });
          if (!outcome.ok) return flow.fail(ctx, 'reset_email_invalid');
          return flow.showCurrentStep(ctx, '?sent=1');
        },
      },
    ],
  };
}
