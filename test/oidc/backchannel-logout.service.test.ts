/**
 * The back-channel logout outbox against the real database and real HTTP receivers on loopback:
 * exactly one delivery per logout with several workers racing, a dead node's attempt taken over
 * after its lease, no redirect followed, timeouts, bounded age, a client gone, which sessions'
 * clients get a notice, and the sweep. The token here is a stand-in string: signing with the
 * provider's keys is proven end to end in backchannel-logout.test.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';
import type { AdapterPayload } from 'oidc-provider';

import type { AuditService } from '../../src/audit/audit.service.js';
import { AUDIT_COLLECTION, createAuditService } from '../../src/audit/audit.service.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import type { Logger } from '../../src/logging/logger.js';
import { BACKCHANNEL_CLAIMS_COLLECTION, BACKCHANNEL_COLLECTION, createBackchannelLogoutService } from '../../src/oidc/backchannel-logout.service.js';
import type { BackchannelLogoutService, BackchannelSettings, LogoutTokenSigner } from '../../src/oidc/backchannel-logout.service.js';
import { createTestClock } from '../support/clock.js';
import type { TestClock } from '../support/clock.js';
import { testDatabaseUri } from '../support/database.js';
import { startLogoutReceiver } from '../support/logout-receiver.js';
import type { LogoutReceiver, StoredLogout } from '../support/logout-receiver.js';
import { within } from '../support/within.js';

const SETTINGS: Partial<BackchannelSettings> = { timeoutMs: 1_000, leaseMs: 10_000, pollIntervalMs: 60_000 };

describe('back-channel logout outbox', () => {
  let connection: Connection;
  let db: mongo.Db;
  let logger: Logger;
  let audit: AuditService;
  let clock: TestClock;
  let receiver: LogoutReceiver;
  const logs: string[] = [];
  const started: BackchannelLogoutService[] = [];
  /** Where each client's tokens go (the signer's answer); a client not listed is gone. */
  const uris = new Map<string, string>();

  const records = () => db.collection<StoredLogout>(BACKCHANNEL_COLLECTION);
  const signer: LogoutTokenSigner = async ({ clientId, jti }) => {
    const uri = uris.get(clientId);
    return uri ? { uri, token: `token-for.${clientId}.${jti}` } : undefined;
  };
  const clients = { find: async (clientId: string): Promise<AdapterPayload | undefined> => (uris.has(clientId) ? { client_id: clientId, backchannel_logout_uri: uris.get(clientId) } : clientId === 'no-uri' ? { client_id: clientId } : undefined) };

  /** One node's service on the shared database, with the test's clock. */
  const node = (overrides: Partial<BackchannelSettings> = {}) => {
    const service = createBackchannelLogoutService({ db, clients, audit, logger, clock, settings: { ...SETTINGS, ...overrides } });
    service.useSigner(signer);
    started.push(service);
    return service;
  };

  beforeAll(async () => {
    logger = createLogger({ level: 'debug', format: 'json', write: (line) => logs.push(line) });
    connection = await connectDatabase(testDatabaseUri('backchannel_outbox'), logger);
    db = connection.db as mongo.Db;
    receiver = await startLogoutReceiver();
  });

  beforeEach(async () => {
    clock = createTestClock();
    audit = createAuditService({ db, logger, retentionDays: 30, clock });
    uris.clear();
    uris.set('app', receiver.url);
    receiver.reset();
    await records().deleteMany({});
    await db.collection(BACKCHANNEL_CLAIMS_COLLECTION).deleteMany({});
    await db.collection(AUDIT_COLLECTION).deleteMany({});
    await node().ensureIndexes();
  });

  afterEach(async () => {
    for (const service of started.splice(0)) await service.stop();
  });

  afterAll(async () => {
    await receiver.close();
    await connection.close();
  });

  it('stores a notice only for the clients of the ended sessions that registered a URI, with their sid', async () => {
    uris.set('other', receiver.url);
    const service = node();
    const stored = await service.sessionsEnded([
      { accountId: 'sub-1', authorizations: { app: { sid: 'sid-app' }, 'no-uri': { sid: 'sid-x' }, gone: {} } },
      { accountId: 'sub-2', authorizations: { other: {} } },
      // A session nobody signed in to yet: nothing to tell.
      { authorizations: { app: { sid: 'sid-anon' } } },
    ]);
    expect(stored).toBe(2);
    const all = await records().find({}).sort({ sub: 1 }).toArray();
    expect(all.map(({ clientId, sub, sid, state, attempts }) => ({ clientId, sub, sid, state, attempts }))).toEqual([
      { clientId: 'app', sub: 'sub-1', sid: 'sid-app', state: 'queued', attempts: 0 },
      { clientId: 'other', sub: 'sub-2', sid: undefined, state: 'queued', attempts: 0 },
    ]);
  });

  it('never fails the session end it reports: a broken client store is logged, nothing thrown', async () => {
    const broken = createBackchannelLogoutService({
      db,
      clients: { find: async () => Promise.reject(new Error('database is down')) },
      audit,
      logger,
      clock,
    });
    await expect(broken.sessionsEnded([{ accountId: 'sub-1', authorizations: { app: {} } }])).resolves.toBe(0);
    expect(logs.some((line) => line.includes('back-channel logout notices not stored'))).toBe(true);
  });

  it('three workers racing over 20 logouts deliver each exactly once, and audit each once', async () => {
    const workers = [node(), node(), node()];
    await workers[0]!.enqueue(Array.from({ length: 20 }, (_, n) => ({ clientId: 'app', sub: `sub-${n}`, sid: `sid-${n}` })));
    const delivered = await Promise.all(workers.flatMap((worker) => [worker.deliverDue(), worker.deliverDue()]));
    expect(delivered.reduce((a, b) => a + b, 0)).toBe(20);
    expect(receiver.received).toHaveLength(20);
    expect(new Set(receiver.received.map((r) => r.token)).size).toBe(20);
    expect(await records().countDocuments({ state: 'delivered', attempts: 1 })).toBe(20);
    await audit.flush();
    expect((await audit.list({ action: 'logout.backchannel_delivered' }, { limit: 100 })).events).toHaveLength(20);
  });

  it('retries with growing waits, then dead after maxAttempts; a dead record is never sent again', async () => {
    receiver.always = 500;
    const service = node({ maxAttempts: 4, retryBaseMs: 1_000 });
    await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
    const waits: number[] = [];
    for (let attempt = 0; attempt < 4; attempt += 1) {
      await service.deliverDue();
      const record = await records().findOne({});
      if (record?.state === 'queued') {
        const wait = record.nextAttemptAt.getTime() - clock.nowMs();
        waits.push(wait);
        // Not due a millisecond early.
        clock.advance(wait - 1);
        expect(await service.deliverDue()).toBe(0);
        clock.advance(1);
      }
    }
    // 1 s, 2 s, 4 s, each up to a fifth less (jitter).
    expect(waits).toHaveLength(3);
    waits.forEach((wait, n) => {
      expect(wait).toBeLessThanOrEqual(1_000 * 2 ** n);
      expect(wait).toBeGreaterThanOrEqual(800 * 2 ** n);
    });
    expect(await records().findOne({})).toMatchObject({ state: 'dead', deadReason: 'max_attempts', attempts: 4, lastError: 'status_500' });
    clock.advance(3600_000);
    await service.deliverDue();
    expect(receiver.received).toHaveLength(4);
  });

  it('gives up when the next retry would fall past maxAgeMs', async () => {
    receiver.always = 503;
    const service = node({ maxAgeMs: 3_000, retryBaseMs: 2_000 });
    await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
    await service.deliverDue();
    clock.advance(2_001);
    await service.deliverDue();
    expect(await records().findOne({})).toMatchObject({ state: 'dead', deadReason: 'max_age', attempts: 2 });
  });

  it('follows no redirect: a 302 is a failed attempt and its target gets nothing', async () => {
    const target = await startLogoutReceiver();
    const redirecting = http.createServer((_req, res) => {
      res.writeHead(302, { location: target.url });
      res.end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    try {
      uris.set('app', `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}/logout`);
      const service = node();
      await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
      await service.deliverDue();
      expect(await records().findOne({})).toMatchObject({ state: 'queued', attempts: 1, lastError: 'status_302' });
      expect(target.received).toHaveLength(0);
    } finally {
      redirecting.closeAllConnections();
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
      await target.close();
    }
  });

  it('a receiver that never answers times out (timeoutMs) and is retried; one that refuses connections too', async () => {
    const silent = http.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      uris.set('app', `http://127.0.0.1:${port}/logout`);
      const service = node({ timeoutMs: 300 });
      await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
      const before = Date.now();
      await service.deliverDue();
      expect(Date.now() - before).toBeLessThan(3_000);
      expect(await records().findOne({})).toMatchObject({ state: 'queued', attempts: 1, lastError: 'timeout' });
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
    // A port nobody listens on (a server opened and closed again): connection refused.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    uris.set('app', `http://127.0.0.1:${closedPort}/logout`);
    clock.advance(10_000);
    await node().deliverDue();
    expect(await records().findOne({})).toMatchObject({ state: 'queued', attempts: 2, lastError: 'ECONNREFUSED' });
  });

  it('a node that died mid-attempt: nobody sends during its lease; after it, another node takes the next attempt', async () => {
    const service = node();
    await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
    const record = (await records().findOne({}))!;
    // What a node leaves behind when it dies after claiming attempt 0 (claim, lease on the record).
    const leaseUntil = new Date(clock.nowMs() + 10_000);
    await db.collection(BACKCHANNEL_CLAIMS_COLLECTION).insertOne({ _id: `${record._id}:0` as unknown as mongo.ObjectId, logoutId: record._id, node: 'dead-node', at: clock.now(), leaseUntil });
    await records().updateOne({ _id: record._id }, { $set: { nextAttemptAt: leaseUntil } });

    expect(await node().deliverDue()).toBe(0);
    clock.advance(10_001);
    expect(await node().deliverDue()).toBe(1);
    expect(receiver.received).toHaveLength(1);
    expect(await records().findOne({})).toMatchObject({ state: 'delivered', attempts: 2 });
  });

  it('a client deleted (or its URI removed) before delivery: dead as client_gone, nothing sent', async () => {
    const service = node();
    await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
    uris.delete('app');
    await service.deliverDue();
    expect(await records().findOne({})).toMatchObject({ state: 'dead', deadReason: 'client_gone' });
    expect(receiver.received).toHaveLength(0);
    await audit.flush();
    const [event] = (await audit.list({ action: 'logout.backchannel_failed' }, { limit: 5 })).events;
    expect(event).toMatchObject({ outcome: 'failure', clientId: 'app', details: expect.objectContaining({ next: 'dead', deadReason: 'client_gone' }) });
  });

  it('a token that cannot be signed is a failed attempt, retried: never a stuck record', async () => {
    const service = createBackchannelLogoutService({ db, clients, audit, logger, clock, settings: SETTINGS });
    started.push(service);
    let broken = true;
    service.useSigner(async (notice) => {
      if (broken) throw new Error('key store unavailable');
      return signer(notice);
    });
    await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
    await service.deliverDue();
    expect(await records().findOne({})).toMatchObject({ state: 'queued', attempts: 1, lastError: 'signing_failed' });
    broken = false;
    clock.advance(10_000);
    expect(await service.deliverDue()).toBe(1);
    expect(receiver.received).toHaveLength(1);
  });

  it('without a signer (the command line) it only stores: deliverDue sends nothing', async () => {
    const cli = createBackchannelLogoutService({ db, clients, audit, logger, clock });
    await cli.sessionsEnded([{ accountId: 'sub-1', authorizations: { app: {} } }]);
    expect(await cli.deliverDue()).toBe(0);
    expect(receiver.received).toHaveLength(0);
    expect(await node().deliverDue()).toBe(1);
  });

  it('the started worker delivers at once on enqueue; once stopped it sends nothing more', async () => {
    const service = node();
    service.start();
    await service.enqueue([{ clientId: 'app', sub: 'sub-1' }]);
    await within(5_000, async () => receiver.received.length === 1);
    await service.stop();
    expect(await records().findOne({})).toMatchObject({ state: 'delivered' });
    // Stopped: a new notice is stored, and left for the other nodes' workers.
    await service.enqueue([{ clientId: 'app', sub: 'sub-2' }]);
    expect(await records().findOne({ sub: 'sub-2' })).toMatchObject({ state: 'queued', attempts: 0 });
    expect(receiver.received).toHaveLength(1);
  });

  it('sweeps delivered and dead records after retention, and keeps queued ones', async () => {
    const service = node({ retentionMs: 60_000, maxAttempts: 1 });
    await service.enqueue([{ clientId: 'app', sub: 'delivered' }]);
    await service.deliverDue();
    receiver.always = 500;
    await service.enqueue([{ clientId: 'app', sub: 'dead' }]);
    await service.deliverDue();
    receiver.always = undefined;
    uris.set('later', receiver.url);
    await service.enqueue([{ clientId: 'later', sub: 'queued' }]);
    await records().updateOne({ sub: 'queued' }, { $set: { nextAttemptAt: new Date(clock.nowMs() + 3600_000) } });
    expect(await service.sweep()).toBe(0);
    clock.advance(60_001);
    expect(await service.sweep()).toBeGreaterThanOrEqual(2);
    expect((await records().find({}).toArray()).map((r) => r.sub)).toEqual(['queued']);
  });

  it('logs no token', () => {
    expect(logs.join('\n')).not.toContain('token-for.');
  });
});
