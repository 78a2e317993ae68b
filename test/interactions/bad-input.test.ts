import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * Hostile and clumsy input against a live interaction and the provider's endpoints: every
 * answer is a clear 4xx (the error page for browsers, OAuth error JSON for API clients),
 * never a 5xx or a stack trace, and nothing is stored half-way.
 */

const USER = { email: 'grace@example.com', password: 'a long enough password 42', name: 'Grace Hopper' };

function expectNoLeak(body: string): void {
  expect(body).not.toMatch(/^\s*at\s/m);
  expect(body).not.toMatch(/\bat [^\n]*\(?[^\n]*:\d+:\d+\)?/);
  expect(body).not.toContain('/src/');
  expect(body).not.toContain('node_modules');
}

/** The rendered error page: our layout, the status on it, no stack. */
function expectErrorPage(reply: Reply, status: number | 'any4xx' = 'any4xx'): void {
  if (status === 'any4xx') {
    expect(reply.status).toBeGreaterThanOrEqual(400);
    expect(reply.status).toBeLessThan(500);
  } else {
    expect(reply.status).toBe(status);
  }
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.body).toContain('<!DOCTYPE html>');
  expect(reply.body).toContain('class="site-header"');
  expect(reply.body).toContain('class="status-label"');
  expect(reply.body).toContain(String(reply.status));
  expectNoLeak(reply.body);
}

/** The login page again (with the form), e.g. after a refused POST. */
function expectLoginPage(reply: Reply, status: number): void {
  expect(reply.status).toBe(status);
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.body).toContain('class="site-header"');
  expect(reply.body).toMatch(/<form[^>]*action="\/interaction\/[^"]+\/login"/);
  expect(reply.body).toContain('name="password"');
  expectNoLeak(reply.body);
}

async function expectOAuthError(res: Response, status: number | 'any4xx' = 'any4xx'): Promise<{ error: string }> {
  if (status === 'any4xx') {
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  } else {
    expect(res.status).toBe(status);
  }
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const text = await res.text();
  expectNoLeak(text);
  const body = JSON.parse(text) as { error?: unknown };
  expect(typeof body.error).toBe('string');
  return body as { error: string };
}

interface RawResponse {
  status: number;
  head: string;
  body: string;
}

/**
 * One request over a bare socket, for what fetch refuses to send: a Content-Length that
 * does not match the body, or a chunked body the server must stop reading. Resolves with
 * whatever the server answered once it closes the connection (an empty status 0 if it
 * closed without answering).
 */
function rawRequest(port: number, head: string, body: Buffer | string, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const responseHead = split === -1 ? text : text.slice(0, split);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(responseHead)?.[1] ?? 0);
      resolve({ status, head: responseHead, body: split === -1 ? '' : text.slice(split + 4) });
    };
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', finish);
    // The server may answer and close before the whole body is written (that is the point).
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      socket.write(head);
      socket.write(body);
    });
  });
}

/** The Cookie header a browser would send to `path`, from the Set-Cookie lines it received. */
function cookiesFor(setCookies: string[], path: string): string {
  return setCookies
    .map((line) => line.split(';').map((s) => s.trim()))
    .filter(([, ...attrs]) => {
      const cookiePath = attrs.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      return path === cookiePath || path.startsWith(cookiePath.endsWith('/') ? cookiePath : `${cookiePath}/`);
    })
    .map(([pair]) => pair)
    .join('; ');
}

interface LiveInteraction {
  agent: UserAgent;
  uid: string;
  csrf: string;
  loginUrl: string;
  page: Reply;
}

