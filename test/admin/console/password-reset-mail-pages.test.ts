/**
 * The console's "Send password reset mail" button: a CSRF-checked POST from the user's page that
 * mails the person a reset link, audited as the admin; without the session's CSRF token nothing
 * is sent; not offered for a disabled account.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../../src/audit/audit.service.js';
import { signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formAction, formField } from '../../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';

describe('admin console: password reset mail', () => {
  let server: TestServer;
  let smtp: MailServer;
  let agent: UserAgent;
  let adminId: string;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('console_reset_mail', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    const admin = await server.deps.accounts.create({ email: 'console-admin@example.test', password: PASSWORD, roles: ['admin'], emailVerified: true });
    adminId = admin.id;
    agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, { email: admin.email, password: PASSWORD });
  });

  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  it('sends the mail from the user page, audited as the admin; a forged token sends nothing', async () => {
    const user = await server.deps.accounts.create({ email: 'reset-me@example.test', password: PASSWORD });
    const path = `/admin/users/${user.id}`;
    const page = await agent.get(`${server.url}${path}`);
    expect(page.status).toBe(200);
    const target = formAction(page.body, `${path}/send-password-reset`);

    const forged = await agent.post(target, { csrf: 'forged-token' });
    expect(forged.status).toBe(403);
    // Mail leaves in the background: give a wrongly sent one time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(smtp.countFor(user.email)).toBe(0);

    const done = await agent.post(target, { csrf: formField(page.body, 'csrf') });
    expect(done.status).toBe(303);
    expect(done.location).toBe(`${server.url}${path}?notice=password-reset-sent`);
    const mail = await smtp.waitForMail(user.email);
    expect(mail.text).toMatch(/\/password-reset\?token=[A-Za-z0-9_-]{43}/);
    const shown = await agent.get(done.location ?? '');
    expect(shown.body).toContain('A password reset mail with a single-use link was sent');

    await server.deps.audit.flush();
    const events = await server.deps.db.collection(AUDIT_COLLECTION).find({ action: 'user.password_reset_mail_sent', 'target.id': user.id }).toArray();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actor: { type: 'account', id: adminId } });

    await server.deps.accounts.setDisabled(user.id, true);
    const disabledPage = await agent.get(`${server.url}${path}`);
    expect(disabledPage.body).not.toContain(`action="${path}/send-password-reset"`);
  });
});
