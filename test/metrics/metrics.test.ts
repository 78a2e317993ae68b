import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { startMetricsServer } from '../../src/metrics/metrics.routes.js';
import type { MetricsServer } from '../../src/metrics/metrics.routes.js';
import { countCommands } from '../support/command-counter.js';
import { startLogoutReceiver } from '../support/logout-receiver.js';
import { within } from '../support/within.js';
import { REDIRECT_URI, authorizationRequest, redeem, rpFor } from '../support/rp.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS, startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField, signInThroughPages } from '../support/user-agent.js';

/**
 * Prometheus metrics on the real server: who may read them, what they count after real sign-ins
 * and token requests, and that labels stay bounded whatever paths are requested.
 */

const TOKEN = randomBytes(32).toString('base64url');
const USER = { email: 'metrics.user@example.com', password: 'a long and correct password', name: 'Metrics User' };
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = (match[2] ?? '').split(/,(?=[a-zA-Z_]+=")/);
    if (wanted.every((pair) => have.includes(pair))) return Number(match[3]);
  }
  return undefined;
}

/** Every value label `label` takes in `name`'s samples. */
function labelValues(text: string, name: string, label: string): Set<string> {
  const values = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const match = new RegExp(`[{,]${label}="([^"]*)"`).exec(line);
    if (match?.[1] !== undefined) values.add(match[1]);
  }
  return values;
}

