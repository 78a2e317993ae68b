import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';
import { errors } from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';

import { createClientModel } from '../../src/clients/client.model.js';
import { createClientService } from '../../src/clients/client.service.js';
import type { ClientService } from '../../src/clients/client.service.js';
import { createSecretBox } from '../../src/crypto/secret-box.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import {
  ADAPTER_MODELS,
  collectionName,
  createMongoAdapter,
  ensureAdapterIndexes,
  sweepExpired,
} from '../../src/oidc/mongo-adapter.js';
import { testDatabaseName, testDatabaseUri } from '../support/database.js';
import { createTestClock } from '../support/clock.js';

const silent = createLogger({ level: 'error', format: 'json', write: () => {} });

/** A fresh id per call, so tests in this file never collide. */
const newId = (prefix = 'id'): string => `${prefix}-${randomBytes(12).toString('base64url')}`;

/** Keys FerretDB (and old MongoDB) refuse in documents, and a few other awkward values. */
function awkwardPayload(extra: AdapterPayload = {}): AdapterPayload {
  return {
    accountId: 'account-1',
    clientId: 'client.with.dots',
    scope: 'openid email offline_access',
    // Resource indicators (RFC 8707) and client ids used as object keys.
    resource: 'https://api.example.com/v1.0',
    'https://api.example.com/v1.0': { scope: 'read write', 'nested.key': true },
    authorizations: {
      'client.with.dots': { sid: 'sid-1', grantId: 'grant-x', persistsLogout: true },
      $dollar: { sid: 'sid-2' },
    },
    extra: {
      $where: 'this.a == 1',
      '$set.x': { 'a.b': 1 },
      'ünïcödé ключ 🔑': ['list', ['nested', ['arrays']]],
      nul: 'before\u0000after',
      big: 2 ** 53 - 1,
      negative: -0.5,
      empty: {},
      nothing: null,
      truthy: true,
    },
    ...extra,
  };
}

interface StoredDoc {
  _id: string;
  payload: string;
  grantId?: string;
  uid?: string;
  userCode?: string;
  expiresAt: Date | null;
  consumedAt?: Date | null;
}