describe('bad input against a live interaction and the provider endpoints', () => {
  let server: TestServer;
  let client: CreatedClient;

  const authorizationUrl = (extra: Record<string, string> = {}): string =>
    authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge, scope: 'openid email', ...extra });

  /** A fresh browser with an interaction at its login prompt. */
  const startInteraction = async (agent = new UserAgent(server.url)): Promise<LiveInteraction> => {
    const page = await agent.follow(authorizationUrl());
    expect(page.status).toBe(200);
    const uid = /\/interaction\/([^/?#]+)$/.exec(page.url)?.[1];
    if (!uid) throw new Error(`not an interaction page: ${page.url}`);
    return { agent, uid, csrf: formField(page.body, 'csrf'), loginUrl: formAction(page.body, '/login'), page };
  };

  /** An interaction started by hand, for requests over a bare socket: its uid, csrf and the cookies for its login URL. */
  const startRawInteraction = async (): Promise<{ uid: string; csrf: string; cookie: string }> => {
    const auth = await fetch(authorizationUrl(), { redirect: 'manual', headers: { accept: 'text/html' } });
    const location = auth.headers.get('location') ?? '';
    const uid = /\/interaction\/([^/?#]+)$/.exec(location)?.[1];
    if (!uid) throw new Error(`no interaction redirect: ${auth.status} ${location}`);
    const setCookies = auth.headers.getSetCookie();
    const page = await fetch(`${server.url}/interaction/${uid}`, { headers: { accept: 'text/html', cookie: cookiesFor(setCookies, `/interaction/${uid}`) } });
    expect(page.status).toBe(200);
    return { uid, csrf: formField(await page.text(), 'csrf'), cookie: cookiesFor(setCookies, `/interaction/${uid}/login`) };
  };

  /** A fresh browser signed in and standing on the consent page. */
  const startAtConsent = async (): Promise<LiveInteraction> => {
    const live = await startInteraction();
    const reply = await live.agent.post(live.loginUrl, { csrf: live.csrf, ...USER });
    expect(reply.status).toBe(303);
    const page = await live.agent.follow(reply.location!);
    expect(page.status).toBe(200);
    expect(page.body).toContain('/confirm"');
    const uid = /\/interaction\/([^/?#]+)$/.exec(page.url)?.[1];
    if (!uid) throw new Error(`not an interaction page: ${page.url}`);
    return { agent: live.agent, uid, csrf: formField(page.body, 'csrf'), loginUrl: `/interaction/${uid}/login`, page };
  };

  /** Sessions that know a signed-in account: must stay zero while sign-ins are refused. */
  const signedInSessions = () =>
    server.deps.db.collection(collectionName('Session')).countDocuments({ payload: { $regex: '"accountId"' } });

  const postLogin = (live: LiveInteraction, init: RequestInit) => live.agent.request(`/interaction/${live.uid}/login`, { method: 'POST', ...init });
  /** A raw login POST, following a refusal's 303 to the login page (post/redirect/get). */
  const submitLogin = async (live: LiveInteraction, init: RequestInit) => {
    const posted = await postLogin(live, init);
    expect(posted.status).toBe(303);
    expect(posted.location).toMatch(/\/interaction\/[^/?]+\?error=/);
    return live.agent.get(posted.location ?? '');
  };

  beforeAll(async () => {
    server = await startTestServer('bad_input');
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    client = await server.deps.clients.create({ name: 'Bad Input RP', redirectUris: [REDIRECT_URI] });
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server?.close();
  });

  describe('POST /interaction/:uid/login', () => {
    let live: LiveInteraction;
    let sessionsBefore: number;

    beforeAll(async () => {
      live = await startInteraction();
      sessionsBefore = await signedInSessions();
    });

    afterAll(async () => {
      // None of the refused posts signed anyone in; the interaction is still at its login step.
      expect(await signedInSessions()).toBe(sessionsBefore);
      const again = await live.agent.get(`/interaction/${live.uid}`);
      expectLoginPage(again, 200);
    });

    it.each([
      ['application/json', JSON.stringify({ csrf: 'x', email: USER.email, password: USER.password })],
      ['text/plain', `email=${USER.email}&password=x`],
      ['multipart/form-data; boundary=xyz', '--xyz\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.c\r\n--xyz--\r\n'],
    ])('refuses a %s body with 415', async (contentType, body) => {
      const reply = await postLogin(live, { headers: { 'content-type': contentType }, body });
      expectErrorPage(reply, 415);
      expect(reply.body).toContain('request.unsupported_media_type');
    });

    it('refuses a body without any content type with 415', async () => {
      const reply = await postLogin(live, { body: new Blob([`csrf=${live.csrf}`]) });
      expectErrorPage(reply, 415);
    });

    it('refuses a form body over the 16 KiB limit with 413', async () => {
      expect(server.config.formBodyLimit).toBe(16 * 1024);
      const reply = await live.agent.post(`/interaction/${live.uid}/login`, {
        csrf: live.csrf,
        email: USER.email,
        password: USER.password,
        padding: 'x'.repeat(17 * 1024),
      });
      expectErrorPage(reply, 413);
    });

    it('refuses a declared Content-Length over the limit at once, without waiting for the body', async () => {
      const raw = await startRawInteraction();
      const started = Date.now();
      const reply = await rawRequest(
        server.port,
        [
          `POST /interaction/${raw.uid}/login HTTP/1.1`,
          `Host: 127.0.0.1:${server.port}`,
          'Accept: text/html',
          'Content-Type: application/x-www-form-urlencoded',
          `Content-Length: ${10 * 1024 * 1024}`,
          `Cookie: ${raw.cookie}`,
          '',
          '',
        ].join('\r\n'),
        `csrf=${raw.csrf}`,
      );
      expect(reply.status).toBe(413);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(reply.head).toMatch(/^connection: close$/im);
      expect(reply.body).toContain('class="site-header"');
      expectNoLeak(reply.body);
    });

    it('refuses a chunked body (no Content-Length) that grows past the limit with 413', async () => {
      const raw = await startRawInteraction();
      const piece = `csrf=${raw.csrf}&padding=${'y'.repeat(4000)}`;
      const chunk = `${Buffer.byteLength(piece).toString(16)}\r\n${piece}\r\n`;
      const reply = await rawRequest(
        server.port,
        [
          `POST /interaction/${raw.uid}/login HTTP/1.1`,
          `Host: 127.0.0.1:${server.port}`,
          'Accept: text/html',
          'Content-Type: application/x-www-form-urlencoded',
          'Transfer-Encoding: chunked',
          `Cookie: ${raw.cookie}`,
          '',
          '',
        ].join('\r\n'),
        // 8 × ~4 KiB, never terminated: the server must stop on its own count.
        chunk.repeat(8),
      );
      expect(reply.status).toBe(413);
      expect(reply.body).toContain('class="site-header"');
      expectNoLeak(reply.body);
    });

    it('does not trust a Content-Length that understates the body (the rest is not read as the form)', async () => {
      const raw = await startRawInteraction();
      const form = `csrf=${encodeURIComponent(raw.csrf)}&email=${encodeURIComponent(USER.email)}&password=${encodeURIComponent(USER.password)}`;
      const reply = await rawRequest(
        server.port,
        [
          `POST /interaction/${raw.uid}/login HTTP/1.1`,
          `Host: 127.0.0.1:${server.port}`,
          'Accept: text/html',
          'Connection: close',
          'Content-Type: application/x-www-form-urlencoded',
          // Only the csrf field is inside the declared length.
          `Content-Length: ${`csrf=${encodeURIComponent(raw.csrf)}`.length}`,
          `Cookie: ${raw.cookie}`,
          '',
          '',
        ].join('\r\n'),
        form,
      );
      // Either the declared part (csrf only) gets the form again with 400, or Node's parser
      // refuses the rest as a malformed next request with a bare 400 first; never a sign-in.
      expect(reply.status).toBe(400);
      expect(reply.head).not.toMatch(/^location:/im);
      expectNoLeak(reply.body);
      expect(await signedInSessions()).toBe(sessionsBefore);
    });

    it('refuses a post without a csrf token with 403', async () => {
      const reply = await live.agent.post(live.loginUrl, { email: USER.email, password: USER.password });
      expectErrorPage(reply, 403);
      expect(reply.body).toContain('request.csrf');
    });

    it("refuses another interaction's csrf token with 403", async () => {
      const other = await startInteraction();
      expect(other.csrf).not.toBe(live.csrf);
      const reply = await live.agent.post(live.loginUrl, { csrf: other.csrf, email: USER.email, password: USER.password });
      expectErrorPage(reply, 403);
    });

    it("refuses a valid token posted to a different interaction's URL", async () => {
      // The same browser holds a second interaction; the first one's token must not work there.
      const second = await startInteraction(live.agent);
      const reply = await live.agent.post(second.loginUrl, { csrf: live.csrf, email: USER.email, password: USER.password });
      expectErrorPage(reply, 403);
      // And to the URL of an interaction this browser has no cookie for.
      const unknown = await live.agent.post(`/interaction/${randomBytes(16).toString('base64url')}/login`, {
        csrf: live.csrf,
        email: USER.email,
        password: USER.password,
      });
      expectErrorPage(unknown);
    });

    it.each([
      ['no email', { password: USER.password }],
      ['no password', { email: USER.email }],
      ['neither', {}],
    ])('answers a form with %s with 400 and the form again', async (_label, fields) => {
      const reply = await live.agent.submit(live.loginUrl, { csrf: live.csrf, ...fields });
      expectLoginPage(reply, 400);
      expect(reply.body).toContain('Enter your email address and password.');
    });

    it('refuses an email of 300 characters with 400', async () => {
      const reply = await live.agent.submit(live.loginUrl, { csrf: live.csrf, email: `${'a'.repeat(288)}@example.com`, password: USER.password });
      expectLoginPage(reply, 400);
    });

    it('refuses a NUL byte in the email with 400', async () => {
      const reply = await live.agent.submit(live.loginUrl, { csrf: live.csrf, email: `${USER.email}\u0000`, password: USER.password });
      expectLoginPage(reply, 400);
      expect(reply.body).not.toContain('\u0000');
    });

    it('refuses a field sent twice with 400', async () => {
      const body = `csrf=${encodeURIComponent(live.csrf)}&email=${encodeURIComponent(USER.email)}&email=other%40example.com&password=${encodeURIComponent(USER.password)}`;
      const reply = await postLogin(live, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      expectErrorPage(reply, 400);
      expect(reply.body).toContain('request.duplicate_field');
    });

    it('answers malformed percent-encoding as a normal refused sign-in, never a 5xx', async () => {
      const body = `csrf=${encodeURIComponent(live.csrf)}&email=%E0%A4%A&password=%E0%A4%A`;
      const reply = await submitLogin(live, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      expect(reply.status).toBeGreaterThanOrEqual(400);
      expect(reply.status).toBeLessThan(500);
      expectNoLeak(reply.body);
      expect(reply.body).toContain('name="password"');
    });

    it('refuses the right password for a mangled email (percent-encoded garbage) with 401', async () => {
      const body = `csrf=${encodeURIComponent(live.csrf)}&email=grace%E0%A4%A%40example.com&password=${encodeURIComponent(USER.password)}`;
      const reply = await submitLogin(live, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      expectLoginPage(reply, 401);
      expect(reply.body).toContain('Incorrect email or password.');
    });
  });

  describe('steps posted out of order', () => {
    it('refuses POST /confirm while the prompt is login with 400', async () => {
      const live = await startInteraction();
      const reply = await live.agent.post(`/interaction/${live.uid}/confirm`, { csrf: live.csrf });
      expectErrorPage(reply, 400);
      expect(reply.body).toContain('interaction.wrong_step');
      expect(await server.deps.db.collection(collectionName('Grant')).countDocuments()).toBe(0);
      // The interaction is unharmed.
      expectLoginPage(await live.agent.get(`/interaction/${live.uid}`), 200);
    });

    it('refuses POST /login while the prompt is consent with 400', async () => {
      const live = await startAtConsent();
      const reply = await live.agent.post(`/interaction/${live.uid}/login`, { csrf: live.csrf, ...USER });
      expectErrorPage(reply, 400);
      expect(reply.body).toContain('interaction.wrong_step');
      // Still at consent, and no code was issued.
      const again = await live.agent.get(`/interaction/${live.uid}`);
      expect(again.status).toBe(200);
      expect(again.body).toContain('/confirm"');
      expect(await server.deps.db.collection(collectionName('AuthorizationCode')).countDocuments()).toBe(0);
    });
  });

  describe('unknown or foreign interactions', () => {
    const randomUid = () => randomBytes(16).toString('base64url');

    it.each([
      ['a well-formed random uid', () => randomUid()],
      ['a traversal attempt', () => '..%2F..%2Fetc'],
      ['an encoded traversal attempt', () => '%2E%2E%2F%2E%2E%2Fetc%2Fpasswd'],
      ['a NUL byte', () => 'abc%00def0123456'],
      ['a very long uid', () => 'a'.repeat(2000)],
    ])('GET and POST with %s answer a 4xx error page', async (_label, makeUid) => {
      const live = await startInteraction();
      const uid = makeUid();
      expectErrorPage(await live.agent.get(`/interaction/${uid}`));
      expectErrorPage(await live.agent.post(`/interaction/${uid}/login`, { csrf: live.csrf, ...USER }));
      expectErrorPage(await live.agent.post(`/interaction/${uid}/confirm`, { csrf: live.csrf }));
      expectErrorPage(await live.agent.post(`/interaction/${uid}/abort`, { csrf: live.csrf }));
    });

    it('answers a real uid without its interaction cookie (another browser) with a 4xx error page', async () => {
      const live = await startInteraction();
      const sessionsBefore = await signedInSessions();
      const stranger = new UserAgent(server.url);
      const page = await stranger.get(`/interaction/${live.uid}`);
      expectErrorPage(page);
      expect(page.body).not.toContain('name="password"');
      // Even with the csrf token copied from the victim's page.
      const post = await stranger.post(`/interaction/${live.uid}/login`, { csrf: live.csrf, ...USER });
      expectErrorPage(post);
      const abort = await stranger.post(`/interaction/${live.uid}/abort`, { csrf: live.csrf });
      expectErrorPage(abort);
      expect(await signedInSessions()).toBe(sessionsBefore);
      // The owner can still continue.
      expectLoginPage(await live.agent.get(`/interaction/${live.uid}`), 200);
    });
  });

  describe('provider endpoints', () => {
    const basic = () => `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`;
    const tokenRequest = (init: RequestInit) => fetch(`${server.url}/token`, { method: 'POST', ...init });
    const issuedTokens = async () =>
      (await server.deps.db.collection(collectionName('AccessToken')).countDocuments()) +
      (await server.deps.db.collection(collectionName('RefreshToken')).countDocuments());

    afterAll(async () => {
      expect(await issuedTokens()).toBe(0);
    });

    it('POST /token with a malformed body answers invalid_request JSON', async () => {
      const res = await tokenRequest({
        headers: { authorization: basic(), 'content-type': 'application/x-www-form-urlencoded' },
        body: '%%%&&==&grant_type=%E0%A4%A&code=%',
      });
      const body = await expectOAuthError(res, 400);
      expect(body.error).toMatch(/^(invalid_request|unsupported_grant_type)$/);
    });

    it('POST /token with a JSON body answers invalid_request JSON', async () => {
      const res = await tokenRequest({
        headers: { authorization: basic(), 'content-type': 'application/json' },
        body: JSON.stringify({ grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT_URI }),
      });
      const body = await expectOAuthError(res, 400);
      expect(body.error).toBe('invalid_request');
    });

    it('POST /token with a 1 MB body answers a 4xx error JSON', async () => {
      const res = await tokenRequest({
        headers: { authorization: basic(), 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=authorization_code&code=${'c'.repeat(1024 * 1024)}`,
      });
      await expectOAuthError(res);
    });

    it('POST /token with an unknown grant_type answers unsupported_grant_type', async () => {
      const res = await tokenRequest({
        headers: { authorization: basic(), 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=urn%3Aexample%3Amade-up',
      });
      const body = await expectOAuthError(res, 400);
      expect(body.error).toBe('unsupported_grant_type');
    });

    it('POST /token without client authentication answers invalid_request or invalid_client', async () => {
      const res = await tokenRequest({
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: 'abc', redirect_uri: REDIRECT_URI }).toString(),
      });
      const body = await expectOAuthError(res);
      expect(body.error).toMatch(/^(invalid_request|invalid_client)$/);
    });

    it('POST /token with a wrong client secret answers 401 invalid_client', async () => {
      const res = await tokenRequest({
        headers: {
          authorization: `Basic ${Buffer.from(`${client.clientId}:wrong-secret`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: 'abc', redirect_uri: REDIRECT_URI }).toString(),
      });
      const body = await expectOAuthError(res, 401);
      expect(body.error).toBe('invalid_client');
    });

    it('POST /token with a garbage Authorization header answers a 4xx error JSON', async () => {
      const res = await tokenRequest({
        headers: { authorization: 'Basic %%%not-base64%%%', 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=authorization_code&code=abc',
      });
      await expectOAuthError(res);
    });

    it.each([
      ['no parameters', ''],
      ['an unknown client', 'client_id=nope&response_type=code&scope=openid'],
      ['garbage values', 'client_id=%00%FF&response_type=%E0%A4%A&scope[]=x&redirect_uri=javascript:alert(1)'],
      ['a parameter sent twice', 'client_id=a&client_id=b&response_type=code'],
    ])('GET /auth with %s renders a 4xx error page for a browser', async (_label, query) => {
      const reply = await new UserAgent(server.url).get(`/auth?${query}`);
      expectErrorPage(reply);
      expect(reply.location).toBeUndefined();
    });

    it('GET /auth with a valid client but a foreign redirect_uri renders an error page (never redirects there)', async () => {
      const reply = await new UserAgent(server.url).get(authorizationUrl({ redirect_uri: 'https://attacker.example/cb' }));
      expectErrorPage(reply, 400);
      expect(reply.location).toBeUndefined();
    });

    it('GET /me without a token answers 401 with WWW-Authenticate', async () => {
      const res = await fetch(`${server.url}/me`);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      await expectOAuthError(res, 401);
    });

    it('GET /me with a made-up token answers 401 invalid_token', async () => {
      const res = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${randomBytes(32).toString('base64url')}` } });
      expect(res.headers.get('www-authenticate')).toMatch(/invalid_token/);
      const body = await expectOAuthError(res, 401);
      expect(body.error).toBe('invalid_token');
    });

    it('an unknown path answers 404: a page for browsers, JSON otherwise', async () => {
      const page = await new UserAgent(server.url).get('/no/such/page');
      expectErrorPage(page, 404);

      const json = await fetch(`${server.url}/no/such/page`, { headers: { accept: 'application/json' } });
      const body = await expectOAuthError(json, 404);
      expect(body.error).toBe('not_found');

      const bare = await fetch(`${server.url}/no/such/page`, { method: 'POST' });
      expect(bare.status).toBe(404);
      expectNoLeak(await bare.text());
    });
  });
});
