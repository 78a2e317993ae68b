import type { mongo } from 'mongoose';

import { createAccountDeletionService } from '../accounts/account-deletion.service.js';
import type { AccountNotices } from '../accounts/account-notices.js';
import type { AccountService } from '../accounts/account.service.js';
import type { AuditService } from '../audit/audit.service.js';
import type { PageRenderer } from '../http/render-page.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import type { AccountContext, AccountKit, AccountRouter } from './account-kit.js';
import { ACCOUNT_BASE_PATH, ACCOUNT_SECTIONS } from './account-kit.js';

/**
 * Deleting one's own account (/account/delete): a recent authentication (account-kit.ts), a CSRF
 * token, and the account's email address typed out as confirmation: a slip of the finger or a
 * forged click cannot do it, and the person sees which account goes. The deletion itself is the
 * one administrators use too (account-deletion.service.ts): the account, everything issued to it
 * (so this browser is signed out as well), the person's data, an audit record that names only the
 * id, and a notice to the address. It ends on a page that says it is done.
 *
 * Administrators cannot delete themselves here: another administrator must (the console refuses
 * an administrator acting on their own account for the same reason: someone must stay who can fix
 * things).
 */

const DELETE_PATH = ACCOUNT_SECTIONS.delete.path;
const DONE_PATH = `${ACCOUNT_BASE_PATH}/deleted`;

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

export interface DeletePagesDeps {
  db: mongo.Db;
  accounts: AccountService;
  limits: SignInLimits;
  audit: AuditService;
  logger: Logger;
  pages: PageRenderer;
  notices: AccountNotices;
}

export function registerDeletePages(router: AccountRouter, kit: AccountKit, deps: DeletePagesDeps): void {
  const deletion = createAccountDeletionService(deps);

  const render = async (ctx: AccountContext, options: { error?: string; status?: number } = {}) => {
    const { account } = ctx.state;
    await kit.render(
      ctx,
      'account/delete',
      'delete',
      {
        title: 'Delete your account',
        action: DELETE_PATH,
        isAdmin: account.roles.includes('admin'),
        errors: options.error ? { confirm: options.error } : {},
      },
      { status: options.status },
    );
  };

  router.get('/delete', ...kit.sensitivePage('delete'), async function showDelete(ctx) {
    await render(ctx);
  });

  router.post('/delete', ...kit.sensitivePost('delete'), async function deleteAccount(ctx) {
    const { account, form } = ctx.state;
    if (account.roles.includes('admin')) {
      await kit.audit(ctx, 'user.deleted', 'failure', { reason: 'admin_self' });
      return render(ctx, { error: 'An administrator’s account can only be deleted by another administrator.', status: 403 });
    }
    const typed = text(form.confirm).trim().toLowerCase();
    if (!typed || typed.length > 320 || typed !== account.email) {
      await kit.audit(ctx, 'user.deleted', 'failure', { reason: typed ? 'confirmation_mismatch' : 'confirmation_missing' });
      const message = typed ? 'That is not your email address. Type it exactly as shown above.' : 'Type your email address to confirm.';
      return render(ctx, { error: message, status: 400 });
    }
    await deletion.delete(account, { actor: { type: 'account', id: account.id }, notices: deps.notices });
    // Deleted already (another tab) or now: either way the account is gone.
    kit.redirect(ctx, DONE_PATH);
  });

  /** Says it is done. No session needed (there is none left); shows nothing about anyone. */
  router.get('/deleted', kit.noStore, async function deleted(ctx) {
    await deps.pages.render(ctx, 'account/delete-done', { title: 'Account deleted' });
  });
}
