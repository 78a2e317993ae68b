import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';
import { freePort } from './raw-client.js';

/**
 * Security properties a person's browser relies on during sign-in: headers, markup that the
 * CSP permits, cookie attributes (with and without a trusted TLS-terminating proxy), and
 * logs that keep no secrets.
 */

const REDIRECT_ORIGIN = 'http://127.0.0.1:9';
const USER = { email: 'margaret@example.com', password: 'apollo guidance computer 1969', name: 'Margaret Hamilton' };

/**
 * A browser that remembers every Set-Cookie line it saw, and optionally sits behind a
 * TLS-terminating proxy: it sends X-Forwarded-Proto and maps the https:// URLs the server
 * then builds back to the plain http listener (what the proxy would do).
 */
class RecordingAgent extends UserAgent {
  readonly setCookies: string[] = [];
  readonly replies: Reply[] = [];

  constructor(
    baseUrl: string,
    private readonly forwardedHeaders: Record<string, string> = {},
  ) {
    super(baseUrl);
  }

  private toListener(url: string): string {
    const base = new URL(this.baseUrl);
    const target = new URL(url, this.baseUrl);
    if (target.protocol === 'https:' && target.host === base.host) target.protocol = 'http:';
    return target.toString();
  }

  override async request(url: string, init: RequestInit = {}): Promise<Reply> {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(this.forwardedHeaders)) headers.set(name, value);
    const reply = await super.request(this.toListener(url), { ...init, headers });
    this.setCookies.push(...reply.headers.getSetCookie());
    this.replies.push(reply);
    return reply.location ? { ...reply, location: this.toListener(reply.location) } : reply;
  }
}

interface CookieLine {
  name: string;
  attributes: string[];
}

function parseSetCookie(line: string): CookieLine {
  const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
  return { name: pair.slice(0, pair.indexOf('=')), attributes: attrs.map((a) => a.toLowerCase()) };
}

function cspDirectives(reply: Reply): Map<string, string[]> {
  const csp = reply.headers.get('content-security-policy');
  expect(csp).toBeTruthy();
  return new Map(
    (csp ?? '')
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name = '', ...values]) => [name.toLowerCase(), values]),
  );
}

/** Nothing the CSP would block: no inline script, style, style attribute or event handler. */
function expectNoInlineCode(html: string): void {
  // Scripts only from our own files (progressive enhancement, e.g. show password), never inline.
  const scripts = html.match(/<script\b[^>]*>[\s\S]*?<\/script>/gi) ?? [];
  for (const script of scripts) expect(script).toMatch(/^<script src="\/static\/[a-z-]+\.js" defer(="defer")?><\/script>$/);
  expect(html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/gi, '')).not.toMatch(/<script\b/i);
  expect(html).not.toMatch(/<style\b/i);
  expect(html).not.toMatch(/<[^>]+\sstyle\s*=/i);
  expect(html).not.toMatch(/<[^>]+\son[a-z]+\s*=/i);
  expect(html).not.toMatch(/javascript:/i);
}

function authorizationUrl(server: TestServer, client: CreatedClient, challenge: string, extra: Record<string, string> = {}): string {
  return authorizationUrlFor(server.url, client.clientId, { code_challenge: challenge, ...extra });
}

interface Walk {
  login: Reply;
  consent: Reply;
  callback: Reply;
}

/** Login page → POST credentials → consent page → POST allow → redirect to the client. */
async function walkSignIn(agent: UserAgent, url: string): Promise<Walk> {
  const login = await agent.follow(url);
  expect(login.status).toBe(200);
  const afterLogin = await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: USER.password });
  expect(afterLogin.status).toBe(303);
  const consent = await agent.follow(afterLogin.location!);
  expect(consent.status).toBe(200);
  const afterConsent = await agent.post(formAction(consent.body, '/confirm'), { csrf: formField(consent.body, 'csrf') });
  expect(afterConsent.status).toBe(303);
  const callback = await agent.follow(afterConsent.location!);
  expect(callback.status).toBe(303);
  expect(callback.location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?/);
  return { login, consent, callback };
}

async function setUp(label: string, env: Record<string, string> = {}, port?: number): Promise<{ server: TestServer; client: CreatedClient }> {
  const server = await startTestServer(label, { env, ...(port === undefined ? {} : { port }) });
  await server.deps.accounts.create({ ...USER, emailVerified: true });
  const client = await server.deps.clients.create({ name: 'Security RP', redirectUris: [REDIRECT_URI] });
  return { server, client };
}

