import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';

import type { BenchReport, ResultRow } from '../../bench/report.js';

/**
 * `npm run bench` for real, in its quick mode, on two cheap scenarios with very short runs: both
 * targets start in child processes, answer, and report the columns the README explains. Runs on
 * the tests' database server (--database external), in a scratch database it must drop.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');
const BENCH = path.join(ROOT, 'bench/run.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, BENCH, ...args], {
      cwd: ROOT,
      env: { ...process.env, MONGODB_URI: process.env.TEST_MONGODB_URI ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function benchDatabases(): Promise<string[]> {
  const client = new mongoose.mongo.MongoClient(process.env.TEST_MONGODB_URI ?? '', { directConnection: true });
  try {
    await client.connect();
    const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
    return databases.map((d) => d.name).filter((name) => name.startsWith('bench_'));
  } finally {
    await client.close();
  }
}

describe('npm run bench (quick)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bench-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('measures discovery and client_credentials on both targets and writes the JSON and the table', async () => {
    const before = await benchDatabases();
    const out = path.join(dir, 'run.json');
    const run = await runBench([
      '--quick',
      '--only',
      'discovery,client_credentials',
      '--duration',
      '1',
      '--warm-up',
      '0.2',
      '--connections',
      '2',
      '--database',
      'external',
      '--out',
      out,
    ]);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });

    const report = JSON.parse(await readFile(out, 'utf8')) as BenchReport;
    expect(report.settings).toMatchObject({ quick: true, durationSeconds: 1, connections: 2, scenarios: ['discovery', 'client_credentials'] });
    expect(report.targets.map((t) => t.id)).toEqual(['ours-mongodb', 'bare']);
    expect(report.benchOnlySettings).toHaveProperty('EMAIL_CODE_RESEND_INTERVAL', '0');
    const row = (scenario: string, target: string): ResultRow => {
      const found = report.results.find((r) => r.scenario === scenario && r.target === target);
      if (!found) throw new Error(`no result for ${scenario} on ${target}`);
      return found;
    };
    for (const scenario of ['discovery', 'client_credentials']) {
      for (const target of ['ours-mongodb', 'bare']) {
        const r = row(scenario, target);
        expect(r.errors).toBe(0);
        expect(r.ops).toBeGreaterThan(0);
        expect(r.opsPerSecond).toBeGreaterThan(0);
        expect(r.cpuMsPerOp).toBeGreaterThan(0);
        expect(r.rssPeakMiB).toBeGreaterThan(20);
        expect(r.latencyMs.p99).toBeGreaterThanOrEqual(r.latencyMs.p50);
        expect(r.requestsPerOp).toBe(1);
        expect(r.loadGeneratorCpuShare).toBeGreaterThan(0);
      }
    }
    // A token costs our server at least one write (the token); bare oidc-provider has no database.
    expect(row('client_credentials', 'ours-mongodb').dbCommandsPerOp).toBeGreaterThanOrEqual(1);
    // …by command and collection (client credentials tokens are inserted beside access tokens).
    expect(Object.keys(row('client_credentials', 'ours-mongodb').dbCommandsPerOpByName ?? {})).toContainEqual(expect.stringMatching(/^insert oidc_access_token$/));
    expect(row('client_credentials', 'bare').dbCommandsPerOp).toBeNull();
    // The database the bench did not start is not its to watch.
    expect(row('discovery', 'ours-mongodb').dbCpuMsPerOp).toBeNull();

    const table = await readFile(path.join(dir, 'run.md'), 'utf8');
    expect(table).toContain('| scenario | target | ops/s | p50 ms | p99 ms | CPU ms/op | DB cmds/op |');
    expect(table).toMatch(/\| client_credentials \| ours-mongodb \| [\d.]+ \|/);
    expect(run.stdout).toBe(table);
    // The scratch database went with the run.
    expect(await benchDatabases()).toEqual(before);
  });

  it('refuses an unknown scenario before starting anything, and writes nothing', async () => {
    const out = path.join(dir, 'refused.json');
    const run = await runBench(['--quick', '--only', 'discovery,nonsense', '--out', out]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('unknown scenario nonsense');
    expect(existsSync(out)).toBe(false);
  });
});
