/**
 * Limits per client IP and per address, through the real pages and endpoints, shared by every
 * node: refused sign-ins per IP, codes asked for per IP, codes mailed to one address (in all and
 * from one IP), and failed client authentication at the token endpoint. Each answers 429 with
 * Retry-After (a page, or OAuth error JSON). The server sits behind a (simulated) proxy, so the
 * client IP is the right-most X-Forwarded-For entry.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { LIMIT_ATTEMPTS_COLLECTION } from '../../src/limits/attempt-limiter.js';
import { ipNetwork } from '../../src/limits/sign-in-limits.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, oauthError, rpFor } from '../support/rp.js';
import { pageKind } from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/** A browser behind the proxy whose requests come from `ip`. */
class BrowserAt extends UserAgent {
  constructor(
    baseUrl: string,
    readonly ip: string,
  ) {
    super(baseUrl);
  }

  override request(url: string, init: RequestInit = {}): Promise<Reply> {
    const headers = new Headers(init.headers);
    // What a client could write itself comes first; the proxy appends the address it saw.
    headers.set('x-forwarded-for', `1.1.1.1, ${this.ip}`);
    return super.request(url, { ...init, headers });
  }
}

describe('per-IP and per-address limits', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;
  let client: CreatedClient;
  let seq = 0;
  const address = (tag: string) => `${tag}.${(seq += 1)}@example.com`;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('ip_limits', {
      TRUST_PROXY: 'true',
      PROXY_HOPS: '1',
      IP_SIGN_IN_FAILURE_LIMIT: '5',
      IP_CODE_SEND_LIMIT: '3',
      IP_CLIENT_AUTH_FAILURE_LIMIT: '3',
      EMAIL_CODE_ADDRESS_LIMIT: '4',
      EMAIL_CODE_ADDRESS_IP_LIMIT: '2',
    }));
    client = await server.deps.clients.create({ name: 'IP app', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, client);
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  async function loginPageAt(ip: string): Promise<{ agent: BrowserAt; page: Reply }> {
    const agent = new BrowserAt(server.url, ip);
    const page = await agent.follow((await authorizationRequest(rp)).url.toString());
    expect(pageKind(page)).toBe('login');
    return { agent, page };
  }

  /** Posts a form and follows its 303 to the page (post/redirect/get): a refusal's status is that page's. */
  const post = async (at: { agent: UserAgent; page: Reply }, end: string, fields: Record<string, string>) => {
    const reply = await at.agent.submit(formAction(at.page.body, end), { csrf: formField(at.page.body, 'csrf'), ...fields });
    expect(reply.posted.status).toBe(303);
    return reply;
  };
  /** A code request that went through: the code page. */
  const CODE_PAGE = 200;

  const expectRefused = (reply: Reply, text: RegExp) => {
    expect(reply.status).toBe(429);
    expect(Number(reply.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
    expect(reply.body).toMatch(text);
  };

  it('counts IPv6 addresses by their /64 and IPv4 (also IPv4-mapped) by the address', () => {
    expect(ipNetwork('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(ipNetwork('2001:DB8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(ipNetwork('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(ipNetwork('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(ipNetwork('203.0.113.9')).toBe('203.0.113.9');
    expect(ipNetwork('not an address')).toBe('unknown');
  });

  it('refused passwords: after IP_SIGN_IN_FAILURE_LIMIT from one network (any addresses), it waits; other networks do not', async () => {
    const ip = '2001:db8:77:1::10';
    for (let i = 0; i < 5; i += 1) {
      // Another address each time: spraying, which no per-address limit would see.
      expect((await post(await loginPageAt(i % 2 ? ip : '2001:db8:77:1::99'), '/login', { email: address('spray'), password: 'Summer2026!' })).status).toBe(401);
    }
    const refused = await post(await loginPageAt('2001:db8:77:1:ffff::1'), '/login', { email: address('spray'), password: 'Summer2026!' });
    expectRefused(refused, /Too many failed sign-in attempts from your network/);
    // Another network is not held up.
    expect((await post(await loginPageAt('2001:db8:78:1::10'), '/login', { email: address('spray'), password: 'Summer2026!' })).status).toBe(401);
    // The limit is the IP's: the refused attempts cost the addresses nothing.
    expect(await server.deps.limits.limiter.count(server.deps.limits.signInFromIp(ip).key)).toBe(5);
  });

  it('100 concurrent refused passwords from one IP for 100 addresses: at most the limit are checked', async () => {
    const ip = '198.51.100.50';
    const opened = await Promise.all(Array.from({ length: 4 }, () => loginPageAt(ip)));
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => post(opened[i % 4]!, '/login', { email: address('burst'), password: `guess ${i}` })));
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5);
    expect(await server.deps.limits.limiter.count(server.deps.limits.signInFromIp(ip).key)).toBe(statuses.filter((s) => s === 401).length);
  }, 120_000);

  it('codes asked for from one IP: IP_CODE_SEND_LIMIT in the window, then 429; another IP is not held up', async () => {
    const ip = '198.51.100.60';
    for (let i = 0; i < 3; i += 1) expect((await post(await loginPageAt(ip), '/email-code', { email: address('send') })).status).toBe(CODE_PAGE);
    expectRefused(await post(await loginPageAt(ip), '/email-code', { email: address('send') }), /Too many codes were asked for from your network/);
    expect((await post(await loginPageAt('198.51.100.61'), '/email-code', { email: address('send') })).status).toBe(CODE_PAGE);
  });

  it('codes mailed to one address: at most EMAIL_CODE_ADDRESS_IP_LIMIT from one IP and EMAIL_CODE_ADDRESS_LIMIT in all, known address or not', async () => {
    const known = address('victim');
    await server.deps.accounts.create({ email: known, password: 'a password long enough' });
    const unknown = address('nobody');
    const answers: Record<string, number[]> = { [known]: [], [unknown]: [] };
    for (const [round, email] of [known, unknown].entries()) {
      // Networks of their own per round, so that IP_CODE_SEND_LIMIT (3) never decides.
      for (const host of [1, 1, 1, 2, 2, 3]) {
        const ip = `192.0.2.${round * 10 + host}`;
        const reply = await post(await loginPageAt(ip), '/email-code', { email });
        answers[email]!.push(reply.status);
        if (reply.status === 429) expect(reply.body).toMatch(/Too many codes were sent to this address/);
      }
    }
    // Two from the first IP, the third refused; two from the second; the address's four are used.
    expect(answers[known]).toEqual([CODE_PAGE, CODE_PAGE, 429, CODE_PAGE, CODE_PAGE, 429]);
    expect(answers[unknown]).toEqual(answers[known]);
    expect(smtp.countFor(known)).toBe(4);
    expect(smtp.countFor(unknown)).toBe(0);
  });

  describe('failed client authentication at the token endpoint', () => {
    const tokenRequest = (ip: string, secret: string) =>
      fetch(`${server.url}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${client.clientId}:${secret}`).toString('base64')}`,
          'x-forwarded-for': ip,
        },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: REDIRECT_URI, code_verifier: 'x'.repeat(43) }),
      });

    it('after IP_CLIENT_AUTH_FAILURE_LIMIT failures, even the right secret waits (429 JSON with Retry-After); other IPs do not', async () => {
      const ip = '203.0.113.70';
      for (let i = 0; i < 3; i += 1) {
        const res = await tokenRequest(ip, `wrong-secret-${i}`);
        expect(res.status).toBe(401);
        expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
      }
      const refused = await tokenRequest(ip, client.clientSecret!);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(refused.headers.get('cache-control')).toBe('no-store');
      expect(await refused.json()).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/Too many failed client authentications/) });

      // The right secret from another address reaches the grant (and fails there: the code is made up).
      const elsewhere = await tokenRequest('203.0.113.71', client.clientSecret!);
      expect(elsewhere.status).toBe(400);
      expect(((await elsewhere.json()) as { error: string }).error).toBe('invalid_grant');
    });

    it('a relying party (openid-client) sees the refusal as an OAuth error', async () => {
      // From the loopback address openid-client connects from (no proxy header: the socket's).
      const wrong = await oidc.discovery(new URL(server.url), client.clientId, 'not the secret', undefined, { execute: [oidc.allowInsecureRequests] });
      const loopback = server.deps.limits.clientAuthFromIp('127.0.0.1');
      for (let i = 0; i < 3; i += 1) expect(await oauthError(oidc.clientCredentialsGrant(wrong, {}))).toBe('invalid_client');
      expect(await server.deps.limits.limiter.count(loopback.key)).toBe(3);
      expect(await oauthError(oidc.clientCredentialsGrant(rp, {}))).toBe('temporarily_unavailable');
      await server.deps.limits.limiter.forget([loopback.key]);
    });
  });

  describe('what the client authentication limit costs a well-behaved client', () => {
    let counted: TestServer;
    let service: CreatedClient;
    let limitCommands = 0;

    beforeAll(async () => {
      counted = await startTestServer('client_auth_cost', { monitorCommands: true, env: { IP_CLIENT_AUTH_FAILURE_LIMIT: '3' } });
      service = await counted.deps.clients.create({ name: 'Busy service', redirectUris: [REDIRECT_URI] });
      counted.connection.getClient().on('commandStarted', (event) => {
        const command = event.command as Record<string, unknown>;
        if (['find', 'insert', 'count', 'aggregate', 'delete', 'update'].some((verb) => command[verb] === LIMIT_ATTEMPTS_COLLECTION)) limitCommands += 1;
      });
    });
    afterAll(() => counted?.close());

    const tokenRequest = (secret: string) =>
      fetch(`${counted.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${service.clientId}:${secret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: 'made-up', redirect_uri: REDIRECT_URI, code_verifier: 'x'.repeat(43) }),
      });

    it('no database command for an address that never failed; the shared count once it has', async () => {
      // Authenticated (the made-up code then fails at the grant): nothing read or written for the limit.
      for (let i = 0; i < 5; i += 1) expect((await tokenRequest(service.clientSecret!)).status).toBe(400);
      expect(limitCommands).toBe(0);
      // One failure is recorded, and from then on this node looks at the shared count.
      expect((await tokenRequest('wrong')).status).toBe(401);
      expect(limitCommands).toBe(1);
      expect((await tokenRequest(service.clientSecret!)).status).toBe(400);
      expect(limitCommands).toBe(2);
      // The failures another node records are seen here too: the limit holds across nodes.
      const gate = counted.deps.limits.clientAuthFromIp('127.0.0.1');
      await counted.deps.limits.limiter.record(gate);
      await counted.deps.limits.limiter.record(gate);
      expect((await tokenRequest(service.clientSecret!)).status).toBe(429);
    });
  });
});
