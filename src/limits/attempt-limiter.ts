import { randomBytes, randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import type { mongo } from 'mongoose';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';
import { retryOnLockContention } from '../db/lock-contention.js';

/**
 * Every limit on guessing and sending, in one mechanism: passwords per email address, codes per
 * address, second factors per account, and everything per client IP. Counts live in MongoDB, so
 * every node applies the same limit.
 *
 * A request names the gates it must pass (`begin([...gates])`), each a key and a rule:
 *  - `progressive`: failures in a row. `freeAttempts` are answered normally; after that each
 *    attempt must wait 1, 2, 4 … seconds (at most `maxDelaySeconds`) after the latest one. A
 *    success forgets the key's failures; so does time, each failure `forgetAfterSeconds` after it
 *    happened.
 *  - `window`: at most `limit` counted attempts in any `windowSeconds` (a sliding window). A
 *    success counts nothing, and forgets nothing either (an IP's failures stay failures).
 *
 * Race safety, without transactions and without atomic counters (NOTE: FerretDB 1.x applies
 * `$inc` and conditional updates in separate read and write steps, so concurrent increments get
 * lost and concurrent "if still below N" updates all succeed):
 *
 * begin() first INSERTS one record per gate for its own attempt, `{ key, attempt, at,
 * state: 'pending', expiresAt }`, and only THEN reads the live records of those keys. Inserts are
 * visible once acknowledged, so the j-th of N concurrent callers to insert sees at least the j-1
 * records inserted before its own. A caller whose count (its own records excluded) calls for a
 * wait at any gate deletes its records again and is refused; the others go on and settle their
 * attempt. So at most `freeAttempts` (or `limit`) attempts get through however many run at once.
 * A record that is never settled (the node died mid-check) counts as a failure until it expires.
 *
 * That order is safe but not live on its own: when N callers all insert before any of them
 * counts, every one sees the others and every one is refused, even for a key with no failures
 * at all. So a caller refused while some of the records it saw were still PENDING (attempts in
 * flight, not failures yet) takes its records back, waits a short random time and tries again, a
 * few times; random waits pull the contenders apart, and each try is the same safe protocol. A
 * caller refused by settled failures alone is refused at once.
 *
 * NOTE: waits are measured with each node's own clock against the records' `at`, so nodes must
 * keep their clocks in step (NTP); a node running S seconds behind would let attempts through
 * where the wait is still shorter than S.
 */

export type LimitRule =
  | { kind: 'progressive'; freeAttempts: number; maxDelaySeconds: number; forgetAfterSeconds: number }
  | { kind: 'window'; limit: number; windowSeconds: number };

export interface Gate {
  /** What is counted, e.g. `password:<hash of the email>` or `ip:sign-in:<address>`. Never a secret. */
  key: string;
  rule: LimitRule;
}

export interface Attempt {
  /** The check passed: the progressive gates' failures are forgotten, and this attempt counts nowhere. */
  succeeded(): Promise<void>;
  /** The check failed (or, for a rate, the thing was done): it counts at every gate. */
  failed(): Promise<void>;
  /** The check never ran (bad input, a step refused for another reason): it counts nowhere. */
  released(): Promise<void>;
}

export type LimitVerdict =
  | { allowed: true; attempt: Attempt }
  | { allowed: false; retryAfterSeconds: number; /** The key of the gate that refused (the longest wait). */ key: string };

export interface AttemptLimiter {
  /** Reserves an attempt at every gate, or refuses with the longest wait among them. */
  begin(gates: readonly Gate[]): Promise<LimitVerdict>;
  /**
   * Without reserving anything: would an attempt be refused now, and for how long? Cheaper than
   * begin() (one read), but not race-safe: use it only where attempts are recorded after the
   * fact with record() and an overshoot by the requests in flight is acceptable.
   */
  peek(gate: Gate): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }>;
  /** Counts one settled failure at the gate, without a check. */
  record(gate: Gate): Promise<void>;
  /** Live (pending or failed) attempts counted for a key: for tests and admin views. */
  count(key: string): Promise<number>;
  /** Forgets every attempt of these keys (an account deleted). */
  forget(keys: readonly string[]): Promise<void>;
  ensureIndexes(): Promise<void>;
  /** Removes expired records (servers without TTL indexes). */
  sweep(now?: Date): Promise<number>;
}

