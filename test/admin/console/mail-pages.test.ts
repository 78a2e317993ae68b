/**
 * The Mail section of the admin console: dead-lettered mail is listed without its body (which
 * carries a code), and a retry from the page (POST with CSRF) queues it once — a double click or
 * two admins give one send — and the mail then arrives. Audited; GETs write nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../../src/audit/audit.service.js';
import { OUTBOX_COLLECTION } from '../../../src/mail/outbox.service.js';
import { signInToConsole } from '../../support/admin-console.js';
import { codeFrom, startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formAction, formField } from '../../support/user-agent.js';
import type { Reply } from '../../support/user-agent.js';
import { startSmtpSwitch } from '../../mail/smtp-switch.js';
import type { SmtpSwitch } from '../../mail/smtp-switch.js';

const PASSWORD = 'correct horse battery staple';
const ADMIN_EMAIL = 'console-mail-admin@example.test';
const RECIPIENT = 'waiting-person@example.test';
const CODE = '735108';

describe('admin console: dead-lettered mail', () => {
  let server: TestServer;
  let smtp: MailServer;
  let relay: SmtpSwitch;
  let agent: UserAgent;
  let adminId: string;
  let mailId: string;

  const url = (path: string) => `${server.url}${path}`;
  const stored = () => server.deps.db.collection<{ _id: string; state: string }>(OUTBOX_COLLECTION).findOne({ _id: mailId });
  const retryFrom = (page: Reply, fields: Record<string, string> = {}) =>
    agent.post(formAction(page.body, `/admin/mail/${mailId}/retry`), { csrf: formField(page.body, 'csrf'), ...fields });

  beforeAll(async () => {
    smtp = await startMailServer();
    relay = await startSmtpSwitch(smtp.port);
    server = await startTestServer('console_mail', {
      env: { SMTP_URL: relay.url, MAIL_FROM: 'Id <id@example.com>', MAIL_MAX_ATTEMPTS: '1' },
    });
    adminId = (await server.deps.accounts.create({ email: ADMIN_EMAIL, password: PASSWORD, roles: ['admin'], emailVerified: true })).id;
    agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, { email: ADMIN_EMAIL, password: PASSWORD });

    // SMTP goes down; a code mail fails its one allowed attempt and is dead-lettered.
    relay.down();
    const queued = await server.deps.outbox.enqueueTemplate(RECIPIENT, 'sign-in-code', { code: CODE, expiresInMinutes: 10, email: RECIPIENT }, { urgent: true });
    expect(queued.sent).toBe(false);
    mailId = queued.id;
    expect(await stored()).toMatchObject({ state: 'dead' });
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    await relay.close();
    await smtp.close();
  });

  it('lists the dead-lettered mail with its recipient and reason, never its body, and the GET writes nothing', async () => {
    const counts = async () => [
      await server.deps.db.collection(OUTBOX_COLLECTION).countDocuments(),
      await server.deps.db.collection(AUDIT_COLLECTION).countDocuments(),
      JSON.stringify(await stored()),
    ];
    const before = await counts();
    const page = await agent.get(url('/admin/mail'));
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.body).toMatch(/<a href="\/admin\/mail" aria-current="page">Mail<\/a>/);
    expect(page.body).toContain(RECIPIENT);
    expect(page.body).toContain('sign-in-code');
    expect(page.body).toContain('Too many failed attempts');
    expect(page.body).toContain(`action="/admin/mail/${mailId}/retry"`);
    expect(page.body).not.toContain(CODE);
    expect(page.body).not.toContain('sign-in code');
    expect(await counts()).toEqual(before);
    // The navigation bar links the section from every console page.
    expect((await agent.get(url('/admin/users'))).body).toContain('href="/admin/mail"');
  });

  it('refuses a retry without the CSRF token, for an unknown mail, and from someone not signed in', async () => {
    const page = await agent.get(url('/admin/mail'));
    const noCsrf = await agent.post(url(`/admin/mail/${mailId}/retry`), {});
    expect(noCsrf.status).toBe(403);
    const wrongCsrf = await agent.post(url(`/admin/mail/${mailId}/retry`), { csrf: 'x'.repeat(40) });
    expect(wrongCsrf.status).toBe(403);
    const csrf = formField(page.body, 'csrf');
    expect((await agent.post(url('/admin/mail/AAAAAAAAAAAAAAAAAAAAAA/retry'), { csrf })).status).toBe(404);
    expect((await agent.post(url('/admin/mail/not..an..id/retry'), { csrf })).status).toBe(404);
    const stranger = new UserAgent(server.url);
    expect((await stranger.post(url(`/admin/mail/${mailId}/retry`), { csrf })).status).toBe(401);
    const strangerPage = await stranger.get(url('/admin/mail'));
    expect(strangerPage.status).toBe(303);
    expect(await stored()).toMatchObject({ state: 'dead' });
    expect(smtp.countFor(RECIPIENT)).toBe(0);
  });

  it('a retry (double-clicked) queues the mail once, and it is delivered once with its code', async () => {
    relay.up();
    const page = await agent.get(url('/admin/mail'));
    const [first, second] = await Promise.all([retryFrom(page), retryFrom(page)]);
    const notices = [first, second].map((reply) => {
      expect(reply.status).toBe(303);
      return new URL(reply.location ?? '').searchParams.get('notice');
    });
    expect(notices.filter((n) => n === 'queued')).toHaveLength(1);
    expect(notices.filter((n) => n === 'already_retried' || n === 'not_dead')).toHaveLength(1);

    const mail = await smtp.waitForMail(RECIPIENT);
    expect(codeFrom(mail)).toBe(CODE);
    const done = await agent.get(url('/admin/mail?notice=queued'));
    expect(done.body).toContain('The mail was queued again');
    expect(done.body).toContain('No dead-lettered mail.');

    // A later click on the stale page changes nothing.
    const late = await retryFrom(page);
    expect(late.status).toBe(303);
    expect(late.location).toContain('notice=not_dead');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(smtp.countFor(RECIPIENT)).toBe(1);

    await server.deps.audit.flush();
    const events = (await server.deps.audit.list({ action: 'mail.retried' }, { limit: 10 })).events;
    expect(events.filter((e) => e.outcome === 'success')).toHaveLength(1);
    expect(events.find((e) => e.outcome === 'success')).toMatchObject({ actor: { type: 'account', id: adminId }, details: { mailId } });
    expect(JSON.stringify(events)).not.toContain(CODE);
    expect(server.logs.join('\n')).not.toContain(CODE);
  });
});
