/**
 * The console's audit log page: newest first, every filter the issue names (actor, action,
 * target, outcome, client, date range), pagination without gaps, escaped output, and a bad
 * filter answered with a 400 page rather than an error.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent } from '../../support/user-agent.js';

const ADMIN = { email: 'auditor@example.test', password: 'correct horse battery staple' };

const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * The seeded history lies in the last few days of the real clock, not on fixed dates: before the
 * admin's sign-in, yet well inside the retention (AUDIT_RETENTION_DAYS, 90 by default), so that
 * neither MongoDB's TTL monitor nor the app's sweep removes it mid-suite.
 */
const TODAY = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const BULK_DAY = TODAY - 3 * DAY_MS;
const ODD_DAY = TODAY - 2 * DAY_MS;
const MARKUP_DAY = TODAY - DAY_MS;
/** `YYYY-MM-DD` of a UTC day, as the date filter takes it. */
const dayParam = (day: number) => new Date(day).toISOString().slice(0, 10);

/** The action codes listed on a page, in order. */
function actionsOn(html: string): string[] {
  return [...html.matchAll(/<td data-label="Action"><code>([^<]+)<\/code><\/td>/g)].map((m) => m[1] ?? '');
}

describe('admin console: audit log page', () => {
  let server: TestServer;
  let smtp: MailServer;
  let agent: UserAgent;
  let adminId: string;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('console-audit', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.test>' } });
    adminId = (await server.deps.accounts.create({ ...ADMIN, roles: ['admin'] })).id;
    const { audit } = server.deps;
    // A known history: 60 events for one target, and a few distinctive ones.
    for (let i = 0; i < 60; i += 1) {
      await audit.record({ action: 'test.bulk', outcome: 'success', actor: { type: 'system' }, target: { type: 'client', id: 'bulk-target' }, at: new Date(BULK_DAY + i * 60_000) });
    }
    await audit.record({ action: 'test.odd', outcome: 'failure', actor: { type: 'account', id: 'acct-1', label: 'odd@example.test' }, clientId: 'odd-client', reason: 'wrong_password', at: new Date(ODD_DAY + 12 * 60 * 60 * 1000) });
    await audit.record({ action: 'test.markup', outcome: 'success', actor: { type: 'account', id: 'acct-2', label: '<script>alert(1)</script>' }, at: new Date(MARKUP_DAY + 12 * 60 * 60 * 1000) });
    agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, ADMIN);
  });

  afterAll(async () => {
    await server.close();
    await smtp.close();
  });

  it('lists events newest first, including the admin’s own sign-in', async () => {
    const page = await agent.get(`${server.url}/admin/audit`);
    expect(page.status).toBe(200);
    const actions = actionsOn(page.body);
    expect(actions.length).toBe(50);
    // The console sign-in happened after the seeded history.
    expect(actions[0]).not.toBe('test.bulk');
    expect(page.body).toContain(ADMIN.email);
    expect(await server.deps.audit.list({ actor: adminId }, { limit: 5 })).toMatchObject({ events: expect.arrayContaining([expect.objectContaining({ action: 'sign_in.password' })]) });
  });

  it('filters by action, outcome, actor, client and target', async () => {
    const byAction = await agent.get(`${server.url}/admin/audit?action=test.odd`);
    expect(actionsOn(byAction.body)).toEqual(['test.odd']);
    const byPrefix = await agent.get(`${server.url}/admin/audit?action=test.&outcome=failure`);
    expect(actionsOn(byPrefix.body)).toEqual(['test.odd']);
    expect(byPrefix.body).toContain('<span class="detail-key">reason=</span><span class="detail-value">wrong_password</span>');
    expect(actionsOn((await agent.get(`${server.url}/admin/audit?actor=odd%40example.test`)).body)).toEqual(['test.odd']);
    expect(actionsOn((await agent.get(`${server.url}/admin/audit?client=odd-client`)).body)).toEqual(['test.odd']);
    expect(actionsOn((await agent.get(`${server.url}/admin/audit?target=bulk-target`)).body)).toHaveLength(50);
  });

  it('filters by date range (whole UTC days, "to" inclusive)', async () => {
    const page = await agent.get(`${server.url}/admin/audit?action=test.&from=${dayParam(ODD_DAY)}&to=${dayParam(ODD_DAY)}`);
    expect(actionsOn(page.body)).toEqual(['test.odd']);
    const both = await agent.get(`${server.url}/admin/audit?action=test.&from=${dayParam(ODD_DAY)}&to=${dayParam(MARKUP_DAY)}`);
    expect(actionsOn(both.body)).toEqual(['test.markup', 'test.odd']);
  });

  it('pages through older events without gaps or repeats', async () => {
    const first = await agent.get(`${server.url}/admin/audit?target=bulk-target`);
    const next = /<a href="(\/admin\/audit\?[^"]*cursor=[^"]+)">Older events<\/a>/.exec(first.body)?.[1]?.replace(/&amp;/g, '&');
    expect(next).toBeDefined();
    const second = await agent.get(`${server.url}${next}`);
    expect(second.status).toBe(200);
    expect(actionsOn(second.body)).toHaveLength(10);
    expect(second.body).not.toContain('Older events');
    const times = [...first.body.matchAll(/<td data-label="Time">([^<]+)<\/td>/g), ...second.body.matchAll(/<td data-label="Time">([^<]+)<\/td>/g)].map((m) => m[1]);
    expect(new Set(times).size).toBe(60);
  });

  it('names an account by its email where the event knows only its id, and lists details one per line', async () => {
    const person = await server.deps.accounts.create({ email: 'named.person@example.test', password: ADMIN.password });
    // As the provider records a session ending: the account's id and nothing more.
    await server.deps.audit.record({
      action: 'session.ended',
      outcome: 'success',
      actor: { type: 'account', id: person.id },
      target: { type: 'account', id: person.id },
      details: { sessionUids: ['uid-one', 'uid-two'], all: true },
    });
    await server.deps.audit.record({ action: 'session.ended', outcome: 'success', actor: { type: 'account', id: 'deleted-account-id' } });
    const page = await agent.get(`${server.url}/admin/audit?action=session.ended`);
    expect(page.status).toBe(200);
    const rows = page.body.slice(page.body.indexOf('<tbody>'));
    expect(rows).toContain('<td data-label="Actor">named.person@example.test</td>');
    expect(rows).toContain('<td data-label="Target">account: named.person@example.test</td>');
    expect(rows).not.toContain(`>${person.id}<`);
    // A deleted account keeps its id.
    expect(rows).toContain('<td data-label="Actor">deleted-account-id</td>');
    expect(rows).toContain('<li><span class="detail-key">sessionUids=</span><span class="detail-value">uid-one, uid-two</span></li>');
    expect(rows).toContain('<li><span class="detail-key">all=</span><span class="detail-value">true</span></li>');
    // The table scrolls inside a labelled region that takes keyboard focus.
    expect(page.body).toMatch(/<div class="table-wrap audit-scroll" role="region" aria-label="[^"]+" tabindex="0">/);
  });

  it('escapes what events carry', async () => {
    const page = await agent.get(`${server.url}/admin/audit?action=test.markup`);
    expect(page.body).not.toContain('<script>alert(1)</script>');
    expect(page.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('answers a malformed filter with a 400 page that still lists events, never a 5xx', async () => {
    for (const query of ['from=yesterday', 'cursor=not-a-cursor', 'outcome=maybe', `actor=${'a'.repeat(500)}`]) {
      const page = await agent.get(`${server.url}/admin/audit?${query}`);
      expect(page.status).toBe(400);
      expect(page.body).toContain('were not valid');
    }
  });
});
