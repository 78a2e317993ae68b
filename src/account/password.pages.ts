import type { AccountAccessService } from '../accounts/account-access.service.js';
import type { AccountNotices } from '../accounts/account-notices.js';
import type { AccountService } from '../accounts/account.service.js';
import type { PasswordPolicy } from '../accounts/password-policy.js';
import { PASSWORD_MAX_LENGTH } from '../accounts/password.js';
import type { AccountContext, AccountKit, AccountRouter } from './account-kit.js';
import { ACCOUNT_SECTIONS } from './account-kit.js';

/**
 * The password page (/account/password): change the password with the current one, or set one
 * on an account that has none (it signed in with codes by email; the recent authentication is
 * the proof then). The current password is a guarded proof (counted like a wrong password on the
 * sign-in page, per address and IP, account-kit.ts), the new one goes through the password
 * policy (password-policy.ts), other sessions end, the person gets a notice, and the change is
 * audited (never a password). Success answers with a redirect to the page and a notice
 * (post/redirect/get); a refusal is the page again, with the field that failed marked.
 */

const PASSWORD_PATH = ACCOUNT_SECTIONS.password.path;

/** `?done=` after a success: the notice to show (no text is taken from the URL). */
const DONE_NOTICES = {
  changed: 'Your password is changed. Every other browser signed in to your account was signed out.',
  set: 'Your password is set: you can now sign in with it. Every other browser signed in to your account was signed out.',
} as const;

type Field = 'current' | 'password' | 'confirm';
type FieldErrors = Partial<Record<Field, string>>;

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

export interface PasswordPagesDeps {
  accounts: AccountService;
  access: AccountAccessService;
  passwordPolicy: PasswordPolicy;
  notices: AccountNotices;
}

export function registerPasswordPages(router: AccountRouter, kit: AccountKit, deps: PasswordPagesDeps): void {
  const { accounts, access, passwordPolicy, notices } = deps;

  const render = async (ctx: AccountContext, options: { errors?: FieldErrors; status?: number; notice?: string } = {}) => {
    const { account } = ctx.state;
    await kit.render(
      ctx,
      'account/password',
      'password',
      {
        title: account.hasPassword ? 'Change your password' : 'Set a password',
        hasPassword: account.hasPassword,
        minLength: passwordPolicy.minLength,
        maxLength: passwordPolicy.maxLength,
        action: PASSWORD_PATH,
        errors: options.errors ?? {},
      },
      { status: options.status, notice: options.notice },
    );
  };

  router.get('/password', ...kit.sensitivePage('password'), async function showPassword(ctx) {
    const done = text(ctx.query.done);
    await render(ctx, { notice: Object.hasOwn(DONE_NOTICES, done) ? DONE_NOTICES[done as keyof typeof DONE_NOTICES] : undefined });
  });

  router.post('/password', ...kit.sensitivePost('password'), async function changePassword(ctx) {
    const { account, form, sessionUid } = ctx.state;
    const setting = !account.hasPassword;
    const action = setting ? 'user.password_set' : 'user.password_changed';
    const current = text(form.current);
    const password = text(form.password);
    const confirm = text(form.confirm);

    // The form first: nothing is counted or checked for a form that cannot be right.
    const errors: FieldErrors = {};
    if (!setting && !current) errors.current = 'Enter your current password.';
    else if (current.length > PASSWORD_MAX_LENGTH) errors.current = `A password here has at most ${PASSWORD_MAX_LENGTH} characters.`;
    if (!password) errors.password = 'Enter a new password.';
    else if (password.length > PASSWORD_MAX_LENGTH) errors.password = `Use at most ${passwordPolicy.maxLength} characters.`;
    else if (confirm !== password) errors.confirm = 'The two new passwords are not the same. Type the new password again in both fields.';
    if (Object.keys(errors).length > 0) {
      await kit.audit(ctx, action, 'failure', { reason: 'invalid_input' });
      return render(ctx, { errors, status: 400 });
    }

    if (!setting) {
      const check = await kit.guardedProof(ctx, 'password', () => accounts.verifyPassword(account.id, current), 'That is not your current password.');
      if (!check.ok) {
        kit.log(ctx).info('password change refused', { accountId: account.id, reason: check.status === 429 ? 'throttled' : 'wrong_password' });
        await kit.audit(ctx, action, 'failure', { reason: check.status === 429 ? 'throttled' : 'wrong_password' });
        return render(ctx, { errors: { current: check.message }, status: check.status });
      }
    }

    const verdict = await passwordPolicy.check(password, { email: account.email, name: account.name });
    if (!verdict.ok) {
      await kit.audit(ctx, action, 'failure', { reason: `weak_password_${verdict.reason}` });
      return render(ctx, { errors: { password: verdict.message }, status: 400 });
    }

    await accounts.changePassword(account.id, verdict.normalised);
    // Whoever held a session elsewhere (maybe with the old password) is out now; this one stays.
    const endedSessions = await access.endOtherSessions(account.id, sessionUid);
    kit.log(ctx).info(setting ? 'password set' : 'password changed', { accountId: account.id, endedSessions });
    await kit.audit(ctx, action, 'success', { details: { endedSessions } });
    await notices.passwordChanged({ id: account.id, email: account.email, name: account.name }, { set: setting });
    kit.redirect(ctx, `${PASSWORD_PATH}?done=${setting ? 'set' : 'changed'}`);
  });
}
