/**
 * The audit log service against the real database: what one event keeps, the filters admins
 * use, cursor pages, the JSON-lines export, retention, and that neither a careless caller nor
 * a database outage can make it leak a credential or fail the action being audited.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import type { Connection } from 'mongoose';

import type { AuditEvent, AuditFilter, AuditInput, AuditService, UntypedAuditInput } from '../../src/audit/audit.service.js';
import { AUDIT_COLLECTION, createAuditService, sanitiseDetails } from '../../src/audit/audit.service.js';
import { connectDatabase } from '../../src/db/connect.js';
import { AppError } from '../../src/http/app-error.js';
import { runWithRequest } from '../../src/http/request-context.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';
import { createTestClock } from '../support/clock.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * Noon UTC about a year ahead of the real clock, not a fixed date: even the events the retention
 * test back-dates by 31 days must not be expired by real time, or MongoDB's TTL monitor could
 * remove them before the test's own sweep.
 */
const T0 = (Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS + 12 * 60 * 60 * 1000;
const quietLogger = () => createLogger({ level: 'error', format: 'json', write: () => {} });

describe('audit service', () => {
  let connection: Connection;
  let db: mongo.Db;
  const clock = createTestClock(T0);

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('audit_service'), quietLogger());
    db = connection.db!;
    await createAuditService({ db, logger: quietLogger(), retentionDays: 30 }).ensureIndexes();
  });

  afterAll(async () => {
    await db?.dropDatabase();
    await connection?.close();
  });

  /** A service over its own collection state: each test clears the collection first. */
  const fresh = async (retentionDays = 30): Promise<AuditService> => {
    await db.collection(AUDIT_COLLECTION).deleteMany({});
    clock.set(T0);
    return createAuditService({ db, logger: quietLogger(), retentionDays, clock });
  };

  const event = (overrides: Partial<UntypedAuditInput> = {}): UntypedAuditInput => ({
    action: 'sign_in.password',
    outcome: 'success',
    actor: { type: 'account', id: 'acc-1', label: 'ada@example.com' },
    target: { type: 'account', id: 'acc-1', label: 'ada@example.com' },
    clientId: 'client-a',
    ...overrides,
  });

  const all = async (audit: AuditService, filter: AuditFilter = {}): Promise<AuditEvent[]> => (await audit.list(filter, { limit: 500 })).events;
  const actions = (events: AuditEvent[]) => events.map((e) => e.action);

  it('keeps who, what, which client, from where and the outcome, with the request IP and user agent', async () => {
    const audit = await fresh();
    await runWithRequest({ requestId: 'r1', ip: '203.0.113.9', userAgent: 'AuditTest/1.0', method: 'POST', path: '/x' }, () =>
      audit.record(event({ outcome: 'failure', reason: 'wrong_password', details: { method: 'pwd' } })),
    );
    // Outside a request, and with explicit values that win over the request's.
    await audit.record(event({ action: 'token.issued', ip: '198.51.100.1', userAgent: 'Explicit/2' }));
    await audit.record(event({ action: 'client.created', actor: { type: 'system' }, target: undefined, clientId: undefined }));

    const [system, explicit, first] = await all(audit);
    expect(first).toEqual({
      id: expect.stringMatching(/^\d{13}-[0-9a-f]+$/),
      at: new Date(T0),
      action: 'sign_in.password',
      outcome: 'failure',
      actor: { type: 'account', id: 'acc-1', label: 'ada@example.com' },
      target: { type: 'account', id: 'acc-1', label: 'ada@example.com' },
      clientId: 'client-a',
      ip: '203.0.113.9',
      userAgent: 'AuditTest/1.0',
      reason: 'wrong_password',
      details: { method: 'pwd' },
    });
    expect(explicit).toMatchObject({ action: 'token.issued', ip: '198.51.100.1', userAgent: 'Explicit/2' });
    expect(system).toEqual({ id: expect.any(String), at: new Date(T0), action: 'client.created', outcome: 'success', actor: { type: 'system' } });

    const raw = await db.collection<{ _id: string; expiresAt: Date }>(AUDIT_COLLECTION).findOne({ _id: first!.id });
    expect(raw?.expiresAt).toEqual(new Date(T0 + 30 * DAY_MS));
  });

  it('filters by actor, action (exact or prefix), target, outcome, client and time', async () => {
    const audit = await fresh();
    const at = (minutes: number) => new Date(T0 + minutes * 60_000);
    await audit.record(event({ at: at(0), action: 'sign_in.password' }));
    await audit.record(event({ at: at(1), action: 'sign_in.email_code', outcome: 'failure', actor: { type: 'anonymous' }, target: undefined }));
    await audit.record(event({ at: at(2), action: 'sign_in.passwordless' }));
    await audit.record(event({ at: at(3), action: 'sign_inx.other' }));
    await audit.record(event({ at: at(4), action: 'token.issued', actor: { type: 'client', id: 'client-b', label: 'Shop' }, target: { type: 'account', id: 'acc-2' }, clientId: 'client-b' }));
    await audit.record(event({ at: at(5), action: 'consent.granted', actor: { type: 'account', id: 'acc-2', label: 'bob@example.com' }, target: { type: 'client', id: 'client-b' }, clientId: 'client-b' }));

    // Actor: by id, or by label (an email matches whatever its case).
    expect(actions(await all(audit, { actor: 'acc-2' }))).toEqual(['consent.granted']);
    expect(actions(await all(audit, { actor: 'BOB@example.com' }))).toEqual(['consent.granted']);
    expect(actions(await all(audit, { actor: 'client-b' }))).toEqual(['token.issued']);
    // Action: exact, or a prefix ending in '.'; a '.' in the prefix is not a regex wildcard.
    expect(actions(await all(audit, { action: 'sign_in.password' }))).toEqual(['sign_in.password']);
    expect(actions(await all(audit, { action: 'sign_in.' }))).toEqual(['sign_in.passwordless', 'sign_in.email_code', 'sign_in.password']);
    expect(await all(audit, { action: 'sign_in' })).toEqual([]);
    expect(await all(audit, { action: '.*' })).toEqual([]);
    // Target, outcome, client.
    expect(actions(await all(audit, { target: 'client-b' }))).toEqual(['consent.granted']);
    expect(actions(await all(audit, { target: 'acc-2' }))).toEqual(['token.issued']);
    expect(actions(await all(audit, { outcome: 'failure' }))).toEqual(['sign_in.email_code']);
    expect(actions(await all(audit, { clientId: 'client-b' }))).toEqual(['consent.granted', 'token.issued']);
    // Time: both ends inclusive, to the millisecond.
    expect(actions(await all(audit, { from: at(1), to: at(3) }))).toEqual(['sign_inx.other', 'sign_in.passwordless', 'sign_in.email_code']);
    expect(actions(await all(audit, { from: at(4) }))).toEqual(['consent.granted', 'token.issued']);
    expect(actions(await all(audit, { to: new Date(at(0).getTime() + 1) }))).toEqual(['sign_in.password']);
    expect(await all(audit, { from: new Date(at(5).getTime() + 1) })).toEqual([]);
    // Combined: every condition must hold.
    expect(actions(await all(audit, { clientId: 'client-a', action: 'sign_in.', outcome: 'success', from: at(1) }))).toEqual(['sign_in.passwordless']);
  });

  it('pages newest first with a cursor: every event once, none skipped, even as new ones arrive', async () => {
    const audit = await fresh();
    // Many events in the same millisecond too: they still list in the order they were recorded.
    const recorded: string[] = [];
    for (let i = 0; i < 23; i += 1) {
      clock.set(T0 + Math.floor(i / 4));
      await audit.record(event({ action: `test.e${i}` }));
      recorded.push(`test.e${i}`);
    }
    const expected = [...recorded].reverse();

    const seen: AuditEvent[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await audit.list({}, { limit: 5, cursor });
      pages += 1;
      expect(page.events.length).toBeLessThanOrEqual(5);
      seen.push(...page.events);
      cursor = page.nextCursor;
      // Newer events arriving between pages belong before page 1, not in the pages still to come.
      clock.set(T0 + 10_000);
      await audit.record(event({ action: `test.late${pages}` }));
    } while (cursor);

    expect(pages).toBe(5);
    expect(actions(seen)).toEqual(expected);
    expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);
    // A page that ends exactly at the last event says so (no empty extra page).
    const exact = await audit.list({ action: 'test.' }, { limit: 23 + 5 });
    expect(exact.events).toHaveLength(28);
    expect(exact.nextCursor).toBeUndefined();
    // Filters apply across pages too.
    const firstPage = await audit.list({ action: 'test.' }, { limit: 20 });
    expect(firstPage.events).toHaveLength(20);
    const secondPage = await audit.list({ action: 'test.' }, { limit: 20, cursor: firstPage.nextCursor });
    expect(firstPage.events.length + secondPage.events.length).toBe(23 + 5);
    expect(secondPage.nextCursor).toBeUndefined();
  });

  it('refuses a cursor it did not hand out, and keeps the page size within 1..500', async () => {
    const audit = await fresh();
    for (let i = 0; i < 3; i += 1) await audit.record(event());
    for (const cursor of ['', 'x', '{"$gt":""}', '1234', `${'9'.repeat(13)}-zz`]) {
      const refused = await audit.list({}, { limit: 5, cursor }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(AppError);
      expect(refused).toMatchObject({ status: 400, code: 'audit.invalid_cursor' });
    }
    expect((await audit.list({}, { limit: 0 })).events).toHaveLength(1);
    expect((await audit.list({}, { limit: Number.NaN })).events).toHaveLength(3);
  });

  it('exports every matching event as JSON lines, newest first, across its internal pages', async () => {
    const audit = await fresh();
    const total = 520; // more than one internal page of 500
    await db.collection(AUDIT_COLLECTION).deleteMany({});
    for (let i = 0; i < total; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) => audit.record(event({ at: new Date(T0 + (i + j) * 1000), action: (i + j) % 2 === 0 ? 'export.even' : 'export.odd', details: { n: i + j } }))),
      );
    }
    const lines: string[] = [];
    for await (const line of audit.exportJsonl({})) lines.push(line);
    expect(lines).toHaveLength(total);
    for (const line of lines) expect(line.endsWith('\n') && !line.slice(0, -1).includes('\n')).toBe(true);
    const parsed = lines.map((line) => JSON.parse(line) as { id: string; at: string; action: string; details: { n: number } });
    expect(parsed.map((e) => e.details.n)).toEqual(Array.from({ length: total }, (_, i) => total - 1 - i));
    expect(new Set(parsed.map((e) => e.id)).size).toBe(total);
    expect(parsed[0]).toMatchObject({ at: new Date(T0 + (total - 1) * 1000).toISOString(), action: 'export.odd', outcome: 'success', clientId: 'client-a' });

    const even: string[] = [];
    for await (const line of audit.exportJsonl({ action: 'export.even', from: new Date(T0 + 100_000) })) even.push(line);
    expect(even.map((l) => (JSON.parse(l) as { details: { n: number } }).details.n)).toEqual(
      Array.from({ length: total }, (_, i) => total - 1 - i).filter((n) => n % 2 === 0 && n >= 100),
    );

    const none: string[] = [];
    for await (const line of audit.exportJsonl({ action: 'nothing.here' })) none.push(line);
    expect(none).toEqual([]);
  });

  it('sweeps events older than the retention (AUDIT_RETENTION_DAYS), and only those', async () => {
    const audit = await fresh(30);
    clock.set(T0);
    await audit.record(event({ action: 'old.expired', at: new Date(T0 - 31 * DAY_MS) }));
    await audit.record(event({ action: 'old.boundary', at: new Date(T0 - 30 * DAY_MS) }));
    await audit.record(event({ action: 'old.kept', at: new Date(T0 - 29 * DAY_MS) }));
    await audit.record(event({ action: 'new.kept' }));

    expect(await audit.sweep(new Date(T0))).toBe(2);
    expect(actions(await all(audit))).toEqual(['new.kept', 'old.kept']);
    // The default "now" is the service's clock.
    clock.set(T0 + 2 * DAY_MS);
    expect(await audit.sweep()).toBe(1);
    expect(actions(await all(audit))).toEqual(['new.kept']);
    expect(await audit.sweep()).toBe(0);
  });

  it('sanitises details: short scalars only, no credential-named keys, no JWT-shaped values', async () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl';
    const dirty = {
      scopes: ['openid', 'email', { nested: true }, jwt],
      tokenTypes: ['access_token', 'refresh_token'],
      initialAccessToken: 'used',
      grantType: 'authorization_code',
      recoveryCodesLeft: 9,
      required: true,
      password: 'hunter2-password',
      newPassword: 'hunter3',
      client_secret: 'very-secret',
      clientSecret: 'very-secret-too',
      code: '123456',
      code_verifier: 'verifier-value',
      access_token: 'opaque-access-token',
      refresh_token: 'opaque-refresh-token',
      id_token: jwt,
      registration_access_token: 'rat',
      token: 'tok',
      otp: '654321',
      authorization: 'Basic abc',
      cookie: '_session=abc',
      idTokenHint: jwt,
      nested: { password: 'x' },
      'dotted.key': 'x',
      $where: 'x',
      long: 'x'.repeat(500),
      control: 'a\u0000b\nc',
      infinite: Number.POSITIVE_INFINITY,
      many: Array.from({ length: 80 }, (_, i) => `s${i}`),
    };
    const clean = sanitiseDetails(dirty);
    expect(clean).toEqual({
      scopes: ['openid', 'email'],
      tokenTypes: ['access_token', 'refresh_token'],
      initialAccessToken: 'used',
      grantType: 'authorization_code',
      recoveryCodesLeft: 9,
      required: true,
      long: 'x'.repeat(200),
      control: 'abc',
      many: Array.from({ length: 50 }, (_, i) => `s${i}`),
    });
    expect(sanitiseDetails({ password: 'x' })).toBeUndefined();
    expect(sanitiseDetails('not an object')).toBeUndefined();

    // And what the service stores is the sanitised form.
    const audit = await fresh();
    await audit.record(event({ details: dirty as unknown as AuditInput['details'], actor: { type: 'account', id: 'a\u0000b', label: 'x'.repeat(400) } }));
    const rawJson = JSON.stringify(await db.collection(AUDIT_COLLECTION).find({}).toArray());
    for (const secret of ['hunter2', 'hunter3', 'very-secret', '123456', 'verifier-value', 'opaque-', 'eyJ', 'Basic abc', '_session', '654321']) {
      expect(rawJson).not.toContain(secret);
    }
    const [stored] = await all(audit);
    expect(stored?.actor).toEqual({ type: 'account', id: 'ab', label: 'x'.repeat(254) });
  });

  it('never throws from record() when the database is down, and logs the failure', async () => {
    const warnings: string[] = [];
    const logger = createLogger({ level: 'warn', format: 'json', write: (line) => warnings.push(line) });
    // A real driver against a port nothing listens on: server selection fails.
    const client = new mongo.MongoClient('mongodb://127.0.0.1:1/audit_down', { serverSelectionTimeoutMS: 200 });
    try {
      const audit = createAuditService({ db: client.db(), logger, retentionDays: 30 });
      await expect(audit.record(event({ details: { password: 'never-logged' } }))).resolves.toBeUndefined();
      await expect(audit.flush()).resolves.toBeUndefined();
    } finally {
      await client.close();
    }
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ msg: 'audit event not recorded', action: 'sign_in.password', error: 'MongoServerSelectionError' });
    expect(warnings[0]).not.toContain('never-logged');
  });

  it('flush() waits for writes nobody awaited (provider event listeners)', async () => {
    const audit = await fresh();
    for (let i = 0; i < 10; i += 1) void audit.record(event({ action: `flush.e${i}` }));
    await audit.flush();
    expect(await all(audit, { action: 'flush.' })).toHaveLength(10);
  });
});
