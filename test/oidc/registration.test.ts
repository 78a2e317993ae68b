import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { AuditEvent } from '../../src/audit/audit.service.js';
import { CLI_AUTHORITY } from '../../src/cli/command.js';
import {
  REGISTRATION_TOKENS_COLLECTION,
  registrationTokenId,
} from '../../src/clients/registration-token.service.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { REDIRECT_URI, authorizationRequest, redeem } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';
import type { Reply as PageReply } from '../support/user-agent.js';
import { buildCore } from '../../src/core/core.js';

const USER = { email: 'reg@example.com', password: 'correct horse battery staple', name: 'Reg Istrant' };

interface Reply {
  status: number;
  body: Record<string, unknown>;
  wwwAuthenticate: string | null;
}

interface Registered {
  client_id: string;
  client_secret: string;
  registration_access_token: string;
  registration_client_uri: string;
  redirect_uris: string[];
  [key: string]: unknown;
}

async function call(url: string, init: { method: string; token?: string; body?: unknown }): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method: init.method,
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    wwwAuthenticate: res.headers.get('www-authenticate'),
  };
}

const webClient = (extra: Record<string, unknown> = {}) => ({
  client_name: 'Registered RP',
  redirect_uris: [REDIRECT_URI],
  ...extra,
});

