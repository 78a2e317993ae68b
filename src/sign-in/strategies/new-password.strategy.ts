import { z } from 'zod';

import { PASSWORD_MAX_LENGTH, normalisePassword } from '../../accounts/password.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';

/** A new password, typed twice. Its rules are the password policy's (checked after parsing). */
const newPasswordForm = z.object({
  csrf: z.string(),
  password: z.string().min(1).max(PASSWORD_MAX_LENGTH),
  confirm: z.string().max(PASSWORD_MAX_LENGTH),
});

/**
 * The new password an administrator asked for at the next sign-in (step `new-password`, after
 * every required factor); then the sign-in finishes as it would have.
 */
export function createNewPasswordStrategy(kit: SignInKit): SignInStrategy {
  const { accounts, pages, passwordPolicy } = kit.deps;

  const render = async (ctx: SignInContext) => {
    const { account, stepUp } = kit.requireAccount(ctx);
    kit.requireStep(ctx, 'new-password');
    const base = kit.page(ctx);
    const refusal = kit.pageError(ctx);
    const view = {
      ...base,
      title: 'Choose a new password',
      stepUp,
      email: account.email,
      minLength: passwordPolicy.minLength,
      maxLength: passwordPolicy.maxLength,
      action: `/interaction/${base.uid}/new-password`,
      errors: refusal ? { [refusal.field ?? 'password']: refusal.message } : {},
    };
    await pages.render(ctx, 'interactions/new-password', view);
  };

  return {
    id: 'new-password',
    show: (ctx) => render(ctx),
    routes: [
      {
        path: '/new-password',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireAccount(ctx);
          kit.requireStep(ctx, 'new-password');
          const parsed = newPasswordForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'new_password_required');
          const { password, confirm } = parsed.data;
          if (normalisePassword(confirm) !== normalisePassword(password)) return flow.fail(ctx, 'passwords_differ');
          // A reset that keeps the old password would not be one (said first: the old one may not
          // meet today's policy, and "choose another" is the useful answer).
          if (account.hasPassword && (await accounts.verifyPassword(account.id, password))) return flow.fail(ctx, 'password_unchanged');
          const checked = await passwordPolicy.check(password, { email: account.email, name: account.name });
          // The policy's reason (our text, kept in the interaction; never in the URL).
          if (!checked.ok) return flow.fail(ctx, 'password_refused', { keep: { refusal: checked.message } });
          ctx.state.account = await accounts.changePassword(account.id, checked.normalised);
          kit.log(ctx).info('password changed', { accountId: account.id, during: 'sign-in' });
          await kit.auditFactor(ctx, 'user.password_changed', account, 'success', { details: { during: 'sign-in', required: true } });
          await kit.deps.notices.passwordChanged(account, { set: !account.hasPassword });
          return flow.advance(ctx, { type: 'password_changed' });
        },
      },
    ],
  };
}
