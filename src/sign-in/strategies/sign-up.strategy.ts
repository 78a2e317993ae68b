import { z } from 'zod';

import { AppError } from '../../http/app-error.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { PageErrorCode } from '../page-errors.js';
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

/** The refusals shown next to a field (the others sit above the form); the service names the fields. */
const FIELD_CODES = { email: 'sign_up_email_invalid', name: 'sign_up_name_invalid', password: 'sign_up_password_invalid' } as const;
const CODE_FIELDS: Partial<Record<PageErrorCode, keyof Fields>> = {
  sign_up_email_invalid: 'email',
  sign_up_name_invalid: 'name',
  sign_up_password_invalid: 'password',
  password_refused: 'password',
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

  /**
   * The page (GET). After a refused POST (post/redirect/get): the message of the query's code,
   * next to its field or above the form, and what was typed (kept in the interaction by the POST).
   */
  const render = async (ctx: SignInContext) => {
    const access = await signUpAccess(kit.deps, ctx.state.interaction.params);
    if (!access.allowed && access.reason === 'closed') throw closed();
    const base = kit.page(ctx);
    const { flow, kept } = ctx.state;
    const keptName = flow.step === 'sign-up' ? (flow.name ?? '') : '';
    const refusal = kit.pageError(ctx);
    const field = refusal ? CODE_FIELDS[refusal.code] : undefined;
    const errors: Fields = {};
    if (refusal && field) {
      errors[field] = refusal.code === 'sign_up_password_invalid' ? `Choose a password of ${passwordPolicy.minLength} to ${passwordPolicy.maxLength} characters.` : refusal.message;
    }
    const model = {
      ...base,
      title: 'Create your account',
      invitationRequired: !access.allowed,
      action: `/interaction/${base.uid}/sign-up`,
      email: kept.email ?? (access.allowed ? (access.boundEmail ?? '') : ''),
      name: kept.name ?? keptName,
      minLength: passwordPolicy.minLength,
      maxLength: passwordPolicy.maxLength,
      errors,
      error: refusal && !field ? refusal.message : undefined,
    };
    // A refusal's status is applied by the router; without one, an invitation-only page is a 403.
    await pages.render(ctx, 'interactions/sign-up', model, refusal || access.allowed ? 200 : 403);
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
          // What the page shows again (never the password, never in the URL).
          const keep = { email: printable(ctx.state.form.email, 254), name: printable(ctx.state.form.name, 200) };
          // From the login page (step `identify`) the form is its `?method=sign-up` variant.
          const refuse = (code: PageErrorCode, wait?: number) => flow.fail(ctx, code, { keep, wait, method: 'sign-up' });
          if (!access.allowed) return refuse('invitation_only');
          const parsed = signUpForm.safeParse(ctx.state.form);
          if (!parsed.success) return refuse('sign_up_incomplete');
          const { email, name, password } = parsed.data;
          const result = await signUp.start({ email, name: name.trim() || undefined, password, ip: ctx.ip, invitation: access.invitation });
          if (result.ok) {
            kit.log(ctx).info('sign-up started', { client: ctx.state.interaction.params.client_id });
            return flow.advance(ctx, { type: 'sign_up_started', flowId: result.flowId, email: result.email, name: name.trim() || undefined });
          }
          switch (result.reason) {
            case 'invalid': {
              // One field at a time, in the order of the form.
              const field = (['email', 'name', 'password'] as const).find((f) => f in result.fields) ?? 'email';
              return refuse(FIELD_CODES[field]);
            }
            case 'weak_password':
              // The policy's reason (our text) is kept in the interaction, never put in the URL.
              return flow.fail(ctx, 'password_refused', { keep: { ...keep, refusal: result.message }, method: 'sign-up' });
            case 'invitation_required':
              return refuse('invitation_refused');
            case 'throttled':
              return refuse('sign_up_throttled', result.retryAfterSeconds);
            case 'closed':
              throw closed();
          }
        },
      },
    ],
  };
}