describe('MongoDB adapter for oidc-provider', () => {
  let connection: Connection;
  let db: mongo.Db;
  let clients: ClientService;
  const clock = createTestClock(Date.now());
  const warnings: string[] = [];
  let adapterFor: (name: string) => Adapter;

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('adapter'), silent);
    if (!connection.db) throw new Error('no database');
    db = connection.db;
    const Client = createClientModel(connection);
    await Client.createIndexes();
    clients = createClientService({ Client, secretBox: createSecretBox([{ id: 'k', key: randomBytes(32) }]) });
    const logger = createLogger({ level: 'warn', format: 'json', write: (line) => warnings.push(line) });
    await ensureAdapterIndexes(db, silent);
    adapterFor = createMongoAdapter({ db, clientStore: clients, logger, clock });
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  const raw = (model: string) => db.collection<StoredDoc>(collectionName(model));

  describe('collection names', () => {
    it('one oidc_<snake_case> collection per model', () => {
      expect(collectionName('AccessToken')).toBe('oidc_access_token');
      expect(collectionName('Session')).toBe('oidc_session');
      expect(collectionName('BackchannelAuthenticationRequest')).toBe('oidc_backchannel_authentication_request');
    });
  });

  describe.each(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'Session', 'DeviceCode', 'Grant', 'Interaction'])(
    '%s',
    (model) => {
      let adapter: Adapter;
      beforeAll(() => {
        adapter = adapterFor(model);
      });

      it('round-trips a payload with dotted and $-prefixed keys exactly', async () => {
        const id = newId();
        const payload = awkwardPayload({ jti: id, kind: model, grantId: newId('grant') });
        await adapter.upsert(id, payload, 60);
        const found = await adapter.find(id);
        expect(found).toStrictEqual(payload);
        // And does not store the payload as a free-form document.
        const doc = await raw(model).findOne({ _id: id });
        expect(typeof doc?.payload).toBe('string');
      });

      it('find of an unknown id is undefined', async () => {
        await expect(adapter.find(newId('missing'))).resolves.toBeUndefined();
      });

      it('upsert overwrites the whole payload of an existing id', async () => {
        const id = newId();
        await adapter.upsert(id, { jti: id, scope: 'openid', old: 'gone after overwrite' }, 60);
        await adapter.upsert(id, { jti: id, scope: 'openid email', 'new.key': 1 }, 60);
        expect(await adapter.find(id)).toStrictEqual({ jti: id, scope: 'openid email', 'new.key': 1 });
        expect(await raw(model).countDocuments({ _id: id })).toBe(1);
      });

      it('upsert moves the expiry: an expired record upserted again is found again', async () => {
        const id = newId();
        const start = clock.nowMs();
        await adapter.upsert(id, { jti: id }, 10);
        clock.set(start + 11_000);
        try {
          expect(await adapter.find(id)).toBeUndefined();
          await adapter.upsert(id, { jti: id, renewed: true }, 10);
          expect(await adapter.find(id)).toStrictEqual({ jti: id, renewed: true });
        } finally {
          clock.set(start);
        }
      });

      it('never returns a record whose expiresIn has passed', async () => {
        const id = newId();
        const start = clock.nowMs();
        await adapter.upsert(id, { jti: id }, 60);
        try {
          clock.set(start + 59_999);
          expect(await adapter.find(id)).toStrictEqual({ jti: id });
          clock.set(start + 60_000);
          expect(await adapter.find(id)).toBeUndefined();
          clock.set(start + 3_600_000);
          expect(await adapter.find(id)).toBeUndefined();
        } finally {
          clock.set(start);
        }
        // Still stored (until the sweep or a TTL index), just never returned once expired.
        expect(await raw(model).countDocuments({ _id: id })).toBe(1);
      });

      it('a record upserted without expiresIn does not expire', async () => {
        const id = newId();
        await adapter.upsert(id, { jti: id }, 0);
        const start = clock.nowMs();
        clock.set(start + 10 * 365 * 24 * 3_600_000);
        try {
          expect(await adapter.find(id)).toStrictEqual({ jti: id });
        } finally {
          clock.set(start);
        }
      });

      it('destroy removes the record and leaves the others', async () => {
        const gone = newId();
        const kept = newId();
        await adapter.upsert(gone, { jti: gone }, 60);
        await adapter.upsert(kept, { jti: kept }, 60);
        await adapter.destroy(gone);
        expect(await adapter.find(gone)).toBeUndefined();
        expect(await adapter.find(kept)).toStrictEqual({ jti: kept });
        await expect(adapter.destroy(newId('never-existed'))).resolves.toBeUndefined();
      });

      it('revokeByGrantId removes only that grant’s records, and only in this model', async () => {
        const grant = newId('grant');
        const other = newId('grant');
        const mine = [newId(), newId()];
        const theirs = newId();
        const unbound = newId();
        for (const id of mine) await adapter.upsert(id, { jti: id, grantId: grant }, 60);
        await adapter.upsert(theirs, { jti: theirs, grantId: other }, 60);
        await adapter.upsert(unbound, { jti: unbound }, 60);
        const otherModel = model === 'AccessToken' ? 'RefreshToken' : 'AccessToken';
        const elsewhere = newId();
        await adapterFor(otherModel).upsert(elsewhere, { jti: elsewhere, grantId: grant }, 60);

        await adapter.revokeByGrantId(grant);

        for (const id of mine) expect(await adapter.find(id)).toBeUndefined();
        expect(await adapter.find(theirs)).toStrictEqual({ jti: theirs, grantId: other });
        expect(await adapter.find(unbound)).toStrictEqual({ jti: unbound });
        expect(await adapterFor(otherModel).find(elsewhere)).toStrictEqual({ jti: elsewhere, grantId: grant });
      });

      it('consume sets `consumed` in epoch seconds, and a later upsert does not clear it', async () => {
        // An authorization code's consumption is the claim alone (next test).
        if (model === 'AuthorizationCode') return;
        const id = newId();
        const payload = { jti: id, grantId: newId('grant'), scope: 'openid' };
        await adapter.upsert(id, payload, 60);
        const consumedAtMs = clock.nowMs() + 1_234;
        const start = clock.nowMs();
        clock.set(consumedAtMs);
        try {
          await adapter.consume(id);
        } finally {
          clock.set(start);
        }
        const consumed = Math.floor(consumedAtMs / 1000);
        expect(await adapter.find(id)).toStrictEqual({ ...payload, consumed });

        // The provider saves entities again after consuming them (e.g. a rotated refresh token):
        // neither a payload without `consumed` nor one with it may un-consume the record.
        await adapter.upsert(id, { ...payload, scope: 'openid email' }, 60);
        expect(await adapter.find(id)).toStrictEqual({ ...payload, scope: 'openid email', consumed });
        await adapter.upsert(id, { ...payload, consumed: undefined }, 60);
        expect((await adapter.find(id))?.consumed).toBe(consumed);
        await adapter.upsert(id, { ...payload, consumed: false }, 60);
        expect((await adapter.find(id))?.consumed).toBe(consumed);
        // `consumed` lives beside the payload, not inside it.
        const doc = await raw(model).findOne({ _id: id });
        expect(JSON.parse(doc?.payload ?? '{}')).not.toHaveProperty('consumed');
      });

      it('consume of an authorization code writes no mark: the claim alone refuses the next one and revokes the grant', async () => {
        if (model !== 'AuthorizationCode') return;
        const id = newId();
        const grantId = newId('grant');
        await adapter.upsert(id, { jti: id, grantId }, 60);
        await adapterFor('Grant').upsert(grantId, { jti: grantId }, 60);
        await adapter.consume(id);
        expect(await raw(model).findOne({ _id: id })).not.toHaveProperty('consumedAt');
        expect(await adapter.find(id)).toStrictEqual({ jti: id, grantId });
        await expect(adapter.consume(id)).rejects.toMatchObject({ error: 'invalid_grant' });
        expect(await adapter.find(id)).toBeUndefined();
        expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
      });

      it('an upsert carrying `consumed` stores it', async () => {
        const id = newId();
        const consumed = Math.floor(clock.nowMs() / 1000) - 5;
        await adapter.upsert(id, { jti: id, consumed }, 60);
        expect(await adapter.find(id)).toStrictEqual({ jti: id, consumed });
        // And a later consume() of it is a replay.
        await expect(adapter.consume(id)).rejects.toBeInstanceOf(errors.InvalidGrant);
      });
    },
  );

  describe('Session.findByUid', () => {
    it('finds a live session by uid, round-tripping its payload', async () => {
      const adapter = adapterFor('Session');
      const id = newId('sess');
      const uid = newId('uid');
      const payload = awkwardPayload({ jti: id, uid, loginTs: Math.floor(clock.nowMs() / 1000) });
      await adapter.upsert(id, payload, 3600);
      expect(await adapter.findByUid(uid)).toStrictEqual(payload);
      expect(await adapter.findByUid(newId('uid'))).toBeUndefined();
    });

    it('never returns an expired session by uid', async () => {
      const adapter = adapterFor('Session');
      const id = newId('sess');
      const uid = newId('uid');
      await adapter.upsert(id, { jti: id, uid }, 30);
      const start = clock.nowMs();
      clock.set(start + 30_000);
      try {
        expect(await adapter.findByUid(uid)).toBeUndefined();
        expect(await adapter.find(id)).toBeUndefined();
      } finally {
        clock.set(start);
      }
      expect(await adapter.findByUid(uid)).toStrictEqual({ jti: id, uid });
    });

    it('a session whose id was reset (destroy old, upsert new, same uid) is found under the new id', async () => {
      const adapter = adapterFor('Session');
      const uid = newId('uid');
      const oldId = newId('sess');
      const newSessionId = newId('sess');
      await adapter.upsert(oldId, { jti: oldId, uid }, 3600);
      // What oidc-provider's Session#save does after resetIdentifier().
      await adapter.destroy(oldId);
      await adapter.upsert(newSessionId, { jti: newSessionId, uid }, 3600);
      expect(await adapter.findByUid(uid)).toStrictEqual({ jti: newSessionId, uid });
    });
  });

  describe('DeviceCode.findByUserCode', () => {
    it('finds a live device code by its user code', async () => {
      const adapter = adapterFor('DeviceCode');
      const id = newId('dc');
      const userCode = `UC-${randomBytes(4).toString('hex').toUpperCase()}`;
      const payload = awkwardPayload({ jti: id, userCode, grantId: newId('grant') });
      await adapter.upsert(id, payload, 600);
      expect(await adapter.findByUserCode(userCode)).toStrictEqual(payload);
      expect(await adapter.findByUserCode('UC-NOPE')).toBeUndefined();
    });

    it('never returns an expired device code by user code', async () => {
      const adapter = adapterFor('DeviceCode');
      const id = newId('dc');
      const userCode = `UC-${randomBytes(4).toString('hex').toUpperCase()}`;
      await adapter.upsert(id, { jti: id, userCode }, 1);
      const start = clock.nowMs();
      clock.set(start + 1_000);
      try {
        expect(await adapter.findByUserCode(userCode)).toBeUndefined();
      } finally {
        clock.set(start);
      }
    });
  });

  describe('expiry with the real clock', () => {
    it('a record with expiresIn 1 is gone from find after a second has passed', async () => {
      // An adapter without a fake clock, as production builds it.
      const adapter = createMongoAdapter({ db, clientStore: clients, logger: silent })('AccessToken');
      const id = newId();
      await adapter.upsert(id, { jti: id }, 1);
      expect(await adapter.find(id)).toStrictEqual({ jti: id });
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(await adapter.find(id)).toBeUndefined();
    });
  });

  describe('consume', () => {
    async function seedGrant(grantId: string): Promise<Record<string, string[]>> {
      const ids: Record<string, string[]> = { AccessToken: [], AuthorizationCode: [], RefreshToken: [] };
      for (const model of Object.keys(ids)) {
        for (let i = 0; i < 2; i += 1) {
          const id = newId(model);
          await adapterFor(model).upsert(id, { jti: id, grantId, kind: model }, 600);
          ids[model]?.push(id);
        }
      }
      await adapterFor('Grant').upsert(grantId, { jti: grantId, accountId: 'a', clientId: 'c' }, 3600);
      return ids;
    }

    it('≥ 20 concurrent consumes of one code: exactly one wins, the others get invalid_grant and the grant is revoked everywhere', async () => {
      const grantId = newId('grant');
      const bystander = newId('grant');
      const ids = await seedGrant(grantId);
      const bystanderIds = await seedGrant(bystander);
      const code = ids.AuthorizationCode?.[0] ?? '';
      const adapter = adapterFor('AuthorizationCode');

      const results = await Promise.allSettled(Array.from({ length: 25 }, () => adapter.consume(code)));

      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(24);
      for (const { reason } of lost) {
        expect(reason).toBeInstanceOf(errors.InvalidGrant);
        expect((reason as errors.InvalidGrant).error).toBe('invalid_grant');
        expect((reason as errors.InvalidGrant).status).toBe(400);
      }

      for (const model of ['AccessToken', 'AuthorizationCode', 'RefreshToken']) {
        expect(await raw(model).countDocuments({ grantId })).toBe(0);
        for (const id of ids[model] ?? []) expect(await adapterFor(model).find(id)).toBeUndefined();
      }
      expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
      expect(await raw('Grant').countDocuments({ _id: grantId })).toBe(0);

      // Another grant is untouched.
      for (const model of ['AccessToken', 'AuthorizationCode', 'RefreshToken']) {
        for (const id of bystanderIds[model] ?? []) expect(await adapterFor(model).find(id)).toBeDefined();
      }
      expect(await adapterFor('Grant').find(bystander)).toBeDefined();

      expect(warnings.some((line) => line.includes('grant revoked') && line.includes(grantId))).toBe(true);
    });

    it('concurrent consumes of one refresh token: one wins, the rest are refused as a reused refresh token', async () => {
      const grantId = newId('grant');
      const ids = await seedGrant(grantId);
      const token = ids.RefreshToken?.[1] ?? '';
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => adapterFor('RefreshToken').consume(token)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(lost).toHaveLength(19);
      for (const { reason } of lost) {
        expect((reason as errors.InvalidGrant).error).toBe('invalid_grant');
        expect((reason as errors.InvalidGrant).error_detail).toMatch(/refresh token/);
      }
      expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
      for (const model of ['AccessToken', 'AuthorizationCode', 'RefreshToken']) {
        expect(await raw(model).countDocuments({ grantId })).toBe(0);
      }
    });

    it('a second consume after the first (a replay) is refused and revokes the grant', async () => {
      const grantId = newId('grant');
      const ids = await seedGrant(grantId);
      const code = ids.AuthorizationCode?.[0] ?? '';
      const adapter = adapterFor('AuthorizationCode');
      await adapter.consume(code);
      expect(await adapterFor('Grant').find(grantId)).toBeDefined();
      await expect(adapter.consume(code)).rejects.toMatchObject({ error: 'invalid_grant' });
      expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
      expect(await raw('AccessToken').countDocuments({ grantId })).toBe(0);
    });

    it('consume of an unknown id is refused', async () => {
      await expect(adapterFor('AuthorizationCode').consume(newId('missing'))).rejects.toBeInstanceOf(errors.InvalidGrant);
    });
  });

  describe('Client model goes to the ClientStore', () => {
    it('find returns what the client service stores, secret included', async () => {
      const created = await clients.create({ name: 'Adapter RP', redirectUris: ['https://rp.example.com/cb'] });
      const adapter = adapterFor('Client');
      const metadata = await adapter.find(created.clientId);
      expect(metadata).toMatchObject({
        client_id: created.clientId,
        client_name: 'Adapter RP',
        client_secret: created.clientSecret,
        redirect_uris: ['https://rp.example.com/cb'],
        token_endpoint_auth_method: 'client_secret_basic',
      });
      // Not in any oidc_* collection.
      expect(await db.collection(collectionName('Client')).countDocuments()).toBe(0);
    });

    it('upsert and destroy go to the clients collection; the secret is stored sealed', async () => {
      const adapter = adapterFor('Client');
      const clientId = newId('client');
      const secret = randomBytes(32).toString('base64url');
      const metadata: AdapterPayload = {
        client_id: clientId,
        client_name: 'Registered',
        client_secret: secret,
        redirect_uris: ['https://registered.example.com/cb'],
        token_endpoint_auth_method: 'client_secret_basic',
      };
      await adapter.upsert(clientId, metadata, 0);
      expect(await adapter.find(clientId)).toStrictEqual(metadata);
      expect((await clients.get(clientId))?.name).toBe('Registered');
      const doc = await db.collection<{ _id: string }>('clients').findOne({ _id: clientId });
      expect(JSON.stringify(doc)).not.toContain(secret);

      await adapter.destroy(clientId);
      expect(await adapter.find(clientId)).toBeUndefined();
      expect(await clients.get(clientId)).toBeUndefined();
    });

    it('find of an unknown client is undefined; uid and user code lookups find nothing; clients cannot be consumed', async () => {
      const adapter = adapterFor('Client');
      expect(await adapter.find(newId('client'))).toBeUndefined();
      expect(await adapter.findByUid('anything')).toBeUndefined();
      expect(await adapter.findByUserCode('anything')).toBeUndefined();
      await expect(adapter.consume('anything')).rejects.toThrow(/cannot be consumed/);
    });
  });

  describe('sweepExpired', () => {
    it('removes expired records from every model and keeps live and non-expiring ones', async () => {
      // A database of its own, so the count is exact.
      const sweepDb = connection.getClient().db(testDatabaseName('adapter_sweep'));
      try {
        const adapters = createMongoAdapter({ db: sweepDb, clientStore: clients, logger: silent, clock });
        const expired: [string, string][] = [];
        const live: [string, string][] = [];
        for (const model of ['AccessToken', 'Session', 'Grant', 'Interaction', 'ReplayDetection']) {
          const a = adapters(model);
          const e1 = newId();
          const e2 = newId();
          const l1 = newId();
          const l2 = newId();
          await a.upsert(e1, { jti: e1 }, 10);
          await a.upsert(e2, { jti: e2 }, 60);
          await a.upsert(l1, { jti: l1 }, 61);
          await a.upsert(l2, { jti: l2 }, 0);
          expired.push([model, e1], [model, e2]);
          live.push([model, l1], [model, l2]);
        }

        const removed = await sweepExpired(sweepDb, new Date(clock.nowMs() + 60_000));

        expect(removed).toBe(expired.length);
        for (const [model, id] of expired) {
          expect(await sweepDb.collection<StoredDoc>(collectionName(model)).countDocuments({ _id: id })).toBe(0);
        }
        const laterClock = createTestClock(clock.nowMs() + 60_000);
        const later = createMongoAdapter({ db: sweepDb, clientStore: clients, logger: silent, clock: laterClock });
        for (const [model, id] of live) expect(await later(model).find(id)).toStrictEqual({ jti: id });

        // Nothing left to sweep at the same instant.
        expect(await sweepExpired(sweepDb, new Date(clock.nowMs() + 60_000))).toBe(0);
      } finally {
        await sweepDb.dropDatabase();
      }
    });

    it('with the default clock, removes what has really expired', async () => {
      const sweepDb = connection.getClient().db(testDatabaseName('adapter_sweep2'));
      try {
        await sweepDb.collection<StoredDoc>(collectionName('AccessToken')).insertMany([
          { _id: 'past', payload: '{}', expiresAt: new Date(Date.now() - 1000) },
          { _id: 'future', payload: '{}', expiresAt: new Date(Date.now() + 60_000) },
        ]);
        expect(await sweepExpired(sweepDb)).toBe(1);
        expect(await sweepDb.collection(collectionName('AccessToken')).countDocuments()).toBe(1);
      } finally {
        await sweepDb.dropDatabase();
      }
    });
  });

  describe('ensureAdapterIndexes', () => {
    it('reports ttlSupported as the server really is (probe: a TTL index on a scratch collection)', async () => {
      const scratch = db.collection(`scratch_ttl_${randomBytes(4).toString('hex')}`);
      let probe: boolean;
      try {
        await scratch.createIndex({ at: 1 }, { expireAfterSeconds: 60 });
        const indexes = await scratch.indexes();
        probe = indexes.some((index) => index.expireAfterSeconds === 60);
      } catch {
        probe = false;
      }
      await scratch.drop().catch(() => undefined);

      const lines: string[] = [];
      const logger = createLogger({ level: 'info', format: 'json', write: (line) => lines.push(line) });
      const result = await ensureAdapterIndexes(db, logger);
      expect(result.ttlSupported).toBe(probe);
      if (!probe) expect(lines.some((line) => line.includes('periodic sweep'))).toBe(true);

      const build = (await db.admin().command({ buildInfo: 1 })) as { ferretdb?: unknown; ferretdbVersion?: unknown };
      if (build.ferretdb !== undefined || build.ferretdbVersion !== undefined) expect(result.ttlSupported).toBe(false);
    });

    it('is idempotent (runs at every start) and creates the lookup indexes', async () => {
      const first = await ensureAdapterIndexes(db, silent);
      const second = await ensureAdapterIndexes(db, silent);
      expect(second).toStrictEqual(first);
      for (const model of ADAPTER_MODELS) {
        const keys = (await db.collection(collectionName(model)).indexes()).map((index) => Object.keys(index.key).join(','));
        expect(keys).toContain('grantId');
        expect(keys).toContain('expiresAt');
      }
      const session = await db.collection(collectionName('Session')).indexes();
      expect(session.find((index) => 'uid' in index.key)?.unique).toBe(true);
      const deviceCode = await db.collection(collectionName('DeviceCode')).indexes();
      expect(deviceCode.find((index) => 'userCode' in index.key)?.unique).toBe(true);
    });

    it('two live sessions cannot share a uid', async () => {
      const adapter = adapterFor('Session');
      const uid = newId('uid');
      await adapter.upsert(newId('sess'), { uid }, 60);
      await expect(adapter.upsert(newId('sess'), { uid }, 60)).rejects.toMatchObject({ code: 11000 });
    });
  });
});