/** One record per attempt and gate. */
export interface AttemptRecord {
  /** `<attempt id>:<gate index>`. */
  _id: string;
  /** Shared by the records of one attempt, so that it is settled with one command. */
  attempt: string;
  key: string;
  /** When the attempt began: waits and windows run from here. */
  at: Date;
  state: 'pending' | 'failed';
  /** After this the record no longer counts: `at` + forgetAfterSeconds, or + windowSeconds. */
  expiresAt: Date;
}

export const LIMIT_ATTEMPTS_COLLECTION = 'limit_attempts';
/** Where the throttles kept their counts before this limiter; dropped at start (their data only ever lived hours). */
const LEGACY_COLLECTIONS = ['sign_in_attempts', 'factor_attempts'];

/**
 * Tries, and the first backoff ceiling, for a caller refused while other attempts were in flight.
 * Racing callers that all see one another pending would refuse one another for ever; full-jitter
 * backoff over seven tries (ceilings 20 ms … 640 ms, about 1.3 s at most in all) spreads a burst
 * of a hundred on a loaded machine enough that the first ones find the gate clear. Only callers
 * in such a burst against one key ever wait this long.
 */
const CONTENDED_TRIES = 7;
const CONTENDED_BACKOFF_MS = 20;

/** Seconds to wait after the latest failure, given the failures in a row (progressive rule). */
export function delayAfter(failures: number, rule: { freeAttempts: number; maxDelaySeconds: number }): number {
  if (failures < rule.freeAttempts) return 0;
  return Math.min(2 ** (failures - rule.freeAttempts), rule.maxDelaySeconds);
}

function lifetimeMs(rule: LimitRule): number {
  return (rule.kind === 'progressive' ? rule.forgetAfterSeconds : rule.windowSeconds) * 1000;
}

/**
 * How long the caller must wait before one more attempt at this gate, given the other live
 * records of its key (milliseconds; 0 or less: go ahead).
 */
function waitMs(rule: LimitRule, others: readonly Pick<AttemptRecord, 'at' | 'expiresAt'>[], at: number): number {
  if (rule.kind === 'progressive') {
    const delay = delayAfter(others.length, rule);
    if (delay === 0) return 0;
    const latest = Math.max(...others.map((r) => r.at.getTime()));
    return latest + delay * 1000 - at;
  }
  if (others.length < rule.limit) return 0;
  // One more is allowed once all but limit-1 of the others have left the window.
  const expiries = others.map((r) => r.expiresAt.getTime()).sort((a, b) => a - b);
  return (expiries[others.length - rule.limit] ?? at) - at;
}

function assertGates(gates: readonly Gate[]): void {
  if (gates.length === 0) throw new RangeError('an attempt needs at least one gate');
  if (new Set(gates.map((g) => g.key)).size !== gates.length) throw new RangeError('gates of one attempt must have different keys');
}

/** A bulk insert's duplicate-key errors only (code 11000): the records are already stored. */
function ignoreDuplicates(err: unknown): void {
  const writeErrors = (err as { writeErrors?: { code?: number }[] | { code?: number } }).writeErrors;
  const list = Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : [];
  if (list.length > 0 && list.every((e) => e.code === 11000)) return;
  throw err;
}

