/**
 * Helpers for second-factor tests: codes from an authenticator app (computed with otplib, as the
 * person's phone would), reading the enrolment page, and walking the sign-in pages.
 */
import { generate } from 'otplib';

import type { MailServer } from './mail-server.js';
import { codeFrom } from './mail-server.js';
import type { Reply, UserAgent } from './user-agent.js';
import { formAction, formField } from './user-agent.js';

/** The TOTP code for `secret` at `offsetSteps` 30-second steps from now. */
export async function totpCode(secret: string, offsetSteps = 0): Promise<string> {
  const epoch = Math.floor(Date.now() / 1000) + offsetSteps * 30;
  return generate({ secret, epoch });
}

/** The manual-entry key shown on an enrolment page (grouped in spans). */
export function secretFromEnrolPage(html: string): string {
  const block = /<p class="secret-key"><code>(.*?)<\/code><\/p>/s.exec(html)?.[1];
  if (!block) throw new Error('no secret key on the page');
  return [...block.matchAll(/<span>([A-Z2-7]+)<\/span>/g)].map((m) => m[1]).join('');
}

/** Recovery codes listed on the recovery-codes page. */
export function recoveryCodesFrom(html: string): string[] {
  return [...html.matchAll(/<li><code>([a-z0-9-]+)<\/code><\/li>/g)].map((m) => m[1] ?? '');
}

/** Posts a form found on `page` (by the end of its action) with its CSRF token plus `fields`. */
export async function submit(agent: UserAgent, page: Reply, actionEnd: string, fields: Record<string, string> = {}): Promise<Reply> {
  const reply = await agent.post(formAction(page.body, actionEnd), { csrf: formField(page.body, 'csrf'), ...fields });
  if (reply.status === 303 && reply.location) return agent.follow(reply.location);
  return reply;
}

/** Asks for a sign-in code on the login page and returns the code page and the mailed code. */
export async function requestSignInCode(agent: UserAgent, loginPage: Reply, email: string, smtp: MailServer): Promise<{ page: Reply; code: string }> {
  const before = smtp.countFor(email);
  const page = await submit(agent, loginPage, '/email-code', { email });
  const mail = await smtp.waitForMail(email, { after: before });
  return { page, code: codeFrom(mail) };
}

export function pageKind(reply: Reply): 'login' | 'email-code' | 'totp' | 'recovery' | 'password' | 'enrol' | 'recovery-codes' | 'consent' | 'other' {
  const b = reply.body;
  if (/action="[^"]*\/login"/.test(b)) return 'login';
  // The code form, or (a second factor not sent yet, or replaced by a newer code) only "Email me a code".
  if (/action="[^"]*\/email-code\/(verify|resend)"/.test(b) || /action="[^"]*\/second-factor\/email"/.test(b)) return 'email-code';
  if (/action="[^"]*\/second-factor\/totp"/.test(b)) return 'totp';
  if (/action="[^"]*\/second-factor\/recovery"/.test(b)) return 'recovery';
  if (/action="[^"]*\/second-factor\/password"/.test(b)) return 'password';
  if (/action="[^"]*\/second-factor\/enrol"/.test(b) || /action="\/account\/security\/totp"/.test(b)) return 'enrol';
  if (/action="[^"]*\/second-factor\/continue"/.test(b) || /action="\/account\/security\/done"/.test(b)) return 'recovery-codes';
  if (/action="[^"]*\/confirm"/.test(b)) return 'consent';
  return 'other';
}
