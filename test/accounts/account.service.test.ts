import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import argon2 from 'argon2';
import type { Connection } from 'mongoose';

import { createAccountModel } from '../../src/accounts/account.model.js';
import type { AccountModel } from '../../src/accounts/account.model.js';
import { createAccountService } from '../../src/accounts/account.service.js';
import type { AccountService, AccountView } from '../../src/accounts/account.service.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';
import { appErrorOf } from '../support/app-error.js';

const logger = createLogger({ level: 'error', format: 'json', write: () => {} });
const INVALID = { ok: false, reason: 'invalid_credentials' } as const;

/** The stored shape, as the native driver sees it. */
interface RawAccount {
  _id: string;
  email: string;
  passwordHash?: string;
  disabledAt: Date | null;
  [field: string]: unknown;
}

let sequence = 0;
/** A unique address per call, so tests do not depend on each other's accounts. */
const uniqueEmail = (name = 'user') => `${name}.${Date.now().toString(36)}.${(sequence += 1)}@example.com`;

describe('account service', () => {
  let connection: Connection;
  let Account: AccountModel;
  let accounts: AccountService;

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('accounts'), logger);
    Account = createAccountModel(connection);
    accounts = createAccountService({ Account, logger });
    await accounts.ensureIndexes();
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  /** The document as MongoDB holds it, read with the native driver (no Mongoose casting). */
  const rawDoc = async (id: string) => connection.db?.collection<RawAccount>('accounts').findOne({ _id: id });

  describe('create', () => {
    it('stores the email trimmed and lower-cased, and returns a view without the hash', async () => {
      const local = `Ada.${Date.now()}`;
      const created = await accounts.create({ email: `  ${local}@Example.COM  `, password: 'correct horse battery', name: ' Ada ' });
      expect(created.email).toBe(`${local.toLowerCase()}@example.com`);
      expect(created.name).toBe('Ada');
      expect(created.emailVerified).toBe(false);
      expect(created.disabled).toBe(false);
      expect(created.roles).toEqual([]);
      expect(created).not.toHaveProperty('passwordHash');
      const doc = await rawDoc(created.id);
      expect(doc?.email).toBe(`${local.toLowerCase()}@example.com`);
      // The sub is opaque: it does not carry the email.
      expect(created.id).not.toContain(local.toLowerCase());
      // Letters and digits, like client ids: never a leading '-' where people paste it.
      expect(created.id).toMatch(/^[A-Za-z0-9]{22}$/);
    });

    it('refuses a duplicate email in any case or spacing with 409 account.email_taken', async () => {
      const email = uniqueEmail('dup');
      await accounts.create({ email, password: 'first password' });
      for (const variant of [email, email.toUpperCase(), ` ${email.replace('dup', 'DuP')} `]) {
        const err = await appErrorOf(accounts.create({ email: variant, password: 'second password' }));
        expect(err.status).toBe(409);
        expect(err.code).toBe('account.email_taken');
      }
      expect(await Account.countDocuments({ email })).toBe(1);
    });

    it('concurrent sign-ups with one email create exactly one account', async () => {
      const email = uniqueEmail('race');
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => accounts.create({ email: i % 2 ? email.toUpperCase() : email, password: 'some password' })),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toMatchObject({ status: 409, code: 'account.email_taken' });
      }
      expect(await Account.countDocuments({ email })).toBe(1);
    });

    it('hashes the password with argon2id m=19456,t=2,p=1 and stores no plaintext', async () => {
      const password = 'Plaintext-Never-Stored-42';
      const created = await accounts.create({ email: uniqueEmail('hash'), password });
      const doc = await rawDoc(created.id);
      const hash = String(doc?.passwordHash);
      expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
      expect(await argon2.verify(hash, password)).toBe(true);
      const everything = JSON.stringify(doc);
      expect(everything).not.toContain(password);
      expect(everything.toLowerCase()).not.toContain(password.toLowerCase());
      expect(everything).not.toContain(Buffer.from(password).toString('base64'));
    });

    it('salts every hash: one password, two accounts, two hashes', async () => {
      const a = await accounts.create({ email: uniqueEmail('salt'), password: 'same password' });
      const b = await accounts.create({ email: uniqueEmail('salt'), password: 'same password' });
      expect((await rawDoc(a.id))?.passwordHash).not.toBe((await rawDoc(b.id))?.passwordHash);
    });

    it.each([
      ['NUL', 'Ada\u0000Lovelace'],
      ['a bell', 'Ada\u0007'],
      ['a newline', 'Ada\nLovelace'],
      ['a tab', 'Ada\tLovelace'],
      ['an escape sequence', '\u001b[31mAda'],
      ['DEL', 'Ada\u007f'],
    ])('refuses a name containing %s with 400', async (_what, name) => {
      const err = await appErrorOf(accounts.create({ email: uniqueEmail('ctl'), password: 'long enough', name }));
      expect(err.status).toBe(400);
      expect(err.code).toBe('account.invalid');
      expect(err.message).toMatch(/^name: /);
    });

    it.each([
      ['a malformed email', { email: 'not-an-email', password: 'long enough' }, /^email: /],
      ['an email with NUL', { email: 'a\u0000b@example.com', password: 'long enough' }, /^email: /],
      ['a short password', { email: 'short@example.com', password: 'short' }, /^password: .*at least 8/],
      ['a password with NUL', { email: 'nul@example.com', password: 'long\u0000enough' }, /^password: /],
      ['a name of 201 characters', { email: 'long@example.com', password: 'long enough', name: 'x'.repeat(201) }, /^name: /],
    ])('refuses %s with 400 account.invalid naming the field', async (_what, input, message) => {
      const err = await appErrorOf(accounts.create(input));
      expect(err.status).toBe(400);
      expect(err.code).toBe('account.invalid');
      expect(err.message).toMatch(message);
      expect(err.expose).toBe(true);
    });

    it('does not echo the password in a validation error', async () => {
      const err = await appErrorOf(accounts.create({ email: 'bad', password: 'my-secret-password' }));
      expect(err.message).not.toContain('my-secret-password');
    });
  });

  describe('authenticate', () => {
    const password = 'the right password';
    let email: string;
    let account: AccountView;

    beforeAll(async () => {
      email = uniqueEmail('auth');
      account = await accounts.create({ email, password, name: 'Auth Person' });
    });

    it('accepts the right password, with the email in any case and surrounding spaces', async () => {
      for (const typed of [email, email.toUpperCase(), `  ${email} `]) {
        const result = await accounts.authenticate(typed, password);
        expect(result.ok).toBe(true);
        if (result.ok) {
          expect(result.account.id).toBe(account.id);
          expect(result.account.email).toBe(email);
          expect(result.account).not.toHaveProperty('passwordHash');
        }
      }
    });

    it.each([
      ['a wrong password', (e: string) => [e, 'the wrong password']],
      ['the right password in another case', (e: string) => [e, 'THE RIGHT PASSWORD']],
      ['an empty password', (e: string) => [e, '']],
      ['an unknown email', () => [uniqueEmail('nobody'), 'the right password']],
      ['a malformed email', () => ['not an email', 'the right password']],
      ['an empty email', () => ['', 'the right password']],
      ['an email with NUL', (e: string) => [`${e}\u0000`, 'the right password']],
      ['an over-long email', () => [`${'a'.repeat(300)}@example.com`, 'the right password']],
    ] as [string, (e: string) => [string, string]][])('refuses %s with exactly invalid_credentials', async (_what, args) => {
      const [typedEmail, typedPassword] = args(email);
      expect(await accounts.authenticate(typedEmail, typedPassword)).toStrictEqual(INVALID);
    });

    it('refuses a disabled account with the right password, with the same answer; re-enabling restores it', async () => {
      const disabledEmail = uniqueEmail('disabled');
      const created = await accounts.create({ email: disabledEmail, password });

      const off = await accounts.setDisabled(created.id, true);
      expect(off?.disabled).toBe(true);
      expect((await accounts.findById(created.id))?.disabled).toBe(true);
      expect((await rawDoc(created.id))?.disabledAt).toBeInstanceOf(Date);
      expect(await accounts.authenticate(disabledEmail, password)).toStrictEqual(INVALID);
      expect(await accounts.authenticate(disabledEmail, 'wrong password')).toStrictEqual(INVALID);

      const on = await accounts.setDisabled(created.id, false);
      expect(on?.disabled).toBe(false);
      expect((await rawDoc(created.id))?.disabledAt).toBeNull();
      expect((await accounts.authenticate(disabledEmail, password)).ok).toBe(true);
    });

    it('setDisabled of an unknown id is undefined', async () => {
      expect(await accounts.setDisabled('no-such-account', true)).toBeUndefined();
    });

    describe('does the same argon2 work whatever the failure (no user enumeration)', () => {
      it('unknown email: the first call makes the dummy hash once, every call verifies against it', async () => {
        // A service of its own, so its dummy hash does not exist yet.
        const fresh = createAccountService({ Account, logger });
        const hash = jest.spyOn(argon2, 'hash');
        const verify = jest.spyOn(argon2, 'verify');

        expect(await fresh.authenticate(uniqueEmail('ghost'), 'whatever password')).toStrictEqual(INVALID);
        expect(hash).toHaveBeenCalledTimes(1);
        expect(verify).toHaveBeenCalledTimes(1);
        const dummy = await (hash.mock.results[0]?.value as Promise<string>);
        expect(dummy).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
        expect(verify.mock.calls[0]?.[0]).toBe(dummy);
        expect(verify.mock.calls[0]?.[1]).toBe('whatever password');

        expect(await fresh.authenticate(uniqueEmail('ghost'), 'another password')).toStrictEqual(INVALID);
        expect(await fresh.authenticate('malformed', 'another password')).toStrictEqual(INVALID);
        expect(hash).toHaveBeenCalledTimes(1);
        expect(verify).toHaveBeenCalledTimes(3);
        for (const call of verify.mock.calls) expect(call[0]).toBe(dummy);
      });

      it('concurrent first sign-ins with unknown emails share one dummy hash', async () => {
        const fresh = createAccountService({ Account, logger });
        const hash = jest.spyOn(argon2, 'hash');
        const results = await Promise.all(
          Array.from({ length: 4 }, () => fresh.authenticate(uniqueEmail('ghost'), 'whatever password')),
        );
        for (const result of results) expect(result).toStrictEqual(INVALID);
        expect(hash).toHaveBeenCalledTimes(1);
      });

      it('wrong password and disabled account: one verification against the stored hash', async () => {
        const disabledEmail = uniqueEmail('disabled-work');
        const disabled = await accounts.create({ email: disabledEmail, password });
        await accounts.setDisabled(disabled.id, true);
        const verify = jest.spyOn(argon2, 'verify');

        expect(await accounts.authenticate(email, 'the wrong password')).toStrictEqual(INVALID);
        expect(verify).toHaveBeenCalledTimes(1);
        expect(verify.mock.calls[0]?.[0]).toBe(String((await rawDoc(account.id))?.passwordHash));

        expect(await accounts.authenticate(disabledEmail, password)).toStrictEqual(INVALID);
        expect(verify).toHaveBeenCalledTimes(2);
        expect(verify.mock.calls[1]?.[0]).toBe(String((await rawDoc(disabled.id))?.passwordHash));
      });

      it('an unknown email takes real work, not an early return (sanity floor, not a timing test)', async () => {
        await accounts.authenticate(uniqueEmail('warm'), 'x'.repeat(12)); // the dummy hash exists now
        const started = process.hrtime.bigint();
        await accounts.authenticate(uniqueEmail('ghost'), 'x'.repeat(12));
        const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
        // One argon2id verification at m=19456,t=2 is ~25 ms here; 3 ms rules out skipping it.
        expect(elapsedMs).toBeGreaterThanOrEqual(3);
      });
    });

    it('upgrades a hash made with older parameters on the next successful sign-in', async () => {
      const upgradeEmail = uniqueEmail('upgrade');
      const created = await accounts.create({ email: upgradeEmail, password });
      const weak = await argon2.hash(password, { type: argon2.argon2id, memoryCost: 4096, timeCost: 3, parallelism: 1 });
      await Account.updateOne({ _id: created.id }, { $set: { passwordHash: weak } });

      expect(await accounts.authenticate(upgradeEmail, 'wrong password')).toStrictEqual(INVALID);
      expect((await rawDoc(created.id))?.passwordHash).toBe(weak);

      expect((await accounts.authenticate(upgradeEmail, password)).ok).toBe(true);
      const upgraded = String((await rawDoc(created.id))?.passwordHash);
      expect(upgraded).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      expect(JSON.stringify(await rawDoc(created.id))).not.toContain(password);
      expect((await accounts.authenticate(upgradeEmail, password)).ok).toBe(true);
    });

    it('an account with a corrupt stored hash fails cleanly instead of crashing', async () => {
      const corruptEmail = uniqueEmail('corrupt');
      const created = await accounts.create({ email: corruptEmail, password });
      await Account.updateOne({ _id: created.id }, { $set: { passwordHash: 'not-a-hash' } });
      expect(await accounts.authenticate(corruptEmail, password)).toStrictEqual(INVALID);
    });
  });

  describe('lookups', () => {
    it('findById, findByEmail (any case) and list return views', async () => {
      const email = uniqueEmail('lookup');
      const created = await accounts.create({ email, password: 'long enough', emailVerified: true, roles: ['admin'] });
      expect(await accounts.findById(created.id)).toStrictEqual(created);
      expect(await accounts.findByEmail(` ${email.toUpperCase()} `)).toStrictEqual(created);
      expect(await accounts.findByEmail('not an email')).toBeUndefined();
      expect(await accounts.findById('missing')).toBeUndefined();
      const listed = await accounts.list();
      expect(listed.find((a) => a.id === created.id)).toStrictEqual(created);
      expect(created.roles).toEqual(['admin']);
      expect(created.emailVerified).toBe(true);
    });
  });

  describe('claims by scope (OIDC Core §5.4)', () => {
    let account: AccountView;
    beforeAll(async () => {
      account = await accounts.create({ email: uniqueEmail('claims'), password: 'long enough', name: 'Claire', emailVerified: true });
    });

    it('openid only: just sub', () => {
      expect(accounts.claims(account, new Set(['openid']))).toStrictEqual({ sub: account.id });
    });

    it('email: email and email_verified', () => {
      expect(accounts.claims(account, new Set(['openid', 'email']))).toStrictEqual({
        sub: account.id,
        email: account.email,
        email_verified: true,
      });
    });

    it('profile: name and updated_at in epoch seconds', () => {
      expect(accounts.claims(account, new Set(['openid', 'profile']))).toStrictEqual({
        sub: account.id,
        name: 'Claire',
        updated_at: Math.floor(account.profileUpdatedAt.getTime() / 1000),
      });
    });

    it('all scopes together, and nothing for scopes it does not know', () => {
      const claims = accounts.claims(account, new Set(['openid', 'email', 'profile', 'offline_access', 'phone']));
      expect(Object.keys(claims).sort()).toEqual(['email', 'email_verified', 'name', 'sub', 'updated_at']);
    });

    it('profile without a name leaves name out', async () => {
      const nameless = await accounts.create({ email: uniqueEmail('nameless'), password: 'long enough' });
      expect(accounts.claims(nameless, new Set(['openid', 'profile']))).toStrictEqual({
        sub: nameless.id,
        updated_at: Math.floor(nameless.profileUpdatedAt.getTime() / 1000),
      });
      expect(accounts.claims(nameless, new Set(['email']))).toMatchObject({ email_verified: false });
    });
  });
});
