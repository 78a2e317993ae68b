import { createHash, createHmac, randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';
import { generate } from 'otplib';

import { createAccountModel } from '../../src/accounts/account.model.js';
import type { AccountModel } from '../../src/accounts/account.model.js';
import { createAccountService } from '../../src/accounts/account.service.js';
import type { AccountService } from '../../src/accounts/account.service.js';
import {
  RECOVERY_CODE_USES_COLLECTION,
  TOTP_USED_STEPS_COLLECTION,
  ENROLMENT_LIFETIME_MS,
  createRecoveryCodeHasher,
  createTotpService,
} from '../../src/accounts/totp.service.js';
import type { TotpService } from '../../src/accounts/totp.service.js';
import { SecretBoxError, createSecretBox } from '../../src/crypto/secret-box.js';
import type { SecretBox } from '../../src/crypto/secret-box.js';
import { connectDatabase } from '../../src/db/connect.js';
import { AppError } from '../../src/http/app-error.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';
import { createTestClock } from '../support/clock.js';

const logger = createLogger({ level: 'error', format: 'json', write: () => {} });
const STEP_MS = 30_000;
const DAY_MS = 24 * 60 * 60 * 1000;
const RECOVERY_CODE_FORMAT = /^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/;

interface RawAccount {
  _id: string;
  mfa?: {
    totp?: { secretSealed: string; enabledAt: Date; lastUsedStep?: number } | null;
    pendingTotp?: { secretSealed: string; createdAt: Date } | null;
    recoveryCodes?: string[];
  };
}

let sequence = 0;
const uniqueEmail = () => `totp.${Date.now().toString(36)}.${(sequence += 1)}@example.com`;

describe('totp service', () => {
  let connection: Connection;
  let Account: AccountModel;
  let accounts: AccountService;
  let secretBox: SecretBox;
  let totp: TotpService;
  const keys = [{ id: 'k1', key: randomBytes(32) }];
  /** The stored form of a recovery code as this server writes it. */
  const hashRecoveryCode = (canonical: string) => createRecoveryCodeHasher(keys).hash(canonical);
  // 15 s into a time step, so one step either side is a whole step away from the edges; from a UTC
  // midnight about a year ahead of the real clock, not a fixed date, so that no step claim is expired
  // by real time (MongoDB's TTL monitor would remove it mid-test and let a used code through again).
  const clock = createTestClock((Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS + 15_000);
  const advance = (ms: number) => {
    clock.advance(ms);
  };
  /** To 15 s into the next step. */
  const midStep = () => {
    clock.set((Math.floor(clock.nowMs() / STEP_MS) + 1) * STEP_MS + 15_000);
  };

  /** The code an authenticator app shows at `at` (ms). */
  const codeAt = (secret: string, at = clock.nowMs()) => generate({ secret, epoch: Math.floor(at / 1000) });
  const rawAccount = async (id: string) => connection.db!.collection<RawAccount>('accounts').findOne({ _id: id });

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('totp'), logger);
    Account = createAccountModel(connection);
    accounts = createAccountService({ Account, logger });
    await accounts.ensureIndexes();
    secretBox = createSecretBox(keys);
    totp = createTotpService({ Account, db: connection.db!, secretBox, keys, issuer: 'Acme ID', clock });
    await totp.ensureIndexes();
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  const newAccount = async () => {
    const view = await accounts.create({ email: uniqueEmail(), password: 'correct horse battery' });
    return { id: view.id, email: view.email };
  };

  /** An account with an active authenticator, the clock moved on so that now ±1 step are all unused. */
  const enrolled = async () => {
    const account = await newAccount();
    const { secret, sealed } = await totp.beginEnrolment(account);
    const result = await totp.activate(account.id, await codeAt(secret), sealed);
    if (!result.ok) throw new Error(`activation failed: ${result.reason}`);
    advance(2 * STEP_MS);
    return { ...account, secret, recoveryCodes: result.recoveryCodes };
  };

  /** A six-digit code that is not valid anywhere near now for this secret. */
  const wrongCode = async (secret: string) => {
    const valid = new Set(await Promise.all([-2, -1, 0, 1, 2].map((s) => codeAt(secret, clock.nowMs() + s * STEP_MS))));
    for (let n = 0; ; n += 1) {
      const candidate = String(n).padStart(6, '0');
      if (!valid.has(candidate)) return candidate;
    }
  };

  describe('enrolment', () => {
    it('shows a secret, URI and QR code, writes nothing, keeps them across re-renders, and activates with a current code', async () => {
      const account = await newAccount();
      expect(await totp.status(account.id)).toEqual({ enabled: false, recoveryCodesLeft: 0 });
      const before = await rawAccount(account.id);
      const claimsBefore = await connection.db!.collection(TOTP_USED_STEPS_COLLECTION).countDocuments({ accountId: account.id });

      const first = await totp.beginEnrolment(account);
      expect(first.secret).toMatch(/^[A-Z2-7]{32}$/);
      const uri = new URL(first.otpauthUri);
      expect(uri.protocol).toBe('otpauth:');
      expect(uri.host).toBe('totp');
      expect(decodeURIComponent(uri.pathname)).toBe(`/Acme ID:${account.email}`);
      expect(uri.searchParams.get('secret')).toBe(first.secret);
      expect(uri.searchParams.get('issuer')).toBe('Acme ID');
      expect(first.qrCodeDataUrl).toMatch(/^data:image\/png;base64,[A-Za-z0-9+/]+=*$/);
      expect(first.expiresAt).toEqual(new Date(clock.nowMs() + ENROLMENT_LIFETIME_MS));
      // The secret travels sealed (to this account, with its expiry), never in the clear.
      expect(first.sealed).toMatch(/^v1\.k1\./);
      expect(first.sealed.toLowerCase()).not.toContain(first.secret.toLowerCase());

      // Showing the page stored nothing: the account and the claims are as they were.
      expect(await rawAccount(account.id)).toEqual(before);
      expect(await connection.db!.collection(TOTP_USED_STEPS_COLLECTION).countDocuments({ accountId: account.id })).toBe(claimsBefore);

      // A re-render (say after a wrong code) continues the same enrolment; a new page makes a new secret.
      const again = await totp.beginEnrolment(account, { continueFrom: first.sealed });
      expect(again).toMatchObject({ secret: first.secret, sealed: first.sealed, expiresAt: first.expiresAt });
      const other = await totp.beginEnrolment(account);
      expect(other.secret).not.toBe(first.secret);
      expect(await totp.status(account.id)).toMatchObject({ enabled: false });

      const result = await totp.activate(account.id, await codeAt(other.secret), other.sealed);
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      expect(result.recoveryCodes).toHaveLength(10);
      expect(new Set(result.recoveryCodes).size).toBe(10);
      for (const code of result.recoveryCodes) expect(code).toMatch(RECOVERY_CODE_FORMAT);

      expect(await totp.status(account.id)).toEqual({ enabled: true, enabledAt: clock.now(), recoveryCodesLeft: 10 });
      expect((await accounts.findById(account.id))?.totpEnabled).toBe(true);
      const raw = await rawAccount(account.id);
      expect(raw?.mfa?.pendingTotp).toBeNull();
      expect(raw?.mfa?.recoveryCodes).toHaveLength(10);

      // Once active: no second activation (from this page or another), no new enrolment over it,
      // and the next step's code signs in.
      expect(await totp.activate(account.id, await codeAt(other.secret, clock.nowMs() + STEP_MS), other.sealed)).toEqual({ ok: false, reason: 'already_enrolled' });
      expect(await totp.activate(account.id, await codeAt(first.secret), first.sealed)).toEqual({ ok: false, reason: 'already_enrolled' });
      await expect(totp.beginEnrolment(account)).rejects.toMatchObject({ status: 409, code: 'mfa.already_enrolled' });
      advance(STEP_MS);
      expect(await totp.verify(account.id, await codeAt(other.secret))).toEqual({ ok: true });
    });

    it("does not activate with a wrong code, another page's code, another account's page, a forged page or none", async () => {
      const account = await newAccount();
      const { secret: oldSecret, sealed: oldSealed } = await totp.beginEnrolment(account);
      expect(await totp.activate(account.id, await codeAt(oldSecret), '')).toEqual({ ok: false, reason: 'expired' });
      expect(await totp.activate(account.id, await wrongCode(oldSecret), oldSealed)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.status(account.id)).toMatchObject({ enabled: false });

      const { secret, sealed } = await totp.beginEnrolment(account);
      const oldCode = await codeAt(oldSecret);
      if (oldCode !== (await codeAt(secret))) {
        expect(await totp.activate(account.id, oldCode, sealed)).toEqual({ ok: false, reason: 'invalid' });
      }
      // Another account's enrolment page does not open for this one, nor does this one's for it.
      const stranger = await newAccount();
      const strangers = await totp.beginEnrolment(stranger);
      expect(await totp.activate(account.id, await codeAt(strangers.secret), strangers.sealed)).toEqual({ ok: false, reason: 'expired' });
      expect(await totp.activate(stranger.id, await codeAt(secret), sealed)).toEqual({ ok: false, reason: 'expired' });
      // A sealed value of the right shape but made up, or the active secret's own sealing, is no enrolment.
      const forged = secretBox.seal(JSON.stringify({ secret, exp: clock.nowMs() + 60_000 }), `totp:${account.id}`);
      expect(await totp.activate(account.id, await codeAt(secret), forged)).toEqual({ ok: false, reason: 'expired' });
      const tampered = `${sealed.slice(0, -2)}${sealed.endsWith('A') ? 'B' : 'A'}A`;
      expect(await totp.activate(account.id, await codeAt(secret), tampered)).toEqual({ ok: false, reason: 'expired' });
      // Continuing from any of those makes a new secret rather than trusting it.
      expect((await totp.beginEnrolment(account, { continueFrom: strangers.sealed })).secret).not.toBe(strangers.secret);

      expect(await totp.verify(account.id, await codeAt(secret))).toEqual({ ok: false, reason: 'not_enrolled' });
      expect(await totp.status(account.id)).toMatchObject({ enabled: false });
      expect((await totp.activate(account.id, await codeAt(secret), sealed)).ok).toBe(true);
    });

    it('an enrolment page works until it expires, then a re-render makes a new secret', async () => {
      const account = await newAccount();
      const page = await totp.beginEnrolment(account);
      advance(ENROLMENT_LIFETIME_MS - 1000);
      expect((await totp.beginEnrolment(account, { continueFrom: page.sealed })).secret).toBe(page.secret);
      advance(1000);
      expect(await totp.activate(account.id, await codeAt(page.secret), page.sealed)).toEqual({ ok: false, reason: 'expired' });
      const renewed = await totp.beginEnrolment(account, { continueFrom: page.sealed });
      expect(renewed.secret).not.toBe(page.secret);
      expect((await totp.activate(account.id, await codeAt(renewed.secret), renewed.sealed)).ok).toBe(true);
      midStep();
    });

    it('activates one page once when activations race', async () => {
      const account = await newAccount();
      const { secret, sealed } = await totp.beginEnrolment(account);
      const codes = await Promise.all([-1, 0, 1].map((s) => codeAt(secret, clock.nowMs() + s * STEP_MS)));
      const results = await Promise.all(Array.from({ length: 9 }, (_, i) => totp.activate(account.id, codes[i % 3]!, sealed)));
      const winners = results.filter((r) => r.ok);
      expect(winners).toHaveLength(1);
      for (const r of results) if (!r.ok) expect(r.reason).toBe('already_enrolled');
      // The recovery codes handed out are the ones that work.
      const [winner] = winners;
      if (!winner?.ok) throw new Error('unreachable');
      expect(await totp.verifyRecoveryCode(account.id, winner.recoveryCodes[0]!)).toEqual({ ok: true, remaining: 9 });
    });

    it('of two pages (two tabs) activated at once, one wins and its app and recovery codes are the ones kept', async () => {
      const account = await newAccount();
      const pages = await Promise.all([totp.beginEnrolment(account), totp.beginEnrolment(account), totp.beginEnrolment(account)]);
      const results = await Promise.all(pages.map(async (page) => totp.activate(account.id, await codeAt(page.secret), page.sealed)));
      const winning = results.findIndex((r) => r.ok);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      for (const r of results) if (!r.ok) expect(r.reason).toBe('already_enrolled');
      const winner = results[winning];
      if (!winner?.ok) throw new Error('unreachable');
      expect(await totp.verifyRecoveryCode(account.id, winner.recoveryCodes[0]!)).toEqual({ ok: true, remaining: 9 });
      advance(2 * STEP_MS);
      expect(await totp.verify(account.id, await codeAt(pages[winning]!.secret))).toEqual({ ok: true });
    });

    it('an activated page does not turn its app on again after the app was removed', async () => {
      const account = await newAccount();
      const page = await totp.beginEnrolment(account);
      expect((await totp.activate(account.id, await codeAt(page.secret), page.sealed)).ok).toBe(true);
      await totp.remove(account.id);
      advance(2 * STEP_MS);
      expect(await totp.activate(account.id, await codeAt(page.secret), page.sealed)).toEqual({ ok: false, reason: 'already_enrolled' });
      expect(await totp.status(account.id)).toMatchObject({ enabled: false });
    });
  });

  describe('verify', () => {
    it('accepts one step either side of now and refuses two', async () => {
      const { id, secret } = await enrolled();
      const at = (steps: number) => codeAt(secret, clock.nowMs() + steps * STEP_MS);
      const [minus2, minus1, zero, plus1, plus2] = await Promise.all([at(-2), at(-1), at(0), at(1), at(2)]);
      // Refused only when the code is not also the code of a step inside the window.
      const inWindow = new Set([minus1, zero, plus1]);
      if (!inWindow.has(minus2!)) expect(await totp.verify(id, minus2!)).toEqual({ ok: false, reason: 'invalid' });
      if (!inWindow.has(plus2!)) expect(await totp.verify(id, plus2!)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verify(id, minus1!)).toEqual({ ok: true });
      expect(await totp.verify(id, plus1!)).toEqual({ ok: true });
    });

    it('keeps the window at whole steps on the first and the last second of a step', async () => {
      const { id, secret } = await enrolled();
      advance(3 * STEP_MS); // well past the step used for activation
      const stepStart = Math.floor(clock.nowMs() / STEP_MS) * STEP_MS;
      const at = (ms: number) => codeAt(secret, ms);

      clock.set(stepStart);
      const [back2, back1, back0] = await Promise.all([at(stepStart - 2 * STEP_MS), at(stepStart - STEP_MS), at(stepStart)]);
      if (back2 !== back1 && back2 !== back0) expect(await totp.verify(id, back2)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verify(id, back1)).toEqual({ ok: true });

      clock.set(stepStart + STEP_MS - 1000);
      const [ahead0, ahead1, ahead2] = await Promise.all([at(stepStart), at(stepStart + STEP_MS), at(stepStart + 2 * STEP_MS)]);
      if (ahead2 !== ahead1 && ahead2 !== ahead0) expect(await totp.verify(id, ahead2)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verify(id, ahead1)).toEqual({ ok: true });
      midStep();
    });

    it('refuses a code used before in its step', async () => {
      const { id, secret } = await enrolled();
      midStep();
      const code = await codeAt(secret);
      expect(await totp.verify(id, code)).toEqual({ ok: true });
      expect(await totp.verify(id, code)).toEqual({ ok: false, reason: 'replayed' });
      advance(10_000); // still the same step
      expect(await totp.verify(id, code)).toEqual({ ok: false, reason: 'replayed' });
    });

    it('lets exactly one of 20 concurrent submissions of one code through', async () => {
      const { id, secret } = await enrolled();
      const code = await codeAt(secret);
      const results = await Promise.all(Array.from({ length: 20 }, () => totp.verify(id, code)));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok && r.reason === 'replayed')).toHaveLength(19);
    });

    it('refuses an older step of the window after a newer one was used', async () => {
      const { id, secret } = await enrolled();
      const newer = await codeAt(secret, clock.nowMs() + STEP_MS);
      const current = await codeAt(secret);
      const older = await codeAt(secret, clock.nowMs() - STEP_MS);
      expect(await totp.verify(id, newer)).toEqual({ ok: true });
      if (current !== newer) expect(await totp.verify(id, current)).toEqual({ ok: false, reason: 'replayed' });
      if (older !== newer) expect(await totp.verify(id, older)).toEqual({ ok: false, reason: 'replayed' });
      expect((await rawAccount(id))?.mfa?.totp?.lastUsedStep).toBe(Math.floor(clock.nowMs() / STEP_MS) + 1);
    });

    it('refuses anything but six digits without looking the account up, and ignores spaces', async () => {
      // An unknown account would answer not_enrolled: invalid means the input never got that far.
      for (const input of ['', '12345', '1234567', 'abcdef', '12345a', '12-345', '１２３４５６', '١٢٣٤٥٦', ' ', '1'.repeat(100)]) {
        expect(await totp.verify('no-such-account', input)).toEqual({ ok: false, reason: 'invalid' });
        expect(await totp.activate('no-such-account', input, 'v1.k1.x.y.z')).toEqual({ ok: false, reason: 'invalid' });
      }
      expect(await totp.verify('no-such-account', null as unknown as string)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verify('no-such-account', '123456')).toEqual({ ok: false, reason: 'not_enrolled' });

      const { id, secret } = await enrolled();
      const code = await codeAt(secret);
      expect(await totp.verify(id, ` ${code.slice(0, 3)} ${code.slice(3)}\t`)).toEqual({ ok: true });
    });
  });

  describe('recovery codes', () => {
    it('work once each, in any case and spacing, and count down', async () => {
      const { id, recoveryCodes } = await enrolled();
      const [a, b, c] = recoveryCodes as [string, string, string];
      expect(await totp.verifyRecoveryCode(id, a)).toEqual({ ok: true, remaining: 9 });
      expect(await totp.verifyRecoveryCode(id, a)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verifyRecoveryCode(id, ` ${b.toUpperCase().replace('-', ' ')} `)).toEqual({ ok: true, remaining: 8 });
      expect(await totp.verifyRecoveryCode(id, c.replace('-', ''))).toEqual({ ok: true, remaining: 7 });
      expect(await totp.status(id)).toMatchObject({ enabled: true, recoveryCodesLeft: 7 });

      for (const input of ['', 'abcde', 'abcde-abcdu', 'abcde-abcde-abcde', '!!!!!-!!!!!']) {
        expect(await totp.verifyRecoveryCode(id, input)).toEqual({ ok: false, reason: 'invalid' });
      }
      // Well formed but never issued.
      expect(await totp.verifyRecoveryCode(id, '00000-00000')).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verifyRecoveryCode((await newAccount()).id, recoveryCodes[3]!)).toEqual({ ok: false, reason: 'not_enrolled' });
    });

    it('reads o as 0 and i or l as 1, the way they are easily mistyped', async () => {
      const { id, recoveryCodes } = await enrolled();
      const withOnes = recoveryCodes.find((code) => /[01]/.test(code));
      if (!withOnes) return; // about one set in 600 has neither
      const mistyped = withOnes.replace(/0/g, 'O').replace(/1/g, 'l');
      expect(await totp.verifyRecoveryCode(id, mistyped)).toEqual({ ok: true, remaining: 9 });
    });

    it('lets exactly one of concurrent uses of one code through', async () => {
      const { id, recoveryCodes } = await enrolled();
      const code = recoveryCodes[0]!;
      const results = await Promise.all(Array.from({ length: 10 }, () => totp.verifyRecoveryCode(id, code)));
      expect(results.filter((r) => r.ok)).toEqual([{ ok: true, remaining: 9 }]);
      expect(await totp.status(id)).toMatchObject({ recoveryCodesLeft: 9 });
      expect(await totp.verifyRecoveryCode(id, code)).toEqual({ ok: false, reason: 'invalid' });
    });

    it('stay used even when the account write that removed one is lost', async () => {
      const { id, recoveryCodes } = await enrolled();
      const code = recoveryCodes[0]!;
      expect(await totp.verifyRecoveryCode(id, code)).toEqual({ ok: true, remaining: 9 });
      // What a concurrent write on FerretDB could do: put the used hash back.
      const hash = hashRecoveryCode(code.replace('-', ''));
      await connection.db!.collection<RawAccount>('accounts').updateOne({ _id: id }, { $push: { 'mfa.recoveryCodes': hash } });
      expect(await totp.verifyRecoveryCode(id, code)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.status(id)).toMatchObject({ recoveryCodesLeft: 9 });
    });

    it('regenerate replaces every code', async () => {
      const { id, recoveryCodes: old } = await enrolled();
      expect(await totp.verifyRecoveryCode(id, old[0]!)).toMatchObject({ ok: true });
      const fresh = await totp.regenerateRecoveryCodes(id);
      expect(fresh).toHaveLength(10);
      expect(new Set(fresh).size).toBe(10);
      expect(fresh.filter((code) => old.includes(code))).toEqual([]);
      expect(await totp.status(id)).toMatchObject({ recoveryCodesLeft: 10 });
      for (const code of old.slice(0, 3)) expect(await totp.verifyRecoveryCode(id, code)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verifyRecoveryCode(id, fresh[0]!)).toEqual({ ok: true, remaining: 9 });

      const err = await totp.regenerateRecoveryCodes((await newAccount()).id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({ status: 409, code: 'mfa.not_enrolled' });
    });
  });

  describe('recovery code storage', () => {
    const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
    const canonical = (code: string) => code.replace('-', '');

    it('is an HMAC under a key derived from the current encryption key, not SHA-256, nor keyed with the raw key', async () => {
      const { id, recoveryCodes } = await enrolled();
      const stored = (await rawAccount(id))?.mfa?.recoveryCodes ?? [];
      expect(stored).toHaveLength(10);
      for (const code of recoveryCodes) {
        const mine = stored.find((entry) => entry === hashRecoveryCode(canonical(code)));
        expect(mine).toMatch(/^h1\.k1\.[A-Za-z0-9_-]{43}$/);
        const rawKeyMac = createHmac('sha256', keys[0]!.key).update(canonical(code)).digest('base64url');
        for (const entry of stored) {
          expect(entry).not.toContain(sha256(canonical(code)));
          expect(entry).not.toContain(sha256(code));
          expect(entry).not.toContain(rawKeyMac);
        }
      }
    });

    it('differs between two servers with different keys, and one server cannot verify the other\'s codes', async () => {
      const code = 'k3x9q7mf2a';
      const a = createRecoveryCodeHasher([{ id: 'k1', key: randomBytes(32) }]);
      const b = createRecoveryCodeHasher([{ id: 'k1', key: randomBytes(32) }]);
      expect(a.hash(code)).not.toBe(b.hash(code));
      expect(a.hash(code)).toBe(a.hash(code));
      expect(a.find(code, [a.hash(code)])).toBe(a.hash(code));
      expect(b.find(code, [a.hash(code)])).toBeUndefined();

      // Through the service: another server (same database, other key) refuses this one's codes.
      const { id, recoveryCodes } = await enrolled();
      const otherKeys = [{ id: 'k1', key: randomBytes(32) }];
      const otherServer = createTotpService({ Account, db: connection.db!, secretBox: createSecretBox(otherKeys), keys: otherKeys, issuer: 'Acme ID', clock });
      expect(await otherServer.verifyRecoveryCode(id, recoveryCodes[0]!)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.verifyRecoveryCode(id, recoveryCodes[0]!)).toEqual({ ok: true, remaining: 9 });
    });

    it('keeps verifying after a key rotation; codes made afterwards use the new key', async () => {
      const { id, recoveryCodes } = await enrolled();
      const rotatedKeys = [{ id: 'k2', key: randomBytes(32) }, ...keys];
      const rotated = createTotpService({ Account, db: connection.db!, secretBox: createSecretBox(rotatedKeys), keys: rotatedKeys, issuer: 'Acme ID', clock });
      expect(await rotated.verifyRecoveryCode(id, recoveryCodes[0]!)).toEqual({ ok: true, remaining: 9 });
      expect(await rotated.verifyRecoveryCode(id, recoveryCodes[0]!)).toEqual({ ok: false, reason: 'invalid' });
      expect(await rotated.status(id)).toMatchObject({ recoveryCodesLeft: 9 });

      const fresh = await rotated.regenerateRecoveryCodes(id);
      const stored = (await rawAccount(id))?.mfa?.recoveryCodes ?? [];
      expect(stored.every((entry) => entry.startsWith('h1.k2.'))).toBe(true);
      expect(await rotated.verifyRecoveryCode(id, fresh[0]!)).toEqual({ ok: true, remaining: 9 });
      // A server that does not have the new key yet cannot verify them (nothing opens without its key).
      expect(await totp.verifyRecoveryCode(id, fresh[1]!)).toEqual({ ok: false, reason: 'invalid' });
    });

    it('codes stored the old way (bare SHA-256) still work, once each, until replaced', async () => {
      const { id } = await enrolled();
      const legacy = ['abcde-fghjk', '01234-56789', 'zyxwv-tsrqp'];
      await connection.db!.collection<RawAccount>('accounts').updateOne({ _id: id }, { $set: { 'mfa.recoveryCodes': legacy.map((c) => sha256(canonical(c))) } });
      expect(await totp.status(id)).toMatchObject({ recoveryCodesLeft: 3 });

      expect(await totp.verifyRecoveryCode(id, legacy[0]!.toUpperCase())).toEqual({ ok: true, remaining: 2 });
      expect(await totp.verifyRecoveryCode(id, legacy[0]!)).toEqual({ ok: false, reason: 'invalid' });
      expect((await rawAccount(id))?.mfa?.recoveryCodes).toEqual(legacy.slice(1).map((c) => sha256(canonical(c))));

      // Regenerating replaces them with keyed hashes: the old ones stop working.
      await totp.regenerateRecoveryCodes(id);
      expect(await totp.verifyRecoveryCode(id, legacy[1]!)).toEqual({ ok: false, reason: 'invalid' });
      expect((await rawAccount(id))?.mfa?.recoveryCodes?.every((entry) => entry.startsWith('h1.k1.'))).toBe(true);
    });
  });

  describe('at rest', () => {
    it('keeps the secret sealed to its account and the recovery codes hashed', async () => {
      const account = await newAccount();
      const { secret, sealed: enrolment } = await totp.beginEnrolment(account);
      const result = await totp.activate(account.id, await codeAt(secret), enrolment);
      if (!result.ok) throw new Error(result.reason);
      const raw = await rawAccount(account.id);
      const stored = JSON.stringify(raw).toLowerCase();
      expect(stored).not.toContain(secret.toLowerCase());
      expect(stored).not.toContain(Buffer.from(secret).toString('base64').toLowerCase());
      for (const code of result.recoveryCodes) {
        expect(stored).not.toContain(code);
        expect(stored).not.toContain(code.replace('-', ''));
      }
      expect(raw?.mfa?.recoveryCodes?.every((h) => /^h1\.k1\.[A-Za-z0-9_-]{43}$/.test(h))).toBe(true);
      // Nor in the claim collections.
      for (const name of [TOTP_USED_STEPS_COLLECTION, RECOVERY_CODE_USES_COLLECTION]) {
        const docs = await connection.db!.collection(name).find({}).toArray();
        expect(JSON.stringify(docs).toLowerCase()).not.toContain(secret.toLowerCase());
      }

      const sealed = raw!.mfa!.totp!.secretSealed;
      expect(sealed).toMatch(/^v1\.k1\./);
      expect(secretBox.open(sealed, `totp:${account.id}`)).toBe(secret);
      const other = await newAccount();
      expect(() => secretBox.open(sealed, `totp:${other.id}`)).toThrow(SecretBoxError);

      // Moved onto another account, it does not open there: verification fails closed.
      await connection.db!.collection<RawAccount>('accounts').updateOne({ _id: other.id }, { $set: { mfa: { totp: { secretSealed: sealed, enabledAt: new Date() } } } });
      await expect(totp.verify(other.id, await codeAt(secret, clock.nowMs() + STEP_MS))).rejects.toThrow(SecretBoxError);
    });
  });

  describe('remove', () => {
    it('clears the authenticator, pending secret and recovery codes, and allows a new enrolment', async () => {
      const account = await enrolled();
      await totp.remove(account.id);
      expect(await totp.status(account.id)).toEqual({ enabled: false, recoveryCodesLeft: 0 });
      expect((await accounts.findById(account.id))?.totpEnabled).toBe(false);
      const raw = await rawAccount(account.id);
      expect(raw?.mfa?.totp).toBeNull();
      expect(raw?.mfa?.pendingTotp).toBeNull();
      expect(raw?.mfa?.recoveryCodes).toBeUndefined();
      expect(await totp.verify(account.id, await codeAt(account.secret))).toEqual({ ok: false, reason: 'not_enrolled' });
      expect(await totp.verifyRecoveryCode(account.id, account.recoveryCodes[0]!)).toEqual({ ok: false, reason: 'not_enrolled' });

      const again = await totp.beginEnrolment(account);
      expect(again.secret).not.toBe(account.secret);
      advance(STEP_MS);
      expect((await totp.activate(account.id, await codeAt(again.secret), again.sealed)).ok).toBe(true);
    });

    it('a new app enrolled right after the old one was used signs in within the same minute', async () => {
      // A lost phone: the old app's code was used in this step, the person removes it and enrols
      // a new one at once. The old app's used steps say nothing about the new app's codes.
      const account = await enrolled();
      midStep();
      expect(await totp.verify(account.id, await codeAt(account.secret))).toEqual({ ok: true });
      await totp.remove(account.id);
      const again = await totp.beginEnrolment(account);
      // Activated with the code of the step before (the window allows it), as a slow typist would.
      expect((await totp.activate(account.id, await codeAt(again.secret, clock.nowMs() - STEP_MS), again.sealed)).ok).toBe(true);
      expect(await totp.verify(account.id, await codeAt(again.secret))).toEqual({ ok: true });
      // Replay protection holds for the new app as for the old one.
      expect(await totp.verify(account.id, await codeAt(again.secret))).toEqual({ ok: false, reason: 'replayed' });
    });

    it('is harmless without an authenticator', async () => {
      const account = await newAccount();
      await totp.remove(account.id);
      expect(await totp.status(account.id)).toEqual({ enabled: false, recoveryCodesLeft: 0 });
    });
  });

  describe('sweep', () => {
    it('removes expired step claims and settled recovery claims, and never revives a used code', async () => {
      const { id, secret, recoveryCodes } = await enrolled();
      const steps = connection.db!.collection(TOTP_USED_STEPS_COLLECTION);
      const uses = connection.db!.collection(RECOVERY_CODE_USES_COLLECTION);
      expect(await totp.verify(id, await codeAt(secret))).toEqual({ ok: true });
      expect(await steps.countDocuments({ accountId: id })).toBeGreaterThanOrEqual(2); // activation and this step

      // Nothing of this account's has expired yet.
      await totp.sweep(clock.now());
      expect(await steps.countDocuments({ accountId: id })).toBeGreaterThanOrEqual(2);

      expect(await totp.verifyRecoveryCode(id, recoveryCodes[0]!)).toMatchObject({ ok: true });
      // A used code whose removal from the account was lost: the claim must outlive the sweep.
      expect(await totp.verifyRecoveryCode(id, recoveryCodes[1]!)).toMatchObject({ ok: true });
      const lostHash = hashRecoveryCode(recoveryCodes[1]!.replace('-', ''));
      await connection.db!.collection<RawAccount>('accounts').updateOne({ _id: id }, { $push: { 'mfa.recoveryCodes': lostHash } });

      const dayLater = new Date(clock.nowMs() + 25 * 60 * 60 * 1000);
      const removed = await totp.sweep(dayLater);
      expect(removed).toBeGreaterThanOrEqual(3);
      expect(await steps.countDocuments({ accountId: id })).toBe(0);
      // The cleanly used code's claim went; the other stayed and its hash was pulled again.
      expect(await uses.countDocuments({ accountId: id })).toBe(1);
      expect((await rawAccount(id))?.mfa?.recoveryCodes).not.toContain(lostHash);
      expect(await totp.verifyRecoveryCode(id, recoveryCodes[1]!)).toEqual({ ok: false, reason: 'invalid' });

      // The next sweep sees it gone and lets the claim go too; the code stays refused.
      await totp.sweep(dayLater);
      expect(await uses.countDocuments({ accountId: id })).toBe(0);
      for (const code of recoveryCodes.slice(0, 2)) expect(await totp.verifyRecoveryCode(id, code)).toEqual({ ok: false, reason: 'invalid' });
      expect(await totp.status(id)).toMatchObject({ recoveryCodesLeft: 8 });
    });
  });
});
