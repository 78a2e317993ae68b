import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { provisionDatabase } from '../../src/db/provision.js';
import type { ProvisionedDatabase } from '../../src/db/provision.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField, signInThroughPages } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * The database goes away under a running server and comes back: while it is down the server
 * says so honestly (503, quickly, never a 500 or a hang), and afterwards it recovers by
 * itself, without a restart, and nothing half-done during the outage gets in the way.
 */

const USER = { email: 'katherine@example.com', password: 'trajectory for apollo 11', name: 'Katherine Johnson' };
/** The server gives up on the database after serverSelectionTimeoutMS (3 s, src/db/connect.ts). */
const FAIL_FAST_MS = 8_000;
const RECOVERY_MS = 15_000;

function expectNoLeak(body: string): void {
  expect(body).not.toMatch(/^\s*at\s/m);
  expect(body).not.toContain('/src/');
  expect(body).not.toContain('node_modules');
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = Date.now();
  const result = await work();
  return { result, ms: Date.now() - started };
}

function expectUnavailablePage(reply: Reply): void {
  expect(reply.status).toBe(503);
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.headers.get('retry-after')).toBeTruthy();
  expect(reply.body).toContain('class="site-header"');
  expect(reply.body).toContain('temporarily unavailable');
  expectNoLeak(reply.body);
}

