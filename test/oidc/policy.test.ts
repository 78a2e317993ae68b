/**
 * The MFA policy as a table: which level a sign-in must reach, which level its factors reach, the
 * `acr` that says so, and which second factors are offered. No HTTP, no database.
 */
import { describe, expect, it } from '@jest/globals';

import { defaults } from '../../config/defaults.js';
import type { Factor, MfaSettings } from '../../src/oidc/policy.js';
import { acrFor, assuranceOf, assuranceOfAmr, amrFor, requiredAssurance, secondFactorOptions } from '../../src/oidc/policy.js';

const settings: MfaSettings = { mfa: { requiredForAdmins: true, emailFallback: true }, acr: { ...defaults.acr } };
const { singleFactor, emailSecondFactor, multiFactor } = defaults.acr;

const person = { totpEnabled: false, roles: [] as 'admin'[] };
const withApp = { totpEnabled: true, roles: [] as 'admin'[] };
const admin = { totpEnabled: false, roles: ['admin'] as 'admin'[] };

describe('the level a sign-in must reach', () => {
  it.each([
    ['a person, a plain client', person, false, [], 1],
    ['a person, a require_mfa client', person, true, [], 2],
    ['a person with an authenticator app, a plain client', withApp, false, [], 3],
    ['an administrator, a plain client', admin, false, [], 3],
    ['acr_values: the single-factor class', person, false, [singleFactor], 1],
    ['acr_values: the email second-factor class', person, false, [emailSecondFactor], 2],
    ['acr_values: the multi-factor class', person, false, [multiFactor], 3],
    ['acr_values: both two-factor classes (either will do: the lower)', person, false, [multiFactor, emailSecondFactor], 2],
    ['acr_values: a class we do not know', person, false, ['urn:example:other'], 1],
    ['acr_values: single-factor first, then multi-factor (preference: the first one met)', person, false, [singleFactor, multiFactor], 1],
    ['acr_values: multi-factor first, single-factor offered too (no step-up)', person, false, [multiFactor, singleFactor], 1],
    ['acr_values: an unknown class, then the email class', person, false, ['urn:example:other', emailSecondFactor], 2],
    ['a require_mfa client asked for the multi-factor class', person, true, [multiFactor], 3],
  ] as const)('%s → %i', (_name, account, clientRequiresMfa, acrValues, level) => {
    expect(requiredAssurance({ account, clientRequiresMfa, acrValues }, settings)).toBe(level);
  });

  it('administrators need nothing more with MFA_REQUIRED_FOR_ADMINS=false', () => {
    expect(requiredAssurance({ account: admin, clientRequiresMfa: false, acrValues: [] }, { ...settings, mfa: { ...settings.mfa, requiredForAdmins: false } })).toBe(1);
  });
});

describe('the level factors reach, and what the ID token says', () => {
  it.each([
    [['pwd'], 1, singleFactor, ['pwd']],
    [['email'], 1, singleFactor, ['email']],
    [['pwd', 'pwd'], 1, singleFactor, ['pwd']],
    [['pwd', 'email'], 2, emailSecondFactor, ['pwd', 'email', 'mfa']],
    [['email', 'pwd'], 2, emailSecondFactor, ['email', 'pwd', 'mfa']],
    [['pwd', 'totp'], 3, multiFactor, ['pwd', 'otp', 'mfa']],
    [['pwd', 'recovery'], 3, multiFactor, ['pwd', 'otp', 'mfa']],
    [['email', 'totp'], 3, multiFactor, ['email', 'otp', 'mfa']],
    [['pwd', 'email', 'totp'], 3, multiFactor, ['pwd', 'email', 'otp', 'mfa']],
  ] as [Factor[], number, string, string[]][])('%j → level %i, acr %s, amr %j', (factors, level, acr, amr) => {
    expect(assuranceOf(factors)).toBe(level);
    expect(acrFor(factors, settings)).toBe(acr);
    expect(amrFor(factors)).toEqual(amr);
    expect(assuranceOfAmr(amr)).toBe(level);
  });
});

describe('the second factors offered', () => {
  const plain = { totpEnabled: false, hasPassword: true };
  it.each([
    ['after the password, level 2', plain, ['pwd'], 2, { totp: false, email: true, password: false, enrol: false }],
    ['after the password, level 3: the app only (set it up)', plain, ['pwd'], 3, { totp: false, email: false, password: false, enrol: true }],
    ['after an email code, level 2: the password', plain, ['email'], 2, { totp: false, email: false, password: true, enrol: false }],
    ['after an email code, no password, level 2: set up the app', { totpEnabled: false, hasPassword: false }, ['email'], 2, { totp: false, email: false, password: false, enrol: true }],
    ['with an app, at any level: the app', { totpEnabled: true, hasPassword: true }, ['pwd'], 2, { totp: true, email: false, password: false, enrol: false }],
  ] as const)('%s', (_name, account, done, level, options) => {
    expect(secondFactorOptions(account, done as readonly Factor[], settings, level)).toEqual(options);
  });

  it('without MFA_EMAIL_FALLBACK, a password sign-in at level 2 sets up the app', () => {
    expect(secondFactorOptions(plain, ['pwd'], { ...settings, mfa: { ...settings.mfa, emailFallback: false } }, 2)).toEqual({ totp: false, email: false, password: false, enrol: true });
  });
});
