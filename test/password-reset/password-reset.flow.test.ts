/**
 * Password reset end to end, as a person and a relying party (openid-client) see it: from the
 * login page ("Forgot password?" → code from the real mail → new password → the sign-in goes on
 * → tokens), and by the mail's link in another browser. Afterwards every old session, refresh
 * token and the old password are refused; an authenticator app is still asked for; unknown
 * addresses get the same answers; bad input is a 4xx and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import { codeFrom } from '../support/mail-server.js';
import type { MailServer, ReceivedMail } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, oauthError, redeem } from '../support/rp.js';
import type { Started, Tokens } from '../support/rp.js';
import { codeForStep, pageKind, stepNow, submit } from '../support/second-factor.js';
import { createPlainAndMfaClients, startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField, signInThroughPages } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const OLD_PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'violet tangerine across wharf';

let count = 0;
const uniqueEmail = (label: string) => `pr-${label}-${(count += 1)}@example.com`;

const kindOf = (reply: Reply) => {
  if (/action="[^"]*\/reset\/request"/.test(reply.body)) return 'reset-request';
  if (/action="[^"]*\/reset\/code"/.test(reply.body)) return 'reset-code';
  if (/action="[^"]*\/reset\/password"/.test(reply.body)) return 'reset-password';
  return pageKind(reply);
};

/** The link a reset mail carries. */
const linkFrom = (mail: ReceivedMail): string => {
  const link = /https?:\/\/[^\s"<>]+\/password-reset\?token=[A-Za-z0-9_%-]+/.exec(mail.text)?.[0];
  if (!link) throw new Error('no reset link in the mail');
  return link;
};

describe('password reset', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;
  let mfaRp: oidc.Configuration;

  const createUser = async (label: string) => {
    const email = uniqueEmail(label);
    const user = await server.deps.userAdmin.create({ email, password: OLD_PASSWORD });
    return { id: user.id, email };
  };

  /** "Forgot password?" on the login page, with `typed` in the email field. */
  const forgot = async (agent: UserAgent, rpConfig: oidc.Configuration, typed: string) => {
    const started = await authorizationRequest(rpConfig);
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const page = await submit(agent, login, '/reset', { email: typed, password: '' });
    return { started, page };
  };

  /** Asks for the code on the request page; returns the code page and the mail. */
  const requestCode = async (agent: UserAgent, page: Reply, email: string) => {
    const before = smtp.countFor(email);
    const codePage = await submit(agent, page, '/reset/request', { email });
    return { codePage, mail: () => smtp.waitForMail(email, { after: before }) };
  };

  const toTokens = async (agent: UserAgent, rpConfig: oidc.Configuration, started: Started, reply: Reply): Promise<Tokens> => {
    let callback = reply;
    if (!reply.location?.startsWith(REDIRECT_URI)) {
      expect(pageKind(reply)).toBe('consent');
      callback = await submit(agent, reply, '/confirm');
    }
    expect(callbackParams(callback).get('code')).toBeTruthy();
    return redeem(rpConfig, started, callback);
  };

  const signsInWith = async (email: string, password: string) => (await server.deps.accounts.authenticate(email, password)).ok;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('password_reset_flow', { PASSWORD_RESET_IP_LIMIT: '1000', IP_SIGN_IN_FAILURE_LIMIT: '1000' }));
    ({ rp, mfaRp } = await createPlainAndMfaClients(server));
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  it('from the login page: code from the mail, new password, the sign-in goes on to tokens; everything from before is refused', async () => {
    const user = await createUser('e2e');
    // Another browser signed in before, with a refresh token.
    const other = new UserAgent(server.url);
    const earlier = await authorizationRequest(rp, { scope: 'openid email offline_access', prompt: 'consent' });
    const earlierTokens = await redeem(rp, earlier, await signInThroughPages(other, earlier.url.toString(), { email: user.email, password: OLD_PASSWORD }));
    expect(earlierTokens.refresh_token).toBeTruthy();

    const agent = new UserAgent(server.url);
    const { started, page } = await forgot(agent, rp, user.email);
    expect(kindOf(page)).toBe('reset-request');
    // Prefilled with what was typed.
    expect(page.body).toContain(`value="${user.email}"`);
    expect(page.headers.get('cache-control')).toBe('no-store');

    const { codePage, mail } = await requestCode(agent, page, user.email);
    expect(kindOf(codePage)).toBe('reset-code');
    expect(codePage.body).toMatch(/autocomplete="one-time-code"/);
    expect(codePage.body).toMatch(/inputmode="numeric"/);
    const received = await mail();
    expect(received.subject).not.toMatch(/\d{6}/);
    const code = codeFrom(received);

    const wrong = await agent.submit(formAction(codePage.body, '/reset/code'), { csrf: formField(codePage.body, 'csrf'), code: code === '000000' ? '111111' : '000000' });
    // Post/redirect/get: the refusal is a 303 to the code page, which answers 401.
    expect(wrong.posted.status).toBe(303);
    expect(wrong.posted.location).toMatch(/\?error=code_invalid$/);
    expect(wrong.status).toBe(401);
    expect(kindOf(wrong)).toBe('reset-code');

    const passwordPage = await submit(agent, codePage, '/reset/code', { code });
    expect(kindOf(passwordPage)).toBe('reset-password');
    expect(passwordPage.body.match(/autocomplete="new-password"/g)).toHaveLength(2);
    expect(passwordPage.body).toContain(`id="password-hint">At least ${server.deps.passwordPolicy.minLength} characters`);
    // The grant stays on the server: not in the page.
    expect(passwordPage.body).not.toMatch(/name="grant"/);

    const noticesBefore = smtp.countFor(user.email);
    const next = await agent.post(formAction(passwordPage.body, '/reset/password'), { csrf: formField(passwordPage.body, 'csrf'), password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(next.status).toBe(303);
    const tokens = await toTokens(agent, rp, started, await agent.follow(next.location ?? ''));
    // One factor: the mailbox. Never two.
    expect(tokens.claims()).toMatchObject({ sub: user.id });
    expect(tokens.claims()?.amr).toEqual(['email']);

    // The old refresh token and the other browser's session are gone.
    expect(await oauthError(oidc.refreshTokenGrant(rp, earlierTokens.refresh_token ?? ''))).toBe('invalid_grant');
    const otherAgain = await other.follow((await authorizationRequest(rp)).url.toString());
    expect(pageKind(otherAgain)).toBe('login');
    // Old password refused, new one works.
    expect(await signsInWith(user.email, OLD_PASSWORD)).toBe(false);
    expect(await signsInWith(user.email, NEW_PASSWORD)).toBe(true);
    // The "password changed" notice.
    const notice = await smtp.waitForMail(user.email, { after: noticesBefore });
    expect(notice.text).toMatch(/password/i);
    expect(notice.text).not.toContain(NEW_PASSWORD);
  }, 60_000);

  it('a browser already signed in (prompt=login) resets and still finishes its sign-in, in a new session', async () => {
    const user = await createUser('same-browser');
    const agent = new UserAgent(server.url);
    const first = await authorizationRequest(rp);
    await redeem(rp, first, await signInThroughPages(agent, first.url.toString(), { email: user.email, password: OLD_PASSWORD }));

    const started = await authorizationRequest(rp, { prompt: 'login' });
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const page = await submit(agent, login, '/reset', { email: user.email, password: '' });
    const { codePage, mail } = await requestCode(agent, page, user.email);
    const passwordPage = await submit(agent, codePage, '/reset/code', { code: codeFrom(await mail()) });
    const next = await agent.post(formAction(passwordPage.body, '/reset/password'), { csrf: formField(passwordPage.body, 'csrf'), password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(next.status).toBe(303);
    const tokens = await toTokens(agent, rp, started, await agent.follow(next.location ?? ''));
    expect(tokens.claims()).toMatchObject({ sub: user.id, amr: ['email'] });
  }, 60_000);

  it('an account with an authenticator app still needs it after the reset (the reset is the email factor only)', async () => {
    const user = await createUser('totp');
    const account = await server.deps.accounts.findById(user.id);
    if (!account) throw new Error('no account');
    const { secret, sealed } = await server.deps.totp.beginEnrolment(account);
    const enrolledStep = stepNow() - 1;
    expect((await server.deps.totp.activate(user.id, await codeForStep(secret, enrolledStep), sealed)).ok).toBe(true);

    const agent = new UserAgent(server.url);
    const { started, page } = await forgot(agent, rp, user.email);
    const { codePage, mail } = await requestCode(agent, page, user.email);
    const passwordPage = await submit(agent, codePage, '/reset/code', { code: codeFrom(await mail()) });
    const totpPage = await submit(agent, passwordPage, '/reset/password', { password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(pageKind(totpPage)).toBe('totp');
    const done = await agent.post(formAction(totpPage.body, '/second-factor/totp'), { csrf: formField(totpPage.body, 'csrf'), code: await codeForStep(secret, Math.max(stepNow(), enrolledStep + 1)) });
    expect(done.status).toBe(303);
    const tokens = await toTokens(agent, rp, started, await agent.follow(done.location ?? ''));
    expect(tokens.claims()?.sub).toBe(user.id);
    expect((await server.deps.totp.status(user.id)).enabled).toBe(true);
  }, 60_000);

  it('a client that requires two factors gets a second one after the reset: a mailbox alone is never two', async () => {
    const user = await createUser('mfa');
    const agent = new UserAgent(server.url);
    const { page } = await forgot(agent, mfaRp, user.email);
    const { codePage, mail } = await requestCode(agent, page, user.email);
    const passwordPage = await submit(agent, codePage, '/reset/code', { code: codeFrom(await mail()) });
    const next = await submit(agent, passwordPage, '/reset/password', { password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(pageKind(next)).toBe('password');
    expect(next.location).toBeUndefined();
  }, 60_000);

  it('the link in the mail, in another browser: GET writes nothing, POST sets the password; used once', async () => {
    const user = await createUser('link');
    const asker = new UserAgent(server.url);
    const { page } = await forgot(asker, rp, user.email);
    const { mail } = await requestCode(asker, page, user.email);
    const link = linkFrom(await mail());
    expect(link.startsWith(`${server.url}/password-reset?token=`)).toBe(true);

    const browser = new UserAgent(server.url);
    const form = await browser.get(link);
    expect(form.status).toBe(200);
    expect(form.headers.get('referrer-policy')).toBe('no-referrer');
    expect(form.headers.get('cache-control')).toBe('no-store');
    expect(form.headers.getSetCookie()).toEqual([]);
    expect(form.body).toMatch(/type="hidden" name="token"/);
    // Opening it again (a mail scanner did first) still shows the form: the GET spent nothing.
    expect((await browser.get(link)).status).toBe(200);

    // A weak password: refused with the policy's reason next to the field; nothing changed. Rendered
    // in answer to the POST: a redirect would have to carry the grant in its URL.
    const weak = await browser.post('/password-reset', { csrf: formField(form.body, 'csrf'), token: formField(form.body, 'token'), password: 'password123', confirm: 'password123' });
    expect(weak.status).toBe(400);
    expect(weak.body).toMatch(/id="password-error"[^>]*>\s*<p>[^<]+/);
    // The token is spent by now: the page carries the grant it was exchanged for, so the person can try again.
    expect(weak.body).toMatch(/type="hidden" name="grant"/);
    expect(weak.body).not.toMatch(/name="token"/);
    expect(await signsInWith(user.email, OLD_PASSWORD)).toBe(true);

    const changed = await browser.post('/password-reset', { csrf: formField(weak.body, 'csrf'), ...(weak.body.includes('name="grant"') ? { grant: formField(weak.body, 'grant') } : { token: formField(weak.body, 'token') }), password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    // Post/redirect/get to a page whose URL holds no secret.
    expect(changed.status).toBe(303);
    expect(changed.location).toBe(`${server.url}/password-reset/done`);
    const done = await browser.get(changed.location ?? '');
    expect(done.status).toBe(200);
    expect(done.headers.get('cache-control')).toBe('no-store');
    expect(done.body).toContain('Your password was changed');
    expect(done.body).toContain('href="http://');
    expect(done.body).toMatch(/href="[^"]*\/account"/);
    expect(await signsInWith(user.email, OLD_PASSWORD)).toBe(false);
    expect(await signsInWith(user.email, NEW_PASSWORD)).toBe(true);

    // Used: the second time the one plain page, the same as for a made-up token.
    const again = await browser.get(link);
    const reusedPost = await browser.post('/password-reset', { csrf: formField(again.body, 'csrf'), token: formField(again.body, 'token'), password: `${NEW_PASSWORD} x`, confirm: `${NEW_PASSWORD} x` });
    const madeUp = 'A'.repeat(43);
    const madeUpForm = await browser.get(`/password-reset?token=${madeUp}`);
    const inventedPost = await browser.post('/password-reset', { csrf: formField(madeUpForm.body, 'csrf'), token: madeUp, password: `${NEW_PASSWORD} x`, confirm: `${NEW_PASSWORD} x` });
    // Both redirect to the one "no longer works" page (no token in its URL), which answers 400.
    expect(reusedPost.status).toBe(303);
    expect(reusedPost.location).toBe(`${server.url}/password-reset/invalid`);
    expect(inventedPost.location).toBe(reusedPost.location);
    const reused = await browser.get(reusedPost.location ?? '');
    const invented = await browser.get(inventedPost.location ?? '');
    expect(reused.status).toBe(400);
    expect(invented.status).toBe(400);
    expect(reused.body).toContain('ask for a new link');
    expect(reused.body).toBe(invented.body);
    expect(await signsInWith(user.email, NEW_PASSWORD)).toBe(true);
  }, 60_000);

  it('one link, 20 browsers posting it at once: exactly one sets the password', async () => {
    const user = await createUser('race');
    const before = smtp.countFor(user.email);
    await server.deps.passwordReset.sendByAdmin(user.id);
    const link = linkFrom(await smtp.waitForMail(user.email, { after: before }));
    const form = await new UserAgent(server.url).get(link);
    const fields = { csrf: formField(form.body, 'csrf'), token: formField(form.body, 'token') };
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => new UserAgent(server.url).post('/password-reset', { ...fields, password: `${NEW_PASSWORD} ${i}`, confirm: `${NEW_PASSWORD} ${i}` })),
    );
    const won = replies.flatMap((reply, i) => (reply.status === 303 && reply.location?.endsWith('/password-reset/done') ? [i] : []));
    expect(won).toHaveLength(1);
    // The others: a redirect to the one "no longer works" page, or a wait from the guessing limits
    // (which count attempts before they run, so a burst is held back too); never a 5xx.
    for (const reply of replies.filter((_, i) => i !== won[0])) {
      if (reply.status === 303) expect(reply.location).toBe(`${server.url}/password-reset/invalid`);
      else expect(reply.status).toBe(429);
    }
    expect(await signsInWith(user.email, `${NEW_PASSWORD} ${won[0]}`)).toBe(true);
  }, 60_000);

  it('an unknown address gets the same answers as a known one (status, page, cookies, timing)', async () => {
    const known = await createUser('known');
    const unknown = uniqueEmail('nobody');
    const run = async (email: string) => {
      const agent = new UserAgent(server.url);
      const { page } = await forgot(agent, rp, email);
      const action = formAction(page.body, '/reset/request');
      const t0 = performance.now();
      const reply = await agent.post(action, { csrf: formField(page.body, 'csrf'), email });
      const ms = performance.now() - t0;
      const codePage = await agent.follow(reply.location ?? '');
      const wrong = await agent.submit(formAction(codePage.body, '/reset/code'), { csrf: formField(codePage.body, 'csrf'), code: '000001' });
      const uidless = (reply: Reply) => (reply.location ?? '').replace(/\/interaction\/[A-Za-z0-9_-]+/, '/interaction/UID');
      const normalise = (html: string) => html.replaceAll(email, 'EMAIL').replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID').replace(/value="[A-Za-z0-9_-]{40,}"/g, 'value="CSRF"');
      return {
        ms,
        shape: {
          status: reply.status,
          redirect: uidless(reply),
          setCookies: reply.headers.getSetCookie().length,
          wrongRedirect: [wrong.posted.status, uidless(wrong.posted)],
          codePage: [codePage.status, normalise(codePage.body)],
          wrong: [wrong.status, normalise(wrong.body)],
        },
      };
    };
    const times: Record<'known' | 'unknown', number[]> = { known: [], unknown: [] };
    const first = await run(known.email);
    const second = await run(unknown);
    expect(second.shape).toEqual(first.shape);
    expect(first.shape.status).toBe(303);
    expect(first.shape.wrongRedirect).toEqual([303, expect.stringMatching(/\/interaction\/UID\?error=code_invalid$/)]);
    for (let i = 0; i < 3; i += 1) {
      times.known.push((await run(known.email)).ms);
      times.unknown.push((await run(unknown)).ms);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] ?? 0;
    // The mail leaves in the background: no account costs the same as an account.
    expect(Math.abs(median(times.known) - median(times.unknown))).toBeLessThan(250);
  }, 90_000);

  it('resending is throttled and says the real time left', async () => {
    const user = await createUser('resend');
    const agent = new UserAgent(server.url);
    const { page } = await forgot(agent, rp, user.email);
    let { codePage } = await requestCode(agent, page, user.email);
    let reply = codePage;
    for (let i = 0; i < 10 && reply.status !== 429; i += 1) {
      const answer = await agent.submit(formAction(codePage.body, '/reset/resend'), { csrf: formField(codePage.body, 'csrf') });
      // Post/redirect/get: a new code and a refusal alike are a 303 to the code page.
      expect(answer.posted.status).toBe(303);
      reply = answer;
      if (reply.status === 200) codePage = reply;
    }
    expect(reply.status).toBe(429);
    const wait = Number(reply.headers.get('retry-after'));
    expect(wait).toBeGreaterThan(0);
    const said = wait < 60 ? `${wait} second` : `${Math.ceil(wait / 60)} minute`;
    expect(reply.body).toContain(`You can ask for a new one in ${said}`);
    expect(kindOf(reply)).toBe('reset-code');
  }, 60_000);

  it('bad input on every form is a 4xx, never a 5xx, and changes nothing', async () => {
    const user = await createUser('bad');
    const agent = new UserAgent(server.url);
    const { page } = await forgot(agent, rp, user.email);
    const requestAction = formAction(page.body, '/reset/request');
    const csrf = formField(page.body, 'csrf');
    for (const fields of [{ csrf, email: 'not an email' }, { csrf }, { csrf, email: `${'a'.repeat(300)}@example.com` }] as Record<string, string>[]) {
      const reply = await agent.submit(requestAction, fields);
      expect(reply.posted.status).toBe(303);
      expect(reply.posted.location).not.toContain('@');
      expect(reply.status).toBe(400);
      expect(kindOf(reply)).toBe('reset-request');
    }
    expect((await agent.post(requestAction, { csrf: 'forged', email: user.email })).status).toBe(403);
    // Steps out of order: no code page yet, no password page yet.
    const base = requestAction.replace(/\/reset\/request$/, '');
    expect((await agent.post(`${base}/reset/code`, { csrf, code: '123456' })).status).toBe(400);
    expect((await agent.post(`${base}/reset/password`, { csrf, password: NEW_PASSWORD, confirm: NEW_PASSWORD })).status).toBe(400);

    const { codePage, mail } = await requestCode(agent, page, user.email);
    const codeAction = formAction(codePage.body, '/reset/code');
    for (const code of ['', 'abcdef', '1'.repeat(40)]) {
      const reply = await agent.submit(codeAction, { csrf, code });
      expect(reply.posted.status).toBe(303);
      expect(reply.status).toBe(400);
    }
    const passwordPage = await submit(agent, codePage, '/reset/code', { code: codeFrom(await mail()) });
    const passwordAction = formAction(passwordPage.body, '/reset/password');
    for (const fields of [
      { csrf },
      { csrf, password: NEW_PASSWORD, confirm: 'different' },
      { csrf, password: 'x'.repeat(200), confirm: 'x'.repeat(200) },
      { csrf, password: 'short', confirm: 'short' },
    ] as Record<string, string>[]) {
      const reply = await agent.submit(passwordAction, fields);
      expect(reply.posted.status).toBe(303);
      expect(reply.posted.location).not.toMatch(/password=|short|different/);
      expect(reply.status).toBe(400);
      expect(kindOf(reply)).toBe('reset-password');
    }
    expect(await signsInWith(user.email, OLD_PASSWORD)).toBe(true);

    // The link page: no token (where to start), made-up and malformed tokens, forged CSRF, a body that is not a form.
    const start = await agent.get('/password-reset');
    expect(start.status).toBe(200);
    expect(start.body).toMatch(/href="[^"]*\/account"/);
    expect((await agent.get('/password-reset?token=short')).status).toBe(400);
    expect((await agent.post('/password-reset', { csrf: 'x', token: 'A'.repeat(43), password: NEW_PASSWORD, confirm: NEW_PASSWORD })).status).toBe(403);
    expect((await agent.post('/password-reset', { password: NEW_PASSWORD })).status).toBe(400);
    const json = await agent.request('/password-reset', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(415);
    const crossSite = await agent.request('/password-reset', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' }, body: 'a=b' });
    expect(crossSite.status).toBe(403);
    expect(await signsInWith(user.email, OLD_PASSWORD)).toBe(true);
  }, 60_000);
});

describe('password reset switched off (PASSWORD_RESET=false)', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('password_reset_off', { PASSWORD_RESET: 'false' }));
    ({ rp } = await createPlainAndMfaClients(server));
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  it('offers no link, and neither the steps nor the link page exist', async () => {
    const agent = new UserAgent(server.url);
    const login = await agent.follow((await authorizationRequest(rp)).url.toString());
    expect(pageKind(login)).toBe('login');
    expect(login.body).not.toContain('Forgot password?');
    const base = formAction(login.body, '/login').replace(/\/login$/, '');
    const reply = await agent.post(`${base}/reset`, { csrf: formField(login.body, 'csrf'), email: 'a@example.com' });
    expect(reply.status).toBe(404);
    expect(pageKind(await agent.get(base))).toBe('login');
    expect((await agent.get(`/password-reset?token=${'A'.repeat(43)}`)).status).toBe(404);
  }, 30_000);
});
