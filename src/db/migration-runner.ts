import { setTimeout as sleep } from 'node:timers/promises';

import type { mongo } from 'mongoose';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { Logger } from '../logging/logger.js';
import { isDuplicateKey } from './claims.js';
import { retryOnLockContention } from './lock-contention.js';
import type { HeldLock } from './migration-lock.js';
import { createMigrationLock } from './migration-lock.js';
import { MIGRATIONS } from './migrations/index.js';
import type { Migration } from './migrations/migration.js';

/**
 * Versioned migrations: `db migrate` on the command line, and at every start of the server (and
 * of any CLI command) before anything else touches the data. One node at a time runs them under
 * the migration lock (src/db/migration-lock.ts); the others wait until it is released and then
 * find nothing pending. Each applied migration is one document `{ _id: id }` in `migrations`
 * (a unique insert: recorded once, whoever records it).
 */

export const MIGRATIONS_COLLECTION = 'migrations';

interface AppliedRecord {
  _id: string;
  description: string;
  appliedAt: Date;
  durationMs: number;
  by: string;
}

export interface MigrationStatus {
  id: string;
  description: string;
  /** `unknown`: recorded in the database but not known to this version (a newer version ran it). */
  state: 'applied' | 'pending' | 'unknown';
  appliedAt?: Date;
}

export interface MigrationRunnerOptions {
  db: mongo.Db;
  logger: Logger;
  /** Default: every migration of this version (src/db/migrations). */
  migrations?: readonly Migration[];
  clock?: Clock;
  /** The lock's expiry without renewal (default 60 s): how long a crashed node keeps the others waiting. */
  lockTtlMs?: number;
  /** How often a waiting node looks again (default 500 ms). */
  pollMs?: number;
  /** Names this process in the lock and the records. */
  owner?: string;
  /** The level of the "applying/applied migration" lines (default info; the CLI keeps stderr for its own output). */
  progressLevel?: 'info' | 'debug';
}

export interface MigrationRunner {
  status(): Promise<MigrationStatus[]>;
  /** Applies what is pending (waiting while another node does); returns the ids this process applied. */
  migrate(): Promise<string[]>;
}

export function createMigrationRunner(options: MigrationRunnerOptions): MigrationRunner {
  const { db, logger } = options;
  const migrations = options.migrations ?? MIGRATIONS;
  const clock = options.clock ?? systemClock;
  const pollMs = options.pollMs ?? 500;
  const progress = options.progressLevel === 'debug' ? logger.debug.bind(logger) : logger.info.bind(logger);
  const ids = migrations.map((m) => m.id);
  if (new Set(ids).size !== ids.length || ids.some((id, i) => i > 0 && id <= (ids[i - 1] ?? ''))) {
    throw new Error(`migrations must have distinct ids in ascending order: ${ids.join(', ')}`);
  }
  const lock = createMigrationLock({
    db,
    logger,
    clock,
    ...(options.lockTtlMs !== undefined ? { ttlMs: options.lockTtlMs } : {}),
    ...(options.owner !== undefined ? { owner: options.owner } : {}),
  });
  const applied = db.collection<AppliedRecord>(MIGRATIONS_COLLECTION);

  const appliedRecords = async () => new Map((await retryOnLockContention(() => applied.find({}).toArray())).map((r) => [r._id, r]));
  const pending = async () => {
    const done = await appliedRecords();
    return migrations.filter((m) => !done.has(m.id));
  };

  const runPending = async (held: HeldLock): Promise<string[]> => {
    const ran: string[] = [];
    // Read again under the lock: the node that held it before may have applied them.
    for (const migration of await pending()) {
      await held.assertHeld();
      const started = clock.nowMs();
      progress('applying migration', { migration: migration.id });
      await migration.up(db, { logger: logger.child({ migration: migration.id }), assertHeld: () => held.assertHeld() });
      const record: AppliedRecord = {
        _id: migration.id,
        description: migration.description,
        appliedAt: new Date(clock.nowMs()),
        durationMs: clock.nowMs() - started,
        by: held.owner,
      };
      try {
        await retryOnLockContention(() => applied.insertOne(record));
      } catch (err) {
        // Only when a node that lost the lock overlapped the one that took over: both ran it (which
        // every migration allows), the other one recorded it.
        if (!isDuplicateKey(err)) throw err;
      }
      progress('applied migration', { migration: migration.id, durationMs: record.durationMs });
      ran.push(migration.id);
    }
    return ran;
  };

  return {
    async status() {
      const done = await appliedRecords();
      const known: MigrationStatus[] = migrations.map((m) => {
        const record = done.get(m.id);
        return record
          ? { id: m.id, description: m.description, state: 'applied', appliedAt: record.appliedAt }
          : { id: m.id, description: m.description, state: 'pending' };
      });
      const unknown: MigrationStatus[] = [...done.values()]
        .filter((r) => !ids.includes(r._id))
        .map((r) => ({ id: r._id, description: r.description, state: 'unknown', appliedAt: r.appliedAt }));
      return [...known, ...unknown].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },

    async migrate() {
      let waitingFor: string | undefined;
      for (;;) {
        // Nothing pending (the usual start): no lock taken, one read.
        if ((await pending()).length === 0) return [];
        const held = await lock.tryAcquire();
        if (held) {
          try {
            return await runPending(held);
          } finally {
            await held.release().catch((err: unknown) => logger.warn('could not release the migration lock; it expires by itself', { err }));
          }
        }
        const state = await lock.inspect();
        if (state.state === 'held' && state.owner !== waitingFor) {
          waitingFor = state.owner;
          progress('waiting for migrations another node is running', { owner: state.owner, lockExpiresAt: state.expiresAt.toISOString() });
        }
        await sleep(pollMs);
      }
    },
  };
}
