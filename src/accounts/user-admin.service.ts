import type { mongo } from 'mongoose';
import { z } from 'zod';
import type { SessionsEndedListener } from '../oidc/mongo-adapter.js';

import type { AuditAction } from '../audit/audit-actions.js';
import type { AuditDetails, AuditService } from '../audit/audit.service.js';
import type { AdminAuthority } from '../clients/admin-authority.js';
import { NO_AUTHORITY, managementScopesNotHeld } from '../clients/admin-authority.js';
import { AppError, FieldValidationError } from '../http/app-error.js';
import type { Logger } from '../logging/logger.js';
import { revokeAccountRecords } from '../oidc/mongo-adapter.js';
import type { AccountDeletionService } from './account-deletion.service.js';
import type { AccountNotices } from './account-notices.js';
import type { Role } from './account.model.js';
import type { AccountService, AccountView } from './account.service.js';
import { emailSchema, safeText } from './account.service.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './password.js';
import type { PasswordPolicy } from './password-policy.js';
import { PasswordPolicyError } from './password-policy.js';
import type { ProfileFields, ProfileScopes } from './profile-claims.js';
import { profileFields, profileInputSchema } from './profile-claims.js';
import type { TotpService } from './totp.service.js';

/**
 * What administrators do to people: list and find them, create them, change their name and
 * roles, disable them, reset their second factor, make them choose a new password, delete them.
 * The admin console, the management API and the CLI are thin layers over this service, so the
 * rules (validation, the self-guards, revocation, audit) hold whichever one is used.
 *
 * Every change records an audit event whose details name fields, never their values where those
 * could be secret: a password never reaches the audit log.
 *
 * Every change takes the caller's authority (src/clients/admin-authority.ts; default
 * NO_AUTHORITY). Giving the admin role, or acting on an account that has it, needs every
 * management API scope: an administrator holds them all, and nobody gives what they do not hold
 * (a token with admin:users:write alone cannot make an administrator, nor disable, reset or
 * delete one). Otherwise 403 `user.scope_not_held`, nothing changed, the refusal audited.
 */

export type SignInMethod = 'password' | 'email_code' | 'totp';

export interface UserAdminView extends Omit<AccountView, 'profile'> {
  /** The standard claims, under the names the update takes (profile-claims.ts). */
  profile: ProfileFields;
  /**
   * How this person can sign in: `password` when one is set; `email_code` always (anyone who
   * receives mail at the address can get a sign-in code); `totp` when an authenticator is enrolled.
   */
  signInMethods: SignInMethod[];
  mfa: { totp: boolean; enabledAt?: Date; recoveryCodesLeft: number };
  passwordResetRequired: boolean;
}

const roleSchema = z.enum(['admin']).describe('A role: `admin` may manage clients, users and the audit log');

const nameSchema = safeText(200)
  .transform((s) => s.trim())
  .describe('Display name (the `name` claim)');

export const userCreateSchema = z
  .strictObject({
    email: emailSchema.describe('Sign-in email address; stored lower-cased, unique'),
    // The length and strength rules are the password policy's (password-policy.ts), which gives
    // the reason of a refusal. These bounds keep the input small, and name an input too short
    // under any configuration together with the other fields' problems.
    password: z
      .string()
      .min(PASSWORD_MIN_LENGTH, `must be at least ${PASSWORD_MIN_LENGTH} characters`)
      .max(PASSWORD_MAX_LENGTH)
      .optional()
      .describe(
        'Initial password: PASSWORD_MIN_LENGTH (default 12) to 128 characters, not a common or leaked password, not built from ' +
          'the email, the name or the product name (400 `password.<reason>`, e.g. `password.too_common`; nothing is stored). ' +
          'Omit for a passwordless account that signs in with a code by email',
      ),
    name: nameSchema.optional(),
    roles: z.array(roleSchema).max(10).optional().describe('Roles to grant; none by default'),
    emailVerified: z.boolean().optional().describe('Whether the address is known to reach the person; false by default'),
  })
  .describe('A new user');

