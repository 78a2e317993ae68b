/**
 * Throughput of the embedded database's backends (FerretDB on PostgreSQL, on SQLite, and SQLite
 * with other settings), through the mongodb driver, with many concurrent clients.
 *
 *   npx tsx tools/embedded-db-bench.ts [seconds per operation, default 3] [backend…]
 *
 * Backends: postgres, sqlite, sqlite-sync-normal, sqlite-sync-off, sqlite-txlock-immediate.
 * Prints one line per operation and collection size, then a table of operations per second.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import mongoose from 'mongoose';

import { ensureFerretDb, provisionDatabase } from '../src/db/provision.js';

const CONCURRENCY = 32;
const SIZES = [10, 5_000];

interface Server {
  uri: string;
  stop(): Promise<void>;
}

type Doc = { _id: string; email: string; n: number; payload: string };

const sqliteVariants: Record<string, string> = {
  sqlite: '',
  'sqlite-sync-normal': '?_pragma=synchronous(normal)',
  'sqlite-sync-off': '?_pragma=synchronous(off)',
  'sqlite-txlock-immediate': '?_txlock=immediate',
};

async function startBackend(name: string, dir: string): Promise<Server> {
  if (name === 'postgres') {
    const database = await provisionDatabase({ dataDir: dir, backend: 'postgres' });
    return { uri: database.uri, stop: () => database.stop() };
  }
  const query = sqliteVariants[name];
  if (query === undefined) throw new Error(`unknown backend ${name}`);
  if (query === '') {
    const database = await provisionDatabase({ dataDir: dir, backend: 'sqlite' });
    return { uri: database.uri, stop: () => database.stop() };
  }
  // The variants: FerretDB started here with other SQLite URL parameters.
  const binary = await ensureFerretDb();
  const port = await freePort();
  const data = join(dir, 'sqlite');
  await mkdir(data, { recursive: true });
  const child = spawn(
    binary,
    [
      '--handler=sqlite',
      `--sqlite-url=file:${data}/${query}`,
      `--listen-addr=127.0.0.1:${port}`,
      `--state-dir=${data}`,
      '--debug-addr=-',
      '--telemetry=disable',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const uri = `mongodb://127.0.0.1:${port}/`;
  for (let i = 0; i < 100; i += 1) {
    const client = new mongoose.mongo.MongoClient(uri, { serverSelectionTimeoutMS: 500 });
    const ok = await client
      .connect()
      .then(() => client.db('admin').command({ ping: 1 }))
      .then(() => true)
      .catch(() => false);
    await client.close();
    if (ok) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    uri,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Runs `op` from CONCURRENCY loops for `seconds`; returns completed operations per second and errors. */
async function measure(seconds: number, op: (i: number) => Promise<unknown>): Promise<{ rate: number; errors: number; lastError?: string }> {
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  let lastError: string | undefined;
  let counter = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        counter += 1;
        try {
          await op(counter);
          done += 1;
        } catch (error) {
          errors += 1;
          lastError = error instanceof Error ? error.message : String(error);
        }
      }
    }),
  );
  const rate = done / ((Date.now() - started) / 1000);
  return lastError ? { rate, errors, lastError } : { rate, errors };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const seconds = Number(args[0] ?? 3) || 3;
  const backends = args.slice(1).length ? args.slice(1) : ['sqlite', 'postgres'];
  const results: Record<string, Record<string, number>> = {};

  for (const backend of backends) {
    const dir = await mkdtemp(join(tmpdir(), `embedded-db-bench-${backend}-`));
    await chmod(dir, 0o711);
    const server = await startBackend(backend, dir);
    const client = new mongoose.mongo.MongoClient(server.uri, { maxPoolSize: CONCURRENCY, directConnection: true });
    try {
      await client.connect();
      for (const size of SIZES) {
        const collection = client.db('bench').collection<Doc>(`docs_${size}`);
        const payload = 'x'.repeat(200);
        for (let start = 0; start < size; start += 500) {
          const batch = Array.from({ length: Math.min(500, size - start) }, (_, k) => ({
            _id: `id-${start + k}`,
            email: `user${start + k}@example.com`,
            n: 0,
            payload,
          }));
          await collection.insertMany(batch);
        }
        await collection.createIndex({ email: 1 }, { unique: true });
        const randomId = (): number => Math.floor(Math.random() * size);
        const ops: [string, (i: number) => Promise<unknown>][] = [
          ['findOne _id', () => collection.findOne({ _id: `id-${randomId()}` })],
          ['findOne indexed field', () => collection.findOne({ email: `user${randomId()}@example.com` })],
          ['updateOne _id', () => collection.updateOne({ _id: `id-${randomId()}` }, { $set: { n: Date.now() } })],
          [
            'upsert _id',
            () => collection.updateOne({ _id: `id-${randomId()}` }, { $set: { n: Date.now() } }, { upsert: true }),
          ],
          [
            'insertOne',
            (i) => collection.insertOne({ _id: `new-${size}-${i}`, email: `new${size}-${i}@example.com`, n: 0, payload }),
          ],
        ];
        for (const [name, op] of ops) {
          const { rate, errors, lastError } = await measure(seconds, op);
          const key = `${name} @${size}`;
          (results[key] ??= {})[backend] = Math.round(rate);
          console.log(
            `${backend.padEnd(24)} ${key.padEnd(28)} ${String(Math.round(rate)).padStart(6)}/s${errors ? `  ${errors} errors (${lastError})` : ''}`,
          );
        }
      }
    } finally {
      await client.close();
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }

  console.log(`\n| operation @ documents | ${backends.join(' | ')} |`);
  console.log(`|---|${backends.map(() => '---:').join('|')}|`);
  for (const [key, byBackend] of Object.entries(results)) {
    console.log(`| ${key} | ${backends.map((b) => byBackend[b] ?? '').join(' | ')} |`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
