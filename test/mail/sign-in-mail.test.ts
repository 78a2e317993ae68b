import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { codeFrom, startMailServer } from '../support/mail-server.js';
import type { MailServer, ReceivedMail } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { pageKind, requestSignInCode, submit } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

/**
 * The mails a sign-in sends, as a real SMTP server receives them: the code is in the body only.
 * A subject shows in lock-screen notification previews and mail lists, so a code there could be
 * read (and used) by anyone who sees the phone.
 */

const PERSON = { email: 'subject-person@example.test', password: 'a long enough password 42', name: 'Subject Person' };
/** Signs in with a password, then a code by email as the second factor. */
const SECOND = { email: 'subject-second@example.test', password: 'correct horse battery staple', name: 'Second Factor' };

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
    await server.deps.accounts.create({ ...SECOND, emailVerified: true });
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

  it('the code mailed as the second factor after a password (a client with require_mfa)', async () => {
    const client = await server.deps.clients.create({ name: 'Mail MFA RP', redirectUris: [REDIRECT_URI], requireMfa: true });
    const agent = new UserAgent(server.url);
    const login = await agent.follow(authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge }));
    const before = smtp.countFor(SECOND.email);
    const codePage = await submit(agent, login, '/login', { email: SECOND.email, password: SECOND.password });
    expect(pageKind(codePage)).toBe('email-code');
    // The server mails the code at once, or when asked ("Email me a code").
    if (!codePage.body.includes('autocomplete="one-time-code"')) await submit(agent, codePage, '/email-code/resend');
    expectCodeOnlyInBody(await smtp.waitForMail(SECOND.email, { after: before }));
  });
});
