import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { EMAIL_CODES_COLLECTION } from '../../src/accounts/email-code.service.js';
import type { MailServer } from '../support/mail-server.js';
import { codeFrom } from '../support/mail-server.js';
import { userinfoStatus } from '../support/rp.js';
import { pageKind, submit } from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';
import { PASSWORD, expectClientError, expectFieldMarked, harness, inputTag } from './account-changes.harness.js';
import type { Person } from './account-changes.harness.js';

/**
 * The email page (/account/email): a new address proven by a code mailed to it. Checked from
 * outside: the new address signs in and the old one does not, the old address gets the notice,
 * other sessions end; a taken address is refused only after its inbox was proven, the unique
 * index decides concurrent changes; code guessing, sending limits, stale authentication, CSRF and
 * bad input change nothing.
 */

const fresh = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}@example.com`;

describe('/account/email', () => {
  let server: TestServer;
  let smtp: MailServer;
  const h = harness(() => ({ server, smtp }));
  const { url } = h;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('account_email'));
  });
  afterAll(() => stopMailingServer({ server, smtp }));

  /** Asks for a code for `newEmail` from the page; returns the POST's reply and the mailed code. */
  async function requestCode(agent: UserAgent, page: Reply, newEmail: string): Promise<{ posted: Reply; code: string }> {
    const before = smtp.countFor(newEmail);
    const posted = await agent.post(url('/account/email'), { csrf: formField(page.body, 'csrf'), email: newEmail });
    expect(posted.status).toBe(303);
    expect(posted.location).toBe(url('/account/email?done=sent'));
    const mail = await smtp.waitForMail(newEmail, { after: before });
    expect(mail.subject).toMatch(/Confirm your new .* email address/);
    return { posted, code: codeFrom(mail) };
  }

  /** Whether the login page signs `email` in with the password (a fresh browser). */
  async function signsIn(email: string): Promise<boolean> {
    const agent = new UserAgent(server.url);
    const login = await agent.follow(url('/account/security'));
    const after = await submit(agent, login, '/login', { email, password: PASSWORD });
    if (pageKind(after) === 'login') return false;
    return (await agent.get(url('/account/security'))).status === 200;
  }

  const eventsFor = async (accountId: string, action: string) =>
    (await server.deps.audit.list({ target: accountId, action }, { limit: 500 })).events.reverse();

  it('changes the address with the code from the new inbox: the new one signs in, the old one does not; notice, sessions, audit', async () => {
    const p = await h.newPerson('mover');
    const rp = await h.relyingParty();
    const { agent, page } = await h.signIn(p, '/account/email');
    expect(page.status).toBe(200);
    expect(page.body).toContain(p.email);
    expect(inputTag(page.body, 'email')).toContain('autocomplete="email"');
    expect(inputTag(page.body, 'email')).toContain('type="email"');
    const other = await h.signIn(p, '/account/security');
    // An app signed in through that session, without offline access: its grant ends with the session.
    const tokens = await h.tokensFor(rp, p, other.agent, { offline: false });

    const newEmail = fresh('moved');
    const { code } = await requestCode(agent, page, newEmail);
    const codePage = await agent.get(url('/account/email?done=sent'));
    expect(codePage.body).toContain('We sent a 6-digit code');
    expect(codePage.body).toContain(newEmail);
    expect(inputTag(codePage.body, 'code')).toContain('autocomplete="one-time-code"');
    // Nothing changed yet: the old address still signs in.
    expect((await server.deps.accounts.findById(p.id))?.email).toBe(p.email);

    const wrongCode = code === '000000' ? '111111' : '000000';
    const wrong = await agent.post(url('/account/email/verify'), { csrf: formField(codePage.body, 'csrf'), code: wrongCode });
    expectClientError(wrong, 401);
    expectFieldMarked(wrong.body, 'code', /not right/);
    const bad = await agent.post(url('/account/email/verify'), { csrf: formField(codePage.body, 'csrf'), code: 'abc' });
    expectClientError(bad, 400);
    expectFieldMarked(bad.body, 'code', /6-digit code/);

    const oldMails = smtp.countFor(p.email);
    const verified = await agent.post(url('/account/email/verify'), { csrf: formField(codePage.body, 'csrf'), code });
    expect(verified.status).toBe(303);
    expect(verified.location).toBe(url('/account/email?done=changed'));
    const done = await agent.get(verified.location ?? '');
    expect(done.body).toContain('Your email address is changed');
    expect(done.body).toContain(newEmail);

    expect(await server.deps.accounts.findById(p.id)).toMatchObject({ email: newEmail, emailVerified: true });
    const notice = await smtp.waitForMail(p.email, { after: oldMails });
    expect(notice.subject).toMatch(/email address was changed/);
    expect(await signsIn(newEmail)).toBe(true);
    expect(await signsIn(p.email)).toBe(false);
    expect(await h.hasSession(agent)).toBe(true);
    expect(await h.hasSession(other.agent)).toBe(false);
    // The other session's app lost its access with it (its grant did not outlive the session).
    expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(401);
    // The code is spent.
    expectClientError(await agent.post(url('/account/email/verify'), { csrf: formField(codePage.body, 'csrf'), code }), 400);

    expect((await eventsFor(p.id, 'user.email_change_requested')).map((e) => e.outcome)).toEqual(['success']);
    const changed = (await eventsFor(p.id, 'user.email_changed')).filter((e) => e.outcome === 'success');
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatchObject({ target: { id: p.id, label: newEmail }, details: { previousEmail: p.email, newEmail, endedSessions: 1 } });
    expect(JSON.stringify(changed[0])).not.toContain(code);
  });

  it("a taken address: the same answer and mail as a free one; refused only after its inbox's code came back", async () => {
    const owner = await h.newPerson('owner');
    const p = await h.newPerson('grabber');
    const q = await h.newPerson('honest');
    const sp = await h.signIn(p, '/account/email');
    const sq = await h.signIn(q, '/account/email');
    const freeEmail = fresh('free');

    const taken = await requestCode(sp.agent, sp.page, owner.email);
    const free = await requestCode(sq.agent, sq.page, freeEmail);
    expect(taken.posted.status).toBe(free.posted.status);
    expect(taken.posted.location).toBe(free.posted.location);
    expect(taken.posted.headers.getSetCookie()).toEqual(free.posted.headers.getSetCookie());
    // The same page, but for the addresses it names and the CSRF token.
    const strip = (body: string, ...emails: string[]) =>
      emails
        .reduce((b, e) => b.replaceAll(e, 'X'), body)
        .replace(/value="[^"]*"/g, '')
        // The waits are read from the clock: two pages a second apart may round differently.
        .replace(/for \d+ minutes/, 'for N minutes')
        .replace(/You can ask for a new code in [^.]*\./, '');
    const takenPage = await sp.agent.get(url('/account/email?done=sent'));
    const freePage = await sq.agent.get(url('/account/email?done=sent'));
    expect(strip(takenPage.body, owner.email, p.email)).toBe(strip(freePage.body, freeEmail, q.email));

    // The code went to the owner's inbox: only who reads it can go on, and is then told.
    const before = await h.snapshot();
    const refused = await sp.agent.post(url('/account/email/verify'), { csrf: formField(takenPage.body, 'csrf'), code: taken.code });
    expectClientError(refused, 409);
    expectFieldMarked(refused.body, 'email', /already belongs to another account/);
    expect((await h.snapshot()).equals(before)).toBe(true);
    expect((await server.deps.accounts.findById(p.id))?.email).toBe(p.email);
    expect((await server.deps.accounts.findById(owner.id))?.email).toBe(owner.email);
    expect((await eventsFor(p.id, 'user.email_changed')).at(-1)).toMatchObject({ outcome: 'failure', reason: 'email_taken' });
  });

  it('two accounts proving the same new address at once: exactly one gets it (the unique index decides)', async () => {
    const a = await h.newPerson('race-a');
    const b = await h.newPerson('race-b');
    const target = fresh('contested');
    const sa = await h.signIn(a, '/account/email');
    const sb = await h.signIn(b, '/account/email');
    const ca = await requestCode(sa.agent, sa.page, target);
    const cb = await requestCode(sb.agent, sb.page, target);
    const [ra, rb] = await Promise.all([
      sa.agent.post(url('/account/email/verify'), { csrf: formField(sa.page.body, 'csrf'), code: ca.code }),
      sb.agent.post(url('/account/email/verify'), { csrf: formField(sb.page.body, 'csrf'), code: cb.code }),
    ]);
    expect([ra.status, rb.status].sort()).toEqual([303, 409]);
    const holders = await server.deps.db.collection('accounts').countDocuments({ email: target });
    expect(holders).toBe(1);
    const winner = ra.status === 303 ? a : b;
    expect((await server.deps.accounts.findById(winner.id))?.email).toBe(target);
  });

  it('bad addresses (empty, invalid, too long, unchanged) are 400 on the field; nothing stored, nothing mailed', async () => {
    const p = await h.newPerson('typo');
    const { agent, page } = await h.signIn(p, '/account/email');
    const before = await h.snapshot(['accounts', EMAIL_CODES_COLLECTION]);
    const mails = smtp.messages.length;
    const cases: [string, RegExp][] = [
      ['', /Enter an email address/],
      ['not-an-address', /Enter an email address/],
      [`${'a'.repeat(250)}@example.com`, /at most 254/],
      ['a\u0000b@example.com', /Enter an email address/],
      [p.email.toUpperCase(), /already your email address/],
    ];
    for (const [email, message] of cases) {
      const reply = await agent.post(url('/account/email'), { csrf: formField(page.body, 'csrf'), email });
      expectClientError(reply, 400);
      expectFieldMarked(reply.body, 'email', message);
    }
    // The typed value comes back escaped, never as markup.
    const markup = await agent.post(url('/account/email'), { csrf: formField(page.body, 'csrf'), email: '"><script>x</script>' });
    expectClientError(markup, 400);
    expect(markup.body).not.toContain('<script>x');
    expect((await h.snapshot(['accounts', EMAIL_CODES_COLLECTION])).equals(before)).toBe(true);
    expect(smtp.messages.length).toBe(mails);
  });

  it('a code belongs to its page: another session of the account finds nothing; a new code too soon is 429 with the wait', async () => {
    const p = await h.newPerson('binding');
    const first = await h.signIn(p, '/account/email');
    const second = await h.signIn(p, '/account/email');
    const target = fresh('bound');
    const { code } = await requestCode(first.agent, first.page, target);
    const elsewhere = await second.agent.post(url('/account/email/verify'), { csrf: formField(second.page.body, 'csrf'), code });
    expectClientError(elsewhere, 400);
    expectFieldMarked(elsewhere.body, 'email', /No code is waiting/);

    const tooSoon = await first.agent.post(url('/account/email'), { csrf: formField(first.page.body, 'csrf'), email: target });
    expectClientError(tooSoon, 429);
    expect(Number(tooSoon.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(tooSoon.body).toContain('Too many codes were sent');
    expect(tooSoon.body).toContain('name="code"');
    // The first page's code still works.
    const ok = await first.agent.post(url('/account/email/verify'), { csrf: formField(first.page.body, 'csrf'), code });
    expect(ok.location).toBe(url('/account/email?done=changed'));
  });

  it('guessing: 100 wrong codes at once get at most the code’s few attempts; then even the right code is refused', async () => {
    const p = await h.newPerson('guesser');
    const { agent, page } = await h.signIn(p, '/account/email');
    const { code } = await requestCode(agent, page, fresh('guessed'));
    const csrf = formField(page.body, 'csrf');
    const wrong = Array.from({ length: 100 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'));
    const replies = await Promise.all(wrong.map((guess) => agent.post(url('/account/email/verify'), { csrf, code: guess })));
    const statuses = replies.map((r) => r.status);
    expect(statuses.every((s) => s === 401 || s === 400)).toBe(true);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(server.config.emailCode.maxAttempts);
    const right = await agent.post(url('/account/email/verify'), { csrf, code });
    expectClientError(right, 400);
    expect((await server.deps.accounts.findById(p.id))?.email).toBe(p.email);
  }, 60_000);

  it('a stale authentication: a stale request sends nothing; after a new sign-in the page asks again and works', async () => {
    const p = await h.newPerson('stale');
    const { agent, page } = await h.signIn(p, '/account/email');
    await h.ageAuthentication(p.id, server.config.recentAuthMaxAgeSeconds + 30);
    const target = fresh('later');
    const refused = await agent.post(url('/account/email'), { csrf: formField(page.body, 'csrf'), email: target });
    expect(smtp.countFor(target)).toBe(0);
    const login = await h.expectFreshSignIn(agent, refused, p.email, '/account/email?signed-in-again=1');
    const back = await submit(agent, login, '/login', { email: p.email, password: PASSWORD });
    expect(back.url).toBe(url('/account/email?signed-in-again=1'));
    expect(back.body).toContain('Nothing was changed yet');
    const { code } = await requestCode(agent, back, target);
    const verified = await agent.post(url('/account/email/verify'), { csrf: formField(back.body, 'csrf'), code });
    expect(verified.location).toBe(url('/account/email?done=changed'));

    // The GET too: a stale page is a new sign-in, then the page.
    await h.ageAuthentication(p.id, server.config.recentAuthMaxAgeSeconds + 30);
    const stalePage = await agent.get(url('/account/email'));
    const again = await h.expectFreshSignIn(agent, stalePage, target, '/account/email');
    const shown = await submit(agent, again, '/login', { email: target, password: PASSWORD });
    expect(shown.url).toBe(url('/account/email'));
  });

  it('CSRF: every form refuses a missing, foreign or made-up token with 403, and nothing changes', async () => {
    const p: Person = await h.newPerson('csrf');
    const stranger = await h.newPerson('csrf-stranger');
    const { agent, page } = await h.signIn(p, '/account/email');
    const { code } = await requestCode(agent, page, fresh('csrf-target'));
    const foreign = formField((await h.signIn(stranger, '/account/email')).page.body, 'csrf');
    const before = await h.snapshot(['accounts', EMAIL_CODES_COLLECTION]);
    const mails = smtp.messages.length;
    const forms: [string, Record<string, string>][] = [
      ['/account/email', { email: fresh('other') }],
      ['/account/email/verify', { code }],
      ['/account/email/cancel', {}],
    ];
    for (const [path, fields] of forms) {
      for (const token of [undefined, '', foreign, 'A'.repeat(43)]) {
        const reply = await agent.post(url(path), token === undefined ? fields : { ...fields, csrf: token });
        expectClientError(reply, 403);
      }
    }
    expect((await h.snapshot(['accounts', EMAIL_CODES_COLLECTION])).equals(before)).toBe(true);
    expect(smtp.messages.length).toBe(mails);
  });
});

describe('/account/email: code mails per address and IP', () => {
  let server: TestServer;
  let smtp: MailServer;
  const h = harness(() => ({ server, smtp }));

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('account_email_limits', { EMAIL_CODE_ADDRESS_IP_LIMIT: '3' }));
  });
  afterAll(() => stopMailingServer({ server, smtp }));

  it('ten accounts asking for codes to one address at once: three are mailed, the others get 429', async () => {
    const target = fresh('popular');
    const people = await Promise.all(Array.from({ length: 10 }, (_, i) => h.newPerson(`sender${i}`)));
    const sessions = [];
    for (const p of people) sessions.push(await h.signIn(p, '/account/email'));
    const replies = await Promise.all(sessions.map(({ agent, page }) => agent.post(h.url('/account/email'), { csrf: formField(page.body, 'csrf'), email: target })));
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s === 303)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
    for (const reply of replies.filter((r) => r.status === 429)) expectFieldMarked(reply.body, 'email', /Too many codes/);
    await smtp.waitForMail(target, { after: 2, timeoutMs: 15_000 });
    expect(smtp.countFor(target)).toBe(3);
  }, 60_000);
});
