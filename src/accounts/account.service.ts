import type { mongo } from 'mongoose';
import { z } from 'zod';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { isDuplicateKey } from '../db/claims.js';
import { AppError } from '../http/app-error.js';
import type { Logger } from '../logging/logger.js';
import type { AccountModel, AccountRecord, Role } from './account.model.js';
import type { ProfileChangeOptions, StoredProfile } from './profile-claims.js';
import { applyProfileInput, profileClaims, storedProfileSchema } from './profile-claims.js';
import {
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
  createDummyHash,
  hashPassword,
  passwordNeedsRehash,
  verifyPassword,
} from './password.js';

/** Printable text without NUL or other control characters (FerretDB refuses NUL; nobody needs them). */
export const safeText = (max: number) =>
  z
    .string()
    .max(max)
    // eslint-disable-next-line no-control-regex -- the point is to refuse control characters
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters');

export const emailSchema = safeText(254)
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.email({ message: 'must be an email address' }));

export const passwordSchema = z
  .string()
  .min(PASSWORD_MIN_LENGTH, `must be at least ${PASSWORD_MIN_LENGTH} characters`)
  .max(PASSWORD_MAX_LENGTH)
  .refine((s) => !s.includes('\u0000'), 'must not contain NUL');

export const newAccountSchema = z.object({
  email: emailSchema,
  /** Omitted: a passwordless account, which signs in with a code by email. */
  password: passwordSchema.optional(),
  name: safeText(200).transform((s) => s.trim()).optional(),
  roles: z.array(z.enum(['admin'])).default([]),
  emailVerified: z.boolean().default(false),
});

export type NewAccountInput = z.input<typeof newAccountSchema>;

export interface AccountView {
  id: string;
  email: string;
  emailVerified: boolean;
  name: string | undefined;
  roles: Role[];
  disabled: boolean;
  /** Whether the account can sign in with a password at all (accounts may be passwordless). */
  hasPassword: boolean;
  /** An authenticator app (TOTP) is enrolled and active. */
  totpEnabled: boolean;
  /** The next sign-in ends on the new-password page (set by an administrator). */
  passwordResetRequired: boolean;
  /** Standard claims by claim name (profile-claims.ts). */
  profile: StoredProfile;
  /** The `updated_at` claim: when the name or the profile last changed. */
  profileUpdatedAt: Date;
  createdAt: Date;
  updatedAt: Date;
}

export type AuthenticationResult =
  | { ok: true; account: AccountView }
  /** One reason for every failure: the caller must not tell an unknown email from a wrong password. */
  | { ok: false; reason: 'invalid_credentials' };

export interface AccountService {
  create(input: NewAccountInput): Promise<AccountView>;
  /**
   * `seen` is told the account the address names (undefined: none), for the audit record of a
   * refusal, so that the caller need not read it again; the answer itself never says.
   */
  authenticate(email: string, password: string, seen?: (account: AccountView | undefined) => void): Promise<AuthenticationResult>;
  findById(id: string): Promise<AccountView | undefined>;
  findByEmail(email: string): Promise<AccountView | undefined>;
  list(): Promise<AccountView[]>;
  setDisabled(id: string, disabled: boolean): Promise<AccountView | undefined>;
  /** Checks the password of a known account (second step of a sign-in, removing a factor). */
  verifyPassword(id: string, password: string): Promise<boolean>;
  /** The person proved they receive mail at this address (a sign-in code arrived); a pending sign-up becomes a normal account. */
  markEmailVerified(id: string): Promise<void>;
  /**
   * Sets a new password (passwordSchema, argon2id) and clears `passwordResetRequired`.
   * Throws 400 `account.invalid_password` (the message never repeats the password) or 404 `account.not_found`.
   */
  changePassword(id: string, newPassword: string): Promise<AccountView>;
  /** Marks (or unmarks) the account so that its next sign-in sets a new password. */
  setPasswordResetRequired(id: string, required: boolean): Promise<AccountView | undefined>;
  /** Name and roles; `name: null` (or blank) removes the name. Input already validated by the caller. */
  update(id: string, changes: { name?: string | null | undefined; roles?: Role[] | undefined }): Promise<AccountView | undefined>;
  /**
   * Changes standard claims (profile-claims.ts `profileInputSchema`); only the claims that change
   * are written. Throws ProfileValidationError (400, a message per field) before writing anything.
   */
  updateProfile(id: string, input: unknown, options: ProfileChangeOptions): Promise<{ account: AccountView; changed: string[] } | undefined>;
  /** Removes the account document only: the caller revokes what was issued to it (user-admin.service.ts). */
  delete(id: string): Promise<boolean>;
  /**
   * One page of accounts ordered by email (unique, so `afterEmail` is a stable cursor). `search`
   * matches a case-insensitive substring of the email or the name, or the exact id.
   */
  search(options: { search?: string | undefined; limit: number; afterEmail?: string | undefined }): Promise<{ accounts: AccountView[]; total: number; hasMore: boolean }>;
  /**
   * Claims for findAccount: those of the scopes granted (OIDC Core §5.4), and those named one by
   * one (the `claims` request parameter, §5.5). The provider releases only what was asked for.
   */
  claims(account: AccountView, scopes: ReadonlySet<string>, named?: Iterable<string>): Record<string, unknown>;
  ensureIndexes(): Promise<void>;
}

