import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';

import type { MailServer } from '../support/mail-server.js';
import type { TestClock } from '../support/clock.js';
import { createTestClock, passTime } from '../support/clock.js';
import {
  TOTP_STEP_MS,
  clearOfStepEnd,
  codeForStep,
  enrolOnAccountPage,
  pageKind,
  recoveryCodesFrom,
  secretFromEnrolPage,
  submit,
  wrongTotpCode,
} from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';
import { ageAuthenticationOf, expectFreshSignIn } from './account-changes.harness.js';

/**
 * The self-service security page (/account/security): its sign-in as the built-in first-party
 * client `account-console` (state, PKCE, a callback that redeems the code once), and the
 * authenticator-app forms on it (enrol, new recovery codes, remove), each behind the session
 * and a CSRF token.
 *
 * NOTE: TOTP codes are computed for absolute 30-second steps, never within a few seconds of a
 * step's end, and each one after the step the account last used (the server refuses older ones).
 */

const PASSWORD = 'correct horse battery staple 7';

/**
 * A step whose code the server will take now: the current one, or the next (within the window)
 * when the current one was already used.
 */
async function usableStep(lastUsed: number, clock: TestClock): Promise<number> {
  let now = await clearOfStepEnd(5_000, clock);
  while (lastUsed > now) {
    await passTime(clock, TOTP_STEP_MS - (clock.nowMs() % TOTP_STEP_MS) + 250);
    now = await clearOfStepEnd(5_000, clock);
  }
  return Math.max(now, lastUsed + 1);
}

function expectClientError(reply: Reply, status?: number): void {
  if (status !== undefined) expect(reply.status).toBe(status);
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expect(reply.status).toBeLessThan(500);
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.body).not.toMatch(/^\s*at\s/m);
  expect(reply.body).not.toContain('node_modules');
}

/** The pair of signed-cookie Set-Cookie values (`name=value`) for `name` in a reply. */
function setCookiePairs(reply: Reply, name: string): string[] {
  return reply.headers
    .getSetCookie()
    .map((line) => line.split(';')[0] ?? '')
    .filter((pair) => pair.startsWith(`${name}=`) || pair.startsWith(`${name}.sig=`));
}

/**
 * The refused form's field is marked and focused, with the message beside it: aria-invalid,
 * aria-describedby naming the message's element, autofocus (no JavaScript needed), and no other
 * field marked.
 */
