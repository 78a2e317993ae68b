/**
 * A stranger who knows only someone's email address cannot lock the owner out: wrong sign-in
 * codes (which anyone can ask for) count against email codes for that address only, never
 * against the owner's authenticator app; and a code the stranger asks for never cancels the code
 * the owner is using in another browser.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { createTestClock, passTime } from '../support/clock.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, redeem, rpFor } from '../support/rp.js';
import { enrolOnAccountPage, freshTotp, pageKind, submit } from '../support/second-factor.js';
import type { Authenticator } from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const FREE = 3;
const OWNER = { email: 'owner@example.com', password: 'the owner password, long enough' };

describe('a stranger who knows the address cannot lock its owner out', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;
  let auth: Authenticator;
  // The services' clock: the stranger's waits pass by moving it, not by sleeping.
  const clock = createTestClock();

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('lockout', { FACTOR_FREE_ATTEMPTS: String(FREE), FACTOR_MAX_DELAY: '2' }, { clock }));
    await server.deps.accounts.create(OWNER);
    const client = await server.deps.clients.create({ name: 'Lockout app', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, client);
    // The owner sets up an authenticator app.
    const agent = new UserAgent(server.url);
    const login = await agent.follow(`${server.url}/account/security`);
    await submit(agent, login, '/login', OWNER);
    auth = (await enrolOnAccountPage(agent, server.url, clock)).auth;
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  async function loginPage(): Promise<{ agent: UserAgent; page: Reply; started: Awaited<ReturnType<typeof authorizationRequest>> }> {
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const page = await agent.follow(started.url.toString());
    expect(pageKind(page)).toBe('login');
    return { agent, page, started };
  }

  /** The stranger: a new browser, a code asked for the owner's address, and wrong guesses at it. */
  async function strangerGuesses(guesses: number): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < guesses; i += 1) {
      const { agent, page } = await loginPage();
      const codePage = await submit(agent, page, '/email-code', { email: OWNER.email });
      expect(pageKind(codePage)).toBe('email-code');
      const reply = await submit(agent, codePage, '/email-code/verify', { code: String(100000 + i) });
      statuses.push(reply.status);
      const wait = Number(reply.headers.get('retry-after') ?? 0);
      if (wait > 0) await passTime(clock, wait * 1000 + 150);
    }
    return statuses;
  }

  it('nine wrong sign-in codes from a stranger, then the owner signs in with password and authenticator at once', async () => {
    const statuses = await strangerGuesses(9);
    // The stranger did meet the limit of email codes for that address…
    expect(statuses).toContain(429);
    expect(await server.deps.limits.limiter.count(server.deps.limits.emailCode(OWNER.email).key)).toBeGreaterThan(FREE);

    // …but the owner's password and authenticator app are counted apart, and untouched.
    const { agent, page, started } = await loginPage();
    const totpPage = await submit(agent, page, '/login', OWNER);
    expect(pageKind(totpPage)).toBe('totp');
    const fresh = await freshTotp(auth, clock);
    const consent = await submit(agent, totpPage, '/second-factor/totp', { code: fresh.code });
    expect(consent.status).toBe(200);
    expect(consent.body).not.toContain('Wait');
    expect(pageKind(consent)).toBe('consent');
    auth.lastStep = fresh.step;
    const callback = await agent.post(/action="([^"]*\/confirm)"/.exec(consent.body)![1]!, { csrf: /name="csrf" value="([^"]*)"/.exec(consent.body)![1]! });
    const tokens = await redeem(rp, started, await agent.follow(callback.location!));
    expect(tokens.claims()?.amr).toEqual(['pwd', 'otp', 'mfa']);
  }, 120_000);

  it("a code the stranger asks for (again and again) leaves the owner's pending code working", async () => {
    const person = { email: 'patient@example.com', password: 'another password, long enough' };
    await server.deps.accounts.create(person);
    const owner = await loginPage();
    const before = smtp.countFor(person.email);
    const codePage = await submit(owner.agent, owner.page, '/email-code', { email: person.email });
    const code = (await waitForCodeMail(smtp, person.email, { after: before })).code;

    // Within the owner's minute, the stranger asks twice, from two browsers.
    for (let i = 0; i < 2; i += 1) {
      const stranger = await loginPage();
      expect(pageKind(await submit(stranger.agent, stranger.page, '/email-code', { email: person.email }))).toBe('email-code');
    }
    await smtp.waitForMail(person.email, { after: before + 2 });

    const reply = await owner.agent.post(/action="([^"]*\/email-code\/verify)"/.exec(codePage.body)![1]!, {
      csrf: /name="csrf" value="([^"]*)"/.exec(codePage.body)![1]!,
      code,
    });
    expect(reply.status).toBe(303);
    const next = await owner.agent.follow(reply.location!);
    // Signed in: the consent page (first visit), then the code.
    expect(pageKind(next)).toBe('consent');
    const callback = await owner.agent.post(/action="([^"]*\/confirm)"/.exec(next.body)![1]!, { csrf: /name="csrf" value="([^"]*)"/.exec(next.body)![1]! });
    expect(callbackParams(await owner.agent.follow(callback.location!)).get('code')).toBeTruthy();
  });
});
