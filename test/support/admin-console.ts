/**
 * Signing in to the admin console in tests, through the pages as an admin would: the console's
 * client requires a second factor, so the sign-in is the password and then a code by email
 * (read from the mail the SMTP test server received).
 */
import { expect } from '@jest/globals';

import type { MailServer } from './mail-server.js';
import { codeFrom } from './mail-server.js';
import { pageKind, submit } from './second-factor.js';
import type { TestServer } from './test-server.js';
import type { Reply, UserAgent } from './user-agent.js';

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
  const code = codeFrom(await smtp.waitForMail(email, { after: mailsBefore }));
  return submit(agent, codePage, '/second-factor/email', { code });
}

/**
 * Signs `agent` in to the console from scratch (no session yet): /admin/sign-in → login page →
 * password → code by email → /admin/callback → the landing page. Returns the landing reply
 * (200 for an admin; a 403 page for an account without the admin role, whose sign-in still works).
 */
export async function signInToConsole(agent: UserAgent, server: TestServer, smtp: MailServer, credentials: ConsoleCredentials): Promise<Reply> {
  const login = await agent.follow(`${server.url}/admin/sign-in`);
  expect(login.status).toBe(200);
  expect(pageKind(login)).toBe('login');
  const before = smtp.countFor(credentials.email);
  const codePage = await submit(agent, login, '/login', { email: credentials.email, password: credentials.password });
  expect(codePage.status).toBe(200);
  const landing = await completeEmailSecondFactor(agent, codePage, credentials.email, smtp, before);
  expect(landing.url).toBe(`${server.url}${CONSOLE_LANDING}`);
  return landing;
}
