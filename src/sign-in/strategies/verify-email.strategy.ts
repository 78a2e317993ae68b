import { z } from 'zod';

import { codeForm } from '../forms.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';

const csrfOnly = z.object({ csrf: z.string() });

/**
 * The code page after a sign-up (step `verify-email`): the 6-digit code from the mail, a new
 * code (throttled by the service, which says how long to wait), and "use a different address"
 * (back to the form, the name kept). The right code verifies the address and sets the password;
 * the flow then finishes (or asks for more) as for any sign-in.
 */
export function createVerifyEmailStrategy(kit: SignInKit): SignInStrategy {
  const { pages, signUp } = kit.deps;
  const codeMinutes = Math.round(kit.config.signUp.codeTtlSeconds / 60);

  /** The page (GET); a refused POST's message comes from the query (post/redirect/get). */
  const render = async (ctx: SignInContext) => {
    const { email, flowId } = kit.requireStep(ctx, 'verify-email');
    const base = kit.page(ctx);
    const refusal = kit.pageError(ctx);
    // The same for a free and a taken address: the service keeps a code for both.
    const pending = await signUp.pending(flowId);
    const model = {
      ...base,
      title: 'Check your inbox',
      email,
      codeMinutes,
      // Expired: the resend answers with a way back to the form.
      expired: !pending,
      action: `/interaction/${base.uid}/sign-up/verify`,
      resendAction: `/interaction/${base.uid}/sign-up/resend`,
      changeAddressAction: `/interaction/${base.uid}/sign-up/change-address`,
      error: refusal && !refusal.notice ? refusal.message : undefined,
      notice: refusal?.notice ? refusal.message : undefined,
    };
    await pages.render(ctx, 'interactions/verify-email', model);
  };

  return {
    id: 'verify-email',
    show: (ctx) => render(ctx),
    routes: [
      {
        path: '/sign-up/verify',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          const { flowId } = kit.requireStep(ctx, 'verify-email');
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'email_code_required');
          const result = await signUp.verify({ flowId, code: parsed.data.code, ip: ctx.ip });
          if (!result.ok) {
            kit.log(ctx).info('sign-up code refused', { reason: result.reason, client: ctx.state.interaction.params.client_id });
            if (result.reason === 'throttled') return flow.fail(ctx, 'code_throttled', { wait: result.retryAfterSeconds });
            if (result.reason === 'already_verified') return flow.fail(ctx, 'already_verified');
            return flow.fail(ctx, `code_${result.reason}`);
          }
          ctx.state.account = result.account;
          kit.log(ctx).info('sign-up verified', { accountId: result.account.id, client: ctx.state.interaction.params.client_id });
          return flow.advance(ctx, { type: 'email_verified', account: result.account });
        },
      },
      {
        path: '/sign-up/resend',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          const { flowId } = kit.requireStep(ctx, 'verify-email');
          if (!csrfOnly.safeParse(ctx.state.form).success) return flow.fail(ctx, 'send_again');
          const result = await signUp.resend({ flowId, ip: ctx.ip });
          if (result.ok) return flow.showCurrentStep(ctx);
          if (result.reason === 'missing') return flow.fail(ctx, 'sign_up_expired');
          return flow.fail(ctx, 'resend_throttled', { wait: result.retryAfterSeconds });
        },
      },
      {
        path: '/sign-up/change-address',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          kit.requireStep(ctx, 'verify-email');
          await flow.commit(ctx, { type: 'change_address' });
          return flow.showCurrentStep(ctx);
        },
      },
    ],
  };
}
