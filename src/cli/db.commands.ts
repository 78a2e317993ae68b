import { createMigrationRunner } from '../db/migration-runner.js';
import type { MigrationStatus } from '../db/migration-runner.js';
import type { CliCommand } from './command.js';
import { EXIT_OK, formatTable, parseCommandArgs, toCommandFunction, UsageError, writeJson } from './command.js';

const migrateUsage = `Usage: npm run cli -- db migrate [--status] [--json]

Applies the database migrations this version has and the database lacks, in order, each once.
The server does the same at every start (so does every other command); this runs them on
purpose, for instance before starting new servers. Several nodes may run it at once: one
applies them under a lock in the database while the others wait.

Options:
  --status     list every migration as applied or pending, and change nothing
  --json       print JSON instead of text
  -h, --help   show this help
`;

/** A migration as `--status --json` prints it. */
export interface MigrationJson {
  id: string;
  state: MigrationStatus['state'];
  applied_at: string | null;
  description: string;
}

function toJson(status: MigrationStatus): MigrationJson {
  return { id: status.id, state: status.state, applied_at: status.appliedAt?.toISOString() ?? null, description: status.description };
}

export const dbMigrateCommand: CliCommand = {
  name: 'db migrate',
  summary: 'apply pending database migrations (--status: list them)',
  usage: migrateUsage,
  // NOTE: the session must not apply migrations on opening: `--status` reports them untouched.
  skipsMigrations: true,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(args, { status: { type: 'boolean' }, json: { type: 'boolean' } }, { allowPositionals: true });
    if (values.help) return 'help';
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const json = values.json ?? false;

    return async ({ services, out }) => {
      const runner = createMigrationRunner({ db: services.db, logger: services.logger });
      if (values.status) {
        const statuses = await runner.status();
        if (json) writeJson(out, statuses.map(toJson));
        else if (statuses.length === 0) out.write('No migrations.\n');
        else out.write(formatTable(['ID', 'STATE', 'APPLIED AT', 'DESCRIPTION'], statuses.map((s) => [s.id, s.state, s.appliedAt?.toISOString() ?? '-', s.description])));
        return EXIT_OK;
      }
      const applied = await runner.migrate();
      if (json) writeJson(out, { applied });
      else if (applied.length === 0) out.write('Nothing to migrate: the database is up to date.\n');
      else out.write(applied.map((id) => `Applied ${id}\n`).join(''));
      return EXIT_OK;
    };
  },
};

export const dbMigrate = toCommandFunction(dbMigrateCommand);
