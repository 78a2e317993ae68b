import { existsSync } from 'node:fs';
import path from 'node:path';

import dotenv from 'dotenv';
import type { Connection } from 'mongoose';

import { loadConfig } from '../config/config.js';
import { loadOrCreateDevSecrets } from '../config/dev-secrets.js';
import { connectDatabase } from '../db/connect.js';
import { findRunningDatabase, resolveDatabase } from '../db/provision.js';
import type { ServiceDeps } from '../deps.js';
import { createServices } from '../deps.js';
import { createLogger } from '../logging/logger.js';
import type { Output } from './command.js';

export interface CliSession {
  services: ServiceDeps;
  /** Closes the connection, and stops the database if this process started it. */
  close(): Promise<void>;
}

/**
 * Reads `.env` in development, as `npm start` does (src/main.ts), into process.env.
 * NOTE: call it before anything reads the environment; variables already set win.
 */
export function loadDotEnv(env: NodeJS.ProcessEnv): void {
  if (env.NODE_ENV !== 'production' && existsSync('.env')) dotenv.config({ path: '.env', quiet: true, processEnv: env });
}

/**
 * Config and database exactly as `npm start` has them (src/main.ts): the same development
 * secrets (or the server could not decrypt the client secrets written here), the same
 * MONGODB_URI or embedded database, the same database name.
 */
export async function openCliSession(env: NodeJS.ProcessEnv, err: Output): Promise<CliSession> {
  const production = env.NODE_ENV === 'production';
  const dataDir = env.DATA_DIR || '.data';
  const devSecrets = production ? undefined : await loadOrCreateDevSecrets(dataDir);
  const config = loadConfig(env, devSecrets);
  // stderr only: stdout carries results, and `--json` output must stay parseable.
  const logger = createLogger({
    level: config.logLevel,
    format: production ? 'json' : 'pretty',
    write: (line) => err.write(`${line}\n`),
  });

  const pidFile = path.join(config.dataDir, 'db.pid');
  // NOTE: while `npm start` runs, it owns the embedded database: share it. Provisioning
  // here would kill it as "stale" (src/db/provision.ts, killStaleChild).
  const running = config.mongodbUri ? undefined : await findRunningDatabase(pidFile);
  const database = running
    ? { uri: running, stop: async () => undefined }
    : await resolveDatabase(
        { MONGODB_URI: config.mongodbUri },
        { dataDir: path.join(config.dataDir, 'db'), pidFile, log: (m) => logger.info(m) },
      );
  if (running) logger.debug('using the database of the running server', { pidFile });

  let connection: Connection;
  try {
    connection = await connectDatabase(database.uri, logger, config.mongodbUri ? {} : { dbName: 'oidc' });
  } catch (error) {
    await database.stop();
    throw error;
  }

  try {
    const services = createServices(connection, config, logger);
    // The unique email index is what refuses a duplicate user; the server creates it at
    // start, but the CLI may be the first to touch a fresh database.
    await services.accounts.ensureIndexes();
    return {
      services,
      async close() {
        // Our own close is not an outage: no "database disconnected" warning (src/db/connect.ts).
        connection.removeAllListeners('disconnected');
        try {
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
