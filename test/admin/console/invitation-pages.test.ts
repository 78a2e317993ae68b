/**
 * The Invitations section of the admin console: create (the link shown once, mailed on request),
 * list with states, revoke after a confirmation; CSRF and sign-in guard every change.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../../src/audit/audit.service.js';
import { INVITATIONS_COLLECTION } from '../../../src/invitations/invitation.service.js';
import { signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formAction, formField } from '../../support/user-agent.js';
import type { Reply } from '../../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';
const ADMIN_EMAIL = 'console-invitations-admin@example.test';

/** The link in the shown-once box. */
function shownOnce(page: Reply): string {
  const link = /<div class="secret-once"[^>]*>.*?<code[^>]*>([^<]+)<\/code>/s.exec(page.body)?.[1];
  if (!link) throw new Error('no shown-once link on the page');
  return link.replace(/&amp;/g, '&');
}

describe('admin console: invitations', () => {
  let server: TestServer;
  let smtp: MailServer;
  let agent: UserAgent;
  let adminId: string;

  const url = (path: string) => `${server.url}${path}`;
  const postFrom = (page: Reply, actionEnd: string, fields: Record<string, string> = {}) =>
    agent.post(formAction(page.body, actionEnd), { csrf: formField(page.body, 'csrf'), ...fields });
  const stored = () => server.deps.db.collection(INVITATIONS_COLLECTION).countDocuments();
  const tokenOf = (link: string) => new URL(link).searchParams.get('invitation') ?? '';

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('console_invitations', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    adminId = (await server.deps.accounts.create({ email: ADMIN_EMAIL, password: PASSWORD, roles: ['admin'], emailVerified: true })).id;
    agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, { email: ADMIN_EMAIL, password: PASSWORD });
  });

  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  it('creates an email-bound invitation, mails it, shows the link once; the list shows it pending by id', async () => {
    const list = await agent.get(url('/admin/invitations'));
    expect(list.status).toBe(200);
    expect(list.body).toContain('href="/admin/invitations" aria-current="page"');
    for (const field of ['email', 'uses', 'days', 'sendEmail']) expect(list.body).toContain(`<label for="${field}"`);

    const before = smtp.countFor('friend@example.com');
    const created = await postFrom(list, '/admin/invitations', { email: 'Friend@Example.com', uses: '1', days: '3', sendEmail: 'on' });
    expect(created.status).toBe(200);
    expect(created.headers.get('cache-control')).toBe('no-store');
    const link = shownOnce(created);
    expect(link).toMatch(new RegExp(`^${server.url}/sign-up\\?invitation=[A-Za-z0-9_-]{43}$`));
    expect(created.body).toContain('The link was emailed to friend@example.com');
    const mail = await smtp.waitForMail('friend@example.com', { after: before });
    expect(mail.text).toContain(link);

    const [view] = await server.deps.invitations.list();
    expect(view).toMatchObject({ email: 'friend@example.com', maxUses: 1, state: 'pending', createdBy: { type: 'account', id: adminId } });
    expect((view?.expiresAt.getTime() ?? 0) - (view?.createdAt.getTime() ?? 0)).toBe(3 * 24 * 60 * 60 * 1000);
    expect(await server.deps.invitations.check(tokenOf(link), 'friend@example.com')).toMatchObject({ valid: true });

    const listed = await agent.get(url('/admin/invitations'));
    expect(listed.body).toContain(view?.id ?? '?');
    expect(listed.body).toContain('Pending');
    expect(listed.body).not.toContain(tokenOf(link));

    const events = (await server.deps.audit.list({ action: 'invitation.created', target: view?.id ?? '?' }, { limit: 5 })).events;
    expect(events.map((e) => e.actor.id)).toEqual([adminId]);
    expect(JSON.stringify(await server.deps.db.collection(AUDIT_COLLECTION).find().toArray())).not.toContain(tokenOf(link));
    expect(server.logs.join('\n')).not.toContain(tokenOf(link));
  });

  it('creates an open invitation without mail; a used one shows as Used', async () => {
    const list = await agent.get(url('/admin/invitations'));
    const created = await postFrom(list, '/admin/invitations', { email: '', uses: '1', days: '7' });
    expect(created.status).toBe(200);
    const link = shownOnce(created);
    expect(created.body).toContain('Anyone with the link');
    expect(created.body).not.toContain('emailed');
    expect(await server.deps.invitations.redeem(tokenOf(link), 'someone@example.com')).toMatchObject({ ok: true });
    const listed = await agent.get(url('/admin/invitations'));
    expect(listed.body).toContain('1 / 1');
    expect(listed.body).toContain('>Used<');
  });

  it('refuses bad fields with messages next to them, creating nothing', async () => {
    const before = await stored();
    const list = await agent.get(url('/admin/invitations'));
    const refused = await postFrom(list, '/admin/invitations', { email: 'not-an-address', uses: '0', days: '1000' });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatch(/id="uses"[^>]*aria-invalid="true"/);
    expect(refused.body).toMatch(/id="days"[^>]*aria-invalid="true"/);
    expect(refused.body).toContain('Uses must be at least 1');
    expect(refused.body).toContain('Days must be at most 90');

    const badEmail = await postFrom(refused, '/admin/invitations', { email: 'not-an-address', uses: '1', days: '7' });
    expect(badEmail.status).toBe(400);
    expect(badEmail.body).toMatch(/id="email"[^>]*aria-invalid="true"/);

    const mailWithoutAddress = await postFrom(badEmail, '/admin/invitations', { email: '', uses: '1', days: '7', sendEmail: 'on' });
    expect(mailWithoutAddress.status).toBe(400);
    expect(mailWithoutAddress.body).toContain('Only an invitation for one email address can be mailed');
    expect(await stored()).toBe(before);
  });

  it('revokes after a confirmation, audited; the link stops working', async () => {
    const { token, view } = await server.deps.invitations.create({ maxUses: 2 });
    const list = await agent.get(url('/admin/invitations'));
    expect(list.body).toContain(`href="/admin/invitations/${view.id}/revoke"`);
    const confirm = await agent.get(url(`/admin/invitations/${view.id}/revoke`));
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('Revoke invitation?');
    expect(await server.deps.invitations.get(view.id)).toMatchObject({ state: 'pending' });

    const done = await postFrom(confirm, `/admin/invitations/${view.id}/revoke`);
    expect(done.status).toBe(303);
    expect(done.location).toBe(url('/admin/invitations?notice=revoked'));
    const shown = await agent.get(done.location ?? '');
    expect(shown.body).toContain('The invitation was revoked');
    expect(shown.body).not.toContain(`href="/admin/invitations/${view.id}/revoke"`);
    expect(await server.deps.invitations.check(token)).toEqual({ valid: false, reason: 'invalid' });
    const events = (await server.deps.audit.list({ action: 'invitation.revoked', target: view.id }, { limit: 5 })).events;
    expect(events.map((e) => e.actor.id)).toEqual([adminId]);

    expect((await agent.get(url('/admin/invitations/AAAAAAAAAAAAAAAAAAAAAA/revoke'))).status).toBe(404);
    expect((await agent.get(url('/admin/invitations/..%2F..%2Fx/revoke'))).status).toBe(404);
  });

  it('changes nothing without this session’s CSRF token or without a console session', async () => {
    const before = await stored();
    const { view } = await server.deps.invitations.create({});
    const forged = await agent.post(url('/admin/invitations'), { csrf: 'forged', email: 'x@example.com', uses: '1', days: '7' });
    expect(forged.status).toBe(403);
    const noToken = await agent.post(url(`/admin/invitations/${view.id}/revoke`), {});
    expect(noToken.status).toBe(403);

    const stranger = new UserAgent(server.url);
    expect((await stranger.get(url('/admin/invitations'))).status).toBe(303);
    const anonymous = await stranger.post(url('/admin/invitations'), { csrf: 'x', email: 'x@example.com', uses: '1', days: '7' });
    expect(anonymous.status).toBe(401);
    expect(await stored()).toBe(before + 1);
    expect(await server.deps.invitations.get(view.id)).toMatchObject({ state: 'pending' });
  });
});
