/**
 * The mail outbox against the real database and a real SMTP server (behind a relay that can be
 * switched off to play an outage): delivery after an outage without a restart, exactly one send
 * per mail with several workers, one winner among many claimers, back-off to dead-letter, the
 * admin retry (once), restart and a node that died mid-send, urgent sends within the call,
 * sealed bodies, and the sweep. Intervals are milliseconds through the outbox's settings.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';

import type { AuditService } from '../../src/audit/audit.service.js';
import { createAuditService } from '../../src/audit/audit.service.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import { createSecretBox } from '../../src/crypto/secret-box.js';
import type { SecretBox } from '../../src/crypto/secret-box.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import type { Logger } from '../../src/logging/logger.js';
import { createMailer } from '../../src/mail/mailer.js';
import type { MailMessage, Mailer } from '../../src/mail/mailer.js';
import { OUTBOX_CLAIMS_COLLECTION, OUTBOX_COLLECTION, createMailOutbox } from '../../src/mail/outbox.service.js';
import type { MailOutbox, OutboxSettings } from '../../src/mail/outbox.service.js';
import { testDatabaseUri } from '../support/database.js';
import { codeFrom, startMailServer, waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { startSmtpSwitch } from './smtp-switch.js';
import type { SmtpSwitch } from './smtp-switch.js';

const FAST: OutboxSettings = {
  retryMaxAgeMs: 60_000,
  maxAttempts: 100,
  retryBaseMs: 20,
  retryMaxDelayMs: 150,
  pollIntervalMs: 25,
  retentionMs: 86_400_000,
  leaseMs: 5_000,
  urgentWaitMs: 4_000,
};

const ADMIN = { type: 'account' as const, id: 'admin-sub', label: 'admin@example.test' };

interface StoredMail {
  _id: string;
  state: string;
  to: string;
  attempts: number;
  sealed?: string;
  lastError?: string;
  deadReason?: string;
  nextAttemptAt: Date;
}

async function waitFor<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 8000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const message = (to: string, n = 0): MailMessage => ({ to, subject: 'A notice', text: `hello ${n}`, html: `<p>hello ${n}</p>` });

describe('mail outbox', () => {
  let connection: Connection;
  let db: mongo.Db;
  let smtp: MailServer;
  let relay: SmtpSwitch;
  let config: Config;
  let logger: Logger;
  let secretBox: SecretBox;
  let audit: AuditService;
  const logs: string[] = [];
  const started: { outbox: MailOutbox; mailer: Mailer }[] = [];

  const mails = () => db.collection<StoredMail>(OUTBOX_COLLECTION);
  const stored = (id: string) => mails().findOne({ _id: id });
  const received = (to: string) => smtp.countFor(to);

  /** An outbox as one node has it: its own mailer, on the shared database. */
  const node = (overrides: Partial<OutboxSettings> = {}) => {
    const mailer = createMailer({ config, logger });
    const outbox = createMailOutbox({ db, mailer, secretBox, audit, logger, settings: { ...FAST, ...overrides } });
    started.push({ outbox, mailer });
    return outbox;
  };

  beforeAll(async () => {
    smtp = await startMailServer();
    relay = await startSmtpSwitch(smtp.port);
    logger = createLogger({ level: 'debug', format: 'json', write: (line) => logs.push(line) });
    config = loadConfig(
      { NODE_ENV: 'test', SMTP_URL: relay.url, MAIL_FROM: 'Id <id@example.test>', PRODUCT_NAME: 'Outbox ID' },
      { cookieKeys: ['dev-cookie-key-0123456789abcdefghijklmnop'], encryptionKeys: [{ id: 'k1', key: Buffer.alloc(32, 3) }] },
    );
    connection = await connectDatabase(testDatabaseUri('mail_outbox'), logger);
    db = connection.db as mongo.Db;
    secretBox = createSecretBox(config.encryptionKeys);
    audit = createAuditService({ db, logger, retentionDays: 30 });
    await node().ensureIndexes();
  });

  afterEach(async () => {
    for (const { outbox, mailer } of started.splice(0)) {
      await outbox.stop();
      mailer.close();
    }
    relay.up();
  });

  afterAll(async () => {
    await relay.close();
    await smtp.close();
    await connection.close();
  });

  it('keeps mails while SMTP is down and delivers each once when it is back, without a restart', async () => {
    relay.down();
    const outbox = node();
    outbox.start();
    const to = ['outage-1@example.test', 'outage-2@example.test', 'outage-3@example.test'];
    const ids = await Promise.all(to.map(async (address, n) => (await outbox.enqueue(message(address, n))).id));

    // Several attempts fail while SMTP is down, each recorded with the transport's error code.
    for (const id of ids) await waitFor(async () => ((await stored(id))?.attempts ?? 0) >= 3, `retries of ${id}`);
    for (const id of ids) expect(await stored(id)).toMatchObject({ state: 'queued', lastError: expect.any(String) as unknown });
    for (const address of to) expect(received(address)).toBe(0);

    relay.up();
    for (const address of to) await smtp.waitForMail(address);
    for (const id of ids) await waitFor(async () => (await stored(id))?.state === 'sent', `${id} marked sent`);
    // A few more passes: nothing is sent again.
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const address of to) expect(received(address)).toBe(1);
    for (const id of ids) expect((await stored(id))?.sealed).toBeUndefined();
  });

  it('two workers on one database (two nodes) send each of 30 mails exactly once', async () => {
    const writer = node();
    const to = Array.from({ length: 30 }, (_, n) => `two-nodes-${n}@example.test`);
    for (const [n, address] of to.entries()) await writer.enqueue(message(address, n));

    const a = node({ pollIntervalMs: 10 });
    const b = node({ pollIntervalMs: 10 });
    a.start();
    b.start();
    // And explicit passes on top of the polling, so the two really race for the same mails.
    const passes = await Promise.all([a.deliverDue(), b.deliverDue(), a.deliverDue(), b.deliverDue()]);
    await waitFor(async () => to.every((address) => received(address) >= 1), 'all 30 mails');
    await waitFor(async () => (await mails().countDocuments({ state: 'queued', to: { $in: to } })) === 0, 'all marked sent');
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const address of to) expect(received(address)).toBe(1);
    expect(smtp.messages.filter((mail) => mail.to.some((rcpt) => rcpt.startsWith('two-nodes-'))).length).toBe(30);
    expect(passes.every((sent) => sent <= 30)).toBe(true);
  });

  it('among 20 racing claimers exactly one sends the mail', async () => {
    const writer = node();
    const to = 'racers@example.test';
    const { id } = await writer.enqueue(message(to));
    const racers = Array.from({ length: 20 }, () => node());
    const sent = await Promise.all(racers.map((racer) => racer.deliverDue()));
    // Each racer's pass may also meet other tests' leftovers: count this mail only.
    expect(received(to)).toBe(1);
    expect(sent.reduce((sum, n) => sum + n, 0)).toBeGreaterThanOrEqual(1);
    expect(await db.collection(OUTBOX_CLAIMS_COLLECTION).countDocuments({ mailId: id })).toBe(1);
    expect(await stored(id)).toMatchObject({ state: 'sent', attempts: 1 });
  });

  it('backs off while SMTP is down, dead-letters at MAIL_MAX_ATTEMPTS, and an admin retry sends it once', async () => {
    relay.down();
    const outbox = node({ maxAttempts: 3 });
    outbox.start();
    const to = 'dead-letter@example.test';
    const { id } = await outbox.enqueue(message(to));
    const dead = await waitFor(async () => {
      const mail = await stored(id);
      return mail?.state === 'dead' ? mail : undefined;
    }, 'dead-letter');
    expect(dead).toMatchObject({ attempts: 3, deadReason: 'max_attempts', sealed: expect.any(String) as unknown });
    const [view] = (await outbox.deadLetters()).filter((mail) => mail.id === id);
    expect(view).toMatchObject({ to, reason: 'max_attempts', retryable: true, attempts: 3 });

    relay.up();
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(received(to)).toBe(0);
    // Two admins (or a double click) at once: one retry.
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => outbox.retry(id, ADMIN)));
    expect(outcomes.filter((o) => o === 'queued')).toHaveLength(1);
    expect(outcomes.every((o) => o === 'queued' || o === 'already_retried' || o === 'not_dead')).toBe(true);
    await smtp.waitForMail(to);
    await waitFor(async () => (await stored(id))?.state === 'sent', 'sent after retry');
    expect(await outbox.retry(id, ADMIN)).toBe('not_dead');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(received(to)).toBe(1);

    await audit.flush();
    const events = (await audit.list({ action: 'mail.retried' }, { limit: 50 })).events.filter((e) => e.details?.mailId === id);
    expect(events.filter((e) => e.outcome === 'success')).toHaveLength(1);
    expect(events.find((e) => e.outcome === 'success')?.actor).toMatchObject({ type: 'account', id: 'admin-sub' });
    expect(events.filter((e) => e.outcome === 'failure').length).toBeGreaterThanOrEqual(9);
  });

  it('dead-letters after MAIL_RETRY_MAX_AGE however many attempts are left', async () => {
    relay.down();
    const outbox = node({ retryMaxAgeMs: 300, maxAttempts: 1000 });
    outbox.start();
    const { id } = await outbox.enqueue(message('max-age@example.test'));
    const dead = await waitFor(async () => {
      const mail = await stored(id);
      return mail?.state === 'dead' ? mail : undefined;
    }, 'dead-letter by age');
    expect(dead.deadReason).toBe('max_age');
    expect(dead.attempts).toBeLessThan(1000);
    expect(await outbox.retry('not-a-mail-id', ADMIN)).toBe('not_found');
    expect(await outbox.retry('AAAAAAAAAAAAAAAAAAAAAA', ADMIN)).toBe('not_found');
  });

  it('never sends a mail after its expiry: it is dead-lettered as expired, without its body, and cannot be retried', async () => {
    relay.down();
    const outbox = node();
    outbox.start();
    const to = 'expiring@example.test';
    const { id } = await outbox.enqueue(message(to), { expiresAt: new Date(Date.now() + 250) });
    const dead = await waitFor(async () => {
      const mail = await stored(id);
      return mail?.state === 'dead' ? mail : undefined;
    }, 'expired');
    expect(dead.deadReason).toBe('expired');
    expect(dead.sealed).toBeUndefined();
    relay.up();
    expect(await outbox.retry(id, ADMIN)).toBe('not_retryable');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(received(to)).toBe(0);
  });

  it('a new worker (a restart) delivers what was queued, and retakes a mail whose node died mid-send once its lease ends', async () => {
    relay.down();
    const first = node();
    first.start();
    const waiting = 'restart-waiting@example.test';
    const { id } = await first.enqueue(message(waiting));
    await waitFor(async () => ((await stored(id))?.attempts ?? 0) >= 1, 'a failed attempt');
    await first.stop();

    // A node that claimed its attempt and died: the claim is there, nobody writes an outcome.
    const orphan = 'restart-orphan@example.test';
    const writer = node();
    const { id: orphanId } = await writer.enqueue(message(orphan));
    const leaseEnds = Date.now() + 600;
    await db.collection(OUTBOX_CLAIMS_COLLECTION).insertOne({ _id: `${orphanId}:0`, mailId: orphanId, node: 'dead-node', at: new Date(), leaseUntil: new Date(leaseEnds) } as never);

    relay.up();
    const second = node();
    second.start();
    await smtp.waitForMail(waiting);
    // Within the dead node's lease nobody else sends the orphan.
    expect(received(orphan)).toBe(0);
    await smtp.waitForMail(orphan);
    expect(Date.now()).toBeGreaterThanOrEqual(leaseEnds);
    await waitFor(async () => (await stored(orphanId))?.state === 'sent', 'orphan sent');
    expect(await stored(orphanId)).toMatchObject({ attempts: 2 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(received(waiting)).toBe(1);
    expect(received(orphan)).toBe(1);
  });

  it('sends an urgent mail within the call when SMTP is up, with the code sealed at rest and never logged', async () => {
    const outbox = node({ pollIntervalMs: 60_000 });
    outbox.start();
    const to = 'urgent@example.test';
    const started = Date.now();
    const result = await outbox.enqueueTemplate(to, 'sign-in-code', { code: '481516', expiresInMinutes: 10, email: to }, { urgent: true });
    expect(result.sent).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    // Already at the SMTP server when the call returns: no waiting for a worker's poll.
    expect(received(to)).toBe(1);
    expect(codeFrom(smtp.messages.find((mail) => mail.to.includes(to)) ?? ({ text: '' } as never))).toBe('481516');
    const mail = await stored(result.id);
    expect(mail).toMatchObject({ state: 'sent', attempts: 1 });
    expect(mail?.sealed).toBeUndefined();
    expect(JSON.stringify(mail)).not.toContain('481516');
    expect(logs.join('\n')).not.toContain('481516');
  });

  it('an urgent mail that fails stays queued, sealed, and the worker delivers it once SMTP is back', async () => {
    relay.down();
    const outbox = node();
    const to = 'urgent-down@example.test';
    const result = await outbox.enqueueTemplate(to, 'sign-in-code', { code: '623042', expiresInMinutes: 10, email: to }, { urgent: true });
    expect(result.sent).toBe(false);
    const waiting = await stored(result.id);
    expect(waiting).toMatchObject({ state: 'queued', attempts: 1, lastError: expect.any(String) as unknown });
    expect(waiting?.sealed).toMatch(/^v1\.k1\./);
    expect(JSON.stringify(waiting)).not.toContain('623042');
    expect(secretBox.open(waiting?.sealed ?? '', `${OUTBOX_COLLECTION}:${result.id}`)).toContain('623042');

    relay.up();
    outbox.start();
    expect((await waitForCodeMail(smtp, to)).code).toBe('623042');
    await waitFor(async () => (await stored(result.id))?.state === 'sent', 'sent by the worker');
    expect(received(to)).toBe(1);
    expect(logs.join('\n')).not.toContain('623042');
  });

  it('sweep() removes sent mails past retention and keeps queued ones', async () => {
    const outbox = node({ retentionMs: 1000 });
    const sent = await outbox.enqueue(message('sweep-sent@example.test'), { urgent: true });
    expect(sent.sent).toBe(true);
    const queued = await outbox.enqueue(message('sweep-queued@example.test'));
    const removed = await outbox.sweep(new Date(Date.now() + 5000));
    expect(removed).toBeGreaterThanOrEqual(1);
    expect(await stored(sent.id)).toBeNull();
    expect(await stored(queued.id)).toMatchObject({ state: 'queued' });
  });
});