describe('metrics behind a bearer token on the main port', () => {
  let server: TestServer;
  let confidential: CreatedClient;
  let service: CreatedClient;

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    return res.text();
  };

  beforeAll(async () => {
    server = await startTestServer('metrics', { monitorCommands: true, env: { METRICS_TOKEN: TOKEN, SIGN_IN_FREE_ATTEMPTS: '2' } });
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    confidential = await server.deps.clients.create({ name: 'Metrics RP', redirectUris: [REDIRECT_URI] });
    service = await server.deps.clients.create(
      { name: 'Metrics service', grantTypes: ['client_credentials'], redirectUris: [], tokenEndpointAuthMethod: 'client_secret_basic', scopes: ['admin:audit:read'] },
      SETUP,
    );
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
  });

  it('refuses /metrics without a token, with a wrong one, and with another scheme: 401 and no metric in the answer', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${randomBytes(32).toString('base64url')}` },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
      { authorization: `Basic ${Buffer.from(`metrics:${TOKEN}`).toString('base64')}` },
      { authorization: 'Bearer' },
    ];
    for (const headers of attempts) {
      const res = await fetch(`${server.url}/metrics`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
      const body = await res.text();
      expect(body).not.toMatch(/http_requests_total|# HELP|# TYPE|process_/);
    }
    // Not for writing either, token or not.
    const post = await fetch(`${server.url}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(post.status).toBe(405);
    expect(await post.text()).not.toContain('# HELP');
  });

  it('serves the Prometheus text format to the bearer of the token, default process metrics included', async () => {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const text = await res.text();
    expect(text).toContain('# TYPE http_requests_total counter');
    expect(text).toContain('# TYPE http_request_duration_seconds histogram');
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');
    expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');
    // The refusals of the test before were counted, under the fixed route label.
    expect(sample(text, 'http_requests_total', { method: 'GET', route: '/metrics', status: '401' })).toBe(6);
  });

  it('counts a sign-in, a wrong password, tokens by grant type and database commands, with the right labels', async () => {
    const before = await scrape();
    const signInsBefore = sample(before, 'auth_sign_ins_total', { method: 'password', outcome: 'success', reason: 'none' }) ?? 0;

    // A sign-in through the pages, and the code redeemed at the token endpoint.
    const rp = await rpFor(server, confidential);
    const started = await authorizationRequest(rp, { scope: 'openid email' });
    const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER);
    const tokens = await redeem(rp, started, callback);
    expect(tokens.access_token).toBeTruthy();

    // A wrong password for the same person, in a browser of its own.
    const other = new UserAgent(server.url);
    const login = await other.follow((await authorizationRequest(rp)).url.toString());
    const refused = await other.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: 'not the password' });
    expect([200, 303]).toContain(refused.status);

    // A client credentials token.
    const cc = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${service.clientId}:${service.clientSecret ?? ''}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin:audit:read' }).toString(),
    });
    expect(cc.status).toBe(200);

    const text = await scrape();
    expect(sample(text, 'auth_sign_ins_total', { method: 'password', outcome: 'success', reason: 'none' })).toBe(signInsBefore + 1);
    expect(sample(text, 'auth_sign_ins_total', { method: 'password', outcome: 'failure', reason: 'wrong_password' })).toBe(1);
    expect(sample(text, 'oidc_tokens_issued_total', { grant_type: 'authorization_code', token_type: 'access_token' })).toBe(1);
    expect(sample(text, 'oidc_tokens_issued_total', { grant_type: 'authorization_code', token_type: 'id_token' })).toBe(1);
    expect(sample(text, 'oidc_tokens_issued_total', { grant_type: 'client_credentials', token_type: 'access_token' })).toBe(1);
    expect(sample(text, 'oidc_tokens_issued_total', { grant_type: 'client_credentials', token_type: 'refresh_token' })).toBeUndefined();
    // Requests by route pattern: the provider's token endpoint, our sign-in form (never its uid).
    expect(sample(text, 'http_requests_total', { method: 'POST', route: '/token', status: '200' })).toBe(2);
    expect(sample(text, 'http_request_duration_seconds_count', { method: 'POST', route: '/token', status: '200' })).toBe(2);
    const routes = labelValues(text, 'http_requests_total', 'route');
    expect([...routes].some((route) => route.startsWith('/interaction/:uid'))).toBe(true);
    expect([...routes].some((route) => route.startsWith('/auth'))).toBe(true);
    const uid = new URL(login.url).pathname.split('/')[2] ?? 'no-uid';
    expect(text).not.toContain(uid);
    // The driver's command monitoring: finds and inserts, timed.
    expect(sample(text, 'db_command_duration_seconds_count', { command: 'find', outcome: 'success' })).toBeGreaterThan(0);
    expect(sample(text, 'db_command_duration_seconds_count', { command: 'insert', outcome: 'success' })).toBeGreaterThan(0);
  });

  it('counts password failures by reason, and throttle refusals', async () => {
    const agent = new UserAgent(server.url);
    const rp = await rpFor(server, confidential);
    const email = `nobody-${randomBytes(4).toString('hex')}@example.com`;
    // SIGN_IN_FREE_ATTEMPTS=2: the third guess at one address within the window waits.
    for (let i = 0; i < 3; i += 1) {
      const login = await agent.follow((await authorizationRequest(rp)).url.toString());
      await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email, password: `guess number ${i}` });
    }
    const text = await scrape();
    expect(sample(text, 'auth_sign_ins_total', { method: 'password', outcome: 'failure', reason: 'unknown_account' })).toBe(2);
    expect(sample(text, 'auth_sign_ins_total', { method: 'password', outcome: 'failure', reason: 'throttled' })).toBe(1);
    expect(sample(text, 'auth_throttle_refusals_total', { action: 'sign_in.password', reason: 'throttled' })).toBe(1);
  });

  it('counts second factors by method and outcome, from the audit events the sign-in pages record', async () => {
    const actor = { type: 'account' as const, id: 'acct-metrics' };
    await server.deps.audit.record({ action: 'mfa.totp', outcome: 'success', actor });
    await server.deps.audit.record({ action: 'mfa.totp', outcome: 'failure', actor, reason: 'code_invalid' });
    await server.deps.audit.record({ action: 'mfa.recovery_code', outcome: 'failure', actor, reason: 'throttled_ip' });
    // A reason that is not a code (never from our pages) cannot mint a label value.
    await server.deps.audit.record({ action: 'mfa.email_code', outcome: 'failure', actor, reason: 'free text with "quotes" and spaces' });
    const text = await scrape();
    expect(sample(text, 'auth_second_factor_total', { method: 'totp', outcome: 'success', reason: 'none' })).toBe(1);
    expect(sample(text, 'auth_second_factor_total', { method: 'totp', outcome: 'failure', reason: 'code_invalid' })).toBe(1);
    expect(sample(text, 'auth_second_factor_total', { method: 'recovery_code', outcome: 'failure', reason: 'throttled_ip' })).toBe(1);
    expect(sample(text, 'auth_throttle_refusals_total', { action: 'mfa.recovery_code', reason: 'throttled_ip' })).toBe(1);
    expect(sample(text, 'auth_second_factor_total', { method: 'email_code', outcome: 'failure', reason: 'other' })).toBe(1);
    expect(text).not.toContain('free text');
    // Other audit actions are not sign-ins.
    expect(labelValues(text, 'auth_sign_ins_total', 'method')).toEqual(new Set(['password']));
  });

  it('keeps route labels bounded: 50 different unknown paths make one label value, not 50', async () => {
    const before = labelValues(await scrape(), 'http_requests_total', 'route');
    const marker = randomBytes(6).toString('hex');
    for (let i = 0; i < 50; i += 1) {
      const res = await fetch(`${server.url}/nothing-here-${marker}-${i}/${randomBytes(8).toString('hex')}`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();
    }
    // Unknown interaction uids and client ids go through real route patterns, not raw paths.
    for (let i = 0; i < 10; i += 1) {
      const res = await fetch(`${server.url}/interaction/${marker}${i}`);
      await res.arrayBuffer();
    }
    // Refused before any router ran: a cross-site form post to a sign-in page names its area only.
    for (let i = 0; i < 5; i += 1) {
      const res = await fetch(`${server.url}/interaction/${marker}${i}/login`, { method: 'POST', headers: { 'sec-fetch-site': 'cross-site', 'content-type': 'application/x-www-form-urlencoded' }, body: 'email=a' });
      expect(res.status).toBe(403);
      await res.arrayBuffer();
    }
    const text = await scrape();
    expect(sample(text, 'http_requests_total', { method: 'POST', route: '/interaction/*', status: '403' })).toBe(5);
    const after = labelValues(text, 'http_requests_total', 'route');
    expect(text).not.toContain(marker);
    const added = [...after].filter((route) => !before.has(route));
    expect(added.every((route) => ['unmatched', '/interaction/:uid', '/interaction/*', '/metrics'].includes(route))).toBe(true);
    expect(sample(text, 'http_requests_total', { method: 'GET', route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(50);
  });

  it('reports the outbox: its depth counted at scrape time, and deliveries', async () => {
    await server.deps.outbox.enqueue({ to: 'someone@example.com', subject: 'Hello', text: 'Hello', html: '<p>Hello</p>' }, { urgent: true });
    const text = await scrape();
    const { queued, dead } = await server.deps.outbox.counts();
    expect(sample(text, 'mail_outbox_messages', { state: 'queued' })).toBe(queued);
    expect(sample(text, 'mail_outbox_messages', { state: 'dead' })).toBe(dead);
    expect(sample(text, 'mail_outbox_deliveries_total', { result: 'sent' })).toBeGreaterThanOrEqual(1);
  });

  it('counts back-channel logout deliveries by outcome', async () => {
    const receiver = await startLogoutReceiver();
    try {
      const client = await server.deps.clients.create({ name: 'Logout metrics', redirectUris: [REDIRECT_URI], backchannelLogoutUri: receiver.url });
      receiver.statuses.push(500);
      await server.deps.backchannelLogout.enqueue([{ clientId: client.clientId, sub: 'metrics-sub' }]);
      await within(5000, async () => receiver.received.length === 1);
      await within(5000, async () => sample(await scrape(), 'backchannel_logout_deliveries_total', { outcome: 'failed' }) === 1);
    } finally {
      await receiver.close();
    }
  });

  it('sends no database command for counting: requests cost what they cost without metrics, a scrape counts the outbox', async () => {
    const counter = countCommands(server);
    try {
      const requests = await counter.measure(async () => {
        const res = await fetch(`${server.url}/token`, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from(`${service.clientId}:${service.clientSecret ?? ''}`).toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin:audit:read' }).toString(),
        });
        expect(res.status).toBe(200);
        const missing = await fetch(`${server.url}/no-such-page`);
        expect(missing.status).toBe(404);
      });
      // The token's own writes (and the provider's reads), never the outbox: metrics read nothing per request.
      expect(requests.commands.filter((c) => c.collection === 'mail_outbox')).toEqual([]);
      const scraped = await counter.measure(() => scrape());
      // Less the nodes' background stamp polls (client cache, key ring), which may land in any window.
      const scrapeCommands = scraped.commands.filter((c) => c.collection !== 'cache_stamps');
      expect(scrapeCommands.map((c) => `${c.name} ${c.collection}`).sort()).toEqual(['aggregate mail_outbox', 'aggregate mail_outbox']);
    } finally {
      counter.stop();
    }
  });

  it('logs JSON lines carrying the request id of the request that wrote them, and no secret', async () => {
    const agent = new UserAgent(server.url);
    const rp = await rpFor(server, confidential);
    const login = await agent.follow((await authorizationRequest(rp)).url.toString());
    const secret = `Secret-${randomBytes(8).toString('hex')}`;
    const refused = await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: secret });
    const requestId = refused.headers.get('x-request-id');
    expect(requestId).toBeTruthy();
    const entries = server.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const mine = entries.filter((entry) => entry.requestId === requestId);
    expect(mine.map((entry) => entry.msg)).toContain('sign-in failed');
    for (const entry of mine) expect(entry).toMatchObject({ level: expect.any(String), time: expect.any(String), msg: expect.any(String) });
    expect(server.logs.join('\n')).not.toContain(secret);
    expect(server.logs.join('\n')).not.toContain(TOKEN);
  });
});

