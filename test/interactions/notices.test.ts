/**
 * Notices during the sign-in, through the pages with openid-client as the relying party and a
 * real SMTP server:
 *  - "new sign-in" (NOTIFY_NEW_SIGN_IN): mailed for a second browser, never for the first sign-in
 *    of an account, nor again for a browser seen before, nor at all with the setting off (which
 *    then costs no database command);
 *  - a recovery code: the notice, then the page saying how many codes are left, whose Continue
 *    (with its CSRF token) finishes the sign-in.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { mongo } from 'mongoose';
import type * as oidc from 'openid-client';

import type { AccountView } from '../../src/accounts/account.service.js';
import { KNOWN_BROWSERS_COLLECTION } from '../../src/accounts/known-browser.service.js';
import type { MailServer, ReceivedMail } from '../support/mail-server.js';
import { authorizationRequest, redeem, rpFor } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { clearOfStepEnd, codeForStep, pageKind, submit } from '../support/second-factor.js';
import { startMailServer } from '../support/mail-server.js';
import { stopMailingServer } from '../support/sign-in-suite.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const PASSWORD = 'correct horse battery staple 7';
const FIREFOX_LINUX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const CHROME_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** A browser that says what it is (the notices name the device from it). */
class Browser extends UserAgent {
  constructor(
    baseUrl: string,
    private readonly userAgent: string,
  ) {
    super(baseUrl);
  }

  override request(url: string, init: RequestInit = {}): Promise<Reply> {
    const headers = new Headers(init.headers);
    headers.set('user-agent', this.userAgent);
    return super.request(url, { ...init, headers });
  }
}

const setCookies = (reply: Reply) => reply.headers.getSetCookie();
const knownBrowserCookie = (reply: Reply) => setCookies(reply).find((line) => line.startsWith('known_browser='));