describe('dynamic client registration (RFC 7591) and management (RFC 7592)', () => {
  let server: TestServer;
  let reg: string;

  const register = (body: unknown, token?: string) => call(reg, { method: 'POST', body, ...(token ? { token } : {}) });
  const newToken = async (options: { expiresInSeconds?: number; uses?: number } = { uses: 1 }) =>
    (await server.deps.registrationTokens.create(options)).token;
  const clientCount = () => server.deps.db.collection('clients').countDocuments();

  beforeAll(async () => {
    server = await startTestServer('registration', { env: { DYNAMIC_REGISTRATION: 'true' } });
    reg = `${server.url}/reg`;
    await server.deps.accounts.create({ ...USER, emailVerified: true });
  });

  afterAll(async () => {
    await server.close();
  });

  it('is advertised in discovery', async () => {
    const res = await fetch(`${server.url}/.well-known/openid-configuration`);
    const metadata = (await res.json()) as Record<string, unknown>;
    expect(metadata.registration_endpoint).toBe(reg);
  });

  it('refuses a registration without an initial access token (401 invalid_token) and stores nothing', async () => {
    const before = await clientCount();
    const reply = await register(webClient());
    expect(reply.status).toBe(401);
    expect(reply.body.error).toBe('invalid_token');
    expect(reply.wwwAuthenticate).toMatch(/^Bearer /);
    expect(await clientCount()).toBe(before);

    const bogus = await register(webClient(), 'not-a-token');
    expect(bogus.status).toBe(401);
    expect(bogus.body.error).toBe('invalid_token');
  });

  it('registers once with a one-use token, and refuses the second registration', async () => {
    const token = await newToken({ uses: 1 });
    const before = await clientCount();

    const first = await register(webClient(), token);
    expect(first.status).toBe(201);
    const client = first.body as unknown as Registered;
    expect(client.client_id).toMatch(/^[A-Za-z0-9]{22}$/);
    // URL-safe, as for admin-made clients (some RPs put it in Basic auth unencoded).
    expect(client.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(client.registration_access_token).toEqual(expect.any(String));
    expect(client.registration_client_uri).toBe(`${reg}/${client.client_id}`);
    expect(client.dynamically_registered).toBe(true);
    // A registrant without `scope` gets the OIDC scopes only.
    expect(client.scope).toBe('openid offline_access email profile');

    const second = await register(webClient({ client_name: 'Second' }), token);
    expect(second.status).toBe(401);
    expect(second.body.error).toBe('invalid_token');
    expect(await clientCount()).toBe(before + 1);

    const id = registrationTokenId(token);
    const [view] = (await server.deps.registrationTokens.list()).filter((v) => v.id === id);
    expect(view).toMatchObject({ usesAllowed: 1, usesCount: 1, revoked: false });

    const { events } = await server.deps.audit.list({ action: 'registration_token.used', target: id }, { limit: 10 });
    expect(events.map((e: AuditEvent) => [e.outcome, e.reason ?? null, e.clientId ?? null])).toEqual([
      ['failure', 'uses_exhausted', null],
      ['success', null, client.client_id],
    ]);
    expect(JSON.stringify(events)).not.toContain(token);
  });

  it('admits exactly one of ten concurrent registrations with a one-use token', async () => {
    const token = await newToken({ uses: 1 });
    const before = await clientCount();
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => register(webClient({ client_name: `Racer ${i}` }), token)),
    );
    const statuses = replies.map((r) => r.status).sort();
    expect(statuses).toEqual([201, ...Array<number>(9).fill(401)]);
    expect(await clientCount()).toBe(before + 1);
  });

  it('admits as many registrations as a token allows, concurrent or not', async () => {
    const token = await newToken({ uses: 3 });
    const replies = await Promise.all(Array.from({ length: 6 }, () => register(webClient(), token)));
    expect(replies.filter((r) => r.status === 201)).toHaveLength(3);
    expect(replies.filter((r) => r.status === 401)).toHaveLength(3);
  });

  it('refuses an expired token and a revoked one', async () => {
    const expired = await newToken({ expiresInSeconds: 60, uses: 5 });
    // Let the minute pass: the adapter's expiry and the token's own exp both in the past.
    const past = Math.floor(Date.now() / 1000) - 10;
    const records = server.deps.db.collection<{ _id: string; payload: string; expiresAt: Date | null }>(
      collectionName('InitialAccessToken'),
    );
    const record = await records.findOne({ _id: expired });
    expect(record).not.toBeNull();
    await records.updateOne(
      { _id: expired },
      { $set: { expiresAt: new Date(past * 1000), payload: JSON.stringify({ ...JSON.parse(record!.payload), exp: past }) } },
    );
    const late = await register(webClient(), expired);
    expect(late.status).toBe(401);
    expect(late.body.error).toBe('invalid_token');

    const revoked = await newToken({ uses: 5 });
    expect(await server.deps.registrationTokens.revoke(registrationTokenId(revoked))).toBe(true);
    const refused = await register(webClient(), revoked);
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_token');
  });

  it('refuses bad redirect URIs with invalid_redirect_uri, without using up the token', async () => {
    const token = await newToken({ uses: 1 });
    const before = await clientCount();
    for (const uri of ['http://rp.example.com/cb', 'https://rp.example.com/cb#frag', 'https://*.example.com/cb', 'javascript:alert(1)']) {
      const reply = await register(webClient({ redirect_uris: [uri] }), token);
      expect({ uri, status: reply.status, error: reply.body.error }).toEqual({ uri, status: 400, error: 'invalid_redirect_uri' });
    }
    // Refused by the provider's own checks (after ours), also before a use is taken.
    const unsupported = await register(webClient({ response_types: ['token'] }), token);
    expect(unsupported.status).toBe(400);
    expect(unsupported.body.error).toBe('invalid_client_metadata');
    expect(await clientCount()).toBe(before);

    // The one use is still there.
    expect((await register(webClient(), token)).status).toBe(201);
  });

  it('keeps registrants to the house rules: no admin scopes, no foreign grant types, no privileged metadata', async () => {
    const token = await newToken({ uses: 10 });
    const adminScope = await register(webClient({ scope: 'openid admin:clients:write' }), token);
    expect(adminScope.status).toBe(400);
    expect(adminScope.body.error).toBe('invalid_client_metadata');

    const implicit = await register(webClient({ grant_types: ['implicit'] }), token);
    expect(implicit.status).toBe(400);
    expect(implicit.body.error).toBe('invalid_client_metadata');

    const keyAuth = await register(webClient({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://rp.example.com/jwks' }), token);
    expect(keyAuth.status).toBe(400);
    expect(keyAuth.body.error).toBe('invalid_client_metadata');

    // Metadata only an admin may set is ignored (RFC 7591 §2: not understood), not stored.
    const privileged = await register(
      webClient({
        first_party: true,
        dynamically_registered: false,
        access_token_ttl: 10 * 365 * 24 * 3600,
        sector_identifier_uri: 'https://rp.example.com/s',
        require_mfa: true,
      }),
      token,
    );
    expect(privileged.status).toBe(201);
    const stored = await server.deps.clients.find(String(privileged.body.client_id));
    expect(stored).toMatchObject({ dynamically_registered: true, require_mfa: true });
    expect(stored).not.toHaveProperty('first_party');
    expect(stored).not.toHaveProperty('sector_identifier_uri');
    expect(stored).not.toHaveProperty('access_token_ttl');
  });

  it('refuses the client_credentials grant and non-https logo, client, policy and terms URLs, storing nothing and using no use', async () => {
    const token = await newToken({ uses: 1 });
    const before = await clientCount();
    const id = registrationTokenId(token);
    const refused: [string, Record<string, unknown>][] = [
      ['client_credentials', { grant_types: ['client_credentials'], response_types: [] }],
      ['client_credentials with a code flow', { grant_types: ['authorization_code', 'client_credentials'] }],
      ['http logo_uri', { logo_uri: 'http://rp.example.com/logo.png' }],
      ['data logo_uri', { logo_uri: 'data:image/png;base64,iVBORw0KGgo=' }],
      ['javascript client_uri', { client_uri: 'javascript:alert(1)' }],
      ['http policy_uri', { policy_uri: 'http://rp.example.com/privacy' }],
      ['http tos_uri', { tos_uri: 'http://rp.example.com/terms' }],
      ['a tos_uri that is not a URL', { tos_uri: 'terms' }],
    ];
    for (const [what, metadata] of refused) {
      const reply = await register(webClient(metadata), token);
      expect({ what, status: reply.status, error: reply.body.error }).toEqual({ what, status: 400, error: 'invalid_client_metadata' });
      expect(reply.body).not.toHaveProperty('client_secret');
    }
    expect(await clientCount()).toBe(before);
    expect((await server.deps.registrationTokens.list()).find((v) => v.id === id)).toMatchObject({ usesCount: 0 });

    // https URLs are fine, and the one use is still there.
    const https = {
      logo_uri: 'https://rp.example.com/logo.png',
      client_uri: 'https://rp.example.com/',
      policy_uri: 'https://rp.example.com/privacy',
      tos_uri: 'https://rp.example.com/terms',
    };
    const registered = await register(webClient(https), token);
    expect(registered.status).toBe(201);
    expect(registered.body).toMatchObject(https);
    expect(await clientCount()).toBe(before + 1);

    // The same rules on an RFC 7592 update, which leaves the client as it was.
    const client = registered.body as unknown as Registered;
    for (const body of [
      { client_id: client.client_id, redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'client_credentials'] },
      { client_id: client.client_id, redirect_uris: [REDIRECT_URI], logo_uri: 'http://rp.example.com/logo.png' },
    ]) {
      const update = await call(client.registration_client_uri, { method: 'PUT', token: client.registration_access_token, body });
      expect(update.status).toBe(400);
      expect(update.body.error).toBe('invalid_client_metadata');
    }
    const stored = await server.deps.clients.find(client.client_id);
    expect(stored).toMatchObject(https);
    expect(stored?.grant_types).not.toContain('client_credentials');
  });

  it('a registered client is stored marked dynamically_registered, its secret sealed, and completes a code flow with PKCE', async () => {
    const token = await newToken({ uses: 1 });
    const reply = await register(webClient({ grant_types: ['authorization_code', 'refresh_token'] }), token);
    expect(reply.status).toBe(201);
    const client = reply.body as unknown as Registered;

    const raw = await server.deps.db
      .collection<{ _id: string; metadata: string; secretSealed: string | null }>('clients')
      .findOne({ _id: client.client_id });
    expect(raw).not.toBeNull();
    expect(JSON.parse(raw!.metadata)).toMatchObject({ dynamically_registered: true, redirect_uris: [REDIRECT_URI] });
    expect(raw!.metadata).not.toContain(client.client_secret);
    expect(raw!.secretSealed).toEqual(expect.any(String));
    expect(raw!.secretSealed).not.toContain(client.client_secret);

    const rp = await oidc.discovery(
      new URL(server.url),
      client.client_id,
      { client_secret: client.client_secret },
      oidc.ClientSecretBasic(client.client_secret),
      { execute: [oidc.allowInsecureRequests] },
    );
    const started = await authorizationRequest(rp);
    const seen: PageReply[] = [];
    const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER, { seen });
    expect(callback.location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
    const tokens = await redeem(rp, started, callback);
    expect(tokens.claims()?.aud).toBe(client.client_id);

    // Its consent page says that nobody reviewed the app, and where Allow leads.
    const consent = seen.find((page) => page.body.includes('/confirm"'));
    expect(consent?.body).toContain('id="unreviewed-app"');
    expect(consent?.body).toMatch(/This app registered itself\./);
    expect(consent?.body).toMatch(/Allowing sends you back to <strong>http:\/\/127\.0\.0\.1:9<\/strong>/);

    // PKCE is required of registered clients too (global policy).
    const withoutPkce = new URL(started.url);
    withoutPkce.searchParams.delete('code_challenge');
    withoutPkce.searchParams.delete('code_challenge_method');
    const refused = await new UserAgent(server.url).get(withoutPkce.toString());
    expect(refused.status).toBe(303);
    const error = new URL(refused.location!).searchParams;
    expect([error.get('error'), error.get('error_description')]).toEqual(['invalid_request', 'Authorization Server policy requires PKCE to be used for this request']);
  });

  it('reads, updates and deletes the registration with the registration access token (RFC 7592)', async () => {
    const token = await newToken({ uses: 1 });
    const created = (await register(webClient(), token)).body as unknown as Registered;
    const uri = created.registration_client_uri;

    const read = await call(uri, { method: 'GET', token: created.registration_access_token });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ client_id: created.client_id, redirect_uris: [REDIRECT_URI], client_secret: created.client_secret });

    const wrongToken = await call(uri, { method: 'GET', token: 'nope' });
    expect(wrongToken.status).toBe(401);

    // PUT replaces the metadata (RFC 7592 §2.2); our rules apply to it as to a registration.
    const badUpdate = await call(uri, {
      method: 'PUT',
      token: created.registration_access_token,
      body: { client_id: created.client_id, redirect_uris: ['http://rp.example.com/cb'] },
    });
    expect(badUpdate.status).toBe(400);
    expect(badUpdate.body.error).toBe('invalid_redirect_uri');

    const newUris = ['https://rp.example.com/callback', REDIRECT_URI];
    const updated = await call(uri, {
      method: 'PUT',
      token: created.registration_access_token,
      body: { client_id: created.client_id, client_name: 'Renamed RP', redirect_uris: newUris, first_party: true },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ client_id: created.client_id, client_name: 'Renamed RP', redirect_uris: newUris, dynamically_registered: true });
    expect(updated.body).not.toHaveProperty('first_party');
    // The registration access token rotates on update; the old one is dead.
    const rotated = String(updated.body.registration_access_token);
    expect(rotated).not.toBe(created.registration_access_token);
    expect((await call(uri, { method: 'GET', token: created.registration_access_token })).status).toBe(401);

    const stored = await server.deps.clients.find(created.client_id);
    expect(stored).toMatchObject({ redirect_uris: newUris, client_secret: created.client_secret, dynamically_registered: true });

    const deleted = await call(uri, { method: 'DELETE', token: rotated });
    expect(deleted.status).toBe(204);
    expect(await server.deps.clients.get(created.client_id)).toBeUndefined();
    expect(await server.deps.clients.find(created.client_id)).toBeUndefined();
    expect((await call(uri, { method: 'GET', token: rotated })).status).toBe(401);
  });

  it('accepts a token issued by the command line (its own provider, same records)', async () => {
    // The command line's core: no mintingProvider, so it mints on one of its own.
    const cli = buildCore({ config: server.config, logger: server.deps.logger, connection: server.connection });
    const { token, view } = await cli.registrationTokens.create({ uses: 1 }, CLI_AUTHORITY);
    await cli.close();
    expect(view.id).toBe(registrationTokenId(token));
    expect(await server.deps.db.collection(REGISTRATION_TOKENS_COLLECTION).countDocuments({ _id: view.id } as never)).toBe(1);
    expect((await register(webClient(), token)).status).toBe(201);
    expect((await register(webClient(), token)).status).toBe(401);
  });

  it('never writes an initial or registration access token to the logs', async () => {
    const token = await newToken({ uses: 1 });
    const reply = await register(webClient(), token);
    const rat = String(reply.body.registration_access_token);
    const logs = server.logs.join('\n');
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(rat);
  });
});

describe('dynamic client registration, off by default', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('registration_off');
  });

  afterAll(async () => {
    await server.close();
  });

  it('has no registration endpoint, even with a valid token', async () => {
    const res = await fetch(`${server.url}/.well-known/openid-configuration`);
    const metadata = (await res.json()) as Record<string, unknown>;
    expect(metadata).not.toHaveProperty('registration_endpoint');

    // Tokens can be issued in advance; they do nothing while registration is off.
    const { token } = await server.deps.registrationTokens.create({ uses: 1 });
    const reply = await call(`${server.url}/reg`, { method: 'POST', token, body: webClient() });
    expect(reply.status).toBe(404);
    expect(await server.deps.db.collection('clients').countDocuments({ metadata: /dynamically_registered/ })).toBe(0);
  });
});
