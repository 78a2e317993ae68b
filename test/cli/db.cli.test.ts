/**
 * `db migrate`: `--status` lists applied and pending migrations without changing anything, a run
 * applies what is pending once, and every other command brings the database up to date on opening
 * (as the server does at start), quietly.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import { dbMigrate } from '../../src/cli/db.commands.js';
import type { MigrationJson } from '../../src/cli/db.commands.js';
import { connectDatabase } from '../../src/db/connect.js';
import { MIGRATIONS_COLLECTION } from '../../src/db/migration-runner.js';
import { MIGRATIONS } from '../../src/db/migrations/index.js';
import type { Core } from '../../src/core/core.js';
import { createCliWorkspace, dropCliDatabase, openCliDatabase, quietLogger, runCli, runCommand } from '../support/cli.js';
import type { CliWorkspace } from '../support/cli.js';

const IDS = MIGRATIONS.map((m) => m.id);

describe('db migrate, in process', () => {
  let connection: Connection;
  let services: Core;

  beforeAll(async () => {
    ({ connection, services } = await openCliDatabase('cli_db'));
  });

  afterAll(() => dropCliDatabase(connection));

  it('--status lists every migration as pending on a fresh database, and changes nothing', async () => {
    const status = await runCommand(dbMigrate, ['--status'], services);
    expect(status).toMatchObject({ code: 0, stderr: '' });
    const [header, ...rows] = status.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+STATE\s+APPLIED AT\s+DESCRIPTION$/);
    expect(rows.map((r) => r.split(/\s+/).slice(0, 3))).toEqual(IDS.map((id) => [id, 'pending', '-']));
    expect(await services.db.collection(MIGRATIONS_COLLECTION).countDocuments()).toBe(0);
  });

  it('applies what is pending once, then reports the database up to date', async () => {
    const first = await runCommand(dbMigrate, [], services);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(IDS.map((id) => `Applied ${id}\n`).join(''));
    const again = await runCommand(dbMigrate, [], services);
    expect(again).toMatchObject({ code: 0, stdout: 'Nothing to migrate: the database is up to date.\n' });
    expect(await services.db.collection(MIGRATIONS_COLLECTION).countDocuments()).toBe(IDS.length);

    const json = await runCommand(dbMigrate, ['--status', '--json'], services);
    const listed = JSON.parse(json.stdout) as MigrationJson[];
    expect(listed.map((m) => [m.id, m.state])).toEqual(IDS.map((id) => [id, 'applied']));
    for (const m of listed) expect(Date.parse(m.applied_at ?? '')).toBeGreaterThan(Date.now() - 60_000);
    expect(JSON.parse((await runCommand(dbMigrate, ['--json'], services)).stdout)).toEqual({ applied: [] });
  });

  it('exit 2 and the usage for a bad command line, touching nothing', async () => {
    const extra = await runCommand(dbMigrate, ['now'], services);
    expect(extra).toMatchObject({ code: 2, stdout: '' });
    expect(extra.stderr).toMatch(/unexpected argument 'now'[\s\S]*Usage: npm run cli -- db migrate/);
    const unknown = await runCommand(dbMigrate, ['--force'], services);
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toMatch(/Unknown option '--force'/);
  });
});

describe('npm run cli -- db migrate, as a child process', () => {
  let workspace: CliWorkspace;

  beforeAll(async () => {
    workspace = await createCliWorkspace('cli_db_spawn');
  });

  afterAll(() => workspace?.remove());

  const applied = async () => {
    const connection = await connectDatabase(workspace.mongoUri, quietLogger());
    try {
      return (await connection.db!.collection(MIGRATIONS_COLLECTION).find({}).toArray()).map((d) => String(d._id));
    } finally {
      await connection.close();
    }
  };

  it('--status leaves a fresh database pending; any other command applies the migrations, saying nothing on stderr', async () => {
    const status = await runCli(['db', 'migrate', '--status', '--json'], workspace.env, workspace.workDir);
    expect(status).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(status.stdout) as MigrationJson[]).map((m) => m.state)).toEqual(IDS.map(() => 'pending'));
    expect(await applied()).toEqual([]);

    const list = await runCli(['user', 'list'], workspace.env, workspace.workDir);
    expect(list).toMatchObject({ code: 0, stderr: '', stdout: 'No users.\n' });
    expect((await applied()).sort()).toEqual(IDS);

    const overview = await runCli(['db', '--help'], workspace.env, workspace.workDir);
    expect(overview.stdout).toMatch(/^ {2}db migrate +apply pending database migrations/m);
  }, 120_000);
});
