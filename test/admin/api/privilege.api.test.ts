import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AuditEvent } from '../../../src/audit/audit.service.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { ALL_SCOPES, adminToken, call, clientCredentialsToken, expectProblem } from './api-client.js';
import type { ApiAnswer } from './api-client.js';

/**
 * Nobody gives more than they hold: the privilege escalation an outside review found (a token
 * with only admin:clients:write made itself a client with admin:users:write, and with that an
 * admin), played through the real HTTP surface with tokens from the real /token endpoint, and
 * its variants. Every refusal is checked for its status, its code, and that nothing was stored.
 */

let server: TestServer;
/** An administrator's token with every scope (as the console mints it). */
let root: string;
let rootId: string;

beforeAll(async () => {
  server = await startTestServer('admin_api_privilege', { logLevel: 'warn' });
  ({ token: root, accountId: rootId } = await adminToken(server, ALL_SCOPES));
});

afterAll(async () => {
  await server.close();
});

let count = 0;
const unique = (label: string) => `${label} ${(count += 1)}`;

const clientCount = () => server.deps.db.collection('clients').countDocuments();
const accountCount = () => server.deps.db.collection('accounts').countDocuments();
/** A stored client exactly as it is in the database (metadata, sealed secret, dates). */
const rawClient = (clientId: string) => server.deps.db.collection('clients').findOne({ _id: clientId as never });
const rawAccount = (accountId: string) => server.deps.db.collection('accounts').findOne({ _id: accountId as never });

const webClient = (name: string, extra: Record<string, unknown> = {}) => ({ name, redirectUris: ['https://app.example.test/callback'], ...extra });
const serviceBody = (name: string, scopes: string[]) => ({ name, grantTypes: ['client_credentials'], redirectUris: [], scopes });

interface Service {
  clientId: string;
  clientSecret: string;
}

/** A client made by the administrator through the API (with every scope, so anything goes). */
async function createAsRoot(body: Record<string, unknown>): Promise<Service> {
  const created = await call(server, 'POST', 'clients', { token: root, json: body });
  expect(created.status).toBe(201);
  return { clientId: created.body.clientId as string, clientSecret: created.body.clientSecret as string };
}

/** RFC 6749 §4.4 at the real /token endpoint, for the management API's resource. */
async function tokenFor(client: Service, scopes: string[]): Promise<string> {
  const issued = await clientCredentialsToken(server, client, { resource: server.config.adminApi.resource, scope: scopes.join(' ') });
  expect(issued.status).toBe(200);
  expect(issued.body.scope).toBe(scopes.join(' '));
  return issued.body.access_token as string;
}

/** A service client holding `scopes`, made by the administrator, and a token for it from /token. */
async function serviceToken(scopes: string[]): Promise<Service & { token: string }> {
  const client = await createAsRoot(serviceBody(unique(`Service ${scopes.join(' ')}`), scopes));
  return { ...client, token: await tokenFor(client, scopes) };
}

/** The newest audit events of an action about a target (or, for a create, with no target). */
async function eventsOf(action: string, target?: string): Promise<AuditEvent[]> {
  await server.deps.audit.flush();
  return (await server.deps.audit.list({ action, ...(target ? { target } : {}) }, { limit: 20 })).events;
}

function expectClientRefusal(answer: ApiAnswer, missing: string[]): void {
  expectProblem(answer, 403, 'client.scope_not_held');
  for (const scope of missing) expect(answer.body.detail).toContain(scope);
  expect(answer.text).not.toMatch(/clientSecret/);
}

