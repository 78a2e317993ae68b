/**
 * Database commands per request of a password sign-in, counted with the driver's command
 * monitoring (machine-independent round trips), request by request: authorization request →
 * login page → password POST → consent page (the sign-in's last step, same interaction) → consent
 * POST → back to the RP with a code → token request; then a second visit of the same browser
 * (single sign-on, consent remembered).
 *
 * Every request reads each record at most once. The budget counts every command a request sends
 * except the client cache's: its stamp poll runs in the background on a timer (not per request),
 * and a client is read only when the node's cache is cold or its trust has lapsed (at most twice
 * in a flow, asserted on its own). Audit events go through the batched writer (one insert per
 * 250 ms per node, not per request): the test flushes it between requests, so a page that
 * awaited an audit write would show its insert here.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { BACKCHANNEL_COLLECTION } from '../../src/oidc/backchannel-logout.service.js';
import { countCommands, nextStampPoll } from '../support/command-counter.js';
import type { CommandCounter, SeenCommand } from '../support/command-counter.js';
import { authorizationRequest, callbackParams, redeem, rpFor } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import type { Reply } from '../support/user-agent.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';

const USER = { email: 'grace@example.com', password: 'correct horse battery staple', name: 'Grace Hopper' };

/** The client cache's commands, and the key ring's once-a-minute reload of signing_keys: counted and printed, not budgeted (see above). */
const ELSEWHERE = new Set(['clients', 'cache_stamps', 'signing_keys']);
/** The back-channel logout worker's poll for due deliveries (a timer, every node): background work, never a request's. */
const isWorkerPoll = (c: SeenCommand) => c.name === 'find' && c.collection === BACKCHANNEL_COLLECTION;
/** Client reads in a whole flow: the first request on a cold cache, and one refill when a stamp poll was slow. */
const CLIENT_READS_MAX = 2;

/**
 * The whole first sign-in, commands outside ELSEWHERE: GET /auth 1 (the interaction saved) ·
 * login page 1 (the interaction) · POST /login 6 (the interaction; the limiter's insert, count and
 * settle; the account by address; the interaction saved at the consent step, carrying the
 * account) · consent page 1 (the interaction: the page names the account the step kept) ·
 * POST /confirm 3 (the interaction, the grant saved, the login and consent result carrying account
 * and grant) · resume 4 (the interaction read and destroyed, the code saved carrying account and
 * grant, the new session saved: created once, nothing re-identified) · POST /token 4 (the code,
 * its session, the consume claim, the access token). Login and consent are one interaction
 * result, and each record the flow carries is one read less (src/oidc/mongo-adapter.ts).
 */
const FIRST_FLOW_BUDGET = 20;
/**
 * The second visit: GET /auth 5 (the session, the account, the grant, the code, the session saved
 * again, as on every authorization request) and POST /token 4 (as above).
 */
const SSO_FLOW_BUDGET = 9;

/** A refused password and the page that says so: the password POST as above without the result (the interaction keeps the typed address), and the page's interaction. */
const REFUSAL_BUDGET = 7;

interface Measured {
  label: string;
  commands: SeenCommand[];
}

function budgeted(commands: readonly SeenCommand[]): number {
  return commands.filter((c) => !ELSEWHERE.has(c.collection) && !isWorkerPoll(c)).length;
}

