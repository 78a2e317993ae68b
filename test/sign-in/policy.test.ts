/**
 * Who must show a second factor and at which level: mfaReasons, mfaRequirements and
 * requiredAssurance, directly. No HTTP, no database.
 */
import { describe, expect, it } from '@jest/globals';

import { defaults } from '../../config/defaults.js';
import type { MfaInput, MfaSettings } from '../../src/oidc/policy.js';
import { mfaReasons, mfaRequirements, requiredAssurance } from '../../src/oidc/policy.js';

const settings: MfaSettings = { mfa: { requiredForAdmins: true, emailFallback: true }, acr: { ...defaults.acr } };
const { singleFactor, emailSecondFactor, multiFactor } = defaults.acr;

const person = { totpEnabled: false, roles: [] as 'admin'[] };
const withApp = { totpEnabled: true, roles: [] as 'admin'[] };
const admin = { totpEnabled: false, roles: ['admin'] as 'admin'[] };
const adminWithApp = { totpEnabled: true, roles: ['admin'] as 'admin'[] };
const input = (account: MfaInput['account'], clientRequiresMfa = false, acrValues: string[] = []): MfaInput => ({ account, clientRequiresMfa, acrValues });

describe('mfaRequirements: each reason with the level it needs', () => {
  it.each([
    ['nobody asks for anything', input(person), []],
    ['an authenticator app always counts', input(withApp), [['totp_enrolled', 3]]],
    ['require_mfa takes any second factor', input(person, true), [['client_requires_mfa', 2]]],
    ['acr_values: the email class', input(person, false, [emailSecondFactor]), [['acr_requested', 2]]],
    ['acr_values: the multi-factor class', input(person, false, [multiFactor]), [['acr_requested', 3]]],
    ['acr_values: both two-factor classes → the lower', input(person, false, [multiFactor, emailSecondFactor]), [['acr_requested', 2]]],
    ['acr_values: the single-factor class is no reason', input(person, false, [singleFactor]), []],
    ['acr_values: unknown classes are ignored', input(person, false, ['urn:example:gold']), []],
    ['administrators need an app', input(admin), [['admin_role', 3]]],
    [
      'every reason at once, in a stable order',
      input(adminWithApp, true, [multiFactor]),
      [
        ['totp_enrolled', 3],
        ['client_requires_mfa', 2],
        ['acr_requested', 3],
        ['admin_role', 3],
      ],
    ],
  ] as [string, MfaInput, [string, number][]][])('%s', (_name, given, expected) => {
    expect([...mfaRequirements(given, settings)]).toEqual(expected);
    expect(mfaReasons(given, settings)).toEqual(expected.map(([reason]) => reason));
    expect(requiredAssurance(given, settings)).toBe(Math.max(1, ...expected.map(([, level]) => level)));
  });

  it('MFA_REQUIRED_FOR_ADMINS=false: the admin role is no reason', () => {
    const relaxed = { ...settings, mfa: { ...settings.mfa, requiredForAdmins: false } };
    expect(mfaReasons(input(admin), relaxed)).toEqual([]);
    expect(requiredAssurance(input(admin), relaxed)).toBe(1);
    // The app still counts for an administrator who has one.
    expect(mfaReasons(input(adminWithApp), relaxed)).toEqual(['totp_enrolled']);
  });

  it('a require_mfa client that asks for the multi-factor class gets level 3', () => {
    expect(requiredAssurance(input(person, true, [multiFactor]), settings)).toBe(3);
  });
});
