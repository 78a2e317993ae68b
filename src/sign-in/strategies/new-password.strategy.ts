import { z } from 'zod';

import { passwordSchema } from '../../accounts/account.service.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../accounts/password.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';

/** A new password, typed twice. Its rules are passwordSchema's. */
const newPasswordForm = z.object({
  csrf: z.string(),
  password: z.string().max(PASSWORD_MAX_LENGTH),
  confirm: z.string().max(PASSWORD_MAX_LENGTH),
});

type FieldErrors = { password?: string; confirm?: string };

/**
 * The new password an administrator asked for at the next sign-in (step `new-password`, after
 * every required factor); then the sign-in finishes as it would have.
 */
export function createNewPasswordStrategy(kit: SignInKit): SignInStrategy {
  const { accounts, pages } = kit.deps;

  const render = async (ctx: SignInContext, errors: FieldErrors = {}, status = 200) => {
    const { account, stepUp } = kit.requireAccount(ctx);
    kit.requireStep(ctx, 'new-password');
    const base = kit.page(ctx);
    const view = {
      ...base,
      title: 'Choose a new password',
      stepUp,
      email: account.email,
      minLength: PASSWORD_MIN_LENGTH,
      maxLength: PASSWORD_MAX_LENGTH,
      action: `/interaction/${base.uid}/new-password`,
      errors,
    };
    await pages.render(ctx, 'interactions/new-password', view, status);
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
          const refuse = (errors: FieldErrors) => render(ctx, errors, 400);
          const parsed = newPasswordForm.safeParse(ctx.state.form);
          if (!parsed.success) return refuse({ password: 'Enter a new password, then the same password again.' });
          const { password, confirm } = parsed.data;
          const rule = passwordSchema.safeParse(password);
          if (!rule.success) return refuse({ password: `The new password ${rule.error.issues[0]?.message ?? 'is not allowed'}.` });
          if (confirm !== password) return refuse({ confirm: 'The two passwords are not the same. Type the new password again.' });
          // A reset that keeps the old password would not be one.
          if (account.hasPassword && (await accounts.verifyPassword(account.id, password))) {
            return refuse({ password: 'Choose a password different from your current one.' });
          }
          ctx.state.account = await accounts.changePassword(account.id, password);
          kit.log(ctx).info('password changed', { accountId: account.id, during: 'sign-in' });
          await kit.auditFactor(ctx, 'user.password_changed', account, 'success', { details: { during: 'sign-in', required: true } });
          return flow.advance(ctx, { type: 'password_changed' });
        },
      },
    ],
  };
}
