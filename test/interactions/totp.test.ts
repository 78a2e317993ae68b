import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import type { MailServer } from '../support/mail-server.js';
import { createTestClock, passTime } from '../support/clock.js';
import { authorizationRequest, redeem, rpFor } from '../support/rp.js';
import type { Started, Tokens } from '../support/rp.js';
import {
  clearOfStepEnd,
  codeForStep,
  enrolOnAccountPage,
  pageKind,
  recoveryCodesFrom,
  secretFromEnrolPage,
  stepNow,
  submit,
  wrongTotpCode,
} from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * The authenticator app (TOTP) and recovery codes as a second factor, through the sign-in pages
 * with openid-client as the relying party: the window of accepted codes, replay within a step
 * (one browser after another, and two at once), recovery codes, enrolment forced during a
 * sign-in, the secret sealed at rest, and clumsy form input.
 *
 * NOTE: the server refuses a code whose time step is not after the last one used (RFC 6238
 * §5.2), so each test works on its own account, and codes are computed for absolute time steps.
 * The servers run on a test clock, which stands still unless a test moves it: a code's step
 * cannot end between its computation and its POST. The checks still ask for MARGIN_MS left in
 * the step (and the replay check still checks the step did not move), so that they stay right
 * should the suite ever run on the system's clock again.
 */
const MARGIN_MS = 10_000;

const PASSWORD = 'correct horse battery staple 7';

function expectErrorFree4xx(reply: Reply): void {
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expect(reply.status).toBeLessThan(500);
  expect(reply.body).not.toMatch(/^\s*at\s/m);
  expect(reply.body).not.toContain('node_modules');
}

interface Person {
  email: string;
  password: string;
}

interface Enrolled {
  secret: string;
  recoveryCodes: string[];
  /** The step whose code activated the app (the server's last used step). */
  usedStep: number;
}

