import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { signInToConsole } from '../support/admin-console.js';
import { codeFrom, startMailServer } from '../support/mail-server.js';
import type { MailServer, ReceivedMail } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { requestSignInCode } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

/**
 * The mails a sign-in sends, as a real SMTP server receives them: the code is in the body only.
 * A subject shows in lock-screen notification previews and mail lists, so a code there could be
 * read (and used) by anyone who sees the phone.
 */

const PERSON = { email: 'subject-person@example.test', password: 'a long enough password 42', name: 'Subject Person' };
const ADMIN = { email: 'subject-admin@example.test', password: 'correct horse battery staple' };

/** The header block of the message as it travelled (Subject and every other header). */
function headersOf(mail: ReceivedMail): string {
  const end = mail.raw.indexOf('\r\n\r\n');
  return end === -1 ? mail.raw : mail.raw.slice(0, end);
}

function expectCodeOnlyInBody(mail: ReceivedMail): void {
  const code = codeFrom(mail);
  expect(mail.text).toContain(code);
  expect({ subject: mail.subject, hasDigits: /\d/.test(mail.subject) }).toEqual({ subject: mail.subject, hasDigits: false });
  expect(headersOf(mail)).not.toContain(code);
}

describe('sign-in mails keep the code out of the subject', () => {
  let server: TestServer;
  let smtp: MailServer;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('sign_in_mail', { logLevel: 'warn', env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.test>' } });
    await server.deps.accounts.create({ ...PERSON, emailVerified: true });
    await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true });
  });

  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  it('"Email me a sign-in code" on the login page', async () => {
    const client = await server.deps.clients.create({ name: 'Mail RP', redirectUris: [REDIRECT_URI] });
    const agent = new UserAgent(server.url);
    const login = await agent.follow(authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge }));
    expect(login.status).toBe(200);
    const { code } = await requestSignInCode(agent, login, PERSON.email, smtp);
    const mail = smtp.messages.filter((m) => m.to.includes(PERSON.email)).pop();
    expect(mail && codeFrom(mail)).toBe(code);
    expectCodeOnlyInBody(mail!);
  });

  it('the code mailed as a second factor (admin console sign-in)', async () => {
    const before = smtp.countFor(ADMIN.email);
    await signInToConsole(new UserAgent(server.url), server, smtp, ADMIN);
    const mails = smtp.messages.filter((m) => m.to.includes(ADMIN.email)).slice(before);
    expect(mails.length).toBeGreaterThan(0);
    for (const mail of mails) expectCodeOnlyInBody(mail);
  });
});
