import { z } from 'zod';

import { AppError } from '../../http/app-error.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import { describeWait } from '../messages.js';
import { signUpAccess } from '../sign-up-invitation.js';
import type { SignInStrategy } from '../strategy.js';

/** Sizes only: the service (sign-up.service.ts) judges the address, the name and the password. */
const signUpForm = z.object({
  csrf: z.string(),
  email: z.string().max(254),
  name: z.string().max(200),
  password: z.string().max(1024),
});

type Fields = { email?: string; name?: string; password?: string };
interface SignUpView {
  values?: { email?: string; name?: string };
  errors?: Fields;
  error?: string;
  status?: number;
}

const FIELD_MESSAGES: Record<string, string> = {
  email: 'Enter an email address, like name@example.com.',
  name: 'Enter your name without control characters (at most 200 characters).',
  password: 'Choose a password.',
};

// eslint-disable-next-line no-control-regex -- the point is to drop control characters
const printable = (value: unknown, max: number) => (typeof value === 'string' ? value.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, max) : '');

const closed = () => new AppError(404, 'sign_up.closed', 'Sign-up is not available here.');

/**
 * The sign-up form (step `sign-up`, or `identify` with ?method=sign-up): email, name, password.
 * The sign-up service does the work and answers alike for a free and a taken address; this page
 * only passes on what it says, and moves the flow to the code page (verify-email.strategy.ts).
 */
export function createSignUpStrategy(kit: SignInKit): SignInStrategy {
  const { pages, signUp, passwordPolicy } = kit.deps;

  /** The page, with the values typed and the errors (every refusal of this step goes through here). */
  const render = async (ctx: SignInContext, view: SignUpView = {}) => {
    const access = await signUpAccess(kit.deps, ctx.state.interaction.params);
    if (!access.allowed && access.reason === 'closed') throw closed();
    const base = kit.page(ctx);
    const { flow } = ctx.state;
    const keptName = flow.step === 'sign-up' ? (flow.name ?? '') : '';
    const model = {
      ...base,
      title: 'Create your account',
      invitationRequired: !access.allowed,
      action: `/interaction/${base.uid}/sign-up`,
      email: view.values?.email ?? (access.allowed ? (access.boundEmail ?? '') : ''),
      name: view.values?.name ?? keptName,
      minLength: passwordPolicy.minLength,
      maxLength: passwordPolicy.maxLength,
      errors: view.errors ?? {},
      error: view.error,
    };
    await pages.render(ctx, 'interactions/sign-up', model, view.status ?? (access.allowed ? 200 : 403));
  };

  return {
    id: 'sign-up',
    show: (ctx) => render(ctx),
    routes: [
      {
        path: '/sign-up',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          kit.requireStep(ctx, 'identify', 'sign-up', 'verify-email');
          const access = await signUpAccess(kit.deps, ctx.state.interaction.params);
          if (!access.allowed && access.reason === 'closed') throw closed();
          const values = { email: printable(ctx.state.form.email, 254), name: printable(ctx.state.form.name, 200) };
          const refuse = (view: Omit<SignUpView, 'values'>) => render(ctx, { ...view, values });
          if (!access.allowed) return refuse({ error: 'Sign-up here is by invitation only. Open the link from your invitation.', status: 403 });
          const parsed = signUpForm.safeParse(ctx.state.form);
          if (!parsed.success) return refuse({ error: 'Fill in your email address, name and password.', status: 400 });
          const { email, name, password } = parsed.data;
          const result = await signUp.start({ email, name: name.trim() || undefined, password, ip: ctx.ip, invitation: access.invitation });
          if (result.ok) {
            kit.log(ctx).info('sign-up started', { client: ctx.state.interaction.params.client_id });
            return flow.advance(ctx, { type: 'sign_up_started', flowId: result.flowId, email: result.email, name: name.trim() || undefined });
          }
          switch (result.reason) {
            case 'invalid': {
              const errors: Fields = {};
              for (const field of Object.keys(result.fields)) if (field in FIELD_MESSAGES) errors[field as keyof Fields] = FIELD_MESSAGES[field];
              if (errors.password) errors.password = `Choose a password of ${passwordPolicy.minLength} to ${passwordPolicy.maxLength} characters.`;
              return refuse({ errors, status: 400 });
            }
            case 'weak_password':
              return refuse({ errors: { password: result.message }, status: 400 });
            case 'invitation_required':
              return refuse({ error: 'This invitation is not valid for this address, or it has been used up or has expired.', status: 403 });
            case 'throttled':
              ctx.set('Retry-After', String(result.retryAfterSeconds));
              return refuse({ error: `Too many sign-ups were started. Wait ${describeWait(result.retryAfterSeconds)}, then try again.`, status: 429 });
            case 'closed':
              throw closed();
          }
        },
      },
    ],
  };
}
