/**
 * The MFA policy as a relying party sees it: which requests are asked for a second factor, and
 * what the ID token then says (`amr`, `acr`, `auth_time`). Second factors are completed through the
 * pages with codes read from the mail a person would get, or computed from the authenticator
 * secret shown on the enrolment page.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { codeFrom, waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { useMovableSystemDate } from '../support/clock.js';
import type { MovableSystemDate } from '../support/clock.js';
import { authorizationRequest, callbackParams, REDIRECT_URI, redeem, rpFor } from '../support/rp.js';
import type { Started, Tokens } from '../support/rp.js';
import { enrolOnAccountPage, freshTotp, pageKind, requestSignInCode, submit } from '../support/second-factor.js';
import type { Authenticator } from '../support/second-factor.js';
import { createPlainAndMfaClients, startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';

interface User {
  email: string;
  password: string;
}

/** A fresh account per test, so codes, resend intervals and TOTP steps never cross tests. */
let userCount = 0;
const newUserEmail = (label: string) => `mfa-policy-${label}-${(userCount += 1)}@example.com`;

function hasPasswordField(page: Reply): boolean {
  return /name="password"/.test(page.body) || /type="password"/.test(page.body);
}

describe('MFA policy (acr, amr, step-up)', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;
  let mfaRp: oidc.Configuration;

  const createUser = async (label: string, extra: { roles?: 'admin'[] } = {}): Promise<User> => {
    const user = { email: newUserEmail(label), password: PASSWORD };
    await server.deps.accounts.create({ ...user, ...extra });
    return user;
  };

  /** Posts the password on the login page; returns the next page (or the redirect leaving the server). */
  const passwordStep = (agent: UserAgent, login: Reply, user: User) => {
    expect(pageKind(login)).toBe('login');
    return submit(agent, login, '/login', { email: user.email, password: user.password });
  };

  /** Password on the login page, expecting the email second factor; returns that page and the mailed code. */
  const passwordThenMailedCode = async (agent: UserAgent, login: Reply, user: User) => {
    const before = smtp.countFor(user.email);
    const page = await passwordStep(agent, login, user);
    expect(page.status).toBe(200);
    expect(pageKind(page)).toBe('email-code');
    const mail = await smtp.waitForMail(user.email, { after: before });
    return { page, code: codeFrom(mail) };
  };

  /** From a consent page (or an immediate redirect) to the redirect back to the client. */
  const toCallback = async (agent: UserAgent, reply: Reply): Promise<Reply> => {
    if (reply.location?.startsWith(REDIRECT_URI)) return reply;
    expect(pageKind(reply)).toBe('consent');
    const callback = await submit(agent, reply, '/confirm');
    expect(callback.location?.startsWith(REDIRECT_URI)).toBe(true);
    return callback;
  };

  const finish = async (agent: UserAgent, rpConfig: oidc.Configuration, started: Started, reply: Reply): Promise<Tokens> =>
    redeem(rpConfig, started, await toCallback(agent, reply));

  /** A complete password-only sign-in to the plain client. */
  const passwordOnlySignIn = async (agent: UserAgent, user: User) => {
    const started = await authorizationRequest(rp);
    const login = await agent.follow(started.url.toString());
    const next = await passwordStep(agent, login, user);
    expect(pageKind(next)).toBe('consent');
    return finish(agent, rp, started, next);
  };

  /** Enrols an authenticator app through /account/security/totp, signing in there with the password. */
  const enrolTotp = async (agent: UserAgent, user: User): Promise<Authenticator> => {
    const login = await agent.follow(`${server.url}/account/security`);
    const security = await passwordStep(agent, login, user);
    expect(security.status).toBe(200);
    expect(security.url).toBe(`${server.url}/account/security`);
    const { auth, page: codes } = await enrolOnAccountPage(agent, server.url);
    const done = await submit(agent, codes, '/account/security/done');
    expect(done.status).toBe(200);
    return auth;
  };

  /**
   * Signs in with the password and a code by email (a require_mfa client), then enrols an
   * authenticator app on the account page in the same browser: the session stays at the email
   * second-factor level.
   */
  const enrolTotpAfterEmailSession = async (agent: UserAgent, user: User): Promise<Authenticator> => {
    const started = await authorizationRequest(mfaRp);
    const login = await agent.follow(started.url.toString());
    const { page, code } = await passwordThenMailedCode(agent, login, user);
    const claims = (await finish(agent, mfaRp, started, await submit(agent, page, '/second-factor/email', { code }))).claims();
    expect(claims?.acr).toBe(server.config.acr.emailSecondFactor);
    const security = await agent.follow(`${server.url}/account/security`);
    expect(security.url).toBe(`${server.url}/account/security`);
    const { auth, page: codes } = await enrolOnAccountPage(agent, server.url);
    await submit(agent, codes, '/account/security/done');
    return auth;
  };

  /** The provider's time (auth_time): moved forward instead of slept through. */
  let date: MovableSystemDate;

  beforeAll(async () => {
    date = useMovableSystemDate();
    ({ server, smtp } = await startMailingServer('mfa_policy'));
    ({ rp, mfaRp } = await createPlainAndMfaClients(server));
  });
  afterAll(async () => {
    await stopMailingServer({ server, smtp });
    date.restore();
  });

  it('publishes the three authentication context classes in discovery', () => {
    const supported = rp.serverMetadata().acr_values_supported;
    expect(supported).toEqual(expect.arrayContaining([server.config.acr.singleFactor, server.config.acr.emailSecondFactor, server.config.acr.multiFactor]));
    expect(server.config.acr.singleFactor).toBe('urn:oidc-server:acr:1fa');
    expect(server.config.acr.emailSecondFactor).toBe('urn:oidc-server:acr:2fa-email');
    expect(server.config.acr.multiFactor).toBe('http://schemas.openid.net/pape/policies/2007/06/multi-factor');
  });

  it('a password-only sign-in to a plain client: amr pwd, single-factor acr, auth_time', async () => {
    const user = await createUser('plain');
    const before = Math.floor(Date.now() / 1000);
    const tokens = await passwordOnlySignIn(new UserAgent(server.url), user);
    const claims = tokens.claims();
    expect(claims?.amr).toEqual(['pwd']);
    expect(claims?.acr).toBe(server.config.acr.singleFactor);
    expect(typeof claims?.auth_time).toBe('number');
    expect(claims?.auth_time).toBeGreaterThanOrEqual(before - 1);
    expect(claims?.auth_time).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
  });

  it('a require_mfa client: password then a code by email → amr pwd+email+mfa, and the email second-factor acr (not the multi-factor one)', async () => {
    const user = await createUser('require');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(mfaRp);
    const login = await agent.follow(started.url.toString());
    const { page, code } = await passwordThenMailedCode(agent, login, user);
    const next = await submit(agent, page, '/second-factor/email', { code });
    const claims = (await finish(agent, mfaRp, started, next)).claims();
    expect(claims?.amr).toEqual(['pwd', 'email', 'mfa']);
    expect(claims?.acr).toBe(server.config.acr.emailSecondFactor);
    expect(typeof claims?.auth_time).toBe('number');
  });

  it('acr_values with the email second-factor class on a plain client asks for a second factor, and a code by email does', async () => {
    const user = await createUser('acr-email');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp, { acr_values: server.config.acr.emailSecondFactor });
    const login = await agent.follow(started.url.toString());
    const { page, code } = await passwordThenMailedCode(agent, login, user);
    const next = await submit(agent, page, '/second-factor/email', { code });
    const claims = (await finish(agent, rp, started, next)).claims();
    expect(claims?.amr).toEqual(['pwd', 'email', 'mfa']);
    expect(claims?.acr).toBe(server.config.acr.emailSecondFactor);
  });

  it('acr_values with the multi-factor class asks for an authenticator app: an account without one sets it up, no code is mailed', async () => {
    const user = await createUser('acr-multi');
    const agent = new UserAgent(server.url);
    const before = smtp.countFor(user.email);
    const started = await authorizationRequest(rp, { acr_values: server.config.acr.multiFactor });
    const login = await agent.follow(started.url.toString());
    const enrol = await passwordStep(agent, login, user);
    expect(pageKind(enrol)).toBe('enrol');
    expect(smtp.countFor(user.email)).toBe(before);
    // The email second factor is not offered for this request: its route is not the current step.
    const uid = /\/interaction\/([A-Za-z0-9_-]+)/.exec(enrol.url)?.[1];
    const email = await agent.post(`${server.url}/interaction/${uid}/second-factor/email`, { csrf: /name="csrf" value="([^"]*)"/.exec(enrol.body)![1]!, code: '123456' });
    expect(email.status).toBe(400);
  });

  it('a session with password + email code meets acr_values=multi-factor: a step-up to the authenticator app, and the multi-factor acr', async () => {
    const user = await createUser('email-then-app');
    const agent = new UserAgent(server.url);
    const auth = await enrolTotpAfterEmailSession(agent, user);
    const started = await authorizationRequest(rp, { acr_values: server.config.acr.multiFactor });
    const page = await agent.follow(started.url.toString());
    expect(pageKind(page)).toBe('totp');
    const { code, step } = await freshTotp(auth);
    const next = await submit(agent, page, '/second-factor/totp', { code });
    auth.lastStep = step;
    const claims = (await finish(agent, rp, started, next)).claims();
    expect(claims?.amr).toEqual(expect.arrayContaining(['otp', 'mfa']));
    expect(claims?.acr).toBe(server.config.acr.multiFactor);
  });

  it('acr_values with the single-factor class does not ask for a second factor', async () => {
    const user = await createUser('acr-single');
    const agent = new UserAgent(server.url);
    const before = smtp.countFor(user.email);
    const started = await authorizationRequest(rp, { acr_values: server.config.acr.singleFactor });
    const login = await agent.follow(started.url.toString());
    const next = await passwordStep(agent, login, user);
    expect(pageKind(next)).toBe('consent');
    const claims = (await finish(agent, rp, started, next)).claims();
    expect(claims?.amr).toEqual(['pwd']);
    expect(claims?.acr).toBe(server.config.acr.singleFactor);
    expect(smtp.countFor(user.email)).toBe(before);
  });

  it('administrators are asked for an authenticator app, even by a plain client: never a code by email', async () => {
    const admin = await createUser('admin', { roles: ['admin'] });
    const agent = new UserAgent(server.url);
    const before = smtp.countFor(admin.email);
    const started = await authorizationRequest(rp);
    const login = await agent.follow(started.url.toString());
    const enrol = await passwordStep(agent, login, admin);
    expect(pageKind(enrol)).toBe('enrol');
    expect(smtp.countFor(admin.email)).toBe(before);
  });

  it('step-up: a password-only session meets a require_mfa client and is asked only for the second factor', async () => {
    const user = await createUser('stepup-email');
    const agent = new UserAgent(server.url);
    const first = (await passwordOnlySignIn(agent, user)).claims();
    expect(first?.amr).toEqual(['pwd']);
    const firstAuthTime = Number(first?.auth_time);
    // auth_time has a resolution of one second: let a second pass so a renewal is visible.
    date.advance(1_100);

    const before = smtp.countFor(user.email);
    const started = await authorizationRequest(mfaRp);
    let page = await agent.follow(started.url.toString());
    expect(page.status).toBe(200);
    expect(pageKind(page)).toBe('email-code');
    expect(hasPasswordField(page)).toBe(false);
    // A step-up asks before mailing (no mail on a GET): the page offers "Email me a code".
    expect(smtp.countFor(user.email)).toBe(before);
    expect(page.body).toContain('Email me a code');
    expect(page.body).not.toContain('autocomplete="one-time-code"');
    page = await submit(agent, page, '/email-code/resend');
    expect(pageKind(page)).toBe('email-code');
    expect(page.body).toContain('autocomplete="one-time-code"');
    const code = (await waitForCodeMail(smtp, user.email, { after: before })).code;
    const next = await submit(agent, page, '/second-factor/email', { code });
    const claims = (await finish(agent, mfaRp, started, next)).claims();
    expect(claims?.amr).toEqual(['pwd', 'email', 'mfa']);
    expect(claims?.acr).toBe(server.config.acr.emailSecondFactor);
    expect(Number(claims?.auth_time)).toBeGreaterThanOrEqual(firstAuthTime);
    // The step-up is an authentication: it renews auth_time (OIDC Core §2).
    expect(Number(claims?.auth_time)).toBeGreaterThan(firstAuthTime);
  });

  it('step-up with an authenticator app enrolled at /account/security/totp', async () => {
    const user = await createUser('stepup-totp');
    const agent = new UserAgent(server.url);
    // Signing in at /account (password only: the account console is a plain client) and enrolling
    // leaves this browser with a single-factor session.
    const auth = await enrolTotp(agent, user);

    const started = await authorizationRequest(mfaRp);
    const page = await agent.follow(started.url.toString());
    expect(page.status).toBe(200);
    expect(pageKind(page)).toBe('totp');
    expect(hasPasswordField(page)).toBe(false);
    const { code, step } = await freshTotp(auth);
    const next = await submit(agent, page, '/second-factor/totp', { code });
    auth.lastStep = step;
    const claims = (await finish(agent, mfaRp, started, next)).claims();
    expect(claims?.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(claims?.acr).toBe(server.config.acr.multiFactor);
  });

  it('an email sign-in code first, then the password as the second step (account without TOTP)', async () => {
    const user = await createUser('passwordless');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(mfaRp);
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const { page, code } = await requestSignInCode(agent, login, user.email, smtp);
    expect(pageKind(page)).toBe('email-code');
    const passwordPage = await submit(agent, page, '/email-code/verify', { code });
    expect(passwordPage.status).toBe(200);
    expect(pageKind(passwordPage)).toBe('password');
    const next = await submit(agent, passwordPage, '/second-factor/password', { password: user.password });
    const claims = (await finish(agent, mfaRp, started, next)).claims();
    expect(claims?.amr).toEqual(['email', 'pwd', 'mfa']);
    expect(claims?.acr).toBe(server.config.acr.emailSecondFactor);
  });

  it('prompt=none to a require_mfa client with a single-factor session → interaction_required', async () => {
    const user = await createUser('prompt-none');
    const agent = new UserAgent(server.url);
    await passwordOnlySignIn(agent, user);
    const started = await authorizationRequest(mfaRp, { prompt: 'none' });
    const reply = await agent.follow(started.url.toString());
    const params = callbackParams(reply);
    expect(params.get('error')).toBe('interaction_required');
    expect(params.get('code')).toBeNull();
    expect(params.get('state')).toBe(started.state);
  });

  it('after a multi-factor sign-in, a second require_mfa request in the same browser asks for nothing more', async () => {
    const user = await createUser('sso');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(mfaRp);
    const login = await agent.follow(started.url.toString());
    const { page, code } = await passwordThenMailedCode(agent, login, user);
    const first = (await finish(agent, mfaRp, started, await submit(agent, page, '/second-factor/email', { code }))).claims();
    expect(first?.amr).toEqual(['pwd', 'email', 'mfa']);

    const mails = smtp.countFor(user.email);
    const again = await authorizationRequest(mfaRp);
    const reply = await agent.follow(again.url.toString());
    // Consent for this client was given above, so the browser goes straight back to the client.
    expect(callbackParams(reply).get('code')).toBeTruthy();
    const claims = (await redeem(mfaRp, again, reply)).claims();
    expect(claims?.amr).toEqual(['pwd', 'email', 'mfa']);
    expect(claims?.acr).toBe(server.config.acr.emailSecondFactor);
    expect(claims?.auth_time).toBe(first?.auth_time);
    expect(smtp.countFor(user.email)).toBe(mails);
  });
});

describe('MFA policy with MFA_REQUIRED_FOR_ADMINS=false', () => {
  let server: TestServer;
  let smtp: MailServer;
  let rp: oidc.Configuration;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('mfa_policy_no_admin', { MFA_REQUIRED_FOR_ADMINS: 'false' }));
    const client = await server.deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, client);
  });
  afterAll(() => stopMailingServer({ server, smtp }));

  it('an administrator signs in to a plain client with the password alone', async () => {
    const admin = { email: 'admin-no-mfa@example.com', password: PASSWORD };
    await server.deps.accounts.create({ ...admin, roles: ['admin'] });
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const next = await submit(agent, login, '/login', admin);
    expect(pageKind(next)).toBe('consent');
    const callback = await submit(agent, next, '/confirm');
    const claims = (await redeem(rp, started, callback)).claims();
    expect(claims?.amr).toEqual(['pwd']);
    expect(claims?.acr).toBe(server.config.acr.singleFactor);
    expect(smtp.countFor(admin.email)).toBe(0);
  });
});
