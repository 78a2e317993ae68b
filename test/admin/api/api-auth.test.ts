import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { ADMIN_CLIENT_ID } from '../../../src/admin/admin-client.js';
import { mintAdminApiToken } from '../../../src/admin/api/api-tokens.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { SETUP, adminToken, call, clientCredentialsToken, expectProblem } from './api-client.js';

/**
 * Who may call the management API: bearer tokens our provider issued for the API's resource
 * (RFC 8707), with the right scope (RFC 6750 §3 challenges), for an enabled admin account or a
 * service client that still exists.
 */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer('admin_api_auth', { logLevel: 'warn' });
});

afterAll(async () => {
  await server.close();
});

async function serviceClient(scopes: string[]): Promise<{ clientId: string; clientSecret: string }> {
  const created = await server.deps.clients.create({
    name: `service ${scopes.join(' ')}`,
    grantTypes: ['client_credentials'],
    redirectUris: [],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes,
  }, SETUP);
  if (!created.clientSecret) throw new Error('expected a secret');
  return { clientId: created.clientId, clientSecret: created.clientSecret };
}

describe('without a usable token', () => {
  it('answers 401 with a bare Bearer challenge when there is no token', async () => {
    const answer = await call(server, 'GET', 'clients');
    expectProblem(answer, 401, 'auth.token_missing');
    expect(answer.headers.get('www-authenticate')).toBe(`Bearer realm="${server.config.adminApi.resource}"`);
    expect(answer.headers.get('cache-control')).toBe('no-store');
  });

  it('treats another scheme as no token', async () => {
    const answer = await call(server, 'GET', 'clients', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    expectProblem(answer, 401, 'auth.token_missing');
  });

  it('answers 400 invalid_request for a malformed bearer header', async () => {
    const answer = await call(server, 'GET', 'clients', { headers: { authorization: 'Bearer two words' } });
    expectProblem(answer, 400, 'auth.invalid_request');
    expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+", error="invalid_request"/);
  });

  it('answers 401 invalid_token for an unknown token', async () => {
    const answer = await call(server, 'GET', 'clients', { token: 'not-a-token-we-issued' });
    expectProblem(answer, 401, 'auth.invalid_token');
    expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+", error="invalid_token", error_description="[^"]+"$/);
  });

  it('answers 401 invalid_token for a token with another audience', async () => {
    const { accountId } = await adminToken(server);
    const { provider } = server.deps;
    const client = await provider.Client.find(ADMIN_CLIENT_ID);
    // An ordinary access token of the console (userinfo audience): not for this API.
    const other = new provider.AccessToken({ client, accountId, scope: 'admin:clients:read openid' } as never);
    const value = await other.save();
    const answer = await call(server, 'GET', 'clients', { token: value });
    expectProblem(answer, 401, 'auth.invalid_token');
    expect(answer.body.detail).toMatch(/not issued for this API/);
  });

  it('answers 401 invalid_token for an expired token', async () => {
    const { accountId } = await adminToken(server);
    const { provider } = server.deps;
    const client = await provider.Client.find(ADMIN_CLIENT_ID);
    const resourceServer = new provider.ResourceServer(server.config.adminApi.resource, {
      scope: 'admin:clients:read',
      audience: server.config.adminApi.resource,
      accessTokenFormat: 'opaque',
    });
    const token = new provider.AccessToken({ client, accountId, resourceServer, scope: 'admin:clients:read', expiresIn: 60 } as never);
    const value = await token.save();
    expect((await call(server, 'GET', 'clients', { token: value })).status).toBe(200);
    // The token's lifetime runs out: its `exp` moves into the past (the provider keeps the system
    // time, which no test clock moves; the stored record itself would still live a minute).
    const tokens = server.connection.db!.collection<{ _id: string; payload: string }>('oidc_access_token');
    const stored = await tokens.findOne({ _id: token.jti });
    const payload = JSON.parse(stored!.payload) as { exp: number };
    await tokens.updateOne({ _id: token.jti }, { $set: { payload: JSON.stringify({ ...payload, exp: Math.floor(Date.now() / 1000) - 1 }) } });
    expectProblem(await call(server, 'GET', 'clients', { token: value }), 401, 'auth.invalid_token');
  });

  it('never writes the token into the log', async () => {
    const { token } = await adminToken(server, ['admin:clients:read']);
    await call(server, 'GET', 'users', { token });
    await call(server, 'GET', 'clients', { token: `${token}x` });
    expect(server.logs.join('\n')).not.toContain(token);
  });
});

describe('admin tokens minted for the console', () => {
  it('work for the scopes they carry', async () => {
    const { token } = await adminToken(server, ['admin:clients:read']);
    const answer = await call(server, 'GET', 'clients', { token });
    expect(answer.status).toBe(200);
    expect(answer.body.clients).toEqual(expect.any(Array));
  });

  it('carry the account, the console client, the API audience and the TTL', async () => {
    const { accountId } = await adminToken(server);
    const minted = await mintAdminApiToken(server.deps.provider, server.config, { accountId, scopes: ['admin:audit:read'] });
    expect(minted.expiresIn).toBe(server.config.ttl.accessToken);
    const stored = await server.deps.provider.AccessToken.find(minted.token);
    expect(stored).toMatchObject({
      accountId,
      clientId: ADMIN_CLIENT_ID,
      aud: server.config.adminApi.resource,
      scope: 'admin:audit:read',
    });
  });

  it('refuse to mint scopes that are not the API’s', async () => {
    const { accountId } = await adminToken(server);
    await expect(mintAdminApiToken(server.deps.provider, server.config, { accountId, scopes: ['openid'] })).rejects.toThrow(/not management API scopes/);
  });

  it('answer 403 insufficient_scope for a scope the token lacks', async () => {
    const { token } = await adminToken(server, ['admin:clients:read']);
    const answer = await call(server, 'GET', 'users', { token });
    expectProblem(answer, 403, 'auth.insufficient_scope');
    expect(answer.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    expect(answer.headers.get('www-authenticate')).toContain('scope="admin:users:read"');
  });

  it('answer 403 when the account is not an admin', async () => {
    const user = await server.deps.userAdmin.create({ email: `plain-${Date.now()}@example.test` });
    const { token } = await mintAdminApiToken(server.deps.provider, server.config, { accountId: user.id, scopes: ['admin:users:read'] });
    expectProblem(await call(server, 'GET', 'users', { token }), 403, 'auth.not_admin');
  });

  it('answer 403 once the admin role is taken away, and stop when the account is disabled', async () => {
    const { token, accountId } = await adminToken(server, ['admin:users:read']);
    expect((await call(server, 'GET', 'users', { token })).status).toBe(200);
    await server.deps.userAdmin.update(accountId, { roles: [] }, SETUP);
    expectProblem(await call(server, 'GET', 'users', { token }), 403, 'auth.not_admin');
    await server.deps.userAdmin.update(accountId, { roles: ['admin'] }, SETUP);
    expect((await call(server, 'GET', 'users', { token })).status).toBe(200);
    await server.deps.userAdmin.setDisabled(accountId, true, SETUP);
    // Disabling revokes the account's tokens (user-admin.service.ts).
    expectProblem(await call(server, 'GET', 'users', { token }), 401, 'auth.invalid_token');
    // A token that outlived the revocation (minted after it) is refused all the same.
    const late = await mintAdminApiToken(server.deps.provider, server.config, { accountId, scopes: ['admin:users:read'] });
    expectProblem(await call(server, 'GET', 'users', { token: late.token }), 403, 'auth.account_disabled');
    await server.deps.userAdmin.delete(accountId, SETUP);
    expectProblem(await call(server, 'GET', 'users', { token: late.token }), 401, 'auth.invalid_token');
  });
});

describe('service clients (client_credentials)', () => {
  it('get a token for the API with the scopes they list, and it works', async () => {
    const client = await serviceClient(['admin:clients:read', 'admin:audit:read']);
    const issued = await clientCredentialsToken(server, client, {
      resource: server.config.adminApi.resource,
      scope: 'admin:clients:read admin:audit:read',
    });
    expect(issued.status).toBe(200);
    expect(issued.body).toMatchObject({ token_type: 'Bearer', scope: 'admin:clients:read admin:audit:read', expires_in: expect.any(Number) });
    const token = issued.body.access_token as string;

    const answer = await call(server, 'GET', 'clients', { token });
    expect(answer.status).toBe(200);
    expect(answer.body.clients.map((c: { clientId: string }) => c.clientId)).toContain(client.clientId);
    expect((await call(server, 'GET', 'audit-events', { token })).status).toBe(200);
    expectProblem(await call(server, 'GET', 'users', { token }), 403, 'auth.insufficient_scope');
  });

  it('are audited as the client', async () => {
    const client = await serviceClient(['admin:clients:read', 'admin:clients:write']);
    const issued = await clientCredentialsToken(server, client, {
      resource: server.config.adminApi.resource,
      scope: 'admin:clients:write',
    });
    const token = issued.body.access_token as string;
    const answer = await call(server, 'POST', 'registration-tokens', { token, json: { uses: 1 } });
    expect(answer.status).toBe(201);
    await server.deps.audit.flush();
    const page = await server.deps.audit.list({ action: 'registration_token.created', target: answer.body.id }, { limit: 5 });
    expect(page.events[0]?.actor).toMatchObject({ type: 'client', id: client.clientId });
  });

  it('get no scope they do not list', async () => {
    const client = await serviceClient(['admin:clients:read']);
    const issued = await clientCredentialsToken(server, client, {
      resource: server.config.adminApi.resource,
      scope: 'admin:users:write',
    });
    // RFC 6749 §5.2: the admin scopes are scopes the provider knows, so a client's `scope`
    // metadata limits what it may ask for.
    expect(issued.status).toBe(400);
    expect(issued.body.error).toBe('invalid_scope');
  });

  it('without admin scopes get no token for the API at all', async () => {
    const client = await serviceClient(['openid']);
    const issued = await clientCredentialsToken(server, client, { resource: server.config.adminApi.resource, scope: 'admin:clients:read' });
    expect(issued.status).toBe(400);
    expect(issued.body.error).toBe('invalid_target');
  });

  it('get no token for another resource', async () => {
    const client = await serviceClient(['admin:clients:read']);
    const issued = await clientCredentialsToken(server, client, { resource: 'https://api.example.test/', scope: 'admin:clients:read' });
    expect(issued.status).toBe(400);
    expect(issued.body.error).toBe('invalid_target');
  });

  it('without a resource get a token the API refuses', async () => {
    const client = await serviceClient(['admin:clients:read']);
    const issued = await clientCredentialsToken(server, client, { scope: 'admin:clients:read' });
    expect(issued.status).toBe(200);
    expectProblem(await call(server, 'GET', 'clients', { token: issued.body.access_token as string }), 401, 'auth.invalid_token');
  });

  it('lose access when the client is deleted or the scope is taken off it', async () => {
    const client = await serviceClient(['admin:clients:read', 'admin:audit:read']);
    const issue = async () =>
      (await clientCredentialsToken(server, client, { resource: server.config.adminApi.resource, scope: 'admin:clients:read admin:audit:read' })).body
        .access_token as string;
    const token = await issue();
    expect((await call(server, 'GET', 'audit-events', { token })).status).toBe(200);

    await server.deps.clients.update(client.clientId, {
      name: 'service narrowed',
      grantTypes: ['client_credentials'],
      redirectUris: [],
      tokenEndpointAuthMethod: 'client_secret_basic',
      scopes: ['admin:clients:read'],
    }, SETUP);
    expectProblem(await call(server, 'GET', 'audit-events', { token }), 403, 'auth.insufficient_scope');
    expect((await call(server, 'GET', 'clients', { token })).status).toBe(200);

    await server.deps.clients.remove(client.clientId, SETUP);
    expectProblem(await call(server, 'GET', 'clients', { token }), 401, 'auth.invalid_token');
  });
});
