import { stopTestDatabases, testDatabaseStateKey, type GlobalWithTestDatabase } from './global-setup.js';

export default async function globalTeardown(): Promise<void> {
  const holder = globalThis as GlobalWithTestDatabase;
  const state = holder[testDatabaseStateKey];
  if (!state) return; // external database, or setup failed
  delete holder[testDatabaseStateKey];
  await stopTestDatabases(state);
}
