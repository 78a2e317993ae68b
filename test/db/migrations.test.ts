/**
 * The migration runner against the real database: many nodes starting at once apply each
 * migration exactly once (the lock is a unique-insert claim, which FerretDB makes atomic too); a
 * lock left by a crashed node is taken over once it expires; a migration that dies half-way is
 * run again in full; and 001 backfills accountId/clientId so that revocation finds older records.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';

import { connectDatabase } from '../../src/db/connect.js';
import { MIGRATION_LOCKS_COLLECTION } from '../../src/db/migration-lock.js';
import { createMigrationRunner, MIGRATIONS_COLLECTION } from '../../src/db/migration-runner.js';
import { MIGRATIONS } from '../../src/db/migrations/index.js';
import type { Migration } from '../../src/db/migrations/migration.js';
import { createLogger } from '../../src/logging/logger.js';
import { revokeAccountAccess } from '../../src/oidc/account-revocation.js';
import { collectionName, revokeAccountRecords } from '../../src/oidc/mongo-adapter.js';
import { testDatabaseUri } from '../support/database.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface LogLine {
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[] = []) {
  return createLogger({
    level: 'debug',
    format: 'json',
    write: (line) => {
      const { level, msg, ...fields } = JSON.parse(line) as { level: string; msg: string };
      lines.push({ level, message: msg, fields });
    },
  });
}
const quiet = createLogger({ level: 'error', format: 'json', write: () => undefined });

/** A migration that leaves one effect document per run (a fresh `_id` each time), with a pause that widens any race. */
function countingMigration(id: string, pauseMs = 5): Migration {
  return {
    id,
    description: `test migration ${id}`,
    async up(db) {
      await sleep(pauseMs);
      await db.collection<{ _id: string; migration: string }>('effects').insertOne({ _id: randomBytes(8).toString('hex'), migration: id });
    },
  };
}

const TEST_MIGRATIONS = [countingMigration('001-first'), countingMigration('002-second'), countingMigration('003-third')];

