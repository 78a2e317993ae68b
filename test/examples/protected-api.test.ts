import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SignJWT, base64url, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';

import { createProtectedApi, startProtectedApi } from '../../examples/protected-api/protected-api.app.js';
import type { ProtectedApiOptions, RunningApi } from '../../examples/protected-api/protected-api.app.js';

/**
 * The protected-API example against a real issuer on a loopback port: a discovery document and a
 * JWKS for keys generated here, and RFC 9068 access tokens signed with them. Every refusal is
 * checked for its status and its WWW-Authenticate challenge (RFC 6750 §3).
 */

const AUDIENCE = 'https://api.example.test/notes';
const REALM = 'notes-api';

interface SigningKey {
  alg: 'RS256' | 'ES256';
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

async function newKey(alg: SigningKey['alg']): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const kid = `${alg}-${randomUUID()}`;
  return { alg, kid, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** An issuer that serves discovery and its JWKS, and counts how often each is fetched. */
interface TestIssuer {
  url: string;
  published: SigningKey[];
  fetches: { discovery: number; jwks: number };
  failDiscovery: boolean;
  close: () => Promise<void>;
}

async function startIssuer(published: SigningKey[]): Promise<TestIssuer> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') {
      issuer.fetches.discovery++;
      if (issuer.failDiscovery) return void res.writeHead(500).end('{}');
      return void res.end(JSON.stringify({ issuer: issuer.url, jwks_uri: `${issuer.url}/jwks` }));
    }
    if (req.url === '/jwks') {
      issuer.fetches.jwks++;
      return void res.end(JSON.stringify({ keys: issuer.published.map((key) => key.publicJwk) }));
    }
    res.writeHead(404).end('{}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer: TestIssuer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    published,
    fetches: { discovery: 0, jwks: 0 },
    failDiscovery: false,
    close: () => closeServer(server),
  };
  return issuer;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

interface TokenOptions {
  /** Claims to add, replace, or (undefined) leave out. */
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
}

/** An RFC 9068 access token for AUDIENCE, as our server issues them, unless told otherwise. */
async function accessToken(issuer: TestIssuer, key: SigningKey, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = {
    iss: issuer.url,
    aud: AUDIENCE,
    sub: 'person-1',
    client_id: 'notes-app',
    scope: 'openid read:profile notes:read',
    iat: now,
    exp: now + 300,
    jti: randomUUID(),
    ...options.claims,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...options.header })
    .sign(key.privateKey);
}

interface Answer {
  status: number;
  challenge: string | null;
  body: Record<string, unknown>;
}

