import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEmbeddedBackend, provisionDatabase, type ProvisionedDatabase } from '../../src/db/provision.js';

/**
 * Where globalSetup leaves the databases for globalTeardown (jest runs both in its main process;
 * test workers only see TEST_MONGODB_URI and TEST_MONGODB_LANES).
 */
export const testDatabaseStateKey: unique symbol = Symbol.for('oidc-server.test-database');

export interface TestDatabaseState {
  /** One database server per jest worker, each with its own data folder. */
  lanes: { database: ProvisionedDatabase; dataDir: string }[];
}

export type GlobalWithTestDatabase = typeof globalThis & { [testDatabaseStateKey]?: TestDatabaseState };

/** Progress lines are held back unless provisioning is slow (a first FerretDB build). */
const QUIET_MS = 2_000;

/** What globalSetup is given of jest's configuration (the part it reads). */
interface GlobalConfigSeen {
  maxWorkers?: number;
}

/**
 * Starts one embedded database server per jest worker ("lane"; worker-database.ts points each
 * worker at its own), or takes MONGODB_URI for all of them.
 *
 * NOTE: one server per worker, not one for all: suites are isolated by database name anyway, but
 * a FerretDB server is one pool of PostgreSQL connections, and a burst of concurrent requests in
 * one suite (the limit tests send 100 at once) must not starve a suite running beside it.
 */
export default async function globalSetup(globalConfig: GlobalConfigSeen = {}): Promise<void> {
  const external = process.env.MONGODB_URI?.trim();
  if (external) {
    // Workers inherit process.env, so this reaches every test file.
    process.env.TEST_MONGODB_URI = external;
    delete process.env.TEST_MONGODB_LANES;
    console.log(`[test database] external (MONGODB_URI)`);
    return;
  }

  const backend = parseEmbeddedBackend(process.env.EMBEDDED_DB);
  const laneCount = Math.max(1, Math.floor(globalConfig.maxWorkers ?? 1));
  const pending: string[] = [];
  let live = false;
  const goLive = (): void => {
    live = true;
    for (const line of pending.splice(0)) console.error(`[test database] ${line}`);
  };
  const timer = setTimeout(goLive, QUIET_MS);
  const state: TestDatabaseState = { lanes: [] };
  (globalThis as GlobalWithTestDatabase)[testDatabaseStateKey] = state;
  try {
    // One after the other: each picks a free port, which two at once could both pick.
    for (let lane = 1; lane <= laneCount; lane += 1) {
      const dataDir = await mkdtemp(join(tmpdir(), 'oidc-server-test-db-'));
      try {
        // Enterable (not listable) by others: as root, PostgreSQL runs as the user postgres.
        await chmod(dataDir, 0o711);
        const database = await provisionDatabase({
          dataDir,
          backend,
          log: (line) => {
            pending.push(laneCount > 1 ? `lane ${lane}: ${line}` : line);
            if (live) goLive();
          },
        });
        state.lanes.push({ database, dataDir });
        console.log(
          `[test database] ${laneCount > 1 ? `lane ${lane}: ` : ''}${database.kind}${database.backend ? ` on ${database.backend}` : ''} at ${database.uri} (data in ${dataDir})`,
        );
      } catch (error) {
        await rm(dataDir, { recursive: true, force: true });
        throw error;
      }
    }
  } catch (error) {
    // What started before the failure stops again (globalTeardown does not run after a failed setup).
    await stopTestDatabases(state);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const uris = state.lanes.map((lane) => lane.database.uri);
  process.env.TEST_MONGODB_URI = uris[0];
  process.env.TEST_MONGODB_LANES = uris.join(' ');
}

/** Stops every lane's database and removes its data folder; clears the state. */
export async function stopTestDatabases(state: TestDatabaseState): Promise<void> {
  const lanes = state.lanes.splice(0);
  const results = await Promise.allSettled(
    lanes.map(async ({ database, dataDir }) => {
      try {
        await database.stop();
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    }),
  );
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
}
