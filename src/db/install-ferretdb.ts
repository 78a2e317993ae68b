import { checkEmbeddedPostgres } from './embedded-postgres.js';
import { ensureFerretDb, parseEmbeddedBackend } from './provision.js';

/**
 * `npm run db:install`: builds the embedded development database (FerretDB) into its cache
 * ahead of time, so the first `npm start` or test run does not wait for it, and checks that
 * the embedded PostgreSQL (EMBEDDED_DB=postgres) can run here. CI runs this.
 */
async function install(): Promise<void> {
  const log = (message: string): void => {
    process.stdout.write(`${message}\n`);
  };
  const binary = await ensureFerretDb(log);
  log(`FerretDB ready: ${binary}`);
  // Checked whichever backend is chosen: the tests start FerretDB on both.
  const chosen = parseEmbeddedBackend(process.env.EMBEDDED_DB);
  try {
    log(`PostgreSQL ready: ${await checkEmbeddedPostgres(log)}`);
  } catch (error) {
    // Not fatal: FerretDB then runs on SQLite (src/db/provision.ts says so when it starts).
    log(`PostgreSQL cannot run here${chosen === 'postgres' ? ', the embedded database will use SQLite' : ''}: ${error instanceof Error ? error.message : String(error)}`);
  }
  log(`embedded database: FerretDB on ${chosen === 'postgres' ? 'PostgreSQL' : 'SQLite'} (EMBEDDED_DB)`);
}

install().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
