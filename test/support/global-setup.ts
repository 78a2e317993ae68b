import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEmbeddedBackend, provisionDatabase, type ProvisionedDatabase } from '../../src/db/provision.js';

/**
 * Where globalSetup leaves the database for globalTeardown (jest runs both in
 * its main process; test workers only see TEST_MONGODB_URI).
 */
export const testDatabaseStateKey: unique symbol = Symbol.for('oidc-server.test-database');

export interface TestDatabaseState {
  database: ProvisionedDatabase;
  dataDir: string;
}

export type GlobalWithTestDatabase = typeof globalThis & { [testDatabaseStateKey]?: TestDatabaseState };

/** Progress lines are held back unless provisioning is slow (a first FerretDB build). */
const QUIET_MS = 2_000;

export default async function globalSetup(): Promise<void> {
  const external = process.env.MONGODB_URI?.trim();
  if (external) {
    // Workers inherit process.env, so this reaches every test file.
    process.env.TEST_MONGODB_URI = external;
    console.log(`[test database] external (MONGODB_URI)`);
    return;
  }

  const backend = parseEmbeddedBackend(process.env.EMBEDDED_DB);
  const dataDir = await mkdtemp(join(tmpdir(), 'oidc-server-test-db-'));
  // Enterable (not listable) by others: as root, PostgreSQL runs as the user postgres.
  await chmod(dataDir, 0o711);
  const pending: string[] = [];
  let live = false;
  const goLive = (): void => {
    live = true;
    for (const line of pending.splice(0)) console.error(`[test database] ${line}`);
  };
  const timer = setTimeout(goLive, QUIET_MS);
  try {
    const database = await provisionDatabase({
      dataDir,
      backend,
      log: (line) => {
        pending.push(line);
        if (live) goLive();
      },
    });
    (globalThis as GlobalWithTestDatabase)[testDatabaseStateKey] = { database, dataDir };
    process.env.TEST_MONGODB_URI = database.uri;
    console.log(`[test database] ${database.kind}${database.backend ? ` on ${database.backend}` : ''} at ${database.uri} (data in ${dataDir})`);
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
