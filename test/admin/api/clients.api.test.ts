import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { adminToken, call, clientCredentialsToken, expectProblem } from './api-client.js';

/** /clients and /registration-tokens of the management API, over the client services. */

let server: TestServer;
let token: string;
let readOnly: string;

beforeAll(async () => {
  server = await startTestServer('admin_api_clients', { logLevel: 'warn' });
  ({ token } = await adminToken(server));
  ({ token: readOnly } = await adminToken(server, ['admin:clients:read']));
});

afterAll(async () => {
  await server.close();
});

const webClient = (name: string) => ({
  name,
  redirectUris: ['https://app.example.test/callback'],
  postLogoutRedirectUris: ['https://app.example.test/'],
});

describe('clients', () => {
  it('creates a client and shows its secret once', async () => {
    const created = await call(server, 'POST', 'clients', { token, json: webClient('Created app') });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'Created app',
      public: false,
      redirectUris: ['https://app.example.test/callback'],
      grantTypes: ['authorization_code', 'refresh_token'],
      tokenEndpointAuthMethod: 'client_secret_basic',
      clientSecret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const { clientId, clientSecret } = created.body as { clientId: string; clientSecret: string };
    expect(created.headers.get('location')).toBe(`/api/admin/v1/clients/${encodeURIComponent(clientId)}`);

    const read = await call(server, 'GET', `clients/${encodeURIComponent(clientId)}`, { token: readOnly });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ clientId, name: 'Created app' });
    expect(read.body).not.toHaveProperty('clientSecret');
    expect(read.text).not.toContain(clientSecret);
    const list = await call(server, 'GET', 'clients?search=created', { token: readOnly });
    expect(list.text).not.toContain(clientSecret);
  });

  it('creates a public client without a secret', async () => {
    const created = await call(server, 'POST', 'clients', {
      token,
      json: { ...webClient('Public app'), tokenEndpointAuthMethod: 'none', grantTypes: ['authorization_code'] },
    });
    expect(created.status).toBe(201);
    expect(created.body.public).toBe(true);
    expect(created.body).not.toHaveProperty('clientSecret');
  });

  it('lists clients by name with search, limit and cursor', async () => {
    for (const n of [3, 1, 2]) expect((await call(server, 'POST', 'clients', { token, json: webClient(`Paged ${n}`) })).status).toBe(201);
    const first = await call(server, 'GET', 'clients?search=paged&limit=2', { token: readOnly });
    expect(first.status).toBe(200);
    expect(first.body.total).toBe(3);
    expect(first.body.clients.map((c: { name: string }) => c.name)).toEqual(['Paged 1', 'Paged 2']);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await call(server, 'GET', `clients?search=paged&limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`, { token: readOnly });
    expect(second.body.clients.map((c: { name: string }) => c.name)).toEqual(['Paged 3']);
    expect(second.body).not.toHaveProperty('nextCursor');
  });

  it('refuses bad list parameters field by field', async () => {
    expectProblem(await call(server, 'GET', 'clients?limit=0', { token }), 400, 'request.invalid', ['limit']);
    expectProblem(await call(server, 'GET', 'clients?limit=ten', { token }), 400, 'request.invalid', ['limit']);
    expectProblem(await call(server, 'GET', 'clients?client_name=x', { token }), 400, 'request.invalid', ['client_name']);
    expectProblem(await call(server, 'GET', 'clients?cursor=garbage', { token }), 400, 'client.invalid_cursor', ['cursor']);
  });

  it('refuses invalid input with a message per field', async () => {
    // Each field on its own (the edge schema).
    const shape = await call(server, 'POST', 'clients', { token, json: { name: '', redirectUris: 'https://x', clientSecret: 'mine' } });
    expectProblem(shape, 400, 'request.invalid', ['name', 'redirectUris', 'clientSecret']);
    // Rules between fields and URI rules (the service).
    const rules = await call(server, 'POST', 'clients', {
      token,
      json: { name: 'Bad', redirectUris: ['http://app.example.test/cb'], grantTypes: ['refresh_token'], scopes: ['openid', 'admin:everything'] },
    });
    expectProblem(rules, 400, 'client.invalid', ['redirectUris', 'grantTypes', 'scopes']);
  });

  it('replaces a client', async () => {
    const created = await call(server, 'POST', 'clients', { token, json: webClient('Before') });
    const id = encodeURIComponent(created.body.clientId as string);
    const updated = await call(server, 'PUT', `clients/${id}`, {
      token,
      json: { ...webClient('After'), requireMfa: true, accessTokenTtl: 600 },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ name: 'After', requireMfa: true, accessTokenTtl: 600 });
    expect(updated.body).not.toHaveProperty('clientSecret');
    expectProblem(await call(server, 'PUT', `clients/${id}`, { token, json: { name: 'x' } }), 400, 'request.invalid', ['redirectUris']);
    expectProblem(await call(server, 'PUT', 'clients/nope-nope', { token, json: webClient('x') }), 404, 'client.not_found');
  });

  it('rotates a secret: the new one works, the old one during the grace period', async () => {
    const created = await call(server, 'POST', 'clients', {
      token,
      json: { name: 'Rotating service', grantTypes: ['client_credentials'], redirectUris: [], scopes: ['admin:clients:read'] },
    });
    const { clientId, clientSecret: oldSecret } = created.body as { clientId: string; clientSecret: string };
    const rotated = await call(server, 'POST', `clients/${encodeURIComponent(clientId)}/secret`, { token });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toEqual({ clientSecret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), previousSecretExpiresAt: expect.any(String) });
    expect(rotated.body.clientSecret).not.toBe(oldSecret);
    const params = { resource: server.config.adminApi.resource, scope: 'admin:clients:read' };
    expect((await clientCredentialsToken(server, { clientId, clientSecret: rotated.body.clientSecret as string }, params)).status).toBe(200);
    expect((await clientCredentialsToken(server, { clientId, clientSecret: oldSecret }, params)).status).toBe(200);

    expectProblem(await call(server, 'POST', 'clients/nope-nope/secret', { token }), 404, 'client.not_found');
  });

  it('pipelines rotating one secret at once: a rotation that raced another gets 409, never a secret that does not work', async () => {
    const created = await call(server, 'POST', 'clients', { token, json: webClient('Raced') });
    const clientId = created.body.clientId as string;
    const path = `clients/${encodeURIComponent(clientId)}/secret`;
    const answers = await Promise.all(Array.from({ length: 6 }, () => call(server, 'POST', path, { token })));
    // Requests that reach the server one after the other are rotations in turn (each replaces the
    // one before); those that raced for the same current secret lose with 409 (exactly one of
    // them wins: test/clients/client.service.test.ts).
    const won = answers.filter((a) => a.status === 200);
    expect(won.length).toBeGreaterThanOrEqual(1);
    for (const lost of answers.filter((a) => a.status !== 200)) expectProblem(lost, 409, 'client.rotation_conflict');
    const metadata = await server.deps.clients.find(clientId);
    expect(won.map((a) => a.body.clientSecret)).toContain(metadata?.client_secret);
    const recorded = await server.deps.db.collection('audit_events').countDocuments({ action: 'client.secret_rotated', 'target.id': clientId });
    expect(recorded).toBe(won.length);
  });

  it('deletes a client', async () => {
    const created = await call(server, 'POST', 'clients', { token, json: webClient('Doomed') });
    const path = `clients/${encodeURIComponent(created.body.clientId as string)}`;
    const deleted = await call(server, 'DELETE', path, { token });
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expectProblem(await call(server, 'GET', path, { token }), 404, 'client.not_found');
    expectProblem(await call(server, 'DELETE', path, { token }), 404, 'client.not_found');
  });

  it('needs the write scope to change anything', async () => {
    expectProblem(await call(server, 'POST', 'clients', { token: readOnly, json: webClient('No') }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'DELETE', 'clients/anything', { token: readOnly }), 403, 'auth.insufficient_scope');
  });

  it('skipPkce: a confidential client may get it (audited, shown), a public one never (400, nothing stored)', async () => {
    const created = await call(server, 'POST', 'clients', { token, json: webClient('No PKCE yet') });
    expect(created.body.skipPkce).toBe(false);
    const id = created.body.clientId as string;
    const updated = await call(server, 'PUT', `clients/${encodeURIComponent(id)}`, { token, json: { ...webClient('No PKCE yet'), skipPkce: true } });
    expect(updated.status).toBe(200);
    expect(updated.body.skipPkce).toBe(true);
    expect((await server.deps.clients.find(id))?.skip_pkce).toBe(true);
    await server.deps.audit.flush();
    const events = await server.deps.audit.list({ action: 'client.updated', target: id }, { limit: 5 });
    expect(events.events[0]?.details?.changed).toEqual(['skipPkce']);

    const before = (await server.deps.clients.list({ limit: 200 })).total;
    const publicOne = { ...webClient('Public, no PKCE'), tokenEndpointAuthMethod: 'none', grantTypes: ['authorization_code'], skipPkce: true };
    const refused = await call(server, 'POST', 'clients', { token, json: publicOne });
    expectProblem(refused, 400, 'client.invalid', ['skipPkce']);
    expect(refused.text).toContain('always uses PKCE');
    expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);
    // Turning the confidential client public while it skips PKCE: refused too, nothing changed.
    const switched = await call(server, 'PUT', `clients/${encodeURIComponent(id)}`, { token, json: { ...publicOne, name: 'No PKCE yet' } });
    expectProblem(switched, 400, 'client.invalid', ['skipPkce']);
    expect((await server.deps.clients.find(id))?.token_endpoint_auth_method).toBe('client_secret_basic');
    expectProblem(await call(server, 'POST', 'clients', { token, json: { ...webClient('Bad flag'), skipPkce: 'yes' } }), 400, 'request.invalid', ['skipPkce']);
  });

  it('records who made the change', async () => {
    const { token: own, accountId } = await adminToken(server, ['admin:clients:write']);
    const created = await call(server, 'POST', 'clients', { token: own, json: webClient('Audited') });
    await server.deps.audit.flush();
    const page = await server.deps.audit.list({ action: 'client.created', target: created.body.clientId as string }, { limit: 5 });
    expect(page.events[0]?.actor).toMatchObject({ type: 'account', id: accountId, label: expect.stringContaining('@example.test') });
  });
});

