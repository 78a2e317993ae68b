import { createHash } from 'node:crypto';

import type { mongo } from 'mongoose';

import { ensureExpiryIndex } from '../db/expiry-index.js';

/**
 * Progressive delays against password guessing, per email address.
 *
 * The key is a hash of the normalised email, whether or not an account has it: an unknown
 * email slows down exactly like a known one, so the delay says nothing about who has an
 * account. Counters live in MongoDB so every node enforces the same delay.
 *
 * NOTE: FerretDB 1.x applies `$inc` in separate read and write steps, so concurrent failures
 * can be counted once instead of twice; the delay still grows, only a little later.
 */
export interface ThrottlePolicy {
  freeAttempts: number;
  maxDelaySeconds: number;
  /** Failures older than this are forgotten. */
  resetAfterSeconds: number;
}

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export interface SignInThrottle {
  check(email: string): Promise<ThrottleVerdict>;
  recordFailure(email: string): Promise<void>;
  recordSuccess(email: string): Promise<void>;
  ensureIndexes(): Promise<void>;
  /** Removes forgotten counters (servers without TTL indexes). */
  sweep(now?: Date): Promise<number>;
}

interface AttemptRecord {
  _id: string;
  failures: number;
  lastFailureAt: Date;
  expiresAt: Date;
}

export const SIGN_IN_ATTEMPTS_COLLECTION = 'sign_in_attempts';

/** Seconds to wait after the last failure, given the number of failures in a row. */
export function delayAfter(failures: number, policy: Pick<ThrottlePolicy, 'freeAttempts' | 'maxDelaySeconds'>): number {
  if (failures < policy.freeAttempts) return 0;
  return Math.min(2 ** (failures - policy.freeAttempts), policy.maxDelaySeconds);
}

function keyFor(email: string): string {
  return `password:${createHash('sha256').update(email.trim().toLowerCase()).digest('base64url')}`;
}

export function createSignInThrottle(
  db: mongo.Db,
  policy: ThrottlePolicy,
  now: () => number = Date.now,
): SignInThrottle {
  const collection = db.collection<AttemptRecord>(SIGN_IN_ATTEMPTS_COLLECTION);

  return {
    async check(email) {
      const record = await collection.findOne({ _id: keyFor(email) });
      if (!record || record.expiresAt.getTime() <= now()) return { allowed: true };
      const until = record.lastFailureAt.getTime() + delayAfter(record.failures, policy) * 1000;
      const waitMs = until - now();
      return waitMs > 0 ? { allowed: false, retryAfterSeconds: Math.ceil(waitMs / 1000) } : { allowed: true };
    },

    async recordFailure(email) {
      const _id = keyFor(email);
      const at = new Date(now());
      const current = await collection.findOne({ _id });
      // A counter nobody touched for resetAfterSeconds starts again from one.
      const failures = current && current.expiresAt.getTime() > at.getTime() ? current.failures + 1 : 1;
      const expiresAt = new Date(at.getTime() + (policy.resetAfterSeconds + delayAfter(failures, policy)) * 1000);
      if (failures === 1) {
        await collection.updateOne({ _id }, { $set: { failures: 1, lastFailureAt: at, expiresAt } }, { upsert: true });
      } else {
        await collection.updateOne({ _id }, { $inc: { failures: 1 }, $set: { lastFailureAt: at, expiresAt } }, { upsert: true });
      }
    },

    async recordSuccess(email) {
      await collection.deleteOne({ _id: keyFor(email) });
    },

    async ensureIndexes() {
      // Without TTL indexes, the periodic sweep removes forgotten counters.
      await ensureExpiryIndex(collection);
    },

    async sweep(at = new Date(now())) {
      const result = await collection.deleteMany({ expiresAt: { $lte: at } });
      return result.deletedCount;
    },
  };
}