describe('the escalation from admin:clients:write to admin', () => {
  it('a leaked admin:clients:write service client cannot make itself an admin:users:write client, so cannot make anyone admin', async () => {
    // The CI service client the README recommends, holding only admin:clients:write.
    const ci = await serviceToken(['admin:clients:write']);
    const victim = await call(server, 'POST', 'users', { token: root, json: { email: 'victim@example.test' } });
    expect(victim.status).toBe(201);
    const before = await clientCount();

    // Step 1: a client with management API scopes the caller does not hold.
    const backdoor = await call(server, 'POST', 'clients', {
      token: ci.token,
      json: serviceBody('Backdoor', ['admin:users:write', 'admin:users:read']),
    });
    expectClientRefusal(backdoor, ['admin:clients:grant', 'admin:users:write', 'admin:users:read']);
    expect(await clientCount()).toBe(before);
    expect((await server.deps.clients.list({ search: 'Backdoor' })).total).toBe(0);

    // The refusal is in the audit log, as the client that tried.
    const [refused] = await eventsOf('client.created');
    expect(refused).toMatchObject({
      outcome: 'failure',
      reason: 'scope_not_held',
      actor: { type: 'client', id: ci.clientId },
      details: { missingScopes: ['admin:clients:grant', 'admin:users:write', 'admin:users:read'], name: 'Backdoor' },
    });
    expect(refused?.target).toBeUndefined();

    // Nothing came of it: the person is not an administrator.
    const after = await call(server, 'GET', `users/${encodeURIComponent(victim.body.id as string)}`, { token: root });
    expect(after.body.roles).toEqual([]);
  });

  it('nor give an ordinary client of its own management API scopes afterwards', async () => {
    const ci = await serviceToken(['admin:clients:write']);
    const own = await call(server, 'POST', 'clients', { token: ci.token, json: serviceBody(unique('Plain job'), ['openid']) });
    expect(own.status).toBe(201);
    const id = encodeURIComponent(own.body.clientId as string);
    const stored = await rawClient(own.body.clientId as string);

    const widened = await call(server, 'PUT', `clients/${id}`, { token: ci.token, json: serviceBody('Plain job', ['admin:users:write']) });
    expectClientRefusal(widened, ['admin:clients:grant', 'admin:users:write']);
    expect(await rawClient(own.body.clientId as string)).toEqual(stored);
    const [refused] = await eventsOf('client.updated', own.body.clientId as string);
    expect(refused).toMatchObject({ outcome: 'failure', reason: 'scope_not_held', actor: { type: 'client', id: ci.clientId } });
  });

  it('nor rotate the secret of, change or delete a service client that holds more than it does', async () => {
    const ci = await serviceToken(['admin:clients:write']);
    const strong = await createAsRoot(serviceBody(unique('Provisioner'), ['admin:users:write']));
    const path = `clients/${encodeURIComponent(strong.clientId)}`;
    const stored = await rawClient(strong.clientId);

    // Rotating the secret would hand the caller the client's powers.
    expectClientRefusal(await call(server, 'POST', `${path}/secret`, { token: ci.token }), ['admin:clients:grant', 'admin:users:write']);
    // Even a change that takes its powers away: what it has is not the caller's to touch.
    expectClientRefusal(await call(server, 'PUT', path, { token: ci.token, json: serviceBody('Provisioner', ['openid']) }), ['admin:users:write']);
    expectClientRefusal(await call(server, 'DELETE', path, { token: ci.token }), ['admin:users:write']);

    expect(await rawClient(strong.clientId)).toEqual(stored);
    // The secret the client has works as before, and is the only one.
    expect(await tokenFor(strong, ['admin:users:write'])).toEqual(expect.any(String));
    expect(await server.deps.clients.previousSecret(strong.clientId)).toBeUndefined();
    expect((await eventsOf('client.secret_rotated', strong.clientId)).map((e) => e.outcome)).toEqual(['failure']);
    expect((await eventsOf('client.deleted', strong.clientId)).map((e) => e.outcome)).toEqual(['failure']);
  });

  it('nor make a first-party client (which skips the consent page), nor touch one', async () => {
    const ci = await serviceToken(['admin:clients:write']);
    const before = await clientCount();
    const name = unique('Silent app');
    expectClientRefusal(await call(server, 'POST', 'clients', { token: ci.token, json: webClient(name, { firstParty: true }) }), ['admin:clients:grant']);
    expect(await clientCount()).toBe(before);
    expect((await server.deps.clients.list({ search: name })).total).toBe(0);

    const firstParty = await createAsRoot(webClient(unique('Our app'), { firstParty: true }));
    const path = `clients/${encodeURIComponent(firstParty.clientId)}`;
    const stored = await rawClient(firstParty.clientId);
    expectClientRefusal(
      await call(server, 'PUT', path, { token: ci.token, json: webClient('Our app', { redirectUris: ['https://attacker.example.test/cb'], firstParty: true }) }),
      ['admin:clients:grant'],
    );
    expectClientRefusal(await call(server, 'POST', `${path}/secret`, { token: ci.token }), ['admin:clients:grant']);
    expectClientRefusal(await call(server, 'DELETE', path, { token: ci.token }), ['admin:clients:grant']);
    expect(await rawClient(firstParty.clientId)).toEqual(stored);
  });

  it('admin:clients:grant gives only scopes the caller holds itself', async () => {
    const granter = await serviceToken(['admin:clients:write', 'admin:clients:grant', 'admin:users:read']);
    const before = await clientCount();
    expectClientRefusal(
      await call(server, 'POST', 'clients', { token: granter.token, json: serviceBody(unique('Too strong'), ['admin:users:read', 'admin:users:write']) }),
      ['admin:users:write'],
    );
    expect(await clientCount()).toBe(before);
    // Nor may it reach a client that holds a scope it lacks.
    const strong = await createAsRoot(serviceBody(unique('Auditor'), ['admin:audit:read']));
    const stored = await rawClient(strong.clientId);
    expectClientRefusal(await call(server, 'POST', `clients/${encodeURIComponent(strong.clientId)}/secret`, { token: granter.token }), ['admin:audit:read']);
    expect(await rawClient(strong.clientId)).toEqual(stored);
  });
});

