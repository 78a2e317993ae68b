import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Adapter } from 'oidc-provider';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { createLogger } from '../../src/logging/logger.js';
import { collectionName, createMongoAdapter, revokeAccountRecords, sweepExpired } from '../../src/oidc/mongo-adapter.js';
import { countCommands } from '../support/command-counter.js';
import type { CommandCounter } from '../support/command-counter.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

/**
 * Client credentials tokens live in the access token collection (one lookup answers "which of
 * the two is it"), each model seeing only its own records; refresh tokens keep their collection.
 */

const SETUP = fullAuthority({ type: 'system', label: 'test setup' });
const silent = createLogger({ level: 'error', format: 'json', write: () => {} });
const newId = () => randomBytes(32).toString('base64url').slice(0, 43);

interface StoredDoc {
  _id: string;
  payload: string;
  kind?: string;
  grantId?: string;
  accountId?: string;
  clientId?: string;
  expiresAt: Date | null;
}

describe('token collections', () => {
  let server: TestServer;
  let counter: CommandCounter;
  let adapterFor: (name: string) => Adapter;
  let service: CreatedClient;

  const tokens = () => server.deps.db.collection<StoredDoc>('oidc_access_token');

  const form = (client: CreatedClient, body: Record<string, string>) => ({
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret ?? ''}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(body).toString(),
  });

  const clientCredentials = async (): Promise<string> => {
    const response = await fetch(
      `${server.url}/token`,
      form(service, { grant_type: 'client_credentials', scope: 'admin:audit:read', resource: server.config.adminApi.resource }),
    );
    expect(response.status).toBe(200);
    return ((await response.json()) as { access_token: string }).access_token;
  };

  const introspect = async (token: string, hint?: string): Promise<{ active: boolean }> => {
    const response = await fetch(`${server.url}/token/introspection`, form(service, { token, ...(hint ? { token_type_hint: hint } : {}) }));
    return (await response.json()) as { active: boolean };
  };

  beforeAll(async () => {
    server = await startTestServer('token_collections', { monitorCommands: true });
    counter = countCommands(server);
    adapterFor = createMongoAdapter({ db: server.deps.db, clientStore: server.deps.clients, logger: silent });
    service = await server.deps.clients.create(
      { name: 'Reporter', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['admin:audit:read'] },
      SETUP,
    );
  });

  afterAll(async () => {
    counter.stop();
    await server.close();
  });

  it('ClientCredentials is stored in oidc_access_token, marked with its kind; RefreshToken keeps its own collection', () => {
    expect(collectionName('ClientCredentials')).toBe('oidc_access_token');
    expect(collectionName('AccessToken')).toBe('oidc_access_token');
    expect(collectionName('RefreshToken')).toBe('oidc_refresh_token');
  });

  it('a client_credentials token lands in the shared collection with kind, client and expiry; nothing in the old collection', async () => {
    const value = await clientCredentials();
    const record = await tokens().findOne({ _id: value });
    expect(record).toMatchObject({ kind: 'ClientCredentials', clientId: service.clientId, expiresAt: expect.any(Date) });
    expect(JSON.parse(record!.payload)).toMatchObject({ kind: 'ClientCredentials', clientId: service.clientId });
    expect(await server.deps.db.collection('oidc_client_credentials').countDocuments({ _id: value } as never)).toBe(0);
  });

  it('each model finds only its own records, including access tokens written before `kind` existed', async () => {
    const cc = newId();
    const legacy = newId();
    await adapterFor('ClientCredentials').upsert(cc, { jti: cc, kind: 'ClientCredentials', clientId: 'c' }, 60);
    await tokens().insertOne({ _id: legacy, payload: JSON.stringify({ jti: legacy, kind: 'AccessToken' }), expiresAt: new Date(Date.now() + 60_000) });

    expect(await adapterFor('ClientCredentials').find(cc)).toMatchObject({ jti: cc });
    expect(await adapterFor('AccessToken').find(cc)).toBeUndefined();
    expect(await adapterFor('AccessToken').find(legacy)).toMatchObject({ jti: legacy });
    expect(await adapterFor('ClientCredentials').find(legacy)).toBeUndefined();
  });

  it("destroy and revokeByGrantId of one model never remove the other's records", async () => {
    const cc = newId();
    const at = newId();
    await adapterFor('ClientCredentials').upsert(cc, { jti: cc, grantId: 'g-shared' }, 60);
    await adapterFor('AccessToken').upsert(at, { jti: at, grantId: 'g-shared' }, 60);

    await adapterFor('AccessToken').destroy(cc);
    await adapterFor('ClientCredentials').destroy(at);
    await adapterFor('ClientCredentials').revokeByGrantId('g-shared');
    expect(await adapterFor('AccessToken').find(at)).toMatchObject({ jti: at });
    expect(await tokens().countDocuments({ _id: cc })).toBe(0);

    await adapterFor('AccessToken').revokeByGrantId('g-shared');
    expect(await tokens().countDocuments({ _id: at })).toBe(0);
  });

  it('a token is written with one insert; saving the same id again still lands (as an update)', async () => {
    const at = newId();
    const { commands } = await counter.measure(() => adapterFor('AccessToken').upsert(at, { jti: at, scope: 'openid' }, 60));
    expect(commands.map((c) => `${c.name} ${c.collection}`)).toEqual(['insert oidc_access_token']);
    await adapterFor('AccessToken').upsert(at, { jti: at, scope: 'openid email' }, 60);
    expect(await adapterFor('AccessToken').find(at)).toEqual({ jti: at, scope: 'openid email' });
    expect(await tokens().countDocuments({ _id: at })).toBe(1);
  });

  it('concurrent finds of one id in the shared collection are one query; a find after a write is a new one', async () => {
    const cc = newId();
    await adapterFor('ClientCredentials').upsert(cc, { jti: cc }, 60);
    const { result, commands } = await counter.measure(() =>
      Promise.all([adapterFor('AccessToken').find(cc), adapterFor('ClientCredentials').find(cc), adapterFor('ClientCredentials').find(cc)]),
    );
    expect(result).toEqual([undefined, { jti: cc }, { jti: cc }]);
    expect(commands.filter((c) => c.name === 'find')).toHaveLength(1);

    // A read in flight while the token is destroyed is not shared with a read after the destroy.
    const before = adapterFor('ClientCredentials').find(cc);
    await adapterFor('ClientCredentials').destroy(cc);
    const after = await adapterFor('ClientCredentials').find(cc);
    await before;
    expect(after).toBeUndefined();
  });

  it('introspection finds client_credentials tokens with and without a hint, and revocation ends them', async () => {
    const value = await clientCredentials();
    expect(await introspect(value, 'access_token')).toMatchObject({ active: true });
    expect(await introspect(value, 'refresh_token')).toMatchObject({ active: true });
    expect(await introspect(value)).toMatchObject({ active: true });

    const revoked = await fetch(`${server.url}/token/revocation`, form(service, { token: value }));
    expect(revoked.status).toBe(200);
    expect(await introspect(value, 'access_token')).toEqual({ active: false });
    expect(await tokens().countDocuments({ _id: value })).toBe(0);
  });

  it('the management API takes a client_credentials token (one lookup for both models)', async () => {
    const value = await clientCredentials();
    const response = await fetch(`${server.url}/api/admin/v1/audit-events?limit=1`, { headers: { authorization: `Bearer ${value}` } });
    expect(response.status).toBe(200);
  });

  it('the sweep removes expired client_credentials tokens; account revocation leaves them (they belong to no account)', async () => {
    const expired = newId();
    const live = newId();
    await tokens().insertMany([
      { _id: expired, kind: 'ClientCredentials', payload: JSON.stringify({ jti: expired }), expiresAt: new Date(Date.now() - 1000) },
      { _id: live, kind: 'ClientCredentials', payload: JSON.stringify({ jti: live }), clientId: service.clientId, expiresAt: new Date(Date.now() + 60_000) },
    ]);
    await sweepExpired(server.deps.db);
    expect(await tokens().countDocuments({ _id: expired })).toBe(0);
    expect(await tokens().countDocuments({ _id: live })).toBe(1);
    await revokeAccountRecords(server.deps.db, 'someone');
    expect(await tokens().countDocuments({ _id: live })).toBe(1);
  });

  it("deleting the client removes its client_credentials tokens from the shared collection", async () => {
    const doomed = await server.deps.clients.create(
      { name: 'Doomed', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['admin:audit:read'] },
      SETUP,
    );
    const response = await fetch(
      `${server.url}/token`,
      form(doomed, { grant_type: 'client_credentials', scope: 'admin:audit:read', resource: server.config.adminApi.resource }),
    );
    const value = ((await response.json()) as { access_token: string }).access_token;
    expect(await tokens().countDocuments({ _id: value })).toBe(1);
    await server.deps.clients.remove(doomed.clientId, SETUP);
    expect(await tokens().countDocuments({ _id: value })).toBe(0);
  });
});
