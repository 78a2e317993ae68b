import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { SETUP, adminToken, call, expectProblem } from './api-client.js';

/**
 * /resources of the management API (API resources, RFC 8707) and the resources a client names:
 * admin:clients:read reads, admin:clients:write changes; bad input is a 4xx problem and nothing
 * is stored; the store's own refusals (our origin, the management API) hold through the API.
 */

let server: TestServer;
let token: string;
let readOnly: string;
let usersOnly: string;

const path = (identifier: string) => `resources/${encodeURIComponent(identifier)}`;

const notesApi = {
  identifier: 'https://notes.example.test/api',
  name: 'Notes API',
  scopes: [
    { name: 'notes:read', description: 'Read your notes' },
    { name: 'notes:write', description: 'Change your notes' },
  ],
  tokenFormat: 'jwt',
  accessTokenTtl: 600,
};

const webClient = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  redirectUris: ['https://app.example.test/callback'],
  ...extra,
});

const resourceCount = async () => (await server.deps.resources.list()).length;
const clientCount = async () => (await server.deps.clients.list({ limit: 200 })).total;

beforeAll(async () => {
  server = await startTestServer('admin_api_resources', { logLevel: 'warn' });
  ({ token } = await adminToken(server));
  ({ token: readOnly } = await adminToken(server, ['admin:clients:read']));
  ({ token: usersOnly } = await adminToken(server, ['admin:users:read', 'admin:users:write']));
});

afterAll(async () => {
  await server.close();
});

