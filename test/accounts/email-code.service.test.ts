import { createHash } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import {
  EMAIL_CODES_COLLECTION,
  EMAIL_CODE_CLAIMS_COLLECTION,
  EMAIL_CODE_RESEND_CLAIMS_COLLECTION,
  createEmailCodeService,
  type EmailCodeService,
  type IssueResult,
} from '../../src/accounts/email-code.service.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';
import { createTestClock } from '../support/clock.js';

const POLICY = { ttlSeconds: 600, resendIntervalSeconds: 60, maxAttempts: 5 };
/** Claims outlive their code by a grace period (clock skew between nodes); a sweep must wait past it. */
const GRACE_SECONDS = 5 * 60;
const DAY_MS = 24 * 60 * 60 * 1000;

describe('email code service', () => {
  let connection: Connection;
  // A UTC midnight about a year ahead of the real clock, not a fixed date: nothing stored may be
  // expired by real time, or MongoDB's TTL monitor (and the app's sweep) could remove it mid-test.
  const clock = createTestClock((Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS);
  const advance = (seconds: number) => {
    clock.advance(Math.round(seconds * 1000));
  };
  let seq = 0;
  /** A fresh interaction uid and address per test: the suite shares one database and one clock. */
  const fresh = () => {
    seq += 1;
    return { binding: `interaction-uid-${seq}`, email: `person${seq}@example.com` };
  };

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('email_code'), createLogger({ level: 'error', format: 'json', write: () => {} }));
    await createEmailCodeService(connection.db!, POLICY, clock).ensureIndexes();
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  const service = (policy = POLICY): EmailCodeService => createEmailCodeService(connection.db!, policy, clock);

  function issued(result: IssueResult): string {
    if (!result.ok) throw new Error(`expected a code, got ${JSON.stringify(result)}`);
    return result.code;
  }

  /** Any six digits but these. */
  const wrong = (code: string) => (code === '000000' ? '000001' : '000000');

  it('issues six digits that work once, for the account they were issued to', async () => {
    const s = service();
    const { binding, email } = fresh();
    const result = await s.issue({ email: ` ${email.toUpperCase()} `, accountId: 'acct-1', binding, purpose: 'sign-in' });
    const code = issued(result);
    expect(code).toMatch(/^\d{6}$/);
    expect(result).toMatchObject({ expiresAt: new Date(clock.nowMs() + POLICY.ttlSeconds * 1000) });

    expect(await s.verify({ binding, purpose: 'sign-in', code })).toEqual({ ok: true, accountId: 'acct-1', email });
    expect(await s.verify({ binding, purpose: 'sign-in', code })).toEqual({ ok: false, reason: 'missing' });
    expect(await s.pending({ binding, purpose: 'sign-in' })).toBeUndefined();
  });

  it('kills a code after maxAttempts wrong entries: even the right one is then refused', async () => {
    const s = service();
    const { binding, email } = fresh();
    const code = issued(await s.issue({ email, accountId: 'acct-2', binding, purpose: 'sign-in' }));
    const reasons = [];
    for (let i = 0; i < POLICY.maxAttempts; i += 1) reasons.push(await s.verify({ binding, purpose: 'sign-in', code: wrong(code) }));
    expect(reasons).toEqual([
      ...Array.from({ length: POLICY.maxAttempts - 1 }, () => ({ ok: false, reason: 'invalid' })),
      { ok: false, reason: 'exhausted' },
    ]);
    expect(await s.verify({ binding, purpose: 'sign-in', code })).toEqual({ ok: false, reason: 'exhausted' });
  });

  it('lets exactly one of 20 concurrent verifications of the right code through', async () => {
    const s = service();
    const { binding, email } = fresh();
    const code = issued(await s.issue({ email, accountId: 'acct-3', binding, purpose: 'sign-in' }));
    const results = await Promise.all(Array.from({ length: 20 }, () => s.verify({ binding, purpose: 'sign-in', code })));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    for (const r of results.filter((r) => !r.ok)) expect(['missing', 'exhausted']).toContain((r as { reason: string }).reason);
  });

  it('never compares more than maxAttempts of 20 concurrent wrong guesses', async () => {
    const s = service();
    const { binding, email } = fresh();
    const code = issued(await s.issue({ email, accountId: 'acct-4', binding, purpose: 'sign-in' }));
    const [record] = await connection.db!.collection(EMAIL_CODES_COLLECTION).find({ binding }).toArray();
    const results = await Promise.all(Array.from({ length: 20 }, () => s.verify({ binding, purpose: 'sign-in', code: wrong(code) })));

    const id = String(record!._id);
    // ';' follows ':': exactly the ids that start with "<codeId>:attempt:".
    const claimed = await connection
      .db!.collection<{ _id: string }>(EMAIL_CODE_CLAIMS_COLLECTION)
      .countDocuments({ _id: { $gt: `${id}:attempt:`, $lt: `${id}:attempt;` } });
    expect(claimed).toBe(POLICY.maxAttempts);
    expect(results.some((r) => r.ok)).toBe(false);
    expect(results.filter((r) => !r.ok && r.reason === 'invalid').length).toBeLessThanOrEqual(POLICY.maxAttempts - 1);
    expect(await s.verify({ binding, purpose: 'sign-in', code })).toEqual({ ok: false, reason: 'exhausted' });
  });

  it('refuses a code after its lifetime', async () => {
    const s = service();
    const { binding, email } = fresh();
    const code = issued(await s.issue({ email, accountId: 'acct-5', binding, purpose: 'sign-in' }));
    advance(POLICY.ttlSeconds - 1);
    expect(await s.pending({ binding, purpose: 'sign-in' })).toMatchObject({ email });
    advance(1);
    expect(await s.verify({ binding, purpose: 'sign-in', code })).toEqual({ ok: false, reason: 'expired' });
    expect(await s.pending({ binding, purpose: 'sign-in' })).toBeUndefined();
  });

  it('sends at most one code per interaction, address and purpose per resend interval, known account or not', async () => {
    const s = service();
    const first = fresh();
    const second = fresh();
    issued(await s.issue({ email: first.email, accountId: null, binding: first.binding, purpose: 'sign-in' }));

    // The same interaction, other capitalisation: still the same address.
    const refused = await s.issue({ email: first.email.toUpperCase(), accountId: 'acct-6', binding: first.binding, purpose: 'sign-in' });
    expect(refused).toMatchObject({ ok: false, reason: 'throttled' });
    const { retryAfterSeconds } = refused as { retryAfterSeconds: number };
    expect(retryAfterSeconds).toBeGreaterThan(POLICY.resendIntervalSeconds - 1);
    // The interval is kept in slots of 1/30 of it, so the wait may run up to two slots over.
    expect(retryAfterSeconds).toBeLessThanOrEqual(POLICY.resendIntervalSeconds + Math.ceil((2 * POLICY.resendIntervalSeconds) / 30));

    // Other interactions (another browser: perhaps the owner's), other purposes and other
    // addresses are not held up: how many codes an address gets in all is the limiter's count.
    issued(await s.issue({ email: first.email, accountId: 'acct-6', binding: second.binding, purpose: 'sign-in' }));
    issued(await s.issue({ email: first.email, accountId: 'acct-6', binding: first.binding, purpose: 'second-factor' }));

    advance(POLICY.resendIntervalSeconds - 1);
    expect(await s.issue({ email: first.email, accountId: 'acct-6', binding: first.binding, purpose: 'sign-in' })).toMatchObject({
      ok: false,
      reason: 'throttled',
    });
    expect(await s.pending({ binding: first.binding, purpose: 'sign-in' })).toMatchObject({
      email: first.email,
      resendAfterSeconds: retryAfterSeconds - (POLICY.resendIntervalSeconds - 1),
    });
    advance(retryAfterSeconds - (POLICY.resendIntervalSeconds - 1));
    expect(await s.pending({ binding: first.binding, purpose: 'sign-in' })).toMatchObject({ resendAfterSeconds: 0 });
    issued(await s.issue({ email: first.email, accountId: 'acct-6', binding: first.binding, purpose: 'sign-in' }));
  });

  it('gives exactly one of several concurrent issues in one interaction a code', async () => {
    const s = service();
    for (let round = 0; round < 5; round += 1) {
      const { binding, email } = fresh();
      const results = await Promise.all(
        Array.from({ length: round === 0 ? 2 : 10 }, () => s.issue({ email, accountId: 'acct-8', binding, purpose: 'sign-in' })),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      // Spread the rounds over slot boundaries too.
      advance(0.7);
    }
  });

  it("keeps the code another interaction is using when a new one is issued for the same address", async () => {
    const s = service();
    const { binding, email } = fresh();
    const mine = issued(await s.issue({ email, accountId: 'acct-9', binding, purpose: 'sign-in' }));
    // Someone else, in another browser, asks for a code for the same address.
    const other = fresh().binding;
    const theirs = issued(await s.issue({ email, accountId: 'acct-9', binding: other, purpose: 'sign-in' }));
    expect(await s.verify({ binding, purpose: 'sign-in', code: mine })).toMatchObject({ ok: true, accountId: 'acct-9' });
    expect(await s.verify({ binding: other, purpose: 'sign-in', code: theirs })).toMatchObject({ ok: true, accountId: 'acct-9' });
  });

  it('invalidates the previous code of the same interaction when it asks for another address', async () => {
    const s = service();
    const { binding, email } = fresh();
    const old = issued(await s.issue({ email, accountId: 'acct-9', binding, purpose: 'sign-in' }));
    const current = issued(await s.issue({ email: fresh().email, accountId: null, binding, purpose: 'sign-in' }));
    const result = await s.verify({ binding, purpose: 'sign-in', code: old });
    expect(result.ok).toBe(false);
    if (old !== current) expect(result).toEqual({ ok: false, reason: 'invalid' });
  });

  it('invalidates the previous code of the same interaction on resend', async () => {
    const s = service();
    const { binding, email } = fresh();
    const old = issued(await s.issue({ email, accountId: 'acct-10', binding, purpose: 'second-factor' }));
    advance(POLICY.resendIntervalSeconds + 5);
    const current = issued(await s.issue({ email, accountId: 'acct-10', binding, purpose: 'second-factor' }));
    if (old !== current) {
      expect(await s.verify({ binding, purpose: 'second-factor', code: old })).toEqual({ ok: false, reason: 'invalid' });
    }
    expect(await s.verify({ binding, purpose: 'second-factor', code: current })).toMatchObject({ ok: true, accountId: 'acct-10' });
  });

  it('only accepts a code in the interaction and for the purpose it was issued for', async () => {
    const s = service();
    const { binding, email } = fresh();
    const code = issued(await s.issue({ email, accountId: 'acct-11', binding, purpose: 'sign-in' }));
    expect(await s.verify({ binding: fresh().binding, purpose: 'sign-in', code })).toEqual({ ok: false, reason: 'missing' });
    expect(await s.verify({ binding, purpose: 'second-factor', code })).toEqual({ ok: false, reason: 'missing' });
    expect(await s.verify({ binding, purpose: 'sign-in', code })).toMatchObject({ ok: true, accountId: 'acct-11' });
  });

  it('discards the pending code of an interaction (mail not sent), keeping the resend wait', async () => {
    const s = service();
    const { binding, email } = fresh();
    const code = issued(await s.issue({ email, accountId: 'acct-15', binding, purpose: 'sign-in' }));
    await s.discard({ binding, purpose: 'sign-in' });
    expect(await s.pending({ binding, purpose: 'sign-in' })).toBeUndefined();
    expect(await s.verify({ binding, purpose: 'sign-in', code })).toEqual({ ok: false, reason: 'missing' });
    expect(await s.issue({ email, accountId: 'acct-15', binding, purpose: 'sign-in' })).toMatchObject({ ok: false, reason: 'throttled' });
  });

  it('answers an unknown address like a known one, with a code that never verifies', async () => {
    const s = service();
    const { binding, email } = fresh();
    const result = await s.issue({ email, accountId: null, binding, purpose: 'sign-in' });
    expect(result).toEqual({ ok: true, code: expect.stringMatching(/^\d{6}$/), expiresAt: new Date(clock.nowMs() + POLICY.ttlSeconds * 1000) });
    expect(await s.pending({ binding, purpose: 'sign-in' })).toMatchObject({ email });
    expect(await s.verify({ binding, purpose: 'sign-in', code: issued(result) })).toEqual({ ok: false, reason: 'invalid' });
  });

  it('stores neither the code nor an unsalted hash of it, and no plain address in any key', async () => {
    const s = service();
    const { binding, email } = fresh();
    const code = issued(await s.issue({ email, accountId: 'acct-12', binding, purpose: 'sign-in' }));
    const digest = createHash('sha256').update(code).digest();
    const stored = JSON.stringify(
      await Promise.all(
        [EMAIL_CODES_COLLECTION, EMAIL_CODE_CLAIMS_COLLECTION, EMAIL_CODE_RESEND_CLAIMS_COLLECTION].map((name) =>
          connection.db!.collection(name).find().toArray(),
        ),
      ),
    );
    // Not a bare substring check: the resend claims hold 9-digit slot numbers, and a random code
    // is inside one of them about once in 5000 runs.
    expect(stored).not.toMatch(new RegExp(`(?<!\\d)${code}(?!\\d)`));
    for (const form of [digest.toString('hex'), digest.toString('base64'), digest.toString('base64url')]) {
      expect(stored).not.toContain(form);
    }
    const claims = await connection.db!.collection(EMAIL_CODE_RESEND_CLAIMS_COLLECTION).find().toArray();
    expect(JSON.stringify(claims)).not.toContain(email.split('@')[0]);
  });

  it('sweeps expired codes and claims and keeps live ones', async () => {
    const s = service();
    const old = fresh();
    issued(await s.issue({ email: old.email, accountId: 'acct-13', binding: old.binding, purpose: 'sign-in' }));
    advance(POLICY.ttlSeconds + GRACE_SECONDS + 1);
    const live = fresh();
    issued(await s.issue({ email: live.email, accountId: 'acct-14', binding: live.binding, purpose: 'sign-in' }));

    expect(await s.sweep()).toBeGreaterThanOrEqual(1);
    const codes = await connection.db!.collection(EMAIL_CODES_COLLECTION).find().toArray();
    expect(codes.map((c) => c.binding)).toEqual([live.binding]);
    for (const name of [EMAIL_CODE_CLAIMS_COLLECTION, EMAIL_CODE_RESEND_CLAIMS_COLLECTION]) {
      expect(await connection.db!.collection(name).countDocuments({ expiresAt: { $lte: clock.now() } })).toBe(0);
    }
  });

  it('refuses a policy that would make codes unusable', () => {
    expect(() => createEmailCodeService(connection.db!, { ...POLICY, maxAttempts: 0 }, clock)).toThrow(RangeError);
    expect(() => createEmailCodeService(connection.db!, { ...POLICY, ttlSeconds: 0 }, clock)).toThrow(RangeError);
  });
});