describe('what may still be done', () => {
  it('an admin:clients:write token changes, rotates and deletes ordinary clients as before', async () => {
    const ci = await serviceToken(['admin:clients:write']);
    const created = await call(server, 'POST', 'clients', { token: ci.token, json: webClient(unique('Ordinary')) });
    expect(created.status).toBe(201);
    const path = `clients/${encodeURIComponent(created.body.clientId as string)}`;
    expect((await call(server, 'PUT', path, { token: ci.token, json: webClient('Ordinary, renamed', { requireMfa: true }) })).status).toBe(200);
    expect((await call(server, 'POST', `${path}/secret`, { token: ci.token })).status).toBe(200);
    expect((await call(server, 'DELETE', path, { token: ci.token })).status).toBe(204);
  });

  it('a caller holding admin:clients:grant and some scopes makes a service client with a subset of them, which works', async () => {
    const granter = await serviceToken(['admin:clients:write', 'admin:clients:grant', 'admin:audit:read', 'admin:clients:read']);
    const created = await call(server, 'POST', 'clients', { token: granter.token, json: serviceBody(unique('Reporter'), ['admin:audit:read']) });
    expect(created.status).toBe(201);
    expect(created.body.scopes).toEqual(['admin:audit:read']);
    const reporter = { clientId: created.body.clientId as string, clientSecret: created.body.clientSecret as string };
    const token = await tokenFor(reporter, ['admin:audit:read']);
    expect((await call(server, 'GET', 'audit-events?limit=1', { token })).status).toBe(200);

    // It may look after the client it made: rotate its secret, change it, delete it.
    const path = `clients/${encodeURIComponent(reporter.clientId)}`;
    expect((await call(server, 'POST', `${path}/secret`, { token: granter.token })).status).toBe(200);
    const changed = await call(server, 'PUT', path, { token: granter.token, json: serviceBody('Reporter', ['admin:audit:read', 'admin:clients:read']) });
    expect(changed.status).toBe(200);
    expect(changed.body.scopes).toEqual(['admin:audit:read', 'admin:clients:read']);
    expect((await call(server, 'DELETE', path, { token: granter.token })).status).toBe(204);
    const [audited] = await eventsOf('client.created', reporter.clientId);
    expect(audited).toMatchObject({ outcome: 'success', actor: { type: 'client', id: granter.clientId } });
  });

  it('an administrator’s token with every scope makes first-party clients and clients with any scope', async () => {
    const created = await call(server, 'POST', 'clients', { token: root, json: serviceBody(unique('Root job'), ALL_SCOPES) });
    expect(created.status).toBe(201);
    const firstParty = await call(server, 'POST', 'clients', { token: root, json: webClient(unique('Root app'), { firstParty: true }) });
    expect(firstParty.status).toBe(201);
    expect(firstParty.body.firstParty).toBe(true);
    const path = `clients/${encodeURIComponent(created.body.clientId as string)}`;
    expect((await call(server, 'POST', `${path}/secret`, { token: root })).status).toBe(200);
    expect((await call(server, 'DELETE', path, { token: root })).status).toBe(204);
  });
});

