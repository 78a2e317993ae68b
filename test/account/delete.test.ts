import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { AuditEvent } from '../../src/audit/audit.service.js';
import { OUTBOX_COLLECTION } from '../../src/mail/outbox.service.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import type { MailServer } from '../support/mail-server.js';
import { oauthError, userinfoStatus } from '../support/rp.js';
import { submit } from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';
import { PASSWORD, expectClientError, expectFieldMarked, harness, inputTag } from './account-changes.harness.js';

/**
 * Deleting one's own account (/account/delete): the typed confirmation, a recent authentication,
 * CSRF; then, checked from outside, everything is gone: this browser and the others are signed
 * out, the address signs in exactly like one nobody has, the apps' tokens are refused at userinfo,
 * introspection and refresh, the audit log keeps ids only, and the address gets a last notice.
 */

describe('/account/delete', () => {
  let server: TestServer;
  let smtp: MailServer;
  const h = harness(() => ({ server, smtp }));
  const { url } = h;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('account_delete'));
  });
  afterAll(() => stopMailingServer({ server, smtp }));

  /** The login page's answer to a password sign-in for `email`, with what differs by address or token taken out. */
  async function loginAnswer(email: string): Promise<{ status: number; location: string | undefined; page: string }> {
    const agent = new UserAgent(server.url);
    const login = await agent.follow(url('/account/security'));
    const posted = await agent.post(new URL(/action="([^"]*\/login)"/.exec(login.body)?.[1] ?? '', server.url).toString(), {
      csrf: formField(login.body, 'csrf'),
      email,
      password: PASSWORD,
    });
    const page = posted.location ? await agent.get(posted.location) : posted;
    return {
      status: page.status,
      location: posted.location?.replace(/\/interaction\/[^/?]+/, '/interaction/UID'),
      page: page.body.replaceAll(email, 'EMAIL').replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID').replace(/value="[^"]*"/g, ''),
    };
  }

  it('deletes everything after the typed confirmation: signed out everywhere, tokens refused, sign-in as for an unknown address, notice, audit without the person', async () => {
    const p = await h.newPerson('leaver');
    const rp = await h.relyingParty();
    const tokens = await h.tokensFor(rp, p);
    const { agent, page } = await h.signIn(p, '/account/delete');
    const other = await h.signIn(p, '/account/security');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Delete your account');
    expect(page.body).toContain(`Type <strong>${p.email}</strong> exactly as shown.`);
    expect(inputTag(page.body, 'confirm')).toContain('autocomplete="off"');
    expect(page.body).toMatch(/<label for="confirm">To confirm, type your email address<\/label>/);

    for (const [confirm, message] of [
      ['', 'Type your email address to confirm.'],
      ['DELETE', /not your email address/],
      [`x${p.email}`, /not your email address/],
      ['y'.repeat(5000), /not your email address/],
    ] as const) {
      const refused = await agent.post(url('/account/delete'), { csrf: formField(page.body, 'csrf'), confirm });
      expectClientError(refused, 400);
      expectFieldMarked(refused.body, 'confirm', message);
    }
    expect(await server.deps.accounts.findById(p.id)).toBeDefined();

    const mails = smtp.countFor(p.email);
    const deleted = await agent.post(url('/account/delete'), { csrf: formField(page.body, 'csrf'), confirm: `  ${p.email.toUpperCase()} ` });
    expect(deleted.status).toBe(303);
    expect(deleted.location).toBe(url('/account/deleted'));
    const done = await agent.get(deleted.location ?? '');
    expect(done.status).toBe(200);
    expect(done.body).toContain('Your account is deleted');
    expect(done.headers.get('cache-control')).toContain('no-store');
    const notice = await smtp.waitForMail(p.email, { after: mails });
    expect(notice.subject).toMatch(/account was deleted/);

    // Signed out here and everywhere; the account is gone.
    expect(await h.hasSession(agent)).toBe(false);
    expect(await h.hasSession(other.agent)).toBe(false);
    expect(await server.deps.accounts.findById(p.id)).toBeUndefined();
    // The address signs in exactly as one that never had an account.
    expect(await loginAnswer(p.email)).toEqual(await loginAnswer(`never-${p.email}`));
    // The app's tokens are refused everywhere.
    expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(401);
    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).toBe(false);
    expect(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token ?? ''))).toBe('invalid_grant');
    for (const model of ['Session', 'Grant', 'AccessToken', 'RefreshToken']) {
      expect({ model, left: await server.deps.db.collection(collectionName(model)).countDocuments({ accountId: p.id }) }).toEqual({ model, left: 0 });
    }
    // Only the deletion notice waits for the address in the outbox.
    expect(await server.deps.db.collection(OUTBOX_COLLECTION).countDocuments({ to: p.email })).toBe(1);

    // The audit log: the account's events keep the id, never the address, nor the person's IP or browser.
    await server.deps.audit.flush();
    const byId = async (filter: { actor?: string; target?: string }) => (await server.deps.audit.list(filter, { limit: 500 })).events;
    const events: AuditEvent[] = [...(await byId({ actor: p.id })), ...(await byId({ target: p.id }))];
    expect(events.length).toBeGreaterThan(3);
    for (const event of events) expect(JSON.stringify(event)).not.toContain(p.email);
    for (const event of events.filter((e) => e.actor.id === p.id || e.actor.type === 'anonymous')) {
      expect({ action: event.action, ip: event.ip, userAgent: event.userAgent }).toEqual({ action: event.action, ip: undefined, userAgent: undefined });
    }
    const [last] = await byId({ target: p.id });
    expect(last).toMatchObject({ action: 'user.deleted', outcome: 'success', actor: { type: 'account', id: p.id }, target: { type: 'account', id: p.id }, details: { by: 'self' } });
    expect(last?.actor.label).toBeUndefined();
    expect(last?.target?.label).toBeUndefined();

    // A new account with the address starts empty.
    const again = await server.deps.accounts.create({ email: p.email, password: PASSWORD });
    expect(again.id).not.toBe(p.id);
  }, 60_000);

  it('an administrator cannot delete their own account here: 403, nothing deleted', async () => {
    const admin = await h.newPerson('admin');
    // Made an administrator once signed in (an administrator's own sign-in needs an app first).
    const { agent } = await h.signIn(admin, '/account/delete');
    await server.deps.accounts.update(admin.id, { roles: ['admin'] });
    const page: Reply = await agent.get(url('/account/delete'));
    expect(page.body).toContain('only another administrator can delete your account');
    expect(page.body).not.toContain('name="confirm"');
    const refused = await agent.post(url('/account/delete'), { csrf: formField(page.body, 'csrf'), confirm: admin.email });
    expectClientError(refused, 403);
    expect(await server.deps.accounts.findById(admin.id)).toBeDefined();
  });

  it('a stale authentication: the POST deletes nothing and asks for a new sign-in; afterwards the deletion goes through', async () => {
    const p = await h.newPerson('stale');
    const { agent, page } = await h.signIn(p, '/account/delete');
    await h.ageAuthentication(p.id, server.config.recentAuthMaxAgeSeconds + 30);
    const refused = await agent.post(url('/account/delete'), { csrf: formField(page.body, 'csrf'), confirm: p.email });
    expect(await server.deps.accounts.findById(p.id)).toBeDefined();
    const login = await h.expectFreshSignIn(agent, refused, p.email, '/account/delete?signed-in-again=1');
    const back = await submit(agent, login, '/login', { email: p.email, password: PASSWORD });
    expect(back.url).toBe(url('/account/delete?signed-in-again=1'));
    expect(back.body).toContain('Nothing was changed yet');
    const done = await submit(agent, back, '/account/delete', { confirm: p.email });
    expect(done.url).toBe(url('/account/deleted'));
    expect(await server.deps.accounts.findById(p.id)).toBeUndefined();

    // And a stale GET of the page is a new sign-in first.
    const q = await h.newPerson('stale-page');
    const other = await h.signIn(q, '/account/delete');
    await h.ageAuthentication(q.id, server.config.recentAuthMaxAgeSeconds + 30);
    await h.expectFreshSignIn(other.agent, await other.agent.get(url('/account/delete')), q.email, '/account/delete');
  });

  it('CSRF: a missing, empty, foreign or made-up token is 403 and deletes nothing', async () => {
    const p = await h.newPerson('csrf');
    const stranger = await h.newPerson('csrf-stranger');
    const { agent } = await h.signIn(p, '/account/delete');
    const foreign = formField((await h.signIn(stranger, '/account/delete')).page.body, 'csrf');
    const before = await h.snapshot();
    for (const token of [undefined, '', foreign, 'A'.repeat(43)]) {
      const reply = await agent.post(url('/account/delete'), token === undefined ? { confirm: p.email } : { confirm: p.email, csrf: token });
      expectClientError(reply, 403);
    }
    expect((await h.snapshot()).equals(before)).toBe(true);
  });
});