export const userUpdateSchema = z
  .strictObject({
    name: nameSchema.nullable().optional().describe('New display name; null or empty removes it'),
    roles: z.array(roleSchema).max(10).optional().describe('The complete set of roles after the change'),
    disabled: z.boolean().optional().describe('true disables the account (ending its sessions and revoking its tokens); false enables it'),
    profile: profileInputSchema.optional().describe('Standard claims (given_name, picture, locale, phone_number, address…); fields left out stay as they are'),
  })
  .describe('Changes to a user; fields left out stay as they are. The email address cannot be changed here.');

export type UserCreateInput = z.input<typeof userCreateSchema>;
export type UserUpdateInput = z.input<typeof userUpdateSchema>;

export interface UserListOptions {
  /** Case-insensitive substring of the email or the name, or the exact account id. */
  search?: string | undefined;
  /** 1–200; default 50. */
  limit?: number | undefined;
  /** `nextCursor` from the previous page. */
  cursor?: string | undefined;
}

export interface UserPage {
  users: UserAdminView[];
  /** Present when there are more users after this page. */
  nextCursor?: string;
  /** How many users match the search, over all pages. */
  total: number;
}

export interface UserAdminService {
  /** Ordered by email; cursor-based. */
  list(options?: UserListOptions): Promise<UserPage>;
  get(id: string): Promise<UserAdminView | undefined>;
  create(input: UserCreateInput, by?: AdminAuthority): Promise<UserAdminView>;
  /** Role changes are audited as `user.role_granted` / `user.role_revoked`, `disabled` as `user.disabled` / `user.enabled`. */
  update(id: string, input: UserUpdateInput, by?: AdminAuthority): Promise<UserAdminView>;
  /** Disabling also ends the person's sessions and revokes their grants and tokens. */
  setDisabled(id: string, disabled: boolean, by?: AdminAuthority): Promise<UserAdminView>;
  /** Removes the authenticator app and the recovery codes. */
  resetMfa(id: string, by?: AdminAuthority): Promise<UserAdminView>;
  /** The next sign-in ends on the new-password page; the person's sessions end now, so that it comes soon. */
  requirePasswordReset(id: string, by?: AdminAuthority): Promise<UserAdminView>;
  /** Deletes the account and revokes everything issued to it. False when there was no such account. */
  delete(id: string, by?: AdminAuthority): Promise<boolean>;
}

/** 400 `user.invalid`, with a message per field (`fields`), for forms and API clients. */
export class UserValidationError extends FieldValidationError {
  override name = 'UserValidationError';

  constructor(fields: Record<string, string>) {
    super('user.invalid', fields);
  }
}

/** One message per field, from zod's issues (messages name rules, never the value given). */
function fieldErrors(error: z.ZodError): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) fields[key] ??= 'is not a field that can be set here';
      continue;
    }
    const key = issue.path.length > 0 ? issue.path.map(String).join('.') : 'input';
    fields[key] ??= issue.message;
  }
  return fields;
}

function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new UserValidationError(fieldErrors(parsed.error));
  return parsed.data;
}

const notFound = () => new AppError('user.not_found');

/** The role that holds every management API scope (src/admin/api/api-auth.ts lets it use them all). */
const ADMIN_ROLE: Role = 'admin';

/** What a refusal says was attempted, by the audit action it records. */
const ADMIN_ACTIONS = {
  'user.role_granted': 'Giving the admin role',
  'user.updated': 'Changing an administrator’s account',
  'user.role_revoked': 'Taking the admin role from an administrator',
  'user.disabled': 'Disabling an administrator',
  'user.enabled': 'Enabling an administrator',
  'user.mfa_reset': 'Resetting an administrator’s second factor',
  'user.password_reset_required': 'Requiring a new password of an administrator',
  'user.deleted': 'Deleting an administrator',
} as const;
type AdminAction = keyof typeof ADMIN_ACTIONS;

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