describe('metrics on a port of their own', () => {
  let server: TestServer;
  let metricsServer: MetricsServer | undefined;

  afterAll(async () => {
    await metricsServer?.close();
    await server?.close();
  });

  it('serves /metrics there (only there), and nothing else', async () => {
    server = await startTestServer('metrics_port', { env: { METRICS_PORT: '0' } });
    expect(server.deps.metrics).toBeDefined();
    metricsServer = await startMetricsServer({ metrics: server.deps.metrics!, port: 0, host: '127.0.0.1', token: server.config.metrics.token });
    await (await fetch(`${server.url}/.well-known/openid-configuration`)).arrayBuffer();

    const res = await fetch(`http://127.0.0.1:${metricsServer.port}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(sample(text, 'http_requests_total', { method: 'GET', route: '/.well-known/openid-configuration', status: '200' })).toBe(1);
    expect((await fetch(`http://127.0.0.1:${metricsServer.port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${metricsServer.port}/metrics`, { method: 'POST' })).status).toBe(404);
    // The main port does not serve them.
    const main = await fetch(`${server.url}/metrics`);
    expect(main.status).toBe(404);
    expect(await main.text()).not.toContain('# HELP');
  });

  it('asks for the token there too when one is set', async () => {
    const token = randomBytes(32).toString('base64url');
    const guarded = await startMetricsServer({ metrics: server.deps.metrics!, port: 0, host: '127.0.0.1', token });
    try {
      const refused = await fetch(`http://127.0.0.1:${guarded.port}/metrics`, { headers: { authorization: 'Bearer wrong' } });
      expect(refused.status).toBe(401);
      expect(await refused.text()).not.toContain('# HELP');
      const served = await fetch(`http://127.0.0.1:${guarded.port}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(served.status).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  it('keeps each server in its own registry', async () => {
    const other = await startTestServer('metrics_port_other', { env: { METRICS_PORT: '0' } });
    try {
      expect(other.deps.metrics?.registry).not.toBe(server.deps.metrics?.registry);
      const text = await other.deps.metrics!.registry.metrics();
      expect(sample(text, 'http_requests_total', { method: 'GET', route: '/.well-known/openid-configuration', status: '200' })).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});

describe('metrics configuration', () => {
  const base = { NODE_ENV: 'test', PORT: '4000', COOKIE_KEYS: TEST_COOKIE_KEY, ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS };

  it('is off unless METRICS_PORT or METRICS_TOKEN is set, and a server then has no metrics', async () => {
    expect(loadConfig(base).metrics).toEqual({ enabled: false, port: undefined, token: undefined });
    expect(loadConfig({ ...base, METRICS_PORT: '9464' }).metrics).toEqual({ enabled: true, port: 9464, token: undefined });
    expect(loadConfig({ ...base, METRICS_TOKEN: TOKEN }).metrics).toEqual({ enabled: true, port: undefined, token: TOKEN });
    const plain = await startTestServer('metrics_off');
    try {
      expect(plain.deps.metrics).toBeUndefined();
      expect((await fetch(`${plain.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    } finally {
      await plain.close();
    }
  });

  it('refuses a short or spaced token, a bad port, and the main port', () => {
    for (const env of [{ METRICS_TOKEN: 'short' }, { METRICS_TOKEN: `${'a'.repeat(20)} ${'b'.repeat(20)}` }, { METRICS_PORT: '70000' }, { METRICS_PORT: 'x' }, { METRICS_PORT: '4000' }]) {
      expect(() => loadConfig({ ...base, ...env })).toThrow(ConfigError);
    }
    expect(() => loadConfig({ ...base, METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
  });
});