/** Where a request keeps the account it read by id (`rememberRead`): findAccount, and what a flow's records carry. */
export const accountReadKey = (id: string): string => `accounts:find-account:${id}`;

const carriedViewSchema = z.object({
  id: z.string(),
  email: z.string(),
  emailVerified: z.boolean(),
  name: z.string().optional(),
  roles: z.array(z.enum(['admin'])),
  disabled: z.boolean(),
  hasPassword: z.boolean(),
  totpEnabled: z.boolean(),
  passwordResetRequired: z.boolean(),
  profile: storedProfileSchema,
  profileUpdatedAt: z.coerce.date(),
  createdAt: z.coerce.date(),
  updatedAt: z.coerce.date(),
});

// Every AccountView field is carried, and nothing else: a compile error here when a field is added
// to AccountView and not to carriedViewSchema (a flow would otherwise drop it between requests).
type CarriedKeys = keyof z.output<typeof carriedViewSchema>;
const CARRIES_EVERY_FIELD: [keyof AccountView, CarriedKeys] extends [CarriedKeys, keyof AccountView] ? true : never = true;
void CARRIES_EVERY_FIELD;

/**
 * An account view as a flow's records carry it from one request to the next (JSON: dates as
 * strings), or undefined when it is not one.
 */
export function parseCarriedView(value: unknown): AccountView | undefined {
  const parsed = carriedViewSchema.safeParse(value);
  return parsed.success ? { ...parsed.data, name: parsed.data.name } : undefined;
}

