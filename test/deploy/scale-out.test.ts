/**
 * Scale-out: app nodes keep no state of their own. Two server processes (src/main.ts through tsx,
 * as `npm start` runs it; no module state shared with each other or with the test) on one database,
 * behind a loopback proxy that is the issuer and sends each request to the node the test picks.
 * Whatever one node starts (a sign-in, a session, a key rotation, failed attempts), the other
 * carries on, also after the first one is stopped or killed.
 */
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import type { Connection } from 'mongoose';

import type { SigningKeyJson } from '../../src/cli/keys.commands.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import type { Core } from '../../src/core/core.js';
import { connectDatabase } from '../../src/db/connect.js';
import { delayAfter } from '../../src/limits/attempt-limiter.js';
import { createCliServices, createCliWorkspace, quietLogger, runCli } from '../support/cli.js';
import type { CliWorkspace } from '../support/cli.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, redeem, rpAt, signInForTokens, userinfoStatus } from '../support/rp.js';
import type { Started, Tokens } from '../support/rp.js';
import { freePort, startServerProcess } from '../support/server-process.js';
import type { ServerProcess } from '../support/server-process.js';
import { startSwitchingProxy } from '../support/switching-proxy.js';
import type { Served, SwitchingProxy } from '../support/switching-proxy.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';
import { within } from '../support/within.js';

type NodeName = 'a' | 'b';

const USER = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };
/** The per-account password rule on both nodes: this many failures in a row, then waits of 1, 2, 4 … s. */
const FREE_ATTEMPTS = 3;
const MAX_DELAY_SECONDS = 60;
/** Failed sign-ins per client IP in the window (15 min), on both nodes. */
const IP_FAILURE_LIMIT = 4;
/** How long a rotated key is published before it signs (`keys rotate` reads it). */
const PREPUBLISH_SECONDS = 6;

const kidOf = (jwt: string | undefined) => decodeProtectedHeader(jwt ?? '').kid;

function isLoginPage(reply: Reply): boolean {
  return reply.status === 200 && reply.body.includes('name="password"') && /action="[^"]*\/login"/.test(reply.body);
}

function isConsentPage(reply: Reply): boolean {
  return reply.status === 200 && /action="[^"]*\/confirm"/.test(reply.body) && !reply.body.includes('name="password"');
}

/** The error code a refused sign-in POST redirected to (`?error=…`), or null for a success. */
function errorOf(posted: Reply): string | null {
  if (posted.status !== 303 || !posted.location) throw new Error(`expected a 303, got ${posted.status}`);
  return new URL(posted.location).searchParams.get('error');
}

/** Goes on with a sign-in from the page it shows (login or consent) to the redirect back to the client. */
async function continueSignIn(agent: UserAgent, page: Reply, credentials: { email: string; password: string }): Promise<Reply> {
  let reply = page;
  for (let steps = 0; steps < 5 && reply.status === 200; steps += 1) {
    if (isLoginPage(reply)) {
      reply = await agent.post(formAction(reply.body, '/login'), { csrf: formField(reply.body, 'csrf'), ...credentials });
    } else if (isConsentPage(reply)) {
      reply = await agent.post(formAction(reply.body, '/confirm'), { csrf: formField(reply.body, 'csrf') });
    } else {
      return reply;
    }
    if (reply.status === 303 && reply.location) reply = await agent.follow(reply.location);
  }
  return reply;
}

