import type { Connection } from 'mongoose';

import { databaseName, loadRuntimeConfig } from '../config/runtime.js';
import { connectDatabase } from '../db/connect.js';
import { createMigrationRunner } from '../db/migration-runner.js';
import { openRuntimeDatabase } from '../db/runtime-database.js';
import type { Core } from '../core/core.js';
import { buildCore } from '../core/core.js';
import { createLogger } from '../logging/logger.js';
import type { Output } from './command.js';

export interface CliSession {
  services: Core;
  /** Flushes the audit log, closes the connection, and stops the database if this process started it. */
  close(): Promise<void>;
}

/**
 * Config and database exactly as `npm start` has them (src/main.ts): the same development
 * secrets (or the server could not decrypt the client secrets written here), the same
 * MONGODB_URI or embedded database, the same database name.
 */
export async function openCliSession(env: NodeJS.ProcessEnv, err: Output, { migrate = true }: { migrate?: boolean } = {}): Promise<CliSession> {
  const config = await loadRuntimeConfig(env);
  const production = config.env === 'production';
  // stderr only: stdout carries results, and `--json` output must stay parseable.
  const logger = createLogger({
    level: config.logLevel,
    format: production ? 'json' : 'pretty',
    write: (line) => err.write(`${line}\n`),
  });

  const database = await openRuntimeDatabase(config, (m) => logger.info(m), { shareRunning: true });
  if (database.kind === 'running') logger.debug('using the database of the running server');

  let connection: Connection;
  try {
    connection = await connectDatabase(database.uri, logger, databaseName(config));
  } catch (error) {
    await database.stop();
    throw error;
  }

  try {
    // As the server does at start: what a command does may rely on them (revocation by account
    // or client finds older records only once they are backfilled). Quiet unless it fails: stderr
    // is for what the command says.
    if (migrate) await createMigrationRunner({ db: connection.db!, logger, progressLevel: 'debug' }).migrate();
    const services = buildCore({ config, logger, connection });
    // The unique indexes are what refuse a duplicate user or a second use of a claim; the
    // server creates them at start, but the CLI may be the first to touch a fresh database.
    // The provider's own collections are the server's to set up (it serves them).
    await services.ensureIndexes({ withProvider: false });
    return {
      services,
      async close() {
        // Our own close is not an outage: no "database disconnected" warning (src/db/connect.ts).
        connection.removeAllListeners('disconnected');
        try {
          // The audit events of what the command did, before the connection goes.
          await services.close();
          await connection.close();
        } finally {
          await database.stop();
        }
      },
    };
  } catch (error) {
    await connection.close().catch(() => undefined);
    await database.stop();
    throw error;
  }
}