function encodeCursor(email: string): string {
  return Buffer.from(email, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const email = /^[A-Za-z0-9_-]{1,400}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (!email || encodeCursor(email) !== cursor) throw new UserValidationError({ cursor: 'is not a cursor from a previous page' });
  return email;
}

export interface UserAdminServiceDeps {
  accounts: AccountService;
  totp: TotpService;
  db: mongo.Db;
  audit: AuditService;
  logger: Logger;
  /** New passwords set here go through it (NIST SP 800-63B rules, password-policy.ts). */
  passwordPolicy: PasswordPolicy;
  /** The one account deletion (shared with the account centre). */
  deletion: AccountDeletionService;
  /** Tells the person what an administrator did to their account (factors removed, deletion). */
  notices: Pick<AccountNotices, 'secondFactorRemoved' | 'accountDeleted'>;
  /** Whether accounts store phone numbers and addresses (PROFILE_PHONE, PROFILE_ADDRESS); neither by default. */
  profileScopes?: ProfileScopes | undefined;
  /** Told which sessions ended, for back-channel logout (backchannel-logout.service.ts). */
  loggedOut?: SessionsEndedListener | undefined;
}

export function createUserAdminService({ accounts, totp, db, audit, logger, passwordPolicy, deletion, notices, profileScopes = { phone: false, address: false }, loggedOut }: UserAdminServiceDeps): UserAdminService {
  const toAdminView = async (account: AccountView): Promise<UserAdminView> => {
    const status = await totp.status(account.id);
    const signInMethods: SignInMethod[] = [];
    if (account.hasPassword) signInMethods.push('password');
    signInMethods.push('email_code');
    if (status.enabled) signInMethods.push('totp');
    return {
      ...account,
      profile: profileFields(account.profile),
      signInMethods,
      mfa: { totp: status.enabled, ...(status.enabledAt ? { enabledAt: status.enabledAt } : {}), recoveryCodesLeft: status.recoveryCodesLeft },
      passwordResetRequired: account.passwordResetRequired,
    };
  };

  const load = async (id: string): Promise<AccountView> => {
    const account = typeof id === 'string' && id ? await accounts.findById(id) : undefined;
    if (!account) throw notFound();
    return account;
  };

  const record = (action: AuditAction, by: AdminAuthority, account: Pick<AccountView, 'id' | 'email'>, details?: AuditDetails) =>
    audit.record({
      action,
      outcome: 'success',
      actor: by.actor,
      target: { type: 'account', id: account.id, label: account.email },
      ...(details ? { details } : {}),
    });

  /**
   * Refuses (403, audited as a failure) unless `by` holds every management API scope: what it
   * takes to give the admin role or to act on an administrator. `account` is the target, or for
   * a new account its email.
   */
  const requireAdminPower = async (by: AdminAuthority, action: AdminAction, account: Pick<AccountView, 'id' | 'email'> | { email: string }) => {
    const missing = managementScopesNotHeld(by);
    if (missing.length === 0) return;
    await audit.record({
      action,
      outcome: 'failure',
      actor: by.actor,
      ...('id' in account ? { target: { type: 'account', id: account.id, label: account.email } } : {}),
      reason: 'scope_not_held',
      details: {
        missingScopes: missing,
        ...(action === 'user.role_granted' || action === 'user.role_revoked' ? { role: ADMIN_ROLE } : {}),
        ...('id' in account ? {} : { email: account.email }),
      },
    });
    throw new AppError('user.scope_not_held', { action: ADMIN_ACTIONS[action], missing });
  };
  const isAdmin = (account: Pick<AccountView, 'roles'>) => account.roles.includes(ADMIN_ROLE);

  /** An admin cannot lock themselves out: someone must always be able to get in and fix things. */
  const refuseSelf = (by: AdminAuthority, id: string, what: string) => {
    if (by.actor.type === 'account' && by.actor.id === id) {
      throw new AppError('user.self', { what });
    }
  };

  const recordRoleChanges = async (by: AdminAuthority, account: AccountView, before: readonly Role[], after: readonly Role[]) => {
    for (const role of after.filter((r) => !before.includes(r))) await record('user.role_granted', by, account, { role });
    for (const role of before.filter((r) => !after.includes(r))) await record('user.role_revoked', by, account, { role });
  };

  const changeDisabled = async (account: AccountView, disabled: boolean, by: AdminAuthority): Promise<AccountView> => {
    if (disabled) refuseSelf(by, account.id, 'disable');
    const updated = await accounts.setDisabled(account.id, disabled);
    if (!updated) throw notFound();
    if (disabled) {
      // After the flag is set: a sign-in finishing meanwhile finds the account disabled, and a
      // session it wrote a moment earlier is removed here (or refused: findAccount, provider.ts).
      const revokedRecords = await revokeAccountRecords(db, account.id, undefined, loggedOut);
      logger.debug('account disabled; sessions and tokens revoked', { accountId: account.id, revokedRecords });
      if (!account.disabled) await record('user.disabled', by, updated, { revokedRecords });
    } else if (account.disabled) {
      await record('user.enabled', by, updated);
    }
    return updated;
  };

  return {
    async list(options = {}) {
      const search = options.search?.trim() ?? '';
      if (search.length > 200) throw new UserValidationError({ search: 'must be at most 200 characters' });
      const limit =
        typeof options.limit === 'number' && Number.isFinite(options.limit)
          ? Math.min(Math.max(Math.trunc(options.limit), 1), MAX_LIMIT)
          : DEFAULT_LIMIT;
      const afterEmail = options.cursor ? decodeCursor(options.cursor) : undefined;
      const page = await accounts.search({ search: search || undefined, limit, afterEmail });
      const users = await Promise.all(page.accounts.map(toAdminView));
      const last = page.accounts.at(-1);
      return page.hasMore && last ? { users, nextCursor: encodeCursor(last.email), total: page.total } : { users, total: page.total };
    },

    async get(id) {
      const account = typeof id === 'string' && id ? await accounts.findById(id) : undefined;
      return account ? toAdminView(account) : undefined;
    },

    async create(input, by = NO_AUTHORITY) {
      const data = parse(userCreateSchema, input);
      if (data.roles?.includes(ADMIN_ROLE)) await requireAdminPower(by, 'user.role_granted', { email: data.email });
      let password: string | undefined;
      if (data.password !== undefined) {
        // Before anything is stored (and before hashing): a refusal leaves no account behind.
        const verdict = await passwordPolicy.check(data.password, { email: data.email, name: data.name });
        if (!verdict.ok) throw new PasswordPolicyError(verdict);
        password = verdict.normalised;
      }
      let account: AccountView;
      try {
        account = await accounts.create({
          email: data.email,
          ...(password !== undefined ? { password } : {}),
          ...(data.name ? { name: data.name } : {}),
          roles: [...new Set(data.roles ?? [])],
          emailVerified: data.emailVerified ?? false,
        });
      } catch (err) {
        if (err instanceof AppError && err.code === 'account.email_taken') {
          throw new AppError('user.email_taken');
        }
        throw err;
      }
      // Field names only: never the password, and not the values.
      const fields = Object.keys(data).filter((k) => (data as Record<string, unknown>)[k] !== undefined);
      await record('user.created', by, account, { fields });
      await recordRoleChanges(by, account, [], account.roles);
      return toAdminView(account);
    },

    async update(id, input, by = NO_AUTHORITY) {
      const data = parse(userUpdateSchema, input);
      let account = await load(id);
      const roles = data.roles === undefined ? undefined : [...new Set(data.roles)];
      if (roles && isAdmin(account) && !roles.includes(ADMIN_ROLE)) refuseSelf(by, id, 'remove the admin role from');
      if (data.disabled === true) refuseSelf(by, id, 'disable');
      if (isAdmin(account)) {
        const action: AdminAction = roles && !roles.includes(ADMIN_ROLE) ? 'user.role_revoked' : data.disabled === true ? 'user.disabled' : 'user.updated';
        await requireAdminPower(by, action, account);
      } else if (roles?.includes(ADMIN_ROLE)) {
        await requireAdminPower(by, 'user.role_granted', account);
      }

      const changed: string[] = [];
      // The profile first: its checks beyond the schema (phone and address stored at all) refuse
      // before the name or the roles change. Audited by claim name, never by value.
      if (data.profile !== undefined) {
        const result = await accounts.updateProfile(id, (input as { profile?: unknown }).profile, { scopes: profileScopes, byAdmin: true });
        if (!result) throw notFound();
        account = result.account;
        if (result.changed.length > 0) await record('user.profile_updated', by, account, { fields: result.changed });
      }
      if (data.name !== undefined && (data.name || undefined) !== account.name) changed.push('name');
      const rolesChanged = roles !== undefined && (roles.length !== account.roles.length || roles.some((r) => !account.roles.includes(r)));
      if (rolesChanged) changed.push('roles');
      if (changed.length > 0) {
        const before = account;
        const updated = await accounts.update(id, {
          ...(changed.includes('name') ? { name: data.name ?? null } : {}),
          ...(rolesChanged ? { roles } : {}),
        });
        if (!updated) throw notFound();
        account = updated;
        await record('user.updated', by, account, { fields: changed });
        if (rolesChanged) await recordRoleChanges(by, account, before.roles, account.roles);
      }
      if (data.disabled !== undefined && data.disabled !== account.disabled) account = await changeDisabled(account, data.disabled, by);
      return toAdminView(account);
    },

    async setDisabled(id, disabled, by = NO_AUTHORITY) {
      if (disabled) refuseSelf(by, id, 'disable');
      const account = await load(id);
      if (isAdmin(account)) await requireAdminPower(by, disabled ? 'user.disabled' : 'user.enabled', account);
      return toAdminView(await changeDisabled(account, disabled, by));
    },

    async resetMfa(id, by = NO_AUTHORITY) {
      const account = await load(id);
      if (isAdmin(account)) await requireAdminPower(by, 'user.mfa_reset', account);
      const before = await totp.status(id);
      await totp.remove(id);
      await record('user.mfa_reset', by, account, { hadTotp: before.enabled, recoveryCodesRemoved: before.recoveryCodesLeft });
      // Only when something was removed: a reset of an account without factors changes nothing.
      if (before.enabled || before.recoveryCodesLeft > 0) await notices.secondFactorRemoved(account, before.enabled ? 'totp' : 'recovery_codes', { byAdmin: true });
      return toAdminView((await accounts.findById(id)) ?? account);
    },

    async requirePasswordReset(id, by = NO_AUTHORITY) {
      const account = await load(id);
      if (isAdmin(account)) await requireAdminPower(by, 'user.password_reset_required', account);
      const updated = await accounts.setPasswordResetRequired(id, true);
      if (!updated) throw notFound();
      // NOTE: a live SSO session would let the person into applications without signing in
      // (no reset) until it expires: end them, so the next authorization request signs in.
      // Tokens already issued stay valid; disable the account to revoke those too.
      const endedSessions = await revokeAccountRecords(db, id, ['Session'], loggedOut);
      await record('user.password_reset_required', by, account, { endedSessions });
      return toAdminView(updated);
    },

    async delete(id, by = NO_AUTHORITY) {
      refuseSelf(by, id, 'delete');
      const account = typeof id === 'string' && id ? await accounts.findById(id) : undefined;
      if (!account) return false;
      if (isAdmin(account)) await requireAdminPower(by, 'user.deleted', account);
      // The same deletion as the person's own (account-deletion.service.ts): account, what was
      // issued to it, its working data, its audit trail without personal data, one event, and the
      // notice to the address (the last thing written to it).
      return deletion.delete(account, { actor: by.actor, notices });
    },
  };
}
