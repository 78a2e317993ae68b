import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { CACHE_STAMPS_COLLECTION } from '../../src/clients/client-cache.js';
import { countCommands, nextStampPoll } from '../support/command-counter.js';
import type { CommandCounter } from '../support/command-counter.js';
import { REDIRECT_URI, pkcePair } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { within } from '../support/within.js';

/**
 * Two nodes on one database: each keeps clients in memory, and a change made through one (secret
 * rotation, redirect URI edit, deletion, creation) is honoured by the other within one second.
 */

const SETUP = fullAuthority({ type: 'system', label: 'test setup' });
const OTHER_REDIRECT = 'http://127.0.0.1:9/other-callback';
const PROPAGATION_MS = 1000;

describe('the client cache across nodes', () => {
  let a: TestServer;
  let b: TestServer;
  let counterB: CommandCounter;

  const tokenRequest = async (server: TestServer, clientId: string, secret: string): Promise<number> => {
    const response = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin:audit:read', resource: server.config.adminApi.resource }).toString(),
    });
    await response.arrayBuffer();
    return response.status;
  };

  /** The status of an authorization request (303 to the sign-in when the redirect URI is registered, 400 when not). */
  const authorize = async (server: TestServer, clientId: string, redirectUri: string): Promise<number> => {
    const query = new URLSearchParams({
      client_id: clientId,
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: 'openid',
      code_challenge: pkcePair().challenge,
      code_challenge_method: 'S256',
    });
    const response = await fetch(`${server.url}/auth?${query.toString()}`, { redirect: 'manual' });
    await response.arrayBuffer();
    return response.status;
  };

  const newService = (name: string): Promise<CreatedClient> =>
    a.deps.clients.create({ name, grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['admin:audit:read'] }, SETUP);

  beforeAll(async () => {
    a = await startTestServer('client_cache');
    b = await startTestServer('client_cache_b', { mongoUri: a.mongoUri, monitorCommands: true });
    counterB = countCommands(b);
  });

  afterAll(async () => {
    counterB.stop();
    await b.close();
    await a.close();
  });

  it('a warm node answers a token request without reading the client', async () => {
    const service = await newService('Warm');
    // The creation set a new stamp: B's next poll sees it and drops its cache once. Warmed before
    // that poll, B would read the client again on the measured request (a race a loaded machine
    // loses), so the warm-up comes after it.
    await nextStampPoll(b);
    expect(await tokenRequest(b, service.clientId, service.clientSecret!)).toBe(200);
    await b.deps.audit.flush();
    // Right after a poll came back, so that B trusts its cache for the whole request.
    await nextStampPoll(b);
    counterB.reset();
    expect(await tokenRequest(b, service.clientId, service.clientSecret!)).toBe(200);
    expect(counterB.commands.filter((c) => c.collection === 'clients')).toEqual([]);
  });

  it('a secret rotated on A: B takes the new secret within 1 s, and the old one keeps working through the grace period', async () => {
    const service = await newService('Rotating');
    const oldSecret = service.clientSecret!;
    expect(await tokenRequest(b, service.clientId, oldSecret)).toBe(200);

    const { clientSecret: newSecret } = await a.deps.clients.rotateSecret(service.clientId, SETUP);
    const took = await within(PROPAGATION_MS, async () => (await tokenRequest(b, service.clientId, newSecret)) === 200);
    expect(took).toBeLessThanOrEqual(PROPAGATION_MS);

    // The grace period (CLIENT_SECRET_GRACE_PERIOD): B still takes the old secret, on every request.
    for (let i = 0; i < 3; i += 1) expect(await tokenRequest(b, service.clientId, oldSecret)).toBe(200);
    expect(await tokenRequest(b, service.clientId, 'not-the-secret')).toBe(401);
  });

  it('a second rotation ends the old secret on B within 1 s', async () => {
    const service = await newService('Rotating twice');
    const first = service.clientSecret!;
    expect(await tokenRequest(b, service.clientId, first)).toBe(200);
    await a.deps.clients.rotateSecret(service.clientId, SETUP);
    const { clientSecret: third } = await a.deps.clients.rotateSecret(service.clientId, SETUP);
    await within(PROPAGATION_MS, async () => (await tokenRequest(b, service.clientId, first)) === 401);
    expect(await tokenRequest(b, service.clientId, third)).toBe(200);
  });

  it('a redirect URI edited on A is honoured on B within 1 s (the new one accepted, the old one refused)', async () => {
    const web = await a.deps.clients.create({ name: 'Web', redirectUris: [REDIRECT_URI] });
    expect(await authorize(b, web.clientId, REDIRECT_URI)).toBe(303);
    expect(await authorize(b, web.clientId, OTHER_REDIRECT)).toBe(400);

    await a.deps.clients.update(web.clientId, { name: 'Web', redirectUris: [OTHER_REDIRECT] });
    await within(PROPAGATION_MS, async () => (await authorize(b, web.clientId, OTHER_REDIRECT)) === 303);
    expect(await authorize(b, web.clientId, REDIRECT_URI)).toBe(400);
  });

  it('skipPkce set on A is honoured on B within 1 s (the cached metadata carries it), and taken back the same way', async () => {
    const legacy = await a.deps.clients.create({ name: 'Legacy', redirectUris: [REDIRECT_URI] });
    /** Where B sends a request without PKCE: back to the client with an error, or on to the sign-in. */
    const withoutPkce = async (): Promise<string> => {
      const query = new URLSearchParams({ client_id: legacy.clientId, redirect_uri: REDIRECT_URI, response_type: 'code', scope: 'openid' });
      const response = await fetch(`${b.url}/auth?${query.toString()}`, { redirect: 'manual' });
      await response.arrayBuffer();
      const location = response.headers.get('location') ?? '';
      return location.startsWith(REDIRECT_URI) ? (new URL(location).searchParams.get('error') ?? 'no error') : location.includes('/interaction/') ? 'sign-in' : location;
    };
    expect(await withoutPkce()).toBe('invalid_request');
    await a.deps.clients.update(legacy.clientId, { name: 'Legacy', redirectUris: [REDIRECT_URI], skipPkce: true });
    await within(PROPAGATION_MS, async () => (await withoutPkce()) === 'sign-in');
    expect((await b.deps.clients.find(legacy.clientId))?.skip_pkce).toBe(true);
    await a.deps.clients.update(legacy.clientId, { name: 'Legacy', redirectUris: [REDIRECT_URI] });
    await within(PROPAGATION_MS, async () => (await withoutPkce()) === 'invalid_request');
  });

  it('a client deleted on A stops working on B within 1 s', async () => {
    const service = await newService('Doomed');
    expect(await tokenRequest(b, service.clientId, service.clientSecret!)).toBe(200);
    expect(await a.deps.clients.remove(service.clientId, SETUP)).toBe(true);
    await within(PROPAGATION_MS, async () => (await tokenRequest(b, service.clientId, service.clientSecret!)) === 401);
  });

  it('a client created on A is usable on B at once, even after B was asked for it before it existed (no negative caching)', async () => {
    const clientId = `web-${Date.now().toString(36)}`;
    expect(await authorize(b, clientId, REDIRECT_URI)).toBe(400);
    await a.deps.clients.create({ name: 'Fresh', redirectUris: [REDIRECT_URI], clientId });
    expect(await authorize(b, clientId, REDIRECT_URI)).toBe(303);
  });

  it('a change made on B itself is seen there at once, without waiting for the poll', async () => {
    const service = await newService('Local');
    expect(await tokenRequest(b, service.clientId, service.clientSecret!)).toBe(200);
    const { clientSecret } = await b.deps.clients.rotateSecret(service.clientId, SETUP);
    expect(await tokenRequest(b, service.clientId, clientSecret)).toBe(200);
    expect(await b.deps.clients.remove(service.clientId, SETUP)).toBe(true);
    expect(await tokenRequest(b, service.clientId, clientSecret)).toBe(401);
  });

  it('every client write sets a new random stamp (never a counter)', async () => {
    const stamps = a.deps.db.collection<{ _id: string; stamp: string }>(CACHE_STAMPS_COLLECTION);
    const before = (await stamps.findOne({ _id: 'clients' }))?.stamp;
    const web = await a.deps.clients.create({ name: 'Stamped', redirectUris: [REDIRECT_URI] });
    const afterCreate = (await stamps.findOne({ _id: 'clients' }))?.stamp;
    await a.deps.clients.update(web.clientId, { name: 'Stamped again', redirectUris: [REDIRECT_URI] });
    const afterUpdate = (await stamps.findOne({ _id: 'clients' }))?.stamp;
    expect(new Set([before, afterCreate, afterUpdate]).size).toBe(3);
    expect(afterUpdate).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });

  it('polls one document per interval, not per request: an idle node sends about 2–3 commands a second', async () => {
    await b.deps.audit.flush();
    counterB.reset();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The signing key ring polls its own stamp in the same collection (src/oidc/key-ring.ts): not counted here.
    const reads = counterB.commands.filter((c) => c.record === `${CACHE_STAMPS_COLLECTION}:clients`);
    expect(reads.length).toBeGreaterThanOrEqual(1);
    expect(reads.length).toBeLessThanOrEqual(3);
    expect(counterB.commands.every((c) => c.collection === CACHE_STAMPS_COLLECTION)).toBe(true);
  });

  it('a node that stopped watching reads the client from the database on every request', async () => {
    const service = await newService('Unwatched');
    b.deps.clients.stopWatching();
    try {
      const { commands } = await counterB.measure(async () => {
        await b.deps.clients.find(service.clientId);
        await b.deps.clients.find(service.clientId);
      });
      expect(commands.filter((c) => c.collection === 'clients')).toHaveLength(2);
    } finally {
      b.deps.clients.startWatching();
    }
  });
});
