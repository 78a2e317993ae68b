import { z } from 'zod';

import { emailSchema } from '../../accounts/account.service.js';
import { AppError } from '../../http/app-error.js';
import { describeWait } from '../messages.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { FlowActions, SignInStrategy } from '../strategy.js';

const requestForm = z.object({ csrf: z.string(), email: emailSchema });

/** What "Forgot password?" carries from the login form: whatever was typed, kept only as a prefill. */
const typedEmail = (value: unknown) => (typeof value === 'string' ? value.trim().slice(0, 254) : '');

interface RequestPage {
  email: string;
  error?: string | undefined;
  status?: number;
}

/** PASSWORD_RESET=false: the steps do not exist (the login page offers no link). */
export function requireResetEnabled(kit: SignInKit): void {
  if (!kit.config.passwordReset.enabled) throw new AppError('not_found');
}

/**
 * Asks the reset service for a code (the same writes, answer and time for every address: the mail
 * leaves in the background), then moves the flow to `reset-code`. Used by the request form and by
 * "send a new code"; the refusal says the real time left.
 */
export async function requestResetCode(kit: SignInKit, ctx: SignInContext, flow: FlowActions, email: string): Promise<{ ok: true } | { ok: false; message: string; status: number }> {
  const result = await kit.deps.passwordReset.request({ email, ip: ctx.ip });
  if (!result.ok) {
    if (result.reason === 'disabled') throw new AppError('not_found');
    if (result.reason === 'invalid') return { ok: false, message: 'Enter the email address of your account, like name@example.com.', status: 400 };
    ctx.set('Retry-After', String(result.retryAfterSeconds));
    return { ok: false, message: `Too many reset codes were asked for. You can ask for a new one in ${describeWait(result.retryAfterSeconds)}.`, status: 429 };
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
  /** Every page of this step (and every refusal) is rendered here. */
  const render = async (ctx: SignInContext, options: RequestPage) => {
    const base = kit.page(ctx);
    const view = { ...base, title: 'Reset your password', email: options.email, action: `/interaction/${base.uid}/reset/request`, error: options.error };
    await kit.deps.pages.render(ctx, 'interactions/reset-request', view, options.status ?? 200);
  };

  return {
    id: 'reset-request',
    show(ctx) {
      requireResetEnabled(kit);
      const { email } = kit.requireStep(ctx, 'reset-request');
      return render(ctx, { email });
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
          const email = typedEmail(ctx.state.form.email);
          if (!parsed.success) return render(ctx, { email, error: 'Enter the email address of your account, like name@example.com.', status: 400 });
          const outcome = await requestResetCode(kit, ctx, flow, parsed.data.email);
          if (!outcome.ok) return render(ctx, { email, error: outcome.message, status: outcome.status });
          return flow.showCurrentStep(ctx);
        },
      },
    ],
  };
}