describe('API resources', () => {
  it('creates, reads, lists, replaces and deletes a resource, audited', async () => {
    const created = await call(server, 'POST', 'resources', { token, json: notesApi });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ ...notesApi, introspectionClients: [], createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(created.headers.get('location')).toBe(`/api/admin/v1/resources/${encodeURIComponent(notesApi.identifier)}`);

    const read = await call(server, 'GET', path(notesApi.identifier), { token: readOnly });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ identifier: notesApi.identifier, name: 'Notes API', tokenFormat: 'jwt', accessTokenTtl: 600 });

    const listed = await call(server, 'GET', 'resources', { token: readOnly });
    expect(listed.status).toBe(200);
    expect(listed.body.resources.map((r: { identifier: string }) => r.identifier)).toContain(notesApi.identifier);

    const replaced = await call(server, 'PUT', path(notesApi.identifier), {
      token,
      json: { name: 'Notes', scopes: [{ name: 'notes:read', description: 'See your notes' }], tokenFormat: 'opaque', introspectionClients: ['notes-backend-1'] },
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ identifier: notesApi.identifier, name: 'Notes', tokenFormat: 'opaque', introspectionClients: ['notes-backend-1'] });
    expect(replaced.body).not.toHaveProperty('accessTokenTtl');

    const deleted = await call(server, 'DELETE', path(notesApi.identifier), { token });
    expect(deleted.status).toBe(204);
    expectProblem(await call(server, 'GET', path(notesApi.identifier), { token }), 404, 'resource.not_found');
    expectProblem(await call(server, 'DELETE', path(notesApi.identifier), { token }), 404, 'resource.not_found');
    expectProblem(await call(server, 'PUT', path(notesApi.identifier), { token, json: { name: 'Back' } }), 404, 'resource.not_found');
    expect(await server.deps.resources.get(notesApi.identifier)).toBeUndefined();

    const events = (await server.deps.audit.list({ target: notesApi.identifier }, { limit: 10 })).events.map((e) => e.action).sort();
    expect(events).toEqual(['api_resource.created', 'api_resource.deleted', 'api_resource.updated']);
  });

  it('a urn identifier works as one path segment', async () => {
    const urn = 'urn:example:billing/v2';
    expect((await call(server, 'POST', 'resources', { token, json: { identifier: urn, name: 'Billing' } })).status).toBe(201);
    const read = await call(server, 'GET', path(urn), { token });
    expect(read.status).toBe(200);
    expect(read.body.identifier).toBe(urn);
  });

  it('a taken identifier is 409 and the first resource is kept', async () => {
    const identifier = 'https://taken.example.test';
    expect((await call(server, 'POST', 'resources', { token, json: { identifier, name: 'First' } })).status).toBe(201);
    expectProblem(await call(server, 'POST', 'resources', { token, json: { identifier, name: 'Second' } }), 409, 'resource.exists');
    expect((await server.deps.resources.get(identifier))?.name).toBe('First');
  });

  it('of concurrent creations of one identifier exactly one wins', async () => {
    const identifier = 'https://race.example.test';
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => call(server, 'POST', 'resources', { token, json: { identifier, name: `Racer ${i}` } })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, ...Array<number>(9).fill(409)]);
  });

  it('bad input is 400 with the fields, and nothing is stored', async () => {
    const before = await resourceCount();
    const bad: [unknown, string[]][] = [
      [{ name: 'No identifier' }, ['identifier']],
      [{ identifier: 'not a uri', name: 'X' }, ['identifier']],
      [{ identifier: 'https://a.example.test/#frag', name: 'X' }, ['identifier']],
      [{ identifier: 'https://a.example.test/?q=1', name: 'X' }, ['identifier']],
      [{ identifier: 'https://a.example.test', name: '' }, ['name']],
      [{ identifier: 'https://a.example.test', name: 'X', tokenFormat: 'paseto' }, ['tokenFormat']],
      [{ identifier: 'https://a.example.test', name: 'X', accessTokenTtl: 5 }, ['accessTokenTtl']],
      [{ identifier: 'https://a.example.test', name: 'X', accessTokenTtl: 'long' }, ['accessTokenTtl']],
      [{ identifier: 'https://a.example.test', name: 'X', scopes: [{ name: 'has space', description: 'd' }] }, ['scopes.0.name']],
      [{ identifier: 'https://a.example.test', name: 'X', scopes: [{ name: 'ok' }] }, ['scopes.0.description']],
      [{ identifier: 'https://a.example.test', name: 'X', scopes: [{ name: 'openid', description: 'Sign in' }] }, ['scopes']],
      [{ identifier: 'https://a.example.test', name: 'X', scopes: [{ name: 'admin:users:write', description: 'All of it' }] }, ['scopes']],
      [{ identifier: 'https://a.example.test', name: 'X', scopes: [{ name: 'a', description: 'b' }, { name: 'a', description: 'c' }] }, ['scopes']],
      [{ identifier: 'https://a.example.test', name: 'X', introspectionClients: ['has space'] }, ['introspectionClients.0']],
      [{ identifier: 'https://a.example.test', name: 'X', owner: 'me' }, ['owner']],
      [{ identifier: 'https://a.example.test', name: 'X\u0000' }, ['name']],
      [{ identifier: 'https://a.example.test/\u0000', name: 'X' }, ['identifier']],
      [{ identifier: 'https://a.example.test', name: 'X', scopes: [{ name: 'a', description: 'line\nbreak' }] }, ['scopes.0.description']],
      [['not', 'an', 'object'], []],
    ];
    for (const [json, fields] of bad) {
      const answer = await call(server, 'POST', 'resources', { token, json });
      expect({ json, status: answer.status }).toEqual({ json, status: 400 });
      expectProblem(answer, 400, undefined, fields);
    }
    expectProblem(await call(server, 'POST', 'resources', { token, raw: '{"identifier":', contentType: 'application/json' }), 400);
    expect(await resourceCount()).toBe(before);
  });

  it('cannot make tokens for the management API or for this server’s own origin', async () => {
    const before = await resourceCount();
    for (const identifier of [server.config.adminApi.resource, `${server.config.issuer}/me`, `${new URL(server.config.issuer).origin}/`]) {
      expectProblem(await call(server, 'POST', 'resources', { token, json: { identifier, name: 'Escalation' } }), 400, 'resource.invalid', ['identifier']);
    }
    expect(await resourceCount()).toBe(before);
  });

  it('reading needs admin:clients:read, changes admin:clients:write; refusals change nothing', async () => {
    const identifier = 'https://guarded.example.test';
    await server.deps.resources.create({ identifier, name: 'Guarded' }, SETUP);
    expectProblem(await call(server, 'GET', 'resources'), 401);
    expectProblem(await call(server, 'GET', 'resources', { token: usersOnly }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'GET', path(identifier), { token: usersOnly }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'POST', 'resources', { token: readOnly, json: { identifier: 'https://new.example.test', name: 'New' } }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'PUT', path(identifier), { token: readOnly, json: { name: 'Renamed' } }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'DELETE', path(identifier), { token: readOnly }), 403, 'auth.insufficient_scope');
    expect(await server.deps.resources.get(identifier)).toMatchObject({ name: 'Guarded' });
    expect(await server.deps.resources.get('https://new.example.test')).toBeUndefined();
  });

  it('an unknown path parameter or method is a problem, never a 500', async () => {
    expectProblem(await call(server, 'GET', path('https://nowhere.example.test'), { token }), 404, 'resource.not_found');
    expectProblem(await call(server, 'GET', `resources/${'x'.repeat(2100)}`, { token }), 400, 'request.invalid', ['identifier']);
    expectProblem(await call(server, 'GET', 'resources/%00', { token }), 400);
    expectProblem(await call(server, 'PATCH', 'resources', { token, json: {} }), 405);
  });
});