function table(title: string, steps: readonly Measured[]): string {
  const collections = [...new Set(steps.flatMap((s) => s.commands.map((c) => c.collection)))].sort();
  const width = Math.max(...steps.map((s) => s.label.length), 'total'.length);
  const cols = collections.map((c) => Math.max(c.length, 3));
  const line = (label: string, cells: (number | string)[]) => [label.padEnd(width), ...cells.map((v, i) => String(v).padStart(cols[i] ?? 3))].join(' │ ');
  const counts = (cmds: readonly SeenCommand[]) => collections.map((name) => cmds.filter((c) => c.collection === name).length || '·');
  const all = steps.flatMap((s) => s.commands);
  const rows = steps.map((s) => `${line(s.label, counts(s.commands))} │ ${String(s.commands.length).padStart(3)} │ ${String(budgeted(s.commands)).padStart(3)}`);
  const detail = process.env.DEBUG_COMMANDS ? steps.map((s) => `-- ${s.label}\n${s.commands.map((c) => `  ${c.name} ${c.collection} ${JSON.stringify(c.filter ?? '')}`).join('\n')}`) : [];
  return [
    title,
    `${line('request', collections)} │ all │ budgeted`,
    ...rows,
    `${line('total', counts(all))} │ ${String(all.length).padStart(3)} │ ${String(budgeted(all)).padStart(3)}`,
    `(budgeted = all but ${[...ELSEWHERE].join(', ')}: ${all.filter((c) => c.collection === 'clients').length} client reads, ${all.filter((c) => c.collection === 'cache_stamps').length} stamp polls)`,
    ...detail,
  ].join('\n');
}

