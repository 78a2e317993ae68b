import { randomBytes, randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import type { mongo } from 'mongoose';

import { ensureExpiryIndex } from '../db/expiry-index.js';

/**
 * Progressive delays against guessing a second factor (TOTP, recovery or email code), per
 * ACCOUNT and across all sign-ins: a fresh authorization request, another browser or another
 * node must not reset the count, so it lives in MongoDB and is keyed by the account alone.
 *
 * After `freeAttempts` failures in a row, each further attempt must wait 1, 2, 4 … seconds
 * (at most `maxDelaySeconds`) after the previous one. A success forgets the failures; so does
 * time, one failure `resetAfterSeconds` after it happened.
 *
 * Race safety, without transactions and without atomic counters (NOTE: FerretDB 1.x applies
 * `$inc` and conditional updates in separate read and write steps, so concurrent increments
 * get lost and concurrent "if still below N" updates all succeed):
 *
 * begin() first INSERTS a record of its own attempt, `{ _id: random, accountId, at,
 * state: 'pending', expiresAt }`, and only THEN counts the account's live records. Inserts
 * are visible once acknowledged, so the j-th of N concurrent callers to insert sees at least
 * the j-1 records inserted before its own, besides the earlier failures. A caller whose count
 * (its own record excluded) calls for a wait, measured from the latest other record, deletes
 * its record again and is refused; the others go on and settle their attempt. With an account
 * at freeAttempts-1 failures, only the first inserter can see freeAttempts-1 others: every
 * later one sees at least freeAttempts, the latest of them just inserted, and has to wait.
 * A record that is never settled (the node died mid-check) counts as a failure until it
 * expires like one.
 *
 * That order is safe but not live on its own: when N callers all insert before any of them
 * counts, every one sees the others and every one is refused, even on an account with no
 * failures at all. So a caller refused while some of the records it saw were still PENDING
 * (other attempts in flight, not failures yet) takes its record back, waits a short random
 * time and tries again, a few times; random waits pull the contenders apart, and each try is
 * the same safe protocol. A caller refused by settled failures alone is refused at once.
 *
 * NOTE: the wait is measured with each node's own clock against the other records' `at`, so
 * nodes must keep their clocks in step (NTP); a node running S seconds behind would let
 * concurrent guesses through where the delay is still shorter than S.
 */
export interface FactorThrottlePolicy {
  freeAttempts: number;
  maxDelaySeconds: number;
  /** A failure older than this is forgotten. */
  resetAfterSeconds: number;
}

export interface FactorAttempt {
  succeeded(): Promise<void>;
  failed(): Promise<void>;
}

export type FactorGate = { allowed: true; attempt: FactorAttempt } | { allowed: false; retryAfterSeconds: number };

export interface FactorThrottle {
  /** Call before verifying a code; then settle the attempt with succeeded() or failed(). */
  begin(accountId: string): Promise<FactorGate>;
  /** Failures in a row now counted for the account (for tests and admin views). */
  failures(accountId: string): Promise<number>;
  ensureIndexes(): Promise<void>;
  /** Removes forgotten attempts (servers without TTL indexes). */
  sweep(now?: Date): Promise<number>;
}

/** One document per attempt; pending ones count as failures until settled. */
export interface FactorAttemptRecord {
  _id: string;
  accountId: string;
  /** When the attempt began, then when it failed: the delay runs from here. */
  at: Date;
  state: 'pending' | 'failed';
  /** at + resetAfterSeconds: after this the attempt no longer counts. */
  expiresAt: Date;
}

export const FACTOR_ATTEMPTS_COLLECTION = 'factor_attempts';

/** Tries, and the first backoff ceiling, for a caller refused while other attempts were in flight. */
const CONTENDED_TRIES = 5;
const CONTENDED_BACKOFF_MS = 20;

/** Seconds to wait after the last failure, given the number of failures in a row. */
export function delayAfter(failures: number, policy: Pick<FactorThrottlePolicy, 'freeAttempts' | 'maxDelaySeconds'>): number {
  if (failures < policy.freeAttempts) return 0;
  return Math.min(2 ** (failures - policy.freeAttempts), policy.maxDelaySeconds);
}

export function createFactorThrottle(db: mongo.Db, policy: FactorThrottlePolicy, now: () => number = Date.now): FactorThrottle {
  const collection = db.collection<FactorAttemptRecord>(FACTOR_ATTEMPTS_COLLECTION);
  const resetMs = policy.resetAfterSeconds * 1000;

  function attemptFor(_id: string, accountId: string): FactorAttempt {
    let settled = false;
    // Settling twice would turn a success into a failure record or the other way round.
    const once = (settle: () => Promise<unknown>) => async () => {
      if (settled) return;
      settled = true;
      await settle();
    };
    return {
      // Failures are counted "in a row": a success forgets them all, including other pending ones.
      succeeded: once(() => collection.deleteMany({ accountId })),
      // Only this caller ever writes its own record, so a plain update is safe. NOTE: no upsert:
      // if a concurrent success already reset the account, this failure stays forgotten too.
      failed: once(() => {
        const at = now();
        return collection.updateOne({ _id }, { $set: { state: 'failed', at: new Date(at), expiresAt: new Date(at + resetMs) } });
      }),
    };
  }

  /** One pass of the protocol; `contended`: refused while other attempts were still pending. */
  async function tryBegin(
    accountId: string,
  ): Promise<{ allowed: true; attempt: FactorAttempt } | { allowed: false; retryAfterSeconds: number; contended: boolean }> {
    const at = now();
    const _id = randomBytes(16).toString('base64url');
    // NOTE: insert first, count second; the other order lets N concurrent guesses all see
    // the same count and all pass (see the comment at the top).
    await collection.insertOne({ _id, accountId, at: new Date(at), state: 'pending', expiresAt: new Date(at + resetMs) });
    const others = await collection
      .find({ accountId, _id: { $ne: _id }, expiresAt: { $gt: new Date(at) } }, { projection: { at: 1, state: 1 } })
      .toArray();
    const delay = delayAfter(others.length, policy);
    if (delay > 0) {
      const latest = Math.max(...others.map((r) => r.at.getTime()));
      const waitMs = latest + delay * 1000 - at;
      if (waitMs > 0) {
        // A refused caller did not get to guess: its record must not count as a failure.
        await collection.deleteOne({ _id });
        return { allowed: false, retryAfterSeconds: Math.ceil(waitMs / 1000), contended: others.some((r) => r.state === 'pending') };
      }
    }
    return { allowed: true, attempt: attemptFor(_id, accountId) };
  }

  return {
    async begin(accountId) {
      for (let tryNumber = 1; ; tryNumber += 1) {
        const gate = await tryBegin(accountId);
        if (gate.allowed || !gate.contended || tryNumber === CONTENDED_TRIES) {
          return gate.allowed ? gate : { allowed: false, retryAfterSeconds: gate.retryAfterSeconds };
        }
        // Full jitter, growing: 0-20 ms, 0-40 ms, 0-80 ms …
        await sleep(randomInt(0, CONTENDED_BACKOFF_MS * 2 ** (tryNumber - 1) + 1));
      }
    },

    async failures(accountId) {
      return collection.countDocuments({ accountId, expiresAt: { $gt: new Date(now()) } });
    },

    async ensureIndexes() {
      await collection.createIndex({ accountId: 1 }, { name: 'accountId_1' });
      // Without TTL indexes, the periodic sweep removes forgotten attempts.
      await ensureExpiryIndex(collection);
    },

    async sweep(at = new Date(now())) {
      const result = await collection.deleteMany({ expiresAt: { $lte: at } });
      return result.deletedCount;
    },
  };
}
