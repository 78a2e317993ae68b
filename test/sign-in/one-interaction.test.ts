/**
 * A browser without a session signs in and consents in ONE interaction (the consent page is the
 * sign-in's last step), and the provider creates its session once, at the resume.
 *
 * A sign-in's records carry the account (and grant) they name to the flow's next request, which
 * then does not read them again (src/oidc/mongo-adapter.ts, CARRYING_MODELS). What must still
 * hold: an account disabled at any point of the flow gets no code and no tokens, because
 * disabling deletes every record that carries it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { authorizationRequest, callbackParams, redeem, rpFor } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import type { Reply } from '../support/user-agent.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';

describe('a sign-in in one interaction', () => {
  let server: TestServer;
  let client: CreatedClient;
  let rp: oidc.Configuration;
  let n = 0;

  beforeAll(async () => {
    server = await startTestServer('one_interaction', { logLevel: 'warn' });
    client = await server.deps.clients.create({ name: 'Notes', redirectUris: ['http://127.0.0.1:9/callback'] });
    rp = await rpFor(server, client);
  });

  afterAll(async () => {
    await server?.close();
  });

  const location = (reply: Reply): string => {
    expect(reply.status).toBe(303);
    if (!reply.location) throw new Error('no Location');
    return reply.location;
  };

  /** A fresh account and browser, signed in with the password up to the consent page (the sign-in's last step). */
  async function atConsent(): Promise<{ accountId: string; browser: UserAgent; started: Started; consent: Reply }> {
    n += 1;
    const email = `halfway${n}@example.com`;
    const accountId = (await server.deps.accounts.create({ email, password: PASSWORD, emailVerified: true })).id;
    const browser = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const login = await browser.get(location(await browser.get(started.url.toString())));
    const posted = await browser.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email, password: PASSWORD });
    const consent = await browser.get(location(posted));
    expect(consent.status).toBe(200);
    expect(consent.body).toContain(email);
    return { accountId, browser, started, consent };
  }

  const confirm = (browser: UserAgent, consent: Reply) => browser.post(formAction(consent.body, '/confirm'), { csrf: formField(consent.body, 'csrf') });
  const disable = (accountId: string) => server.deps.userAdmin.setDisabled(accountId, true);

  it('signs in and consents in one go when nothing is disabled (the control case)', async () => {
    const { browser, started, consent, accountId } = await atConsent();
    const callback = await browser.get(location(await confirm(browser, consent)));
    const tokens = await redeem(rp, started, callback);
    expect(tokens.claims()?.sub).toBe(accountId);
  });

  it('while the consent page is open: Allow gets no code', async () => {
    const { browser, consent, accountId } = await atConsent();
    await disable(accountId);
    const reply = await confirm(browser, consent);
    expect(reply.status).toBeGreaterThanOrEqual(400);
    expect(reply.status).toBeLessThan(500);
    expect(reply.location ?? '').not.toContain('code=');
  });

  it('between Allow and the return to the authorization endpoint: no code', async () => {
    const { browser, consent, accountId } = await atConsent();
    const resume = location(await confirm(browser, consent));
    await disable(accountId);
    const reply = await browser.get(resume);
    expect(reply.location ?? '').not.toContain('code=');
    expect(reply.status).toBeLessThan(500);
  });

  it('between the code and its exchange: no tokens', async () => {
    const { browser, started, consent, accountId } = await atConsent();
    const callback = await browser.get(location(await confirm(browser, consent)));
    expect(callbackParams(callback).get('code')).toBeTruthy();
    await disable(accountId);
    await expect(redeem(rp, started, callback)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  /** The session cookie's value (the session id) this browser sends to the authorization endpoint. */
  const sessionId = (browser: UserAgent): string | undefined => /(?:^|; )_session=([^;]+)/.exec(browser.cookieHeader('/auth'))?.[1];
  const sessionRecord = (id: string) => server.connection.db!.collection('oidc_session').findOne({ _id: id as never });

  it('creates the session only at the resume, with an id the browser never held before', async () => {
    const { browser, started, consent } = await atConsent();
    expect(sessionId(browser)).toBeUndefined();
    const callback = await browser.get(location(await confirm(browser, consent)));
    await redeem(rp, started, callback);
    const id = sessionId(browser);
    expect(id).toBeTruthy();
    expect(await sessionRecord(id!)).not.toBeNull();
  });

  it('signing in again (prompt=login) in a browser that has a session changes the session id (session fixation)', async () => {
    const { browser, started, consent } = await atConsent();
    await redeem(rp, started, await browser.get(location(await confirm(browser, consent))));
    const before = sessionId(browser);
    expect(before).toBeTruthy();
    const again = await authorizationRequest(rp, { prompt: 'login' });
    const login = await browser.get(location(await browser.get(again.url.toString())));
    const email = /value="([^"]+@example\.com)"/.exec(login.body)?.[1] ?? `halfway${n}@example.com`;
    const posted = await browser.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email, password: PASSWORD });
    // A browser with a session: the login result alone (consent is remembered for this client).
    const callback = await browser.get(location(posted));
    expect(callbackParams(callback).get('code')).toBeTruthy();
    const after = sessionId(browser);
    expect(after).toBeTruthy();
    expect(after).not.toBe(before);
    expect(await sessionRecord(before!)).toBeNull();
  });

  it('a second visit of the same browser after the account was disabled gets no code', async () => {
    const { browser, started, consent, accountId } = await atConsent();
    const callback = await browser.get(location(await confirm(browser, consent)));
    await redeem(rp, started, callback);
    await disable(accountId);
    const again = await authorizationRequest(rp);
    const reply = await browser.get(again.url.toString());
    expect(reply.location ?? '').not.toContain('code=');
  });
});
