import { ensureFerretDb } from './provision.js';

/**
 * `npm run db:install`: builds the embedded development database (FerretDB) into its cache
 * ahead of time, so the first `npm start` or test run does not wait for it. CI runs this.
 */
ensureFerretDb((message) => process.stdout.write(`${message}\n`)).then(
  (binary) => process.stdout.write(`FerretDB ready: ${binary}\n`),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