describe('the API resources of a client', () => {
  const identifier = 'https://orders.example.test';
  const other = 'urn:example:stock';

  beforeAll(async () => {
    await server.deps.resources.create({ identifier, name: 'Orders', scopes: [{ name: 'orders:read', description: 'See your orders' }] }, SETUP);
    await server.deps.resources.create({ identifier: other, name: 'Stock' }, SETUP);
  });

  it('a client names registered resources and a default one; the view shows them', async () => {
    const created = await call(server, 'POST', 'clients', { token, json: webClient('Shop', { allowedResources: [identifier, other], defaultResource: identifier }) });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ allowedResources: [identifier, other], defaultResource: identifier });
    const clientId = created.body.clientId as string;
    const read = await call(server, 'GET', `clients/${encodeURIComponent(clientId)}`, { token: readOnly });
    expect(read.body).toMatchObject({ allowedResources: [identifier, other], defaultResource: identifier });

    const changed = await call(server, 'PUT', `clients/${encodeURIComponent(clientId)}`, { token, json: webClient('Shop', { allowedResources: [other] }) });
    expect(changed.status).toBe(200);
    expect(changed.body.allowedResources).toEqual([other]);
    expect(changed.body).not.toHaveProperty('defaultResource');
  });

  it('an unregistered resource is 400 on the field, and nothing is stored or changed', async () => {
    const before = await clientCount();
    const unknown = 'https://not-registered.example.test';
    for (const json of [
      webClient('Bad 1', { allowedResources: [identifier, unknown] }),
      webClient('Bad 2', { allowedResources: [unknown], defaultResource: unknown }),
      webClient('Bad 3', { allowedResources: [server.config.adminApi.resource] }),
    ]) {
      expectProblem(await call(server, 'POST', 'clients', { token, json }), 400, 'client.invalid', ['allowedResources']);
    }
    expectProblem(await call(server, 'POST', 'clients', { token, json: webClient('Bad 4', { allowedResources: [identifier], defaultResource: other }) }), 400, 'client.invalid', ['defaultResource']);
    expectProblem(await call(server, 'POST', 'clients', { token, json: webClient('Bad 5', { allowedResources: ['not a uri'] }) }), 400, undefined, ['allowedResources']);
    expectProblem(await call(server, 'POST', 'clients', { token, json: webClient('Bad 6', { allowedResources: 'https://x.example.test' }) }), 400, undefined, ['allowedResources']);
    expect(await clientCount()).toBe(before);

    const kept = await call(server, 'POST', 'clients', { token, json: webClient('Kept', { allowedResources: [identifier] }) });
    const clientId = kept.body.clientId as string;
    const refused = await call(server, 'PUT', `clients/${encodeURIComponent(clientId)}`, { token, json: webClient('Kept', { allowedResources: [unknown] }) });
    expectProblem(refused, 400, 'client.invalid', ['allowedResources']);
    expect((await server.deps.clients.get(clientId))?.allowedResources).toEqual([identifier]);
  });
});