describe('TOTP second factor through the sign-in pages', () => {
  let server: TestServer;
  let smtp: MailServer;
  let client: CreatedClient;
  let rp: oidc.Configuration;
  const people: Record<string, Person & Partial<Enrolled>> = {};
  const clock = createTestClock();

  /** Signs in on the account console and sets up the app on /account/security/totp, as a person would. */
  async function enrolThroughAccountPage(person: Person): Promise<Enrolled> {
    const agent = new UserAgent(server.url);
    const login = await agent.follow(`${server.url}/account/security`);
    expect(pageKind(login)).toBe('login');
    const security = await submit(agent, login, '/login', { email: person.email, password: person.password });
    expect(security.status).toBe(200);
    expect(security.body).toContain(person.email);
    // The helper confirms with the code of the step before (sign-ins in this step can then use
    // the current code), which the server refuses once the step has moved on. With 15 s left
    // before the helper loads its page, its own wait (for under 5 s left) stays idle and its one
    // POST has the rest of the step.
    await clearOfStepEnd(15_000, clock);
    const { auth, recoveryCodes } = await enrolOnAccountPage(agent, server.url, clock);
    expect(recoveryCodes).toHaveLength(10);
    return { secret: auth.secret, recoveryCodes, usedStep: auth.lastStep };
  }

  async function person(name: string): Promise<Person & Enrolled> {
    const p = { email: `${name}@example.com`, password: PASSWORD };
    await server.deps.accounts.create(p);
    const enrolled = { ...p, ...(await enrolThroughAccountPage(p)) };
    people[name] = enrolled;
    return enrolled;
  }

  /** A new browser: authorization request, login page, password; returns the page after it. */
  async function passwordStep(p: Person, agent = new UserAgent(server.url)): Promise<{ agent: UserAgent; started: Started; page: Reply }> {
    const started = await authorizationRequest(rp);
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const page = await submit(agent, login, '/login', { email: p.email, password: p.password });
    return { agent, started, page };
  }

  async function consentAndRedeem(agent: UserAgent, started: Started, consent: Reply): Promise<Tokens> {
    expect(pageKind(consent)).toBe('consent');
    const callback = await submit(agent, consent, '/confirm');
    return redeem(rp, started, callback);
  }

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('totp_sign_in', {}, { clock }));
    client = await server.deps.clients.create({ name: 'Notes', redirectUris: ['http://127.0.0.1:9/callback'] });
    rp = await rpFor(server, client);
    // First, so that a step boundary has most likely passed by the "one step behind" test.
    await person('behind');
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin']) await person(name);
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  it('password then a TOTP code gives tokens with amr pwd, otp, mfa and the multi-factor acr', async () => {
    const alice = people.alice as Person & Enrolled;
    const { agent, started, page } = await passwordStep(alice);
    expect(pageKind(page)).toBe('totp');
    expect(page.body).toContain(alice.email);
    const step = await clearOfStepEnd(MARGIN_MS, clock);
    const consent = await submit(agent, page, '/second-factor/totp', { code: await codeForStep(alice.secret, step) });
    const tokens = await consentAndRedeem(agent, started, consent);
    const claims = tokens.claims();
    expect(claims?.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(claims?.acr).toBe(server.config.acr.multiFactor);
    expect(claims?.acr).toBe('http://schemas.openid.net/pape/policies/2007/06/multi-factor');
    const account = await server.deps.accounts.findByEmail(alice.email);
    expect(claims?.sub).toBe(account?.id);
  });

  it('accepts the code of the next step; refuses codes two steps away either side (401)', async () => {
    const alice = people.alice as Person & Enrolled;
    const { agent, started, page } = await passwordStep(alice);
    expect(pageKind(page)).toBe('totp');

    for (const offset of [2, -2]) {
      // Per code, right before its POST: should the step move on before the server checks a code
      // two steps ahead, that code would be the next step's, and accepted.
      const step = await clearOfStepEnd(MARGIN_MS, clock);
      const refused = await submit(agent, page, '/second-factor/totp', { code: await codeForStep(alice.secret, step + offset) });
      expect(refused.status).toBe(401);
      expect(pageKind(refused)).toBe('totp');
      expect(refused.body).toContain('That code is not right');
    }

    const consent = await submit(agent, page, '/second-factor/totp', { code: await codeForStep(alice.secret, (await clearOfStepEnd(MARGIN_MS, clock)) + 1) });
    const tokens = await consentAndRedeem(agent, started, consent);
    expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);
  });

  it('a code used in one browser is refused in another within its step ("already used")', async () => {
    const bob = people.bob as Person & Enrolled;
    // Both browsers reach the code page first; then only two POSTs run in the code's step. The
    // refusal must come within that step (else it might be for age): if a step boundary passed
    // anyway, the check is made again in the new step with new browsers (its code is later than
    // the one used, so the server takes it).
    for (let tries = 1; ; tries += 1) {
      const first = await passwordStep(bob);
      expect(pageKind(first.page)).toBe('totp');
      const second = await passwordStep(bob);
      expect(pageKind(second.page)).toBe('totp');

      const step = await clearOfStepEnd(MARGIN_MS, clock);
      const code = await codeForStep(bob.secret, step);
      const consent = await submit(first.agent, first.page, '/second-factor/totp', { code });
      expect(pageKind(consent)).toBe('consent');
      const replayed = await submit(second.agent, second.page, '/second-factor/totp', { code });
      if (stepNow(clock) !== step && tries < 3) continue;

      expect(stepNow(clock)).toBe(step); // still the code's own step: the refusal is for replay, not for age
      expect(replayed.status).toBe(401);
      expect(pageKind(replayed)).toBe('totp');
      expect(replayed.body).toContain('already used');

      // The first browser still finishes normally.
      const tokens = await consentAndRedeem(first.agent, first.started, consent);
      expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);
      break;
    }
  });

  it('two browsers submitting the same code at once: exactly one continues', async () => {
    const carol = people.carol as Person & Enrolled;
    const a = await passwordStep(carol);
    const b = await passwordStep(carol);
    expect(pageKind(a.page)).toBe('totp');
    expect(pageKind(b.page)).toBe('totp');

    const code = await codeForStep(carol.secret, await clearOfStepEnd(MARGIN_MS, clock));
    const post = (x: { agent: UserAgent; page: Reply }) => x.agent.submit(formAction(x.page.body, '/second-factor/totp'), { csrf: formField(x.page.body, 'csrf'), code });
    const [replyA, replyB] = await Promise.all([post(a), post(b)]);

    // The winner's POST answers 303 to the consent page (the sign-in's last step), which submit followed.
    const statuses = [replyA.status, replyB.status].sort();
    expect(statuses).toEqual([200, 401]);
    expect([replyA.posted.status, replyB.posted.status]).toEqual([303, 303]);
    const [winner, winnerReply] = replyA.status === 200 ? [a, replyA] : [b, replyB];
    const loserReply = replyA.status === 200 ? replyB : replyA;
    expect(loserReply.body).toContain('already used');
    expect(pageKind(loserReply)).toBe('totp');

    const consent = await winner.agent.follow(winnerReply.posted.location ?? '');
    const tokens = await consentAndRedeem(winner.agent, winner.started, consent);
    expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);
  });

  it('a recovery code (from ?method=recovery) signs in once, then is refused', async () => {
    const dave = people.dave as Person & Enrolled;
    const [code] = dave.recoveryCodes;
    if (!code) throw new Error('no recovery code');

    const first = await passwordStep(dave);
    expect(pageKind(first.page)).toBe('totp');
    expect(first.page.body).toContain('?method=recovery');
    const recoveryPage = await first.agent.follow(`${first.page.url}?method=recovery`);
    expect(recoveryPage.status).toBe(200);
    expect(pageKind(recoveryPage)).toBe('recovery');
    // First the page saying how many codes are left (9 of 10), then Continue.
    const codesLeft = await submit(first.agent, recoveryPage, '/second-factor/recovery', { code });
    expect(pageKind(codesLeft)).toBe('recovery-used');
    expect(codesLeft.body).toContain('You have 9 recovery codes left');
    const consent = await submit(first.agent, codesLeft, '/second-factor/recovery/continue');
    const tokens = await consentAndRedeem(first.agent, first.started, consent);
    const amr = tokens.claims()?.amr;
    expect(amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    expect(tokens.claims()?.acr).toBe(server.config.acr.multiFactor);

    const second = await passwordStep(dave);
    const again = await second.agent.follow(`${second.page.url}?method=recovery`);
    expect(pageKind(again)).toBe('recovery');
    const refused = await submit(second.agent, again, '/second-factor/recovery', { code });
    expect(refused.status).toBe(401);
    expect(pageKind(refused)).toBe('recovery');
    expect(refused.body).toContain('not valid, or it was already used');

    // Another unused code still works (only the used one is gone).
    const next = await submit(second.agent, refused, '/second-factor/recovery', { code: dave.recoveryCodes[1] ?? '' });
    expect(pageKind(next)).toBe('recovery-used');
    expect(next.body).toContain('You have 8 recovery codes left');
    expect(pageKind(await submit(second.agent, next, '/second-factor/recovery/continue'))).toBe('consent');
    const status = await server.deps.totp.status((await server.deps.accounts.findByEmail(dave.email))?.id ?? '');
    expect(status.recoveryCodesLeft).toBe(8);
  });

  it('bad input on the TOTP and recovery forms is a 4xx, never a 5xx', async () => {
    const erin = people.erin as Person & Enrolled;
    const { agent, page } = await passwordStep(erin);
    expect(pageKind(page)).toBe('totp');
    const totpAction = formAction(page.body, '/second-factor/totp');
    const csrf = formField(page.body, 'csrf');

    const totpCases: [string, Record<string, string>, number][] = [
      ['missing code', { csrf }, 400],
      ['empty code', { csrf, code: '' }, 400],
      ['overlong code', { csrf, code: '1'.repeat(5_000) }, 400],
      ['33 digits', { csrf, code: '1'.repeat(33) }, 400],
      ['non-digits', { csrf, code: 'abcdef' }, 400],
      ['five digits', { csrf, code: '12345' }, 400],
      ['seven digits', { csrf, code: '1234567' }, 400],
      ['Arabic-Indic digits', { csrf, code: '١٢٣٤٥٦' }, 400],
      ['markup', { csrf, code: '<script>' }, 400],
      ['missing csrf', { code: '123456' }, 403],
      ['empty csrf', { csrf: '', code: '123456' }, 403],
      ['wrong csrf', { csrf: 'x'.repeat(43), code: '123456' }, 403],
    ];
    for (const [label, fields, status] of totpCases) {
      const reply = await agent.submit(totpAction, fields);
      expect({ label, status: reply.status }).toEqual({ label, status });
      expectErrorFree4xx(reply);
    }

    const recoveryPage = await agent.follow(`${page.url}?method=recovery`);
    expect(pageKind(recoveryPage)).toBe('recovery');
    const recoveryAction = formAction(recoveryPage.body, '/second-factor/recovery');
    const recoveryCases: [string, Record<string, string>, number][] = [
      ['missing code', { csrf }, 400],
      ['empty code', { csrf, code: '' }, 400],
      ['overlong code', { csrf, code: 'a'.repeat(5_000) }, 400],
      ['65 characters', { csrf, code: 'a'.repeat(65) }, 400],
      ['punctuation', { csrf, code: 'abcde;fghij' }, 400],
      ['markup', { csrf, code: '<img src=x>' }, 400],
      ['missing csrf', { code: erin.recoveryCodes[0] ?? '' }, 403],
      ['wrong csrf', { csrf: 'x'.repeat(43), code: erin.recoveryCodes[0] ?? '' }, 403],
    ];
    for (const [label, fields, status] of recoveryCases) {
      const reply = await agent.submit(recoveryAction, fields);
      expect({ label, status: reply.status }).toEqual({ label, status });
      expectErrorFree4xx(reply);
    }

    // A duplicated field is refused before anything else looks at it.
    const duplicated = await agent.request(totpAction, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrf=${encodeURIComponent(csrf)}&code=123456&code=654321`,
    });
    expect(duplicated.status).toBe(400);
    expectErrorFree4xx(duplicated);

    // None of this used up the recovery code refused for a missing CSRF token, nor the sign-in.
    const codesLeft = await submit(agent, recoveryPage, '/second-factor/recovery', { code: erin.recoveryCodes[0] ?? '' });
    expect(pageKind(codesLeft)).toBe('recovery-used');
    // Its Continue: without or with a wrong CSRF token, 403 and still on that page.
    const continueAction = formAction(codesLeft.body, '/second-factor/recovery/continue');
    for (const fields of [{}, { csrf: 'x'.repeat(43) }] as Record<string, string>[]) {
      const refused = await agent.submit(continueAction, fields);
      expect(refused.status).toBe(403);
      expectErrorFree4xx(refused);
    }
    const consent = await submit(agent, codesLeft, '/second-factor/recovery/continue');
    expect(pageKind(consent)).toBe('consent');
  });

  it('accepts the code of the step before', async () => {
    const behind = people.behind as Person & Enrolled;
    // The step before must be after the one used at enrolment: move to a step boundary if none
    // has passed since.
    while (stepNow(clock) - 1 <= behind.usedStep) await passTime(clock, 500);
    const { agent, started, page } = await passwordStep(behind);
    expect(pageKind(page)).toBe('totp');
    // Should the step move on before the server checks it, the step before would be two behind.
    const step = await clearOfStepEnd(MARGIN_MS, clock);
    const consent = await submit(agent, page, '/second-factor/totp', { code: await codeForStep(behind.secret, step - 1) });
    const tokens = await consentAndRedeem(agent, started, consent);
    expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);
  });
});

describe('TOTP enrolment forced during sign-in', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;
  const clock = createTestClock();

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('totp_forced_enrol', { MFA_EMAIL_FALLBACK: 'false' }, { clock }));
    const client = await server.deps.clients.create({ name: 'Bank', redirectUris: ['http://127.0.0.1:9/callback'], requireMfa: true });
    rp = await rpFor(server, client);
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  /** Every account document, serialised as stored (BSON, in _id order): equal bytes, nothing written. */
  const accountsBytes = async () =>
    Buffer.concat((await server.deps.db.collection('accounts').find({}).sort({ _id: 1 }).toArray()).map((doc) => mongo.BSON.serialize(doc)));

  async function toEnrolPage(p: Person): Promise<{ agent: UserAgent; started: Started; page: Reply }> {
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const page = await submit(agent, login, '/login', { email: p.email, password: p.password });
    return { agent, started, page };
  }

  it('a require_mfa client: enrol page, wrong code refused, right code, recovery codes, consent, tokens with mfa', async () => {
    const frank = { email: 'frank@example.com', password: PASSWORD };
    const created = await server.deps.accounts.create(frank);
    const { agent, started, page: enrol } = await toEnrolPage(frank);

    expect(enrol.status).toBe(200);
    expect(pageKind(enrol)).toBe('enrol');
    expect(enrol.body).toMatch(/<img[^>]*src="data:image\/png;base64,[A-Za-z0-9+/=]+"/);
    const secret = secretFromEnrolPage(enrol.body);
    expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
    // No email code was sent instead (MFA_EMAIL_FALLBACK=false).
    expect(smtp.countFor(frank.email)).toBe(0);
    // The secret travels in the form, sealed; never in the clear.
    expect(formField(enrol.body, 'enrolment')).toMatch(/^v1\./);
    expect(formField(enrol.body, 'enrolment')).not.toContain(secret);

    const wrong = await submit(agent, enrol, '/second-factor/enrol', { code: await wrongTotpCode(secret, clock) });
    expect(wrong.status).toBe(401);
    expect(pageKind(wrong)).toBe('enrol');
    expect(secretFromEnrolPage(wrong.body)).toBe(secret); // the same key, not a new one
    expect((await server.deps.totp.status(created.id)).enabled).toBe(false);

    const step = await clearOfStepEnd(MARGIN_MS, clock);
    const codesPage = await submit(agent, wrong, '/second-factor/enrol', { code: await codeForStep(secret, step) });
    expect(codesPage.status).toBe(200);
    expect(pageKind(codesPage)).toBe('recovery-codes');
    const recoveryCodes = recoveryCodesFrom(codesPage.body);
    expect(recoveryCodes).toHaveLength(10);
    expect(new Set(recoveryCodes).size).toBe(10);
    const download = /<a[^>]*href="([^"]*)"[^>]*download=/.exec(codesPage.body)?.[1];
    expect(download?.startsWith('data:text/plain')).toBe(true);
    const downloaded = decodeURIComponent((download ?? '').slice((download ?? '').indexOf(',') + 1));
    for (const code of recoveryCodes) expect(downloaded).toContain(code);

    const consent = await submit(agent, codesPage, '/second-factor/continue');
    const tokens = await consentAndRedeem(agent, started, consent);
    expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(tokens.claims()?.acr).toBe(server.config.acr.multiFactor);

    // The account has the app now: the next sign-in asks for a code.
    const status = await server.deps.totp.status(created.id);
    expect(status.enabled).toBe(true);
    expect(status.recoveryCodesLeft).toBe(10);
    const next = await toEnrolPage(frank);
    expect(pageKind(next.page)).toBe('totp');

    // At rest: neither the key shown on the page nor the recovery codes appear in the document.
    const raw = await server.deps.db.collection('accounts').findOne({ email: frank.email });
    expect(raw).toBeTruthy();
    const stored = JSON.stringify(raw);
    expect(stored).toContain('secretSealed');
    expect(stored).not.toContain(secret);
    expect(stored.toLowerCase()).not.toContain(secret.toLowerCase());
    expect(stored).not.toContain(Buffer.from(secret).toString('base64'));
    for (const code of recoveryCodes) {
      expect(stored).not.toContain(code);
      expect(stored).not.toContain(code.replace('-', ''));
    }

    function consentAndRedeem(a: UserAgent, s: Started, c: Reply): Promise<Tokens> {
      expect(pageKind(c)).toBe('consent');
      return submit(a, c, '/confirm').then((callback) => redeem(rp, s, callback));
    }
  });

  it('bad input on the enrol form is a 4xx, never a 5xx, and enables nothing', async () => {
    const grace = { email: 'grace@example.com', password: PASSWORD };
    const created = await server.deps.accounts.create(grace);
    const { agent, page } = await toEnrolPage(grace);
    expect(pageKind(page)).toBe('enrol');
    const action = formAction(page.body, '/second-factor/enrol');
    const csrf = formField(page.body, 'csrf');
    const secret = secretFromEnrolPage(page.body);

    const cases: [string, Record<string, string>, number][] = [
      ['missing code', { csrf }, 400],
      ['empty code', { csrf, code: '' }, 400],
      ['overlong code', { csrf, code: '9'.repeat(5_000) }, 400],
      ['non-digits', { csrf, code: 'abc123' }, 400],
      ['markup', { csrf, code: '"><b>' }, 400],
      ['missing csrf', { code: '123456' }, 403],
      ['wrong csrf', { csrf: 'y'.repeat(43), code: '123456' }, 403],
    ];
    for (const [label, fields, status] of cases) {
      const reply = await agent.submit(action, fields);
      expect({ label, status: reply.status }).toEqual({ label, status });
      expectErrorFree4xx(reply);
    }
    // Even a right code without the CSRF token enables nothing.
    const step = await clearOfStepEnd(MARGIN_MS, clock);
    const noCsrf = await agent.post(action, { code: await codeForStep(secret, step) });
    expect(noCsrf.status).toBe(403);
    expect((await server.deps.totp.status(created.id)).enabled).toBe(false);

    // The page still works afterwards. Loading it again shows a new key (nothing was stored to
    // show again), and the old page, still open, can be finished too.
    const again = await agent.follow(page.url);
    expect(pageKind(again)).toBe('enrol');
    expect(secretFromEnrolPage(again.body)).not.toBe(secret);
    // A forged or another account's sealed secret is refused as an expired page (new key, nothing enabled).
    const forged = await agent.submit(action, { csrf, code: await codeForStep(secret, step), enrolment: `${formField(page.body, 'enrolment')}x` });
    expect(forged.status).toBe(400);
    expect(forged.body).toContain('This setup page has expired');
    expect(secretFromEnrolPage(forged.body)).not.toBe(secret);
    expect((await server.deps.totp.status(created.id)).enabled).toBe(false);
  });

  it('showing the enrol page (GET) writes nothing; the page, even re-shown after a wrong code, activates', async () => {
    const heidi = { email: 'heidi@example.com', password: PASSWORD };
    const created = await server.deps.accounts.create(heidi);
    const { agent, page } = await toEnrolPage(heidi);
    expect(pageKind(page)).toBe('enrol');

    const before = await accountsBytes();
    const shown = await agent.follow(page.url);
    expect(pageKind(shown)).toBe('enrol');
    const shownAgain = await agent.follow(page.url);
    expect(pageKind(shownAgain)).toBe('enrol');
    expect((await accountsBytes()).equals(before)).toBe(true);

    // The first of the three pages shown: a wrong code, then its re-rendered page with the same key.
    const secret = secretFromEnrolPage(page.body);
    const wrong = await submit(agent, page, '/second-factor/enrol', { code: await wrongTotpCode(secret, clock) });
    expect(wrong.status).toBe(401);
    expect(secretFromEnrolPage(wrong.body)).toBe(secret);
    const step = await clearOfStepEnd(MARGIN_MS, clock);
    const codes = await submit(agent, wrong, '/second-factor/enrol', { code: await codeForStep(secret, step) });
    expect(pageKind(codes)).toBe('recovery-codes');
    expect((await server.deps.totp.status(created.id)).enabled).toBe(true);
    // The other pages shown cannot replace the app now.
    const late = await submit(agent, shown, '/second-factor/enrol', { code: await codeForStep(secretFromEnrolPage(shown.body), step) });
    expect(pageKind(late)).not.toBe('recovery-codes');
    expect(await server.deps.totp.verify(created.id, await codeForStep(secret, step + 1))).toEqual({ ok: true });
  });
});
