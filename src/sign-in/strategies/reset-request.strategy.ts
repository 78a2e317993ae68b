import { z } from 'zod';

import { emailSchema } from '../../accounts/account.service.js';
import { AppError } from '../../http/app-error.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { FlowActions, SignInStrategy } from '../strategy.js';

const requestForm = z.object({ csrf: z.string(), email: emailSchema });

/** What "Forgot password?" carries from the login form: whatever was typed, kept only as a prefill. */
const typedEmail = (value: unknown) => (typeof value === 'string' ? value.trim().slice(0, 254) : '');

/** PASSWORD_RESET=false: the steps do not exist (the login page offers no link). */
export function requireResetEnabled(kit: SignInKit): void {
  if (!kit.config.passwordReset.enabled) throw new AppError('not_found');
}

/**
 * Asks the reset service for a code (the same writes, answer and time for every address: the mail
 * leaves in the background), then moves the flow to `reset-code`. Used by the request form and by
 * "send a new code"; the refusal says the real time left.
 */
export async function requestResetCode(kit: SignInKit, ctx: SignInContext, flow: FlowActions, email: string): Promise<{ ok: true } | { ok: false; reason: 'invalid' } | { ok: false; reason: 'throttled'; wait: number }> {
  const result = await kit.deps.passwordReset.request({ email, ip: ctx.ip });
  if (!result.ok) {
    if (result.reason === 'disabled') throw new AppError('not_found');
    if (result.reason === 'invalid') return { ok: false, reason: 'invalid' };
    return { ok: false, reason: 'throttled', wait: result.retryAfterSeconds };
  }
  await flow.commit(ctx, { type: 'reset_code_sent', email: result.email, flowId: result.flowId });
  kit.log(ctx).info('password reset code requested', { client: kit.clientId(ctx) });
  return { ok: true };
}

/**
 * "Forgot password?": the step `reset-request`, a form asking where to send a reset code,
 * prefilled with the address typed on the login page.
 */
export function createResetRequestStrategy(kit: SignInKit): SignInStrategy {
  /** The page (GET): the address typed on a refused POST (kept in the interaction), else the login page's. */
  const render = async (ctx: SignInContext) => {
    const { email } = kit.requireStep(ctx, 'reset-request');
    const base = kit.page(ctx);
    const view = { ...base, title: 'Reset your password', email: ctx.state.kept.email ?? email, action: `/interaction/${base.uid}/reset/request`, error: kit.pageError(ctx)?.message };
    await kit.deps.pages.render(ctx, 'interactions/reset-request', view);
  };

  return {
    id: 'reset-request',
    show(ctx) {
      requireResetEnabled(kit);
      return render(ctx);
    },
    routes: [
      {
        // "Forgot password?" on the login page: the same form, so what was typed comes along.
        path: '/reset',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          requireResetEnabled(kit);
          await flow.commit(ctx, { type: 'reset_started', email: typedEmail(ctx.state.form.email) });
          return flow.showCurrentStep(ctx);
        },
      },
      {
        path: '/reset/request',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          requireResetEnabled(kit);
          kit.requireStep(ctx, 'reset-request');
          const parsed = requestForm.safeParse(ctx.state.form);
          // The same refusals for a known and an unknown address (the service tells no one apart).
          const keep = { email: typedEmail(ctx.state.form.email) };
          if (!parsed.success) return flow.fail(ctx, 'reset_email_invalid', { keep });
          const outcome = await requestResetCode(kit, ctx, flow, parsed.data.email);
          if (!outcome.ok && outcome.reason === 'throttled') return flow.fail(ctx, 'reset_throttled', { keep, wait: outcome.wait });
          if (!outcome.ok) return flow.fail(ctx, 'reset_email_invalid', { keep });
          return flow.showCurrentStep(ctx);
        },
      },
    ],
  };
}