describe('migrations', () => {
  let connection: Connection;
  const databases: mongo.Db[] = [];

  /** A fresh database on the one connection (a fresh history of migrations and locks). */
  const freshDb = (): mongo.Db => {
    const db = connection.useDb(`${connection.name}_${randomBytes(3).toString('hex')}`).db!;
    databases.push(db);
    return db;
  };
  const effects = async (db: mongo.Db) => {
    const counts: Record<string, number> = {};
    for (const doc of await db.collection<{ migration: string }>('effects').find({}).toArray()) counts[doc.migration] = (counts[doc.migration] ?? 0) + 1;
    return counts;
  };

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('migrations'), quiet);
  });

  afterAll(async () => {
    for (const db of databases) await db.dropDatabase().catch(() => undefined);
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  it('lists every migration module of src/db/migrations, in file order, with ids named after the files', () => {
    const files = readdirSync(path.join(ROOT, 'src/db/migrations'))
      .filter((f) => /^\d{3}-.+\.ts$/.test(f))
      .sort();
    expect(MIGRATIONS.map((m) => `${m.id}.ts`)).toEqual(files);
    for (const m of MIGRATIONS) expect(m.description.length).toBeGreaterThan(10);
  });

  it('two nodes starting together, 100 times over: each migration applied exactly once, by one of them', async () => {
    for (let round = 0; round < 100; round += 1) {
      const db = freshDb();
      const runners = [0, 1].map((i) => createMigrationRunner({ db, logger: quiet, migrations: TEST_MIGRATIONS, pollMs: 10, owner: `node-${i}` }));
      const applied = await Promise.all(runners.map((r) => r.migrate()));
      expect(applied.flat().sort()).toEqual(['001-first', '002-second', '003-third']);
      expect(await effects(db)).toEqual({ '001-first': 1, '002-second': 1, '003-third': 1 });
      expect(await db.collection(MIGRATIONS_COLLECTION).countDocuments()).toBe(3);
      await db.dropDatabase();
    }
  }, 300_000);

  it('twenty nodes starting together: still once each; the others wait, then find nothing pending', async () => {
    const db = freshDb();
    const runners = Array.from({ length: 20 }, (_, i) =>
      createMigrationRunner({ db, logger: quiet, migrations: [countingMigration('001-slow', 200), ...TEST_MIGRATIONS.slice(1)], pollMs: 20, owner: `node-${i}` }),
    );
    const applied = await Promise.all(runners.map((r) => r.migrate()));
    // One node ran them all: the lock is released only when it is done.
    expect(applied.filter((ids) => ids.length > 0)).toEqual([['001-slow', '002-second', '003-third']]);
    expect(await effects(db)).toEqual({ '001-slow': 1, '002-second': 1, '003-third': 1 });
    // The next start takes no lock at all.
    const claims = await db.collection(MIGRATION_LOCKS_COLLECTION).countDocuments();
    expect(await createMigrationRunner({ db, logger: quiet, migrations: TEST_MIGRATIONS.slice(1) }).migrate()).toEqual([]);
    expect(await db.collection(MIGRATION_LOCKS_COLLECTION).countDocuments()).toBe(claims);
  }, 120_000);

  it('takes over the lock of a crashed node once it has expired, and not before', async () => {
    const db = freshDb();
    const expiresAt = new Date(Date.now() + 1_500);
    await db.collection(MIGRATION_LOCKS_COLLECTION).insertOne({ _id: 'migrate-1' as never, n: 1, owner: 'crashed-node', acquiredAt: new Date(), expiresAt });
    const lines: LogLine[] = [];
    const started = Date.now();
    const applied = await createMigrationRunner({ db, logger: recordingLogger(lines), migrations: TEST_MIGRATIONS, pollMs: 50 }).migrate();
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(applied).toEqual(['001-first', '002-second', '003-third']);
    expect(await effects(db)).toEqual({ '001-first': 1, '002-second': 1, '003-third': 1 });
    expect(lines.find((l) => l.message.startsWith('waiting for migrations'))?.fields).toMatchObject({ owner: 'crashed-node' });
    expect(lines.find((l) => l.message.startsWith('took over the migration lock'))).toMatchObject({ level: 'warn', fields: { staleOwner: 'crashed-node' } });
  }, 30_000);

  it('a migration that fails half-way is recorded as nothing, releases the lock, and runs again in full', async () => {
    const db = freshDb();
    let failing = true;
    const halfWay: Migration = {
      id: '002-half-way',
      description: 'writes part of its work, then dies (the first time)',
      async up(target) {
        await target.collection<{ _id: string; v: number }>('work').updateOne({ _id: 'a' }, { $set: { v: 1 } }, { upsert: true });
        if (failing) throw new Error('killed half-way');
        await target.collection<{ _id: string; v: number }>('work').updateOne({ _id: 'b' }, { $set: { v: 1 } }, { upsert: true });
      },
    };
    const migrations = [TEST_MIGRATIONS[0]!, halfWay, TEST_MIGRATIONS[2]!];
    await expect(createMigrationRunner({ db, logger: quiet, migrations }).migrate()).rejects.toThrow('killed half-way');
    expect((await createMigrationRunner({ db, logger: quiet, migrations }).status()).map((s) => [s.id, s.state])).toEqual([
      ['001-first', 'applied'],
      ['002-half-way', 'pending'],
      ['003-third', 'pending'],
    ]);

    failing = false;
    const started = Date.now();
    // The lock was released on failure: the next run does not wait for its expiry (60 s).
    expect(await createMigrationRunner({ db, logger: quiet, migrations }).migrate()).toEqual(['002-half-way', '003-third']);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await db.collection('work').find({}).sort({ _id: 1 }).toArray()).toEqual([{ _id: 'a', v: 1 }, { _id: 'b', v: 1 }]);
    expect(await effects(db)).toEqual({ '001-first': 1, '003-third': 1 });
  }, 30_000);

  it('a node whose lock was taken over stops before its next step', async () => {
    const db = freshDb();
    const stepping: Migration = {
      id: '001-stepping',
      description: 'checks that it still holds the lock between batches',
      async up(target, { assertHeld }) {
        // Another node takes over (as after this one's claim expired).
        await target.collection(MIGRATION_LOCKS_COLLECTION).insertOne({ _id: 'migrate-2' as never, n: 2, owner: 'usurper', acquiredAt: new Date(), expiresAt: new Date(Date.now() + 60_000) });
        await assertHeld();
      },
    };
    await expect(createMigrationRunner({ db, logger: quiet, migrations: [stepping] }).migrate()).rejects.toThrow(/taken over by usurper/);
    expect(await db.collection(MIGRATIONS_COLLECTION).countDocuments()).toBe(0);
  });

  it('refuses a list out of order or with a repeated id', () => {
    const db = freshDb();
    expect(() => createMigrationRunner({ db, logger: quiet, migrations: [TEST_MIGRATIONS[1]!, TEST_MIGRATIONS[0]!] })).toThrow(/ascending order/);
    expect(() => createMigrationRunner({ db, logger: quiet, migrations: [TEST_MIGRATIONS[0]!, TEST_MIGRATIONS[0]!] })).toThrow(/distinct ids/);
  });

  it('reports migrations the database has but this version does not know as unknown', async () => {
    const db = freshDb();
    await createMigrationRunner({ db, logger: quiet, migrations: TEST_MIGRATIONS }).migrate();
    const older = await createMigrationRunner({ db, logger: quiet, migrations: TEST_MIGRATIONS.slice(0, 1) }).status();
    expect(older.map((s) => [s.id, s.state])).toEqual([
      ['001-first', 'applied'],
      ['002-second', 'unknown'],
      ['003-third', 'unknown'],
    ]);
    expect(await createMigrationRunner({ db, logger: quiet, migrations: TEST_MIGRATIONS.slice(0, 1) }).migrate()).toEqual([]);
  });
});

