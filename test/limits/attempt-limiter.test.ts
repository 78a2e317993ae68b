import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import { LIMIT_ATTEMPTS_COLLECTION, createAttemptLimiter, delayAfter } from '../../src/limits/attempt-limiter.js';
import type { AttemptLimiter, Gate, LimitVerdict } from '../../src/limits/attempt-limiter.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';
import { createTestClock } from '../support/clock.js';

const PROGRESSIVE = { kind: 'progressive', freeAttempts: 5, maxDelaySeconds: 60, forgetAfterSeconds: 3600 } as const;
const WINDOW = { kind: 'window', limit: 10, windowSeconds: 600 } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

describe('attempt limiter', () => {
  let connection: Connection;
  // A UTC midnight about a year ahead of the real clock, not a fixed date: nothing stored may be
  // expired by real time, or MongoDB's TTL monitor (and the app's sweep) could remove it mid-test.
  const clock = createTestClock((Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS);
  const advance = (seconds: number) => {
    clock.advance(seconds * 1000);
  };
  let seq = 0;
  const progressive = (): Gate => {
    seq += 1;
    return { key: `factor:account-${seq}`, rule: PROGRESSIVE };
  };
  const windowed = (limit: number = WINDOW.limit): Gate => {
    seq += 1;
    return { key: `ip:test:${seq}`, rule: { ...WINDOW, limit } };
  };

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('attempt_limiter'), createLogger({ level: 'error', format: 'json', write: () => {} }));
    await createAttemptLimiter(connection.db!, clock).ensureIndexes();
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  const limiter = (): AttemptLimiter => createAttemptLimiter(connection.db!, clock);

  function allowed(verdict: LimitVerdict) {
    if (!verdict.allowed) throw new Error(`expected an attempt, got ${JSON.stringify(verdict)}`);
    return verdict.attempt;
  }

  async function fail(l: AttemptLimiter, gates: Gate[], times: number): Promise<void> {
    for (let i = 0; i < times; i += 1) await allowed(await l.begin(gates)).failed();
  }

  describe('progressive gates (failures in a row)', () => {
    it('grows the delay 1 s, 2 s, 4 s … after the free attempts, up to the cap', () => {
      expect([0, 4, 5, 6, 7, 8, 20].map((n) => delayAfter(n, PROGRESSIVE))).toEqual([0, 0, 1, 2, 4, 8, 60]);
    });

    it('lets the free attempts through, then asks to wait longer after each further failure', async () => {
      const l = limiter();
      const gate = progressive();
      await fail(l, [gate], PROGRESSIVE.freeAttempts);
      expect(await l.count(gate.key)).toBe(PROGRESSIVE.freeAttempts);
      expect(await l.begin([gate])).toEqual({ allowed: false, retryAfterSeconds: 1, key: gate.key });
      // A refused attempt is no guess, so it does not count.
      expect(await l.count(gate.key)).toBe(PROGRESSIVE.freeAttempts);

      advance(1);
      await allowed(await l.begin([gate])).failed(); // sixth
      expect(await l.begin([gate])).toEqual({ allowed: false, retryAfterSeconds: 2, key: gate.key });
      advance(1);
      expect(await l.begin([gate])).toEqual({ allowed: false, retryAfterSeconds: 1, key: gate.key });
      advance(1);
      await allowed(await l.begin([gate])).failed(); // seventh
      expect(await l.begin([gate])).toEqual({ allowed: false, retryAfterSeconds: 4, key: gate.key });
    });

    it('forgets the failures after a success', async () => {
      const l = limiter();
      const gate = progressive();
      await fail(l, [gate], PROGRESSIVE.freeAttempts - 1);
      await allowed(await l.begin([gate])).succeeded();
      expect(await l.count(gate.key)).toBe(0);
      await fail(l, [gate], PROGRESSIVE.freeAttempts - 1);
      expect(await l.begin([gate])).toMatchObject({ allowed: true });
    });

    it('releases an attempt that never got to the check: it counts nowhere and forgets nothing', async () => {
      const l = limiter();
      const gate = progressive();
      await fail(l, [gate], 2);
      await allowed(await l.begin([gate])).released();
      expect(await l.count(gate.key)).toBe(2);
    });

    it('settles an attempt only once', async () => {
      const l = limiter();
      const gate = progressive();
      const attempt = allowed(await l.begin([gate]));
      await attempt.succeeded();
      await attempt.failed();
      expect(await l.count(gate.key)).toBe(0);
    });

    it('counts an attempt that is never settled as a failure', async () => {
      const l = limiter();
      const gate = progressive();
      for (let i = 0; i < PROGRESSIVE.freeAttempts; i += 1) allowed(await l.begin([gate]));
      expect(await l.count(gate.key)).toBe(PROGRESSIVE.freeAttempts);
      expect(await l.begin([gate])).toEqual({ allowed: false, retryAfterSeconds: 1, key: gate.key });
    });

    it('keeps the count per key, across limiter instances (nodes) on the same database', async () => {
      const nodeA = limiter();
      const nodeB = limiter();
      const gate = progressive();
      const bystander = progressive();
      await fail(nodeA, [gate], PROGRESSIVE.freeAttempts - 1);
      await fail(nodeB, [gate], 1);
      expect(await nodeA.count(gate.key)).toBe(PROGRESSIVE.freeAttempts);
      expect(await nodeA.begin([gate])).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
      expect(await nodeB.begin([gate])).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
      expect(await nodeB.begin([bystander])).toMatchObject({ allowed: true });
    });

    it('lets at most one of 20 concurrent attempts through on the last free attempt', async () => {
      const l = limiter();
      const gate = progressive();
      await fail(l, [gate], PROGRESSIVE.freeAttempts - 1);
      const verdicts = await Promise.all(Array.from({ length: 20 }, () => l.begin([gate])));
      const through = verdicts.filter((v) => v.allowed);
      expect(through.length).toBeLessThanOrEqual(1);
      for (const v of verdicts.filter((v) => !v.allowed)) expect(v).toEqual({ allowed: false, retryAfterSeconds: expect.any(Number), key: gate.key });
      // Refused callers took their records back: only real attempts count.
      expect(await l.count(gate.key)).toBe(PROGRESSIVE.freeAttempts - 1 + through.length);
    });

    it('lets at most freeAttempts of 100 concurrent attempts through on a fresh key, on two nodes, and leaves no refused record behind', async () => {
      const nodes = [limiter(), limiter()];
      const gate = progressive();
      const verdicts = await Promise.all(Array.from({ length: 100 }, (_, i) => nodes[i % 2]!.begin([gate])));
      const through = verdicts.filter((v): v is Extract<LimitVerdict, { allowed: true }> => v.allowed);
      expect(through.length).toBeLessThanOrEqual(PROGRESSIVE.freeAttempts);
      // Only the attempts let through are on record (pending): the burst cost nothing more.
      expect(await nodes[0]!.count(gate.key)).toBe(through.length);
      for (const v of through) await v.attempt.failed();
      // So once the burst is over, the owner's own attempt goes through while a free one is left.
      if (through.length < PROGRESSIVE.freeAttempts) expect(await nodes[1]!.begin([gate])).toMatchObject({ allowed: true });
    });

    it('a caller refused only by attempts still in flight tries again; one refused by failures does not', async () => {
      // Held still: five records that vanish one millisecond later, and a clock that moves one
      // millisecond per read, so the first try sees them and a second try would not.
      const seed = async (key: string, state: 'pending' | 'failed') => {
        const docs = Array.from({ length: PROGRESSIVE.freeAttempts }, (_, i) => ({
          _id: `${key}:held:${i}`,
          attempt: `${key}:held:${i}`,
          key,
          at: clock.now(),
          state,
          expiresAt: new Date(clock.nowMs() + 1),
        }));
        await connection.db!.collection<(typeof docs)[number]>(LIMIT_ATTEMPTS_COLLECTION).insertMany(docs);
      };
      const ticking = () => {
        let ticks = 0;
        const read = () => clock.nowMs() + ticks++;
        return createAttemptLimiter(connection.db!, { nowMs: read, now: () => new Date(read()) });
      };

      const inFlight = progressive();
      await seed(inFlight.key, 'pending');
      expect(await ticking().begin([inFlight])).toMatchObject({ allowed: true });

      const failedBefore = progressive();
      await seed(failedBefore.key, 'failed');
      expect(await ticking().begin([failedBefore])).toEqual({ allowed: false, retryAfterSeconds: 1, key: failedBefore.key });
    });

    it('lets someone through when a few attempts race on a fresh key (two tabs, a double submit)', async () => {
      // Insert-then-count alone would refuse every one of them when all insert before any counts;
      // a caller refused only by attempts still in flight backs off and tries again.
      const nodes = [limiter(), limiter()];
      for (let round = 0; round < 5; round += 1) {
        const gate = progressive();
        const verdicts = await Promise.all(Array.from({ length: 10 }, (_, i) => nodes[i % 2]!.begin([gate])));
        const through = verdicts.filter((v) => v.allowed).length;
        expect(through).toBeGreaterThanOrEqual(1);
        expect(through).toBeLessThanOrEqual(PROGRESSIVE.freeAttempts);
      }
    });

    it('forgets failures forgetAfterSeconds after they happened', async () => {
      const l = limiter();
      const gate = progressive();
      await fail(l, [gate], PROGRESSIVE.freeAttempts);
      expect(await l.begin([gate])).toMatchObject({ allowed: false });
      advance(PROGRESSIVE.forgetAfterSeconds);
      expect(await l.count(gate.key)).toBe(0);
      await fail(l, [gate], PROGRESSIVE.freeAttempts - 1);
      expect(await l.begin([gate])).toMatchObject({ allowed: true });
    });
  });

  describe('window gates (at most N in a sliding window)', () => {
    it('allows the limit within the window, then refuses until the oldest leaves it', async () => {
      const l = limiter();
      const gate = windowed(3);
      await fail(l, [gate], 1);
      advance(100);
      await fail(l, [gate], 2);
      expect(await l.begin([gate])).toEqual({ allowed: false, retryAfterSeconds: WINDOW.windowSeconds - 100, key: gate.key });
      advance(WINDOW.windowSeconds - 100);
      // The first left the window: one more fits.
      await fail(l, [gate], 1);
      expect(await l.begin([gate])).toEqual({ allowed: false, retryAfterSeconds: 100, key: gate.key });
    });

    it('does not count successes, and a success forgets nothing', async () => {
      const l = limiter();
      const gate = windowed(3);
      await fail(l, [gate], 2);
      for (let i = 0; i < 5; i += 1) await allowed(await l.begin([gate])).succeeded();
      expect(await l.count(gate.key)).toBe(2);
    });

    it('lets at most the limit of 100 concurrent attempts through when they all fail', async () => {
      const nodes = [limiter(), limiter()];
      const gate = windowed(10);
      const verdicts = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const verdict = await nodes[i % 2]!.begin([gate]);
          if (verdict.allowed) await verdict.attempt.failed();
          return verdict;
        }),
      );
      const through = verdicts.filter((v) => v.allowed).length;
      expect(through).toBeLessThanOrEqual(10);
      expect(await nodes[0]!.count(gate.key)).toBe(through);
      // Whoever comes next is refused once the window is full, and never evaluated.
      if (through === 10) expect(await nodes[1]!.begin([gate])).toMatchObject({ allowed: false });
    });
  });

  describe('several gates at once', () => {
    it('counts an attempt at every gate, and refuses with the longest wait among those that refuse', async () => {
      const l = limiter();
      const ip = windowed(3);
      const account = progressive();
      const otherAccount = progressive();
      await fail(l, [ip, account], 2);
      expect(await l.count(ip.key)).toBe(2);
      expect(await l.count(account.key)).toBe(2);
      await fail(l, [ip, otherAccount], 1);
      // The IP's window is full, whatever the account.
      expect(await l.begin([ip, progressive()])).toMatchObject({ allowed: false, key: ip.key, retryAfterSeconds: WINDOW.windowSeconds });
      // Refused at one gate: nothing counted at the other.
      expect(await l.count(otherAccount.key)).toBe(1);
    });

    it('a success forgets the progressive failures of its key only, never the window counts', async () => {
      const l = limiter();
      const ip = windowed(10);
      const account = progressive();
      await fail(l, [ip, account], 3);
      await allowed(await l.begin([ip, account])).succeeded();
      expect(await l.count(account.key)).toBe(0);
      expect(await l.count(ip.key)).toBe(3);
    });

    it('refuses gates that repeat a key', async () => {
      const gate = progressive();
      await expect(limiter().begin([gate, gate])).rejects.toThrow(RangeError);
      await expect(limiter().begin([])).rejects.toThrow(RangeError);
    });
  });

  describe('peek and record (counted after the fact)', () => {
    it('peeks without reserving, and records settled failures', async () => {
      const l = limiter();
      const gate = windowed(2);
      expect(await l.peek(gate)).toEqual({ allowed: true });
      await l.record(gate);
      expect(await l.peek(gate)).toEqual({ allowed: true });
      await l.record(gate);
      expect(await l.peek(gate)).toEqual({ allowed: false, retryAfterSeconds: WINDOW.windowSeconds });
      expect(await l.count(gate.key)).toBe(2);
    });
  });

  it('forgets the keys it is told to', async () => {
    const l = limiter();
    const a = progressive();
    const b = progressive();
    await fail(l, [a], 2);
    await fail(l, [b], 2);
    await l.forget([a.key]);
    expect(await l.count(a.key)).toBe(0);
    expect(await l.count(b.key)).toBe(2);
  });

  it('sweeps expired attempts and keeps live ones', async () => {
    const l = limiter();
    const old = progressive();
    const live = progressive();
    await fail(l, [old], 2);
    advance(PROGRESSIVE.forgetAfterSeconds + 5);
    await fail(l, [live], 1);
    expect(await l.sweep()).toBeGreaterThanOrEqual(2);
    const left = await connection.db!.collection(LIMIT_ATTEMPTS_COLLECTION).find({ key: { $in: [old.key, live.key] } }).toArray();
    expect(left.map((d) => d.key)).toEqual([live.key]);
  });
});
