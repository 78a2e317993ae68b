/**
 * Guessing a second factor, and getting around it: failures count per account across
 * authorization requests and browsers; codes belong to the interaction that asked for them; and
 * no sequence of requests reaches consent or the client before the second factor is done.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { createTestClock, passTime } from '../support/clock.js';
import { authorizationRequest, REDIRECT_URI, redeem } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { clearOfStepEnd, enrolOnAccountPage, freshTotp, pageKind, submit, wrongTotpCode } from '../support/second-factor.js';
import type { Authenticator } from '../support/second-factor.js';
import { createPlainAndMfaClients, startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { formField, UserAgent } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';

/**
 * Wrong codes in a row before the delays start (FACTOR_FREE_ATTEMPTS), and the longest delay.
 * The tests make FREE + 2 failures, each one after the delay the one before it started (1 s,
 * 2 s), so the attempt after them waits 4 s: refused however slowly a machine gets to its POST.
 */
const FREE = 3;
const MAX_DELAY = 4;
const FAILURES = FREE + 2;
/** Seconds to wait after `failures` failures in a row (1, 2, 4 … after the free ones; src/limits/attempt-limiter.ts). */
const delayAfter = (failures: number): number => (failures < FREE ? 0 : Math.min(2 ** (failures - FREE), MAX_DELAY));

interface User {
  email: string;
  password: string;
}

/** Another six digits than `code`. */
const notThe = (code: string) => String((Number(code) + 500_001) % 1_000_000).padStart(6, '0');

const uidOf = (page: Reply) => {
  const uid = /\/interaction\/([A-Za-z0-9_-]+)/.exec(new URL(page.url).pathname)?.[1];
  if (!uid) throw new Error(`not an interaction page: ${page.url}`);
  return uid;
};