describe('001-backfill-oidc-owner', () => {
  let connection: Connection;
  let db: mongo.Db;
  const future = () => new Date(Date.now() + 3_600_000);

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('migration_001'), quiet);
    db = connection.db!;
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  /** A record as the adapter wrote it before it stored accountId and clientId beside the payload. */
  const legacy = (id: string, payload: Record<string, unknown>) => ({ _id: id, payload: JSON.stringify(payload), expiresAt: future() });

  it('makes revocation by account find records written before the fields existed (and in batches)', async () => {
    const grants = db.collection<{ _id: string }>(collectionName('Grant'));
    const sessions = db.collection<{ _id: string }>(collectionName('Session'));
    const refresh = db.collection<{ _id: string }>(collectionName('RefreshToken'));
    const interactions = db.collection<{ _id: string }>(collectionName('Interaction'));
    await grants.insertMany([
      legacy('g-victim', { kind: 'Grant', accountId: 'victim', clientId: 'app' }),
      legacy('g-other', { kind: 'Grant', accountId: 'victim2', clientId: 'app' }),
      { _id: 'g-broken', payload: '{not json', expiresAt: future() },
    ]);
    await sessions.insertOne(legacy('s-victim', { kind: 'Session', accountId: 'victim', uid: 'u1' }));
    await interactions.insertOne(legacy('i-victim', { kind: 'Interaction', session: { accountId: 'victim' } }));
    // More than one batch (500) in one collection.
    const many = Array.from({ length: 1_203 }, (_, i) => legacy(`rt-${String(i).padStart(5, '0')}`, { kind: 'RefreshToken', accountId: i % 2 ? 'victim' : 'bystander', clientId: 'app' }));
    await refresh.insertMany(many);

    // Before: revocation by the indexed field alone misses them all.
    expect(await revokeAccountAccess(db, 'victim')).toBe(0);

    const runner = createMigrationRunner({ db, logger: quiet });
    expect(await runner.migrate()).toEqual(['001-backfill-oidc-owner']);
    expect((await runner.status()).map((s) => s.state)).toEqual(['applied']);
    // The payloads are untouched; the fields are beside them.
    expect(await grants.findOne({ _id: 'g-victim' })).toMatchObject({ accountId: 'victim', clientId: 'app', payload: JSON.stringify({ kind: 'Grant', accountId: 'victim', clientId: 'app' }) });
    expect(await interactions.findOne({ _id: 'i-victim' })).toMatchObject({ accountId: 'victim' });
    expect(await grants.findOne({ _id: 'g-broken' })).toEqual({ _id: 'g-broken', payload: '{not json', expiresAt: expect.any(Date) });
    expect(await refresh.countDocuments({ accountId: { $exists: true }, clientId: 'app' })).toBe(1_203);

    // After: revocation by account finds them (interactions in progress stay, as for new records).
    expect(await revokeAccountAccess(db, 'victim')).toBe(1 + 1 + 601);
    expect(await grants.countDocuments({ _id: 'g-victim' })).toBe(0);
    expect(await sessions.countDocuments({ _id: 's-victim' })).toBe(0);
    expect(await refresh.countDocuments({})).toBe(602);
    expect(await grants.countDocuments({ _id: 'g-other' })).toBe(1);
    expect(await interactions.countDocuments({ _id: 'i-victim' })).toBe(1);
    expect(await revokeAccountRecords(db, 'victim', ['Interaction'])).toBe(1);
    // And by client: the client's records carry the indexed field now.
    expect(await db.collection(collectionName('RefreshToken')).countDocuments({ clientId: 'app' })).toBe(602);
  }, 120_000);

  it('is safe to run again: fields already there are left alone', async () => {
    const grants = db.collection<{ _id: string; accountId?: string; clientId?: string }>(collectionName('Grant'));
    await grants.insertOne({ ...legacy('g-new', { kind: 'Grant', accountId: 'someone', clientId: 'app' }), accountId: 'someone', clientId: 'app' });
    const before = await grants.find({}).sort({ _id: 1 }).toArray();
    const [backfill] = MIGRATIONS;
    await backfill!.up(db, { logger: quiet, assertHeld: async () => undefined });
    expect(await grants.find({}).sort({ _id: 1 }).toArray()).toEqual(before);
  });
});
