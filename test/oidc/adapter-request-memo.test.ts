/**
 * The adapter's request-scoped memo: within one request an interaction, session, grant or code
 * is read from the database once; a write through the adapter (or a revocation beside it) makes
 * the next read go to the database again; outside a request, and for tokens, nothing is
 * remembered; separate requests never share what they read.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';
import { errors } from 'oidc-provider';
import type { Adapter } from 'oidc-provider';

import { connectDatabase } from '../../src/db/connect.js';
import { runWithRequest } from '../../src/http/request-context.js';
import type { RequestInfo } from '../../src/http/request-context.js';
import { createLogger } from '../../src/logging/logger.js';
import { collectionName, createMongoAdapter, revokeAccountRecords } from '../../src/oidc/mongo-adapter.js';
import { testDatabaseUri } from '../support/database.js';

const silent = createLogger({ level: 'error', format: 'json', write: () => {} });
const noClients = { find: async () => undefined, upsert: async () => undefined, destroy: async () => undefined };

/** A request of its own, as bindRequestContext makes one. */
function inRequest<T>(fn: () => Promise<T>): Promise<T> {
  const info: RequestInfo = { requestId: 'r', ip: '127.0.0.1', userAgent: 'test', method: 'GET', path: '/', reads: new Map() };
  return runWithRequest(info, fn);
}

describe('adapter reads once per request', () => {
  let connection: Connection;
  let db: mongo.Db;
  let adapterFor: (name: string) => Adapter;
  /** find commands sent, by collection. */
  let finds: Record<string, number> = {};

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('adapter_memo'), silent, { monitorCommands: true });
    if (!connection.db) throw new Error('no database');
    db = connection.db;
    connection.getClient().on('commandStarted', (event) => {
      if (event.commandName !== 'find') return;
      const collection = String((event.command as { find?: unknown }).find);
      finds[collection] = (finds[collection] ?? 0) + 1;
    });
    adapterFor = createMongoAdapter({ db, clientStore: noClients, logger: silent });
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  const reset = () => {
    finds = {};
  };

  it('reads an interaction once in a request, and again after it was saved or destroyed', async () => {
    const interactions = adapterFor('Interaction');
    await interactions.upsert('int-1', { uid: 'int-1', returnTo: '/a' }, 60);
    reset();
    await inRequest(async () => {
      const [a, b] = await Promise.all([interactions.find('int-1'), interactions.find('int-1')]);
      expect(a).toEqual(b);
      // Each caller gets its own copy: mutating one changes nothing for the next.
      if (a) a.returnTo = '/changed';
      expect((await interactions.find('int-1'))?.returnTo).toBe('/a');
      expect(finds[collectionName('Interaction')]).toBe(1);

      await interactions.upsert('int-1', { uid: 'int-1', returnTo: '/b' }, 60);
      expect((await interactions.find('int-1'))?.returnTo).toBe('/b');
      expect(finds[collectionName('Interaction')]).toBe(2);

      await interactions.destroy('int-1');
      expect(await interactions.find('int-1')).toBeUndefined();
      expect(finds[collectionName('Interaction')]).toBe(3);
    });
  });

  it('never shares reads between requests, nor remembers outside one', async () => {
    const sessions = adapterFor('Session');
    await sessions.upsert('sess-1', { uid: 'uid-1', accountId: 'acc-1' }, 60);
    reset();
    await inRequest(async () => {
      await sessions.findByUid('uid-1');
      await sessions.findByUid('uid-1');
    });
    await inRequest(async () => {
      await sessions.findByUid('uid-1');
    });
    await sessions.findByUid('uid-1');
    await sessions.findByUid('uid-1');
    expect(finds[collectionName('Session')]).toBe(4);
  });

  it('forgets the sessions a revocation beside the adapter deleted', async () => {
    const sessions = adapterFor('Session');
    await sessions.upsert('sess-2', { uid: 'uid-2', accountId: 'acc-2' }, 60);
    await inRequest(async () => {
      expect(await sessions.find('sess-2')).toBeDefined();
      await revokeAccountRecords(db, 'acc-2', ['Session']);
      expect(await sessions.find('sess-2')).toBeUndefined();
    });
  });

  it('consumes a code read in the same request with that read, once, and a second consume is a replay', async () => {
    const codes = adapterFor('AuthorizationCode');
    await codes.upsert('code-1', { grantId: 'grant-1', accountId: 'acc-3' }, 60);
    reset();
    await inRequest(async () => {
      expect((await codes.find('code-1'))?.consumed).toBeUndefined();
      await codes.consume('code-1');
      expect(finds[collectionName('AuthorizationCode')]).toBe(1);
      // No mark is written (the claim decides); a second consume meets the claim.
      expect((await codes.find('code-1'))?.consumed).toBeUndefined();
      await expect(codes.consume('code-1')).rejects.toBeInstanceOf(errors.InvalidGrant);
    });
  });

  it('reads tokens afresh every time', async () => {
    const tokens = adapterFor('AccessToken');
    await tokens.upsert('at-1', { accountId: 'acc-4' }, 60);
    reset();
    await inRequest(async () => {
      await tokens.find('at-1');
      await tokens.find('at-1');
    });
    expect(finds[collectionName('AccessToken')]).toBe(2);
  });
});
