import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { adminToken, call, expectProblem } from './api-client.js';

/** /audit-events of the management API: filtered pages and the JSON lines export. */

let server: TestServer;
let token: string;
let adminId: string;
// A UTC midnight about a year ahead, never a fixed date: events must not be past their retention
// (the sweep would take them mid-suite), and they stay apart from what the server records meanwhile.
const DAY_MS = 24 * 60 * 60 * 1000;
const T0 = new Date((Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS);
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000).toISOString();

beforeAll(async () => {
  server = await startTestServer('admin_api_audit', { logLevel: 'warn' });
  ({ token, accountId: adminId } = await adminToken(server, ['admin:audit:read']));
  // Events of our own at known times, far from whatever the server records meanwhile.
  for (let i = 0; i < 5; i++) {
    await server.deps.audit.record({
      action: i % 2 === 0 ? 'test.even' : 'test.odd',
      outcome: i === 4 ? 'failure' : 'success',
      actor: { type: 'account', id: 'acct-audit', label: 'audited@example.test' },
      target: { type: 'client', id: `client-${i}` },
      clientId: 'client-of-audit',
      at: new Date(T0.getTime() + i * 60_000),
    });
  }
});

afterAll(async () => {
  await server.close();
});

describe('audit events', () => {
  it('lists events newest first with filters', async () => {
    const answer = await call(server, 'GET', `audit-events?clientId=client-of-audit`, { token });
    expect(answer.status).toBe(200);
    expect(answer.body.events.map((e: { target: { id: string } }) => e.target.id)).toEqual(['client-4', 'client-3', 'client-2', 'client-1', 'client-0']);
    expect(answer.body.events[0]).toMatchObject({
      action: 'test.even',
      outcome: 'failure',
      actor: { type: 'account', id: 'acct-audit', label: 'audited@example.test' },
      at: at(4),
    });

    const filtered = await call(
      server,
      'GET',
      `audit-events?actor=audited@example.test&action=test.even&outcome=success&from=${at(1)}&to=${at(2)}`,
      { token },
    );
    expect(filtered.body.events.map((e: { target: { id: string } }) => e.target.id)).toEqual(['client-2']);
    const byTarget = await call(server, 'GET', 'audit-events?target=client-3', { token });
    expect(byTarget.body.events.map((e: { action: string }) => e.action)).toEqual(['test.odd']);
    const byPrefix = await call(server, 'GET', 'audit-events?action=test.&clientId=client-of-audit', { token });
    expect(byPrefix.body.events).toHaveLength(5);
  });

  it('pages with limit and cursor', async () => {
    const first = await call(server, 'GET', 'audit-events?clientId=client-of-audit&limit=2', { token });
    expect(first.body.events).toHaveLength(2);
    const seen = first.body.events.map((e: { id: string }) => e.id);
    let cursor = first.body.nextCursor as string | undefined;
    while (cursor) {
      const next = await call(server, 'GET', `audit-events?clientId=client-of-audit&limit=2&cursor=${encodeURIComponent(cursor)}`, { token });
      seen.push(...next.body.events.map((e: { id: string }) => e.id));
      cursor = next.body.nextCursor as string | undefined;
    }
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);
  });

  it('refuses bad filters field by field', async () => {
    expectProblem(await call(server, 'GET', 'audit-events?from=yesterday&outcome=maybe&limit=501', { token }), 400, 'request.invalid', [
      'from',
      'outcome',
      'limit',
    ]);
    expectProblem(await call(server, 'GET', `audit-events?from=${at(24 * 60)}&to=${at(0)}`, { token }), 400, 'request.invalid', ['to']);
    expectProblem(await call(server, 'GET', 'audit-events?cursor=nope', { token }), 400, 'audit.invalid_cursor', ['cursor']);
    expectProblem(await call(server, 'GET', 'audit-events?client_id=x', { token }), 400, 'request.invalid', ['client_id']);
  });

  it('exports the matching events as JSON lines', async () => {
    const answer = await call(server, 'GET', 'audit-events/export?clientId=client-of-audit&outcome=success', { token });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    expect(answer.headers.get('content-disposition')).toBe('attachment; filename="audit-events.jsonl"');
    expect(answer.text.endsWith('\n')).toBe(true);
    const lines = answer.text.trimEnd().split('\n').map((line) => JSON.parse(line) as { target: { id: string }; outcome: string });
    expect(lines.map((e) => e.target.id)).toEqual(['client-3', 'client-2', 'client-1', 'client-0']);
    expect(lines.every((e) => e.outcome === 'success')).toBe(true);
  });

  it('exports nothing for a filter nothing matches, and checks the filters', async () => {
    const empty = await call(server, 'GET', 'audit-events/export?clientId=nobody', { token });
    expect(empty.status).toBe(200);
    expect(empty.text).toBe('');
    expectProblem(await call(server, 'GET', 'audit-events/export?limit=5', { token }), 400, 'request.invalid', ['limit']);
  });

  it('shows the API’s own changes with their actor', async () => {
    const { token: writer } = await adminToken(server, ['admin:users:write']);
    const created = await call(server, 'POST', 'users', { token: writer, json: { email: 'audited-user@example.test' } });
    await server.deps.audit.flush();
    const answer = await call(server, 'GET', `audit-events?action=user.created&target=${created.body.id as string}`, { token });
    expect(answer.body.events).toHaveLength(1);
    expect(answer.body.events[0].actor).toMatchObject({ type: 'account' });
    expect(answer.body.events[0].actor.id).not.toBe(adminId);
  });

  it('needs the audit scope', async () => {
    const { token: other } = await adminToken(server, ['admin:users:read']);
    expectProblem(await call(server, 'GET', 'audit-events', { token: other }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'GET', 'audit-events/export', { token: other }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'GET', 'audit-events/export'), 401, 'auth.token_missing');
  });
});
