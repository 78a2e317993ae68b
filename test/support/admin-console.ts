/**
 * Signing in to the admin console in tests, through the pages as an admin would: the console's
 * client requires a second factor and accepts only the multi-factor class (an authenticator
 * app). After the password the sign-in takes whatever second step the server asks for: the
 * authenticator app (a recovery code, so that repeated sign-ins need no waiting for new time
 * steps), setting one up when the account has none, or a code by email (read from the mail the
 * SMTP test server received) where the server still offers that.
 */
import { expect } from '@jest/globals';

import type { MailServer } from './mail-server.js';
import { waitForCodeMail } from './mail-server.js';
import { clearOfStepEnd, codeForStep, freshTotp, pageKind, recoveryCodesFrom, secretFromEnrolPage, submit } from './second-factor.js';
import type { TestServer } from './test-server.js';
import type { Reply, UserAgent } from './user-agent.js';

/** An admin's authenticator app as the tests know it: its key, unused recovery codes, the last step used. */
interface KnownAuthenticator {
  secret: string;
  recoveryCodes: string[];
  lastStep: number;
}

const authenticators = new Map<string, KnownAuthenticator>();
const authenticatorKey = (server: TestServer, email: string) => `${server.url} ${email.toLowerCase()}`;

/**
 * Sets up an authenticator app for the account through the service (as if done earlier on the
 * account page) and remembers it for signInToConsole. Returns its key and recovery codes.
 */
export async function enrolAuthenticator(server: TestServer, account: { id: string; email: string }): Promise<KnownAuthenticator> {
  const enrolment = await server.deps.totp.beginEnrolment(account);
  const step = (await clearOfStepEnd(5_000, server.deps.clock)) - 1;
  const activated = await server.deps.totp.activate(account.id, await codeForStep(enrolment.secret, step), enrolment.sealed);
  if (!activated.ok) throw new Error(`enrolment failed: ${activated.reason}`);
  const known = { secret: enrolment.secret, recoveryCodes: [...activated.recoveryCodes], lastStep: step };
  authenticators.set(authenticatorKey(server, account.email), known);
  return known;
}

/**
 * The second step after the password, whichever it is, and where it leads (redirects within the
 * server followed). An authenticator the tests do not know is an error.
 */
export async function completeSecondFactor(agent: UserAgent, server: TestServer, page: Reply, email: string, smtp: MailServer, mailsBefore: number): Promise<Reply> {
  const kind = pageKind(page);
  if (kind === 'email-code') return completeEmailSecondFactor(agent, page, email, smtp, mailsBefore);
  const key = authenticatorKey(server, email);
  if (kind === 'enrol') {
    const secret = secretFromEnrolPage(page.body);
    const step = await clearOfStepEnd(5_000, server.deps.clock);
    const codes = await submit(agent, page, '/second-factor/enrol', { code: await codeForStep(secret, step) });
    expect(pageKind(codes)).toBe('recovery-codes');
    authenticators.set(key, { secret, recoveryCodes: recoveryCodesFrom(codes.body), lastStep: step });
    return submit(agent, codes, '/second-factor/continue');
  }
  expect(kind).toBe('totp');
  const known = authenticators.get(key);
  if (!known) throw new Error(`no known authenticator app for ${email}: enrolAuthenticator first`);
  const recoveryCode = known.recoveryCodes.shift();
  if (recoveryCode) {
    const recovery = await agent.follow(`${page.url}?method=recovery`);
    // A recovery code shows how many are left first; Continue finishes the sign-in.
    const left = await submit(agent, recovery, '/second-factor/recovery', { code: recoveryCode });
    return submit(agent, left, '/second-factor/recovery/continue');
  }
  const { code, step } = await freshTotp({ secret: known.secret, lastStep: known.lastStep }, server.deps.clock);
  known.lastStep = step;
  return submit(agent, page, '/second-factor/totp', { code });
}

export interface ConsoleCredentials {
  email: string;
  password: string;
}

/** Where a finished console sign-in lands (console.routes.ts). */
export const CONSOLE_LANDING = '/admin/clients';

/**
 * Posts the second factor by email on `page` (a code page, or a step-up page that only offers
 * "Email me a code") and returns where that leads, redirects within the server followed.
 */
export async function completeEmailSecondFactor(agent: UserAgent, page: Reply, email: string, smtp: MailServer, mailsBefore: number): Promise<Reply> {
  expect(pageKind(page)).toBe('email-code');
  let codePage = page;
  // A step-up asks before mailing: the page then offers only "Email me a code".
  if (!codePage.body.includes('autocomplete="one-time-code"')) codePage = await submit(agent, codePage, '/email-code/resend');
  const { code } = await waitForCodeMail(smtp, email, { after: mailsBefore });
  return submit(agent, codePage, '/second-factor/email', { code });
}

/**
 * Signs `agent` in to the console (from scratch, or again when the console asks for a new
 * authentication: `path` is then where the console sent the browser): /admin/sign-in → login page →
 * password → the second step (completeSecondFactor) → /admin/callback → the landing page. Returns
 * the landing reply (200 for an admin; a 403 page for an account without the admin role, whose
 * sign-in still works).
 */
export async function signInToConsole(agent: UserAgent, server: TestServer, smtp: MailServer, credentials: ConsoleCredentials, path = '/admin/sign-in'): Promise<Reply> {
  const login = await agent.follow(new URL(path, server.url).toString());
  expect(login.status).toBe(200);
  expect(pageKind(login)).toBe('login');
  const before = smtp.countFor(credentials.email);
  const codePage = await submit(agent, login, '/login', { email: credentials.email, password: credentials.password });
  expect(codePage.status).toBe(200);
  const landing = await completeSecondFactor(agent, server, codePage, credentials.email, smtp, before);
  expect(landing.url).toBe(`${server.url}${CONSOLE_LANDING}`);
  return landing;
}
