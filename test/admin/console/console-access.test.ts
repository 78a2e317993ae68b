/**
 * Who reaches the admin console: nobody without a session (GET → sign-in, POST → 401), nobody
 * without the admin role (403 page), no admin without an authenticator app (the multi-factor
 * class; a step-up asks for it), no admin whose authentication is older than
 * ADMIN_SESSION_MAX_AGE or who left the console unused for ADMIN_SESSION_IDLE (the console
 * sign-in then forces a new authentication), and nobody after signing out at /session/end.
 *
 * The server runs with MFA_REQUIRED_FOR_ADMINS=false so that an admin can hold a password-only
 * session from an ordinary client; the console's own client still requires a second factor.
 * Time is moved by editing the stored session (its loginTs, i.e. auth_time), never by sleeping.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { adminSessionVerdict } from '../../../src/admin/console/console-kit.js';
import type { AdminSessionInput } from '../../../src/admin/console/console-kit.js';
import { collectionName } from '../../../src/oidc/mongo-adapter.js';
import { CONSOLE_LANDING, completeEmailSecondFactor, completeSecondFactor, enrolAuthenticator, signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../../support/rp.js';
import { pageKind, submit } from '../../support/second-factor.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import type { Reply } from '../../support/user-agent.js';
import { UserAgent, formField, signInThroughPages } from '../../support/user-agent.js';

describe('adminSessionVerdict', () => {
  const settings = { multiFactorAcr: 'mfa-acr', maxAgeSeconds: 12 * 3600, idleSeconds: 30 * 60 };
  const NOW = 1_750_000_000;
  const input = (over: Partial<AdminSessionInput>): AdminSessionInput => ({ acr: 'mfa-acr', authTime: NOW - 60, lastActivity: NOW - 10, now: NOW, ...over });

  it.each<[string, ReturnType<typeof adminSessionVerdict>, Partial<AdminSessionInput>]>([
    ['signed in a minute ago, used just now', 'ok', {}],
    ['signed in just now, no console use yet', 'ok', { authTime: NOW, lastActivity: undefined }],
    ['signed in exactly the maximum age ago, used just now', 'ok', { authTime: NOW - 12 * 3600 }],
    ['signed in a second more than the maximum age ago, however busy', 'too_old', { authTime: NOW - 12 * 3600 - 1 }],
    ['no auth_time at all', 'too_old', { authTime: undefined }],
    ['signed in 31 min ago, never used the console since', 'idle', { authTime: NOW - 31 * 60, lastActivity: undefined }],
    ['signed in 2 h ago, last used 31 min ago', 'idle', { authTime: NOW - 2 * 3600, lastActivity: NOW - 31 * 60 }],
    ['signed in 2 h ago, last used exactly the idle time ago', 'ok', { authTime: NOW - 2 * 3600, lastActivity: NOW - 30 * 60 }],
    ['signed in again after a long pause: the new authentication counts as use', 'ok', { authTime: NOW - 5, lastActivity: NOW - 5 * 3600 }],
    ['multi-factor, but not the multi-factor class (a code by email)', 'not_multi_factor', { acr: 'email-acr' }],
    ['no acr', 'not_multi_factor', { acr: undefined }],
  ])('%s → %s', (_label, expected, over) => {
    expect(adminSessionVerdict(input(over), settings)).toBe(expected);
  });
});

const PASSWORD = 'correct horse battery staple';

let counter = 0;
const uniqueEmail = (label: string) => `console-access-${label}-${(counter += 1)}@example.test`;

describe('admin console: access', () => {
  let server: TestServer;
  let smtp: MailServer;
  let plainClientId: string;
  let mfaClientId: string;
  let someUserId: string;
  let tokenId: string;

  const url = (path: string) => `${server.url}${path}`;

  /** Every console page a GET can reach (ids of real records, so only access decides). */
  const consolePages = () => [
    '/admin',
    '/admin/clients',
    '/admin/users',
    '/admin/users?q=a',
    '/admin/users/new',
    `/admin/users/${someUserId}`,
    `/admin/users/${someUserId}/disable`,
    `/admin/users/${someUserId}/delete`,
    '/admin/registration-tokens',
    `/admin/registration-tokens/${tokenId}/revoke`,
    '/admin/api-token',
    '/admin/audit',
  ];

  /** Every console POST. */
  const consolePosts = () => [
    '/admin/users/new',
    `/admin/users/${someUserId}/disable`,
    `/admin/users/${someUserId}/enable`,
    `/admin/users/${someUserId}/delete`,
    '/admin/registration-tokens',
    `/admin/registration-tokens/${tokenId}/revoke`,
    '/admin/api-token',
  ];

  const newAccount = async (label: string, roles: 'admin'[] = []) => {
    const email = uniqueEmail(label);
    await server.deps.accounts.create({ email, password: PASSWORD, roles, emailVerified: true });
    return { email, password: PASSWORD };
  };

  const accountOf = async (email: string) => {
    const account = await server.deps.accounts.findByEmail(email);
    if (!account) throw new Error(`no account ${email}`);
    return account;
  };

  interface SessionPayload {
    accountId: string;
    loginTs: number;
    acr?: string;
    amr?: string[];
    [key: string]: unknown;
  }
  const sessions = () => server.deps.db.collection<{ _id: string; payload: string; accountId?: string }>(collectionName('Session'));

  /** The account's one live SSO session (each test signs its own account in, in one browser at a time). */
  const sessionOf = async (email: string): Promise<SessionPayload> => {
    const records = await sessions().find({ accountId: (await accountOf(email)).id, expiresAt: { $gt: new Date() } }).toArray();
    expect(records).toHaveLength(1);
    return JSON.parse(records[0]!.payload) as SessionPayload;
  };

  /** Rewrites the account's stored sessions, as time or another sign-in would have left them. */
  const editSession = async (email: string, change: (payload: SessionPayload) => SessionPayload) => {
    for (const record of await sessions().find({ accountId: (await accountOf(email)).id }).toArray()) {
      await sessions().updateOne({ _id: record._id }, { $set: { payload: JSON.stringify(change(JSON.parse(record.payload) as SessionPayload)) } });
    }
  };

  /** Makes the authentication `seconds` old (the session's loginTs, which is auth_time). */
  const ageAuthentication = (email: string, seconds: number) => editSession(email, (payload) => ({ ...payload, loginTs: Math.floor(Date.now() / 1000) - seconds }));

  /** Signs the account out everywhere (its sessions gone), as /session/end would for each browser. */
  const endSessions = async (email: string) => {
    await sessions().deleteMany({ accountId: (await accountOf(email)).id });
  };

  /** Signs in at the ordinary client: password, then the app (the account has one), consent. */
  const signInElsewhere = async (agent: UserAgent, person: { email: string; password: string }): Promise<Reply> => {
    const login = await agent.follow(authorizationUrlFor(server.url, plainClientId, { code_challenge: pkcePair().challenge }));
    const second = await submit(agent, login, '/login', person);
    const consent = await completeSecondFactor(agent, server, second, person.email, smtp, smtp.countFor(person.email));
    expect(pageKind(consent)).toBe('consent');
    const left = await submit(agent, consent, '/confirm');
    expect(left.location?.startsWith(REDIRECT_URI)).toBe(true);
    return left;
  };

  const expectUnchanged = async () => {
    expect(await server.deps.userAdmin.get(someUserId)).toMatchObject({ disabled: false });
    expect((await server.deps.registrationTokens.list()).find((t) => t.id === tokenId)?.revoked).toBe(false);
  };

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('console_access', {
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', MFA_REQUIRED_FOR_ADMINS: 'false' },
    });
    plainClientId = (await server.deps.clients.create({ name: 'Plain app', redirectUris: [REDIRECT_URI] })).clientId;
    mfaClientId = (await server.deps.clients.create({ name: 'Strict app', redirectUris: [REDIRECT_URI], requireMfa: true })).clientId;
    someUserId = (await server.deps.userAdmin.create({ email: uniqueEmail('someone') })).id;
    tokenId = (await server.deps.registrationTokens.create({ uses: 1 })).view.id;
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    await smtp.close();
  });

  it('sends a browser without a session to /admin/sign-in, which starts an authorization request', async () => {
    const agent = new UserAgent(server.url);
    for (const path of consolePages()) {
      const reply = await agent.get(url(path));
      expect({ path, status: reply.status, location: reply.location }).toEqual({ path, status: 303, location: url('/admin/sign-in') });
      expect(reply.headers.get('cache-control')).toBe('no-store');
    }
    const start = await agent.get(url('/admin/sign-in'));
    expect(start.status).toBe(303);
    const auth = new URL(start.location ?? '');
    expect(auth.pathname).toBe('/auth');
    expect(auth.searchParams.get('client_id')).toBe('admin-console');
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
  });

  it('answers a POST without a session with 401, changing nothing', async () => {
    const agent = new UserAgent(server.url);
    for (const path of consolePosts()) {
      const reply = await agent.post(url(path), { csrf: 'whatever', uses: '1', 'scope-admin:clients:read': 'on', email: uniqueEmail('x') });
      expect({ path, status: reply.status }).toEqual({ path, status: 401 });
    }
    await expectUnchanged();
  });

  it('shows a 403 page on every console page to a signed-in account without the admin role', async () => {
    const person = await newAccount('person');
    const agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, person);
    for (const path of consolePages()) {
      const reply = await agent.get(url(path));
      expect({ path, status: reply.status }).toEqual({ path, status: 403 });
      expect(reply.body).toContain('This account is not an administrator');
      // The error page, not the console: no navigation, no data.
      expect(reply.body).not.toContain('aria-label="Console"');
    }
    for (const path of consolePosts()) {
      const reply = await agent.post(url(path), { csrf: 'whatever' });
      expect({ path, status: reply.status }).toEqual({ path, status: 403 });
    }
    await expectUnchanged();
  });

  it('asks an admin with a password-only session for the authenticator app only (step-up) before the console', async () => {
    const admin = await newAccount('stepup', ['admin']);
    const agent = new UserAgent(server.url);

    // Signed in elsewhere: a plain client, password only (admins need no second factor on this server).
    const left = await signInThroughPages(agent, authorizationUrlFor(server.url, plainClientId, { code_challenge: pkcePair().challenge }), admin, {
      consent: 'allow',
    });
    expect(left.location?.startsWith(REDIRECT_URI)).toBe(true);
    expect(new URL(left.location ?? '').searchParams.get('code')).toEqual(expect.any(String));
    // The app was set up afterwards (on the account page, say).
    await enrolAuthenticator(server, await accountOf(admin.email));

    // That session is not enough for the console.
    const refused = await agent.get(url('/admin/users'));
    expect(refused.status).toBe(303);
    expect(refused.location).toBe(url('/admin/sign-in'));
    const post = await agent.post(url('/admin/api-token'), { csrf: 'whatever', 'scope-admin:clients:read': 'on' });
    expect(post.status).toBe(401);

    // Signing in again asks only for the missing factor: no password field.
    const before = smtp.countFor(admin.email);
    const stepUp = await agent.follow(refused.location ?? '');
    expect(stepUp.status).toBe(200);
    expect(pageKind(stepUp)).toBe('totp');
    expect(stepUp.body).not.toMatch(/type="password"/);
    const landed = await completeSecondFactor(agent, server, stepUp, admin.email, smtp, before);
    expect(landed.url).toBe(url(CONSOLE_LANDING));

    const users = await agent.get(url('/admin/users'));
    expect(users.status).toBe(200);
    expect(users.body).toContain(admin.email);
    expect(await sessionOf(admin.email)).toMatchObject({ acr: server.config.acr.multiFactor });
  });

  it('asks for the multi-factor class at the console sign-in, and for a new authentication with fresh=1', async () => {
    const admin = await newAccount('signin-request', ['admin']);
    const agent = new UserAgent(server.url);
    await enrolAuthenticator(server, await accountOf(admin.email));
    await signInToConsole(agent, server, smtp, admin);

    const plain = new URL((await agent.get(url('/admin/sign-in'))).location ?? '');
    expect(plain.pathname).toBe('/auth');
    expect(plain.searchParams.get('acr_values')).toBe(server.config.acr.multiFactor);
    expect(plain.searchParams.get('max_age')).toBeNull();
    const fresh = new URL((await agent.get(url('/admin/sign-in?fresh=1'))).location ?? '');
    expect(fresh.searchParams.get('acr_values')).toBe(server.config.acr.multiFactor);
    expect(fresh.searchParams.get('max_age')).toBe('0');
    expect(fresh.searchParams.get('login_hint')).toBe(admin.email);
  });

  it('sends an admin whose session is multi-factor but not of the multi-factor class to sign in again', async () => {
    const admin = await newAccount('weak-acr', ['admin']);
    const agent = new UserAgent(server.url);
    await enrolAuthenticator(server, await accountOf(admin.email));
    await signInToConsole(agent, server, smtp, admin);
    expect((await agent.get(url('/admin/users'))).status).toBe(200);
    const confirm = await agent.get(url(`/admin/users/${someUserId}/disable`));

    // What a password and a code by email give: two factors (amr mfa), the email class.
    await editSession(admin.email, (payload) => ({ ...payload, acr: server.config.acr.emailSecondFactor }));
    expect((await sessionOf(admin.email)).amr).toContain('mfa');
    const refused = await agent.get(url('/admin/users'));
    expect(refused.status).toBe(303);
    expect(refused.location).toBe(url('/admin/sign-in'));
    const stale = await agent.post(url(`/admin/users/${someUserId}/disable`), { csrf: formField(confirm.body, 'csrf') });
    expect(stale.status).toBe(401);
    await expectUnchanged();
  });

  it('asks again once the authentication is older than ADMIN_SESSION_MAX_AGE, however busy the admin is: GET → a new sign-in, POST → 401', async () => {
    const admin = await newAccount('max-age', ['admin']);
    const agent = new UserAgent(server.url);
    await enrolAuthenticator(server, await accountOf(admin.email));
    await signInToConsole(agent, server, smtp, admin);
    const confirm = await agent.get(url(`/admin/users/${someUserId}/disable`));
    expect(confirm.status).toBe(200);

    await ageAuthentication(admin.email, server.config.adminSession.maxAgeSeconds + 60);
    const stale = await agent.post(url(`/admin/users/${someUserId}/disable`), { csrf: formField(confirm.body, 'csrf') });
    expect(stale.status).toBe(401);
    expect(stale.body).toContain('Your admin session has ended');
    await expectUnchanged();
    const refused = await agent.get(url('/admin/users'));
    expect(refused.status).toBe(303);
    expect(refused.location).toBe(url('/admin/sign-in?fresh=1'));

    // The console sign-in makes the provider ask for the password and the app again, session or not.
    const landing = await signInToConsole(agent, server, smtp, admin, refused.location ?? '');
    expect(landing.status).toBe(200);
    const renewed = await sessionOf(admin.email);
    expect(renewed.loginTs).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) - 60);
    expect((await agent.get(url('/admin/users'))).status).toBe(200);
  });

  it('asks again after ADMIN_SESSION_IDLE without a console page; console use keeps it going; the activity cookie counts only for its own session', async () => {
    const admin = await newAccount('idle', ['admin']);
    await enrolAuthenticator(server, await accountOf(admin.email));
    const idleSeconds = server.config.adminSession.idleSeconds;

    // Signed in on an ordinary client (password and app: the multi-factor class), console never used.
    const elsewhere = new UserAgent(server.url);
    await signInElsewhere(elsewhere, admin);
    expect((await sessionOf(admin.email)).acr).toBe(server.config.acr.multiFactor);
    await ageAuthentication(admin.email, idleSeconds + 60);
    const idle = await elsewhere.get(url('/admin/users'));
    expect(idle.status).toBe(303);
    expect(idle.location).toBe(url('/admin/sign-in?fresh=1'));
    expect(idle.headers.getSetCookie().some((line) => line.startsWith('admin.activity='))).toBe(false);

    // In the console, the same age of authentication is fine: the last use counts.
    const busy = new UserAgent(server.url);
    await endSessions(admin.email);
    await signInToConsole(busy, server, smtp, admin);
    const used = await busy.get(url('/admin/users'));
    expect(used.status).toBe(200);
    const cookie = used.headers.getSetCookie().find((line) => line.startsWith('admin.activity='));
    expect(cookie).toMatch(/httponly/i);
    expect(cookie).toMatch(/samesite=lax/i);
    expect(cookie).toMatch(/path=\/admin/i);
    expect(used.headers.getSetCookie().some((line) => line.startsWith('admin.activity.sig='))).toBe(true);
    await ageAuthentication(admin.email, idleSeconds + 60);
    expect((await busy.get(url('/admin/users'))).status).toBe(200);

    // The same browser, another session (signed out, then in on the ordinary client): the cookie
    // from the console's earlier session says nothing about this one.
    await endSessions(admin.email);
    await signInElsewhere(busy, admin);
    await ageAuthentication(admin.email, idleSeconds + 60);
    const other = await busy.get(url('/admin/users'));
    expect(other.status).toBe(303);
    expect(other.location).toBe(url('/admin/sign-in?fresh=1'));
  });

  it('an admin without an authenticator app does not get in with a password and a code by email (MFA_EMAIL_FALLBACK on); with the app they do', async () => {
    expect(server.config.mfa.emailFallback).toBe(true);
    const admin = await newAccount('email-only', ['admin']);

    // 1. A session from an ordinary client that requires a second factor: password and email code.
    const agent = new UserAgent(server.url);
    const before = smtp.countFor(admin.email);
    const login = await agent.follow(authorizationUrlFor(server.url, mfaClientId, { code_challenge: pkcePair().challenge }));
    const codePage = await submit(agent, login, '/login', admin);
    expect(pageKind(codePage)).toBe('email-code');
    const consent = await completeEmailSecondFactor(agent, codePage, admin.email, smtp, before);
    expect(pageKind(consent)).toBe('consent');
    const refused = await agent.get(url('/admin/users'));
    expect(refused.status).toBe(303);
    expect(refused.location).toBe(url('/admin/sign-in'));

    // 2. The console's own sign-in: after the password the server asks for an authenticator app
    //    (here: to set one up), never for a code by email; and an email code, were it offered,
    //    does not open the console.
    const fresh = new UserAgent(server.url);
    const consoleLogin = await fresh.follow(url('/admin/sign-in'));
    const second = await submit(fresh, consoleLogin, '/login', admin);
    const offered = pageKind(second);
    if (offered === 'email-code') await completeEmailSecondFactor(fresh, second, admin.email, smtp, before + 1);
    expect((await fresh.get(url('/admin/users'))).status).toBe(303);
    expect(offered).toBe('enrol');

    // 3. With the app: in.
    const withApp = await newAccount('with-app', ['admin']);
    await enrolAuthenticator(server, await accountOf(withApp.email));
    const inside = new UserAgent(server.url);
    const landing = await signInToConsole(inside, server, smtp, withApp);
    expect(landing.status).toBe(200);
    expect((await sessionOf(withApp.email)).acr).toBe(server.config.acr.multiFactor);
    expect((await inside.get(url('/admin/users'))).status).toBe(200);
  });

  it('ends console access when the admin signs out at /session/end', async () => {
    const admin = await newAccount('signout', ['admin']);
    const agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, admin);
    const users = await agent.get(url('/admin/users'));
    expect(users.status).toBe(200);
    // RP-initiated logout with the console's client and its registered post-logout page.
    const signOut = /<a href="([^"]*)">Sign out<\/a>/.exec(users.body)?.[1]?.replace(/&amp;/g, '&') ?? '';
    const signOutUrl = new URL(signOut, server.url);
    expect(signOutUrl.pathname).toBe('/session/end');
    expect(Object.fromEntries(signOutUrl.searchParams)).toEqual({ client_id: 'admin-console', post_logout_redirect_uri: url('/admin/signed-out') });
    const confirm = await agent.get(url(`/admin/users/${someUserId}/disable`));
    expect(confirm.status).toBe(200);

    // "No, stay signed in": back on the console's page, which says so, and the console still works.
    const asked = await agent.get(signOutUrl.toString());
    expect(asked.status).toBe(200);
    const stay = await agent.post(new URL((/<form method="post" action="([^"]+)"/.exec(asked.body)?.[1] ?? '').replace(/&amp;/g, '&'), server.url).toString(), {
      xsrf: formField(asked.body, 'xsrf'),
    });
    expect(stay.status).toBe(303);
    expect(stay.location).toBe(url('/admin/signed-out'));
    const stayed = await agent.get(stay.location ?? '');
    expect(stayed.body).toContain('You are still signed in');
    expect((await agent.get(url('/admin/users'))).status).toBe(200);

    const logout = await agent.get(signOutUrl.toString());
    expect(logout.status).toBe(200);
    const action = /<form method="post" action="([^"]+)"/.exec(logout.body)?.[1];
    expect(action).toBeDefined();
    const confirmed = await agent.post(new URL((action ?? '').replace(/&amp;/g, '&'), server.url).toString(), {
      xsrf: formField(logout.body, 'xsrf'),
      logout: 'yes',
    });
    expect(confirmed.status).toBe(303);
    expect(confirmed.location).toBe(url('/admin/signed-out'));
    const signedOut = await agent.get(confirmed.location ?? '');
    expect(signedOut.status).toBe(200);
    expect(signedOut.body).toContain('You are signed out');
    expect(signedOut.body).toContain('href="/admin/sign-in">Sign in again</a>');

    const after = await agent.get(url('/admin/users'));
    expect(after.status).toBe(303);
    expect(after.location).toBe(url('/admin/sign-in'));
    // A form from before signing out no longer works.
    const stale = await agent.post(url(`/admin/users/${someUserId}/disable`), { csrf: formField(confirm.body, 'csrf') });
    expect(stale.status).toBe(401);
    await expectUnchanged();
  });
});
