/**
 * "Set a new password at next sign-in", as a person and a relying party (openid-client) see it:
 * the new-password page comes after every factor, before the provider hears `login`; nothing
 * skips it; bad input is a 4xx with the message next to the field; the new password works and
 * the old one does not.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import argon2 from 'argon2';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, redeem } from '../support/rp.js';
import type { Started, Tokens } from '../support/rp.js';
import { pageKind, submit } from '../support/second-factor.js';
import { createPlainAndMfaClients, startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const OLD_PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a brand new passphrase here';

let count = 0;
const uniqueEmail = (label: string) => `reset-${label}-${(count += 1)}@example.com`;

const isNewPasswordPage = (reply: Reply) => reply.status === 200 && /action="\/interaction\/[^"]+\/new-password"/.test(reply.body);

describe('password reset at next sign-in', () => {
  let server: TestServer;
  let smtp: MailServer;
  let client: CreatedClient;
  let rp: oidc.Configuration;
  let mfaRp: oidc.Configuration;

  /** A user whose next sign-in must set a new password. */
  const userNeedingReset = async (label: string) => {
    const email = uniqueEmail(label);
    const user = await server.deps.userAdmin.create({ email, password: OLD_PASSWORD });
    await server.deps.userAdmin.requirePasswordReset(user.id);
    return { id: user.id, email };
  };

  const loginWith = (agent: UserAgent, login: Reply, email: string, password: string) => {
    expect(pageKind(login)).toBe('login');
    return submit(agent, login, '/login', { email, password });
  };

  /** Posts the new-password form found on `page`, following a refusal's 303 to the page (post/redirect/get). */
  const postNewPassword = (agent: UserAgent, page: Reply, fields: Record<string, string>) =>
    agent.submit(formAction(page.body, '/new-password'), { csrf: formField(page.body, 'csrf'), ...fields });

  const toTokens = async (agent: UserAgent, rpConfig: oidc.Configuration, started: Started, reply: Reply): Promise<Tokens> => {
    let callback = reply;
    if (!reply.location?.startsWith(REDIRECT_URI)) {
      expect(pageKind(reply)).toBe('consent');
      callback = await submit(agent, reply, '/confirm');
    }
    expect(callbackParams(callback).get('code')).toBeTruthy();
    return redeem(rpConfig, started, callback);
  };

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('password_reset'));
    ({ client, rp, mfaRp } = await createPlainAndMfaClients(server));
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  it('after the password, asks for a new one; refuses bad ones with a 400; then signs in with tokens', async () => {
    const user = await userNeedingReset('pwd');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const login = await agent.follow(started.url.toString());
    const page = await loginWith(agent, login, user.email, OLD_PASSWORD);
    expect(isNewPasswordPage(page)).toBe(true);
    expect(page.body).toContain(user.email);
    // Two fields a password manager recognises, labelled, with the minimum length stated.
    expect(page.body.match(/autocomplete="new-password"/g)).toHaveLength(2);
    expect(page.body).toMatch(/<label for="password">/);
    expect(page.body).toMatch(/<label for="confirm">/);
    // The hint states the policy's real rules.
    const { minLength, maxLength } = server.deps.passwordPolicy;
    expect(page.body).toContain(`From ${minLength} to ${maxLength} characters`);
    // No inline script (the password toggle is a file of its own).
    expect(page.body).not.toMatch(/<script(?![^>]*\ssrc=)/);
    // Reloading the page shows the same step.
    const uid = /\/interaction\/([^/"]+)\/new-password/.exec(page.body)?.[1];
    const reloaded = await agent.get(`${server.url}/interaction/${uid}`);
    expect(isNewPasswordPage(reloaded)).toBe(true);

    const mismatch = await postNewPassword(agent, page, { password: NEW_PASSWORD, confirm: `${NEW_PASSWORD}!` });
    expect(mismatch.status).toBe(400);
    expect(isNewPasswordPage({ ...mismatch, status: 200 })).toBe(true);
    expect(mismatch.body).toMatch(/id="confirm-error"[^>]*>\s*<p>The two passwords are not the same/);
    expect(mismatch.body).not.toContain(NEW_PASSWORD);

    const short = await postNewPassword(agent, mismatch, { password: 'short', confirm: 'short' });
    expect(short.status).toBe(400);
    expect(short.body).toMatch(new RegExp(`id="password-error"[^>]*>\\s*<p>Use at least ${minLength} characters`));
    // The redirect names the refusal, never the password.
    expect(short.posted.location).toMatch(/\?error=password_refused$/);

    // The password policy: a common password, one built from the email, both refused with the reason by the field.
    const common = await postNewPassword(agent, short, { password: 'password1234', confirm: 'password1234' });
    expect(common.status).toBe(400);
    expect(common.body).toMatch(/id="password-error"[^>]*>\s*<p>This password is on lists of common or leaked passwords/);
    const local = user.email.split('@')[0] ?? '';
    const fromEmail = await postNewPassword(agent, common, { password: `${local}${local}`, confirm: `${local}${local}` });
    expect(fromEmail.status).toBe(400);
    expect(fromEmail.body).toMatch(/id="password-error"[^>]*>\s*<p>Do not build your password from your email address/);
    // A forged refusal code shows nothing: the message comes only from what the POST kept.
    const forged = await agent.get(`${server.url}/interaction/${uid}?error=password_refused_x`);
    expect(forged.status).toBe(200);
    expect(forged.body).not.toContain('id="password-error"');

    const same = await postNewPassword(agent, short, { password: OLD_PASSWORD, confirm: OLD_PASSWORD });
    expect(same.status).toBe(400);
    expect(same.body).toMatch(/different from your current one/);

    const next = await postNewPassword(agent, same, { password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(next.posted.status).toBe(303);
    const tokens = await toTokens(agent, rp, started, await agent.follow(next.posted.location ?? ''));
    expect(tokens.claims()).toMatchObject({ sub: user.id, amr: ['pwd'] });

    // The flag is cleared, the old password no longer works and the new one does.
    expect((await server.deps.accounts.findById(user.id))?.passwordResetRequired).toBe(false);
    expect((await server.deps.accounts.authenticate(user.email, OLD_PASSWORD)).ok).toBe(false);
    expect((await server.deps.accounts.authenticate(user.email, NEW_PASSWORD)).ok).toBe(true);

    // Audited as the person's own change, without the password.
    const events = (await server.deps.audit.list({ target: user.id, action: 'user.password_changed' }, { limit: 10 })).events;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actor: { type: 'account', id: user.id, label: user.email }, clientId: client.clientId });
    expect(JSON.stringify(events)).not.toContain(NEW_PASSWORD);

    // A later sign-in with the new password goes straight through.
    const again = new UserAgent(server.url);
    const second = await authorizationRequest(rp);
    const afterLogin = await loginWith(again, await again.follow(second.url.toString()), user.email, NEW_PASSWORD);
    expect(isNewPasswordPage(afterLogin)).toBe(false);
    expect((await toTokens(again, rp, second, afterLogin)).claims()?.sub).toBe(user.id);
  }, 30_000);

  it('when a second factor is required, comes after it, and the ID token still says both factors', async () => {
    const user = await userNeedingReset('mfa');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(mfaRp);
    const before = smtp.countFor(user.email);
    const codePage = await loginWith(agent, await agent.follow(started.url.toString()), user.email, OLD_PASSWORD);
    expect(pageKind(codePage)).toBe('email-code');
    expect(isNewPasswordPage(codePage)).toBe(false);
    const code = (await waitForCodeMail(smtp, user.email, { after: before })).code;
    const page = await submit(agent, codePage, '/second-factor/email', { code });
    expect(isNewPasswordPage(page)).toBe(true);

    const next = await postNewPassword(agent, page, { password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(next.posted.status).toBe(303);
    const tokens = await toTokens(agent, mfaRp, started, await agent.follow(next.posted.location ?? ''));
    expect(tokens.claims()).toMatchObject({ sub: user.id, amr: ['pwd', 'email', 'mfa'], acr: server.config.acr.emailSecondFactor });
    expect((await server.deps.accounts.authenticate(user.email, NEW_PASSWORD)).ok).toBe(true);
  }, 30_000);

  it('nothing skips the step: not another form, not resuming the authorization', async () => {
    const user = await userNeedingReset('skip');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const page = await loginWith(agent, await agent.follow(started.url.toString()), user.email, OLD_PASSWORD);
    expect(isNewPasswordPage(page)).toBe(true);
    const csrf = formField(page.body, 'csrf');
    const base = formAction(page.body, '/new-password').replace(/\/new-password$/, '');

    // The password form again, a second factor nobody asked for, the recovery-codes "continue".
    for (const [path, fields] of [
      ['/login', { email: user.email, password: OLD_PASSWORD }],
      ['/second-factor/password', { password: OLD_PASSWORD }],
      ['/second-factor/continue', {}],
    ] as const) {
      const reply = await agent.post(`${base}${path}`, { csrf, ...fields });
      expect(reply.status).toBe(400);
      expect(reply.location).toBeUndefined();
    }

    // Resuming the authorization before the step is done signs no one in: back to a sign-in page.
    const uid = base.split('/').pop();
    const resumed = await agent.follow(`${server.url}/auth/${uid}`);
    expect(resumed.location?.startsWith(REDIRECT_URI) ?? false).toBe(false);
    expect(pageKind(resumed)).toBe('login');

    // The flag is untouched, and the old password still stands until a new one is set.
    expect((await server.deps.accounts.findById(user.id))?.passwordResetRequired).toBe(true);
    expect((await server.deps.accounts.authenticate(user.email, OLD_PASSWORD)).ok).toBe(true);

    // Starting over still ends on the new-password page.
    const fresh = new UserAgent(server.url);
    const again = await loginWith(fresh, await fresh.follow((await authorizationRequest(rp)).url.toString()), user.email, OLD_PASSWORD);
    expect(isNewPasswordPage(again)).toBe(true);
  }, 30_000);

  it('stores the NFKC form of the new password (what any keyboard types for it signs in)', async () => {
    const user = await userNeedingReset('nfkc');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const page = await loginWith(agent, await agent.follow(started.url.toString()), user.email, OLD_PASSWORD);
    expect(isNewPasswordPage(page)).toBe(true);
    // Fullwidth letters and a ligature: NFKC turns them into plain ones.
    const typed = 'ｖｅｌｖｅｔ ﬁsh lantern orbit';
    const normalised = typed.normalize('NFKC');
    expect(normalised).not.toBe(typed);
    const next = await postNewPassword(agent, page, { password: typed, confirm: normalised });
    expect(next.posted.status).toBe(303);
    const stored = await server.deps.db.collection<{ _id: string; passwordHash?: string }>('accounts').findOne({ _id: user.id });
    expect(await argon2.verify(stored?.passwordHash ?? '', normalised)).toBe(true);
    expect((await server.deps.accounts.authenticate(user.email, normalised)).ok).toBe(true);
  }, 30_000);

  it('bad input is a 4xx, never a 5xx; a wrong or missing CSRF token is a 403', async () => {
    const user = await userNeedingReset('bad');
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const page = await loginWith(agent, await agent.follow(started.url.toString()), user.email, OLD_PASSWORD);
    expect(isNewPasswordPage(page)).toBe(true);
    const action = formAction(page.body, '/new-password');
    const csrf = formField(page.body, 'csrf');

    expect((await agent.post(action, { csrf: 'not-the-token', password: NEW_PASSWORD, confirm: NEW_PASSWORD })).status).toBe(403);
    expect((await agent.post(action, { password: NEW_PASSWORD, confirm: NEW_PASSWORD })).status).toBe(403);

    const long = 'x'.repeat(1025);
    for (const body of [
      `csrf=${encodeURIComponent(csrf)}`,
      `csrf=${encodeURIComponent(csrf)}&password=${encodeURIComponent(NEW_PASSWORD)}`,
      `csrf=${encodeURIComponent(csrf)}&password=${long}&confirm=${long}`,
      `csrf=${encodeURIComponent(csrf)}&password=a%00bcdefghij&confirm=a%00bcdefghij`,
      `csrf=${encodeURIComponent(csrf)}&password=one&password=two&confirm=one`,
      `csrf=${encodeURIComponent(csrf)}&password[x]=y&confirm=y`,
    ]) {
      const posted = await agent.request(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      // A refused form redirects to its page (post/redirect/get), which answers with the 4xx.
      const reply = posted.status === 303 && posted.location ? await agent.get(posted.location) : posted;
      expect(reply.status).toBeGreaterThanOrEqual(400);
      expect(reply.status).toBeLessThan(500);
    }
    // JSON instead of a form.
    const json = await agent.request(action, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"password":1}' });
    expect(json.status).toBeGreaterThanOrEqual(400);
    expect(json.status).toBeLessThan(500);

    // Still on the step, and the form still works.
    expect((await server.deps.accounts.findById(user.id))?.passwordResetRequired).toBe(true);
    const next = await postNewPassword(agent, page, { password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(next.posted.status).toBe(303);
    await toTokens(agent, rp, started, await agent.follow(next.posted.location ?? ''));
    const logs = server.logs.join('\n');
    expect(logs).not.toContain(NEW_PASSWORD);
    expect(logs).not.toContain(OLD_PASSWORD);
  }, 30_000);
});
