/**
 * Helpers for second-factor tests: codes from an authenticator app (computed with otplib, as the
 * person's phone would, for the current or for an exact time step), reading the enrolment page,
 * and walking the sign-in pages.
 */
import { expect } from '@jest/globals';
import { generate } from 'otplib';

import type { Clock } from '../../src/core/clock.js';
import { systemClock } from '../../src/core/clock.js';
import { passTime } from './clock.js';
import type { MailServer } from './mail-server.js';
import { waitForCodeMail } from './mail-server.js';
import type { Reply, UserAgent } from './user-agent.js';
import { formAction, formField } from './user-agent.js';

/** The TOTP code for `secret` at `offsetSteps` 30-second steps from now (by `clock`, the server's). */
export async function totpCode(secret: string, offsetSteps = 0, clock: Clock = systemClock): Promise<string> {
  const epoch = Math.floor(clock.nowMs() / 1000) + offsetSteps * 30;
  return generate({ secret, epoch });
}

// Codes for exact 30-second time steps. The server refuses a code whose step is not after the
// last one the account used (RFC 6238 §5.2), so tests say which step each code belongs to.
// "Now" is the server's clock (`server.deps.clock`): a suite whose server runs on a test clock
// moves it to the next step instead of waiting half a minute; with the system's clock the
// helpers wait.

export const TOTP_STEP_MS = 30_000;

/** The current time step. */
export const stepNow = (clock: Clock = systemClock): number => Math.floor(clock.nowMs() / TOTP_STEP_MS);

/** The code an authenticator app shows for `secret` in time step `step`. */
export function codeForStep(secret: string, step: number): Promise<string> {
  return generate({ secret, epoch: step * 30 + 15 });
}

/**
 * Moves into the next step when fewer than `marginMs` are left in this one (a test clock stands
 * still, so it needs that only once); returns the current step.
 */
export async function clearOfStepEnd(marginMs = 5_000, clock: Clock = systemClock): Promise<number> {
  const left = TOTP_STEP_MS - (clock.nowMs() % TOTP_STEP_MS);
  if (left < marginMs) await passTime(clock, left + 250);
  return stepNow(clock);
}

/** Six digits that are not the code of any step near now (so surely wrong, and never a "replay"). */
export async function wrongTotpCode(secret: string, clock: Clock = systemClock): Promise<string> {
  const step = stepNow(clock);
  const near = new Set(await Promise.all([-2, -1, 0, 1, 2, 3].map((offset) => codeForStep(secret, step + offset))));
  for (let n = 123_456; ; n = (n + 111_111) % 1_000_000) {
    const candidate = String(n).padStart(6, '0');
    if (!near.has(candidate)) return candidate;
  }
}

/** An enrolled authenticator app, and the last step whose code the server accepted. */
export interface Authenticator {
  secret: string;
  lastStep: number;
}

/**
 * A code the server accepts now: the current step's, or the next one's if the current was used
 * (waiting for the next step to begin when both were). The caller records `step` in `lastStep`
 * once the server has taken the code.
 */
export async function freshTotp(auth: Authenticator, clock: Clock = systemClock): Promise<{ code: string; step: number }> {
  if (auth.lastStep >= stepNow(clock) + 1) await passTime(clock, auth.lastStep * TOTP_STEP_MS - clock.nowMs() + 100);
  const step = Math.max(stepNow(clock), auth.lastStep + 1);
  return { code: await codeForStep(auth.secret, step), step };
}

/**
 * Sets up an authenticator app on the account page for `agent`, already signed in there: opens
 * /account/security/totp and confirms with the code of the step before the current one (the
 * server takes ±1 step), so that sign-ins in this step can use the current code. Returns the app,
 * the recovery codes and the page that shows them.
 */
export async function enrolOnAccountPage(
  agent: UserAgent,
  serverUrl: string,
  clock: Clock = systemClock,
): Promise<{ auth: Authenticator; recoveryCodes: string[]; page: Reply }> {
  const enrol = await agent.follow(`${serverUrl}/account/security/totp`);
  expect(pageKind(enrol)).toBe('enrol');
  const secret = secretFromEnrolPage(enrol.body);
  const usedStep = (await clearOfStepEnd(5_000, clock)) - 1;
  const page = await submit(agent, enrol, '/account/security/totp', { code: await codeForStep(secret, usedStep) });
  expect(pageKind(page)).toBe('recovery-codes');
  return { auth: { secret, lastStep: usedStep }, recoveryCodes: recoveryCodesFrom(page.body), page };
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

/**
 * Posts a form found on `page` (by the end of its action) with its CSRF token plus `fields`, and
 * the sealed secret an enrolment page carries in its form (nothing is stored before activation).
 */
export async function submit(agent: UserAgent, page: Reply, actionEnd: string, fields: Record<string, string> = {}): Promise<Reply> {
  const enrolment: Record<string, string> = /name="enrolment" value="/.test(page.body) ? { enrolment: formField(page.body, 'enrolment') } : {};
  const reply = await agent.post(formAction(page.body, actionEnd), { csrf: formField(page.body, 'csrf'), ...enrolment, ...fields });
  if (reply.status === 303 && reply.location) return agent.follow(reply.location);
  return reply;
}

/** Asks for a sign-in code on the login page and returns the code page and the mailed code. */
export async function requestSignInCode(agent: UserAgent, loginPage: Reply, email: string, smtp: MailServer): Promise<{ page: Reply; code: string }> {
  const before = smtp.countFor(email);
  const page = await submit(agent, loginPage, '/email-code', { email });
  const { code } = await waitForCodeMail(smtp, email, { after: before });
  return { page, code };
}

export function pageKind(reply: Reply): 'login' | 'email-code' | 'totp' | 'recovery' | 'recovery-used' | 'password' | 'enrol' | 'recovery-codes' | 'consent' | 'other' {
  const b = reply.body;
  if (/action="[^"]*\/login"/.test(b)) return 'login';
  // The code form, or (a second factor not sent yet, or replaced by a newer code) only "Email me a code".
  if (/action="[^"]*\/email-code\/(verify|resend)"/.test(b) || /action="[^"]*\/second-factor\/email"/.test(b)) return 'email-code';
  if (/action="[^"]*\/second-factor\/totp"/.test(b)) return 'totp';
  if (/action="[^"]*\/second-factor\/recovery"/.test(b)) return 'recovery';
  // After a recovery code: how many are left, and Continue.
  if (/action="[^"]*\/second-factor\/recovery\/continue"/.test(b)) return 'recovery-used';
  if (/action="[^"]*\/second-factor\/password"/.test(b)) return 'password';
  if (/action="[^"]*\/second-factor\/enrol"/.test(b) || /action="\/account\/security\/totp"/.test(b)) return 'enrol';
  if (/action="[^"]*\/second-factor\/continue"/.test(b) || /action="\/account\/security\/done"/.test(b)) return 'recovery-codes';
  if (/action="[^"]*\/confirm"/.test(b)) return 'consent';
  return 'other';
}
