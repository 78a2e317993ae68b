/**
 * Sign-in timing: how long authenticate() takes for an unknown email, a known email with a
 * wrong password, and the right password. The server promises the same answer and the same
 * timing for the first two (no user enumeration); this shows whether that holds here.
 *
 *   npm run bench:timing               (or: tsx bench/sign-in-timing.ts)
 *
 * Uses TEST_MONGODB_URI or MONGODB_URI when set (in a scratch database it drops afterwards);
 * otherwise it starts a database of its own in a temporary folder and stops it at the end.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { createAccountModel } from '../src/accounts/account.model.js';
import { createAccountService } from '../src/accounts/account.service.js';
import type { AccountService } from '../src/accounts/account.service.js';
import { connectDatabase } from '../src/db/connect.js';
import { provisionDatabase } from '../src/db/provision.js';
import type { ProvisionedDatabase } from '../src/db/provision.js';
import { createLogger } from '../src/logging/logger.js';

const RUNS = 30;
const WARM_UP = 3;

interface Case {
  label: string;
  expectOk: boolean;
  run(): Promise<boolean>;
}

function percentile(sorted: number[], p: number): number {
  // Nearest-rank method.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

async function time(fn: () => Promise<boolean>, expectOk: boolean, label: string): Promise<number> {
  const started = process.hrtime.bigint();
  const ok = await fn();
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (ok !== expectOk) throw new Error(`${label}: authenticate() answered ok=${ok}, expected ${expectOk}`);
  return elapsed;
}

function cases(accounts: AccountService, email: string, password: string): Case[] {
  let n = 0;
  return [
    {
      label: 'unknown email',
      expectOk: false,
      run: async () => (await accounts.authenticate(`nobody-${(n += 1)}@example.com`, password)).ok,
    },
    { label: 'known email, wrong password', expectOk: false, run: async () => (await accounts.authenticate(email, `${password}!`)).ok },
    { label: 'right password', expectOk: true, run: async () => (await accounts.authenticate(email, password)).ok },
  ];
}

async function main(): Promise<void> {
  const logger = createLogger({ level: 'error', format: 'json', write: (line) => process.stderr.write(`${line}\n`) });
  let provisioned: ProvisionedDatabase | undefined;
  let dataDir: string | undefined;
  let uri = process.env.TEST_MONGODB_URI?.trim() || process.env.MONGODB_URI?.trim();
  if (!uri) {
    dataDir = await mkdtemp(path.join(tmpdir(), 'oidc-bench-db-'));
    // Enterable (not listable) by others: run as root, the embedded PostgreSQL runs as the user postgres.
    await chmod(dataDir, 0o711);
    console.error('no TEST_MONGODB_URI or MONGODB_URI: starting a database of our own…');
    provisioned = await provisionDatabase({ dataDir, log: (line) => console.error(`[database] ${line}`) });
    uri = provisioned.uri;
  }
  const dbName = `bench_sign_in_${randomBytes(4).toString('hex')}`;
  const connection = await connectDatabase(uri, logger, { dbName });
  try {
    const accounts = createAccountService({ Account: createAccountModel(connection), logger });
    await accounts.ensureIndexes();
    const email = 'bench@example.com';
    const password = 'bench password 0123456789';
    await accounts.create({ email, password });

    const all = cases(accounts, email, password);
    // Warm up: the first unknown-email call also makes the dummy hash, the first query opens a socket.
    for (let i = 0; i < WARM_UP; i += 1) for (const c of all) await time(c.run, c.expectOk, c.label);

    const samples = new Map<string, number[]>(all.map((c) => [c.label, []]));
    // Interleaved, so drift (other load, CPU frequency) hits every case alike.
    for (let i = 0; i < RUNS; i += 1) {
      for (const c of all) samples.get(c.label)?.push(await time(c.run, c.expectOk, c.label));
    }

    const rows = all.map((c) => {
      const sorted = [...(samples.get(c.label) ?? [])].sort((a, b) => a - b);
      return { case: c.label, runs: sorted.length, median: percentile(sorted, 50), p90: percentile(sorted, 90), min: sorted[0] ?? 0, max: sorted.at(-1) ?? 0 };
    });
    const width = Math.max(...rows.map((r) => r.case.length), 'case'.length);
    const num = (v: number) => v.toFixed(1).padStart(9);
    console.log(`authenticate() timing, ${RUNS} runs each (ms), database: ${provisioned ? provisioned.kind : 'external'}`);
    console.log(`${'case'.padEnd(width)}  ${'runs'.padStart(4)} ${'median'.padStart(9)} ${'p90'.padStart(9)} ${'min'.padStart(9)} ${'max'.padStart(9)}`);
    console.log('-'.repeat(width + 2 + 4 + 4 * 10));
    for (const r of rows) {
      console.log(`${r.case.padEnd(width)}  ${String(r.runs).padStart(4)} ${num(r.median)} ${num(r.p90)} ${num(r.min)} ${num(r.max)}`);
    }
    const [unknown, wrong] = rows;
    if (unknown && wrong) {
      const ratio = unknown.median / wrong.median;
      console.log(`\nunknown email / wrong password (median): ${ratio.toFixed(2)}× — close to 1 means no timing oracle for user enumeration`);
    }
  } finally {
    await connection.db?.dropDatabase().catch(() => undefined);
    await connection.close();
    if (provisioned) await provisioned.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
