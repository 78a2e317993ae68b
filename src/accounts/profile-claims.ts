import { z } from 'zod';

import { FieldValidationError } from '../http/app-error.js';
import { fieldMessagesFrom } from '../http/field-problems.js';

/**
 * The standard claims an account may hold beyond its email (OpenID Connect Core §5.1): the
 * `profile` scope's, and `phone` and `address` where the deployment stores them. Stored under
 * their claim names, so that what apps receive is what was stored; inputs (the account centre,
 * the console, the management API) use camelCase names and are checked here, once.
 */

/** The `profile` scope's claims besides `name` (kept on the account itself) and `updated_at`. */
export const PROFILE_CLAIM_NAMES = [
  'given_name',
  'family_name',
  'middle_name',
  'nickname',
  'preferred_username',
  'profile',
  'picture',
  'website',
  'gender',
  'birthdate',
  'zoneinfo',
  'locale',
] as const;

export const ADDRESS_MEMBERS = ['formatted', 'street_address', 'locality', 'region', 'postal_code', 'country'] as const;

export type ProfileClaimName = (typeof PROFILE_CLAIM_NAMES)[number];
export type AddressClaim = Partial<Record<(typeof ADDRESS_MEMBERS)[number], string>>;

/** What an account stores, by claim name (absent: not set). */
export interface StoredProfile extends Partial<Record<ProfileClaimName, string>> {
  phone_number?: string | undefined;
  phone_number_verified?: boolean | undefined;
  address?: AddressClaim | undefined;
}

/** A stored profile as a flow's records carry it (JSON written by this server): its shape, checked. */
export const storedProfileSchema = z.object({
  ...Object.fromEntries(PROFILE_CLAIM_NAMES.map((name) => [name, z.string().optional()])),
  phone_number: z.string().optional(),
  phone_number_verified: z.boolean().optional(),
  address: z.object(Object.fromEntries(ADDRESS_MEMBERS.map((name) => [name, z.string().optional()]))).optional(),
  // NOTE: Object.fromEntries loses the key types; the keys are exactly the interface's.
}) as unknown as z.ZodType<StoredProfile>;

/** Which optional scopes this deployment stores (PROFILE_PHONE, PROFILE_ADDRESS). */
export interface ProfileScopes {
  phone: boolean;
  address: boolean;
}

/** The optional scopes this deployment offers (its accounts store their claims). */
export function optionalProfileScopes(scopes: ProfileScopes): string[] {
  return [...(scopes.phone ? ['phone'] : []), ...(scopes.address ? ['address'] : [])];
}

/** The claims per scope, for the provider's `claims` configuration and for release. */
export function claimsByScope(scopes: ProfileScopes): Record<string, string[]> {
  return {
    profile: ['name', ...PROFILE_CLAIM_NAMES, 'updated_at'],
    ...(scopes.phone ? { phone: ['phone_number', 'phone_number_verified'] } : {}),
    ...(scopes.address ? { address: ['address'] } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

/**
 * An empty string (or null, or only spaces) removes the value; anything else must pass `schema`,
 * whose own messages are reported (a union would report a generic one).
 */
const clearable = (schema: z.ZodType<string, string>) =>
  z
    .string()
    .nullable()
    .optional()
    .transform((value, ctx): string | null | undefined => {
      if (value === undefined || value === null) return value;
      if (value.trim() === '') return '';
      const parsed = schema.safeParse(value);
      if (parsed.success) return parsed.data;
      for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message });
      return z.NEVER;
    });

const text = (max: number) =>
  z
    .string()
    .max(max * 4)
    // eslint-disable-next-line no-control-regex -- the point is to refuse control characters
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters')
    .transform((s) => s.trim())
    .pipe(z.string().max(max, `must be at most ${max} characters`));

/** Text that may run over several lines (addresses): line breaks, but no other control characters. */
const multiline = (max: number) =>
  z
    .string()
    .max(max * 4)
    // eslint-disable-next-line no-control-regex -- the point is to refuse control characters other than line breaks
    .refine((s) => !/[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f]/.test(s), 'must not contain control characters other than line breaks')
    .transform((s) => s.replace(/\r\n?/g, '\n').trim())
    .pipe(z.string().max(max, `must be at most ${max} characters`));

/**
 * An https URL (a picture or page apps link to or load: plain http would be mixed content, and
 * javascript: or data: URLs would be worse).
 */
const webUrl = text(2000).refine((s) => {
  const url = URL.parse(s);
  return url !== null && url.protocol === 'https:' && !url.username && !url.password;
}, 'must be an https URL');

/** IANA time zone names (OIDC Core §5.1 `zoneinfo`), as this runtime knows them. */
const zoneinfo = text(64).refine((s) => {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(s)) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: s });
    return true;
  } catch {
    return false;
  }
}, 'must be a time zone name such as Europe/Paris');

