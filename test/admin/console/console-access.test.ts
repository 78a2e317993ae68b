/**
 * Who reaches the admin console: nobody without a session (GET → sign-in, POST → 401), nobody
 * without the admin role (403 page), no admin without a second factor (a step-up asks for that
 * factor only), and nobody after signing out at /session/end.
 *
 * The server runs with MFA_REQUIRED_FOR_ADMINS=false so that an admin can hold a password-only
 * session from an ordinary client; the console's own client still requires a second factor.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { completeEmailSecondFactor, CONSOLE_LANDING, signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../../support/rp.js';
import { pageKind } from '../../support/second-factor.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formField, signInThroughPages } from '../../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';

let counter = 0;
const uniqueEmail = (label: string) => `console-access-${label}-${(counter += 1)}@example.test`;

describe('admin console: access', () => {
  let server: TestServer;
  let smtp: MailServer;
  let plainClientId: string;
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

  it('asks an admin with a password-only session for the second factor only (step-up) before the console', async () => {
    const admin = await newAccount('stepup', ['admin']);
    const agent = new UserAgent(server.url);

    // Signed in elsewhere: a plain client, password only (admins need no second factor on this server).
    const left = await signInThroughPages(agent, authorizationUrlFor(server.url, plainClientId, { code_challenge: pkcePair().challenge }), admin, {
      consent: 'allow',
    });
    expect(left.location?.startsWith(REDIRECT_URI)).toBe(true);
    expect(new URL(left.location ?? '').searchParams.get('code')).toEqual(expect.any(String));

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
    expect(pageKind(stepUp)).toBe('email-code');
    expect(stepUp.body).not.toMatch(/type="password"/);
    const landed = await completeEmailSecondFactor(agent, stepUp, admin.email, smtp, before);
    expect(landed.url).toBe(url(CONSOLE_LANDING));

    const users = await agent.get(url('/admin/users'));
    expect(users.status).toBe(200);
    expect(users.body).toContain(admin.email);
  });

  it('ends console access when the admin signs out at /session/end', async () => {
    const admin = await newAccount('signout', ['admin']);
    const agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, admin);
    const users = await agent.get(url('/admin/users'));
    expect(users.status).toBe(200);
    expect(users.body).toContain('href="/session/end"');
    const confirm = await agent.get(url(`/admin/users/${someUserId}/disable`));
    expect(confirm.status).toBe(200);

    const logout = await agent.get(url('/session/end'));
    expect(logout.status).toBe(200);
    const action = /<form method="post" action="([^"]+)"/.exec(logout.body)?.[1];
    expect(action).toBeDefined();
    const confirmed = await agent.post(new URL((action ?? '').replace(/&amp;/g, '&'), server.url).toString(), {
      xsrf: formField(logout.body, 'xsrf'),
      logout: 'yes',
    });
    expect(confirmed.status).toBe(303);

    const after = await agent.get(url('/admin/users'));
    expect(after.status).toBe(303);
    expect(after.location).toBe(url('/admin/sign-in'));
    // A form from before signing out no longer works.
    const stale = await agent.post(url(`/admin/users/${someUserId}/disable`), { csrf: formField(confirm.body, 'csrf') });
    expect(stale.status).toBe(401);
    await expectUnchanged();
  });
});