describe('second-factor guessing and shortcuts', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;
  let mfaRp: oidc.Configuration;
  let userCount = 0;
  // Waits asked for by the throttles pass by moving the services' clock, not by sleeping.
  const clock = createTestClock();

  const createUser = async (label: string): Promise<User> => {
    const user = { email: `guess-${label}-${(userCount += 1)}@example.com`, password: PASSWORD };
    await server.deps.accounts.create(user);
    return user;
  };

  /** A new browser, a new authorization request, the password: the page after it. */
  const afterPassword = async (rpConfig: oidc.Configuration, user: User) => {
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rpConfig);
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const before = smtp.countFor(user.email);
    const page = await submit(agent, login, '/login', { email: user.email, password: user.password });
    expect(page.status).toBe(200);
    return { agent, started, page, uid: uidOf(page), mailsBefore: before };
  };

  /** After the password for a require_mfa client (account without TOTP): the email-code page and its code. */
  const atEmailSecondFactor = async (user: User) => {
    const flow = await afterPassword(mfaRp, user);
    expect(pageKind(flow.page)).toBe('email-code');
    const code = (await waitForCodeMail(smtp, user.email, { after: flow.mailsBefore })).code;
    return { ...flow, code };
  };

  /** After the password (plain client) for an account with an authenticator app: the TOTP page. */
  const atTotp = async (user: User) => {
    const flow = await afterPassword(rp, user);
    expect(pageKind(flow.page)).toBe('totp');
    return flow;
  };

  const enrolTotp = async (user: User): Promise<Authenticator> => {
    const agent = new UserAgent(server.url);
    const login = await agent.follow(`${server.url}/account/security`);
    expect(pageKind(login)).toBe('login');
    const security = await submit(agent, login, '/login', { email: user.email, password: user.password });
    expect(security.url).toBe(`${server.url}/account/security`);
    // The helper confirms with the code of the step before, refused once the step has moved on:
    // with 15 s left before it loads its page, its one POST has the rest of the step.
    await clearOfStepEnd(15_000, clock);
    return (await enrolOnAccountPage(agent, server.url, clock)).auth;
  };

  const expectWrongCode = (reply: Reply, kind: 'totp' | 'email-code') => {
    expect(reply.status).toBe(401);
    expect(pageKind(reply)).toBe(kind);
    expect(reply.body).not.toContain('Too many');
    expect(reply.headers.get('retry-after')).toBeNull();
  };

  const expectThrottled = (reply: Reply, kind: 'totp' | 'email-code'): number => {
    expect(reply.status).toBe(429);
    expect(pageKind(reply)).toBe(kind);
    expect(reply.body).toContain('Too many');
    const retryAfter = Number(reply.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(delayAfter(FAILURES));
    expect(reply.body).toContain(`Wait ${retryAfter} second${retryAfter === 1 ? '' : 's'}`);
    return retryAfter;
  };

  /**
   * A wrong code, counted as a failure: the free ones at once, later ones once the delay the
   * previous failure started has passed (waiting longer is harmless). `failures` is the count so far.
   */
  const wrongCode = async (failures: number, agent: UserAgent, page: Reply, kind: 'totp' | 'email-code', code: () => Promise<string>) => {
    if (delayAfter(failures) > 0) await passTime(clock, delayAfter(failures) * 1000 + 100);
    const reply = await submit(agent, page, kind === 'totp' ? '/second-factor/totp' : '/second-factor/email', { code: await code() });
    expectWrongCode(reply, kind);
    return reply;
  };

  const toCallback = async (agent: UserAgent, reply: Reply) => {
    expect(pageKind(reply)).toBe('consent');
    const callback = await submit(agent, reply, '/confirm');
    expect(callback.location?.startsWith(REDIRECT_URI)).toBe(true);
    return callback;
  };

  const expectNoCode = (reply: Reply) => {
    if (reply.location?.startsWith(REDIRECT_URI)) {
      expect(new URL(reply.location).searchParams.get('code')).toBeNull();
    }
  };

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('factor_guessing', {
      // Few free attempts and short delays keep the tests short.
      FACTOR_FREE_ATTEMPTS: String(FREE),
      FACTOR_MAX_DELAY: String(MAX_DELAY),
      // Several sign-ins per account within a minute, each mailing a second-factor code.
      EMAIL_CODE_RESEND_INTERVAL: '0',
    }, { clock }));
    ({ rp, mfaRp } = await createPlainAndMfaClients(server));
  });
  afterAll(() => stopMailingServer({ server, smtp }));

  describe('failures add up per account across authorization requests and browsers', () => {
    it('TOTP: 5 wrong codes over 3 requests, then even the right code waits; after the wait it works and resets the count', async () => {
      const user = await createUser('totp');
      const auth = await enrolTotp(user);

      const wrong = () => wrongTotpCode(auth.secret, clock);
      let failures = 0;
      const first = await atTotp(user);
      let page = first.page;
      for (let i = 0; i < 2; i += 1) page = await wrongCode(failures++, first.agent, page, 'totp', wrong);
      const second = await atTotp(user);
      page = second.page;
      for (let i = 0; i < 2; i += 1) page = await wrongCode(failures++, second.agent, page, 'totp', wrong);
      const third = await atTotp(user);
      // Opened before the fifth failure, so the sixth attempt is a single POST inside its 4 s delay.
      const fourth = await atTotp(user);
      const right = await freshTotp(auth, clock);
      await wrongCode(failures++, third.agent, third.page, 'totp', wrong);
      expect(failures).toBe(FAILURES);

      const refused = await submit(fourth.agent, fourth.page, '/second-factor/totp', { code: right.code });
      const retryAfter = expectThrottled(refused, 'totp');

      await passTime(clock, retryAfter * 1000 + 250);
      const again = await freshTotp(auth, clock);
      const consent = await submit(fourth.agent, refused, '/second-factor/totp', { code: again.code });
      expect(consent.status).toBe(200);
      expect(pageKind(consent)).toBe('consent');
      auth.lastStep = again.step;
      const tokens = await redeem(rp, fourth.started, await toCallback(fourth.agent, consent));
      expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);

      // The success forgot the failures: the free wrong codes are ordinary ones again, at once
      // (had the five stayed, the second of these would wait 4 s).
      const fifth = await atTotp(user);
      page = fifth.page;
      for (let i = 0; i < FREE; i += 1) page = await wrongCode(0, fifth.agent, page, 'totp', wrong);
    });

    it('email second factor: 5 wrong codes over 3 requests, then even the right code waits', async () => {
      const user = await createUser('email');
      let failures = 0;
      const first = await atEmailSecondFactor(user);
      let page = first.page;
      for (let i = 0; i < 2; i += 1) page = await wrongCode(failures++, first.agent, page, 'email-code', async () => notThe(first.code));
      const second = await atEmailSecondFactor(user);
      page = second.page;
      for (let i = 0; i < 2; i += 1) page = await wrongCode(failures++, second.agent, page, 'email-code', async () => notThe(second.code));
      const third = await atEmailSecondFactor(user);
      // Opened (and its code mailed) before the fifth failure, as for TOTP.
      const fourth = await atEmailSecondFactor(user);
      await wrongCode(failures++, third.agent, third.page, 'email-code', async () => notThe(third.code));
      expect(failures).toBe(FAILURES);

      const refused = await submit(fourth.agent, fourth.page, '/second-factor/email', { code: fourth.code });
      const retryAfter = expectThrottled(refused, 'email-code');

      await passTime(clock, retryAfter * 1000 + 250);
      const consent = await submit(fourth.agent, refused, '/second-factor/email', { code: fourth.code });
      expect(consent.status).toBe(200);
      expect(pageKind(consent)).toBe('consent');
      const tokens = await redeem(mfaRp, fourth.started, await toCallback(fourth.agent, consent));
      expect(tokens.claims()?.amr).toEqual(['pwd', 'email', 'mfa']);

      const fifth = await atEmailSecondFactor(user);
      page = fifth.page;
      for (let i = 0; i < FREE; i += 1) page = await wrongCode(0, fifth.agent, page, 'email-code', async () => notThe(fifth.code));
    });
  });

  it("a code mailed for browser A's interaction does not work in browser B's", async () => {
    const user = await createUser('binding');
    const b = await atEmailSecondFactor(user);
    // A asks last, so A's code is the newest one for this address.
    const a = await atEmailSecondFactor(user);
    expect(a.code).not.toBe(b.code);

    const inB = await submit(b.agent, b.page, '/second-factor/email', { code: a.code });
    expectWrongCode(inB, 'email-code');

    // The code itself was good: in the interaction it was mailed for, it signs in.
    const inA = await submit(a.agent, a.page, '/second-factor/email', { code: a.code });
    expect(pageKind(inA)).toBe('consent');
    await toCallback(a.agent, inA);
  });

  describe('nothing reaches consent or the client without the second factor', () => {
    let user: User;
    beforeAll(async () => {
      user = await createUser('bypass');
    });

    it('(a) POST /confirm with a valid CSRF token after the password → 400 wrong step', async () => {
      const flow = await atEmailSecondFactor(user);
      const reply = await flow.agent.post(`${server.url}/interaction/${flow.uid}/confirm`, { csrf: formField(flow.page.body, 'csrf') });
      expect(reply.status).toBe(400);
      expect(reply.body).toContain('not the current one');
      expectNoCode(reply);

      // Nothing moved: the page is still the second factor, and the mailed code still finishes it.
      const still = await flow.agent.follow(`${server.url}/interaction/${flow.uid}`);
      expect(pageKind(still)).toBe('email-code');
      const consent = await submit(flow.agent, still, '/second-factor/email', { code: flow.code });
      expect(pageKind(consent)).toBe('consent');
    });

    it("(b) the provider's resume URL /auth/:uid opened directly → a sign-in page, no code", async () => {
      const flow = await atEmailSecondFactor(user);
      const reply = await flow.agent.follow(`${server.url}/auth/${flow.uid}`);
      expectNoCode(reply);
      expect(reply.status).toBe(200);
      expect(pageKind(reply)).toBe('login');
      // A new interaction: the provider found no `login` in the unfinished one's result.
      expect(uidOf(reply)).not.toBe(flow.uid);
    });

    it('(c) a new authorization request for the same client in the same browser → the login page', async () => {
      const flow = await atEmailSecondFactor(user);
      const again = await authorizationRequest(mfaRp);
      const reply = await flow.agent.follow(again.url.toString());
      expectNoCode(reply);
      expect(reply.status).toBe(200);
      expect(pageKind(reply)).toBe('login');
    });

    it('(d) a request to a plain client in the same browser after only the password → the login page', async () => {
      const flow = await atEmailSecondFactor(user);
      const other = await authorizationRequest(rp);
      const reply = await flow.agent.follow(other.url.toString());
      expectNoCode(reply);
      expect(reply.status).toBe(200);
      expect(pageKind(reply)).toBe('login');
    });

    it('(e) second-factor routes other than the current one → 400', async () => {
      const flow = await atEmailSecondFactor(user);
      const csrf = formField(flow.page.body, 'csrf');
      const base = `${server.url}/interaction/${flow.uid}`;
      for (const [path, fields] of [
        ['/second-factor/continue', {}],
        ['/second-factor/totp', { code: '123456' }],
        ['/second-factor/recovery', { code: 'abcd-efgh-ijkl' }],
        ['/second-factor/password', { password: user.password }],
        ['/second-factor/enrol', { code: '123456' }],
      ] as const) {
        const reply = await flow.agent.post(`${base}${path}`, { csrf, ...fields });
        expect({ path, status: reply.status }).toEqual({ path, status: 400 });
        expectNoCode(reply);
      }

      // Before any first factor, no second-factor route is the current step either.
      const agent = new UserAgent(server.url);
      const started: Started = await authorizationRequest(mfaRp);
      const login = await agent.follow(started.url.toString());
      expect(pageKind(login)).toBe('login');
      const loginUid = uidOf(login);
      const loginCsrf = formField(login.body, 'csrf');
      for (const [path, fields] of [
        ['/second-factor/continue', {}],
        ['/second-factor/totp', { code: '123456' }],
        ['/second-factor/email', { code: flow.code }],
        ['/second-factor/password', { password: user.password }],
      ] as const) {
        const reply = await agent.post(`${server.url}/interaction/${loginUid}${path}`, { csrf: loginCsrf, ...fields });
        expect({ path, status: reply.status }).toEqual({ path, status: 400 });
        expectNoCode(reply);
      }
    });
  });

  describe("a pending second factor stays in its browser", () => {
    it("browser A's interaction URL in browser B → an error page, not the factor page", async () => {
      const user = await createUser('move');
      const a = await atEmailSecondFactor(user);
      const url = `${server.url}/interaction/${a.uid}`;
      const csrf = formField(a.page.body, 'csrf');

      // A browser with no sign-in of its own.
      const fresh = new UserAgent(server.url);
      const opened = await fresh.follow(url);
      expect([400, 404]).toContain(opened.status);
      expect(pageKind(opened)).toBe('other');
      // Even with A's form token and A's code, posting from B gets nowhere.
      const posted = await fresh.post(`${url}/second-factor/email`, { csrf, code: a.code });
      expect([400, 404]).toContain(posted.status);
      expectNoCode(posted);

      // A browser with a sign-in of its own in progress.
      const other = new UserAgent(server.url);
      const own = await authorizationRequest(mfaRp);
      expect(pageKind(await other.follow(own.url.toString()))).toBe('login');
      const openedInOther = await other.follow(url);
      expect([400, 404]).toContain(openedInOther.status);
      expect(pageKind(openedInOther)).toBe('other');

      // A still finishes with its code: B's tries did not use it up.
      const consent = await submit(a.agent, a.page, '/second-factor/email', { code: a.code });
      expect(pageKind(consent)).toBe('consent');
    });
  });
});