/** A BCP 47 language tag (OIDC Core §5.1 `locale`), e.g. en-US or fr-CA; stored canonical. */
const locale = text(35)
  .refine((s) => {
    if (!/^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/.test(s)) return false;
    try {
      return Intl.getCanonicalLocales(s).length === 1;
    } catch {
      return false;
    }
  }, 'must be a language tag such as en-US')
  .transform((s) => Intl.getCanonicalLocales(s)[0] ?? s);

/** OIDC Core §5.1 `birthdate`: YYYY-MM-DD, YYYY alone, or 0000-MM-DD when the year is withheld. */
const birthdate = text(10).refine((s) => {
  if (/^\d{4}$/.test(s)) return true;
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!match) return false;
  const [, y, m, d] = match.map(Number) as [number, number, number, number];
  const date = new Date(Date.UTC(y === 0 ? 2000 : y, m - 1, d));
  return date.getUTCMonth() === m - 1 && date.getUTCDate() === d && (y === 0 || date.getTime() <= Date.now());
}, 'must be a date as YYYY-MM-DD (or the year alone)');

/** OIDC Core §5.1 recommends E.164 for `phone_number`: + and 7 to 15 digits; spaces and dashes are dropped. */
const phoneNumber = text(40)
  .transform((s) => s.replace(/[\s().-]/g, ''))
  .refine((s) => /^\+[1-9]\d{6,14}$/.test(s), 'must be an international number starting with +, such as +33 1 23 45 67 89');

const addressSchema = z.strictObject({
  formatted: clearable(multiline(500)),
  streetAddress: clearable(multiline(200)),
  locality: clearable(text(100)),
  region: clearable(text(100)),
  postalCode: clearable(text(20)),
  country: clearable(text(100)),
});

export const profileInputSchema = z
  .strictObject({
    givenName: clearable(text(100)).describe('`given_name`'),
    familyName: clearable(text(100)).describe('`family_name`'),
    middleName: clearable(text(100)).describe('`middle_name`'),
    nickname: clearable(text(100)).describe('`nickname`'),
    preferredUsername: clearable(text(100).refine((s) => !/\s/.test(s), 'must not contain spaces')).describe('`preferred_username`'),
    profile: clearable(webUrl).describe('`profile`: the URL of a profile page (https)'),
    picture: clearable(webUrl).describe('`picture`: the URL of a picture (https)'),
    website: clearable(webUrl).describe('`website`: the URL of a web page or blog (https)'),
    gender: clearable(text(50)).describe('`gender`'),
    birthdate: clearable(birthdate).describe('`birthdate`: YYYY-MM-DD, or YYYY'),
    zoneinfo: clearable(zoneinfo).describe('`zoneinfo`: an IANA time zone, e.g. Europe/Paris'),
    locale: clearable(locale).describe('`locale`: a BCP 47 language tag, e.g. en-US'),
    phoneNumber: clearable(phoneNumber).describe('`phone_number` (E.164, e.g. +33123456789); stored only with PROFILE_PHONE'),
    phoneNumberVerified: z.boolean().optional().describe('`phone_number_verified`: administrators only'),
    address: addressSchema.nullable().optional().describe('`address`; null removes it; stored only with PROFILE_ADDRESS'),
  })
  .describe('Standard claims (OpenID Connect Core §5.1); fields left out stay as they are, null or "" removes one');

export type ProfileInput = z.input<typeof profileInputSchema>;

const CAMEL_TO_CLAIM: Record<string, ProfileClaimName> = {
  givenName: 'given_name',
  familyName: 'family_name',
  middleName: 'middle_name',
  nickname: 'nickname',
  preferredUsername: 'preferred_username',
  profile: 'profile',
  picture: 'picture',
  website: 'website',
  gender: 'gender',
  birthdate: 'birthdate',
  zoneinfo: 'zoneinfo',
  locale: 'locale',
};

const ADDRESS_TO_CLAIM: Record<string, (typeof ADDRESS_MEMBERS)[number]> = {
  formatted: 'formatted',
  streetAddress: 'street_address',
  locality: 'locality',
  region: 'region',
  postalCode: 'postal_code',
  country: 'country',
};

/** 400 `user.invalid` with a message per field (`fields`, camelCase input names). */
export class ProfileValidationError extends FieldValidationError {
  override name = 'ProfileValidationError';

  constructor(fields: Record<string, string>) {
    super('user.invalid', fields);
  }
}

/** Who changes the profile: the person may not say their phone number is verified. */
export interface ProfileChangeOptions {
  scopes: ProfileScopes;
  byAdmin: boolean;
}

