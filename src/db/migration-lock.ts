import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { Logger } from '../logging/logger.js';
import { insertClaim } from './claims.js';
import { retryOnLockContention } from './lock-contention.js';

/**
 * The lock that lets one node at a time run migrations, on every server we support.
 *
 * NOTE: FerretDB 1.x has no atomic conditional update (two "take it if it is free" updates can
 * both win) and no TTL index, so the lock is a chain of unique-insert claims: claim number n is
 * the document `{ _id: "migrate-<n>" }`, and the holder is whoever inserted the highest n. To
 * take the lock, a node reads the highest claim; when it is released, or expired (its holder
 * stopped renewing it: it crashed), the node inserts n + 1, and of all the nodes that saw the
 * same n exactly one insert succeeds (duplicate key for the others). Claims are never deleted,
 * so a node that read an old n can only collide with a claim that exists. There is one claim per
 * migration run (a start with nothing pending takes no lock), so the collection stays tiny.
 *
 * The holder renews its claim's expiry while it works; a node paused for longer than the expiry
 * (or cut off from the database) loses the lock to the next node, which is why every migration
 * must be safe to run twice (see src/db/migrations/migration.ts). Expiry is compared with the
 * waiting node's clock: nodes' clocks must agree to well within the expiry (NTP does).
 */

export const MIGRATION_LOCKS_COLLECTION = 'migration_locks';

interface LockClaim {
  _id: string;
  n: number;
  owner: string;
  acquiredAt: Date;
  expiresAt: Date;
  releasedAt?: Date;
}

export interface MigrationLockOptions {
  db: mongo.Db;
  logger: Logger;
  clock?: Clock;
  /** How long a claim holds without renewal: how long a crashed node keeps the others waiting. */
  ttlMs?: number;
  /** Names this process in the claim (default: host, pid and a random tag). */
  owner?: string;
}

export interface HeldLock {
  /** Which claim this is, and whose. */
  readonly n: number;
  readonly owner: string;
  /** Throws when another node has taken the lock over (this claim expired). */
  assertHeld(): Promise<void>;
  /** Marks the claim released, so the next node need not wait for its expiry. */
  release(): Promise<void>;
}

export type LockState = { state: 'free' } | { state: 'held'; owner: string; expiresAt: Date } | { state: 'stale'; owner: string; expiresAt: Date };

export class LockLostError extends Error {
  override name = 'LockLostError';
}

export interface MigrationLock {
  /** Who holds the lock now, if anyone. */
  inspect(): Promise<LockState>;
  /** Takes the lock if it is free or stale; undefined when another node holds it (or won the race for it). */
  tryAcquire(): Promise<HeldLock | undefined>;
}

export const DEFAULT_LOCK_TTL_MS = 60_000;

export function createMigrationLock(options: MigrationLockOptions): MigrationLock {
  const { db, logger } = options;
  const clock = options.clock ?? systemClock;
  const ttlMs = options.ttlMs ?? DEFAULT_LOCK_TTL_MS;
  const owner = options.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const claims = db.collection<LockClaim>(MIGRATION_LOCKS_COLLECTION);

  const latest = () => retryOnLockContention(() => claims.find({}, { sort: { n: -1 }, limit: 1 }).next());

  const stateOf = (claim: LockClaim | null): LockState => {
    if (!claim || claim.releasedAt) return { state: 'free' };
    if (claim.expiresAt.getTime() <= clock.nowMs()) return { state: 'stale', owner: claim.owner, expiresAt: claim.expiresAt };
    return { state: 'held', owner: claim.owner, expiresAt: claim.expiresAt };
  };

  return {
    async inspect() {
      return stateOf(await latest());
    },

    async tryAcquire() {
      const current = await latest();
      const state = stateOf(current);
      if (state.state === 'held') return undefined;
      const n = (current?.n ?? 0) + 1;
      const now = clock.nowMs();
      const id = `migrate-${n}`;
      const won = await insertClaim(claims, { _id: id, n, owner, acquiredAt: new Date(now), expiresAt: new Date(now + ttlMs) });
      if (!won) return undefined;
      if (state.state === 'stale') {
        logger.warn('took over the migration lock of a node that stopped renewing it', { staleOwner: state.owner, expiredAt: state.expiresAt.toISOString() });
      }

      let released = false;
      // Renew well before expiry; an update of our own claim by `_id` is safe on every server.
      const renew = setInterval(() => {
        void retryOnLockContention(() => claims.updateOne({ _id: id }, { $set: { expiresAt: new Date(clock.nowMs() + ttlMs) } })).catch((err: unknown) => {
          logger.warn('could not renew the migration lock', { err });
        });
      }, Math.max(10, Math.floor(ttlMs / 3)));
      renew.unref();

      return {
        n,
        owner,
        async assertHeld() {
          const top = await latest();
          if (released || top?._id !== id) throw new LockLostError(`the migration lock was taken over by ${top?.owner ?? 'another node'} (this node's claim expired)`);
        },
        async release() {
          if (released) return;
          released = true;
          clearInterval(renew);
          const at = new Date(clock.nowMs());
          await retryOnLockContention(() => claims.updateOne({ _id: id }, { $set: { releasedAt: at, expiresAt: at } }));
        },
      };
    },
  };
}