export function createAttemptLimiter(db: mongo.Db, clock: Clock = systemClock): AttemptLimiter {
  const now = () => clock.nowMs();
  const collection = db.collection<AttemptRecord>(LIMIT_ATTEMPTS_COLLECTION);

  function attemptFor(id: string, gates: readonly Gate[]): Attempt {
    let settled = false;
    // Settling twice would turn a success into a failure or the other way round.
    const once = (settle: () => Promise<unknown>) => async () => {
      if (settled) return;
      settled = true;
      await settle();
    };
    const progressive = gates.filter((g) => g.rule.kind === 'progressive').map((g) => g.key);
    return {
      // Failures are counted "in a row": a success forgets the progressive keys' records, other
      // callers' pending ones included (their failure then stays forgotten too, as it would have
      // been had it come just before this success).
      succeeded: once(() =>
        retryOnLockContention(() =>
          collection.deleteMany(progressive.length > 0 ? { $or: [{ attempt: id }, { key: { $in: progressive } }] } : { attempt: id }),
        ),
      ),
      // Only this caller ever writes its own records, so a plain update is safe. NOTE: records a
      // concurrent success already removed stay removed.
      failed: once(() => retryOnLockContention(() => collection.updateMany({ attempt: id }, { $set: { state: 'failed' } }))),
      released: once(() => retryOnLockContention(() => collection.deleteMany({ attempt: id }))),
    };
  }

  /** One pass of the protocol; `contended`: refused while other attempts were still pending. */
  async function tryBegin(gates: readonly Gate[]): Promise<LimitVerdict & { contended?: boolean }> {
    const at = now();
    const id = randomBytes(16).toString('base64url');
    // NOTE: insert first, count second; the other order lets N concurrent attempts all see the
    // same count and all pass (see the comment at the top).
    const records = gates.map((gate, i) => ({
      _id: `${id}:${i}`,
      attempt: id,
      key: gate.key,
      at: new Date(at),
      state: 'pending' as const,
      expiresAt: new Date(at + lifetimeMs(gate.rule)),
    }));
    // Run again on lock contention; records a failed try did store are this caller's own (their
    // ids are unique to it), so a duplicate key on the retry means "already there".
    await retryOnLockContention(() => collection.insertMany(records, { ordered: false }).catch(ignoreDuplicates));
    const others = await retryOnLockContention(() =>
      collection
        .find({ key: { $in: gates.map((g) => g.key) }, attempt: { $ne: id }, expiresAt: { $gt: new Date(at) } }, { projection: { key: 1, at: 1, state: 1, expiresAt: 1 } })
        .toArray(),
    );
    let refusal: { key: string; wait: number; contended: boolean } | undefined;
    for (const gate of gates) {
      const mine = others.filter((r) => r.key === gate.key);
      const wait = waitMs(gate.rule, mine, at);
      if (wait > 0 && (!refusal || wait > refusal.wait)) refusal = { key: gate.key, wait, contended: mine.some((r) => r.state === 'pending') };
    }
    if (refusal) {
      // A refused caller did not get to try: its records must not count.
      await retryOnLockContention(() => collection.deleteMany({ attempt: id }));
      return { allowed: false, retryAfterSeconds: Math.ceil(refusal.wait / 1000), key: refusal.key, contended: refusal.contended };
    }
    return { allowed: true, attempt: attemptFor(id, gates) };
  }

  return {
    async begin(gates) {
      assertGates(gates);
      for (let tryNumber = 1; ; tryNumber += 1) {
        const verdict = await tryBegin(gates);
        if (verdict.allowed) return verdict;
        if (!verdict.contended || tryNumber === CONTENDED_TRIES) {
          return { allowed: false, retryAfterSeconds: verdict.retryAfterSeconds, key: verdict.key };
        }
        // Full jitter, growing: 0-20 ms, 0-40 ms, 0-80 ms …
        await sleep(randomInt(0, CONTENDED_BACKOFF_MS * 2 ** (tryNumber - 1) + 1));
      }
    },

    async peek(gate) {
      const at = now();
      const live = await collection.find({ key: gate.key, expiresAt: { $gt: new Date(at) } }, { projection: { at: 1, expiresAt: 1 } }).toArray();
      const wait = waitMs(gate.rule, live, at);
      return wait > 0 ? { allowed: false, retryAfterSeconds: Math.ceil(wait / 1000) } : { allowed: true };
    },

    async record(gate) {
      const at = now();
      const id = randomBytes(16).toString('base64url');
      await collection.insertOne({ _id: `${id}:0`, attempt: id, key: gate.key, at: new Date(at), state: 'failed', expiresAt: new Date(at + lifetimeMs(gate.rule)) });
    },

    async count(key) {
      return collection.countDocuments({ key, expiresAt: { $gt: new Date(now()) } });
    },

    async forget(keys) {
      if (keys.length > 0) await collection.deleteMany({ key: { $in: [...keys] } });
    },

    async ensureIndexes() {
      await collection.createIndex({ key: 1, expiresAt: 1 }, { name: 'key_expiresAt' });
      await collection.createIndex({ attempt: 1 }, { name: 'attempt_1' });
      // Without TTL indexes, the periodic sweep removes expired records.
      await ensureExpiryIndex(collection);
      const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
      for (const name of LEGACY_COLLECTIONS) if (existing.has(name)) await db.collection(name).drop().catch(() => undefined);
    },

    async sweep(at = new Date(now())) {
      return (await collection.deleteMany({ expiresAt: { $lte: at } })).deletedCount;
    },
  };
}
