import { z } from 'zod';

import type { AccountService } from '../accounts/account.service.js';
import { safeText } from '../accounts/account.service.js';
import { AppError } from '../http/app-error.js';
import type { AccountContext, AccountKit, AccountRouter, RenderOptions } from './account-kit.js';
import { ACCOUNT_SECTIONS } from './account-kit.js';

/**
 * The profile (/account/profile): the name apps see (the `name` claim of the `profile` scope).
 *
 * Not a sensitive action: a name proves nothing and unlocks nothing, so no recent
 * authentication; still CSRF, post/redirect/get, and an audit event (without the name itself:
 * the log needs what happened, not the person's data).
 */

const PROFILE_PATH = ACCOUNT_SECTIONS.profile.path;
export const NAME_MAX_LENGTH = 100;

/** Trimmed, at most NAME_MAX_LENGTH characters, no control characters; blank removes the name. */
export const profileForm = z.object({
  name: safeText(1024)
    .transform((s) => s.trim())
    .pipe(z.string().max(NAME_MAX_LENGTH, `Use at most ${NAME_MAX_LENGTH} characters.`)),
});

/** The notice after a saved change: a fixed code in the URL, never text from it. */
const SAVED_NOTICES: Record<string, string> = {
  saved: 'Your name is saved. Apps see it the next time they ask for your profile.',
  removed: 'Your name is removed.',
};

export interface ProfilePagesDeps {
  accounts: Pick<AccountService, 'update'>;
}

export function registerProfilePages(router: AccountRouter, kit: AccountKit, deps: ProfilePagesDeps): void {
  const renderProfile = async (ctx: AccountContext, typed: string | undefined, options: RenderOptions = {}) => {
    const { account } = ctx.state;
    await kit.render(
      ctx,
      'account/profile',
      'profile',
      { title: 'Profile', profile: { name: typed ?? account.name ?? '', email: account.email, emailVerified: account.emailVerified, maxLength: NAME_MAX_LENGTH } },
      options,
    );
  };

  router.get('/profile', ...kit.page, async function showProfile(ctx) {
    const saved = typeof ctx.query.saved === 'string' ? SAVED_NOTICES[ctx.query.saved] : undefined;
    await renderProfile(ctx, undefined, { notice: saved });
  });

  router.post('/profile', ...kit.post, async function saveProfile(ctx) {
    const { account } = ctx.state;
    const parsed = profileForm.safeParse({ name: ctx.state.form.name ?? '' });
    if (!parsed.success) {
      const tooLong = parsed.error.issues.some((issue) => issue.code === 'too_big');
      const message = tooLong ? `Your name can be at most ${NAME_MAX_LENGTH} characters long.` : 'Your name cannot contain line breaks, tabs or other control characters.';
      await kit.audit(ctx, 'user.profile_updated', 'failure', { reason: tooLong ? 'name_too_long' : 'name_invalid' });
      // The typed value is shown again only when it is plain text (escaped by the view as always).
      const typed = typeof ctx.state.form.name === 'string' && tooLong ? ctx.state.form.name.slice(0, 1024) : undefined;
      return renderProfile(ctx, typed, { error: message, field: 'name', status: 400 });
    }
    const name = parsed.data.name;
    const updated = await deps.accounts.update(account.id, { name: name || null });
    // Deleted between the session check and now (by its owner in another tab, or an administrator).
    if (!updated) throw new AppError('account.not_found');
    kit.log(ctx).info('profile updated', { accountId: account.id });
    await kit.audit(ctx, 'user.profile_updated', 'success', { details: { fields: ['name'], nameRemoved: !name } });
    kit.redirect(ctx, `${PROFILE_PATH}?saved=${name ? 'saved' : 'removed'}`);
  });
}
