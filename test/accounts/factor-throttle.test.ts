import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import {
  FACTOR_ATTEMPTS_COLLECTION,
  createFactorThrottle,
  delayAfter,
  type FactorGate,
  type FactorThrottle,
} from '../../src/accounts/factor-throttle.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';

const POLICY = { freeAttempts: 5, maxDelaySeconds: 60, resetAfterSeconds: 3600 };
const DAY_MS = 24 * 60 * 60 * 1000;

describe('second-factor throttle', () => {
  let connection: Connection;
  // A UTC midnight about a year ahead of the real clock, not a fixed date: nothing stored may be
  // expired by real time, or MongoDB's TTL monitor (and the app's sweep) could remove it mid-test.
  let clock = (Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS;
  const now = () => clock;
  const advance = (seconds: number) => {
    clock += seconds * 1000;
  };
  let seq = 0;
  const account = () => {
    seq += 1;
    return `account-${seq}`;
  };

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('factor_throttle'), createLogger({ level: 'error', format: 'json', write: () => {} }));
    await createFactorThrottle(connection.db!, POLICY, now).ensureIndexes();
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  const throttle = (): FactorThrottle => createFactorThrottle(connection.db!, POLICY, now);

  function allowed(gate: FactorGate) {
    if (!gate.allowed) throw new Error(`expected an attempt, got ${JSON.stringify(gate)}`);
    return gate.attempt;
  }

  async function fail(t: FactorThrottle, accountId: string, times: number): Promise<void> {
    for (let i = 0; i < times; i += 1) await allowed(await t.begin(accountId)).failed();
  }

  it('grows the delay 1 s, 2 s, 4 s … after the free attempts, up to the cap', () => {
    expect([0, 4, 5, 6, 7, 8, 20].map((n) => delayAfter(n, POLICY))).toEqual([0, 0, 1, 2, 4, 8, 60]);
  });

  it('lets the free attempts through, then asks to wait longer after each further failure', async () => {
    const t = throttle();
    const id = account();
    await fail(t, id, POLICY.freeAttempts);
    expect(await t.failures(id)).toBe(POLICY.freeAttempts);
    expect(await t.begin(id)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    // A refused attempt is no guess, so it does not count.
    expect(await t.failures(id)).toBe(POLICY.freeAttempts);

    advance(1);
    await allowed(await t.begin(id)).failed(); // sixth
    expect(await t.begin(id)).toEqual({ allowed: false, retryAfterSeconds: 2 });
    advance(1);
    expect(await t.begin(id)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    advance(1);
    await allowed(await t.begin(id)).failed(); // seventh
    expect(await t.begin(id)).toEqual({ allowed: false, retryAfterSeconds: 4 });
  });

  it('forgets the failures after a success', async () => {
    const t = throttle();
    const id = account();
    await fail(t, id, POLICY.freeAttempts - 1);
    await allowed(await t.begin(id)).succeeded();
    expect(await t.failures(id)).toBe(0);
    await fail(t, id, POLICY.freeAttempts - 1);
    expect(await t.begin(id)).toMatchObject({ allowed: true });
  });

  it('settles an attempt only once', async () => {
    const t = throttle();
    const id = account();
    const attempt = allowed(await t.begin(id));
    await attempt.succeeded();
    await attempt.failed();
    expect(await t.failures(id)).toBe(0);
  });

  it('counts an attempt that is never settled as a failure', async () => {
    const t = throttle();
    const id = account();
    for (let i = 0; i < POLICY.freeAttempts; i += 1) allowed(await t.begin(id));
    expect(await t.failures(id)).toBe(POLICY.freeAttempts);
    expect(await t.begin(id)).toEqual({ allowed: false, retryAfterSeconds: 1 });
  });

  it('keeps the count per account, across throttle instances (nodes) on the same database', async () => {
    const nodeA = throttle();
    const nodeB = throttle();
    const id = account();
    const bystander = account();
    await fail(nodeA, id, POLICY.freeAttempts - 1);
    await fail(nodeB, id, 1);
    expect(await nodeA.failures(id)).toBe(POLICY.freeAttempts);
    expect(await nodeA.begin(id)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(await nodeB.begin(id)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(await nodeB.begin(bystander)).toMatchObject({ allowed: true });
  });

  it('lets at most one of 20 concurrent attempts through on the last free attempt', async () => {
    const t = throttle();
    const id = account();
    await fail(t, id, POLICY.freeAttempts - 1);
    const gates = await Promise.all(Array.from({ length: 20 }, () => t.begin(id)));
    const through = gates.filter((g) => g.allowed);
    expect(through.length).toBeLessThanOrEqual(1);
    for (const g of gates.filter((g) => !g.allowed)) expect(g).toEqual({ allowed: false, retryAfterSeconds: expect.any(Number) });
    // Refused callers took their records back: only real attempts count.
    expect(await t.failures(id)).toBe(POLICY.freeAttempts - 1 + through.length);
  });

  it('lets at most freeAttempts of 100 concurrent attempts through on a fresh account, on two nodes, and leaves no refused record behind', async () => {
    const nodes = [throttle(), throttle()];
    const id = account();
    const gates = await Promise.all(Array.from({ length: 100 }, (_, i) => nodes[i % 2]!.begin(id)));
    const through = gates.filter((g) => g.allowed);
    expect(through.length).toBeLessThanOrEqual(POLICY.freeAttempts);
    // Only the attempts let through are on record (pending): the burst cost the account nothing more.
    expect(await nodes[0]!.failures(id)).toBe(through.length);
    for (const g of through) await g.attempt.failed();
    // So once the burst is over, the person's own attempt goes through while a free one is left.
    if (through.length < POLICY.freeAttempts) expect(await nodes[1]!.begin(id)).toMatchObject({ allowed: true });
  });

  it('a caller refused only by attempts still in flight tries again; one refused by failures does not', async () => {
    // Held still: five records that vanish one millisecond later, and a clock that moves one
    // millisecond per read, so the first try sees them and a second try would not.
    const seed = async (accountId: string, state: 'pending' | 'failed') => {
      const docs = Array.from({ length: POLICY.freeAttempts }, (_, i) => ({
        _id: `${accountId}:held:${i}`,
        accountId,
        at: new Date(clock),
        state,
        expiresAt: new Date(clock + 1),
      }));
      await connection.db!.collection<(typeof docs)[number]>(FACTOR_ATTEMPTS_COLLECTION).insertMany(docs);
    };
    const ticking = () => {
      let ticks = 0;
      return createFactorThrottle(connection.db!, POLICY, () => clock + ticks++);
    };

    const inFlight = account();
    await seed(inFlight, 'pending');
    expect(await ticking().begin(inFlight)).toMatchObject({ allowed: true });

    const failedBefore = account();
    await seed(failedBefore, 'failed');
    expect(await ticking().begin(failedBefore)).toEqual({ allowed: false, retryAfterSeconds: 1 });
  });

  it('lets someone through when a few attempts race on a fresh account (two tabs, a double submit)', async () => {
    // Insert-then-count alone would refuse every one of them when all insert before any counts;
    // a caller refused only by attempts still in flight backs off and tries again.
    const nodes = [throttle(), throttle()];
    for (let round = 0; round < 5; round += 1) {
      const id = account();
      const gates = await Promise.all(Array.from({ length: 10 }, (_, i) => nodes[i % 2]!.begin(id)));
      const through = gates.filter((g) => g.allowed).length;
      expect(through).toBeGreaterThanOrEqual(1);
      expect(through).toBeLessThanOrEqual(POLICY.freeAttempts);
    }
  });

  it('forgets failures resetAfterSeconds after they happened', async () => {
    const t = throttle();
    const id = account();
    await fail(t, id, POLICY.freeAttempts);
    expect(await t.begin(id)).toMatchObject({ allowed: false });
    advance(POLICY.resetAfterSeconds);
    expect(await t.failures(id)).toBe(0);
    await fail(t, id, POLICY.freeAttempts - 1);
    expect(await t.begin(id)).toMatchObject({ allowed: true });
  });

  it('sweeps forgotten attempts and keeps live ones', async () => {
    const t = throttle();
    const old = account();
    const live = account();
    await fail(t, old, 2);
    advance(POLICY.resetAfterSeconds + 5);
    await fail(t, live, 1);
    expect(await t.sweep()).toBeGreaterThanOrEqual(2);
    const left = await connection.db!.collection(FACTOR_ATTEMPTS_COLLECTION).find().toArray();
    expect(left.map((d) => d.accountId)).toEqual([live]);
  });
});