function expectFieldError(body: string, id: string, message: string): void {
  const input = new RegExp(`<input[^>]*id="${id}"[^>]*>`).exec(body)?.[0] ?? '';
  expect(input).toContain('aria-invalid="true"');
  expect(input).toContain(`aria-describedby="${id}-error"`);
  expect(input).toMatch(/\sautofocus(?:="autofocus")?[\s>]/);
  expect(body).toMatch(new RegExp(`<p class="field-error" id="${id}-error">[^<]*${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  expect(body.match(/aria-invalid="true"/g)).toHaveLength(1);
}

/** The two-step verification state the page shows ("On" or "Off"), whatever the markup around it. */
function shownState(body: string): string | undefined {
  return /<span[^>]*>(On|Off)<\/span>/.exec(body)?.[1];
}

interface Person {
  email: string;
  password: string;
}

describe('/account/security', () => {
  let server: TestServer;
  let smtp: MailServer;
  // The services' clock (the TOTP steps): moved to the next step instead of waiting for it.
  const clock = createTestClock();

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('account_routes', {}, { clock }));
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  const url = (path: string) => `${server.url}${path}`;

  /** Every account document as stored (BSON, in _id order): equal bytes, nothing written. */
  const accountsBytes = async () =>
    Buffer.concat((await server.deps.db.collection('accounts').find({}).sort({ _id: 1 }).toArray()).map((doc) => mongo.BSON.serialize(doc)));

  async function newPerson(name: string): Promise<Person & { id: string }> {
    const p = { email: `${name}@example.com`, password: PASSWORD };
    const account = await server.deps.accounts.create(p);
    return { ...p, id: account.id };
  }

  /** A browser's way to the page: /account/security → sign-in → login page → password; the page after it (the security page, once signed in). */
  async function signIn(p: Person, agent = new UserAgent(server.url)): Promise<{ agent: UserAgent; page: Reply }> {
    const login = await agent.follow(url('/account/security'));
    expect(pageKind(login)).toBe('login');
    const page = await submit(agent, login, '/login', { email: p.email, password: p.password });
    return { agent, page };
  }

  /** Steps through redirects one by one until the browser is about to open the account callback. */
  async function untilCallback(agent: UserAgent, reply: Reply): Promise<{ callbackUrl: string; visited: string[] }> {
    const visited: string[] = [];
    let current = reply;
    for (let hops = 0; hops < 10; hops += 1) {
      const location = current.location;
      if (!location) throw new Error(`expected a redirect, got ${current.status} at ${current.url}`);
      if (new URL(location).pathname === '/account/callback') return { callbackUrl: location, visited };
      visited.push(location);
      current = await agent.get(location);
    }
    throw new Error('no redirect to /account/callback');
  }

  /** Enrols the app from the page; returns the key, the recovery codes and the step whose code was used. */
  async function enrolFromPage(agent: UserAgent): Promise<{ secret: string; recoveryCodes: string[]; usedStep: number }> {
    const { auth, recoveryCodes, page: codes } = await enrolOnAccountPage(agent, server.url, clock);
    expect(recoveryCodes).toHaveLength(10);
    const page = await submit(agent, codes, '/account/security/done');
    expect(shownState(page.body)).toBe('On');
    return { secret: auth.secret, recoveryCodes, usedStep: auth.lastStep };
  }

  describe('signing in', () => {
    it('without a session: sign-in, /auth with PKCE S256 and state, our login page, then back to the page with no consent', async () => {
      const p = await newPerson('first');
      const agent = new UserAgent(server.url);

      const page = await agent.get(url('/account/security'));
      expect(page.status).toBe(303);
      // The sign-in comes back to the page asked for.
      expect(page.location).toBe(url('/account/sign-in?return=%2Faccount%2Fsecurity'));

      const start = await agent.get(page.location ?? '');
      expect(start.status).toBe(303);
      const auth = new URL(start.location ?? '');
      expect(auth.origin).toBe(server.url);
      expect(auth.pathname).toBe('/auth');
      expect(auth.searchParams.get('client_id')).toBe('account-console');
      expect(auth.searchParams.get('response_type')).toBe('code');
      expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
      expect(auth.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(auth.searchParams.get('redirect_uri')).toBe(url('/account/callback'));
      const state = auth.searchParams.get('state');
      expect(state).toMatch(/^[A-Za-z0-9_-]{16,}$/);
      // The login cookie is HttpOnly and scoped to /account.
      const loginCookie = start.headers.getSetCookie().find((line) => line.startsWith('account.login='));
      expect(loginCookie).toMatch(/path=\/account/i);
      expect(loginCookie).toMatch(/httponly/i);

      const login = await agent.follow(auth.toString());
      expect(login.status).toBe(200);
      expect(pageKind(login)).toBe('login');
      expect(login.url).toMatch(/\/interaction\/[A-Za-z0-9_-]+$/);

      const posted = await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: p.email, password: p.password });
      expect(posted.status).toBe(303);
      const { callbackUrl, visited } = await untilCallback(agent, posted);
      // First-party client: from the password straight to the callback, no consent page between.
      expect(visited.every((u) => !u.includes('/interaction/'))).toBe(true);
      const callback = new URL(callbackUrl);
      expect(callback.searchParams.get('state')).toBe(state);
      expect(callback.searchParams.get('code')).toBeTruthy();

      const back = await agent.get(callbackUrl);
      expect(back.status).toBe(303);
      expect(back.location).toBe(url('/account/security'));
      const security = await agent.follow(back.location ?? '');
      expect(security.status).toBe(200);
      expect(security.body).toContain(p.email);
      expect(security.body).toContain('Two-step verification');
      expect(security.headers.get('cache-control')).toContain('no-store');
    });

    it('a callback with a wrong state is a 400 page; without the login cookie too', async () => {
      const p = await newPerson('state');
      const agent = new UserAgent(server.url);
      const login = await agent.follow(url('/account/security'));
      const posted = await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: p.email, password: p.password });
      const { callbackUrl } = await untilCallback(agent, posted);

      const tampered = new URL(callbackUrl);
      tampered.searchParams.set('state', 'not-the-state-we-sent');
      const wrongState = await agent.get(tampered.toString());
      expectClientError(wrongState, 400);
      expect(wrongState.body).toContain('This sign-in link has expired or was opened in another browser');

      // The right URL in a browser without the login cookie (another browser, or this one after
      // the refusal cleared it): 400, and no page reached.
      const otherBrowser = await new UserAgent(server.url).get(callbackUrl);
      expectClientError(otherBrowser, 400);
      const sameBrowser = await agent.get(callbackUrl);
      expectClientError(sameBrowser, 400);

      // A bare callback with neither cookie nor parameters.
      expectClientError(await new UserAgent(server.url).get(url('/account/callback')), 400);
    });

    it('replaying the callback URL is a 4xx (cookie gone, and code already consumed)', async () => {
      const p = await newPerson('replay');
      const agent = new UserAgent(server.url);
      const toSignIn = await agent.get(url('/account/security'));
      const start = await agent.get(toSignIn.location ?? '');
      const loginCookie = setCookiePairs(start, 'account.login');
      expect(loginCookie).toHaveLength(2); // value and signature
      const login = await agent.follow(start.location ?? '');
      const posted = await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: p.email, password: p.password });
      const { callbackUrl } = await untilCallback(agent, posted);

      const first = await agent.get(callbackUrl);
      expect(first.status).toBe(303);
      expect(first.location).toBe(url('/account/security'));

      const replay = await agent.get(callbackUrl);
      expectClientError(replay);

      // Even with the original login cookie sent again, the code is spent.
      const withCookie = await fetch(callbackUrl, { redirect: 'manual', headers: { accept: 'text/html', cookie: loginCookie.join('; ') } });
      const body = await withCookie.text();
      expect(withCookie.status).toBe(400);
      expect(body).toContain('This sign-in could not be completed');
      expect(body).not.toContain('node_modules');

      // The session from the first callback still reaches the page.
      const page = await agent.get(url('/account/security'));
      expect(page.status).toBe(200);
      expect(page.body).toContain(p.email);
    });

    it("a disabled account's session no longer reaches the page", async () => {
      const p = await newPerson('disabled');
      const { agent, page } = await signIn(p);
      expect(page.status).toBe(200);
      expect(page.body).toContain(p.email);

      await server.deps.accounts.setDisabled(p.id, true);
      const after = await agent.get(url('/account/security'));
      expect(after.status).toBe(303);
      expect(after.location).toBe(url('/account/sign-in?return=%2Faccount%2Fsecurity'));
      // Nor do the forms work with it.
      const post = await agent.post(url('/account/security/totp/remove'), { csrf: 'x', password: p.password });
      expect(post.status).toBe(303);
      expect(post.location).toBe(url('/account/sign-in'));
      // Following the redirect asks for a sign-in again (the session's account is unusable),
      // with a page, not a server error.
      const login = await agent.follow(after.location ?? '');
      expect(login.status).toBe(200);
      expect(pageKind(login)).toBe('login');
      expect(login.body).not.toContain('Signed in as');
    });
  });

  describe('the authenticator app', () => {
    const me = { email: 'owner@example.com', password: PASSWORD, id: '' };
    let agent: UserAgent;
    let secret = '';
    let firstCodes: string[] = [];
    let newCodes: string[] = [];
    let lastStep = 0;

    beforeAll(async () => {
      me.id = (await server.deps.accounts.create(me)).id;
      const signedIn = await signIn(me);
      agent = signedIn.agent;
      expect(signedIn.page.status).toBe(200);
      expect(shownState(signedIn.page.body)).toBe('Off');
    });

    it('enrols from the page: QR code and key, a wrong code is 401, the right one shows 10 recovery codes once', async () => {
      // Showing the enrolment page writes nothing, however often (the key travels sealed in the form).
      const before = await accountsBytes();
      const shown = await agent.get(url('/account/security/totp'));
      expect(pageKind(shown)).toBe('enrol');
      const enrol = await agent.get(url('/account/security/totp'));
      expect((await accountsBytes()).equals(before)).toBe(true);
      expect(secretFromEnrolPage(enrol.body)).not.toBe(secretFromEnrolPage(shown.body));
      expect(enrol.status).toBe(200);
      expect(pageKind(enrol)).toBe('enrol');
      expect(enrol.body).toMatch(/<img[^>]*src="data:image\/png;base64,[A-Za-z0-9+/=]+"/);
      secret = secretFromEnrolPage(enrol.body);
      expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
      // A phone cannot scan its own screen: the same key as an otpauth:// link, and help without an app.
      const link = /<a class="button button-secondary" href="(otpauth:\/\/totp\/[^"]+)">Open in authenticator app<\/a>/.exec(enrol.body)?.[1];
      expect(new URL(link!.replace(/&amp;/g, '&')).searchParams.get('secret')).toBe(secret);
      expect(enrol.body).toContain('<summary>No authenticator app?</summary>');

      const wrong = await submit(agent, enrol, '/account/security/totp', { code: await wrongTotpCode(secret, clock) });
      expect(wrong.status).toBe(401);
      expect(pageKind(wrong)).toBe('enrol');
      expect(secretFromEnrolPage(wrong.body)).toBe(secret);
      expect((await server.deps.totp.status(me.id)).enabled).toBe(false);

      const bad = await submit(agent, enrol, '/account/security/totp', { code: 'abcdef' });
      expectClientError(bad, 400);

      lastStep = (await clearOfStepEnd(5_000, clock)) - 1;
      const codes = await submit(agent, wrong, '/account/security/totp', { code: await codeForStep(secret, lastStep) });
      expect(codes.status).toBe(200);
      expect(pageKind(codes)).toBe('recovery-codes');
      firstCodes = recoveryCodesFrom(codes.body);
      expect(firstCodes).toHaveLength(10);
      expect(new Set(firstCodes).size).toBe(10);
      expect(/<a[^>]*href="([^"]*)"[^>]*download=/.exec(codes.body)?.[1]).toMatch(/^data:text\/plain/);

      const page = await submit(agent, codes, '/account/security/done');
      expect(page.status).toBe(200);
      expect(page.url).toBe(url('/account/security'));
      expect(shownState(page.body)).toBe('On');
      expect(page.body).toMatch(/Recovery codes left:(?:\s|<[^>]*>)*10\b/);
      // Shown once: neither the page nor the enrolment URL shows them (or a key) again.
      for (const code of firstCodes) expect(page.body).not.toContain(code);
      const enrolAgain = await agent.get(url('/account/security/totp'));
      expect(enrolAgain.status).toBe(303);
      expect(enrolAgain.location).toBe(url('/account/security'));
      expect((await server.deps.totp.status(me.id)).enabled).toBe(true);
    });

    it('new recovery codes need a current code (wrong 401); the old codes then stop working', async () => {
      expect(secret).not.toBe('');
      const page = await agent.get(url('/account/security'));
      expect(page.status).toBe(200);

      const wrong = await submit(agent, page, '/account/security/recovery-codes', { code: await wrongTotpCode(secret, clock) });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toContain('That code is not right');
      expectFieldError(wrong.body, 'regen-code', 'That code is not right');
      expect(recoveryCodesFrom(wrong.body)).toEqual([]);
      const missing = await submit(agent, page, '/account/security/recovery-codes', {});
      expectClientError(missing, 400);
      expectFieldError(missing.body, 'regen-code', 'Enter the current 6-digit code');
      // A page without a refusal marks nothing and focuses nothing.
      expect(page.body).not.toContain('aria-invalid');
      expect(page.body).not.toContain('autofocus');

      const step = await usableStep(lastStep, clock);
      lastStep = step;
      const fresh = await submit(agent, page, '/account/security/recovery-codes', { code: await codeForStep(secret, step) });
      expect(fresh.status).toBe(200);
      expect(pageKind(fresh)).toBe('recovery-codes');
      newCodes = recoveryCodesFrom(fresh.body);
      expect(newCodes).toHaveLength(10);
      for (const code of newCodes) expect(firstCodes).not.toContain(code);
      await submit(agent, fresh, '/account/security/done');

      // The same current code cannot make another set (it is used now).
      const reused = await submit(agent, await agent.get(url('/account/security')), '/account/security/recovery-codes', { code: await codeForStep(secret, step) });
      expect(reused.status).toBe(401);

      // Another browser: password, then an old recovery code is refused; a new one signs in.
      const other = await signIn(me);
      expect(pageKind(other.page)).toBe('totp');
      const recovery = await other.agent.follow(`${other.page.url}?method=recovery`);
      expect(pageKind(recovery)).toBe('recovery');
      const old = await submit(other.agent, recovery, '/second-factor/recovery', { code: firstCodes[0] ?? '' });
      expect(old.status).toBe(401);
      expect(pageKind(old)).toBe('recovery');
      const left = await submit(other.agent, old, '/second-factor/recovery', { code: newCodes[0] ?? '' });
      expect(left.body).toContain('You have 9 recovery codes left');
      const ok = await submit(other.agent, left, '/second-factor/recovery/continue');
      expect(ok.status).toBe(200);
      expect(ok.url).toBe(url('/account/security'));
      expect(ok.body).toMatch(/Recovery codes left:(?:\s|<[^>]*>)*9\b/);
    });

    it('CSRF: a missing or foreign token on each form is 403, and changes nothing', async () => {
      const stranger = await newPerson('stranger');
      const foreignSession = await signIn(stranger);
      expect(foreignSession.page.body).toContain(stranger.email);
      // Without an app set up the page has no form; the enrolment page has one.
      const foreignToken = formField((await foreignSession.agent.get(url('/account/security/totp'))).body, 'csrf');
      // The token of a sign-in page (an interaction) of this account, in another browser.
      const otherSession = await signIn(me);
      expect(pageKind(otherSession.page)).toBe('totp');
      const interactionToken = formField(otherSession.page.body, 'csrf');

      const mine = formField((await agent.get(url('/account/security'))).body, 'csrf');
      expect(mine).not.toBe(foreignToken);

      const step = await usableStep(lastStep, clock);
      const current = await codeForStep(secret, step);
      const forms: [string, Record<string, string>][] = [
        ['/account/security/totp', { code: current }],
        ['/account/security/done', {}],
        ['/account/security/recovery-codes', { code: current }],
        ['/account/security/totp/remove', { password: me.password }],
      ];
      for (const [path, fields] of forms) {
        for (const [label, token] of [
          ['missing', undefined],
          ['empty', ''],
          ['another session', foreignToken],
          ['a sign-in page', interactionToken],
          ['made up', 'A'.repeat(43)],
        ] as const) {
          const reply = await agent.post(url(path), token === undefined ? fields : { ...fields, csrf: token });
          expect({ path, label, status: reply.status }).toEqual({ path, label, status: 403 });
          expectClientError(reply, 403);
        }
      }
      // Still on, with the recovery codes made before (9 left), and the code not spent.
      const status = await server.deps.totp.status(me.id);
      expect(status.enabled).toBe(true);
      expect(status.recoveryCodesLeft).toBe(9);
      const stillUsable = await submit(agent, await agent.get(url('/account/security')), '/account/security/recovery-codes', { code: current });
      expect(stillUsable.status).toBe(200);
      expect(recoveryCodesFrom(stillUsable.body)).toHaveLength(10);
      newCodes = recoveryCodesFrom(stillUsable.body);
      lastStep = step;
      await submit(agent, stillUsable, '/account/security/done');
    });

    it('removing it needs the password or a current code: wrong password 401, nothing 400, right password turns it off', async () => {
      const page = await agent.get(url('/account/security'));
      expect(shownState(page.body)).toBe('On');

      const wrong = await submit(agent, page, '/account/security/totp/remove', { password: 'not my password at all' });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toContain('That password is not right');
      expectFieldError(wrong.body, 'remove-password', 'That password is not right');
      expect((await server.deps.totp.status(me.id)).enabled).toBe(true);

      const nothing = await submit(agent, page, '/account/security/totp/remove', {});
      expectClientError(nothing, 400);
      expectFieldError(nothing.body, 'remove-password', 'Enter your current password or a current code');
      const empty = await submit(agent, page, '/account/security/totp/remove', { password: '', code: '' });
      expectClientError(empty, 400);
      const malformed = await submit(agent, page, '/account/security/totp/remove', { code: '12ab' });
      expectClientError(malformed, 400);
      expectFieldError(malformed.body, 'remove-code', 'Enter the 6-digit code');
      const wrongCodeReply = await submit(agent, page, '/account/security/totp/remove', { code: await wrongTotpCode(secret, clock) });
      expect(wrongCodeReply.status).toBe(401);
      expectFieldError(wrongCodeReply.body, 'remove-code', 'That code is not right');
      expect((await server.deps.totp.status(me.id)).enabled).toBe(true);

      const removed = await submit(agent, page, '/account/security/totp/remove', { password: me.password });
      expect(removed.status).toBe(200);
      expect(shownState(removed.body)).toBe('Off');
      expect(removed.body).toContain('Two-step verification is off');
      expect((await server.deps.totp.status(me.id)).enabled).toBe(false);

      // The next sign-in (a new browser) has no code step: password, then straight to the page.
      const next = await signIn(me);
      expect(next.page.status).toBe(200);
      expect(next.page.url).toBe(url('/account/security'));
      expect(shownState(next.page.body)).toBe('Off');
      expect(pageKind(next.page)).toBe('other');
    });

    it('removing it with a current code from the app works too', async () => {
      const remover = await newPerson('remover');
      const { agent: browser, page: first } = await signIn(remover);
      expect(shownState(first.body)).toBe('Off');
      const enrolled = await enrolFromPage(browser);
      const step = await usableStep(enrolled.usedStep, clock);
      const page = await browser.get(url('/account/security'));
      const removed = await submit(browser, page, '/account/security/totp/remove', { code: await codeForStep(enrolled.secret, step) });
      expect(removed.status).toBe(200);
      expect(shownState(removed.body)).toBe('Off');
      expect((await server.deps.totp.status(remover.id)).enabled).toBe(false);
    });
  });
  describe('changes need a recent authentication', () => {
    const RECENT = () => server.config.recentAuthMaxAgeSeconds;

    const ageAuthentication = (accountId: string, seconds: number) => ageAuthenticationOf(server, accountId, seconds);

    it('showing the enrolment page: a step-up sign-in (max_age=0, login_hint), then back to the page', async () => {
      const p = await newPerson('stale-enrol');
      const { agent } = await signIn(p);
      expect((await agent.get(url('/account/security/totp'))).status).toBe(200);

      await ageAuthentication(p.id, RECENT() + 60);
      const before = await accountsBytes();
      const refused = await agent.get(url('/account/security/totp'));
      expect((await accountsBytes()).equals(before)).toBe(true);
      // The security page itself needs no recent authentication.
      expect((await agent.get(url('/account/security'))).status).toBe(200);

      const login = await expectFreshSignIn(agent, refused, p.email, '/account/security/totp');
      const back = await submit(agent, login, '/login', { email: p.email, password: p.password });
      expect(back.status).toBe(200);
      expect(back.url).toBe(url('/account/security/totp'));
      expect(pageKind(back)).toBe('enrol');
    });

    it('a stale POST turning the app on does nothing, asks again, and comes back to the security page with a notice', async () => {
      const p = await newPerson('stale-activate');
      const { agent } = await signIn(p);
      const enrol = await agent.get(url('/account/security/totp'));
      const secret = secretFromEnrolPage(enrol.body);

      await ageAuthentication(p.id, RECENT() + 1);
      const step = await clearOfStepEnd(5_000, clock);
      const refused = await agent.post(url('/account/security/totp'), {
        csrf: formField(enrol.body, 'csrf'),
        enrolment: formField(enrol.body, 'enrolment'),
        code: await codeForStep(secret, step),
      });
      expect((await server.deps.totp.status(p.id)).enabled).toBe(false);

      const login = await expectFreshSignIn(agent, refused, p.email, '/account/security?signed-in-again=1');
      const back = await submit(agent, login, '/login', { email: p.email, password: p.password });
      expect(back.status).toBe(200);
      expect(back.url).toBe(url('/account/security?signed-in-again=1'));
      expect(back.body).toContain('You signed in again. Nothing was changed yet');
      expect(shownState(back.body)).toBe('Off');

      // Now fresh: the same page, still open, turns it on (the code was never used).
      const codes = await submit(agent, enrol, '/account/security/totp', { code: await codeForStep(secret, step) });
      expect(pageKind(codes)).toBe('recovery-codes');
      expect((await server.deps.totp.status(p.id)).enabled).toBe(true);
    });

    it('stale POSTs making new recovery codes or removing the app do nothing; after the step-up (password and app) they work, with their proofs', async () => {
      const p = await newPerson('stale-remove');
      const { agent } = await signIn(p);
      const enrolled = await enrolFromPage(agent);
      const [recoveryA, recoveryB] = enrolled.recoveryCodes as [string, string];

      await ageAuthentication(p.id, RECENT() + 60);
      const page = await agent.get(url('/account/security'));
      expect(shownState(page.body)).toBe('On');
      const step = await usableStep(enrolled.usedStep, clock);
      const code = await codeForStep(enrolled.secret, step);
      const regenerate = await agent.post(url('/account/security/recovery-codes'), { csrf: formField(page.body, 'csrf'), code });
      expect(regenerate.status).toBe(303);
      expect(new URL(regenerate.location ?? '').pathname).toBe('/account/sign-in');
      const remove = await agent.post(url('/account/security/totp/remove'), { csrf: formField(page.body, 'csrf'), password: p.password });
      expect(remove.status).toBe(303);
      // Nothing happened: still on, the same ten recovery codes, and the code not spent.
      expect(await server.deps.totp.status(p.id)).toMatchObject({ enabled: true, recoveryCodesLeft: 10 });

      // The step-up asks for every factor the account has: password, then the app (a recovery code here).
      const login = await expectFreshSignIn(agent, remove, p.email, '/account/security?signed-in-again=1');
      const second = await submit(agent, login, '/login', { email: p.email, password: p.password });
      expect(pageKind(second)).toBe('totp');
      const recovery = await agent.follow(`${second.url}?method=recovery`);
      const left = await submit(agent, recovery, '/second-factor/recovery', { code: recoveryA });
      const back = await submit(agent, left, '/second-factor/recovery/continue');
      expect(back.url).toBe(url('/account/security?signed-in-again=1'));
      expect(back.body).toContain('do it once more now');

      // Fresh now, and the proofs still apply: removal without the password or a code is refused.
      const nothing = await submit(agent, back, '/account/security/totp/remove', {});
      expectClientError(nothing, 400);
      const fresh = await submit(agent, back, '/account/security/recovery-codes', { code });
      expect(pageKind(fresh)).toBe('recovery-codes');
      expect(await server.deps.totp.verifyRecoveryCode(p.id, recoveryB)).toEqual({ ok: false, reason: 'invalid' });
      const removed = await submit(agent, await agent.get(url('/account/security')), '/account/security/totp/remove', { password: p.password });
      expect(shownState(removed.body)).toBe('Off');
      expect((await server.deps.totp.status(p.id)).enabled).toBe(false);
    });

    it('a sign-in returns only to paths the page lists, whatever the link says', async () => {
      const p = await newPerson('return-paths');
      for (const returnTo of ['https://evil.example/', '//evil.example/account/security', '/account/security/../../admin', '/admin/clients', '/account/security/totp?x=1']) {
        const agent = new UserAgent(server.url);
        const start = await agent.get(url(`/account/sign-in?return=${encodeURIComponent(returnTo)}`));
        expect(start.status).toBe(303);
        const login = await agent.follow(start.location ?? '');
        const posted = await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: p.email, password: p.password });
        const { callbackUrl } = await untilCallback(agent, posted);
        const landed = await agent.get(callbackUrl);
        expect({ returnTo, location: landed.location }).toEqual({ returnTo, location: url('/account/overview') });
      }
    });
  });
});
