import { rm } from 'node:fs/promises';
import { testDatabaseStateKey, type GlobalWithTestDatabase } from './global-setup.js';

export default async function globalTeardown(): Promise<void> {
  const holder = globalThis as GlobalWithTestDatabase;
  const state = holder[testDatabaseStateKey];
  if (!state) return; // external database, or setup failed
  delete holder[testDatabaseStateKey];
  try {
    await state.database.stop();
  } finally {
    await rm(state.dataDir, { recursive: true, force: true });
  }
}
