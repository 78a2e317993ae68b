import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import { SIGN_IN_ATTEMPTS_COLLECTION, createSignInThrottle, delayAfter } from '../../src/accounts/sign-in-throttle.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';

const POLICY = { freeAttempts: 5, maxDelaySeconds: 60, resetAfterSeconds: 3600 };
const DAY_MS = 24 * 60 * 60 * 1000;

describe('sign-in throttle', () => {
  let connection: Connection;
  // A UTC midnight about a year ahead of the real clock, not a fixed date: nothing stored may be
  // expired by real time, or MongoDB's TTL monitor (and the app's sweep) could remove it mid-test.
  let clock = (Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS;
  const now = () => clock;
  const advance = (seconds: number) => {
    clock += seconds * 1000;
  };

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('throttle'), createLogger({ level: 'error', format: 'json', write: () => {} }));
  });

  afterAll(async () => {
    await connection.close();
  });

  const throttle = () => createSignInThrottle(connection.db!, POLICY, now);

  it('grows the delay 1 s, 2 s, 4 s … after the free attempts, up to the cap', () => {
    expect([0, 4, 5, 6, 7, 8, 20].map((n) => delayAfter(n, POLICY))).toEqual([0, 0, 1, 2, 4, 8, 60]);
  });

  it('lets the free attempts through, then asks to wait after each further failure', async () => {
    const t = throttle();
    const email = 'guess@example.com';
    for (let i = 0; i < POLICY.freeAttempts - 1; i += 1) {
      await t.recordFailure(email);
      expect(await t.check(email)).toEqual({ allowed: true });
    }
    await t.recordFailure(email); // the fifth failure
    expect(await t.check(email)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    advance(1);
    expect(await t.check(email)).toEqual({ allowed: true });
    await t.recordFailure(email); // sixth
    expect(await t.check(email)).toEqual({ allowed: false, retryAfterSeconds: 2 });
    advance(2);
    await t.recordFailure(email); // seventh
    expect(await t.check(email)).toEqual({ allowed: false, retryAfterSeconds: 4 });
  });

  it('counts an email however it is capitalised or padded', async () => {
    const t = throttle();
    for (let i = 0; i < POLICY.freeAttempts; i += 1) await t.recordFailure(i % 2 ? ' Case@Example.com ' : 'case@example.COM');
    expect(await t.check('CASE@example.com')).toMatchObject({ allowed: false });
  });

  it('forgets the failures after a successful sign-in', async () => {
    const t = throttle();
    for (let i = 0; i < POLICY.freeAttempts; i += 1) await t.recordFailure('ok@example.com');
    await t.recordSuccess('ok@example.com');
    expect(await t.check('ok@example.com')).toEqual({ allowed: true });
    await t.recordFailure('ok@example.com');
    expect(await t.check('ok@example.com')).toEqual({ allowed: true });
  });

  it('forgets failures after an hour without any, and starts counting from one again', async () => {
    const t = throttle();
    for (let i = 0; i < POLICY.freeAttempts; i += 1) await t.recordFailure('idle@example.com');
    expect(await t.check('idle@example.com')).toMatchObject({ allowed: false });
    advance(POLICY.resetAfterSeconds + 2);
    expect(await t.check('idle@example.com')).toEqual({ allowed: true });
    await t.recordFailure('idle@example.com');
    expect(await t.check('idle@example.com')).toEqual({ allowed: true });
  });

  it('stores no email address, only a hash of it', async () => {
    const t = throttle();
    await t.recordFailure('private.person@example.com');
    const docs = await connection.db!.collection(SIGN_IN_ATTEMPTS_COLLECTION).find().toArray();
    expect(JSON.stringify(docs)).not.toContain('private.person');
  });

  it('sweeps forgotten counters and keeps live ones', async () => {
    const t = throttle();
    await t.recordFailure('old@example.com');
    advance(POLICY.resetAfterSeconds + 5);
    await t.recordFailure('fresh@example.com');
    const removed = await t.sweep();
    expect(removed).toBeGreaterThanOrEqual(1);
    const ids = (await connection.db!.collection(SIGN_IN_ATTEMPTS_COLLECTION).find().toArray()).map((d) => d._id);
    expect(ids).toHaveLength(1);
  });
});
