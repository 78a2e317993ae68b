import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mongoose from 'mongoose';
import { defaults } from '../../config/defaults.js';
import {
  parseEmbeddedBackend,
  provisionDatabase,
  resolveDatabase,
  type EmbeddedBackend,
  type ProvisionedDatabase,
} from '../../src/db/provision.js';
import { testDatabaseName, testDatabaseUri, withDatabaseName } from '../support/database.js';

// Real server processes, no mocks. A first FerretDB build may run here when
// globalSetup used MONGODB_URI and the cache is empty, hence the long timeout.
const PROVISION_TIMEOUT_MS = 15 * 60_000;

async function connect(uri: string): Promise<mongoose.Connection> {
  return mongoose
    .createConnection(uri, { dbName: 'provision_test', serverSelectionTimeoutMS: 2_000 })
    .asPromise();
}

async function readCommandLine(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')[0] ?? '';
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The PostgreSQL postmaster's pid on a FerretDB-on-PostgreSQL data folder (its lock file), if any. */
async function postmasterPid(dbDir: string): Promise<number | undefined> {
  const lock = await readFile(join(dbDir, 'postgres', 'cluster', 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = lock ? Number.parseInt(lock.split('\n')[0] ?? '', 10) : Number.NaN;
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Processes whose command line mentions `text` (Linux /proc). */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) pids.push(Number(entry));
  }
  return pids;
}

describe.each<EmbeddedBackend>(['postgres', 'sqlite'])('provisionDatabase (FerretDB on %s unless mongod is on PATH)', (backend) => {
  let dataDir: string;
  let pidFile: string;
  let database: ProvisionedDatabase;
  const others: ProvisionedDatabase[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'provision-test-'));
    // Enterable by others: as root, PostgreSQL runs as the user postgres.
    await chmod(dataDir, 0o711);
    pidFile = join(dataDir, 'server.pid');
    database = await provisionDatabase({ dataDir: join(dataDir, 'db'), pidFile, backend });
  }, PROVISION_TIMEOUT_MS);

  afterAll(async () => {
    for (const other of others) await other.stop();
    await database?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('starts a local server on a loopback port, with a URI without a database name', () => {
    expect(['mongod', 'ferretdb', 'memory-server']).toContain(database.kind);
    expect(database.uri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/$/);
    if (database.kind === 'ferretdb') expect(database.backend).toBe(backend);
  });

  it('runs PostgreSQL for FerretDB on loopback only, and not as root', async () => {
    if (database.backend !== 'postgres') return;
    const pid = await postmasterPid(join(dataDir, 'db'));
    expect(pid).toBeDefined();
    expect(isAlive(pid ?? 0)).toBe(true);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    expect(status).not.toMatch(/^Uid:\s+0\s/m);
    const lock = await readFile(join(dataDir, 'db', 'postgres', 'cluster', 'postmaster.pid'), 'utf8');
    // The lock file's fifth and sixth lines: the socket directory (none) and the listen address.
    expect(lock.split('\n')[4]).toBe('');
    expect(lock.split('\n')[5]).toBe('127.0.0.1');

    // FerretDB gets the URL with the cluster's password from its environment, not on its command line (ps shows that to everyone).
    const ferretdbPid = Number((await readFile(pidFile, 'utf8')).trim());
    const commandLine = await readFile(`/proc/${ferretdbPid}/cmdline`, 'utf8');
    expect(commandLine).toContain('--handler=postgresql');
    expect(commandLine).not.toMatch(/postgres:\/\//);
    const password = (await readFile(join(dataDir, 'db', 'postgres', 'password'), 'utf8')).trim();
    expect(password.length).toBeGreaterThanOrEqual(32);
    expect(commandLine).not.toContain(password);
    expect((await stat(join(dataDir, 'db', 'postgres', 'password'))).mode & 0o077).toBe(0);
  });

  it('answers a burst of finds that each leave a cursor open, more than FerretDB holds PostgreSQL connections for by default', async () => {
    // FerretDB on PostgreSQL keeps a connection per open cursor, while the driver returns its own
    // between batches: 120 results of two batches each over 4 driver connections once hung it.
    // On SQLite it still hangs: FerretDB's SQLite pool is a fixed 100 connections.
    if (database.backend !== 'postgres') return;
    const client = new mongoose.mongo.MongoClient(database.uri, { maxPoolSize: 4, directConnection: true });
    try {
      const things = client.db('provision_burst').collection<{ n: number }>('things');
      await things.insertMany(Array.from({ length: 150 }, (_, n) => ({ n })));
      let timer: NodeJS.Timeout | undefined;
      const burst = Promise.all(Array.from({ length: 120 }, () => things.find({ n: { $gte: 0 } }).toArray()));
      const outcome = await Promise.race([
        burst,
        new Promise<'hung'>((resolve) => {
          timer = setTimeout(() => resolve('hung'), 30_000);
        }),
      ]);
      clearTimeout(timer);
      expect(outcome).not.toBe('hung');
      if (outcome !== 'hung') expect(outcome.every((found) => found.length === 150)).toBe(true);
    } finally {
      await client.close(true);
    }
  }, 60_000);

  it('records the server pid in the pid file', async () => {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(isAlive(pid)).toBe(true);
    expect(await readCommandLine(pid)).toMatch(/(ferretdb|mongod)[^/]*$/);
  });

  it('stores and reads back a document', async () => {
    const connection = await connect(database.uri);
    try {
      await connection.collection('things').insertOne({ name: 'kept across restarts', n: 1 });
      const found = await connection.collection('things').findOne({ name: 'kept across restarts' });
      expect(found?.n).toBe(1);
    } finally {
      await connection.close();
    }
  });

  it('refuses connections after stop(), removes the pid file, and leaves no PostgreSQL running', async () => {
    const postgresPid = await postmasterPid(join(dataDir, 'db'));
    await database.stop();
    await expect(connect(database.uri)).rejects.toThrow();
    expect(existsSync(pidFile)).toBe(false);
    if (postgresPid !== undefined) expect(isAlive(postgresPid)).toBe(false);
    expect(await processesMentioning(join(dataDir, 'db'))).toEqual([]);
  });

  it('keeps the data across stop() and start() on the same port', async () => {
    const uriBefore = database.uri;
    await database.start();
    expect(database.uri).toBe(uriBefore);
    const connection = await connect(database.uri);
    try {
      const found = await connection.collection('things').findOne({ name: 'kept across restarts' });
      expect(found?.n).toBe(1);
    } finally {
      await connection.close();
    }
  });

  it('kills a stale server recorded in the pid file before starting another', async () => {
    if (database.kind === 'memory-server') return; // its own killer process handles orphans
    const stalePid = Number((await readFile(pidFile, 'utf8')).trim());
    const stalePostgres = await postmasterPid(join(dataDir, 'db'));
    const port = Number(new URL(database.uri).port);
    // As after a crash of the parent: the old server still holds the port and the data.
    const successor = await provisionDatabase({ dataDir: join(dataDir, 'db'), pidFile, port, backend });
    others.push(successor);
    expect(isAlive(stalePid)).toBe(false);
    if (stalePostgres !== undefined) {
      expect(isAlive(stalePostgres)).toBe(false);
      expect(await postmasterPid(join(dataDir, 'db'))).not.toBe(stalePostgres);
    }
    expect(successor.uri).toBe(database.uri);
    const connection = await connect(successor.uri);
    try {
      expect(await connection.collection('things').countDocuments()).toBe(1);
    } finally {
      await connection.close();
    }
  });
});

describe('resolveDatabase', () => {
  it('takes MONGODB_URI as an external database and starts nothing', async () => {
    const dataDir = join(tmpdir(), `provision-never-created-${process.pid}`);
    const uri = 'mongodb://db.example.invalid:27017/';
    const database = await resolveDatabase({ MONGODB_URI: uri }, { dataDir });
    expect(database).toMatchObject({ kind: 'external', uri });
    expect(existsSync(dataDir)).toBe(false);
    await expect(database.stop()).resolves.toBeUndefined();
    await expect(database.start()).rejects.toThrow(/external/);
  });

  it('provisions a local server when MONGODB_URI is empty', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'provision-test-'));
    await chmod(dataDir, 0o711);
    const database = await resolveDatabase({ MONGODB_URI: '' }, { dataDir });
    try {
      expect(database.kind).not.toBe('external');
      const connection = await connect(database.uri);
      await connection.close();
    } finally {
      await database.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('EMBEDDED_DB', () => {
  it('takes postgres or sqlite, and the default when unset or empty', () => {
    expect(parseEmbeddedBackend('postgres')).toBe('postgres');
    expect(parseEmbeddedBackend(' sqlite ')).toBe('sqlite');
    expect(parseEmbeddedBackend(undefined)).toBe(defaults.embeddedDb);
    expect(parseEmbeddedBackend('')).toBe(defaults.embeddedDb);
  });

  it('refuses anything else, naming the setting', () => {
    expect(() => parseEmbeddedBackend('mysql')).toThrow(/EMBEDDED_DB must be one of postgres, sqlite/);
    expect(() => parseEmbeddedBackend('Postgres')).toThrow(/EMBEDDED_DB/);
  });
});

describe('test database URIs', () => {
  it('gives each call its own database on the server globalSetup provisioned', () => {
    const first = testDatabaseUri('Provision Test!');
    const second = testDatabaseUri('Provision Test!');
    expect(first).not.toBe(second);
    expect(first.startsWith(process.env.TEST_MONGODB_URI?.replace(/\/$/, '') ?? '<unset>')).toBe(true);
  });

  it('makes names of [a-z0-9_] only, at most 38 characters', () => {
    const name = testDatabaseName('A very-long label: with/dots.and $signs and more and more');
    expect(name).toMatch(/^t_[a-z0-9_]+_[0-9a-f]{8}$/);
    expect(name.length).toBeLessThanOrEqual(38);
    expect(testDatabaseName('$$$')).toMatch(/^t_db_[0-9a-f]{8}$/);
  });

  it('puts the name before a query string and replaces an existing path', () => {
    expect(withDatabaseName('mongodb://127.0.0.1:1234/', 'x')).toBe('mongodb://127.0.0.1:1234/x');
    expect(withDatabaseName('mongodb://127.0.0.1:1234', 'x')).toBe('mongodb://127.0.0.1:1234/x');
    expect(withDatabaseName('mongodb://a:1,b:2/?replicaSet=rs0', 'x')).toBe('mongodb://a:1,b:2/x?replicaSet=rs0');
    expect(withDatabaseName('mongodb://a:1?replicaSet=rs0', 'x')).toBe('mongodb://a:1/x?replicaSet=rs0');
    expect(withDatabaseName('mongodb://a:1/old?w=1', 'x')).toBe('mongodb://a:1/x?w=1');
    // Credentials authenticated against the old path's database keep doing so.
    expect(withDatabaseName('mongodb://u:p@a:1/admin', 'x')).toBe('mongodb://u:p@a:1/x?authSource=admin');
    expect(withDatabaseName('mongodb+srv://u:p@c.example/app?authSource=other', 'x')).toBe(
      'mongodb+srv://u:p@c.example/x?authSource=other',
    );
  });
});
