import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { CACHE_STAMPS_COLLECTION } from '../../src/clients/client-cache.js';
import { BACKCHANNEL_COLLECTION } from '../../src/oidc/backchannel-logout.service.js';
import { SIGNING_KEYS_COLLECTION } from '../../src/oidc/keys.js';
import { API_RESOURCES_COLLECTION } from '../../src/resources/api-resource.service.js';
import { countCommands, nextStampPoll } from '../support/command-counter.js';
import type { CommandCounter, SeenCommand } from '../support/command-counter.js';
import { REDIRECT_URI, authorizationRequest, rpFor, signInForTokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';

/**
 * Database commands per request on the hot protocol endpoints, counted (never timed): what one
 * token, introspection, refresh or userinfo request costs in round trips once the node is warm
 * (its client cache filled). Budgets are per request; every record is read at most once.
 */

const USER = { email: 'budget@example.com', password: 'a long enough password' };
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });
// The key ring's safety reload of signing_keys (once a minute, src/oidc/key-ring.ts) is background work too.
const BACKGROUND = new Set([CACHE_STAMPS_COLLECTION, AUDIT_COLLECTION, SIGNING_KEYS_COLLECTION]);
// Two API resources: one with JWT access tokens (not stored), one with opaque ones.
const JWT_API = 'https://jwt.example.com/api';
const OPAQUE_API = 'https://opaque.example.com/api';
/** The back-channel logout worker's poll for due deliveries (a timer, every node): background work, never a request's. */
const isWorkerPoll = (c: SeenCommand) => c.name === 'find' && c.collection === BACKCHANNEL_COLLECTION;

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers are inspected freely in tests
  body: any;
}