describe('registration tokens', () => {
  it('issues a token once, lists it without its value, and revokes it', async () => {
    const created = await call(server, 'POST', 'registration-tokens', { token, json: { expiresInSeconds: 3600, uses: 2 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: expect.any(String),
      token: expect.any(String),
      usesAllowed: 2,
      usesCount: 0,
      revoked: false,
      expiresAt: expect.any(String),
      createdBy: { type: 'account' },
    });
    const { id, token: value } = created.body as { id: string; token: string };

    const list = await call(server, 'GET', 'registration-tokens', { token: readOnly });
    expect(list.status).toBe(200);
    expect(list.body.registrationTokens.map((t: { id: string }) => t.id)).toContain(id);
    expect(list.text).not.toContain(value);

    expect((await call(server, 'DELETE', `registration-tokens/${encodeURIComponent(id)}`, { token })).status).toBe(204);
    const after = await call(server, 'GET', 'registration-tokens', { token: readOnly });
    expect(after.body.registrationTokens.find((t: { id: string }) => t.id === id)).toMatchObject({ revoked: true });
    expectProblem(await call(server, 'DELETE', `registration-tokens/${encodeURIComponent(id)}`, { token }), 404, 'registration_token.not_found');
  });

  it('issues a token without limits for an empty object', async () => {
    const created = await call(server, 'POST', 'registration-tokens', { token, json: {} });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty('expiresAt');
    expect(created.body).not.toHaveProperty('usesAllowed');
  });

  it('refuses invalid options field by field', async () => {
    const answer = await call(server, 'POST', 'registration-tokens', { token, json: { expiresInSeconds: 5, uses: 0, policies: ['x'] } });
    expectProblem(answer, 400, 'request.invalid', ['expiresInSeconds', 'uses', 'policies']);
    expectProblem(await call(server, 'POST', 'registration-tokens', { token: readOnly, json: {} }), 403, 'auth.insufficient_scope');
  });
});
