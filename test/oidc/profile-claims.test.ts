/**
 * Standard claims (OpenID Connect Core §5.1) an account holds, released per scope (§5.4) and one
 * by one through the `claims` request parameter (§5.5); `phone` and `address` where the
 * deployment stores them. openid-client is the relying party.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { AccountView } from '../../src/accounts/account.service.js';
import { ProfileValidationError } from '../../src/accounts/profile-claims.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, rpFor, signInForTokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

const USER = { email: 'profile-claims@example.test', password: 'correct horse battery staple', name: 'Ada Lovelace' };

const PROFILE = {
  givenName: 'Ada',
  familyName: 'Lovelace',
  nickname: 'Countess',
  preferredUsername: 'ada',
  picture: 'https://img.example.test/ada.png',
  website: 'https://ada.example.test/',
  zoneinfo: 'Europe/London',
  locale: 'en-gb',
  birthdate: '1815-12-10',
  phoneNumber: '+44 20 7946 0958',
  phoneNumberVerified: true,
  address: { streetAddress: '12 St James’s Square', locality: 'London', postalCode: 'SW1Y 4JH', country: 'United Kingdom' },
};

describe('profile, phone and address claims', () => {
  let server: TestServer;
  let client: CreatedClient;
  let account: AccountView;

  beforeAll(async () => {
    server = await startTestServer('profile_claims', { logLevel: 'warn', env: { PROFILE_PHONE: 'true', PROFILE_ADDRESS: 'true' } });
    account = await server.deps.accounts.create({ ...USER, emailVerified: true });
    const updated = await server.deps.accounts.updateProfile(account.id, PROFILE, { scopes: server.config.profileScopes, byAdmin: true });
    account = updated!.account;
    client = await server.deps.clients.create({
      name: 'Profile RP',
      redirectUris: [REDIRECT_URI],
      scopes: ['openid', 'email', 'profile', 'phone', 'address'],
    });
  });

  afterAll(async () => {
    await server.close();
  });

  it('publishes the scopes and claims in discovery', async () => {
    const metadata = (await rpFor(server, client)).serverMetadata();
    expect(metadata.scopes_supported).toEqual(expect.arrayContaining(['profile', 'phone', 'address']));
    expect(metadata.claims_supported).toEqual(expect.arrayContaining(['given_name', 'picture', 'zoneinfo', 'locale', 'phone_number', 'address', 'updated_at']));
    expect(metadata.claims_parameter_supported).toBe(true);
  });

  it('profile: the standard claims the account has, in userinfo; not phone or address', async () => {
    const rp = await rpFor(server, client);
    const { tokens } = await signInForTokens(rp, new UserAgent(server.url), USER, { scope: 'openid profile' });
    const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, account.id);
    expect(userinfo).toStrictEqual({
      sub: account.id,
      name: 'Ada Lovelace',
      given_name: 'Ada',
      family_name: 'Lovelace',
      nickname: 'Countess',
      preferred_username: 'ada',
      picture: 'https://img.example.test/ada.png',
      website: 'https://ada.example.test/',
      zoneinfo: 'Europe/London',
      locale: 'en-GB',
      birthdate: '1815-12-10',
      updated_at: Math.floor(account.profileUpdatedAt.getTime() / 1000),
    });
  });

  it('phone and address: their claims only', async () => {
    const rp = await rpFor(server, client);
    const { tokens } = await signInForTokens(rp, new UserAgent(server.url), USER, { scope: 'openid phone address' });
    const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, account.id);
    expect(userinfo).toStrictEqual({
      sub: account.id,
      phone_number: '+442079460958',
      phone_number_verified: true,
      address: { street_address: '12 St James’s Square', locality: 'London', postal_code: 'SW1Y 4JH', country: 'United Kingdom' },
    });
  });

  it('the claims parameter: single claims in the ID token, an essential one included, without their scopes', async () => {
    const rp = await rpFor(server, client);
    const claims = JSON.stringify({
      id_token: { given_name: { essential: true }, email: null, locale: null },
      userinfo: { picture: { essential: true } },
    });
    const { tokens } = await signInForTokens(rp, new UserAgent(server.url), USER, { scope: 'openid', claims });
    const idToken = tokens.claims();
    expect(idToken).toMatchObject({ sub: account.id, given_name: 'Ada', email: USER.email, locale: 'en-GB' });
    expect(idToken).not.toHaveProperty('family_name');
    expect(idToken).not.toHaveProperty('picture');
    const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, account.id);
    expect(userinfo).toStrictEqual({ sub: account.id, picture: 'https://img.example.test/ada.png' });
  });

  it('refuses bad values field by field (400 user.invalid), storing nothing of the input', async () => {
    const before = await server.deps.accounts.findById(account.id);
    const attempt = server.deps.accounts.updateProfile(
      account.id,
      {
        givenName: 'Grace',
        picture: 'javascript:alert(1)',
        website: 'http://plain.example.test/',
        zoneinfo: 'Mars/Olympus_Mons',
        locale: 'not a locale',
        birthdate: '1815-02-30',
        phoneNumber: '020 7946',
        nickname: 'x'.repeat(101),
        familyName: 'Line\u0000break',
        address: { country: 'y'.repeat(101), planet: 'Earth' },
      },
      { scopes: server.config.profileScopes, byAdmin: false },
    );
    await expect(attempt).rejects.toBeInstanceOf(ProfileValidationError);
    const error = (await attempt.catch((err: unknown) => err)) as ProfileValidationError;
    expect(error.status).toBe(400);
    expect(Object.keys(error.fields).sort()).toEqual(
      ['address.country', 'address.planet', 'birthdate', 'familyName', 'locale', 'nickname', 'phoneNumber', 'picture', 'website', 'zoneinfo'].sort(),
    );
    expect(error.fields.picture).toBe('must be an https URL');
    expect(error.fields.zoneinfo).toMatch(/time zone/);
    const after = await server.deps.accounts.findById(account.id);
    expect(after?.profile).toEqual(before?.profile);
    expect(after?.profileUpdatedAt).toEqual(before?.profileUpdatedAt);
  });

  it('a person cannot mark their own number verified, and a new number is unverified', async () => {
    const self = { scopes: server.config.profileScopes, byAdmin: false };
    await expect(server.deps.accounts.updateProfile(account.id, { phoneNumberVerified: true }, self)).rejects.toMatchObject({ fields: { phoneNumberVerified: expect.any(String) } });
    const other = await server.deps.accounts.create({ email: 'phone-owner@example.test', password: USER.password });
    const changed = await server.deps.accounts.updateProfile(other.id, { phoneNumber: '+33 1 23 45 67 89', givenName: 'Camille' }, self);
    expect(changed?.account.profile).toMatchObject({ phone_number: '+33123456789', phone_number_verified: false, given_name: 'Camille' });
    expect(changed?.changed.sort()).toEqual(['given_name', 'phone_number', 'phone_number_verified']);
    expect(changed!.account.profileUpdatedAt.getTime()).toBeGreaterThan(other.profileUpdatedAt.getTime() - 1);
    // Clearing: "" or null removes a claim; the address goes with null.
    const cleared = await server.deps.accounts.updateProfile(other.id, { phoneNumber: '', givenName: null }, self);
    expect(cleared?.account.profile).toEqual({});
  });

  it('phone and address are refused where the deployment does not store them', async () => {
    const plain = await startTestServer('profile_claims_plain', { logLevel: 'warn' });
    try {
      const person = await plain.deps.accounts.create({ email: 'plain@example.test', password: USER.password });
      const options = { scopes: plain.config.profileScopes, byAdmin: true };
      await expect(plain.deps.accounts.updateProfile(person.id, { phoneNumber: '+33123456789' }, options)).rejects.toMatchObject({ status: 400, fields: { phoneNumber: expect.any(String) } });
      await expect(plain.deps.accounts.updateProfile(person.id, { address: { locality: 'Paris' } }, options)).rejects.toMatchObject({ status: 400, fields: { address: expect.any(String) } });
      const res = await fetch(`${plain.url}/.well-known/openid-configuration`);
      const metadata = (await res.json()) as { scopes_supported: string[] };
      expect(metadata.scopes_supported).not.toContain('phone');
      expect(metadata.scopes_supported).not.toContain('address');
    } finally {
      await plain.close();
    }
  });
});