describe('security of the sign-in pages (plain http issuer, no trusted proxy)', () => {
  let server: TestServer;
  let client: CreatedClient;
  let agent: RecordingAgent;
  let walk: Walk;
  let verifier: string;

  beforeAll(async () => {
    ({ server, client } = await setUp('security'));
    agent = new RecordingAgent(server.url);
    const pkce = pkcePair();
    verifier = pkce.verifier;
    walk = await walkSignIn(agent, authorizationUrl(server, client, pkce.challenge, { scope: 'openid email profile offline_access', prompt: 'consent' }));
  });

  afterAll(async () => {
    await server?.close();
  });

  it('sends a strict CSP on the login and consent pages', () => {
    for (const page of [walk.login, walk.consent]) {
      const csp = page.headers.get('content-security-policy') ?? '';
      expect(csp).not.toContain("'unsafe-inline'");
      expect(csp).not.toContain("'unsafe-eval'");
      const directives = cspDirectives(page);
      expect(directives.get('frame-ancestors')).toEqual(["'none'"]);
      expect(directives.get('default-src')).toEqual(["'none'"]);
      expect(directives.get('script-src')).not.toContain('*');
      // The post-consent redirect to the client must stay allowed (Chromium applies form-action to it).
      expect(directives.get('form-action')).toEqual(expect.arrayContaining(["'self'", REDIRECT_ORIGIN]));
    }
  });

  it('does not open form-action to anything but the client of this interaction', () => {
    const formAction = cspDirectives(walk.login).get('form-action') ?? [];
    expect(formAction).not.toContain('*');
    expect(formAction.filter((source) => source !== "'self'")).toEqual([REDIRECT_ORIGIN]);
  });

  it('sends nosniff and refuses framing on every page, the error page included', async () => {
    const error = await agent.get('/interaction/not-a-real-interaction-uid');
    for (const page of [walk.login, walk.consent, error]) {
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');
      expect(page.headers.get('x-frame-options')).toBe('DENY');
      expect(cspDirectives(page).get('frame-ancestors')).toEqual(["'none'"]);
    }
  });

  it('has no inline script, style or style attribute in the login, consent and error HTML', async () => {
    const error = await agent.get('/interaction/not-a-real-interaction-uid');
    expect(error.status).toBeGreaterThanOrEqual(400);
    for (const page of [walk.login, walk.consent, error]) {
      expect(page.body).toContain('<link rel="stylesheet" href="/static/app.css">');
      expectNoInlineCode(page.body);
    }
    // The stylesheet the pages use is served by us, under the same CSP.
    const css = await fetch(`${server.url}/static/app.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(css.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('labels the login inputs and lets password managers fill them', () => {
    const html = walk.login.body;
    for (const [id, autocomplete, type] of [
      ['email', 'username', 'email'],
      ['password', 'current-password', 'password'],
    ] as const) {
      const input = new RegExp(`<input[^>]*\\bid="${id}"[^>]*>`).exec(html)?.[0];
      expect(input).toBeDefined();
      expect(input).toContain(`autocomplete="${autocomplete}"`);
      expect(input).toContain(`type="${type}"`);
      expect(input).toContain(`name="${id}"`);
      expect(html).toMatch(new RegExp(`<label[^>]*\\bfor="${id}"[^>]*>[^<]+</label>`));
    }
    // The page says which language it is in (screen readers).
    expect(html).toMatch(/<html lang="en"/);
  });

  it('marks interaction pages no-store, also after a refused POST and on errors', async () => {
    for (const page of [walk.login, walk.consent]) expect(page.headers.get('cache-control')).toBe('no-store');

    const other = new RecordingAgent(server.url);
    const login = await other.follow(authorizationUrl(server, client, pkcePair().challenge));
    const refused = await other.submit(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: 'wrong password here' });
    expect(refused.posted.headers.get('cache-control')).toBe('no-store');
    expect(refused.status).toBe(401);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    const error = await other.get('/interaction/not-a-real-interaction-uid');
    expect(error.headers.get('cache-control')).toBe('no-store');
  });

  it('sets every cookie of the flow HttpOnly and SameSite=Lax, and not Secure on plain http', () => {
    const cookies = agent.setCookies.map(parseSetCookie);
    const names = new Set(cookies.map((c) => c.name));
    // The interaction and the session cookies (with their signatures) were all set.
    expect([...names]).toEqual(expect.arrayContaining(['_interaction', '_interaction_resume', '_session']));
    for (const cookie of cookies) {
      expect({ name: cookie.name, httpOnly: cookie.attributes.includes('httponly') }).toEqual({ name: cookie.name, httpOnly: true });
      expect({ name: cookie.name, sameSite: cookie.attributes.find((a) => a.startsWith('samesite=')) }).toEqual({
        name: cookie.name,
        sameSite: 'samesite=lax',
      });
      expect({ name: cookie.name, secure: cookie.attributes.includes('secure') }).toEqual({ name: cookie.name, secure: false });
    }
  });

  it('scopes the interaction cookie to its interaction path', () => {
    const interaction = agent.setCookies.map(parseSetCookie).find((c) => c.name === '_interaction');
    expect(interaction?.attributes.find((a) => a.startsWith('path='))).toMatch(/^path=\/interaction\/[A-Za-z0-9_-]+$/);
  });

  it('ignores X-Forwarded-Proto without TRUST_PROXY: cookies stay non-Secure, discovery keeps the issuer scheme', async () => {
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' };
    const proxied = new RecordingAgent(server.url, forwarded);
    const login = await proxied.follow(authorizationUrl(server, client, pkcePair().challenge));
    expect(login.status).toBe(200);
    expect(proxied.setCookies.length).toBeGreaterThan(0);
    for (const cookie of proxied.setCookies.map(parseSetCookie)) expect(cookie.attributes).not.toContain('secure');

    const discovery = await fetch(`${server.url}/.well-known/openid-configuration`, { headers: forwarded });
    expect(discovery.status).toBe(200);
    const metadata = (await discovery.json()) as Record<string, unknown>;
    expect(metadata.issuer).toBe(server.url);
    for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint']) {
      expect(String(metadata[key])).toMatch(new RegExp(`^${server.url.replace(/\./g, '\\.')}/`));
    }
  });

  it('logs the connecting address, not a client-supplied X-Forwarded-For', async () => {
    const forged = new RecordingAgent(server.url, { 'x-forwarded-for': '203.0.113.77' });
    const login = await forged.follow(authorizationUrl(server, client, pkcePair().challenge));
    await forged.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: 'wrong password!' });
    const line = server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'sign-in failed').pop();
    expect(line?.ip).toBe('127.0.0.1');
    expect(server.logs.join('\n')).not.toContain('203.0.113.77');
  });

  it('sends no HSTS for an http issuer', async () => {
    const discovery = await fetch(`${server.url}/.well-known/openid-configuration`);
    for (const headers of [walk.login.headers, walk.consent.headers, discovery.headers]) {
      expect(headers.get('strict-transport-security')).toBeNull();
    }
  });

  it('keeps the password, the code, the tokens, the client secret and cookie values out of the logs', async () => {
    const code = new URL(walk.callback.location!).searchParams.get('code');
    expect(code).toBeTruthy();
    const basic = `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`;
    const tokenResponse = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT_URI, code_verifier: verifier }).toString(),
    });
    expect(tokenResponse.status).toBe(200);
    const tokens = (await tokenResponse.json()) as { access_token: string; refresh_token: string; id_token: string };
    expect(tokens.refresh_token).toBeTruthy();

    const userinfo = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(userinfo.status).toBe(200);
    const refreshed = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }).toString(),
    });
    expect(refreshed.status).toBe(200);
    // A replayed code (last: it revokes the grant): the provider logs the failure, still without the code.
    const replay = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT_URI, code_verifier: verifier }).toString(),
    });
    expect(replay.status).toBe(400);

    const logs = server.logs.join('\n');
    expect(logs).toContain('sign-in succeeded');
    const secrets: Record<string, string> = {
      password: USER.password,
      code: code!,
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      id_token: tokens.id_token,
      code_verifier: verifier,
      client_secret: client.clientSecret!,
      csrf: formField(walk.login.body, 'csrf'),
    };
    for (const line of agent.setCookies) {
      const pair = line.split(';')[0] ?? '';
      const value = pair.slice(pair.indexOf('=') + 1);
      if (value.length >= 8) secrets[`cookie ${pair.slice(0, pair.indexOf('='))}`] = value;
    }
    for (const [what, value] of Object.entries(secrets)) {
      expect({ what, leaked: logs.includes(value) }).toEqual({ what, leaked: false });
    }
  });
});

describe('security behind a trusted TLS-terminating proxy (TRUST_PROXY=true, https ISSUER)', () => {
  let server: TestServer;
  let client: CreatedClient;
  let issuer: string;

  beforeAll(async () => {
    // As in docker-compose.yml: the public URL is https, TLS ends at the proxy, and the server
    // listens on plain http (the agents below map the https URLs back to it).
    const port = await freePort();
    issuer = `https://127.0.0.1:${port}`;
    ({ server, client } = await setUp('security_proxy', { TRUST_PROXY: 'true', ISSUER: issuer }, port));
  });

  afterAll(async () => {
    await server?.close();
  });

  it('sets every cookie Secure and HttpOnly; SameSite=Lax but for the session cookie, None (POST /auth from a relying party)', async () => {
    const agent = new RecordingAgent(server.url, { 'x-forwarded-proto': 'https' });
    await walkSignIn(agent, authorizationUrlFor(issuer, client.clientId, { code_challenge: pkcePair().challenge }));
    const cookies = agent.setCookies.map(parseSetCookie);
    expect(cookies.map((c) => c.name)).toEqual(expect.arrayContaining(['_interaction', '_session']));
    for (const cookie of cookies) {
      expect({ name: cookie.name, secure: cookie.attributes.includes('secure') }).toEqual({ name: cookie.name, secure: true });
      expect(cookie.attributes).toContain('httponly');
      // The provider's session cookie must reach a cross-site POST to /auth (OpenID Connect Core
      // §3.1.2.1); every other cookie stays Lax.
      const sameSite = cookie.name.startsWith('_session') ? 'samesite=none' : 'samesite=lax';
      expect({ name: cookie.name, sameSite: cookie.attributes.find((a) => a.startsWith('samesite=')) }).toEqual({ name: cookie.name, sameSite });
    }
  });

  it('sets our own pages’ cookies Secure too (the account and console sign-in state)', async () => {
    for (const path of ['/account/sign-in', '/admin/sign-in']) {
      const agent = new RecordingAgent(server.url, {});
      const reply = await agent.get(`${issuer}${path}`);
      expect(reply.status).toBe(303);
      const cookies = agent.setCookies.map(parseSetCookie).filter((c) => c.name.endsWith('.login'));
      expect(cookies.length).toBeGreaterThan(0);
      for (const cookie of cookies) {
        expect({ path, cookie: cookie.name, secure: cookie.attributes.includes('secure') }).toEqual({ path, cookie: cookie.name, secure: true });
        expect(cookie.attributes).toContain('httponly');
      }
    }
  });

  it('sets cookies Secure by the issuer’s scheme, not by X-Forwarded-Proto', async () => {
    // A proxy (or a client it passes the header through for) saying http cannot downgrade them.
    for (const forwarded of [{}, { 'x-forwarded-proto': 'http' }] as Record<string, string>[]) {
      const agent = new RecordingAgent(server.url, forwarded);
      const login = await agent.follow(authorizationUrlFor(issuer, client.clientId, { code_challenge: pkcePair().challenge }));
      expect(login.status).toBe(200);
      expect(agent.setCookies.length).toBeGreaterThan(0);
      for (const cookie of agent.setCookies.map(parseSetCookie)) expect(cookie.attributes).toContain('secure');
    }
  });

  it('takes the client address from X-Forwarded-For', async () => {
    const proxied = new RecordingAgent(server.url, { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.9' });
    const login = await proxied.follow(authorizationUrlFor(issuer, client.clientId, { code_challenge: pkcePair().challenge }));
    await proxied.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: 'wrong password!' });
    const line = server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'sign-in failed').pop();
    expect(line?.ip).toBe('203.0.113.9');
  });

  it('publishes the issuer’s https endpoints whatever the proxy headers say, and sends HSTS', async () => {
    const discovery = await fetch(`${server.url}/.well-known/openid-configuration`, { headers: { 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example' } });
    expect(discovery.status).toBe(200);
    expect(discovery.headers.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains');
    const metadata = (await discovery.json()) as Record<string, unknown>;
    expect(metadata.issuer).toBe(issuer);
    for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint']) {
      expect(String(metadata[key]).startsWith(`${issuer}/`)).toBe(true);
    }
  });
});