function toView(doc: AccountRecord): AccountView {
  return {
    id: doc._id,
    email: doc.email,
    emailVerified: doc.emailVerified,
    name: doc.name ?? undefined,
    roles: doc.roles,
    disabled: Boolean(doc.disabledAt),
    hasPassword: Boolean(doc.passwordHash),
    totpEnabled: Boolean(doc.mfa?.totp?.secretSealed),
    passwordResetRequired: doc.passwordResetRequired === true,
    profile: doc.profile ?? {},
    profileUpdatedAt: doc.profileUpdatedAt ?? doc.createdAt,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface AccountServiceDeps {
  Account: AccountModel;
  logger: Logger;
  clock?: Clock;
}

/** Scope → claim names, for the claims a scope releases (profile-claims.ts has the optional ones). */
const SCOPE_CLAIMS: Record<string, readonly string[]> = {
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username', 'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at'],
  phone: ['phone_number', 'phone_number_verified'],
  address: ['address'],
};

export function createAccountService({ Account, logger, clock = systemClock }: AccountServiceDeps): AccountService {
  // Computed lazily once, then shared by every unknown-email sign-in in this process.
  let dummyHash: Promise<string> | undefined;
  const getDummyHash = () => (dummyHash ??= createDummyHash());

  return {
    async create(input) {
      const parsed = newAccountSchema.safeParse(input);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new AppError('account.invalid', { issue: `${issue?.path.join('.') ?? 'input'}: ${issue?.message ?? 'invalid'}` });
      }
      const { password, ...rest } = parsed.data;
      const passwordHash = password === undefined ? undefined : await hashPassword(password);
      try {
        const doc = await Account.create(passwordHash ? { ...rest, passwordHash } : rest);
        return toView(doc.toObject());
      } catch (err) {
        if (isDuplicateKey(err)) throw new AppError('account.email_taken');
        throw err;
      }
    },

    async authenticate(email, password, seen) {
      const normalised = emailSchema.safeParse(email);
      const doc = normalised.success ? await Account.findOne({ email: normalised.data }).lean() : null;
      seen?.(doc ? toView(doc) : undefined);
      if (!doc?.passwordHash) {
        // Same work as a real verification, then the same answer.
        await verifyPassword(await getDummyHash(), password);
        return { ok: false, reason: 'invalid_credentials' };
      }
      const valid = await verifyPassword(doc.passwordHash, password);
      if (!valid || doc.disabledAt) {
        // NOTE: a disabled account gets the same answer as a wrong password, after the same
        // work, so the sign-in page does not reveal which accounts exist or are disabled.
        return { ok: false, reason: 'invalid_credentials' };
      }
      if (passwordNeedsRehash(doc.passwordHash)) {
        const passwordHash = await hashPassword(password);
        await Account.updateOne({ _id: doc._id }, { $set: { passwordHash } });
        logger.info('password hash upgraded to current parameters', { accountId: doc._id });
      }
      return { ok: true, account: toView(doc) };
    },

    async findById(id) {
      const doc = await Account.findById(id).lean();
      return doc ? toView(doc) : undefined;
    },

    async findByEmail(email) {
      const normalised = emailSchema.safeParse(email);
      if (!normalised.success) return undefined;
      const doc = await Account.findOne({ email: normalised.data }).lean();
      return doc ? toView(doc) : undefined;
    },

    async list() {
      const docs = await Account.find().sort({ createdAt: 1 }).lean();
      return docs.map(toView);
    },

    async setDisabled(id, disabled) {
      const doc = await Account.findByIdAndUpdate(
        id,
        { $set: { disabledAt: disabled ? clock.now() : null } },
        { returnDocument: 'after' },
      ).lean();
      return doc ? toView(doc) : undefined;
    },

    async verifyPassword(id, password) {
      const doc = await Account.findById(id).lean();
      if (!doc?.passwordHash || doc.disabledAt) {
        await verifyPassword(await getDummyHash(), password);
        return false;
      }
      return verifyPassword(doc.passwordHash, password);
    },

    async markEmailVerified(id) {
      // Also ends a pending self-service sign-up (sign-up.service.ts): the inbox is now proven.
      await Account.updateOne(
        { _id: id, $or: [{ emailVerified: { $ne: true } }, { signUpPendingUntil: { $ne: null } }] },
        { $set: { emailVerified: true }, $unset: { signUpPendingUntil: '' } },
      );
    },

    async changePassword(id, newPassword) {
      const parsed = passwordSchema.safeParse(newPassword);
      if (!parsed.success) {
        throw new AppError('account.invalid_password', { issue: parsed.error.issues[0]?.message ?? 'invalid' });
      }
      const passwordHash = await hashPassword(parsed.data);
      const doc = await Account.findByIdAndUpdate(
        id,
        { $set: { passwordHash, passwordResetRequired: false } },
        { returnDocument: 'after' },
      ).lean();
      if (!doc) throw new AppError('account.not_found');
      return toView(doc);
    },

    async setPasswordResetRequired(id, required) {
      const doc = await Account.findByIdAndUpdate(id, { $set: { passwordResetRequired: required } }, { returnDocument: 'after' }).lean();
      return doc ? toView(doc) : undefined;
    },

    async update(id, changes) {
      const set: Partial<Pick<AccountRecord, 'name' | 'roles'>> = {};
      const unset: Record<string, 1> = {};
      if (changes.name !== undefined) {
        const name = changes.name?.trim();
        if (name) set.name = name;
        else unset.name = 1;
      }
      // The `updated_at` claim moves with the name (read first: only a real change moves it).
      if (changes.name !== undefined) {
        const before = await Account.findById(id, { name: 1 }).lean();
        if (before && (before.name ?? '') !== (changes.name?.trim() ?? '')) (set as Partial<AccountRecord>).profileUpdatedAt = clock.now();
      }
      if (changes.roles !== undefined) set.roles = [...new Set(changes.roles)];
      const update = { ...(Object.keys(set).length > 0 ? { $set: set } : {}), ...(Object.keys(unset).length > 0 ? { $unset: unset } : {}) };
      const doc =
        Object.keys(update).length > 0
          ? await Account.findByIdAndUpdate(id, update, { returnDocument: 'after' }).lean()
          : await Account.findById(id).lean();
      return doc ? toView(doc) : undefined;
    },

    async updateProfile(id, input, options) {
      const doc = await Account.findById(id, { profile: 1 }).lean();
      if (!doc) return undefined;
      const current = doc.profile ?? {};
      const { profile, changed } = applyProfileInput(current, input, options);
      if (changed.length === 0) {
        const unchanged = await Account.findById(id).lean();
        return unchanged ? { account: toView(unchanged), changed } : undefined;
      }
      // One path per claim: a change made meanwhile to another claim (the person and an
      // administrator at once) is kept.
      const set: Record<string, unknown> = { profileUpdatedAt: clock.now() };
      const unset: Record<string, 1> = {};
      for (const claim of changed as (keyof StoredProfile)[]) {
        if (profile[claim] === undefined) unset[`profile.${claim}`] = 1;
        else set[`profile.${claim}`] = profile[claim];
      }
      // NOTE: `profile.x` paths need the object to exist: an account without one gets it whole.
      const update = doc.profile ? { $set: set, ...(Object.keys(unset).length > 0 ? { $unset: unset } : {}) } : { $set: { profileUpdatedAt: set.profileUpdatedAt, profile } };
      const updated = await Account.findByIdAndUpdate(id, update, { returnDocument: 'after' }).lean();
      return updated ? { account: toView(updated), changed } : undefined;
    },

    async delete(id) {
      const result = await Account.deleteOne({ _id: id });
      return result.deletedCount > 0;
    },

    async search({ search, limit, afterEmail }) {
      const and: mongo.Filter<AccountRecord>[] = [];
      if (search) {
        // Emails are stored lower-cased; `i` covers the name. NOTE: FerretDB has no collations,
        // so a case-insensitive regex is the only case-insensitive match on both servers.
        const pattern = escapeRegex(search);
        and.push({ $or: [{ email: { $regex: escapeRegex(search.toLowerCase()) } }, { name: { $regex: pattern, $options: 'i' } }, { _id: search }] });
      }
      const filter = and.length > 0 ? { $and: and } : {};
      const pageFilter = afterEmail ? { $and: [...and, { email: { $gt: afterEmail } }] } : filter;
      const [total, docs] = await Promise.all([
        Account.countDocuments(filter),
        Account.find(pageFilter).sort({ email: 1 }).limit(limit + 1).lean(),
      ]);
      return { accounts: docs.slice(0, limit).map(toView), total, hasMore: docs.length > limit };
    },

    claims(account, scopes, named = []) {
      const wanted = new Set<string>(named);
      for (const scope of scopes) for (const claim of SCOPE_CLAIMS[scope] ?? []) wanted.add(claim);
      const claims: Record<string, unknown> = { sub: account.id };
      if (wanted.has('email')) claims.email = account.email;
      if (wanted.has('email_verified')) claims.email_verified = account.emailVerified;
      if (wanted.has('name') && account.name) claims.name = account.name;
      if (wanted.has('updated_at')) claims.updated_at = Math.floor(account.profileUpdatedAt.getTime() / 1000);
      return { ...claims, ...profileClaims(account.profile, wanted) };
    },

    async ensureIndexes() {
      await Account.createIndexes();
    },
  };
}
