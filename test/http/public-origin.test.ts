import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { RawBrowser, freePort, rawHttp } from './raw-client.js';
import type { RawReply } from './raw-client.js';

/**
 * Every URL the server publishes or redirects to is built from ISSUER, never from the request's
 * Host, X-Forwarded-Host/Proto or an absolute-form request target; so a cache in front cannot
 * be poisoned with another host's endpoints. Discovery and JWKS may be cached for a while.
 */

const USER = { email: 'origin@example.com', password: 'a long enough password 42', name: 'Origin Person' };
const EVIL = 'evil.example';

/**
 * Every location the document publishes: the `*_endpoint` and `*_uri` members (RFC 8414 §2),
 * also inside `mtls_endpoint_aliases`. (acr values are URLs too, but names, not locations.)
 */
function locationsIn(metadata: Record<string, unknown>): string[] {
  return Object.entries(metadata).flatMap(([key, value]) => {
    if (key === 'mtls_endpoint_aliases' && value && typeof value === 'object') return locationsIn(value as Record<string, unknown>);
    return /_(endpoint|uri)$/.test(key) && typeof value === 'string' ? [value] : [];
  });
}

function expectIssuerUrls(reply: RawReply, issuer: string): void {
  expect(reply.status).toBe(200);
  const metadata = JSON.parse(reply.body) as Record<string, unknown>;
  expect(metadata.issuer).toBe(issuer);
  const urls = locationsIn(metadata);
  // The endpoints this server certainly publishes are among them.
  for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'end_session_endpoint']) {
    expect(urls).toContain(metadata[key]);
  }
  for (const url of urls) expect({ url, fromIssuer: url.startsWith(`${issuer}/`) }).toEqual({ url, fromIssuer: true });
  expect(reply.body).not.toContain(EVIL);
}

const DISCOVERY = '/.well-known/openid-configuration';

/** The origin-form target (path and query) of an absolute URL. */
function pathOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
}

describe('published URLs come from ISSUER (no trusted proxy)', () => {
  let server: TestServer;
  let client: CreatedClient;

  beforeAll(async () => {
    server = await startTestServer('public_origin', { logLevel: 'warn' });
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    client = await server.deps.clients.create({ name: 'Origin RP', redirectUris: [REDIRECT_URI] });
  });

  afterAll(async () => {
    await server?.close();
  });

  it.each([
    ['Host: evil.example', { target: DISCOVERY, headers: { host: EVIL } }],
    ['Host and X-Forwarded-Host/Proto (ignored without TRUST_PROXY anyway)', { target: DISCOVERY, headers: { host: EVIL, 'x-forwarded-host': EVIL, 'x-forwarded-proto': 'https' } }],
    ['an absolute-form request target', { target: `http://${EVIL}${DISCOVERY}`, headers: { host: EVIL } }],
  ])('discovery requested with %s lists only the issuer’s URLs, cacheable', async (_label, request) => {
    const reply = await rawHttp(server.port, request);
    expectIssuerUrls(reply, server.url);
    expect(reply.headers['cache-control']).toBe('public, max-age=300');
  });

  it('serves the JWKS to any Host, cacheable', async () => {
    const reply = await rawHttp(server.port, { target: '/jwks', headers: { host: EVIL } });
    expect(reply.status).toBe(200);
    expect((JSON.parse(reply.body) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
    expect(reply.headers['cache-control']).toBe('public, max-age=300');
  });

  it('keeps every other answer as it was: pages no-store, errors no-store, others without public caching', async () => {
    const browser = new RawBrowser(server.port);
    const auth = await browser.request('GET', pathOf(authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge })));
    const login = await browser.request('GET', pathOf(new URL(auth.location ?? '', server.url).toString()));
    expect(login.status).toBe(200);
    expect(login.headers['cache-control']).toBe('no-store');
    const missing = await rawHttp(server.port, { target: `${DISCOVERY}/nope`, headers: { accept: 'application/json' } });
    expect(missing.status).toBe(404);
    expect(missing.headers['cache-control']).toBe('no-store');
    const health = await rawHttp(server.port, { target: '/healthz' });
    expect(health.headers['cache-control'] ?? '').not.toMatch(/public/);
  });

  it('answers health checks from a load balancer that uses an IP address as Host', async () => {
    for (const target of ['/healthz', '/readyz']) {
      const reply = await rawHttp(server.port, { target, headers: { host: '10.0.0.7:3000' } });
      expect({ target, status: reply.status }).toEqual({ target, status: 200 });
    }
  });

  it('draws the sign-out page with a form that posts to the issuer', async () => {
    const reply = await rawHttp(server.port, { target: '/session/end', headers: { host: EVIL, accept: 'text/html' } });
    expect(reply.status).toBe(200);
    expect(reply.body).toContain(`action="${server.url}/session/end/confirm"`);
    expect(reply.body).not.toContain(EVIL);
  });

  it('redirects a sign-in begun with a foreign Host back to the issuer, not to that host', async () => {
    const browser = new RawBrowser(server.port, { host: EVIL });
    const auth = await browser.request('GET', pathOf(authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge })));
    expect(auth.status).toBe(303);
    const interactionPath = new URL(auth.location ?? '', server.url).pathname;
    expect(interactionPath).toMatch(/^\/interaction\/[A-Za-z0-9_-]+$/);
    const page = await browser.request('GET', interactionPath);
    expect(page.status).toBe(200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
    const login = await browser.request('POST', `${interactionPath}/login`, { form: { csrf, email: USER.email, password: USER.password } });
    expect(login.status).toBe(303);
    // A browser without a session consents as the sign-in's last step, on the same interaction.
    expect(new URL(login.location ?? '', server.url).pathname).toBe(interactionPath);
    const consent = await browser.request('GET', interactionPath);
    expect(consent.status).toBe(200);
    const consentCsrf = /name="csrf" value="([^"]+)"/.exec(consent.body)?.[1] ?? '';
    const confirmed = await browser.request('POST', `${interactionPath}/confirm`, { form: { csrf: consentCsrf } });
    expect(confirmed.status).toBe(303);
    // The provider's resume URL was made when the interaction began, from that request.
    expect(confirmed.location).toMatch(new RegExp(`^${server.url.replace(/\./g, '\\.')}/auth/`));
  });
});

describe('published URLs come from ISSUER behind a trusted proxy (TRUST_PROXY=true, https issuer)', () => {
  let server: TestServer;
  let issuer: string;

  beforeAll(async () => {
    const port = await freePort();
    issuer = `https://127.0.0.1:${port}`;
    // TLS ends at the proxy: the server itself listens on plain http, as in docker-compose.yml.
    server = await startTestServer('public_origin_proxy', { port, logLevel: 'warn', env: { TRUST_PROXY: 'true', ISSUER: issuer } });
  });

  afterAll(async () => {
    await server?.close();
  });

  it.each([
    ['X-Forwarded-Host: evil.example', { 'x-forwarded-host': EVIL, 'x-forwarded-proto': 'https' }],
    ['X-Forwarded-Proto: http', { 'x-forwarded-proto': 'http' }],
    ['no proxy headers at all (a request from inside the network)', {}],
    ['a foreign Host and both proxy headers', { host: EVIL, 'x-forwarded-host': `${EVIL}:8443`, 'x-forwarded-proto': 'http' }],
  ])('discovery with %s lists only the issuer’s https URLs', async (_label, headers: Record<string, string>) => {
    const reply = await rawHttp(server.port, { target: DISCOVERY, headers });
    expectIssuerUrls(reply, issuer);
    expect(reply.headers['cache-control']).toBe('public, max-age=300');
  });
});
