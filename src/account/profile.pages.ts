import { z } from 'zod';

import type { AccountService } from '../accounts/account.service.js';
import { safeText } from '../accounts/account.service.js';
import type { ProfileFields, ProfileScopes } from '../accounts/profile-claims.js';
import { ProfileValidationError, profileFields } from '../accounts/profile-claims.js';
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
  details: 'Your details are saved. Apps see them the next time they ask for your profile.',
};

export interface ProfilePagesDeps {
  accounts: Pick<AccountService, 'update' | 'updateProfile'>;
  config: { profileScopes: ProfileScopes };
}

/** The details form's text fields, in the form's order (the address ones are `address.<name>`). */
const DETAIL_FIELDS = ['givenName', 'familyName', 'middleName', 'nickname', 'preferredUsername', 'picture', 'website', 'profile', 'gender', 'birthdate', 'zoneinfo', 'locale'] as const;
const ADDRESS_FIELDS = ['streetAddress', 'locality', 'region', 'postalCode', 'country', 'formatted'] as const;

/** The details form as typed (every field present: an empty one removes that detail). */
function detailsInput(form: Record<string, string | undefined>, scopes: ProfileScopes): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const field of DETAIL_FIELDS) input[field] = form[field] ?? '';
  if (scopes.phone) input.phoneNumber = form.phoneNumber ?? '';
  if (scopes.address) input.address = Object.fromEntries(ADDRESS_FIELDS.map((field) => [field, form[`address.${field}`] ?? '']));
  return input;
}

/** What the form shows: the stored details, or what was typed when it was refused. */
function detailValues(values: ProfileFields | Record<string, unknown>): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'string') flat[key] = value;
    else if (key === 'address' && typeof value === 'object' && value !== null) {
      for (const [member, text] of Object.entries(value)) if (typeof text === 'string') flat[`address.${member}`] = text;
    }
  }
  return flat;
}

export function registerProfilePages(router: AccountRouter, kit: AccountKit, deps: ProfilePagesDeps): void {
  const { profileScopes } = deps.config;
  const renderProfile = async (
    ctx: AccountContext,
    typed: string | undefined,
    options: RenderOptions = {},
    details: { values?: Record<string, string>; errors?: Record<string, string> } = {},
  ) => {
    const { account } = ctx.state;
    const stored = profileFields(account.profile);
    await kit.render(
      ctx,
      'account/profile',
      'profile',
      {
        title: 'Profile',
        profile: { name: typed ?? account.name ?? '', email: account.email, emailVerified: account.emailVerified, maxLength: NAME_MAX_LENGTH },
        details: {
          values: details.values ?? detailValues(stored),
          errors: details.errors ?? {},
          phone: profileScopes.phone,
          phoneVerified: stored.phoneNumberVerified === true,
          address: profileScopes.address,
        },
      },
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

  // The standard claims beyond the name (OIDC Core §5.1): checked whole before anything is stored.
  router.post('/profile/details', ...kit.post, async function saveDetails(ctx) {
    const { account } = ctx.state;
    const input = detailsInput(ctx.state.form, profileScopes);
    let result;
    try {
      result = await deps.accounts.updateProfile(account.id, input, { scopes: profileScopes, byAdmin: false });
    } catch (err) {
      if (!(err instanceof ProfileValidationError)) throw err;
      await kit.audit(ctx, 'user.profile_updated', 'failure', { reason: 'profile_invalid', details: { fields: Object.keys(err.fields) } });
      // The typed values are shown again (escaped by the view), each refusal beside its field.
      const typed = Object.fromEntries(Object.entries(ctx.state.form).filter(([, v]) => typeof v === 'string').map(([k, v]) => [k, (v as string).slice(0, 2000)]));
      return renderProfile(ctx, undefined, { error: 'Your details were not saved: correct the fields marked below.', status: 400 }, { values: typed, errors: err.fields });
    }
    if (!result) throw new AppError('account.not_found');
    if (result.changed.length > 0) {
      kit.log(ctx).info('profile updated', { accountId: account.id });
      await kit.audit(ctx, 'user.profile_updated', 'success', { details: { fields: result.changed } });
    }
    kit.redirect(ctx, `${PROFILE_PATH}?saved=details`);
  });
}
