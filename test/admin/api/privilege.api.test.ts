import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { ALL_SCOPES, adminToken, call, clientCredentialsToken, expectProblem } from './api-client.js';

/**
 * Nobody gives more than they hold: the privilege escalation an outside review found (a token
 * with only admin:clients:write made itself a client with admin:users:write, and with that an
 * admin), played through the real HTTP surface with tokens from the real /token endpoint.
 */

let server: TestServer;
/** An administrator's token with every scope (as the console mints it). */
let root: string;

beforeAll(async () => {
  server = await startTestServer('admin_api_privilege', { logLevel: 'warn' });
  ({ token: root } = await adminToken(server, ALL_SCOPES));
});

afterAll(async () => {
  await server.close();
});

const clientCount = () => server.deps.db.collection('clients').countDocuments();

/** A client_credentials service client made by the administrator, and a token for it from /token. */
async function serviceClientToken(scopes: string[]): Promise<{ clientId: string; clientSecret: string; token: string }> {
  const created = await call(server, 'POST', 'clients', {
    token: root,
    json: { name: `Service ${scopes.join(' ')}`, grantTypes: ['client_credentials'], redirectUris: [], scopes },
  });
  expect(created.status).toBe(201);
  const client = { clientId: created.body.clientId as string, clientSecret: created.body.clientSecret as string };
  const issued = await clientCredentialsToken(server, client, { resource: server.config.adminApi.resource, scope: scopes.join(' ') });
  expect(issued.status).toBe(200);
  return { ...client, token: issued.body.access_token as string };
}

describe('the escalation from admin:clients:write to admin', () => {
  it('a leaked admin:clients:write service client cannot make itself an admin:users:write client, so cannot make anyone admin', async () => {
    // The CI service client the README recommends, holding only admin:clients:write.
    const ci = await serviceClientToken(['admin:clients:write']);
    const victim = await call(server, 'POST', 'users', { token: root, json: { email: 'victim@example.test' } });
    expect(victim.status).toBe(201);
    const before = await clientCount();

    // Step 1: a client with management API scopes the caller does not hold.
    const backdoor = await call(server, 'POST', 'clients', {
      token: ci.token,
      json: { name: 'Backdoor', grantTypes: ['client_credentials'], redirectUris: [], scopes: ['admin:users:write', 'admin:users:read'] },
    });
    expectProblem(backdoor, 403, 'client.scope_not_held');
    expect(backdoor.text).not.toMatch(/clientSecret/);
    expect(await clientCount()).toBe(before);
    expect((await server.deps.clients.list({ search: 'Backdoor' })).total).toBe(0);

    // Nothing came of it: the person is not an administrator.
    const after = await call(server, 'GET', `users/${encodeURIComponent(victim.body.id as string)}`, { token: root });
    expect(after.body.roles).toEqual([]);
  });
});