/** No one-time code, no token-shaped string, in any part of a notice (the test's addresses aside). */
function expectNoSecret(mail: ReceivedMail, extra: readonly string[] = []): void {
  const html = mail.html.replace(/style="[^"]*"/g, '');
  for (const part of [mail.subject, mail.text, html].map((p) => p.replace(/[^\s<>"]+@example\.com/g, 'ADDRESS'))) {
    expect(part).not.toMatch(/(?<![\d.])\d{6,}(?![\d.])/);
    expect(part).not.toMatch(/[A-Za-z0-9_-]{20,}/);
    for (const secret of extra) expect(part).not.toContain(secret);
  }
}

interface Suite {
  server: TestServer;
  smtp: MailServer;
  rp: oidc.Configuration;
  /** Database commands on the known-browser store, by command name, since the last reset. */
  storeCommands: string[];
}

async function startSuite(label: string, env: Record<string, string>): Promise<Suite> {
  const smtp = await startMailServer();
  const server = await startTestServer(label, { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', ...env }, monitorCommands: true });
  const client = await server.deps.clients.create({ name: 'Notes', redirectUris: ['http://127.0.0.1:9/callback'] });
  const rp = await rpFor(server, client);
  const storeCommands: string[] = [];
  // Every command naming the store's collection (command monitoring is on for these servers).
  server.connection.getClient().on('commandStarted', (event: mongo.CommandStartedEvent) => {
    if (event.command[event.commandName] === KNOWN_BROWSERS_COLLECTION) storeCommands.push(event.commandName);
  });
  return { server, smtp, rp, storeCommands };
}

/**
 * A sign-in with the password through the pages, consent included; returns the reply to the
 * password POST (where the sign-in finishes) and the tokens.
 */
async function signIn(suite: Suite, agent: UserAgent, email: string): Promise<{ finished: Reply; pages: Reply[]; tokens: Tokens }> {
  // prompt=login: a browser with a session signs in again rather than passing through.
  const started = await authorizationRequest(suite.rp, { prompt: 'login' });
  const login = await agent.follow(started.url.toString());
  expect(pageKind(login)).toBe('login');
  const pages = [login];
  const finished = await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email, password: PASSWORD });
  expect(finished.status).toBe(303);
  let reply = await agent.follow(finished.location ?? '');
  if (pageKind(reply) === 'consent') {
    pages.push(reply);
    const confirmed = await agent.post(formAction(reply.body, '/confirm'), { csrf: formField(reply.body, 'csrf') });
    reply = await agent.follow(confirmed.location ?? '');
  }
  return { finished, pages, tokens: await redeem(suite.rp, started, reply) };
}

const outboxCount = (suite: Suite, to: string) => suite.server.deps.db.collection('mail_outbox').countDocuments({ to });

describe('notices during the sign-in', () => {
  let on: Suite;

  beforeAll(async () => {
    on = await startSuite('notices_sign_in', { NOTIFY_NEW_SIGN_IN: 'true' });
  });

  afterAll(() => stopMailingServer(on ?? {}));

  const person = (name: string): Promise<AccountView> => on.server.deps.accounts.create({ email: `${name}@example.com`, password: PASSWORD, name });

  describe('new sign-in (NOTIFY_NEW_SIGN_IN=true)', () => {
    it('not on the first sign-in, not again from the same browser; on a second browser, once, with its device, IP, time and the app', async () => {
      const ann = await person('ann');
      const firefox = new Browser(on.server.url, FIREFOX_LINUX);

      // The first sign-in of the account: nothing to compare with, no mail.
      on.storeCommands.length = 0;
      const first = await signIn(on, firefox, ann.email);
      expect(first.tokens.claims()?.sub).toBe(ann.id);
      expect(await outboxCount(on, ann.email)).toBe(0);
      // A new browser: one write (the upsert) and one read (any other browser of the account?).
      expect(on.storeCommands).toEqual(['update', 'find']);

      // The cookie: written by the POST that finished the sign-in, never by a GET.
      for (const page of first.pages) expect(knownBrowserCookie(page)).toBeUndefined();
      const cookie = knownBrowserCookie(first.finished);
      expect(cookie).toBeDefined();
      expect(cookie).toMatch(/^known_browser=[A-Za-z0-9_-]{22};/);
      expect(cookie).toMatch(/; path=\/interaction/i);
      expect(cookie).toMatch(/; httponly/i);
      expect(cookie).toMatch(/; samesite=lax/i);
      const expires = /; expires=([^;]+)/i.exec(cookie ?? '')?.[1];
      expect(new Date(expires ?? 0).getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
      // Signed with the cookie keys: its signature travels beside it.
      expect(setCookies(first.finished).some((line) => line.startsWith('known_browser.sig='))).toBe(true);
      // Stored as keyed hashes only: neither the account id nor the browser id is in the record.
      const browserId = /^known_browser=([^;]+)/.exec(cookie ?? '')?.[1] ?? '';
      const records = await on.server.deps.db.collection(KNOWN_BROWSERS_COLLECTION).find({}).toArray();
      expect(records.length).toBeGreaterThan(0);
      expect(JSON.stringify(records)).not.toContain(ann.id);
      expect(JSON.stringify(records)).not.toContain(browserId);

      // The same browser again: known, one command, no mail.
      on.storeCommands.length = 0;
      await signIn(on, firefox, ann.email);
      expect(on.storeCommands).toEqual(['update']);
      expect(await outboxCount(on, ann.email)).toBe(0);

      // Another browser: the notice.
      const before = on.smtp.countFor(ann.email);
      const chrome = new Browser(on.server.url, CHROME_WINDOWS);
      await signIn(on, chrome, ann.email);
      expect(await outboxCount(on, ann.email)).toBe(1);
      const mail = await on.smtp.waitForMail(ann.email, { after: before });
      expect(mail.subject).toBe(`New sign-in to your ${on.server.config.productName} account`);
      expect(mail.text).toContain('from a browser it had not used before, to use Notes.');
      expect(mail.text).toMatch(/Device: +Chrome on Windows/);
      expect(mail.text).toMatch(/IP address: +127\.0\.0\.1/);
      expect(mail.text).toMatch(/When: +\d{1,2} [A-Z][a-z]+ \d{4} at \d{2}:\d{2} UTC/);
      expect(mail.text).toContain(`${on.server.config.issuer}/password-reset`);
      expectNoSecret(mail, [browserId]);

      // That browser is known now: no second notice; nor for the first browser.
      await signIn(on, chrome, ann.email);
      await signIn(on, firefox, ann.email);
      expect(await outboxCount(on, ann.email)).toBe(1);
    });

    it('a forged browser id (no valid signature) is not taken as known', async () => {
      const bea = await person('bea');
      const firefox = new Browser(on.server.url, FIREFOX_LINUX);
      const first = await signIn(on, firefox, bea.email);
      const browserId = /^known_browser=([^;]+)/.exec(knownBrowserCookie(first.finished) ?? '')?.[1] ?? '';
      expect(browserId).toMatch(/^[A-Za-z0-9_-]{22}$/);

      // Another browser that copies the id, but cannot sign it: a new browser to the server.
      const copier = new Browser(on.server.url, CHROME_WINDOWS);
      const started = await authorizationRequest(on.rp);
      const login = await copier.follow(started.url.toString());
      const target = new URL(formAction(login.body, '/login'), on.server.url);
      // The browser's own cookies (its interaction), plus the copied id with a made-up signature.
      const jar = copier.cookieHeader(target);
      const finished = await fetch(target, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': CHROME_WINDOWS, cookie: `${jar}; known_browser=${browserId}; known_browser.sig=forged` },
        body: new URLSearchParams({ csrf: formField(login.body, 'csrf'), email: bea.email, password: PASSWORD }).toString(),
      });
      expect(finished.status).toBe(303);
      // A fresh id, not the copied one.
      const issued = finished.headers.getSetCookie().find((line) => line.startsWith('known_browser='));
      expect(issued).toMatch(/^known_browser=[A-Za-z0-9_-]{22};/);
      expect(issued).not.toContain(browserId);
      expect(await outboxCount(on, bea.email)).toBe(1);
    });

    it('a refused password writes no cookie and no record', async () => {
      const cid = await person('cid');
      const firefox = new Browser(on.server.url, FIREFOX_LINUX);
      const started = await authorizationRequest(on.rp);
      const login = await firefox.follow(started.url.toString());
      on.storeCommands.length = 0;
      const refused = await firefox.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: cid.email, password: 'not the password at all' });
      expect(refused.status).toBe(303);
      expect(refused.location).toContain('error=wrong_password');
      expect(knownBrowserCookie(refused)).toBeUndefined();
      expect(on.storeCommands).toEqual([]);
    });
  });

  describe('a recovery code', () => {
    async function enrolled(name: string): Promise<{ account: AccountView; codes: string[] }> {
      const account = await person(name);
      const enrolment = await on.server.deps.totp.beginEnrolment(account);
      const step = await clearOfStepEnd();
      const activated = await on.server.deps.totp.activate(account.id, await codeForStep(enrolment.secret, step), enrolment.sealed);
      if (!activated.ok) throw new Error('enrolment failed');
      return { account, codes: activated.recoveryCodes };
    }

    /** Password, then the recovery-code page; returns the page that follows the code. */
    async function useRecoveryCode(agent: UserAgent, email: string, code: string) {
      const started = await authorizationRequest(on.rp);
      const login = await agent.follow(started.url.toString());
      const totpPage = await submit(agent, login, '/login', { email, password: PASSWORD });
      expect(pageKind(totpPage)).toBe('totp');
      const recoveryPage = await agent.follow(`${totpPage.url}?method=recovery`);
      expect(pageKind(recoveryPage)).toBe('recovery');
      return { started, totpPage, page: await submit(agent, recoveryPage, '/second-factor/recovery', { code }) };
    }

    it('mails the notice, shows how many codes are left (with the way to set up the app), and Continue finishes: the RP gets its code', async () => {
      const { account, codes } = await enrolled('dora');
      const [code] = codes;
      if (!code) throw new Error('no recovery code');
      const agent = new Browser(on.server.url, FIREFOX_LINUX);
      const before = on.smtp.countFor(account.email);
      const { started, page } = await useRecoveryCode(agent, account.email, code);

      // The page: the count, the link to the security page, Continue (a form with its CSRF token).
      expect(page.status).toBe(200);
      expect(pageKind(page)).toBe('recovery-used');
      expect(page.body).toContain('You used a recovery code');
      expect(page.body).toContain('You have 9 recovery codes left.');
      expect(page.body).toMatch(/<a href="\/account\/security" target="_blank" rel="noopener">[^<]+<\/a>/);
      expect(page.body).toContain('(opens in a new tab)');
      expect(page.body).toMatch(/<button[^>]*type="submit"[^>]*autofocus[^>]*aria-describedby="codes-left"[^>]*>Continue<\/button>/);
      expect(page.body).toContain('id="codes-left"');
      expect(page.body).not.toContain(code);
      // No script is needed: the page carries none of its own.
      expect(page.body).not.toMatch(/<script/);

      // The notice went out when the code was spent, before Continue.
      const mail = await on.smtp.waitForMail(account.email, { after: before });
      expect(mail.subject).toBe(`A recovery code was used on your ${on.server.config.productName} account`);
      expect(mail.text).toContain('9 recovery codes are left');
      expect(mail.text).toMatch(/Device: +Firefox on Linux/);
      expect(mail.text).toMatch(/IP address: +127\.0\.0\.1/);
      expect(mail.text).toContain(`${on.server.config.issuer}/account/security`);
      expectNoSecret(mail, codes);

      // Reloading the page writes nothing and shows the same.
      const again = await agent.get(page.url);
      expect(again.status).toBe(200);
      expect(again.body).toContain('You have 9 recovery codes left.');
      expect(knownBrowserCookie(again)).toBeUndefined();

      // Continue without the CSRF token, or with a wrong one: refused, nothing finished.
      const action = formAction(page.body, '/second-factor/recovery/continue');
      for (const fields of [{}, { csrf: '' }, { csrf: 'x'.repeat(43) }] as Record<string, string>[]) {
        const refused = await agent.post(action, fields);
        expect(refused.status).toBe(403);
        expect(refused.location).toBeUndefined();
      }
      const stillThere = await agent.get(page.url);
      expect(pageKind(stillThere)).toBe('recovery-used');
      expect(await on.server.deps.totp.status(account.id)).toMatchObject({ recoveryCodesLeft: 9 });

      // Continue: the sign-in finishes (consent, then the RP's code and tokens).
      const consent = await submit(agent, page, '/second-factor/recovery/continue');
      expect(pageKind(consent)).toBe('consent');
      const confirmed = await agent.post(formAction(consent.body, '/confirm'), { csrf: formField(consent.body, 'csrf') });
      const callback = await agent.follow(confirmed.location ?? '');
      const tokens = await redeem(on.rp, started, callback);
      expect(tokens.claims()?.sub).toBe(account.id);
      expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);
      expect(tokens.claims()?.acr).toBe(on.server.config.acr.multiFactor);
      // Only the recovery notice: the first sign-in of the account is no "new sign-in".
      expect(await outboxCount(on, account.email)).toBe(1);
    });

    it('the last code: the page and the mail say none are left', async () => {
      const { account, codes } = await enrolled('eve');
      // Nine spent directly, the tenth through the pages.
      for (const spent of codes.slice(0, 9)) expect((await on.server.deps.totp.verifyRecoveryCode(account.id, spent)).ok).toBe(true);
      const before = on.smtp.countFor(account.email);
      const { page } = await useRecoveryCode(new UserAgent(on.server.url), account.email, codes[9] ?? '');
      expect(page.body).toContain('You have no recovery codes left.');
      const mail = await on.smtp.waitForMail(account.email, { after: before });
      expect(mail.text).toContain('No recovery codes are left');
    });

    it('Continue before a code was used is the wrong step (4xx), and a second code cannot be spent from the codes-left page', async () => {
      const { account, codes } = await enrolled('fay');
      const agent = new UserAgent(on.server.url);
      const started = await authorizationRequest(on.rp);
      const login = await agent.follow(started.url.toString());
      const totpPage = await submit(agent, login, '/login', { email: account.email, password: PASSWORD });
      const csrf = formField(totpPage.body, 'csrf');
      const early = await agent.post(`/interaction/${/\/interaction\/([^/"?]+)/.exec(totpPage.url)?.[1] ?? ''}/second-factor/recovery/continue`, { csrf });
      expect(early.status).toBeGreaterThanOrEqual(400);
      expect(early.status).toBeLessThan(500);
      expect(early.location).toBeUndefined();

      const recoveryPage = await agent.follow(`${totpPage.url}?method=recovery`);
      const page = await submit(agent, recoveryPage, '/second-factor/recovery', { code: codes[0] ?? '' });
      expect(pageKind(page)).toBe('recovery-used');
      // The recovery form's action, posted again from this step: refused, and the code not spent.
      const second = await agent.post(formAction(recoveryPage.body, '/second-factor/recovery'), { csrf, code: codes[1] ?? '' });
      expect(second.status).toBeGreaterThanOrEqual(400);
      expect(second.status).toBeLessThan(500);
      expect(await on.server.deps.totp.status(account.id)).toMatchObject({ recoveryCodesLeft: 9 });
    });
  });
});

describe('new sign-in with NOTIFY_NEW_SIGN_IN off (the default)', () => {
  let off: Suite;

  beforeAll(async () => {
    off = await startSuite('notices_off', {});
  });

  afterAll(() => stopMailingServer(off ?? {}));

  it('two browsers, no mail, no cookie, and not one database command on the store', async () => {
    expect(off.server.config.notices.newSignIn).toBe(false);
    const gil = await off.server.deps.accounts.create({ email: 'gil@example.com', password: PASSWORD });
    off.storeCommands.length = 0;
    for (const agent of [new Browser(off.server.url, FIREFOX_LINUX), new Browser(off.server.url, CHROME_WINDOWS)]) {
      const { finished } = await signIn(off, agent, gil.email);
      expect(knownBrowserCookie(finished)).toBeUndefined();
    }
    expect(off.storeCommands).toEqual([]);
    expect(await off.server.deps.db.collection(KNOWN_BROWSERS_COLLECTION).countDocuments()).toBe(0);
    expect(await outboxCount(off, gil.email)).toBe(0);
  });
});