describe('two server processes on one database, behind one issuer', () => {
  /** The work folder and database the nodes and the command line share, and the command line's settings. */
  let workspace: CliWorkspace;
  let proxy: SwitchingProxy;
  const ports = {} as Record<NodeName, number>;
  const nodes = {} as Record<NodeName, ServerProcess>;
  /** Every process started, for afterAll: whatever happened, none outlives the suite. */
  const started: ServerProcess[] = [];
  /** The test's own connection and the command line's services on the same database. */
  let connection: Connection;
  let services: Core;
  let accountId: string;
  /** Confidential, with refresh tokens. */
  let client: CreatedClient;
  /** A second relying party (public) for single sign-on. */
  let other: CreatedClient;

  const nodeEnv = (): NodeJS.ProcessEnv => ({
    ISSUER: proxy.url,
    MONGODB_URI: workspace.mongoUri,
    DATA_DIR: path.join(workspace.workDir, 'data'),
    // The proxy is the one hop in front: the client's address is the last X-Forwarded-For entry.
    TRUST_PROXY: 'true',
    PROXY_HOPS: '1',
    SIGN_IN_FREE_ATTEMPTS: String(FREE_ATTEMPTS),
    SIGN_IN_MAX_DELAY: String(MAX_DELAY_SECONDS),
    IP_SIGN_IN_FAILURE_LIMIT: String(IP_FAILURE_LIMIT),
    // As in startTestServer: the other per-IP limits would count the whole suite as one visitor.
    IP_CODE_SEND_LIMIT: '100000',
    IP_CLIENT_AUTH_FAILURE_LIMIT: '100000',
    EMAIL_CODE_ADDRESS_LIMIT: '10000',
    EMAIL_CODE_ADDRESS_IP_LIMIT: '10000',
  });

  async function startNode(name: NodeName): Promise<ServerProcess> {
    const node = await startServerProcess({ name, port: ports[name], env: nodeEnv(), cwd: workspace.workDir });
    started.push(node);
    nodes[name] = node;
    return node;
  }

  /** Which nodes served the requests the proxy handed on from `mark` (an index into `served`) on. */
  const nodesSince = (mark: number) => [...new Set(proxy.served.slice(mark).map((s) => s.node))].sort();
  const servedSince = (mark: number, match: (s: Served) => boolean) => proxy.served.slice(mark).filter(match);
  const jwksOf = async (node: ServerProcess) => ((await (await fetch(`${node.url}/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

  beforeAll(async () => {
    workspace = await createCliWorkspace('scale_out');
    ports.a = await freePort();
    ports.b = await freePort();
    proxy = await startSwitchingProxy(ports);
    // Both at once: they also take turns at the migrations, under the lock in the database.
    await Promise.all([startNode('a'), startNode('b')]);

    connection = await connectDatabase(workspace.mongoUri, quietLogger());
    services = createCliServices(connection);
    accountId = (await services.accounts.create({ ...USER, emailVerified: true })).id;
    client = await services.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
    other = await services.clients.create({ name: 'Calendar', redirectUris: [REDIRECT_URI], public: true });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(started.map((node) => node.stop('SIGKILL')));
    if (process.env.DEBUG_LOGS) for (const node of started) console.log(`--- node ${node.name}\n${node.output()}`);
    await proxy?.close();
    await services?.close();
    await connection?.dropDatabase().catch(() => undefined);
    await connection?.close();
    if (workspace) await rm(workspace.workDir, { recursive: true, force: true });
  }, 30_000);

  it('a sign-in on A; the refresh and userinfo on B', async () => {
    proxy.routeTo('a');
    const rp = await rpAt(proxy.url, client);
    const mark = proxy.served.length;
    const { tokens } = await signInForTokens(rp, new UserAgent(proxy.url), USER, { scope: 'openid email offline_access', prompt: 'consent' });
    expect(nodesSince(mark)).toEqual(['a']);
    expect(tokens.claims()?.sub).toBe(accountId);
    expect(tokens.refresh_token).toBeTruthy();

    proxy.routeTo('b');
    const onB = proxy.served.length;
    const refreshed: Tokens = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    expect(refreshed.claims()?.sub).toBe(accountId);
    expect(await oidc.fetchUserInfo(rp, refreshed.access_token, accountId)).toMatchObject({ sub: accountId, email: USER.email });
    // The access token A issued is good on B too; one B never issued is not.
    expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(200);
    expect((await userinfoStatus(rp, 'made-up-access-token')).status).toBe(401);
    expect(nodesSince(onB)).toEqual(['b']);
    expect(servedSince(onB, (s) => s.method === 'POST' && s.path === '/token')).toHaveLength(1);
  });

  it('single sign-on: a session started on A is recognised on B, and a logout on B ends it on A', async () => {
    proxy.routeTo('a');
    const rp = await rpAt(proxy.url, client);
    const rpOther = await rpAt(proxy.url, other);
    const browser = new UserAgent(proxy.url);
    const { tokens } = await signInForTokens(rp, browser, USER);

    // B: the other client's authorization request finds the session; no sign-in page, only that
    // client's consent, then a code.
    proxy.routeTo('b');
    const onB = proxy.served.length;
    const startedOther = await authorizationRequest(rpOther);
    const page = await browser.follow(startedOther.url.toString());
    expect(isLoginPage(page)).toBe(false);
    expect(isConsentPage(page)).toBe(true);
    expect(page.body).toContain('Calendar');
    expect(page.body).toContain(USER.email);
    const callback = await continueSignIn(browser, page, USER);
    const otherTokens = await redeem(rpOther, startedOther, callback);
    expect(otherTokens.claims()).toMatchObject({ sub: accountId, aud: other.clientId });
    expect(nodesSince(onB)).toEqual(['b']);

    // RP-initiated logout on B.
    const logout = await browser.get(`${proxy.url}/session/end?${new URLSearchParams({ id_token_hint: otherTokens.id_token!, client_id: other.clientId })}`);
    expect(logout.status).toBe(200);
    const action = /<form method="post" action="([^"]+)"/.exec(logout.body)?.[1];
    expect(action).toBeDefined();
    const confirmed = await browser.post(new URL(action!.replace(/&amp;/g, '&'), proxy.url).toString(), { xsrf: formField(logout.body, 'xsrf'), logout: 'yes' });
    expect(confirmed.status).toBe(303);
    const done = await browser.follow(confirmed.location!);
    expect(done.status).toBe(200);
    expect(done.body).toContain('You are signed out');
    expect(nodesSince(onB)).toEqual(['b']);

    // A: the same browser must sign in again, and the grant A issued tokens under went with the session.
    proxy.routeTo('a');
    const onA = proxy.served.length;
    const again = await browser.follow((await authorizationRequest(rp)).url.toString());
    expect(isLoginPage(again)).toBe(true);
    expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(401);
    expect(nodesSince(onA)).toEqual(['a']);
  });

  it('a key rotated by the CLI: B publishes it before it signs, and what A signs with it verifies at B', async () => {
    proxy.routeTo('a');
    const rp = await rpAt(proxy.url, client);
    const { tokens: before } = await signInForTokens(rp, new UserAgent(proxy.url), USER, { scope: 'openid email offline_access', prompt: 'consent' });
    const oldKid = kidOf(before.id_token);
    expect(await jwksOf(nodes.b)).toContain(oldKid);

    // `npm run cli -- keys rotate`: a process of its own, on the same database, knowing neither node.
    const cliEnv = {
      ...workspace.env,
      KEY_PREPUBLISH_SECONDS: String(PREPUBLISH_SECONDS),
      LOG_LEVEL: 'warn',
    };
    const rotation = await runCli(['keys', 'rotate', '--alg', 'RS256', '--json'], cliEnv, workspace.workDir);
    expect({ code: rotation.code, stderr: rotation.stderr }).toEqual({ code: 0, stderr: '' });
    const [key] = JSON.parse(rotation.stdout) as SigningKeyJson[];
    expect(key).toMatchObject({ alg: 'RS256', state: 'pending' });
    const kid = key!.kid;
    const activation = Date.parse(key!.activated_at);

    // Both nodes publish it within their key ring's tick (a second), before it signs.
    await within(3000, async () => (await jwksOf(nodes.b)).includes(kid) && (await jwksOf(nodes.a)).includes(kid));
    expect(Date.now()).toBeLessThan(activation);

    // A relying party reads the JWKS from B now (every other request goes to A) and caches it.
    const jwksFromB = (request: { url?: string }) => (request.url?.startsWith('/jwks') ? 'b' : 'a');
    proxy.routeTo(jwksFromB);
    const mark = proxy.served.length;
    const rpCaching = await rpAt(proxy.url, client);
    let current: Tokens = await oidc.refreshTokenGrant(rpCaching, before.refresh_token!);
    expect(kidOf(current.id_token)).toBe(oldKid);
    expect(servedSince(mark, (s) => s.path === '/jwks').map((s) => s.node)).toEqual(['b']);

    // From its activation on, A signs with the new key; openid-client verifies against B's JWKS.
    let refreshToken = current.refresh_token ?? before.refresh_token!;
    await within(
      activation - Date.now() + 5000,
      async () => {
        if (Date.now() < activation) return false;
        current = await oidc.refreshTokenGrant(rpCaching, refreshToken);
        refreshToken = current.refresh_token ?? refreshToken;
        return kidOf(current.id_token) === kid;
      },
      200,
    );
    expect(current.claims()?.sub).toBe(accountId);
    const jwksOfB = createRemoteJWKSet(new URL(`${nodes.b.url}/jwks`));
    const verified = await jwtVerify(current.id_token!, jwksOfB, { issuer: proxy.url, audience: client.clientId });
    expect(verified.protectedHeader.kid).toBe(kid);

    // A fresh sign-in on A, its ID token checked by openid-client against the JWKS as B serves it.
    const sinceFresh = proxy.served.length;
    const { tokens: fresh } = await signInForTokens(await rpAt(proxy.url, client), new UserAgent(proxy.url), USER, { scope: 'openid email' });
    expect(kidOf(fresh.id_token)).toBe(kid);
    expect(servedSince(sinceFresh, (s) => s.path === '/jwks').map((s) => s.node)).toEqual(['b']);
    expect(servedSince(sinceFresh, (s) => s.path === '/token').map((s) => s.node)).toEqual(['a']);

    // B introspects A's access token, and its provider accepts A's new-key ID token as a logout hint.
    proxy.routeTo('b');
    const introspected = await oidc.tokenIntrospection(rp, fresh.access_token);
    expect(introspected).toMatchObject({ active: true, sub: accountId, client_id: client.clientId });
    expect((await oidc.tokenIntrospection(rp, 'made-up-access-token')).active).toBe(false);
    const hint = (token: string) => `${proxy.url}/session/end?${new URLSearchParams({ id_token_hint: token, client_id: client.clientId })}`;
    expect((await new UserAgent(proxy.url).get(hint(fresh.id_token!))).status).toBe(200);
    const [header, payload, signature] = fresh.id_token!.split('.');
    const forged = `${header}.${payload}.${signature!.slice(0, -4)}AAAA`;
    expect((await new UserAgent(proxy.url).get(hint(forged))).status).toBe(400);
  }, 120_000);

  describe('throttles count across both nodes', () => {
    /** A login page in a new browser (its interaction opened on `node`). */
    async function loginPage(node: NodeName): Promise<{ agent: UserAgent; page: Reply }> {
      proxy.routeTo(node);
      const agent = new UserAgent(proxy.url);
      const page = await agent.follow((await authorizationRequest(await rpAt(proxy.url, client))).url.toString());
      expect(isLoginPage(page)).toBe(true);
      return { agent, page };
    }

    /** One password POST on `node` from the login page (not followed: the redirect says how it went). */
    function attempt({ agent, page }: { agent: UserAgent; page: Reply }, node: NodeName, email: string, password: string): Promise<Reply> {
      proxy.routeTo(node);
      return agent.post(formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), email, password });
    }

    it('per account: failures on A and B add up to the free attempts; then both refuse, even the right password', async () => {
      proxy.clientAddress = '198.51.100.4';
      const target = { email: 'grace@example.com', password: 'another correct horse battery' };
      await services.accounts.create({ ...target, emailVerified: true });
      const form = await loginPage('a');
      const key = services.limits.password(target.email).key;

      const order: NodeName[] = ['a', 'b', 'a'];
      expect(order).toHaveLength(FREE_ATTEMPTS);
      for (const [i, node] of order.entries()) {
        expect(errorOf(await attempt(form, node, target.email, `wrong guess ${i}`))).toBe('wrong_password');
      }
      expect(await services.limits.limiter.count(key)).toBe(FREE_ATTEMPTS);
      // The next attempt, on either node, must wait: nobody checks the password meanwhile.
      for (const node of ['b', 'a'] as const) {
        const refused = await attempt(form, node, target.email, target.password);
        expect(errorOf(refused)).toBe('throttled');
        expect(Number(new URL(refused.location!).searchParams.get('wait'))).toBeGreaterThanOrEqual(1);
      }
      expect(await services.limits.limiter.count(key)).toBe(FREE_ATTEMPTS);

      // After the wait, the owner gets in on B, and that forgets the failures A counted too.
      await within(
        (delayAfter(FREE_ATTEMPTS, { freeAttempts: FREE_ATTEMPTS, maxDelaySeconds: MAX_DELAY_SECONDS }) + 3) * 1000,
        async () => errorOf(await attempt(form, 'b', target.email, target.password)) === null,
        250,
      );
      expect(await services.limits.limiter.count(key)).toBe(0);
    });

    it(`per IP: ${IP_FAILURE_LIMIT} failures in the window, split over A and B, and no more on either`, async () => {
      proxy.clientAddress = '198.51.100.5';
      const form = await loginPage('b');
      // A new unknown address each time, so only the IP's count can refuse.
      const nodeOrder: NodeName[] = ['a', 'b', 'a', 'b'];
      expect(nodeOrder).toHaveLength(IP_FAILURE_LIMIT);
      for (const [i, node] of nodeOrder.entries()) {
        expect(errorOf(await attempt(form, node, `nobody${i}@example.com`, 'wrong guess'))).toBe('wrong_password');
      }
      for (const node of ['a', 'b'] as const) {
        expect(errorOf(await attempt(form, node, `nobody.${node}@example.com`, 'wrong guess'))).toBe('throttled_ip');
      }
      expect(await services.limits.limiter.count(services.limits.signInFromIp('198.51.100.5').key)).toBe(IP_FAILURE_LIMIT);
      // Another network is not held up by it.
      proxy.clientAddress = '198.51.100.6';
      expect(errorOf(await attempt(form, 'a', 'nobody.else@example.com', 'wrong guess'))).toBe('wrong_password');
    });

    it('a burst of 40 concurrent guesses split over A and B checks no more passwords than one node would allow', async () => {
      proxy.clientAddress = '198.51.100.7';
      const email = 'burst.target@example.com';
      const forms = await Promise.all((['a', 'b', 'a', 'b'] as const).map((node) => loginPage(node)));
      let turn = 0;
      proxy.routeTo(() => (turn++ % 2 === 0 ? 'a' : 'b'));
      const mark = proxy.served.length;
      const startedAt = Date.now();
      const replies = await Promise.all(
        Array.from({ length: 40 }, (_, i) => {
          const { agent, page } = forms[i % forms.length]!;
          return agent.post(formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), email, password: `wrong guess ${i}` });
        }),
      );
      const seconds = (Date.now() - startedAt) / 1000;
      const posts = servedSince(mark, (s) => s.method === 'POST');
      expect(posts.filter((s) => s.node === 'a')).toHaveLength(20);
      expect(posts.filter((s) => s.node === 'b')).toHaveLength(20);
      expect(posts.filter((s) => s.status >= 500)).toEqual([]);

      const outcomes = replies.map(errorOf);
      expect(outcomes.every((o) => o === 'wrong_password' || o === 'throttled' || o === 'throttled_ip')).toBe(true);
      const checked = outcomes.filter((o) => o === 'wrong_password').length;
      // The free attempts at once, then one after each delay the burst outlasted; and never past the IP's limit.
      const rule = { freeAttempts: FREE_ATTEMPTS, maxDelaySeconds: MAX_DELAY_SECONDS };
      let allowed = 0;
      for (let elapsed = 0, f = 0; elapsed + delayAfter(f, rule) <= seconds; f += 1) {
        elapsed += delayAfter(f, rule);
        allowed += 1;
      }
      expect(checked).toBeLessThanOrEqual(Math.min(allowed, IP_FAILURE_LIMIT));
      // Exact: every checked password counted once, on whichever node checked it.
      expect(await services.limits.limiter.count(services.limits.password(email).key)).toBe(checked);
    }, 90_000);

    afterAll(() => {
      if (proxy) proxy.clientAddress = undefined;
    });
  });

  describe('back-channel logout across nodes', () => {
    it('a session started on A and ended on B: the RP’s receiver gets one logout token for it, and A no longer knows the session', async () => {
      // The relying party's back-channel endpoint: records every POST.
      const received: { contentType: string | undefined; body: string }[] = [];
      const receiver = http.createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => {
          received.push({ contentType: req.headers['content-type'], body });
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = receiver.address() as AddressInfo;
        const bcClient = await services.clients.create({
          name: 'Wiki',
          redirectUris: [REDIRECT_URI],
          backchannelLogoutUri: `http://127.0.0.1:${port}/backchannel-logout`,
          backchannelLogoutSessionRequired: true,
        });

        proxy.routeTo('a');
        const rp = await rpAt(proxy.url, bcClient);
        const browser = new UserAgent(proxy.url);
        const { tokens } = await signInForTokens(rp, browser, USER);
        const { sid } = tokens.claims()!;
        expect(typeof sid).toBe('string');

        proxy.routeTo('b');
        const onB = proxy.served.length;
        const logout = await browser.get(`${proxy.url}/session/end?${new URLSearchParams({ id_token_hint: tokens.id_token!, client_id: bcClient.clientId })}`);
        const action = /<form method="post" action="([^"]+)"/.exec(logout.body)?.[1];
        expect(action).toBeDefined();
        const confirmed = await browser.post(new URL(action!.replace(/&amp;/g, '&'), proxy.url).toString(), { xsrf: formField(logout.body, 'xsrf'), logout: 'yes' });
        expect(confirmed.status).toBe(303);
        expect(nodesSince(onB)).toEqual(['b']);

        // Delivered by a node's outbox worker (B's is kicked at once); verified against A's JWKS.
        await within(15_000, async () => received.length > 0);
        expect(received).toHaveLength(1);
        expect(received[0]!.contentType).toContain('application/x-www-form-urlencoded');
        const logoutToken = new URLSearchParams(received[0]!.body).get('logout_token')!;
        const { payload, protectedHeader } = await jwtVerify(logoutToken, createRemoteJWKSet(new URL(`${nodes.a.url}/jwks`)), {
          issuer: proxy.url,
          audience: bcClient.clientId,
          typ: 'logout+jwt',
        });
        expect(protectedHeader.typ).toBe('logout+jwt');
        expect(payload).toMatchObject({ sub: accountId, sid, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } });
        expect(payload.nonce).toBeUndefined();

        // A: the session is gone (a sign-in page again), and the tokens of its grant with it.
        proxy.routeTo('a');
        const again = await browser.follow((await authorizationRequest(rp)).url.toString());
        expect(isLoginPage(again)).toBe(true);
        expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(401);
        // Exactly once, although both nodes run a delivery worker.
        await new Promise((resolve) => setTimeout(resolve, 1000));
        expect(received).toHaveLength(1);
      } finally {
        await new Promise<void>((resolve) => receiver.close(() => resolve()));
      }
    });
  });

  describe('rolling restart: a node going away loses nothing', () => {
    it('SIGTERM on A after the first sign-in page: B serves the rest of the sign-in and the token exchange', async () => {
      proxy.routeTo('a');
      const rp = await rpAt(proxy.url, client);
      const browser = new UserAgent(proxy.url);
      const startedSignIn: Started = await authorizationRequest(rp);
      const mark = proxy.served.length;
      const page = await browser.follow(startedSignIn.url.toString());
      expect(isLoginPage(page)).toBe(true);
      expect(nodesSince(mark)).toEqual(['a']);

      // A stops cleanly (exit code 0) and is gone.
      expect(await nodes.a.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      await expect(fetch(`${nodes.a.url}/healthz`)).rejects.toThrow();

      proxy.routeTo('b');
      const onB = proxy.served.length;
      const callback = await continueSignIn(browser, page, USER);
      expect(callbackParams(callback).get('code')).toBeTruthy();
      const tokens = await redeem(rp, startedSignIn, callback);
      expect(tokens.claims()?.sub).toBe(accountId);
      expect(nodesSince(onB)).toEqual(['b']);
      expect(servedSince(onB, (s) => s.method === 'POST' && s.path.endsWith('/login'))).toHaveLength(1);

      // A comes back on its port, as in a rolling restart.
      await startNode('a');
    }, 120_000);

    it('SIGKILL on B after the password step: A serves the consent and the token exchange', async () => {
      proxy.routeTo('b');
      const rp = await rpAt(proxy.url, client);
      const browser = new UserAgent(proxy.url);
      const startedSignIn: Started = await authorizationRequest(rp);
      const mark = proxy.served.length;
      const login = await browser.follow(startedSignIn.url.toString());
      expect(isLoginPage(login)).toBe(true);
      const posted = await browser.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), ...USER });
      expect(posted.status).toBe(303);
      const consent = await browser.follow(posted.location!);
      expect(isConsentPage(consent)).toBe(true);
      expect(nodesSince(mark)).toEqual(['b']);

      // No shutdown at all: whatever B held only in memory is lost.
      expect(await nodes.b.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
      await expect(fetch(`${nodes.b.url}/healthz`)).rejects.toThrow();

      proxy.routeTo('a');
      const onA = proxy.served.length;
      const callback = await continueSignIn(browser, consent, USER);
      const tokens = await redeem(rp, startedSignIn, callback);
      expect(tokens.claims()?.sub).toBe(accountId);
      expect(nodesSince(onA)).toEqual(['a']);
    }, 60_000);
  });
});