/**
 * The checked input applied to what is stored: the new profile, and the claim names that changed.
 * Throws ProfileValidationError for any refused field (nothing is applied then).
 */
export function applyProfileInput(current: StoredProfile, input: unknown, options: ProfileChangeOptions): { profile: StoredProfile; changed: string[] } {
  const parsed = profileInputSchema.safeParse(input);
  const fields: Record<string, string> = parsed.success ? {} : fieldMessagesFrom(parsed.error, 'first');
  const data: Partial<z.output<typeof profileInputSchema>> = parsed.success ? parsed.data : {};
  if (!options.scopes.phone && (data.phoneNumber || data.phoneNumberVerified !== undefined)) fields.phoneNumber = 'phone numbers are not stored by this server';
  if (!options.scopes.address && data.address) fields.address = 'addresses are not stored by this server';
  if (!options.byAdmin && data.phoneNumberVerified !== undefined) fields.phoneNumberVerified = 'only an administrator can mark a phone number verified';
  if (Object.keys(fields).length > 0) throw new ProfileValidationError(fields);

  const next: StoredProfile = { ...current };
  for (const [key, claim] of Object.entries(CAMEL_TO_CLAIM)) {
    const value = (data as Record<string, unknown>)[key] as string | null | undefined;
    if (value === undefined) continue;
    if (value === null || value === '') delete next[claim];
    else next[claim] = value;
  }
  if (data.phoneNumber !== undefined) {
    if (!data.phoneNumber) {
      delete next.phone_number;
      delete next.phone_number_verified;
    } else if (data.phoneNumber !== current.phone_number) {
      next.phone_number = data.phoneNumber;
      // A new number is not verified, whoever typed it, unless an administrator says so below.
      next.phone_number_verified = false;
    }
  }
  if (data.phoneNumberVerified !== undefined && next.phone_number) next.phone_number_verified = data.phoneNumberVerified;
  if (data.address !== undefined) {
    const address: AddressClaim = { ...(data.address === null ? {} : current.address) };
    for (const [key, member] of Object.entries(ADDRESS_TO_CLAIM)) {
      const value = data.address === null ? null : (data.address as Record<string, string | null | undefined>)[key];
      if (value === undefined) continue;
      if (value === null || value === '') delete address[member];
      else address[member] = value;
    }
    if (Object.keys(address).length > 0) next.address = address;
    else delete next.address;
  }
  const keys = new Set([...Object.keys(current), ...Object.keys(next)]) as Set<keyof StoredProfile>;
  const changed = [...keys].filter((k) => JSON.stringify(current[k]) !== JSON.stringify(next[k]));
  return { profile: next, changed };
}

/** The claims released for these claim names (scopes already resolved to names by the caller). */
export function profileClaims(profile: StoredProfile | undefined, wanted: ReadonlySet<string>): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  if (!profile) return claims;
  for (const name of PROFILE_CLAIM_NAMES) if (wanted.has(name) && profile[name]) claims[name] = profile[name];
  if (wanted.has('phone_number') && profile.phone_number) claims.phone_number = profile.phone_number;
  if (wanted.has('phone_number_verified') && profile.phone_number) claims.phone_number_verified = profile.phone_number_verified === true;
  if (wanted.has('address') && profile.address && Object.keys(profile.address).length > 0) claims.address = { ...profile.address };
  return claims;
}

/** What is stored, under the input's camelCase names (the API's views, the forms' values). */
export interface ProfileFields {
  givenName?: string;
  familyName?: string;
  middleName?: string;
  nickname?: string;
  preferredUsername?: string;
  profile?: string;
  picture?: string;
  website?: string;
  gender?: string;
  birthdate?: string;
  zoneinfo?: string;
  locale?: string;
  phoneNumber?: string;
  phoneNumberVerified?: boolean;
  address?: { formatted?: string; streetAddress?: string; locality?: string; region?: string; postalCode?: string; country?: string };
}

export function profileFields(profile: StoredProfile | undefined): ProfileFields {
  const fields: ProfileFields = {};
  if (!profile) return fields;
  for (const [key, claim] of Object.entries(CAMEL_TO_CLAIM)) if (profile[claim]) (fields as Record<string, unknown>)[key] = profile[claim];
  if (profile.phone_number) {
    fields.phoneNumber = profile.phone_number;
    fields.phoneNumberVerified = profile.phone_number_verified === true;
  }
  if (profile.address) {
    const address: Record<string, string> = {};
    for (const [key, member] of Object.entries(ADDRESS_TO_CLAIM)) if (profile.address[member]) address[key] = profile.address[member];
    if (Object.keys(address).length > 0) fields.address = address;
  }
  return fields;
}
