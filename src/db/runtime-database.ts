import type { Config } from '../config/config.js';
import { ConfigError } from '../config/config.js';
import { embeddedDatabaseOptions } from '../config/runtime.js';

/** The database the server or the command line runs on: its URI, and how to stop it if this process started it. */
export interface RuntimeDatabase {
  uri: string;
  /** `external` (MONGODB_URI), or the kind of embedded development database that was started. */
  kind: string;
  stop(): Promise<void>;
}

export const MONGODB_URI_REQUIRED =
  'MONGODB_URI is required when NODE_ENV=production: set it to your MongoDB connection string (mongodb://…); the embedded development database never runs in production.';

/**
 * MONGODB_URI when it is set; otherwise, outside production, the embedded development database
 * (provisioned, or the one a running `npm start` owns when `shareRunning`).
 *
 * NOTE: the provisioning code (src/db/provision.ts and what it pulls in: process management,
 * FerretDB builds, embedded PostgreSQL) is imported only on that development path, so a production
 * process never loads it, and fails here with one clear line instead of starting a database.
 */
export async function openRuntimeDatabase(config: Config, log: (message: string) => void, { shareRunning = false } = {}): Promise<RuntimeDatabase> {
  if (config.mongodbUri) return { uri: config.mongodbUri, kind: 'external', stop: async () => undefined };
  if (config.env === 'production') throw new ConfigError(MONGODB_URI_REQUIRED);
  const { findRunningDatabase, provisionDatabase } = await import('./provision.js');
  const embedded = embeddedDatabaseOptions(config, log);
  // NOTE: while `npm start` runs, it owns the embedded database: share it. Provisioning a second
  // time would kill it as "stale" (provision.ts, killStaleChild).
  const running = shareRunning ? await findRunningDatabase(embedded.pidFile) : undefined;
  if (running) return { uri: running, kind: 'running', stop: async () => undefined };
  return provisionDatabase(embedded);
}
