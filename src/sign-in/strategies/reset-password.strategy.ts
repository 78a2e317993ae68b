import { z } from 'zod';

import type { PasswordPolicy } from '../../accounts/password-policy.js';
import type { ResetCompleteResult } from '../../accounts/password-reset.service.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';
import { requireResetEnabled } from './reset-request.strategy.js';

export interface NewPasswordErrors {
  password?: string | undefined;
  confirm?: string | undefined;
  /** About the whole form (an expired reset), not one field. */
  form?: string | undefined;
}

/** The policy's rules, said before anyone types (the same words on every new-password form). */
export function passwordRules(policy: Pick<PasswordPolicy, 'minLength'>): string {
  return `At least ${policy.minLength} characters. Not a common or easily guessed password, and not built from your email address or name. A few unrelated words make a password that is long and easy to remember.`;
}

/**
 * The new password, typed twice. Only shape here (so that nothing is spent on a typo); the
 * policy itself runs in the reset service, with the account's email and name.
 */
export function newPasswordForm(policy: Pick<PasswordPolicy, 'maxLength'>) {
  return z.object({ csrf: z.string(), password: z.string().min(1).max(policy.maxLength), confirm: z.string().max(policy.maxLength) });
}

/** Checks the form; undefined when it may go to the service. */
export function newPasswordProblems(policy: Pick<PasswordPolicy, 'maxLength'>, form: Record<string, string>): NewPasswordErrors | undefined {
  const parsed = newPasswordForm(policy).safeParse(form);
  if (!parsed.success) return { password: `Enter a new password of at most ${policy.maxLength} characters, then the same password again.` };
  if (parsed.data.confirm !== parsed.data.password) return { confirm: 'The two passwords are not the same. Type the new password again.' };
  return undefined;
}

/** What a refused `complete` says, next to the field it is about. */
export function completeProblems(result: Exclude<ResetCompleteResult, { ok: true }>): NewPasswordErrors {
  if (result.reason === 'weak_password') return { password: result.message };
  if (result.reason === 'invalid') return { password: `The new password ${Object.values(result.fields)[0] ?? 'is not allowed'}.` };
  return { form: 'This password reset has expired. Go back to sign in and ask for a new code.' };
}

/**
 * `complete` ended every session of the account, the one this browser may have started the
 * sign-in from (prompt=login) included. The provider refuses an interaction whose session is gone
 * ("session not found"), so the interaction lets go of it: the sign-in finishes in a new session.
 * NOTE: only for that account's session; another account's session was not touched.
 */
async function detachRevokedSession(ctx: SignInContext, accountId: string): Promise<void> {
  const { interaction } = ctx.state;
  if (interaction.session?.accountId !== accountId) return;
  delete interaction.session;
  await interaction.persist();
}

/**
 * The step `reset-password`: the mailbox is proven (the interaction holds the reset grant); the
 * person chooses a new password. The service then revokes every session and token of the account
 * and the sign-in goes on, with the reset counted as the email factor (see `transition`).
 */
export function createResetPasswordStrategy(kit: SignInKit): SignInStrategy {
  const { passwordReset, passwordPolicy, pages } = kit.deps;

  /** The page (GET); a refused POST's message comes from the query (post/redirect/get), next to its field. */
  const render = async (ctx: SignInContext) => {
    const { email } = kit.requireStep(ctx, 'reset-password');
    const base = kit.page(ctx);
    const refusal = kit.pageError(ctx);
    const errors: NewPasswordErrors = refusal ? { [refusal.field ?? 'form']: refusal.message } : {};
    const view = {
      ...base,
      title: 'Choose a new password',
      email,
      minLength: passwordPolicy.minLength,
      maxLength: passwordPolicy.maxLength,
      rules: passwordRules(passwordPolicy),
      action: `/interaction/${base.uid}/reset/password`,
      errors,
    };
    await pages.render(ctx, 'interactions/reset-password', view);
  };

  return {
    id: 'reset-password',
    show(ctx) {
      requireResetEnabled(kit);
      return render(ctx);
    },
    routes: [
      {
        path: '/reset/password',
        prompts: ['login'],
        loadsAccount: false,
        async handle(ctx, flow) {
          requireResetEnabled(kit);
          const { grant } = kit.requireStep(ctx, 'reset-password');
          const problems = newPasswordProblems(passwordPolicy, ctx.state.form);
          if (problems) return flow.fail(ctx, problems.confirm ? 'passwords_differ' : 'new_password_required');
          const result = await passwordReset.complete({ grant, newPassword: ctx.state.form.password ?? '' });
          if (!result.ok && result.reason === 'invalid_grant') return flow.fail(ctx, 'reset_expired');
          // The policy's reason (our text) is kept in the interaction, never put in the URL.
          if (!result.ok) return flow.fail(ctx, 'password_refused', { keep: { refusal: completeProblems(result).password } });
          await detachRevokedSession(ctx, result.account.id);
          // The next step (a second factor) works on this account.
          ctx.state.account = result.account;
          kit.log(ctx).info('password reset during sign-in', { accountId: result.account.id, client: kit.clientId(ctx) });
          return flow.advance(ctx, { type: 'password_reset', account: result.account });
        },
      },
    ],
  };
}