describe('database commands per request (hot paths)', () => {
  let server: TestServer;
  let counter: CommandCounter;
  let service: CreatedClient;
  let web: CreatedClient;
  let refreshToken: string;
  let userAccessToken: string;
  let apiService: CreatedClient;
  let apiWeb: CreatedClient;
  let apiRefreshToken: string;

  const basic = (client: CreatedClient) => `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret ?? '')}`).toString('base64')}`;

  const post = async (path: string, client: CreatedClient, form: Record<string, string>): Promise<Answer> => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(form).toString(),
    });
    return { status: response.status, body: await response.json() };
  };

  const clientCredentials = () => post('/token', service, { grant_type: 'client_credentials', scope: 'admin:audit:read', resource: server.config.adminApi.resource });

  /**
   * Runs one request on a fresh count; the commands it sent, with a readable list for failures.
   * Not the request's: the client cache's stamp poll (one per interval per node) and the audit
   * log's batched inserts (one per batch; counted over many requests below).
   */
  const measured = async (work: () => Promise<Answer>): Promise<{ answer: Answer; commands: SeenCommand[]; list: string }> => {
    await server.deps.audit.flush();
    await nextStampPoll(server, API_RESOURCES_COLLECTION);
    // Right after a stamp poll came back, so that the node trusts its client cache for the whole
    // request: on a loaded machine a late poll lapses that trust and the client is read again (as
    // it must be, to keep a change's delay under a second), which is not what this counts.
    await nextStampPoll(server);
    counter.reset();
    const answer = await work();
    const commands = counter.commands.filter((c) => !BACKGROUND.has(c.collection) && !isWorkerPoll(c));
    const list = commands.map((c) => `${c.name} ${c.collection}${c.filter !== undefined ? ` ${JSON.stringify(c.filter)}` : ''}`).join('\n');
    expect({ repeatedReads: counter.repeatedReads(), list }).toEqual({ repeatedReads: {}, list });
    return { answer, commands, list };
  };

  beforeAll(async () => {
    server = await startTestServer('command_budget', { monitorCommands: true });
    counter = countCommands(server);
    await server.deps.accounts.create({ ...USER, name: 'Budget Person' });
    service = await server.deps.clients.create(
      { name: 'Reporter', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['admin:audit:read'] },
      SETUP,
    );
    web = await server.deps.clients.create({ name: 'Web app', redirectUris: [REDIRECT_URI] });
    const rp = await rpFor(server, web);
    const { tokens } = await signInForTokens(rp, new UserAgent(server.url), USER, { scope: 'openid email offline_access', prompt: 'consent' });
    if (!tokens.refresh_token) throw new Error('no refresh token');
    refreshToken = tokens.refresh_token;
    userAccessToken = tokens.access_token;
    await server.deps.resources.create({ identifier: JWT_API, name: 'JWT API', scopes: [{ name: 'jwt:read', description: 'Read' }], tokenFormat: 'jwt' });
    await server.deps.resources.create({ identifier: OPAQUE_API, name: 'Opaque API', scopes: [{ name: 'opaque:read', description: 'Read' }], tokenFormat: 'opaque', introspectionClients: [service.clientId] });
    const allowedResources = [JWT_API, OPAQUE_API];
    apiService = await server.deps.clients.create({ name: 'API worker', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['openid'], allowedResources });
    apiWeb = await server.deps.clients.create({ name: 'API web app', redirectUris: [REDIRECT_URI], allowedResources });
    const apiRp = await rpFor(server, apiWeb);
    // Both APIs granted (two `resource` parameters); the code redeemed for one of them.
    const started = await authorizationRequest(apiRp, { scope: 'openid offline_access jwt:read opaque:read', prompt: 'consent' });
    for (const resource of allowedResources) started.url.searchParams.append('resource', resource);
    const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER);
    const apiTokens = await oidc.authorizationCodeGrant(apiRp, new URL(callback.location ?? ''), { pkceCodeVerifier: started.verifier, expectedState: started.state, expectedNonce: started.nonce }, { resource: JWT_API });
    if (!apiTokens.refresh_token) throw new Error('no refresh token');
    apiRefreshToken = apiTokens.refresh_token;
    // Creating the clients set a new stamp, which the next poll sees (and so drops the cache once).
    await nextStampPoll(server);
    // The same for the API resources' cache.
    await nextStampPoll(server, API_RESOURCES_COLLECTION);
    // Warm-up: the clients are in this node's cache.
    expect((await clientCredentials()).status).toBe(200);
    expect((await post('/token/introspection', web, { token: userAccessToken })).status).toBe(200);
    // The API resources are in this node's cache.
    for (const resource of [JWT_API, OPAQUE_API]) expect((await post('/token', apiService, { grant_type: 'client_credentials', resource })).status).toBe(200);
    expect((await post('/token/introspection', apiWeb, { token: 'x'.repeat(43) })).status).toBe(200);
  });

  afterAll(async () => {
    counter.stop();
    await server.close();
  });

  it('client_credentials: at most 1 command (the token write)', async () => {
    const { answer, commands, list } = await measured(clientCredentials);
    expect(answer.status).toBe(200);
    expect(typeof answer.body.access_token).toBe('string');
    expect({ count: commands.length, list }).toEqual({ count: 1, list });
    expect(commands[0]).toMatchObject({ name: 'insert', collection: 'oidc_access_token' });
  });

  it('20 client_credentials requests in a row: 20 token writes, and the audit events in a few batched inserts', async () => {
    await server.deps.audit.flush();
    counter.reset();
    for (let i = 0; i < 20; i += 1) expect((await clientCredentials()).status).toBe(200);
    await server.deps.audit.flush();
    const byCollection = counter.byCollection();
    expect(byCollection.oidc_access_token).toBe(20);
    // The clients come from the cache: none is read, or (a stamp poll late on a loaded machine,
    // which lapses the cache's trust) once or twice in the 20, never once per request.
    expect(byCollection.clients ?? 0).toBeLessThanOrEqual(2);
    // At most one insert per flush interval (these requests take some hundred milliseconds) and one at the end.
    expect(byCollection[AUDIT_COLLECTION]).toBeGreaterThanOrEqual(1);
    expect(byCollection[AUDIT_COLLECTION]).toBeLessThanOrEqual(5);
  });

  it('introspection of a client_credentials token with token_type_hint=access_token: 1 command', async () => {
    const token = (await clientCredentials()).body.access_token as string;
    const { answer, commands, list } = await measured(() => post('/token/introspection', service, { token, token_type_hint: 'access_token' }));
    expect(answer.body).toMatchObject({ active: true, client_id: service.clientId, token_type: 'Bearer' });
    expect({ count: commands.length, list }).toEqual({ count: 1, list });
  });

  it('introspection of a client_credentials token without a hint: at most 2 commands', async () => {
    const token = (await clientCredentials()).body.access_token as string;
    const { answer, commands, list } = await measured(() => post('/token/introspection', service, { token }));
    expect(answer.body).toMatchObject({ active: true, client_id: service.clientId });
    expect({ within: commands.length <= 2, list }).toEqual({ within: true, list });
  });

  it('introspection of an unknown token: inactive, at most 2 commands', async () => {
    const { answer, commands, list } = await measured(() => post('/token/introspection', service, { token: 'x'.repeat(43) }));
    expect(answer).toEqual({ status: 200, body: { active: false } });
    expect({ within: commands.length <= 2, list }).toEqual({ within: true, list });
  });

  it('refresh_token grant (confidential client): at most 4 commands', async () => {
    const { answer, commands, list } = await measured(() => post('/token', web, { grant_type: 'refresh_token', refresh_token: refreshToken }));
    expect(answer.status).toBe(200);
    expect(typeof answer.body.access_token).toBe('string');
    if (typeof answer.body.refresh_token === 'string') refreshToken = answer.body.refresh_token as string;
    userAccessToken = answer.body.access_token as string;
    expect({ within: commands.length <= 4, list }).toEqual({ within: true, list });
  });

  it('userinfo: 3 commands (the access token, its grant, the account)', async () => {
    const { answer, commands, list } = await measured(async () => {
      const response = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${userAccessToken}` } });
      return { status: response.status, body: await response.json() };
    });
    expect(answer).toMatchObject({ status: 200, body: { email: USER.email } });
    expect({ count: commands.length, list }).toEqual({ count: 3, list });
  });

  describe('with `resource` (an API resource, read from the node’s cache: no command of its own)', () => {
    const noResourceRead = (commands: SeenCommand[]) => commands.filter((c) => c.collection === API_RESOURCES_COLLECTION);

    it('client_credentials for an opaque-token API: 1 command (the token write), as without `resource`', async () => {
      const { answer, commands, list } = await measured(() => post('/token', apiService, { grant_type: 'client_credentials', resource: OPAQUE_API, scope: 'opaque:read' }));
      expect(answer.body).toMatchObject({ scope: 'opaque:read' });
      expect(noResourceRead(commands)).toEqual([]);
      expect({ count: commands.length, list }).toEqual({ count: 1, list });
      expect(commands[0]).toMatchObject({ name: 'insert', collection: 'oidc_access_token' });
    });

    it('client_credentials for a JWT-token API: no command at all (a JWT is not stored)', async () => {
      const { answer, commands, list } = await measured(() => post('/token', apiService, { grant_type: 'client_credentials', resource: JWT_API, scope: 'jwt:read' }));
      expect(answer.body).toMatchObject({ scope: 'jwt:read' });
      expect({ count: commands.length, list }).toEqual({ count: 0, list });
    });

    it('introspection of an opaque API token by a client the API lists (not the one it was issued to): 1 command', async () => {
      const token = (await post('/token', apiService, { grant_type: 'client_credentials', resource: OPAQUE_API, scope: 'opaque:read' })).body.access_token as string;
      const { answer, commands, list } = await measured(() => post('/token/introspection', service, { token, token_type_hint: 'access_token' }));
      expect(answer.body).toMatchObject({ active: true, client_id: apiService.clientId, aud: OPAQUE_API, scope: 'opaque:read' });
      expect({ count: commands.length, list }).toEqual({ count: 1, list });
    });

    it('refresh_token grant naming one of the granted APIs: at most 4 commands, as without `resource`', async () => {
      for (const [resource, scope] of [
        [OPAQUE_API, 'opaque:read'],
        [JWT_API, 'jwt:read'],
      ] as const) {
        const { answer, commands, list } = await measured(() => post('/token', apiWeb, { grant_type: 'refresh_token', refresh_token: apiRefreshToken, resource }));
        expect(answer.body).toMatchObject({ scope });
        if (typeof answer.body.refresh_token === 'string') apiRefreshToken = answer.body.refresh_token as string;
        expect(noResourceRead(commands)).toEqual([]);
        expect({ within: commands.length <= 4, list }).toEqual({ within: true, list });
      }
    });
  });
});
