import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { MailServer } from '../support/mail-server.js';
import { pageKind, submit } from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formField } from '../support/user-agent.js';
import { PASSWORD, expectClientError, expectFieldMarked, harness, inputTag } from './account-changes.harness.js';

/**
 * The password page (/account/password): changing the password with the current one (a guarded
 * proof, counted like the sign-in's), setting one on a passwordless account, the policy's
 * refusals on the field, other sessions ended, audit; stale authentication, CSRF, bad input.
 * Effects are checked from outside: the login page takes the new password and refuses the old.
 */

const NEW_PASSWORD = 'plum orbit lantern quietly 42';

describe('/account/password', () => {
  let server: TestServer;
  let smtp: MailServer;
  const h = harness(() => ({ server, smtp }));
  const { url } = h;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('account_password'));
  });
  afterAll(() => stopMailingServer({ server, smtp }));

  /** Whether a password sign-in on the login page works (a fresh browser, then a page that needs the session). */
  async function passwordWorks(email: string, password: string): Promise<boolean> {
    const agent = new UserAgent(server.url);
    const login = await agent.follow(url('/account/security'));
    const after = await submit(agent, login, '/login', { email, password });
    if (pageKind(after) === 'login') return false;
    return (await agent.get(url('/account/security'))).status === 200;
  }

  const eventsFor = async (accountId: string, action: string) =>
    (await server.deps.audit.list({ target: accountId, action }, { limit: 500 })).events.reverse();

  it('changes the password with the current one: the old one is refused, the new one works, other sessions end, audited', async () => {
    const p = await h.newPerson('change');
    const { agent, page } = await h.signIn(p, '/account/password');
    expect(page.status).toBe(200);
    expect(page.url).toBe(url('/account/password'));
    expect(page.headers.get('cache-control')).toContain('no-store');
    expect(inputTag(page.body, 'current')).toContain('autocomplete="current-password"');
    expect(inputTag(page.body, 'password')).toContain('autocomplete="new-password"');
    expect(inputTag(page.body, 'confirm')).toContain('autocomplete="new-password"');
    expect(page.body).toMatch(/<label for="current">Current password<\/label>/);
    expect(page.body).toContain('/static/password-toggle.js');
    const other = await h.signIn(p, '/account/security');
    expect(await h.hasSession(other.agent)).toBe(true);

    const mailsBefore = smtp.countFor(p.email);
    const posted = await agent.post(url('/account/password'), { csrf: formField(page.body, 'csrf'), current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(posted.status).toBe(303);
    const notice = await smtp.waitForMail(p.email, { after: mailsBefore });
    expect(notice.subject).toMatch(/password was changed/);
    expect(notice.text).not.toContain(NEW_PASSWORD);
    expect(posted.location).toBe(url('/account/password?done=changed'));
    const done = await agent.get(posted.location ?? '');
    expect(done.status).toBe(200);
    expect(done.body).toContain('Your password is changed');

    expect(await h.hasSession(agent)).toBe(true);
    expect(await h.hasSession(other.agent)).toBe(false);
    expect(await passwordWorks(p.email, PASSWORD)).toBe(false);
    expect(await passwordWorks(p.email, NEW_PASSWORD)).toBe(true);
    const [event] = await eventsFor(p.id, 'user.password_changed');
    expect(event).toMatchObject({ outcome: 'success', actor: { type: 'account', id: p.id }, details: { endedSessions: 1, during: 'account' } });
    expect(JSON.stringify(event)).not.toContain(NEW_PASSWORD);
  });

  it('refuses a wrong current password (401), a weak, long, empty or mismatched new one (400), each on its field; nothing stored', async () => {
    const p = await h.newPerson('refusals');
    const { agent, page } = await h.signIn(p, '/account/password');
    const before = await h.snapshot();
    const post = (fields: Record<string, string>) => agent.post(url('/account/password'), { csrf: formField(page.body, 'csrf'), ...fields });

    const wrong = await post({ current: 'not my password at all', password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expectClientError(wrong, 401);
    expectFieldMarked(wrong.body, 'current', 'That is not your current password.');

    const cases: [Record<string, string>, string, string | RegExp][] = [
      [{ current: '', password: NEW_PASSWORD, confirm: NEW_PASSWORD }, 'current', 'Enter your current password.'],
      [{ current: PASSWORD, password: '', confirm: '' }, 'password', 'Enter a new password.'],
      [{ current: PASSWORD, password: 'password123', confirm: 'password123' }, 'password', /at least 12 characters/],
      [{ current: PASSWORD, password: 'qwertyuiopasdf', confirm: 'qwertyuiopasdf' }, 'password', /common|guess/],
      [{ current: PASSWORD, password: `${p.email.split('@')[0]}2024!`, confirm: `${p.email.split('@')[0]}2024!` }, 'password', /email address/],
      [{ current: PASSWORD, password: 'x'.repeat(2000), confirm: 'x'.repeat(2000) }, 'password', 'Use at most 128 characters.'],
      [{ current: PASSWORD, password: 'y'.repeat(200), confirm: 'y'.repeat(200) }, 'password', 'Use at most 128 characters.'],
      [{ current: PASSWORD, password: NEW_PASSWORD, confirm: `${NEW_PASSWORD}!` }, 'confirm', /not the same/],
      [{ current: 'z'.repeat(2000), password: NEW_PASSWORD, confirm: NEW_PASSWORD }, 'current', /at most 1024/],
    ];
    for (const [fields, field, message] of cases) {
      const reply = await post(fields);
      expectClientError(reply, 400);
      expectFieldMarked(reply.body, field, message);
    }
    // A field sent twice is refused before any handler (one value per field).
    expectClientError(await agent.request(url('/account/password'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrf=${encodeURIComponent(formField(page.body, 'csrf'))}&current=a&current=b&password=x&confirm=x`,
    }), 400);
    expect((await h.snapshot()).equals(before)).toBe(true);
    expect(await passwordWorks(p.email, PASSWORD)).toBe(true);
  });

  it('a passwordless account sets a password without a current one; it then signs in with it', async () => {
    const p = await h.newPerson('set', { password: false });
    const { agent, page } = await h.signIn(p, '/account/password');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Set a password');
    expect(page.body).not.toContain('name="current"');
    const other = await h.signIn(p, '/account/security');

    const weak = await agent.post(url('/account/password'), { csrf: formField(page.body, 'csrf'), password: 'short', confirm: 'short' });
    expectClientError(weak, 400);
    expectFieldMarked(weak.body, 'password', /at least/);
    expect((await server.deps.accounts.findById(p.id))?.hasPassword).toBe(false);

    const mailsBefore = smtp.countFor(p.email);
    const posted = await agent.post(url('/account/password'), { csrf: formField(page.body, 'csrf'), password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(posted.location).toBe(url('/account/password?done=set'));
    expect((await smtp.waitForMail(p.email, { after: mailsBefore })).subject).toMatch(/password was changed/);
    expect((await agent.get(posted.location ?? '')).body).toContain('Your password is set');
    expect(await h.hasSession(other.agent)).toBe(false);
    expect(await passwordWorks(p.email, NEW_PASSWORD)).toBe(true);
    expect((await eventsFor(p.id, 'user.password_set')).map((e) => e.outcome)).toEqual(['failure', 'success']);
    // The page now asks for the current password.
    expect((await agent.get(url('/account/password'))).body).toContain('name="current"');
  });

  it('a stale authentication: the page asks for a new sign-in first; a stale POST changes nothing, and after the sign-in it works', async () => {
    const p = await h.newPerson('stale');
    const { agent, page } = await h.signIn(p, '/account/password');
    await h.ageAuthentication(p.id, server.config.recentAuthMaxAgeSeconds + 30);

    const before = await h.snapshot();
    const refused = await agent.get(url('/account/password'));
    const login = await h.expectFreshSignIn(agent, refused, p.email, '/account/password');
    const back = await submit(agent, login, '/login', { email: p.email, password: PASSWORD });
    expect(back.url).toBe(url('/account/password'));
    expect(back.status).toBe(200);

    await h.ageAuthentication(p.id, server.config.recentAuthMaxAgeSeconds + 30);
    const stale = await agent.post(url('/account/password'), { csrf: formField(page.body, 'csrf'), current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect((await h.snapshot()).equals(before)).toBe(true);
    const again = await h.expectFreshSignIn(agent, stale, p.email, '/account/password?signed-in-again=1');
    const returned = await submit(agent, again, '/login', { email: p.email, password: PASSWORD });
    expect(returned.url).toBe(url('/account/password?signed-in-again=1'));
    expect(returned.body).toContain('Nothing was changed yet');
    const changed = await submit(agent, returned, '/account/password', { current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(changed.url).toBe(url('/account/password?done=changed'));
    expect(await passwordWorks(p.email, NEW_PASSWORD)).toBe(true);
  });

  it('wrong current passwords are counted like sign-ins: 429 with Retry-After after the limit, also for 100 at once', async () => {
    const p = await h.newPerson('guess');
    const { agent, page } = await h.signIn(p, '/account/password');
    const csrf = formField(page.body, 'csrf');
    const free = server.config.signInThrottle.freeAttempts;
    const started = Date.now();
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) => agent.post(url('/account/password'), { csrf, current: `wrong guess number ${i}`, password: NEW_PASSWORD, confirm: NEW_PASSWORD })),
    );
    const burstSeconds = (Date.now() - started) / 1000;
    const statuses = replies.map((r) => r.status);
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
    // The free attempts, plus those the progressive rule lets through once its waits (1, 2, 4 … s
    // after the latest failure) have passed while the burst was still running: n more need
    // 2^n - 1 seconds. On a fast machine the burst ends first and this is exactly `free`.
    const waitedFor = Math.floor(Math.log2(burstSeconds + 1));
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(free + waitedFor);
    const throttled = replies.find((r) => r.status === 429);
    expect(Number(throttled?.headers.get('retry-after'))).toBeGreaterThan(0);
    expectFieldMarked(throttled?.body ?? '', 'current', /Too many wrong attempts/);
    // Nothing changed.
    expect(await server.deps.accounts.verifyPassword(p.id, PASSWORD)).toBe(true);
    const failures = await eventsFor(p.id, 'user.password_changed');
    expect(failures.length).toBe(100);
    expect(failures.every((e) => e.outcome === 'failure')).toBe(true);
  }, 60_000);

  it('CSRF: a missing, empty, foreign or made-up token is 403 and changes nothing', async () => {
    const p = await h.newPerson('csrf');
    const stranger = await h.newPerson('csrf-stranger');
    const { agent } = await h.signIn(p, '/account/password');
    const foreign = formField((await h.signIn(stranger, '/account/password')).page.body, 'csrf');
    const before = await h.snapshot();
    for (const token of [undefined, '', foreign, 'A'.repeat(43)]) {
      const fields = { current: PASSWORD, password: NEW_PASSWORD, confirm: NEW_PASSWORD };
      const reply = await agent.post(url('/account/password'), token === undefined ? fields : { ...fields, csrf: token });
      expectClientError(reply, 403);
    }
    expect((await h.snapshot()).equals(before)).toBe(true);
  });

  it('without a session: the page and the form send the browser to sign in', async () => {
    const agent = new UserAgent(server.url);
    const page = await agent.get(url('/account/password'));
    expect(page.location).toBe(url('/account/sign-in?return=%2Faccount%2Fpassword'));
    const post = await agent.post(url('/account/password'), { csrf: 'x', password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(post.status).toBe(303);
    expect(post.location).toBe(url('/account/sign-in'));
    expect(pageKind(await agent.follow(post.location ?? ''))).toBe('login');
  });
});