async function call(api: RunningApi | string, path: string, init: RequestInit & { token?: string } = {}): Promise<Answer> {
  const { token, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
  const response = await fetch(`${typeof api === 'string' ? api : api.url}${path}`, { ...rest, headers });
  const text = await response.text();
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

function invalidToken(answer: Answer, description: string): void {
  expect(answer.status).toBe(401);
  expect(answer.challenge).toBe(`Bearer realm="${REALM}", error="invalid_token", error_description="${description}"`);
}

/** Runs an app built by createProtectedApi with its error events collected (Koa would print them). */
async function startCollectingErrors(options: ProtectedApiOptions): Promise<{ url: string; errors: Error[]; close: () => Promise<void> }> {
  const app = createProtectedApi(options);
  const errors: Error[] = [];
  app.on('error', (error: Error) => errors.push(error));
  const server = createServer(app.callback()).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, errors, close: () => closeServer(server) };
}

describe('protected API example', () => {
  let rsa: SigningKey;
  let ec: SigningKey;
  let issuer: TestIssuer;
  let api: RunningApi;

  beforeAll(async () => {
    [rsa, ec] = await Promise.all([newKey('RS256'), newKey('ES256')]);
    issuer = await startIssuer([rsa, ec]);
    api = await startProtectedApi({ issuer: issuer.url, audience: AUDIENCE, realm: REALM });
  });
  afterAll(async () => {
    await api.close();
    await issuer.close();
  });

  it('answers a valid token with who calls: sub, client_id and the granted scopes', async () => {
    const answer = await call(api, '/me', { token: await accessToken(issuer, rsa) });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ sub: 'person-1', client_id: 'notes-app', scopes: ['openid', 'read:profile', 'notes:read'] });
  });

  it('accepts ES256, typ application/at+jwt, an aud list naming this API, and exp within the clock tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const token of [
      await accessToken(issuer, ec),
      await accessToken(issuer, rsa, { header: { typ: 'application/at+jwt' } }),
      await accessToken(issuer, rsa, { claims: { aud: ['https://other.example.test', AUDIENCE] } }),
      await accessToken(issuer, rsa, { claims: { exp: now - 2 } }),
    ]) {
      expect((await call(api, '/notes', { token })).status).toBe(200);
    }
  });

  it('challenges a request without credentials without an error code (RFC 6750 §3.1)', async () => {
    const noBearer: Array<Record<string, string>> = [{}, { authorization: 'Basic bm90ZXM6YXBw' }, { authorization: 'DPoP abc' }];
    for (const headers of noBearer) {
      const answer = await call(api, '/me', { headers });
      expect(answer.status).toBe(401);
      expect(answer.challenge).toBe(`Bearer realm="${REALM}"`);
    }
  });

  it('answers 400 invalid_request for a malformed Authorization header or a token in the query', async () => {
    const token = await accessToken(issuer, rsa);
    const cases: Array<[string, RequestInit & { token?: string }]> = [
      ['/me', { headers: { authorization: 'Bearer' } }],
      ['/me', { headers: { authorization: 'Bearer two words' } }],
      ['/me', { headers: { authorization: `Bearer ${token}, Bearer ${token}` } }],
      [`/me?access_token=${token}`, { token }],
      [`/me?access_token=${token}`, {}],
    ];
    for (const [path, init] of cases) {
      const answer = await call(api, path, init);
      expect(answer.status).toBe(400);
      expect(answer.challenge).toMatch(new RegExp(`^Bearer realm="${REALM}", error="invalid_request", error_description="[^"]+"$`));
      expect(answer.body.error).toBe('invalid_request');
    }
  });

  it('refuses malformed, expired, not-yet-valid, other-audience and other-issuer tokens', async () => {
    const now = Math.floor(Date.now() / 1000);
    invalidToken(await call(api, '/me', { token: 'not-a-jwt' }), 'the token is malformed');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { claims: { iat: now - 600, exp: now - 60 } }) }), 'the token expired');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { claims: { nbf: now + 60 } }) }), 'the token is not valid yet');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { claims: { aud: 'https://other.example.test' } }) }), 'the token is for another audience');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { claims: { iss: 'https://evil.example.test' } }) }), 'the token is from another issuer');
  });

  it('refuses an ID token (typ JWT), a token without typ, and one missing a required claim', async () => {
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { header: { typ: 'JWT' } }) }), 'the token is not an at+jwt access token');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { header: { typ: undefined } }) }), 'the token is not an at+jwt access token');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { claims: { client_id: undefined } }) }), 'the client_id claim is missing or invalid');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, rsa, { claims: { jti: undefined } }) }), 'the jti claim is missing or invalid');
  });

  it('refuses a sender-constrained (DPoP-bound) token presented as Bearer', async () => {
    const token = await accessToken(issuer, rsa, { claims: { cnf: { jkt: base64url.encode('thumbprint') } } });
    invalidToken(await call(api, '/me', { token }), 'the token is sender-constrained');
  });

  it('refuses tokens signed by a key the issuer does not publish, even under a published kid', async () => {
    const stranger = await newKey('RS256');
    invalidToken(await call(api, '/me', { token: await accessToken(issuer, stranger) }), 'the signature does not verify with the issuer keys');
    const forged = await accessToken(issuer, { ...stranger, kid: rsa.kid });
    invalidToken(await call(api, '/me', { token: forged }), 'the signature does not verify with the issuer keys');
  });

  it('refuses alg none and HS256 keyed with the issuer public key', async () => {
    const payload = base64url.encode(JSON.stringify({ iss: issuer.url, aud: AUDIENCE, sub: 'person-1', client_id: 'notes-app', scope: 'read:profile', iat: 1, exp: 4102444800, jti: 'x' }));
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }))}.${payload}.`;
    invalidToken(await call(api, '/me', { token: none }), 'the signing algorithm is not allowed');
    const hmacKey = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    const hs256 = await new SignJWT({ iss: issuer.url, aud: AUDIENCE, sub: 'person-1', client_id: 'notes-app', scope: 'read:profile', jti: 'y' })
      .setProtectedHeader({ alg: 'HS256', kid: rsa.kid, typ: 'at+jwt' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(hmacKey);
    invalidToken(await call(api, '/me', { token: hs256 }), 'the signing algorithm is not allowed');
  });

  it('answers 403 insufficient_scope naming the scope the route needs', async () => {
    const readOnly = await accessToken(issuer, rsa, { claims: { scope: 'notes:read' } });
    const answer = await call(api, '/notes', { token: readOnly, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"hi"}' });
    expect(answer.status).toBe(403);
    expect(answer.challenge).toBe(`Bearer realm="${REALM}", error="insufficient_scope", error_description="the token lacks a scope", scope="notes:write"`);
    const noScope = await call(api, '/me', { token: await accessToken(issuer, rsa, { claims: { scope: undefined } }) });
    expect(noScope.status).toBe(403);
    expect(noScope.challenge).toContain('scope="read:profile"');
    // The refused write left nothing behind.
    expect((await call(api, '/notes', { token: readOnly })).body.notes).toEqual([]);
  });

  it('keeps each subject notes apart, and refuses a bad body without storing anything', async () => {
    const writer = await accessToken(issuer, rsa, { claims: { sub: 'writer', scope: 'notes:read notes:write' } });
    const post = (body: string, contentType = 'application/json') =>
      call(api, '/notes', { token: writer, method: 'POST', headers: { 'content-type': contentType }, body });
    const created = await post(JSON.stringify({ text: 'buy milk' }));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ sub: 'writer', client_id: 'notes-app', note: { text: 'buy milk', createdBy: 'notes-app' } });
    for (const bad of [await post('{"text":'), await post('{"text":""}'), await post(JSON.stringify({ text: 'x'.repeat(501) })), await post(JSON.stringify({ text: 'y'.repeat(5000) })), await post('text=hi', 'application/x-www-form-urlencoded')]) {
      expect(bad.status).toBe(400);
      expect(bad.body.error).toBe('invalid_request');
    }
    const mine = await call(api, '/notes', { token: writer });
    expect(mine.body.notes).toEqual([created.body.note]);
    const someoneElse = await call(api, '/notes', { token: await accessToken(issuer, rsa, { claims: { sub: 'reader' } }) });
    expect(someoneElse.body).toMatchObject({ sub: 'reader', notes: [] });
  });

  it('takes its scope names from the options', async () => {
    const custom = await startProtectedApi({ issuer: issuer.url, audience: AUDIENCE, realm: REALM, scopes: { me: 'profile' } });
    try {
      const withDefault = await call(custom, '/me', { token: await accessToken(issuer, rsa) });
      expect(withDefault.status).toBe(403);
      expect(withDefault.challenge).toContain('scope="profile"');
      expect((await call(custom, '/me', { token: await accessToken(issuer, rsa, { claims: { scope: 'profile' } }) })).status).toBe(200);
      expect((await call(custom, '/notes', { token: await accessToken(issuer, rsa) })).status).toBe(200);
    } finally {
      await custom.close();
    }
  });
});

describe('protected API example and the issuer keys', () => {
  it('fetches discovery and the JWKS once for 100 concurrent first requests', async () => {
    const key = await newKey('ES256');
    const issuer = await startIssuer([key]);
    const api = await startProtectedApi({ issuer: issuer.url, audience: AUDIENCE, realm: REALM });
    try {
      const tokens = await Promise.all(Array.from({ length: 100 }, () => accessToken(issuer, key)));
      const answers = await Promise.all(tokens.map((token) => call(api, '/me', { token })));
      expect(answers.map((answer) => answer.status)).toEqual(tokens.map(() => 200));
      expect(issuer.fetches).toEqual({ discovery: 1, jwks: 1 });
    } finally {
      await api.close();
      await issuer.close();
    }
  });

  it('accepts tokens signed with a rotated-in key (unknown kid → JWKS refetched)', async () => {
    const oldKey = await newKey('RS256');
    const issuer = await startIssuer([oldKey]);
    const api = await startProtectedApi({ issuer: issuer.url, audience: AUDIENCE, realm: REALM, jwksCooldownMs: 0 });
    try {
      expect((await call(api, '/me', { token: await accessToken(issuer, oldKey) })).status).toBe(200);
      const newKeyPair = await newKey('RS256');
      issuer.published = [newKeyPair, oldKey];
      expect((await call(api, '/me', { token: await accessToken(issuer, newKeyPair) })).status).toBe(200);
      expect((await call(api, '/me', { token: await accessToken(issuer, oldKey) })).status).toBe(200);
      expect(issuer.fetches).toEqual({ discovery: 1, jwks: 2 });
      // Without a kid, two published RSA keys could match: refused, as a token problem (401).
      const anonymous = await accessToken(issuer, newKeyPair, { header: { kid: undefined } });
      expect((await call(api, '/me', { token: anonymous })).challenge).toBe(
        `Bearer realm="${REALM}", error="invalid_token", error_description="the token does not name its key"`,
      );
    } finally {
      await api.close();
      await issuer.close();
    }
  });

  it('does not let unknown kids make it fetch the JWKS more than once per cooldown', async () => {
    const key = await newKey('RS256');
    const issuer = await startIssuer([key]);
    const api = await startProtectedApi({ issuer: issuer.url, audience: AUDIENCE, realm: REALM });
    try {
      expect((await call(api, '/me', { token: await accessToken(issuer, key) })).status).toBe(200);
      for (let i = 0; i < 10; i++) {
        const stranger = await newKey('ES256');
        expect((await call(api, '/me', { token: await accessToken(issuer, stranger) })).status).toBe(401);
      }
      expect(issuer.fetches.jwks).toBe(1);
    } finally {
      await api.close();
      await issuer.close();
    }
  });

  it('answers 503 (not 401) while the issuer cannot be reached, logs why, and recovers', async () => {
    const key = await newKey('RS256');
    const issuer = await startIssuer([key]);
    const token = await accessToken(issuer, key);
    const api = await startCollectingErrors({ issuer: issuer.url, audience: AUDIENCE, realm: REALM });
    const unreachable = await startCollectingErrors({ issuer: 'http://127.0.0.1:1', audience: AUDIENCE, realm: REALM });
    try {
      const down = await call(unreachable.url, '/me', { token });
      expect(down.status).toBe(503);
      expect(down.challenge).toBeNull();
      expect(down.body).toEqual({ error: 'temporarily_unavailable', error_description: 'cannot verify access tokens now' });
      expect(unreachable.errors.map((error) => error.message)).toEqual(['fetch failed']);

      issuer.failDiscovery = true;
      expect((await call(api.url, '/me', { token })).status).toBe(503);
      expect(api.errors[0]?.message).toContain('discovery answered 500');
      issuer.failDiscovery = false;
      // The failure was not cached: the next request discovers again.
      expect((await call(api.url, '/me', { token })).status).toBe(200);
      expect(issuer.fetches.discovery).toBe(2);
    } finally {
      await api.close();
      await unreachable.close();
      await issuer.close();
    }
  });

  it('refuses to use a discovery document that names another issuer', async () => {
    const key = await newKey('RS256');
    const issuer = await startIssuer([key]);
    // The same server, named differently: its discovery document says 127.0.0.1, not localhost.
    const otherName = issuer.url.replace('127.0.0.1', 'localhost');
    const api = await startCollectingErrors({ issuer: otherName, audience: AUDIENCE, realm: REALM });
    try {
      const token = await accessToken(issuer, key, { claims: { iss: otherName } });
      expect((await call(api.url, '/me', { token })).status).toBe(503);
      expect(api.errors[0]?.message).toContain('discovery names another issuer');
      expect(issuer.fetches.jwks).toBe(0);
    } finally {
      await api.close();
      await issuer.close();
    }
  });
});
