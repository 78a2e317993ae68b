import { existsSync } from 'node:fs';
import path from 'node:path';

import dotenv from 'dotenv';

import type { ProvisionOptions } from '../db/provision.js';
import type { Config } from './config.js';
import { loadConfig } from './config.js';
import { loadOrCreateDevSecrets } from './dev-secrets.js';

/**
 * How the server (src/main.ts) and the admin CLI (src/cli) read their configuration, so both
 * see the same settings, development secrets and embedded database.
 */

/**
 * NODE_ENV when the environment does not say: `development` when running the TypeScript sources
 * (`npm start`, `npm run cli`), `production` when running the compiled build (`node dist/…`, the
 * Docker image). NOTE: a deployed build without NODE_ENV must never fall back to development
 * (generated keys, a demo user with a known password, codes in the log).
 */
export function applyDefaultEnvironment(env: NodeJS.ProcessEnv, entryModuleUrl: string): void {
  if (env.NODE_ENV) return;
  env.NODE_ENV = new URL(entryModuleUrl).pathname.endsWith('.ts') ? 'development' : 'production';
}

/** Reads `.env` in development into `env`; variables already set win. */
export function loadDotEnv(env: NodeJS.ProcessEnv): void {
  if (env.NODE_ENV !== 'production' && existsSync('.env')) dotenv.config({ path: '.env', quiet: true, processEnv: env });
}

/** Validated configuration; in development, secrets the environment lacks come from DATA_DIR/dev-secrets.json. */
export async function loadRuntimeConfig(env: NodeJS.ProcessEnv): Promise<Config> {
  const devSecrets = env.NODE_ENV === 'production' ? undefined : await loadOrCreateDevSecrets(env.DATA_DIR || '.data');
  return loadConfig(env, devSecrets);
}

/** Where the embedded development database lives (when MONGODB_URI is not set). */
export function embeddedDatabaseOptions(config: Config, log: (message: string) => void): ProvisionOptions & { pidFile: string } {
  return {
    dataDir: path.join(config.dataDir, 'db'),
    pidFile: path.join(config.dataDir, 'db.pid'),
    backend: config.embeddedDb,
    log,
  };
}

/** The embedded database keeps our data in a database of its own name; MONGODB_URI names its own. */
export function databaseName(config: Config): { dbName?: string } {
  return config.mongodbUri ? {} : { dbName: 'oidc' };
}