describe('users: nobody gives the admin role without holding what an administrator holds', () => {
  async function plainUser(label: string): Promise<string> {
    const created = await call(server, 'POST', 'users', { token: root, json: { email: `${label}-${(count += 1)}@example.test` } });
    expect(created.status).toBe(201);
    return created.body.id as string;
  }

  async function adminUser(label: string): Promise<string> {
    const created = await call(server, 'POST', 'users', { token: root, json: { email: `${label}-${(count += 1)}@example.test`, name: 'Ada', roles: ['admin'] } });
    expect(created.status).toBe(201);
    return created.body.id as string;
  }

  it('an admin:users:write service client cannot give the admin role, nor create an administrator', async () => {
    const hr = await serviceToken(['admin:users:write', 'admin:users:read']);
    const id = await plainUser('plain');
    const stored = await rawAccount(id);
    const granted = await call(server, 'PATCH', `users/${id}`, { token: hr.token, json: { roles: ['admin'] } });
    expectProblem(granted, 403, 'user.scope_not_held');
    expect(granted.body.detail).toMatch(/admin:clients:grant/);
    expect(await rawAccount(id)).toEqual(stored);

    const before = await accountCount();
    const email = `would-be-admin-${(count += 1)}@example.test`;
    expectProblem(await call(server, 'POST', 'users', { token: hr.token, json: { email, roles: ['admin'] } }), 403, 'user.scope_not_held');
    expect(await accountCount()).toBe(before);
    expect(await server.deps.accounts.findByEmail(email)).toBeUndefined();

    // Both attempts are in the audit log as failures, by the client.
    const attempts = (await eventsOf('user.role_granted')).filter((e) => e.actor.id === hr.clientId);
    expect(attempts).toHaveLength(2);
    for (const event of attempts) expect(event).toMatchObject({ outcome: 'failure', reason: 'scope_not_held', details: { role: 'admin' } });
    expect(attempts.map((e) => e.target?.id ?? e.details?.email)).toEqual([email, id]);

    // An ordinary user it may still create and change.
    const ordinary = await call(server, 'POST', 'users', { token: hr.token, json: { email: `ordinary-${(count += 1)}@example.test` } });
    expect(ordinary.status).toBe(201);
    expect((await call(server, 'PATCH', `users/${ordinary.body.id as string}`, { token: hr.token, json: { name: 'Ord' } })).status).toBe(200);
  });

  it('an admin:users:write token cannot touch an administrator’s account in any way', async () => {
    const hr = await serviceToken(['admin:users:write', 'admin:users:read']);
    const id = await adminUser('boss');
    const stored = await rawAccount(id);
    const path = `users/${encodeURIComponent(id)}`;
    const attempts: [string, string, unknown?][] = [
      ['PATCH', path, { name: 'Mallory' }],
      ['PATCH', path, { roles: [] }],
      ['PATCH', path, { disabled: true }],
      ['POST', `${path}/disable`],
      ['POST', `${path}/enable`],
      ['POST', `${path}/reset-mfa`],
      ['POST', `${path}/require-password-reset`],
      ['DELETE', path],
    ];
    for (const [method, where, json] of attempts) {
      const answer = await call(server, method, where, { token: hr.token, ...(json === undefined ? {} : { json }) });
      expectProblem(answer, 403, 'user.scope_not_held');
    }
    expect(await rawAccount(id)).toEqual(stored);
    expect((await call(server, 'GET', path, { token: root })).body).toMatchObject({ name: 'Ada', roles: ['admin'], disabled: false });
    const failures = (await eventsOf('user.', id)).filter((e) => e.outcome === 'failure');
    expect(failures.map((e) => e.action).sort()).toEqual(
      [
        'user.updated',
        'user.role_revoked',
        'user.disabled',
        'user.disabled',
        'user.enabled',
        'user.mfa_reset',
        'user.password_reset_required',
        'user.deleted',
      ].sort(),
    );
    for (const event of failures) expect(event).toMatchObject({ actor: { type: 'client', id: hr.clientId }, reason: 'scope_not_held' });
  });

  it('an administrator whose token lacks a scope cannot give the admin role either', async () => {
    const { token } = await adminToken(server, ['admin:users:write', 'admin:users:read']);
    const id = await plainUser('staff');
    expectProblem(await call(server, 'PATCH', `users/${id}`, { token, json: { roles: ['admin'] } }), 403, 'user.scope_not_held');
    expect((await call(server, 'GET', `users/${id}`, { token: root })).body.roles).toEqual([]);
  });

  it('an administrator’s token with every scope gives and takes the role, audited with the actor', async () => {
    const id = await plainUser('promoted');
    expect((await call(server, 'PATCH', `users/${id}`, { token: root, json: { roles: ['admin'] } })).body.roles).toEqual(['admin']);
    expect((await call(server, 'PATCH', `users/${id}`, { token: root, json: { roles: [] } })).body.roles).toEqual([]);
    const roleEvents = [...(await eventsOf('user.role_granted', id)), ...(await eventsOf('user.role_revoked', id))];
    expect(roleEvents).toHaveLength(2);
    for (const event of roleEvents) {
      expect(event).toMatchObject({ outcome: 'success', actor: { type: 'account', id: rootId }, target: { type: 'account', id }, details: { role: 'admin' } });
    }
    // And acts on other administrators.
    const other = await adminUser('other');
    expect((await call(server, 'POST', `users/${other}/disable`, { token: root })).body.disabled).toBe(true);
    expect((await call(server, 'DELETE', `users/${other}`, { token: root })).status).toBe(204);
  });
});
