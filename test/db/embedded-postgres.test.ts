import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { binariesReachableBy, ensurePostgresUser, locateBinaries } from '../../src/db/embedded-postgres.js';

const asRoot = process.getuid?.() === 0;

describe('the PostgreSQL binaries, as root', () => {
  const made: string[] = [];
  afterAll(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });

  (asRoot ? it : it.skip)('are copied where the user postgres can run them when the project sits in a private folder', async () => {
    const runAs = await ensurePostgresUser();
    const installed = await locateBinaries();
    // As under /root: a folder only root may enter (mkdtemp makes it 0700).
    const privateDir = await mkdtemp(join(tmpdir(), 'private-project-'));
    made.push(privateDir);
    expect((await stat(privateDir)).mode & 0o777).toBe(0o700);
    const native = join(privateDir, 'native');
    await cp(dirname(dirname(installed.postgres)), native, { recursive: true, verbatimSymlinks: true });
    const hidden = { postgres: join(native, 'bin', 'postgres'), initdb: join(native, 'bin', 'initdb') };

    const usable = await binariesReachableBy(hidden, runAs, () => undefined);
    expect(usable.postgres.startsWith(join(tmpdir(), 'oidc-server-embedded-postgres'))).toBe(true);
    made.push(dirname(dirname(usable.postgres)));
    const version = spawnSync(usable.postgres, ['--version'], { uid: runAs.uid, gid: runAs.gid, encoding: 'utf8' });
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^postgres \(PostgreSQL\) \d+/);
    // A second call reuses the copy.
    expect(await binariesReachableBy(hidden, runAs, () => undefined)).toEqual(usable);
    // Binaries the postgres user can reach stay where they are.
    expect(await binariesReachableBy(installed, runAs, () => undefined)).toEqual(installed);
  });
});