describe('database commands of a password sign-in, per request', () => {
  let server: TestServer;
  let counter: CommandCounter;
  let client: CreatedClient;
  let rp: oidc.Configuration;
  let browser: UserAgent;
  let accountId: string;
  const first: Measured[] = [];
  const second: Measured[] = [];

  beforeAll(async () => {
    server = await startTestServer('command_budget', { monitorCommands: true, logLevel: 'warn' });
    accountId = (await server.deps.accounts.create({ ...USER, emailVerified: true })).id;
    client = await server.deps.clients.create({ name: 'Notes', redirectUris: ['http://127.0.0.1:9/callback'] });
    rp = await rpFor(server, client);
    // The poll that sees the client's creation stamp drops the cache once: let it pass first.
    await nextStampPoll(server);
    browser = new UserAgent(server.url);
    counter = countCommands(server);
  });

  afterAll(async () => {
    counter?.stop();
    await server?.close();
  });

  /** One request, counted on its own (its records read more than once are checked by `expectEachReadOnce`). */
  async function step<T>(into: Measured[], label: string, work: () => Promise<T>): Promise<T> {
    await server.deps.audit.flush();
    const { result, commands } = await counter.measure(work);
    into.push({ label, commands });
    // The audit batcher writes every 250 ms, not per request: its batch goes out between the
    // measured requests (a request that awaited an audit write would show it).
    await server.deps.audit.flush();
    return result;
  }

  /** Records read (found by `_id`) more than once within one request, with the request's commands. */
  function expectEachReadOnce(steps: readonly Measured[]): void {
    const problems: string[] = [];
    for (const { label, commands } of steps) {
      const reads: Record<string, number> = {};
      for (const c of commands) if (c.name === 'find' && c.record) reads[c.record] = (reads[c.record] ?? 0) + 1;
      const repeated = Object.entries(reads).filter(([, n]) => n > 1);
      if (repeated.length > 0) problems.push(`${label}: ${repeated.map(([r, n]) => `${r} ×${n}`).join(', ')}\n${commands.map((c) => `  ${c.name} ${c.collection} ${JSON.stringify(c.filter ?? '')}`).join('\n')}`);
    }
    expect(problems).toEqual([]);
  }

  const get = (into: Measured[], label: string, url: string) => step(into, label, () => browser.get(url));
  const redirectOf = (reply: Reply, status = 303): string => {
    expect(reply.status).toBe(status);
    if (!reply.location) throw new Error('no Location');
    return reply.location;
  };

  async function tokenRequest(into: Measured[], started: Started, callback: Reply) {
    return step(into, 'POST /token', () => redeem(rp, started, callback));
  }

  it('signs in with a password and consents within the budget, each record read at most once per request', async () => {
    const started = await authorizationRequest(rp);
    const toInteraction = redirectOf(await get(first, 'GET /auth', started.url.toString()));
    const login = await get(first, 'GET login page', toInteraction);
    expect(login.status).toBe(200);
    const posted = await step(first, 'POST /login', () =>
      browser.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: USER.password }),
    );
    // The consent page is the sign-in's last step, in the same interaction (no resume between).
    const toConsent = redirectOf(posted);
    expect(toConsent).toBe(toInteraction);
    const consent = await get(first, 'GET consent page', toConsent);
    expect(consent.status).toBe(200);
    expect(consent.body).toContain('Notes');
    expect(consent.body).toContain(USER.email);
    const confirmed = await step(first, 'POST /confirm', () => browser.post(formAction(consent.body, '/confirm'), { csrf: formField(consent.body, 'csrf') }));
    const callback = await get(first, 'GET /auth (resume)', redirectOf(confirmed));
    expect(callback.status).toBe(303);
    expect(callbackParams(callback).get('code')).toBeTruthy();
    const tokens = await tokenRequest(first, started, callback);
    expect(tokens.claims()?.sub).toBe(accountId);

    const all = first.flatMap((s) => s.commands);
    console.log(table('First sign-in (password + consent)', first));
    expectEachReadOnce(first);
    // One interaction: the session is saved once and never re-identified (no old id deleted), and
    // the account is read once, by address, at the password (the flow's records carry it on).
    expect(all.filter((c) => c.collection === 'oidc_session' && c.name !== 'find').map((c) => c.name)).toEqual(['update']);
    expect(all.filter((c) => c.collection === 'accounts')).toHaveLength(1);
    expect(budgeted(all)).toBeLessThanOrEqual(FIRST_FLOW_BUDGET);
    expect(all.filter((c) => c.collection === 'clients').length).toBeLessThanOrEqual(CLIENT_READS_MAX);
  });

  it('signs in again in the same browser (single sign-on, consent remembered) within its own budget', async () => {
    const started = await authorizationRequest(rp);
    const callback = await get(second, 'GET /auth', started.url.toString());
    expect(callbackParams(callback).get('code')).toBeTruthy();
    const tokens = await tokenRequest(second, started, callback);
    expect(tokens.claims()?.sub).toBe(accountId);

    const all = second.flatMap((s) => s.commands);
    console.log(table('Second visit (SSO, consent remembered)', second));
    expectEachReadOnce(second);
    expect(budgeted(all)).toBeLessThanOrEqual(SSO_FLOW_BUDGET);
  });

  it('still refuses a wrong password (the limiter still counts) within the budget of a refusal', async () => {
    const fresh = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const toInteraction = redirectOf(await fresh.get(started.url.toString()));
    const login = await fresh.get(toInteraction);
    const refused: Measured[] = [];
    const posted = await step(refused, 'POST /login (wrong password)', () =>
      fresh.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: 'not the password at all' }),
    );
    expect(posted.status).toBe(303);
    expect(posted.location).toContain('error=wrong_password');
    const page = await step(refused, 'GET login page (refusal)', () => fresh.get(posted.location!));
    expect(page.status).toBe(401);
    console.log(table('A refused password', refused));
    expectEachReadOnce(refused);
    // The account is read once, by address, for the check and its audit record alike; the
    // refusal keeps the typed address in the interaction (one write).
    expect(refused[0]?.commands.filter((c) => c.collection === 'accounts')).toHaveLength(1);
    expect(budgeted(refused.flatMap((s) => s.commands))).toBeLessThanOrEqual(REFUSAL_BUDGET);
    expect(await server.deps.limits.limiter.count(server.deps.limits.password(USER.email).key)).toBe(1);
  });
  it('writes nothing for a step that stores nothing new ("back to sign in" on the first page)', async () => {
    const fresh = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const page = redirectOf(await fresh.get(started.url.toString()));
    const login = await fresh.get(page);
    const back: Measured[] = [];
    const posted = await step(back, 'POST /restart', () => fresh.post(`${page}/restart`, { csrf: formField(login.body, 'csrf') }));
    expect(posted.status).toBe(303);
    expect(back[0]?.commands.filter((c) => !ELSEWHERE.has(c.collection) && !isWorkerPoll(c)).map((c) => `${c.name} ${c.collection}`)).toEqual(['find oidc_interaction']);
    // The page is still the first one.
    expect((await fresh.get(posted.location!)).body).toContain('/login"');
  });
});
