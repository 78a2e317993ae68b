/**
 * Single sign-on: one sign-in in a browser serves every client that browser visits, until a
 * client asks for a fresh one (prompt=login, max_age) — and another browser starts from nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { useMovableSystemDate } from '../support/clock.js';
import type { MovableSystemDate } from '../support/clock.js';
import { authorizationRequest, callbackParams, redeem, rpFor, signInForTokens } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import type { Reply } from '../support/user-agent.js';
import { UserAgent, formAction, formField, signInThroughPages } from '../support/user-agent.js';

const USER = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

function isLoginPage(reply: Reply): boolean {
  return reply.status === 200 && reply.body.includes('name="password"') && /action="[^"]*\/login"/.test(reply.body);
}

function isConsentPage(reply: Reply): boolean {
  return reply.status === 200 && /action="[^"]*\/confirm"/.test(reply.body) && !reply.body.includes('name="password"');
}

describe('single sign-on across clients', () => {
  let server: TestServer;
  let clientA: CreatedClient;
  let clientB: CreatedClient;
  let rpA: oidc.Configuration;
  let rpB: oidc.Configuration;
  let accountId: string;
  /** The browser that signs in first; the tests below run in order and share it. */
  let browser: UserAgent;
  /** The provider's time (auth_time, max_age): moved past max_age instead of sleeping through it. */
  let date: MovableSystemDate;

  beforeAll(async () => {
    date = useMovableSystemDate();
    server = await startTestServer('sso');
    accountId = (await server.deps.accounts.create({ ...USER, emailVerified: true })).id;
    clientA = await server.deps.clients.create({ name: 'Client A', redirectUris: [REDIRECT_URI] });
    clientB = await server.deps.clients.create({ name: 'Client B', redirectUris: [REDIRECT_URI], public: true });
    rpA = await rpFor(server, clientA);
    rpB = await rpFor(server, clientB);
    browser = new UserAgent(server.url);
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    date.restore();
  });

  /** Follows an authorization request in `agent` up to the first page, or to the redirect leaving the server. */
  async function open(agent: UserAgent, started: Started): Promise<Reply> {
    return agent.follow(started.url.toString());
  }

  it('signs in once for client A', async () => {
    const { tokens } = await signInForTokens(rpA, browser, USER);
    expect(tokens.claims()?.sub).toBe(accountId);
  });

  it('serves client B in the same browser without the login form: only B’s consent page, then a code', async () => {
    const started = await authorizationRequest(rpB);
    const page = await open(browser, started);
    expect(isLoginPage(page)).toBe(false);
    expect(isConsentPage(page)).toBe(true);
    expect(page.body).toContain('Client B');
    expect(page.body).toContain('ada@example.com');

    let reply = await browser.post(formAction(page.body, '/confirm'), { csrf: formField(page.body, 'csrf') });
    expect(reply.status).toBe(303);
    reply = await browser.follow(reply.location!);
    expect(reply.status).toBe(303);
    expect(callbackParams(reply).get('code')).toBeTruthy();

    const tokens = await redeem(rpB, started, reply);
    const claims = tokens.claims()!;
    expect(claims.aud).toBe(clientB.clientId);
    expect(claims.sub).toBe(accountId);
  });

  it('returns to client A with a code and no page at all, now that A has consent', async () => {
    const started = await authorizationRequest(rpA);
    const reply = await open(browser, started);
    expect(reply.status).toBe(303);
    const code = callbackParams(reply).get('code');
    expect(code).toBeTruthy();
    expect((await redeem(rpA, started, reply)).claims()?.sub).toBe(accountId);
  });

  it('shows the login form again for prompt=login, and the sign-in then completes', async () => {
    const started = await authorizationRequest(rpB, { prompt: 'login' });
    const page = await open(browser, started);
    expect(isLoginPage(page)).toBe(true);

    const reply = await signInThroughPages(browser, started.url.toString(), USER);
    expect(callbackParams(reply).get('code')).toBeTruthy();
    expect((await redeem(rpB, started, reply)).claims()?.sub).toBe(accountId);
  });

  it('shows the login form again when max_age=1 has passed since the sign-in, and reports the new auth_time', async () => {
    date.advance(2000);
    const started = await authorizationRequest(rpA, { max_age: '1' });
    const page = await open(browser, started);
    expect(isLoginPage(page)).toBe(true);

    const before = Math.floor(Date.now() / 1000);
    const reply = await signInThroughPages(browser, started.url.toString(), USER);
    const claims = (await redeem(rpA, started, reply)).claims()!;
    expect(claims.sub).toBe(accountId);
    // OIDC Core §3.1.2.1: with max_age the ID token carries auth_time.
    expect(claims.auth_time).toBeGreaterThanOrEqual(before);
  });

  it('shows the login form to another browser, however signed-in the first one is', async () => {
    const other = new UserAgent(server.url);
    const started = await authorizationRequest(rpA);
    const page = await open(other, started);
    expect(isLoginPage(page)).toBe(true);
    // And the first browser is still signed in.
    const again = await open(browser, await authorizationRequest(rpA));
    expect(again.status).toBe(303);
    expect(callbackParams(again).get('code')).toBeTruthy();
  });
});
