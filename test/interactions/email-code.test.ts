import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { codeFrom, startMailServer } from '../support/mail-server.js';
import type { MailServer, ReceivedMail } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, redeem, rpFor, sleep } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { pageKind, submit } from '../support/second-factor.js';
import { createTestClock } from '../support/clock.js';
import type { TestClock } from '../support/clock.js';
import { startTestServer } from '../support/test-server.js';
import { startSmtpSwitch } from '../mail/smtp-switch.js';
import type { SmtpSwitch } from '../mail/smtp-switch.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * Passwordless sign-in with a code sent by email, through the pages as a browser would, with
 * openid-client as the relying party: the happy path down to the tokens, and every way a code
 * must fail (expired, guessed, replayed, replaced, another browser's, never delivered), the
 * resend throttle, no account enumeration, and hostile input on the new forms.
 *
 * Codes are only ever read from the mail a person would receive (codeFrom).
 */

const PASSWORD = 'a long enough password 42';
const MAIL_FROM = 'Id <id@example.com>';

/** Every code mailed by any server in this file: none may ever show up in a log. */
const mailedCodes = new Set<string>();
/** Every server started in this file, for the log check at the end. */
const allServers: TestServer[] = [];

let emailCounter = 0;
/** A fresh address per test: the resend throttle is per address and the factor throttle per account. */
function freshEmail(tag: string): string {
  emailCounter += 1;
  return `${tag}.${emailCounter}.${Date.now().toString(36)}@example.com`;
}

interface Suite {
  server: TestServer;
  smtp: MailServer;
  client: CreatedClient;
  rp: oidc.Configuration;
  /**
   * The services' clock, when the suite moves time itself: code lifetimes, resend intervals and
   * throttle waits then pass at once. Suites whose outbox must retry on its own keep the system's.
   */
  clock?: TestClock;
}

/** Lets `ms` pass for the suite's services: moves its clock, or (system clock) waits. */
async function pass(suite: Suite, ms: number): Promise<void> {
  if (suite.clock) suite.clock.advance(ms);
  else await sleep(ms);
}

async function startSuite(label: string, env: Record<string, string> = {}, smtpOverride?: string): Promise<Suite> {
  const smtp = await startMailServer();
  // A suite with its own SMTP address tests delivery retries, which run on the outbox's clock.
  const clock = smtpOverride ? undefined : createTestClock();
  const server = await startTestServer(label, { env: { SMTP_URL: smtpOverride ?? smtp.url, MAIL_FROM, ...env }, ...(clock ? { clock } : {}) });
  allServers.push(server);
  const client = await server.deps.clients.create({ name: 'Code App', redirectUris: [REDIRECT_URI] });
  const rp = await rpFor(server, client);
  return { server, smtp, client, rp, ...(clock ? { clock } : {}) };
}

async function stopSuite(suite: Suite | undefined): Promise<void> {
  if (!suite) return;
  if (process.env.DEBUG_LOGS) console.log(suite.server.logs.join('\n'));
  await suite.server.close();
  await suite.smtp.close();
}

function remember(mail: ReceivedMail): string {
  const code = codeFrom(mail);
  mailedCodes.add(code);
  return code;
}

function expectNoLeak(body: string): void {
  expect(body).not.toMatch(/^\s*at\s/m);
  expect(body).not.toMatch(/\bat [^\n]*\(?[^\n]*:\d+:\d+\)?/);
  expect(body).not.toContain('/src/');
  expect(body).not.toContain('node_modules');
  expect(body).not.toMatch(/ZodError|TypeError|MongoServerError|ReferenceError/);
}

function expect4xx(reply: Reply): void {
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expect(reply.status).toBeLessThan(500);
  expectNoLeak(reply.body);
}

/** The code entry page (sign-in purpose) at this status. */
function expectCodePage(reply: Reply, status = 200): void {
  expect(reply.status).toBe(status);
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(pageKind(reply)).toBe('email-code');
  expect(reply.body).toMatch(/action="\/interaction\/[^"]+\/email-code\/verify"/);
  expectNoLeak(reply.body);
}

/** Text of the page's error alert ('' when none). */
function errorText(reply: Reply): string {
  return /<div class="alert alert-error"[^>]*>\s*<p>([^<]*)<\/p>/.exec(reply.body)?.[1] ?? '';
}

/** Text of the page's notice ('' when none). */
function noticeText(reply: Reply): string {
  return /<div class="alert alert-info"[^>]*>\s*<p>([^<]*)<\/p>/.exec(reply.body)?.[1] ?? '';
}

function uidOf(reply: Reply): string {
  const uid = /\/interaction\/([A-Za-z0-9_-]+)/.exec(reply.url)?.[1];
  if (!uid) throw new Error(`not an interaction page: ${reply.url}`);
  return uid;
}

/** The page as anyone could compare it: without this interaction's uid, its CSRF token and the address typed. */
function comparable(body: string, email: string): string {
  return body
    .replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID')
    // The resend wait is counted in 2-second slots from when each code was asked for, so two pages
    // a moment apart say anything from 55 to 62 seconds; any other number stays, to be compared.
    .replace(/ask for a new code in (5[5-9]|6[0-2]) seconds/g, 'ask for a new code in ABOUT-60 seconds')
    .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value="CSRF"')
    .replaceAll(email, 'EMAIL');
}

/** A new browser at the login page of a new authorization request. */
async function openLogin(suite: Suite): Promise<{ agent: UserAgent; started: Started; login: Reply }> {
  const agent = new UserAgent(suite.server.url);
  const started = await authorizationRequest(suite.rp);
  const login = await agent.follow(started.url.toString());
  expect(login.status).toBe(200);
  expect(pageKind(login)).toBe('login');
  return { agent, started, login };
}

/** "Email me a sign-in code": the raw answer to the POST (no redirect followed). */
function postEmailCode(agent: UserAgent, login: Reply, email: string): Promise<Reply> {
  return agent.post(formAction(login.body, '/email-code'), { csrf: formField(login.body, 'csrf'), email });
}

/** Asks for a code for an existing account and waits for its mail; returns the code page and the code. */
async function askForCode(suite: Suite, agent: UserAgent, login: Reply, email: string): Promise<{ page: Reply; code: string; mail: ReceivedMail }> {
  const before = suite.smtp.countFor(email);
  const posted = await postEmailCode(agent, login, email);
  expect(posted.status).toBe(303);
  const page = await agent.follow(posted.location ?? '');
  expectCodePage(page);
  const mail = await suite.smtp.waitForMail(email, { after: before });
  return { page, code: remember(mail), mail };
}

/** Posts a code and follows a refusal's redirect to the page (post/redirect/get). */
function postCode(agent: UserAgent, page: Reply, code: string): Promise<Reply & { posted: Reply }> {
  return agent.submit(formAction(page.body, '/email-code/verify'), { csrf: formField(page.body, 'csrf'), code });
}

/** "Send a new code", following the redirect to the code page (post/redirect/get). */
function postResend(agent: UserAgent, page: Reply & { posted?: Reply }): Promise<Reply & { posted: Reply }> {
  return agent.submit(formAction(page.body, '/email-code/resend'), { csrf: formField(page.body, 'csrf') });
}

/** A code that is certainly not `code`. */
function otherThan(code: string): string {
  return String((Number(code) + 1) % 1_000_000).padStart(6, '0');
}

/** Posts a code; while the per-account throttle asks to wait, moves the clock on as told and posts again. */
async function postCodeWaitingOutThrottle(suite: Suite, agent: UserAgent, page: Reply, code: string): Promise<Reply & { posted: Reply }> {
  for (let tries = 0; tries < 5; tries += 1) {
    const reply = await postCode(agent, page, code);
    if (reply.status !== 429) return reply;
    const retryAfter = Number(reply.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    await pass(suite, retryAfter * 1000 + 150);
  }
  throw new Error('still throttled after 5 waits');
}

/**
 * From a verified code to the callback: the code's POST answers 303 to the consent page (the
 * sign-in's last step, same interaction), which `submit` followed; allow, follow to the client.
 */
async function consentAndCallback(agent: UserAgent, verified: Reply & { posted: Reply }): Promise<Reply> {
  expect(verified.posted.status).toBe(303);
  const consent = await agent.follow(verified.posted.location ?? '');
  expect(pageKind(consent)).toBe('consent');
  const callback = await submit(agent, consent, '/confirm');
  expect(callback.status).toBe(303);
  expect(callback.location?.startsWith(REDIRECT_URI)).toBe(true);
  return callback;
}

async function createAccount(server: TestServer, email: string, extra: { emailVerified?: boolean } = {}) {
  return server.deps.accounts.create({ email, password: PASSWORD, ...extra });
}

describe('sign-in with a code by email', () => {
  describe('default settings (60 s resend interval, 10 min codes, 5 attempts)', () => {
    let suite: Suite;

    beforeAll(async () => {
      suite = await startSuite('email_code_main');
    });
    afterAll(async () => {
      await stopSuite(suite);
    });

    it('the login page offers "Email me a sign-in code" as a formnovalidate button of the login form', async () => {
      const { login } = await openLogin(suite);
      const buttons = [...login.body.matchAll(/<button\b[^>]*>[^<]*<\/button>/g)].map((m) => m[0]);
      const button = buttons.find((b) => /Email me a sign-in code/.test(b));
      expect(button).toBeDefined();
      expect(button).toMatch(/type="submit"/);
      expect(button).toMatch(/formaction="\/interaction\/[A-Za-z0-9_-]+\/email-code"/);
      expect(button).toMatch(/\sformnovalidate(\s|>|=)/);
      // It sits in the same form as the email field (the field is shared with the password sign-in).
      const loginForm = /<form[^>]*action="\/interaction\/[^"]+\/login"[^>]*>([\s\S]*?)<\/form>/.exec(login.body)?.[1] ?? '';
      expect(loginForm).toContain('name="email"');
      expect(loginForm).toContain('Email me a sign-in code');
    });

    it('signs in end to end: tokens with amr [email], single-factor acr, auth_time, and email_verified becomes true', async () => {
      const email = freshEmail('happy');
      const account = await createAccount(suite.server, email, { emailVerified: false });
      expect((await suite.server.deps.accounts.findById(account.id))?.emailVerified).toBe(false);

      const { agent, started, login } = await openLogin(suite);
      const before = Math.floor(Date.now() / 1000);
      const { page, code, mail } = await askForCode(suite, agent, login, email);
      expect(mail.to).toEqual([email]);
      expect(mail.from).toContain('id@example.com');
      expect(page.body).toContain(`<strong>${email}</strong>`);
      expect(errorText(page)).toBe('');
      expect(noticeText(page)).toBe('');

      const verified = await postCode(agent, page, code);
      const callback = await consentAndCallback(agent, verified);
      expect(callbackParams(callback).get('state')).toBe(started.state);
      const tokens = await redeem(suite.rp, started, callback);

      const claims = tokens.claims();
      expect(claims?.sub).toBe(account.id);
      expect(claims?.amr).toEqual(['email']);
      expect(claims?.acr).toBe(suite.server.config.acr.singleFactor);
      expect(typeof claims?.auth_time).toBe('number');
      expect(claims?.auth_time).toBeGreaterThanOrEqual(before - 1);
      expect(claims?.auth_time).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1);

      const userinfo = await oidc.fetchUserInfo(suite.rp, tokens.access_token, account.id);
      expect(userinfo.email).toBe(email);
      expect(userinfo.email_verified).toBe(true);
      expect((await suite.server.deps.accounts.findById(account.id))?.emailVerified).toBe(true);
    });

    it('the code page has one one-time-code input (numeric), a resend form and a back form', async () => {
      const email = freshEmail('page');
      await createAccount(suite.server, email);
      const { agent, login } = await openLogin(suite);
      const { page } = await askForCode(suite, agent, login, email);

      const inputs = [...page.body.matchAll(/<input\b[^>]*>/g)].map((m) => m[0]);
      const otc = inputs.filter((tag) => /autocomplete="one-time-code"/.test(tag));
      expect(otc).toHaveLength(1);
      expect(otc[0]).toMatch(/inputmode="numeric"/);
      expect(otc[0]).toMatch(/name="code"/);
      // The only visible input: the others are hidden CSRF fields.
      expect(inputs.filter((tag) => !/type="hidden"/.test(tag))).toHaveLength(1);

      const uid = uidOf(page);
      expect(page.body).toMatch(new RegExp(`<form[^>]*method="post"[^>]*action="/interaction/${uid}/email-code/resend"`));
      expect(page.body).toMatch(new RegExp(`<form[^>]*method="post"[^>]*action="/interaction/${uid}/restart"`));

      // "Back to sign in" really goes back to the login page.
      const back = await submit(agent, page, '/restart');
      expect(back.status).toBe(200);
      expect(pageKind(back)).toBe('login');
    });

    it('a code entered wrong five times is dead: the right code is refused too, and the page says to send a new one', async () => {
      const email = freshEmail('guess');
      await createAccount(suite.server, email);
      const { agent, login } = await openLogin(suite);
      const { page, code } = await askForCode(suite, agent, login, email);
      const wrong = otherThan(code);

      for (let i = 1; i <= 4; i += 1) {
        const reply = await postCode(agent, page, wrong);
        expectCodePage(reply, 401);
        expect(errorText(reply)).toMatch(/not right/i);
      }
      const fifth = await postCode(agent, page, wrong);
      expectCodePage(fifth, 401);
      expect(errorText(fifth)).toMatch(/send a new one/i);

      // The per-account throttle may ask for a second's wait after five failures; the code
      // itself must stay refused whatever the wait.
      const right = await postCodeWaitingOutThrottle(suite, agent, page, code);
      expectCodePage(right, 401);
      expect(right.location).toBeUndefined();
      expect(errorText(right)).toMatch(/send a new one/i);
    });

    it('a used code cannot sign in again: not in the same interaction, not after the flow has finished', async () => {
      const email = freshEmail('replay');
      await createAccount(suite.server, email);
      const { agent, started, login } = await openLogin(suite);
      const { page, code } = await askForCode(suite, agent, login, email);

      const verified = await postCode(agent, page, code);
      expect(verified.posted.status).toBe(303);

      // Posted again before the browser has even followed the redirect.
      const again = await postCode(agent, page, code);
      expect4xx(again);
      expect(again.location).toBeUndefined();

      const callback = await consentAndCallback(agent, verified);
      await redeem(suite.rp, started, callback);

      // Back to the old code page, post the same code to the same URL.
      const replay = await postCode(agent, page, code);
      expect4xx(replay);
      expect(replay.location).toBeUndefined();

      // And a browser without this interaction's cookie gets nowhere either.
      const stranger = new UserAgent(suite.server.url);
      const foreign = await postCode(stranger, page, code);
      expect4xx(foreign);
      expect(foreign.location).toBeUndefined();
    });

    it('a second code request within the resend interval is refused with 429 and Retry-After, and sends no mail', async () => {
      const email = freshEmail('throttle');
      await createAccount(suite.server, email);
      const { agent, login } = await openLogin(suite);
      const { page } = await askForCode(suite, agent, login, email);
      expect(suite.smtp.countFor(email)).toBe(1);

      // "Send a new code" on the code page: refused, and the browser stays on the code page.
      const resend = await postResend(agent, page);
      expectCodePage(resend, 429);
      const retryAfter = Number(resend.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(62);
      expect(noticeText(resend)).toMatch(/moments ago/);
      // The wait is the real time left, from the stored resend time (not a fixed text).
      const wait = Number(/You can ask for a new code in (\d+) seconds?\./.exec(noticeText(resend))?.[1]);
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(wait).toBeLessThanOrEqual(62);
      // A forged wait in the URL changes nothing: the page computes its own.
      const forged = await agent.get(`${new URL(resend.url).pathname}?error=resend_throttled&wait=99999`);
      expect(noticeText(forged)).not.toContain('99999');
      expect(noticeText(forged)).toMatch(/You can ask for a new code in \d+ seconds?\./);
      // An unknown code in the query is ignored: no reflected text, a plain 200 page.
      const unknownCode = await agent.get(`${new URL(resend.url).pathname}?error=%3Cb%3Ehi%3C%2Fb%3E`);
      expectCodePage(unknownCode, 200);
      expect(unknownCode.body).not.toContain('hi</b>');
      expect(errorText(unknownCode)).toBe('');


      await sleep(1000);
      expect(suite.smtp.countFor(email)).toBe(1);
      // The first code page is still where the browser is.
      expectCodePage(await agent.get(page.url));

      // "Back to sign in" keeps the address: the login page shows it again.
      const back = await agent.submit(formAction(page.body, '/restart'), { csrf: formField(page.body, 'csrf') });
      expect(back.posted.status).toBe(303);
      expect(pageKind(back)).toBe('login');
      expect(back.body).toContain(`value="${email}"`);
    });

    it('a code asked for in another browser (perhaps a stranger who knows the address) neither waits for nor cancels this one', async () => {
      const email = freshEmail('two-browsers');
      await createAccount(suite.server, email);
      const owner = await openLogin(suite);
      const { page, code } = await askForCode(suite, owner.agent, owner.login, email);

      // Someone else asks for a code for the same address, within the resend interval.
      const stranger = await openLogin(suite);
      const fromStranger = await postEmailCode(stranger.agent, stranger.login, email);
      expect(fromStranger.status).toBe(303);
      const strangerMail = await suite.smtp.waitForMail(email, { after: 1 });
      expect(remember(strangerMail)).not.toBe('');

      // The owner's code still signs the owner in, in the owner's browser.
      const reply = await postCode(owner.agent, page, code);
      expect(reply.posted.status).toBe(303);
    });

    it('an unknown address gets the same answer and page as a known one, and no mail', async () => {
      const known = freshEmail('known');
      await createAccount(suite.server, known);
      const unknown = freshEmail('nobody');

      const a = await openLogin(suite);
      const postedUnknown = await postEmailCode(a.agent, a.login, unknown);
      const b = await openLogin(suite);
      const postedKnown = await postEmailCode(b.agent, b.login, known);

      expect(postedUnknown.status).toBe(303);
      expect(postedKnown.status).toBe(postedUnknown.status);
      expect(comparable(postedUnknown.location ?? '', unknown)).toBe(comparable(postedKnown.location ?? '', known));

      // Wait for the known address's mail, so that a mail to the unknown one (asked for earlier) would have come too.
      const knownCode = remember(await suite.smtp.waitForMail(known));

      const pageUnknown = await a.agent.follow(postedUnknown.location ?? '');
      const pageKnown = await b.agent.follow(postedKnown.location ?? '');
      expectCodePage(pageUnknown);
      expect(pageKnown.status).toBe(pageUnknown.status);
      expect(comparable(pageUnknown.body, unknown)).toBe(comparable(pageKnown.body, known));

      await sleep(300);
      expect(suite.smtp.countFor(unknown)).toBe(0);

      // Any code is refused the same way as a wrong code for a real account.
      const guess = otherThan(knownCode);
      const guessUnknown = await postCode(a.agent, pageUnknown, guess);
      const guessKnown = await postCode(b.agent, pageKnown, guess);
      expectCodePage(guessUnknown, 401);
      expect(guessKnown.status).toBe(401);
      expect(comparable(guessUnknown.body, unknown)).toBe(comparable(guessKnown.body, known));
    });

    it('a disabled account gets no mail and the same page, and a code mailed before disabling no longer works', async () => {
      const known = freshEmail('enabled');
      await createAccount(suite.server, known);
      const disabledEmail = freshEmail('disabled');
      const disabled = await createAccount(suite.server, disabledEmail);
      await suite.server.deps.accounts.setDisabled(disabled.id, true);

      const a = await openLogin(suite);
      const postedDisabled = await postEmailCode(a.agent, a.login, disabledEmail);
      const b = await openLogin(suite);
      const postedKnown = await postEmailCode(b.agent, b.login, known);
      expect(postedDisabled.status).toBe(303);
      expect(postedKnown.status).toBe(303);
      remember(await suite.smtp.waitForMail(known));

      const pageDisabled = await a.agent.follow(postedDisabled.location ?? '');
      const pageKnown = await b.agent.follow(postedKnown.location ?? '');
      expectCodePage(pageDisabled);
      expect(comparable(pageDisabled.body, disabledEmail)).toBe(comparable(pageKnown.body, known));
      await sleep(300);
      expect(suite.smtp.countFor(disabledEmail)).toBe(0);

      // An account disabled after its code was mailed: the code is refused, nobody is signed in.
      const lateEmail = freshEmail('late');
      const late = await createAccount(suite.server, lateEmail);
      const c = await openLogin(suite);
      const { page, code } = await askForCode(suite, c.agent, c.login, lateEmail);
      await suite.server.deps.accounts.setDisabled(late.id, true);
      const refused = await postCode(c.agent, page, code);
      expect4xx(refused);
      expect(refused.location).toBeUndefined();
      expect(refused.status).toBe(401);
    });

    it('refuses bad input on the code form with a 4xx, never a 5xx or a stack trace', async () => {
      const email = freshEmail('badinput');
      await createAccount(suite.server, email);
      const { agent, login } = await openLogin(suite);
      const { page, code } = await askForCode(suite, agent, login, email);
      const action = formAction(page.body, '/email-code/verify');
      const csrf = formField(page.body, 'csrf');

      const cases: [string, Record<string, string>][] = [
        ['missing code', { csrf }],
        ['empty code', { csrf, code: '' }],
        ['overlong code', { csrf, code: '1'.repeat(100) }],
        ['non-digit code', { csrf, code: 'abcdef' }],
        ['five digits', { csrf, code: '12345' }],
        ['seven digits', { csrf, code: '1234567' }],
        ['NUL in the code', { csrf, code: `${code.slice(0, 3)}\u0000${code.slice(3)}` }],
      ];
      for (const [name, form] of cases) {
        const reply = await agent.submit(action, form);
        expect({ name, status: reply.status }).toEqual({ name, status: 400 });
        expectCodePage(reply, 400);
      }

      // Without a CSRF token, or with another interaction's token: refused before anything else.
      const noCsrf = await agent.post(action, { code });
      expect(noCsrf.status).toBe(403);
      expectNoLeak(noCsrf.body);
      const other = await openLogin(suite);
      const foreign = await agent.post(action, { csrf: formField(other.login.body, 'csrf'), code });
      expect(foreign.status).toBe(403);
      expectNoLeak(foreign.body);
      const resendNoCsrf = await agent.post(formAction(page.body, '/email-code/resend'), {});
      expect(resendNoCsrf.status).toBe(403);
      expectNoLeak(resendNoCsrf.body);

      // None of these used up the code: it still signs in.
      const verified = await postCode(agent, page, code);
      expect(verified.posted.status).toBe(303);
      expect(pageKind(await agent.follow(verified.posted.location ?? ''))).toBe('consent');
    });

    it('refuses bad input on "Email me a sign-in code" with a 4xx login page, and sends nothing', async () => {
      const { agent, login } = await openLogin(suite);
      const action = formAction(login.body, '/email-code');
      const csrf = formField(login.body, 'csrf');
      const before = suite.smtp.messages.length;

      const loginPageCases: [string, Record<string, string>][] = [
        ['not an email', { csrf, email: 'not-an-email' }],
        ['missing email', { csrf }],
        ['empty email', { csrf, email: '' }],
        ['overlong email', { csrf, email: `${'a'.repeat(300)}@example.com` }],
        ['NUL in the email', { csrf, email: 'nul\u0000user@example.com' }],
      ];
      for (const [name, form] of loginPageCases) {
        const reply = await agent.submit(action, form);
        expect({ name, status: reply.status }).toEqual({ name, status: 400 });
        expect(pageKind(reply)).toBe('login');
        expect(reply.body).toContain('Enter your email address to get a sign-in code.');
        expect(reply.body).not.toContain('\u0000');
        expectNoLeak(reply.body);
      }

      const noCsrf = await agent.post(action, { email: freshEmail('nocsrf') });
      expect(noCsrf.status).toBe(403);
      expectNoLeak(noCsrf.body);
      const other = await openLogin(suite);
      const foreign = await agent.post(action, { csrf: formField(other.login.body, 'csrf'), email: freshEmail('foreign') });
      expect(foreign.status).toBe(403);
      expectNoLeak(foreign.body);

      // The code step is not open yet: posting a code now is the wrong step.
      const early = await agent.post(formAction(login.body, '/email-code').replace(/\/email-code$/, '/email-code/verify'), { csrf, code: '123456' });
      expect4xx(early);

      await sleep(300);
      expect(suite.smtp.messages.length).toBe(before);
      // The browser is still on the login page.
      expect(pageKind(await agent.get(login.url))).toBe('login');
    });
  });

  describe('codes that expire after 1 second', () => {
    let suite: Suite;

    beforeAll(async () => {
      suite = await startSuite('email_code_ttl', { EMAIL_CODE_TTL: '1' });
    });
    afterAll(async () => {
      await stopSuite(suite);
    });

    it('refuses an expired code and says so', async () => {
      const email = freshEmail('expired');
      await createAccount(suite.server, email);
      const { agent, login } = await openLogin(suite);
      const posted = await postEmailCode(agent, login, email);
      expect(posted.status).toBe(303);
      const page = await agent.follow(posted.location ?? '');
      expectCodePage(page);
      // However short the lifetime, the page must not announce a code that lasts no time at all.
      expect(page.body).not.toMatch(/for 0 minutes/);
      const code = remember(await suite.smtp.waitForMail(email));
      await pass(suite, 1500);

      const reply = await postCode(agent, page, code);
      expectCodePage(reply, 401);
      expect(reply.location).toBeUndefined();
      expect(errorText(reply)).toMatch(/expired/i);

      // The page now says that no valid code is waiting.
      const again = await agent.get(page.url);
      expectCodePage(again);
      expect(noticeText(again)).toMatch(/No valid code is waiting/);
    });
  });

  describe('a short resend interval (1 s)', () => {
    let suite: Suite;

    beforeAll(async () => {
      suite = await startSuite('email_code_resend', { EMAIL_CODE_RESEND_INTERVAL: '1' });
    });
    afterAll(async () => {
      await stopSuite(suite);
    });

    it('a resend after the interval mails a new code', async () => {
      const email = freshEmail('resend');
      await createAccount(suite.server, email);
      const { agent, started, login } = await openLogin(suite);
      const { page } = await askForCode(suite, agent, login, email);
      await pass(suite, 2100);

      const resent = await postResend(agent, page);
      expect(resent.posted.status).toBe(303);
      const newPage = resent;
      expectCodePage(newPage);
      expect(uidOf(newPage)).toBe(uidOf(page));
      const mail = await suite.smtp.waitForMail(email, { after: 1 });
      const code = remember(mail);
      expect(suite.smtp.countFor(email)).toBe(2);

      const callback = await consentAndCallback(agent, await postCode(agent, newPage, code));
      const tokens = await redeem(suite.rp, started, callback);
      expect(tokens.claims()?.amr).toEqual(['email']);
    });

    it('a new code replaces the old one: the old code is refused, the new one works', async () => {
      const email = freshEmail('replace');
      await createAccount(suite.server, email);
      const { agent, login } = await openLogin(suite);
      const first = await askForCode(suite, agent, login, email);
      await pass(suite, 2100);

      const resent = await postResend(agent, first.page);
      expect(resent.posted.status).toBe(303);
      const page = resent;
      const second = remember(await suite.smtp.waitForMail(email, { after: 1 }));

      const old = await postCode(agent, page, first.code);
      expectCodePage(old, 401);
      expect(old.location).toBeUndefined();

      const verified = await postCode(agent, page, second);
      expect(verified.posted.status).toBe(303);
      expect(pageKind(await agent.follow(verified.posted.location ?? ''))).toBe('consent');
    });

    it("a code belongs to the browser's interaction: browser A's code does not work in browser B's", async () => {
      const email = freshEmail('bound');
      await createAccount(suite.server, email);

      // B asks first, then A (after the interval): both are on the code page for the same address.
      const b = await openLogin(suite);
      const fromB = await askForCode(suite, b.agent, b.login, email);
      await pass(suite, 2100);
      const a = await openLogin(suite);
      const fromA = await askForCode(suite, a.agent, a.login, email);
      expect(uidOf(fromA.page)).not.toBe(uidOf(fromB.page));

      // A's code typed into B's page (B's own CSRF token and cookie): refused.
      const inB = await postCode(b.agent, fromB.page, fromA.code);
      expectCodePage(inB, 401);
      expect(inB.location).toBeUndefined();

      // A's code posted to B's URL from browser A (A's cookie does not open B's interaction): refused.
      const crossUrl = await a.agent.post(formAction(fromB.page.body, '/email-code/verify'), { csrf: formField(fromB.page.body, 'csrf'), code: fromA.code });
      expect4xx(crossUrl);
      expect(crossUrl.location).toBeUndefined();

      // The same code still works where it was asked for: the refusals were about the binding.
      const inA = await postCode(a.agent, fromA.page, fromA.code);
      expect(inA.posted.status).toBe(303);
      expect(pageKind(await a.agent.follow(inA.posted.location ?? ''))).toBe('consent');
    });
  });

  describe('EMAIL_CODE_NO_ACCOUNT_MAIL=true', () => {
    let suite: Suite;

    beforeAll(async () => {
      suite = await startSuite('email_code_noacct', { EMAIL_CODE_NO_ACCOUNT_MAIL: 'true' });
    });
    afterAll(async () => {
      await stopSuite(suite);
    });

    it('an unknown address receives a "no account" mail with no code, on the same page as a known one', async () => {
      const unknown = freshEmail('stranger');
      const known = freshEmail('member');
      await createAccount(suite.server, known);

      const a = await openLogin(suite);
      const postedUnknown = await postEmailCode(a.agent, a.login, unknown);
      const b = await openLogin(suite);
      const postedKnown = await postEmailCode(b.agent, b.login, known);
      expect(postedUnknown.status).toBe(303);
      expect(postedKnown.status).toBe(303);

      const mail = await suite.smtp.waitForMail(unknown);
      expect(mail.subject).toMatch(/sign-in attempt/);
      expect(mail.text).toMatch(/no account/i);
      expect(mail.text).not.toMatch(/\b\d{6}\b/);
      expect(mail.html).not.toMatch(/\b\d{6}\b/);
      expect(() => codeFrom(mail)).toThrow();

      const knownMail = await suite.smtp.waitForMail(known);
      remember(knownMail);
      expect(knownMail.text).not.toMatch(/no account/i);

      const pageUnknown = await a.agent.follow(postedUnknown.location ?? '');
      const pageKnown = await b.agent.follow(postedKnown.location ?? '');
      expectCodePage(pageUnknown);
      expect(comparable(pageUnknown.body, unknown)).toBe(comparable(pageKnown.body, known));
      await sleep(300);
      expect(suite.smtp.countFor(unknown)).toBe(1);
    });

    it('a disabled account still receives nothing', async () => {
      const email = freshEmail('off');
      const account = await createAccount(suite.server, email);
      await suite.server.deps.accounts.setDisabled(account.id, true);
      const marker = freshEmail('marker');
      await createAccount(suite.server, marker);

      const a = await openLogin(suite);
      expect((await postEmailCode(a.agent, a.login, email)).status).toBe(303);
      const b = await openLogin(suite);
      expect((await postEmailCode(b.agent, b.login, marker)).status).toBe(303);
      remember(await suite.smtp.waitForMail(marker));
      await sleep(300);
      expect(suite.smtp.countFor(email)).toBe(0);
    });
  });

  describe('mail delivery failure (SMTP server down, then back)', () => {
    let suite: Suite;
    let smtpSwitch: SmtpSwitch;

    beforeAll(async () => {
      // The server reaches the real test SMTP server through a relay that can be switched off.
      const smtp = await startMailServer();
      smtpSwitch = await startSmtpSwitch(Number(new URL(smtp.url).port));
      const server = await startTestServer('email_code_nosmtp', { env: { SMTP_URL: smtpSwitch.url, MAIL_FROM, MAIL_WORKER_INTERVAL: '1' } });
      allServers.push(server);
      const client = await server.deps.clients.create({ name: 'Code App', redirectUris: [REDIRECT_URI] });
      suite = { server, smtp, client, rp: await rpFor(server, client) };
    });
    afterAll(async () => {
      await stopSuite(suite);
      await smtpSwitch.close();
    });

    it('answers at once and exactly as for an unknown address; the code arrives when SMTP is back (no restart), and it works', async () => {
      smtpSwitch.down();
      const email = freshEmail('undelivered');
      await createAccount(suite.server, email);
      const unknown = freshEmail('nobody-undelivered');
      const known = await openLogin(suite);
      const other = await openLogin(suite);
      const started = Date.now();
      const postedKnown = await postEmailCode(known.agent, known.login, email);
      expect(Date.now() - started).toBeLessThan(2000);
      const postedUnknown = await postEmailCode(other.agent, other.login, unknown);
      expect(postedKnown.status).toBe(303);
      expect(postedUnknown.status).toBe(303);

      // The urgent send failed (logged by the mailer, at warn): the mail waits in the outbox.
      const failures = () => suite.server.logs.map((line) => JSON.parse(line) as { level: string; msg: string }).filter((entry) => entry.msg === 'mail delivery failed');
      for (let i = 0; i < 100 && failures().length === 0; i += 1) await sleep(100);
      expect(failures().length).toBeGreaterThanOrEqual(1);
      expect(failures().every((w) => w.level === 'warn')).toBe(true);
      expect((await suite.server.deps.outbox.counts()).queued).toBeGreaterThanOrEqual(1);
      expect(suite.smtp.countFor(email)).toBe(0);

      // The two code pages: the same, with no word about the mail.
      const pageKnown = await known.agent.follow(postedKnown.location ?? '');
      const pageUnknown = await other.agent.follow(postedUnknown.location ?? '');
      expectCodePage(pageKnown);
      expectCodePage(pageUnknown);
      expect(comparable(pageKnown.body, email)).toBe(comparable(pageUnknown.body, unknown));
      expect(noticeText(pageKnown)).toBe('');

      // Guesses are refused the same way for both.
      for (const guess of ['000000', '123456']) {
        const replyKnown = await postCode(known.agent, pageKnown, guess);
        const replyUnknown = await postCode(other.agent, pageUnknown, guess);
        expectCodePage(replyKnown, 401);
        expect(comparable(replyKnown.body, email)).toBe(comparable(replyUnknown.body, unknown));
      }

      // SMTP comes back: the outbox delivers the code (the server was not restarted), and it works.
      smtpSwitch.up();
      const mail = await suite.smtp.waitForMail(email, { timeoutMs: 20_000 });
      const code = remember(mail);
      const verified = await postCodeWaitingOutThrottle(suite, known.agent, pageKnown, code);
      const callback = await consentAndCallback(known.agent, verified);
      expect(callbackParams(callback).get('code')).toBeTruthy();
      // The unknown address got nothing, before or after.
      expect(suite.smtp.countFor(unknown)).toBe(0);
    }, 40_000);

    it('a second-factor code is kept when SMTP fails: the page says it may take longer, and the code works once it arrives', async () => {
      const email = freshEmail('second-delayed');
      await createAccount(suite.server, email);
      const mfaClient = await suite.server.deps.clients.create({ name: 'Code MFA App', redirectUris: [REDIRECT_URI], requireMfa: true });
      const rp = await rpFor(suite.server, mfaClient);
      const agent = new UserAgent(suite.server.url);
      const started = await authorizationRequest(rp);
      const login = await agent.follow(started.url.toString());
      smtpSwitch.down();
      const page = await submit(agent, login, '/login', { email, password: PASSWORD });
      expect(pageKind(page)).toBe('email-code');
      expect(page.status).toBe(200);
      expect(noticeText(page)).toMatch(/may take a little longer/);
      // The page offers a new code.
      expect(page.body).toMatch(/action="\/interaction\/[^"]+\/email-code\/resend"/);
      expect(suite.smtp.countFor(email)).toBe(0);

      smtpSwitch.up();
      const code = remember(await suite.smtp.waitForMail(email, { timeoutMs: 20_000 }));
      const verified = await submit(agent, page, '/second-factor/email', { code });
      expect(pageKind(verified)).toBe('consent');
    }, 40_000);
  });

  it('no log line of any server contains a mailed code', () => {
    expect(mailedCodes.size).toBeGreaterThanOrEqual(10);
    expect(allServers.length).toBe(5);
    for (const server of allServers) {
      const logs = server.logs.join('\n');
      expect(logs.length).toBeGreaterThan(0);
      for (const code of mailedCodes) {
        expect({ code, found: new RegExp(`(?<![A-Za-z0-9_-])${code}(?![A-Za-z0-9_-])`).test(logs) }).toEqual({ code, found: false });
      }
    }
  });
});
