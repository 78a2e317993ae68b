/**
 * A person's sessions and connected apps on the console's user page, driven through the pages as
 * an admin would, and checked from the other side: the person's browser (a prompt=none
 * authorization after its session was ended gets login_required) and the relying party
 * (openid-client: a refresh token of a revoked app is refused with invalid_grant, and the next
 * sign-in asks for consent again). Every change is audited with the admin as actor; a POST
 * without this session's CSRF token, or naming a user, session or app that is not there, changes
 * nothing and gets a 4xx page, never a 5xx.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as jose from 'jose';
import * as oidc from 'openid-client';

import type { ClientInput, CreatedClient } from '../../../src/clients/client.service.js';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../../src/oidc/logout-token.js';
import { signInToConsole } from '../../support/admin-console.js';
import { startLogoutReceiver } from '../../support/logout-receiver.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, oauthError, rpFor, signInForTokens } from '../../support/rp.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { within } from '../../support/within.js';
import { UserAgent, formAction, formField } from '../../support/user-agent.js';
import type { Reply } from '../../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';
const APP: ClientInput = {
  name: 'Photo <b>Album</b>',
  redirectUris: [REDIRECT_URI],
  grantTypes: ['authorization_code', 'refresh_token'],
  tokenEndpointAuthMethod: 'client_secret_basic',
  scopes: ['openid', 'email', 'profile', 'offline_access'],
};

let counter = 0;
const uniqueEmail = (label: string) => `access-${label}-${(counter += 1)}@example.test`;

describe('admin console: a user’s sessions and connected apps', () => {
  let server: TestServer;
  let smtp: MailServer;
  let agent: UserAgent;
  let admin: { id: string; email: string };
  let client: CreatedClient;
  let rp: oidc.Configuration;

  const url = (path: string) => `${server.url}${path}`;
  const userPath = (id: string) => `/admin/users/${id}`;

  /** A person with a password, signed in to the app in their own browser (offline access: a refresh token). */
  const personWithApp = async (label: string) => {
    const email = uniqueEmail(label);
    const account = await server.deps.accounts.create({ email, password: PASSWORD, emailVerified: true });
    const browser = new UserAgent(server.url);
    const { tokens } = await signInForTokens(rp, browser, { email, password: PASSWORD }, { scope: 'openid email offline_access', prompt: 'consent' });
    expect(tokens.refresh_token).toBeTruthy();
    return { id: account.id, email, browser, refreshToken: tokens.refresh_token ?? '' };
  };

  /** What the person's browser gets from a prompt=none authorization: the callback's parameters. */
  const silentAuthorization = async (browser: UserAgent) => {
    const started = await authorizationRequest(rp, { prompt: 'none', scope: 'openid email' });
    return callbackParams(await browser.follow(started.url.toString()));
  };

  const postFrom = (page: Reply, actionEnd: string, fields: Record<string, string> = {}) =>
    agent.post(formAction(page.body, actionEnd), { csrf: formField(page.body, 'csrf'), ...fields });

  const eventsFor = async (action: string, targetId: string) => (await server.deps.audit.list({ action, target: targetId }, { limit: 20 })).events;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('console_user_access', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    const email = uniqueEmail('admin');
    const account = await server.deps.accounts.create({ email, password: PASSWORD, roles: ['admin'], emailVerified: true });
    admin = { id: account.id, email };
    agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, { email, password: PASSWORD });
    client = await server.deps.clients.create(APP);
    rp = await rpFor(server, client);
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    await smtp.close();
  });

  it('lists the person’s sessions (where, when, which apps) and connected apps (scopes, since), escaped', async () => {
    const person = await personWithApp('listed');
    const [session] = await server.deps.access.listSessions(person.id);
    expect(session).toBeDefined();

    const page = await agent.get(url(userPath(person.id)));
    expect(page.status).toBe(200);
    const sessions = page.body.slice(page.body.indexOf('id="sessions-heading"'), page.body.indexOf('id="apps-heading"'));
    expect(sessions).toContain('<code>127.0.0.1</code>');
    expect(sessions).toContain(session?.device ?? 'none');
    expect(sessions).toMatch(/data-label="Started">\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
    expect(sessions).toMatch(/data-label="Last seen">\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
    expect(sessions).toContain('Photo &lt;b&gt;Album&lt;/b&gt;');
    expect(sessions).toContain(`href="${userPath(person.id)}/sessions/${session?.uid}/end"`);
    expect(sessions).toContain(`href="${userPath(person.id)}/sessions/end-all"`);
    // Never the session's id (the value of the browser's cookie).
    const cookieSessionId = (await server.connection.db!.collection('oidc_session').findOne({ uid: session?.uid }))?._id;
    expect(typeof cookieSessionId).toBe('string');
    expect(page.body).not.toContain(String(cookieSessionId));

    const apps = page.body.slice(page.body.indexOf('id="apps-heading"'), page.body.indexOf('id="actions-heading"'));
    expect(apps).toContain('Photo &lt;b&gt;Album&lt;/b&gt;');
    expect(apps).not.toContain('<b>Album</b>');
    expect(apps).toContain(`<code>${client.clientId}</code>`);
    for (const scope of ['openid', 'email', 'offline_access']) expect(apps).toContain(`<span class="tag">${scope}</span>`);
    expect(apps).toContain(`href="${userPath(person.id)}/apps/${client.clientId}/revoke"`);
    // The built-in pages' own consent is not listed.
    expect(apps).not.toContain('admin-console');

    // A person who never signed in: nothing to list, no end-all button.
    const quiet = await server.deps.accounts.create({ email: uniqueEmail('quiet'), password: PASSWORD });
    const empty = await agent.get(url(userPath(quiet.id)));
    expect(empty.status).toBe(200);
    expect(empty.body).toContain('Not signed in anywhere.');
    expect(empty.body).toContain('No app holds this person’s consent.');
    expect(empty.body).not.toContain('/sessions/end-all');
  });

  it('revoking an app: its refresh token is refused (invalid_grant), the next sign-in asks for consent, audited', async () => {
    const person = await personWithApp('revoke');
    // Works before.
    const refreshed = await oidc.refreshTokenGrant(rp, person.refreshToken);
    expect(refreshed.access_token).toBeTruthy();
    const refreshToken = refreshed.refresh_token ?? person.refreshToken;

    const confirm = await agent.get(url(`${userPath(person.id)}/apps/${client.clientId}/revoke`));
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('Revoke Photo &lt;b&gt;Album&lt;/b&gt;’s access?');
    // The confirmation page changes nothing.
    expect(await server.deps.access.listApps(person.id)).toHaveLength(1);

    const done = await postFrom(confirm, `/apps/${client.clientId}/revoke`);
    expect(done.status).toBe(303);
    expect(done.location).toBe(url(`${userPath(person.id)}?notice=app-revoked`));
    const shown = await agent.get(done.location ?? '');
    expect(shown.body).toContain('The app’s access was revoked');
    expect(shown.body).toContain('No app holds this person’s consent.');

    expect(await oauthError(oidc.refreshTokenGrant(rp, refreshToken))).toBe('invalid_grant');
    expect(await server.deps.access.listApps(person.id)).toEqual([]);
    // The session is still there: the browser passes the login, and the consent page asks again.
    const started = await authorizationRequest(rp, { scope: 'openid email' });
    const next = await person.browser.follow(started.url.toString());
    expect(next.status).toBe(200);
    expect(next.body).toContain('/confirm"');
    expect(next.body).not.toContain('/login"');

    const events = await eventsFor('grant.revoked', person.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      outcome: 'success',
      actor: { type: 'account', id: admin.id, label: admin.email },
      target: { type: 'account', id: person.id, label: person.email },
      clientId: client.clientId,
      details: { clientId: client.clientId },
    });

    // Again: nothing left to revoke, a clear 404 page.
    const again = await postFrom(confirm, `/apps/${client.clientId}/revoke`);
    expect(again.status).toBe(404);
    expect(again.body).toContain('has not connected this app');
    expect(await eventsFor('grant.revoked', person.id)).toHaveLength(1);
  });

  it('ending a session: that browser gets login_required at prompt=none (no SSO), other sessions stay, audited', async () => {
    const person = await personWithApp('end-one');
    const other = new UserAgent(server.url);
    await signInForTokens(rp, other, { email: person.email, password: PASSWORD });
    expect((await silentAuthorization(person.browser)).get('code')).toBeTruthy();
    const sessions = await server.deps.access.listSessions(person.id);
    expect(sessions).toHaveLength(2);
    // The first person browser's session: the older one (the list is most recent first).
    const target = sessions.at(-1);
    expect(target).toBeDefined();

    const confirm = await agent.get(url(`${userPath(person.id)}/sessions/${target?.uid}/end`));
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('End this session?');
    expect(confirm.body).toContain('127.0.0.1');
    expect(await server.deps.access.listSessions(person.id)).toHaveLength(2);

    const done = await postFrom(confirm, `/sessions/${target?.uid}/end`);
    expect(done.status).toBe(303);
    expect(done.location).toBe(url(`${userPath(person.id)}?notice=session-ended`));

    const remaining = await server.deps.access.listSessions(person.id);
    expect(remaining.map((s) => s.uid)).toEqual(sessions.slice(0, 1).map((s) => s.uid));
    // Whichever browser held the ended session gets login_required; the other still passes.
    const results = await Promise.all([silentAuthorization(person.browser), silentAuthorization(other)]);
    expect(results.map((params) => params.get('error') ?? 'code').sort()).toEqual(['code', 'login_required']);

    const events = await eventsFor('session.revoked', person.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      outcome: 'success',
      actor: { type: 'account', id: admin.id, label: admin.email },
      target: { type: 'account', id: person.id },
      details: { sessionUid: target?.uid },
    });

    // The same session again: a clear 404, nothing recorded.
    const again = await postFrom(confirm, `/sessions/${target?.uid}/end`);
    expect(again.status).toBe(404);
    expect(again.body).toContain('no such session');
    expect((await agent.get(url(`${userPath(person.id)}/sessions/${target?.uid}/end`))).status).toBe(404);
    expect(await eventsFor('session.revoked', person.id)).toHaveLength(1);
  });

  it('ending all sessions signs every browser out; with none left it says so and records nothing', async () => {
    const person = await personWithApp('end-all');
    const other = new UserAgent(server.url);
    await signInForTokens(rp, other, { email: person.email, password: PASSWORD });
    const before = await server.deps.access.listSessions(person.id);
    expect(before).toHaveLength(2);

    const confirm = await agent.get(url(`${userPath(person.id)}/sessions/end-all`));
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('2 sessions now');
    const done = await postFrom(confirm, '/sessions/end-all');
    expect(done.status).toBe(303);
    expect(done.location).toBe(url(`${userPath(person.id)}?notice=sessions-ended`));
    expect(await server.deps.access.listSessions(person.id)).toEqual([]);
    for (const browser of [person.browser, other]) expect((await silentAuthorization(browser)).get('error')).toBe('login_required');

    const events = await eventsFor('session.revoked', person.id);
    expect(events).toHaveLength(1);
    expect(events[0]?.actor).toMatchObject({ type: 'account', id: admin.id });
    expect(events[0]?.details).toMatchObject({ all: true, ended: 2 });
    expect([...((events[0]?.details?.sessionUids as string[]) ?? [])].sort()).toEqual(before.map((s) => s.uid).sort());

    const none = await postFrom(confirm, '/sessions/end-all');
    expect(none.status).toBe(303);
    expect(none.location).toBe(url(`${userPath(person.id)}?notice=no-sessions`));
    expect(await eventsFor('session.revoked', person.id)).toHaveLength(1);
  });

  it('refuses a POST without this session’s CSRF token, and changes nothing', async () => {
    const person = await personWithApp('csrf');
    const [session] = await server.deps.access.listSessions(person.id);
    const paths = [`/sessions/${session?.uid}/end`, '/sessions/end-all', `/apps/${client.clientId}/revoke`];
    for (const path of paths) {
      for (const form of [{}, { csrf: 'made-up' }] as Record<string, string>[]) {
        const reply = await agent.post(url(`${userPath(person.id)}${path}`), form);
        expect(reply.status).toBe(403);
        expect(reply.body).toContain('The form has expired');
      }
    }
    // Another browser (not signed in to the console): sent to no action at all.
    const stranger = await new UserAgent(server.url).post(url(`${userPath(person.id)}/sessions/end-all`), {});
    expect(stranger.status).toBe(401);
    expect(await server.deps.access.listSessions(person.id)).toHaveLength(1);
    expect(await server.deps.access.listApps(person.id)).toHaveLength(1);
    expect((await silentAuthorization(person.browser)).get('code')).toBeTruthy();
    expect(await eventsFor('session.revoked', person.id)).toEqual([]);
    expect(await eventsFor('grant.revoked', person.id)).toEqual([]);
  });

  it('an unknown user, session or app is a clear 404 page (never a 5xx), and another person’s session cannot be ended', async () => {
    const person = await personWithApp('unknown');
    const stranger = await personWithApp('stranger');
    const [strangerSession] = await server.deps.access.listSessions(stranger.id);
    const page = await agent.get(url(userPath(person.id)));
    const csrf = formField(page.body, 'csrf');

    const cases: [string, string][] = [
      [`${userPath('no-such-user')}/sessions/end-all`, 'No user with this id'],
      [`${userPath('no-such-user')}/apps/${client.clientId}/revoke`, 'No user with this id'],
      [`${userPath('no-such-user')}/sessions/abc/end`, 'No user with this id'],
      [`${userPath(person.id)}/sessions/no-such-session/end`, 'no such session'],
      [`${userPath(person.id)}/sessions/${'x'.repeat(300)}/end`, 'no such session'],
      [`${userPath(person.id)}/sessions/${strangerSession?.uid}/end`, 'no such session'],
      [`${userPath(person.id)}/apps/no-such-client/revoke`, 'has not connected this app'],
      [`${userPath(person.id)}/apps/${encodeURIComponent('$bad id')}/revoke`, 'has not connected this app'],
      // The built-in console's consent is not listed, so not revocable here.
      [`${userPath(admin.id)}/apps/admin-console/revoke`, 'has not connected this app'],
    ];
    for (const [path, message] of cases) {
      const shown = await agent.get(url(path));
      expect({ path, status: shown.status }).toEqual({ path, status: 404 });
      expect(shown.body).toContain(message);
      const posted = await agent.post(url(path), { csrf });
      expect({ path, status: posted.status }).toEqual({ path, status: 404 });
      expect(posted.body).toContain(message);
    }
    expect(await server.deps.access.listSessions(stranger.id)).toHaveLength(1);
    expect(await server.deps.access.listApps(stranger.id)).toHaveLength(1);
    expect((await silentAuthorization(stranger.browser)).get('code')).toBeTruthy();
    expect(await server.deps.access.listApps(admin.id, { includeFirstParty: true })).not.toEqual([]);
    expect(await eventsFor('session.revoked', person.id)).toEqual([]);
    expect(await eventsFor('session.revoked', stranger.id)).toEqual([]);
  });

  it('marks the admin’s own browser, and warns before ending it', async () => {
    const page = await agent.get(url(userPath(admin.id)));
    expect(page.status).toBe(200);
    expect(page.body).toContain('This browser (you)');
    const [own] = await server.deps.access.listSessions(admin.id);
    const confirm = await agent.get(url(`${userPath(admin.id)}/sessions/${own?.uid}/end`));
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('you will be signed out of the console');
  });

  it('ending a session tells the apps signed in through it (back-channel logout), with that session’s sid', async () => {
    const receiver = await startLogoutReceiver();
    try {
      const logoutAware = await server.deps.clients.create({ ...APP, name: 'Logout aware', backchannelLogoutUri: receiver.url, backchannelLogoutSessionRequired: true });
      const email = uniqueEmail('backchannel');
      const account = await server.deps.accounts.create({ email, password: PASSWORD, emailVerified: true });
      const { tokens } = await signInForTokens(await rpFor(server, logoutAware), new UserAgent(server.url), { email, password: PASSWORD });
      const [session] = await server.deps.access.listSessions(account.id);
      const confirm = await agent.get(url(`${userPath(account.id)}/sessions/${session?.uid}/end`));
      const done = await postFrom(confirm, `/sessions/${session?.uid}/end`);
      expect(done.status).toBe(303);

      await within(5000, async () => receiver.received.length === 1);
      const token = receiver.received[0]?.token ?? '';
      const { payload } = await jose.jwtVerify(token, jose.createRemoteJWKSet(new URL(url('/jwks'))), { typ: 'logout+jwt' });
      expect(payload).toMatchObject({ iss: server.url, aud: logoutAware.clientId, sub: account.id, sid: tokens.claims()?.sid, events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } });
    } finally {
      await receiver.close();
    }
  });
});
