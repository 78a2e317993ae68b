import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SignJWT, calculateJwkThumbprint, importJWK, jwtVerify } from 'jose';
import type { Connection, mongo } from 'mongoose';

import { createSecretBox } from '../../src/crypto/secret-box.js';
import type { SecretBox } from '../../src/crypto/secret-box.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import { describeKeys, loadOrCreateSigningKeys, publishedKeys } from '../../src/oidc/keys.js';
import type { PrivateJwk, SigningKeyRecord } from '../../src/oidc/keys.js';
import { testDatabaseName, testDatabaseUri } from '../support/database.js';

const logger = createLogger({ level: 'error', format: 'json', write: () => {} });
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;

interface StoredKey {
  _id: string;
  alg: string;
  slot: string | null;
  sealedJwk: string;
  createdAt: Date;
  activatedAt: Date;
  retiredAt: Date | null;
}

describe('loadOrCreateSigningKeys', () => {
  let connection: Connection;
  const keyList = [{ id: 'k1', key: randomBytes(32) }];
  let secretBox: SecretBox;
  const scratch: mongo.Db[] = [];

  /** A database of its own for each test that needs an empty one. */
  const freshDb = (label: string): mongo.Db => {
    const db = connection.getClient().db(testDatabaseName(label));
    scratch.push(db);
    return db;
  };

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('keys'), logger);
    secretBox = createSecretBox(keyList);
  });

  afterAll(async () => {
    for (const db of scratch) await db.dropDatabase().catch(() => undefined);
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  it('first call creates one RS256 and one ES256 private key, RS256 first', async () => {
    const db = freshDb('keys_first');
    const keys = await loadOrCreateSigningKeys({ db, secretBox, logger });
    expect(keys.map((k) => k.alg)).toEqual(['RS256', 'ES256']);
    const [rsa, ec] = keys as [PrivateJwk, PrivateJwk];
    expect(rsa).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(ec).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(typeof rsa.d).toBe('string');
    expect(typeof ec.d).toBe('string');
    expect(Buffer.from(rsa.n ?? '', 'base64url').length * 8).toBeGreaterThanOrEqual(2048);
    expect(rsa.kid).not.toBe(ec.kid);
    expect(await db.collection('signing_keys').countDocuments()).toBe(2);
  });

  it('the kid is the RFC 7638 thumbprint of the public key', async () => {
    const keys = await loadOrCreateSigningKeys({ db: freshDb('keys_kid'), secretBox, logger });
    for (const key of keys) {
      expect(key.kid).toBe(await calculateJwkThumbprint(key, 'sha256'));
    }
  });

  it('the keys sign, and their public halves verify', async () => {
    const keys = await loadOrCreateSigningKeys({ db: freshDb('keys_sign'), secretBox, logger });
    for (const key of keys) {
      const jwt = await new SignJWT({ sub: 'someone' })
        .setProtectedHeader({ alg: key.alg, kid: key.kid })
        .sign(await importJWK(key, key.alg));
      const publicJwk = Object.fromEntries(
        Object.entries(key).filter(([name]) => !(PRIVATE_MEMBERS as readonly string[]).includes(name)),
      );
      const { payload } = await jwtVerify(jwt, await importJWK(publicJwk, key.alg));
      expect(payload.sub).toBe('someone');
    }
  });

  it('a restart (second call) returns the same keys and creates none', async () => {
    const db = freshDb('keys_restart');
    const first = await loadOrCreateSigningKeys({ db, secretBox, logger });
    const second = await loadOrCreateSigningKeys({ db, secretBox, logger });
    expect(second.map((k) => k.kid)).toEqual(first.map((k) => k.kid));
    expect(second).toEqual(first);
    expect(await db.collection('signing_keys').countDocuments()).toBe(2);
  });

  it('a node with other encryption keys cannot open them, and says which key is missing', async () => {
    const db = freshDb('keys_nodes');
    const first = await loadOrCreateSigningKeys({ db, secretBox, logger });
    const stranger = createSecretBox([{ id: 'k2', key: randomBytes(32) }]);
    await expect(loadOrCreateSigningKeys({ db, secretBox: stranger, logger })).rejects.toThrow(
      /encryption key "k1" is not configured/,
    );
    // It created nothing of its own either.
    expect(await db.collection('signing_keys').countDocuments()).toBe(2);
    // A node configured with [new, old] (rotation) opens them.
    const rotated = createSecretBox([{ id: 'k2', key: randomBytes(32) }, ...keyList]);
    const again = await loadOrCreateSigningKeys({ db, secretBox: rotated, logger });
    expect(again.map((k) => k.kid)).toEqual(first.map((k) => k.kid));
  });

  it('the database itself refuses a second first-boot key for an algorithm', async () => {
    const db = freshDb('keys_slot');
    await loadOrCreateSigningKeys({ db, secretBox, logger });
    const now = new Date();
    await expect(
      db.collection<StoredKey>('signing_keys').insertOne({
        _id: 'another-kid',
        alg: 'RS256',
        slot: 'initial:RS256',
        sealedJwk: 'v1.k1.x.y.z',
        createdAt: now,
        activatedAt: now,
        retiredAt: null,
      }),
    ).rejects.toMatchObject({ code: 11000 });
  });

  it('stores no private key material in clear', async () => {
    const db = freshDb('keys_sealed');
    const keys = await loadOrCreateSigningKeys({ db, secretBox, logger });
    const docs = await db.collection<StoredKey>('signing_keys').find().toArray();
    expect(docs).toHaveLength(2);
    const everything = JSON.stringify(docs);
    for (const key of keys) {
      for (const member of PRIVATE_MEMBERS) {
        const value = (key as unknown as Record<string, unknown>)[member];
        if (typeof value === 'string') expect(everything).not.toContain(value);
      }
    }
    for (const doc of docs) {
      expect(Object.keys(doc).sort()).toEqual(['_id', 'activatedAt', 'alg', 'createdAt', 'publishAt', 'retiredAt', 'sealedJwk', 'slot']);
      expect(doc.sealedJwk).toMatch(/^v1\.k1\./);
      expect(doc.sealedJwk).not.toContain('"d"');
      expect(doc.retiredAt).toBeNull();
      // The sealed value is bound to its kid: it does not open as another key's.
      expect(() => secretBox.open(doc.sealedJwk, 'signing_key:another-kid')).toThrow(/failed authentication/);
      const opened = JSON.parse(secretBox.open(doc.sealedJwk, `signing_key:${doc._id}`)) as PrivateJwk;
      expect(opened.kid).toBe(doc._id);
      expect(typeof opened.d).toBe('string');
    }
  });

  it('two concurrent first calls on an empty database end with exactly one active key per algorithm', async () => {
    for (let round = 0; round < 3; round += 1) {
      const db = freshDb(`keys_race_${round}`);
      const results = await Promise.all([
        loadOrCreateSigningKeys({ db, secretBox, logger }),
        loadOrCreateSigningKeys({ db, secretBox, logger }),
      ]);
      const rows = await db.collection<StoredKey>('signing_keys').find({ retiredAt: null }).toArray();
      expect(rows.filter((row) => row.alg === 'RS256')).toHaveLength(1);
      expect(rows.filter((row) => row.alg === 'ES256')).toHaveLength(1);
      // Both "nodes" serve the same JWKS.
      const [a, b] = results as [PrivateJwk[], PrivateJwk[]];
      const kidOf = (alg: string) => rows.find((row) => row.alg === alg)?._id;
      expect(a.map((k) => k.kid)).toEqual([kidOf('RS256'), kidOf('ES256')]);
      expect(b.map((k) => k.kid)).toEqual(a.map((k) => k.kid));
    }
  });

  it('many nodes starting together still end with one key per algorithm', async () => {
    const db = freshDb('keys_race_many');
    const results = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateSigningKeys({ db, secretBox, logger })));
    expect(await db.collection('signing_keys').countDocuments({ alg: 'RS256', retiredAt: null })).toBe(1);
    expect(await db.collection('signing_keys').countDocuments({ alg: 'ES256', retiredAt: null })).toBe(1);
    for (const keys of results) expect(keys.map((k) => k.kid)).toEqual(results[0]?.map((k) => k.kid));
  });
});

