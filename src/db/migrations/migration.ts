import type { mongo } from 'mongoose';

import type { Logger } from '../../logging/logger.js';

/** What a migration is given besides the database. */
export interface MigrationContext {
  logger: Logger;
  /**
   * Throws when this node no longer holds the migration lock. A long migration calls it between
   * batches, so a node that lost the lock (it was paused past the lock's expiry) stops early.
   */
  assertHeld(): Promise<void>;
}

/**
 * One step of the database's history, applied once per database (recorded in `migrations`).
 *
 * NOTE: `up` must be idempotent and resumable: a node can die half-way (the next start runs the
 * migration again from the beginning), and a node paused past the lock's expiry can overlap the
 * node that took over. Write fixed values computed from the record itself, in batches; never
 * increment, append or move data in a way a second run would repeat.
 */
export interface Migration {
  /** `NNN-kebab-name`, the module's file name: migrations run in this order. */
  id: string;
  /** One line for `db migrate --status`. */
  description: string;
  up(db: mongo.Db, context: MigrationContext): Promise<void>;
}
