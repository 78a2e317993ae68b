/**
 * Access tokens for the apps' own APIs (RFC 8707 resource indicators): JWT access tokens (RFC
 * 9068) that verify against our JWKS, opaque ones for introspection by the API, the client's
 * allowed and default resources, consent naming the API and its scopes, refresh downscoping, and
 * invalid_target (never a server error) for everything a client may not have.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';

import { fullAuthority } from '../../src/clients/admin-authority.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, oauthError, redeem, rpFor, userinfoStatus } from '../support/rp.js';
import type { Started, Tokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const USER = { email: 'grace@example.com', password: 'correct horse battery staple', name: 'Grace Hopper' };
const NOTES = 'https://notes.example.com/api';
const LEDGER = 'urn:example:ledger';
const OTHER = 'https://other.example.com/api';
const GONE = 'https://gone.example.com/api';
const NOTES_TTL = 600;
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers are inspected freely in tests
  body: any;
}

describe('API resources: resource indicators and access tokens for the apps’ APIs', () => {
  let server: TestServer;
  let accountId: string;
  let web: CreatedClient;
  let withDefault: CreatedClient;
  let firstParty: CreatedClient;
  let service: CreatedClient;
  let ledgerApi: CreatedClient;
  let bystander: CreatedClient;
  let webRp: oidc.Configuration;
  let jwks: ReturnType<typeof createRemoteJWKSet>;
  /** One browser, signed in after the first test: later flows meet the provider's own consent prompt. */
  let browser: UserAgent;

  const basic = (client: CreatedClient) => `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret ?? '')}`).toString('base64')}`;

  /** A form POST with Basic client authentication; `form` may repeat a name (arrays). */
  const post = async (path: string, client: CreatedClient, form: Record<string, string | string[]>): Promise<Answer> => {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(form)) for (const v of [value].flat()) body.append(name, v);
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: body.toString(),
    });
    const text = await response.text();
    return { status: response.status, body: text.startsWith('{') ? JSON.parse(text) : text };
  };

  const introspect = (client: CreatedClient, token: string) => post('/token/introspection', client, { token });

  /** An authorization request with `resources` appended (repeated `resource` parameters). */
  const withResources = async (rp: oidc.Configuration, extra: Record<string, string>, resources: string[]): Promise<Started> => {
    const started = await authorizationRequest(rp, extra);
    for (const resource of resources) started.url.searchParams.append('resource', resource);
    return started;
  };

  /** Verifies an RFC 9068 access token against the published JWKS; its header and claims. */
  const verifyAccessToken = async (token: string, audience: string) => {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: server.url, audience, typ: 'at+jwt' });
    return { payload, header: protectedHeader };
  };

  const redeemWithout = (rp: oidc.Configuration, started: Started, callback: Reply, parameters: Record<string, string> = {}): Promise<Tokens> =>
    oidc.authorizationCodeGrant(rp, new URL(callback.location!), { pkceCodeVerifier: started.verifier, expectedState: started.state, expectedNonce: started.nonce, idTokenExpected: true }, parameters);

  beforeAll(async () => {
    server = await startTestServer('resource_indicators', { logLevel: 'warn' });
    accountId = (await server.deps.accounts.create({ ...USER, emailVerified: true })).id;
    const { resources, clients } = server.deps;
    ledgerApi = await clients.create({ name: 'Ledger API', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['openid'] });
    bystander = await clients.create({ name: 'Bystander', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['openid'] });
    await resources.create({
      identifier: NOTES,
      name: 'Notes API',
      scopes: [
        { name: 'notes:read', description: 'Read your notes' },
        { name: 'notes:write', description: 'Change your notes' },
      ],
      tokenFormat: 'jwt',
      accessTokenTtl: NOTES_TTL,
    });
    await resources.create({
      identifier: LEDGER,
      name: 'Ledger',
      scopes: [{ name: 'ledger:read', description: 'See your ledger entries' }],
      tokenFormat: 'opaque',
      introspectionClients: [ledgerApi.clientId],
    });
    await resources.create({ identifier: OTHER, name: 'Other API', scopes: [{ name: 'other:read', description: 'Read other things' }] });
    await resources.create({ identifier: GONE, name: 'Soon gone', scopes: [{ name: 'gone:read', description: 'Read what will be gone' }] });
    web = await clients.create({ name: 'Web app', redirectUris: [REDIRECT_URI], allowedResources: [NOTES, LEDGER, GONE] });
    withDefault = await clients.create({ name: 'Default app', redirectUris: [REDIRECT_URI], allowedResources: [NOTES], defaultResource: NOTES });
    firstParty = await clients.create({ name: 'Our own app', redirectUris: [REDIRECT_URI], allowedResources: [NOTES], firstParty: true }, SETUP);
    service = await clients.create({
      name: 'Notes worker',
      grantTypes: ['client_credentials'],
      redirectUris: [],
      tokenEndpointAuthMethod: 'client_secret_basic',
      scopes: ['openid'],
      allowedResources: [NOTES, LEDGER, GONE],
      defaultResource: LEDGER,
    });
    webRp = await rpFor(server, web);
    jwks = createRemoteJWKSet(new URL(webRp.serverMetadata().jwks_uri!));
    browser = new UserAgent(server.url);
  });

  afterAll(async () => {
    await server?.close();
  });

  it('code + PKCE with `resource`: consent names the API and its scopes; a JWT access token for it (typ at+jwt, aud, scope, lifetime) and an ID token', async () => {
    const started = await withResources(webRp, { scope: 'openid email notes:read undefined:scope offline_access', prompt: 'consent' }, [NOTES]);
    const seen: Reply[] = [];
    const callback = await signInThroughPages(browser, started.url.toString(), USER, { seen });
    expect(callbackParams(callback).get('code')).toBeTruthy();

    // The sign-in's own consent step (a browser without a session: one interaction).
    const consent = seen.find((page) => page.body.includes('/confirm"'))!.body;
    expect(consent).toContain('Notes API');
    expect(consent).toContain('Read your notes');
    expect(consent).toContain('See your email address');
    // Not asked for, and not defined by any resource named: neither shown nor granted.
    expect(consent).not.toContain('Change your notes');
    expect(consent).not.toContain('undefined:scope');

    // No `resource` at the token endpoint: the granted API's scopes pick its token (useGrantedResource).
    const tokens = await redeem(webRp, started, callback);
    expect(tokens.id_token).toBeTruthy();
    // The access token cannot reach userinfo, so the ID token carries the scope claims itself.
    expect(tokens.claims()).toMatchObject({ sub: accountId, aud: web.clientId, email: USER.email });
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.scope).toBe('notes:read');
    expect(tokens.expires_in).toBe(NOTES_TTL);

    const { header, payload } = await verifyAccessToken(tokens.access_token, NOTES);
    expect(header).toMatchObject({ typ: 'at+jwt', alg: 'RS256' });
    expect(typeof header.kid).toBe('string');
    expect(payload).toMatchObject({ iss: server.url, aud: NOTES, sub: accountId, client_id: web.clientId, scope: 'notes:read' });
    expect(payload.exp! - payload.iat!).toBe(NOTES_TTL);
    expect(typeof payload.jti).toBe('string');

    // RFC 8707: a token whose audience is an API is not a token for userinfo.
    const userinfo = await userinfoStatus(webRp, tokens.access_token);
    expect(userinfo.status).toBe(401);
    expect(userinfo.wwwAuthenticate).toContain('invalid_token');
    // The library does not introspect structured (JWT) tokens, even for the client they were issued to.
    expect(await introspect(web, tokens.access_token)).toMatchObject({ status: 400, body: { error: 'unsupported_token_type' } });

    // Refresh naming the resource: a fresh token for it.
    const refreshed = await oidc.refreshTokenGrant(webRp, tokens.refresh_token!, { resource: NOTES });
    const again = await verifyAccessToken(refreshed.access_token, NOTES);
    expect(again.payload).toMatchObject({ aud: NOTES, scope: 'notes:read', sub: accountId });
    // Naming one that was not granted: invalid_target (RFC 8707 §2.2).
    expect(await oauthError(oidc.refreshTokenGrant(webRp, refreshed.refresh_token ?? tokens.refresh_token!, { resource: LEDGER }))).toBe('invalid_target');
  });

  it('a signed-in browser asking for two APIs meets the provider’s consent prompt; each token carries only its own API’s scopes; refresh downscopes to one', async () => {
    const started = await withResources(webRp, { scope: 'openid notes:read notes:write ledger:read offline_access', prompt: 'consent' }, [NOTES, LEDGER]);
    const seen: Reply[] = [];
    const callback = await signInThroughPages(browser, started.url.toString(), USER, { seen });
    const consent = seen.find((page) => page.body.includes('/confirm"'))!.body;
    expect(seen.some((page) => page.body.includes('/login"'))).toBe(false);
    expect(consent).toContain('Notes API');
    expect(consent).toContain('Change your notes');
    expect(consent).toContain('Ledger');
    expect(consent).toContain('See your ledger entries');

    // Two granted, no default: the token request names one (opaque, for the ledger).
    const tokens = await redeemWithout(webRp, started, callback, { resource: LEDGER });
    expect(tokens.scope).toBe('ledger:read');
    expect(() => decodeProtectedHeader(tokens.access_token)).toThrow();
    // Not for userinfo either: it carries only the ledger's scope (no `openid`), and its audience is the ledger.
    const userinfo = await userinfoStatus(webRp, tokens.access_token);
    expect(userinfo.status).toBe(403);
    expect(userinfo.wwwAuthenticate).toContain('insufficient_scope');

    // The API named in introspectionClients sees it; the client it was issued to too; nobody else.
    const byApi = await introspect(ledgerApi, tokens.access_token);
    expect(byApi).toMatchObject({ status: 200, body: { active: true, aud: LEDGER, scope: 'ledger:read', client_id: web.clientId, sub: accountId } });
    expect((await introspect(web, tokens.access_token)).body).toMatchObject({ active: true, aud: LEDGER });
    expect(await introspect(bystander, tokens.access_token)).toEqual({ status: 200, body: { active: false } });
    // The ledger's client may not see other tokens of the web app (its refresh token has no audience).
    expect((await introspect(ledgerApi, tokens.refresh_token!)).body).toEqual({ active: false });

    // Refresh for the other granted API: a JWT with only that API's scopes.
    const forNotes = await oidc.refreshTokenGrant(webRp, tokens.refresh_token!, { resource: NOTES });
    const { payload } = await verifyAccessToken(forNotes.access_token, NOTES);
    expect(payload.scope).toBe('notes:read notes:write');
    // And downscoped further with `scope` (a subset of the refresh token's).
    const readOnly = await oidc.refreshTokenGrant(webRp, forNotes.refresh_token ?? tokens.refresh_token!, { resource: NOTES, scope: 'openid notes:read' });
    expect((await verifyAccessToken(readOnly.access_token, NOTES)).payload.scope).toBe('notes:read');
  });

  it('two APIs granted, no default, no `resource` at the token endpoint: invalid_target', async () => {
    const started = await withResources(webRp, { scope: 'openid notes:read ledger:read' }, [NOTES, LEDGER]);
    const callback = await signInThroughPages(browser, started.url.toString(), USER);
    expect(await oauthError(redeemWithout(webRp, started, callback))).toBe('invalid_target');
  });

  it('only OpenID Connect scopes and no `resource`: a token for userinfo, as before', async () => {
    const started = await authorizationRequest(webRp, { scope: 'openid email' });
    const tokens = await redeem(webRp, started, await signInThroughPages(browser, started.url.toString(), USER));
    expect(() => decodeProtectedHeader(tokens.access_token)).toThrow();
    expect(await oidc.fetchUserInfo(webRp, tokens.access_token, accountId)).toMatchObject({ sub: accountId, email: USER.email });
  });

  it('default_resource: a request without `resource` is for it; one with only OpenID Connect scopes still gets a userinfo token', async () => {
    const rp = await rpFor(server, withDefault);
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp, { scope: 'openid notes:write' });
    const seen: Reply[] = [];
    const tokens = await redeem(rp, started, await signInThroughPages(agent, started.url.toString(), USER, { seen }));
    expect(seen.find((page) => page.body.includes('/confirm"'))!.body).toContain('Change your notes');
    const { payload } = await verifyAccessToken(tokens.access_token, NOTES);
    expect(payload).toMatchObject({ aud: NOTES, scope: 'notes:write', client_id: withDefault.clientId });

    const plain = await authorizationRequest(rp, { scope: 'openid email' });
    const plainTokens = await redeem(rp, plain, await signInThroughPages(agent, plain.url.toString(), USER));
    expect(await oidc.fetchUserInfo(rp, plainTokens.access_token, accountId)).toMatchObject({ email: USER.email });
  });

  it('several APIs granted and a default_resource among them: a token request without `resource` gets the default one', async () => {
    const client = await server.deps.clients.create({ name: 'Two APIs', redirectUris: [REDIRECT_URI], allowedResources: [NOTES, LEDGER], defaultResource: LEDGER });
    const rp = await rpFor(server, client);
    const started = await withResources(rp, { scope: 'openid notes:read ledger:read offline_access', prompt: 'consent' }, [NOTES, LEDGER]);
    const tokens = await redeem(rp, started, await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER));
    expect(tokens.scope).toBe('ledger:read');
    expect((await introspect(ledgerApi, tokens.access_token)).body).toMatchObject({ active: true, aud: LEDGER, scope: 'ledger:read' });
    // The other granted API by name, on refresh.
    const forNotes = await oidc.refreshTokenGrant(rp, tokens.refresh_token!, { resource: NOTES });
    expect((await verifyAccessToken(forNotes.access_token, NOTES)).payload.scope).toBe('notes:read');
  });

  it('JWT access tokens are signed RS256, or ES256 for a client that asked for ES256 ID tokens', async () => {
    const client = await server.deps.clients.create({ name: 'EC app', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['openid'], allowedResources: [NOTES] });
    // The admin input has no field for it; a dynamically registered client can set it (RFC 7591).
    const clients = server.deps.db.collection<{ _id: string; metadata: string }>('clients');
    const record = await clients.findOne({ _id: client.clientId });
    await clients.updateOne({ _id: client.clientId }, { $set: { metadata: JSON.stringify({ ...JSON.parse(record!.metadata), id_token_signed_response_alg: 'ES256' }) } });
    const answer = await post('/token', client, { grant_type: 'client_credentials', resource: NOTES, scope: 'notes:read' });
    const { header, payload } = await verifyAccessToken(answer.body.access_token as string, NOTES);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(payload.client_id).toBe(client.clientId);
  });

  it('a first-party client (no consent page) gets the API scopes it asks for, on a later sign-in too', async () => {
    const rp = await rpFor(server, firstParty);
    const agent = new UserAgent(server.url);
    const first = await withResources(rp, { scope: 'openid notes:read' }, [NOTES]);
    const seen: Reply[] = [];
    const tokens = await redeem(rp, first, await signInThroughPages(agent, first.url.toString(), USER, { seen }));
    expect(seen.some((page) => page.body.includes('/confirm"'))).toBe(false);
    expect((await verifyAccessToken(tokens.access_token, NOTES)).payload.scope).toBe('notes:read');

    const second = await withResources(rp, { scope: 'openid notes:read notes:write' }, [NOTES]);
    const seenAgain: Reply[] = [];
    const more = await redeem(rp, second, await signInThroughPages(agent, second.url.toString(), USER, { seen: seenAgain }));
    expect(seenAgain.some((page) => page.body.includes('/confirm"') || page.body.includes('/login"'))).toBe(false);
    expect((await verifyAccessToken(more.access_token, NOTES)).payload.scope).toBe('notes:read notes:write');
  });

  it('client_credentials with `resource`: a JWT for the API with the scopes it defines; without: the default resource', async () => {
    const answer = await post('/token', service, { grant_type: 'client_credentials', resource: NOTES, scope: 'notes:read notes:write ledger:read' });
    expect(answer.status).toBe(200);
    const { header, payload } = await verifyAccessToken(answer.body.access_token as string, NOTES);
    expect(header.typ).toBe('at+jwt');
    expect(payload).toMatchObject({ aud: NOTES, sub: service.clientId, client_id: service.clientId, scope: 'notes:read notes:write' });
    expect(answer.body).toMatchObject({ token_type: 'Bearer', expires_in: NOTES_TTL, scope: 'notes:read notes:write' });

    const byDefault = await post('/token', service, { grant_type: 'client_credentials', scope: 'ledger:read' });
    expect(byDefault).toMatchObject({ status: 200, body: { scope: 'ledger:read' } });
    expect((await introspect(ledgerApi, byDefault.body.access_token as string)).body).toMatchObject({ active: true, aud: LEDGER, client_id: service.clientId, scope: 'ledger:read' });
    expect((await introspect(bystander, byDefault.body.access_token as string)).body).toEqual({ active: false });
  });

  it('refuses with invalid_target (4xx, never 5xx): a resource the client may not use, an unknown one, a malformed one', async () => {
    const refused = [OTHER, 'https://unknown.example.com/api', 'not a uri', `${NOTES}#fragment`, 'x'.repeat(5000), server.url, `${NOTES}/`];
    for (const resource of refused) {
      const answer = await post('/token', service, { grant_type: 'client_credentials', resource, scope: 'notes:read' });
      expect({ resource: resource.slice(0, 40), status: answer.status, error: answer.body.error }).toEqual({ resource: resource.slice(0, 40), status: 400, error: 'invalid_target' });
    }
    // An empty `resource` is taken as none named (the library's reading): no audience, so none of the API's scopes.
    const empty = await post('/token', service, { grant_type: 'client_credentials', resource: '', scope: 'notes:read' });
    expect(empty.status).toBe(200);
    expect(empty.body.scope).toBeUndefined();
    // Two resources where the grant takes one.
    expect((await post('/token', service, { grant_type: 'client_credentials', resource: [NOTES, LEDGER] })).body.error).toBe('invalid_target');
    // A client with no allowed resources.
    expect((await post('/token', bystander, { grant_type: 'client_credentials', resource: NOTES })).body.error).toBe('invalid_target');

    // At the authorization endpoint: back to the client with the error (the redirect URI is known).
    for (const resource of [OTHER, 'https://unknown.example.com/api', 'not a uri', `${NOTES}#fragment`, 'x'.repeat(3000), `${NOTES}?q=1`]) {
      const started = await withResources(webRp, { scope: 'openid notes:read' }, [resource]);
      const reply = await new UserAgent(server.url).get(started.url.toString());
      expect(reply.status).toBeLessThan(500);
      expect(callbackParams(reply).get('error')).toBe('invalid_target');
    }
    // One allowed and one not: the whole request is refused.
    const mixed = await withResources(webRp, { scope: 'openid notes:read' }, [NOTES, OTHER]);
    expect(callbackParams(await new UserAgent(server.url).get(mixed.url.toString())).get('error')).toBe('invalid_target');
    // The same identifier twice is one resource.
    const twice = await withResources(webRp, { scope: 'openid notes:read' }, [NOTES, NOTES]);
    const reply = await new UserAgent(server.url).get(twice.url.toString());
    expect(reply.status).toBe(303);
    expect(reply.location).toContain('/interaction/');
  });

  it('a deleted resource: new requests for it get invalid_target, other resources still work', async () => {
    expect((await post('/token', service, { grant_type: 'client_credentials', resource: GONE, scope: 'gone:read' })).status).toBe(200);
    const started = await withResources(webRp, { scope: 'openid gone:read offline_access', prompt: 'consent' }, [GONE]);
    const tokens = await redeem(webRp, started, await signInThroughPages(browser, started.url.toString(), USER));
    expect((await verifyAccessToken(tokens.access_token, GONE)).payload.scope).toBe('gone:read');

    expect(await server.deps.resources.remove(GONE)).toBe(true);

    expect(await post('/token', service, { grant_type: 'client_credentials', resource: GONE, scope: 'gone:read' })).toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    const again = await withResources(webRp, { scope: 'openid gone:read' }, [GONE]);
    expect(callbackParams(await browser.get(again.url.toString())).get('error')).toBe('invalid_target');
    expect(await oauthError(oidc.refreshTokenGrant(webRp, tokens.refresh_token!))).toBe('invalid_target');
    expect((await post('/token', service, { grant_type: 'client_credentials', resource: NOTES, scope: 'notes:read' })).status).toBe(200);
  });
});
