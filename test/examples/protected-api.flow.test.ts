/**
 * The example API (examples/protected-api) against this server, end to end: openid-client signs a
 * person in through our pages asking for the API with `resource`, calls the API with the JWT
 * access token it got, and is refused with a token for another API, an expired token and a token
 * lacking the route's scope.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { startProtectedApi } from '../../examples/protected-api/protected-api.app.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { useMovableSystemDate } from '../support/clock.js';
import type { MovableSystemDate } from '../support/clock.js';
import { REDIRECT_URI, authorizationRequest, redeem, rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';

const USER = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };
const NOTES_API = 'https://notes.example.com/api';
const OTHER_API = 'https://billing.example.com/api';
const TOKEN_TTL = 120;

describe('examples/protected-api with tokens from this server', () => {
  let date: MovableSystemDate;
  let server: TestServer;
  let api: { url: string; close(): Promise<void> };
  let client: CreatedClient;
  let rp: oidc.Configuration;
  let accountId: string;
  let browser: UserAgent;

  /** Signs in (or reuses the browser's session) asking for `resource` and `scope`; the access token. */
  const tokenFor = async (resource: string, scope: string): Promise<string> => {
    const started = await authorizationRequest(rp, { scope });
    started.url.searchParams.append('resource', resource);
    const callback = await signInThroughPages(browser, started.url.toString(), USER);
    const tokens = await redeem(rp, started, callback);
    return tokens.access_token;
  };

  const call = (path: string, token: string, init: RequestInit = {}) =>
    fetch(`${api.url}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    date = useMovableSystemDate();
    server = await startTestServer('protected_api_flow', { logLevel: 'warn' });
    accountId = (await server.deps.accounts.create({ ...USER, emailVerified: true })).id;
    await server.deps.resources.create({
      identifier: NOTES_API,
      name: 'Notes',
      scopes: [
        { name: 'read:profile', description: 'See who you are in Notes' },
        { name: 'notes:read', description: 'Read your notes' },
        { name: 'notes:write', description: 'Write notes for you' },
      ],
      tokenFormat: 'jwt',
      accessTokenTtl: TOKEN_TTL,
    });
    await server.deps.resources.create({ identifier: OTHER_API, name: 'Billing', scopes: [{ name: 'notes:read', description: 'Read your invoices' }] });
    client = await server.deps.clients.create({ name: 'Notes web app', redirectUris: [REDIRECT_URI], allowedResources: [NOTES_API, OTHER_API] });
    rp = await rpFor(server, client);
    browser = new UserAgent(server.url);
    api = await startProtectedApi({ issuer: server.url, audience: NOTES_API });
  });

  afterAll(async () => {
    await api?.close();
    await server?.close();
    date?.restore();
  });

  it('a token asked for with `resource` is accepted, knows who calls, and is refused (403) where it lacks the scope', async () => {
    const token = await tokenFor(NOTES_API, 'openid read:profile notes:read');

    const me = await call('/me', token);
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ sub: accountId, client_id: client.clientId, scopes: ['read:profile', 'notes:read'] });
    expect((await call('/notes', token)).status).toBe(200);

    const write = await call('/notes', token, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'hello' }) });
    expect(write.status).toBe(403);
    expect(write.headers.get('www-authenticate')).toMatch(/^Bearer .*error="insufficient_scope".*scope="notes:write"/);
    // Nothing was written by the refused request.
    expect(await (await call('/notes', token)).json()).toMatchObject({ notes: [] });

    // With the scope granted, the same route works.
    const writer = await tokenFor(NOTES_API, 'openid notes:write');
    const created = await call('/notes', writer, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'hello' }) });
    expect(created.status).toBe(201);
  });

  it('a token for another API (its audience) is refused with 401 invalid_token', async () => {
    const token = await tokenFor(OTHER_API, 'openid notes:read');
    const reply = await call('/notes', token);
    expect(reply.status).toBe(401);
    expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
  });

  it('an ID token or a userinfo access token is not an access token for the API (401)', async () => {
    const started = await authorizationRequest(rp, { scope: 'openid' });
    const tokens = await redeem(rp, started, await signInThroughPages(browser, started.url.toString(), USER));
    for (const token of [tokens.id_token!, tokens.access_token]) {
      const reply = await call('/me', token);
      expect(reply.status).toBe(401);
      expect(reply.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
  });

  it('an expired token is refused with 401 invalid_token', async () => {
    const token = await tokenFor(NOTES_API, 'openid notes:read');
    expect((await call('/notes', token)).status).toBe(200);
    date.advance((TOKEN_TTL + 60) * 1000);
    const reply = await call('/notes', token);
    expect(reply.status).toBe(401);
    expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
  });
});