describe('key states by time (describeKeys, publishedKeys)', () => {
  const T0 = Date.UTC(2030, 0, 1);
  const MIN = 60_000;
  const RETENTION_S = 24 * 60 * 60;
  const row = (kid: string, alg: 'RS256' | 'ES256', activatedMin: number, extra: Partial<SigningKeyRecord> = {}): SigningKeyRecord => ({
    _id: kid,
    alg,
    sealedJwk: 'sealed',
    createdAt: new Date(T0 + Math.min(activatedMin, 0) * MIN),
    activatedAt: new Date(T0 + activatedMin * MIN),
    retiredAt: null,
    ...extra,
  });
  const statesAt = (rows: SigningKeyRecord[], minutes: number, retention = RETENTION_S) =>
    Object.fromEntries(describeKeys(rows, new Date(T0 + minutes * MIN), retention).map((v) => [v.kid, v.state]));

  const rows = [row('rs1', 'RS256', -100), row('rs2', 'RS256', 60, { createdAt: new Date(T0), publishAt: new Date(T0) }), row('es1', 'ES256', -100)];

  it.each([
    [0, { rs1: 'active', rs2: 'pending', es1: 'active' }],
    [59, { rs1: 'active', rs2: 'pending', es1: 'active' }],
    [60, { rs1: 'published-only', rs2: 'active', es1: 'active' }],
    [60 + 24 * 60 - 1, { rs1: 'published-only', rs2: 'active', es1: 'active' }],
    [60 + 24 * 60, { rs1: 'retired', rs2: 'active', es1: 'active' }],
  ])('at +%i min', (minutes, expected) => {
    expect(statesAt(rows, minutes)).toEqual(expected);
  });

  it('the superseded key retires exactly its retention after the successor activates', () => {
    const [rs1] = describeKeys(rows, new Date(T0), RETENTION_S);
    expect(rs1).toMatchObject({ kid: 'rs1', supersededAt: new Date(T0 + 60 * MIN), retireAfter: new Date(T0 + 60 * MIN + RETENTION_S * 1000) });
    // A row of an earlier version without publishAt was published when it was created.
    expect(rs1?.publishAt).toEqual(rs1?.createdAt);
  });

  it('publishes the active key of each algorithm first (the provider signs with the first), RS256 before ES256', () => {
    expect(publishedKeys(rows, new Date(T0), RETENTION_S).map((k) => k.view.kid)).toEqual(['rs1', 'rs2', 'es1']);
    expect(publishedKeys(rows, new Date(T0 + 61 * MIN), RETENTION_S).map((k) => k.view.kid)).toEqual(['rs2', 'rs1', 'es1']);
    expect(publishedKeys(rows, new Date(T0 + 2 * 24 * 60 * MIN), RETENTION_S).map((k) => k.view.kid)).toEqual(['rs2', 'es1']);
  });

  it('a retired key supersedes nothing: a cancelled rotation leaves the old key signing', () => {
    const cancelled = [row('rs1', 'RS256', -100), row('rs2', 'RS256', 60, { retiredAt: new Date(T0), sealedJwk: undefined }), row('es1', 'ES256', -100)];
    expect(statesAt(cancelled, 120)).toEqual({ rs1: 'active', rs2: 'retired', es1: 'active' });
    expect(describeKeys(cancelled, new Date(T0 + 120 * MIN), RETENTION_S)[0]).toMatchObject({ supersededAt: null, retireAfter: null });
  });

  it('two keys activating at the same moment: the order is the same on every node (creation, then kid)', () => {
    const tied = [row('rs1', 'RS256', -100), row('rsB', 'RS256', 60, { createdAt: new Date(T0) }), row('rsA', 'RS256', 60, { createdAt: new Date(T0) })];
    expect(statesAt(tied, 61)).toEqual({ rs1: 'published-only', rsA: 'published-only', rsB: 'active' });
    expect(statesAt([...tied].reverse(), 61)).toEqual(statesAt(tied, 61));
  });

  it('without a known retention, superseded keys stay published', () => {
    expect(statesAt(rows, 10 * 365 * 24 * 60, Number.POSITIVE_INFINITY)).toEqual({ rs1: 'published-only', rs2: 'active', es1: 'active' });
  });
});