describe('the database goes down and comes back', () => {
  let dataDir: string;
  let database: ProvisionedDatabase | undefined;
  let server: TestServer | undefined;
  let client: CreatedClient;

  const app = (): TestServer => {
    if (!server) throw new Error('server not started');
    return server;
  };

  const authorizationUrl = (challenge: string): string =>
    authorizationUrlFor(app().url, client.clientId, { code_challenge: challenge, scope: 'openid email' });

  const tokenRequest = (code: string, verifier: string) =>
    fetch(`${app().url}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }).toString(),
    });

  // Made before the outage, used during and after it.
  let pendingCode: { code: string; verifier: string };
  let pendingLogin: { agent: UserAgent; action: string; csrf: string; uid: string };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'oidc-db-down-'));
    // Enterable by others: as root, PostgreSQL runs as the user postgres.
    await chmod(dataDir, 0o711);
    database = await provisionDatabase({ dataDir });
    expect(database.uri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/$/);
    // The code made before the outage must outlive it (the default is one minute).
    server = await startTestServer('down', { mongoUri: `${database.uri}down`, env: { AUTHORIZATION_CODE_TTL: '600' } });
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    client = await server.deps.clients.create({ name: 'Outage RP', redirectUris: [REDIRECT_URI] });

    const pkce = pkcePair();
    const callback = await signInThroughPages(new UserAgent(server.url), authorizationUrl(pkce.challenge), USER);
    expect(callback.status).toBe(303);
    const code = new URL(callback.location!).searchParams.get('code');
    if (!code) throw new Error(`no code in ${callback.location}`);
    pendingCode = { code, verifier: pkce.verifier };

    const agent = new UserAgent(server.url);
    const login = await agent.follow(authorizationUrl(pkcePair().challenge));
    expect(login.status).toBe(200);
    const uid = /\/interaction\/([^/?#]+)$/.exec(login.url)?.[1];
    if (!uid) throw new Error(`not an interaction page: ${login.url}`);
    pendingLogin = { agent, action: formAction(login.body, '/login'), csrf: formField(login.body, 'csrf'), uid };

    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    await database.stop();
  }, 180_000);

  afterAll(async () => {
    if (process.env.DEBUG_LOGS && server) console.log(server.logs.join('\n'));
    try {
      await server?.close();
    } finally {
      try {
        await database?.stop();
      } finally {
        if (dataDir) await rm(dataDir, { recursive: true, force: true });
      }
    }
  }, 60_000);

  describe('while it is down', () => {
    it('GET /readyz answers 503 within seconds', async () => {
      const { result: res, ms } = await timed(() => fetch(`${app().url}/readyz`));
      expect(res.status).toBe(503);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.json()).toEqual({ status: 'unavailable', reason: 'database unreachable' });
      expect(ms).toBeLessThan(FAIL_FAST_MS);
    });

    it('GET /healthz still answers 200 (the process is alive)', async () => {
      const res = await fetch(`${app().url}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
    });

    it('POST /token with a code answers 503 temporarily_unavailable as JSON', async () => {
      const { result: res, ms } = await timed(() => tokenRequest(pendingCode.code, pendingCode.verifier));
      expect(ms).toBeLessThan(FAIL_FAST_MS);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const text = await res.text();
      expectNoLeak(text);
      expect(JSON.parse(text)).toMatchObject({ error: 'temporarily_unavailable' });
    });

    it('an authorization request from a browser gets the 503 error page', async () => {
      const { result: reply, ms } = await timed(() => new UserAgent(app().url).get(authorizationUrl(pkcePair().challenge)));
      expect(ms).toBeLessThan(FAIL_FAST_MS);
      expectUnavailablePage(reply);
      // Never sent back to the client with an error: its redirect_uri could not be checked.
      expect(reply.location).toBeUndefined();
    });

    it('a sign-in page and a login POST of a live interaction get the 503 error page', async () => {
      expectUnavailablePage(await pendingLogin.agent.get(`/interaction/${pendingLogin.uid}`));
      const { result: post, ms } = await timed(() =>
        pendingLogin.agent.post(pendingLogin.action, { csrf: pendingLogin.csrf, email: USER.email, password: USER.password }),
      );
      expect(ms).toBeLessThan(FAIL_FAST_MS);
      expectUnavailablePage(post);
    });

    it('API clients get 503 JSON, not a page', async () => {
      const res = await fetch(`${app().url}/me`, { headers: { authorization: 'Bearer some-token-value-that-needs-a-lookup' } });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error?: unknown };
      expect(body.error).toBe('temporarily_unavailable');
    });

    it('discovery and the JWKS still answer: they need no database', async () => {
      const discovery = await fetch(`${app().url}/.well-known/openid-configuration`);
      expect(discovery.status).toBe(200);
      expect(((await discovery.json()) as { issuer?: unknown }).issuer).toBe(app().url);
      const jwks = await fetch(`${app().url}/jwks`);
      expect(jwks.status).toBe(200);
      expect(((await jwks.json()) as { keys?: unknown[] }).keys?.length).toBeGreaterThan(0);
    });

    it('logs the outage as a warning, without a stack trace', () => {
      const lines = app().logs.map((line) => JSON.parse(line) as { level: string; msg: string });
      expect(lines.some((l) => l.level === 'warn' && l.msg === 'database unavailable')).toBe(true);
      expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    });
  });

  describe('after it comes back', () => {
    beforeAll(async () => {
      await database!.start();
    }, 60_000);

    it(`is ready again within ${RECOVERY_MS / 1000} s without a restart`, async () => {
      const deadline = Date.now() + RECOVERY_MS;
      let status = 0;
      while (Date.now() < deadline) {
        status = (await fetch(`${app().url}/readyz`)).status;
        if (status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(status).toBe(200);
    }, RECOVERY_MS + FAIL_FAST_MS);

    it('exchanges the code that was refused during the outage (the refusal consumed nothing)', async () => {
      const res = await tokenRequest(pendingCode.code, pendingCode.verifier);
      expect(res.status).toBe(200);
      const tokens = (await res.json()) as { access_token?: string; id_token?: string };
      expect(tokens.access_token).toBeTruthy();
      expect(tokens.id_token).toBeTruthy();
      const userinfo = await fetch(`${app().url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(userinfo.status).toBe(200);
    });

    it('continues the interaction that was interrupted by the outage', async () => {
      const reply = await pendingLogin.agent.post(pendingLogin.action, { csrf: pendingLogin.csrf, email: USER.email, password: USER.password });
      expect(reply.status).toBe(303);
    });

    it('runs a complete sign-in and code exchange', async () => {
      const pkce = pkcePair();
      const callback = await signInThroughPages(new UserAgent(app().url), authorizationUrl(pkce.challenge), USER);
      expect(callback.status).toBe(303);
      expect(callback.location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
      const code = new URL(callback.location!).searchParams.get('code')!;
      const res = await tokenRequest(code, pkce.verifier);
      expect(res.status).toBe(200);
    });
  });
});
