/**
 * OpenID Connect Back-Channel Logout 1.0 end to end: relying parties (openid-client) sign in
 * through the pages, a real HTTP receiver per client listens on loopback, and every way a session
 * ends sends each client of the session one logout token that verifies against our JWKS. Delivery
 * is retried with back-off (the services' clock moves instead of sleeping), given up after
 * bounded attempts, and audited; the URI is checked on every way in.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import * as jose from 'jose';
import type * as oidc from 'openid-client';

import { clientCreate } from '../../src/cli/client.commands.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { BACKCHANNEL_COLLECTION } from '../../src/oidc/backchannel-logout.service.js';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/oidc/logout-token.js';
import { adminToken, call, expectProblem } from '../admin/api/api-client.js';
import { createCliServices, runCommand } from '../support/cli.js';
import { createRunningTestClock } from '../support/clock.js';
import type { TestClock } from '../support/clock.js';
import { startLogoutReceiver } from '../support/logout-receiver.js';
import type { LogoutReceiver, StoredLogout } from '../support/logout-receiver.js';
import { REDIRECT_URI, authorizationRequest, redeem, rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formField, signInThroughPages } from '../support/user-agent.js';
import { within } from '../support/within.js';

const PASSWORD = 'correct horse battery staple 9';
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

describe('back-channel logout', () => {
  let server: TestServer;
  let clock: TestClock;
  let receiverA: LogoutReceiver;
  let receiverB: LogoutReceiver;
  let clientA: CreatedClient;
  let clientB: CreatedClient;
  let clientC: CreatedClient;
  let rpA: oidc.Configuration;
  let rpB: oidc.Configuration;
  let rpC: oidc.Configuration;
  let jwks: ReturnType<typeof jose.createRemoteJWKSet>;

  const url = (path: string) => `${server.url}${path}`;
  const logouts = () => server.deps.db.collection<StoredLogout>(BACKCHANNEL_COLLECTION);

  beforeAll(async () => {
    clock = createRunningTestClock();
    server = await startTestServer('backchannel_logout', { clock, env: { DYNAMIC_REGISTRATION: 'true' } });
    receiverA = await startLogoutReceiver();
    receiverB = await startLogoutReceiver();
    // A: confidential, wants sid; B: public, wants sid; C: no back-channel logout URI at all.
    clientA = await server.deps.clients.create({ name: 'App A', redirectUris: [REDIRECT_URI], backchannelLogoutUri: receiverA.url, backchannelLogoutSessionRequired: true });
    clientB = await server.deps.clients.create({ name: 'App B', redirectUris: [REDIRECT_URI], public: true, backchannelLogoutUri: receiverB.url, backchannelLogoutSessionRequired: true });
    clientC = await server.deps.clients.create({ name: 'App C', redirectUris: [REDIRECT_URI] });
    rpA = await rpFor(server, clientA);
    rpB = await rpFor(server, clientB);
    rpC = await rpFor(server, clientC);
    jwks = jose.createRemoteJWKSet(new URL(url('/jwks')));
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server?.close();
    await receiverA?.close();
    await receiverB?.close();
  });

  beforeEach(() => {
    receiverA.reset();
    receiverB.reset();
  });

  let people = 0;
  async function newPerson(label: string): Promise<{ id: string; email: string; password: string }> {
    people += 1;
    const email = `${label}-${people}@example.com`;
    const account = await server.deps.accounts.create({ email, password: PASSWORD, emailVerified: true });
    return { id: account.id, email, password: PASSWORD };
  }

  /** Signs in to each RP in turn in one browser (one SSO session); returns each client's ID token. */
  async function signInTo(agent: UserAgent, person: { email: string; password: string }, rps: oidc.Configuration[]): Promise<string[]> {
    const idTokens: string[] = [];
    for (const rp of rps) {
      const started = await authorizationRequest(rp);
      const callback = await signInThroughPages(agent, started.url.toString(), person);
      const tokens = await redeem(rp, started, callback);
      idTokens.push(tokens.id_token!);
    }
    return idTokens;
  }

  const sidOf = (idToken: string) => jose.decodeJwt(idToken).sid as string;

  /** RP-initiated logout from the RP holding `idToken`, confirming "Yes, sign me out" in `agent`. */
  async function rpInitiatedLogout(agent: UserAgent, idToken: string): Promise<void> {
    const confirm = await agent.get(url(`/session/end?${new URLSearchParams({ id_token_hint: idToken })}`));
    expect(confirm.status).toBe(200);
    const action = /<form method="post" action="([^"]+)"/.exec(confirm.body)?.[1] ?? '';
    const done = await agent.post(new URL(action.replace(/&amp;/g, '&'), server.url).toString(), { xsrf: formField(confirm.body, 'xsrf'), logout: 'yes' });
    expect(done.status).toBe(303);
  }

  /** Verifies a logout token against our JWKS as an RP would (§2.6); returns its claims. */
  async function verifyLogoutToken(token: string | undefined, client: CreatedClient): Promise<jose.JWTPayload> {
    expect(token).toEqual(expect.any(String));
    const { payload, protectedHeader } = await jose.jwtVerify(token!, jwks, { issuer: server.url, audience: client.clientId, typ: 'logout+jwt' });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload.events).toEqual({ [BACKCHANNEL_LOGOUT_EVENT]: {} });
    expect(payload).not.toHaveProperty('nonce');
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.iat).toEqual(expect.any(Number));
    expect(payload.exp).toBeGreaterThan(payload.iat!);
    return payload;
  }

  const auditEvents = async (action: string, clientId: string) => {
    await server.deps.audit.flush();
    return (await server.deps.audit.list({ action, clientId }, { limit: 50 })).events;
  };

  it('discovery advertises back-channel logout with sid', async () => {
    const metadata = (await (await fetch(url('/.well-known/openid-configuration'))).json()) as Record<string, unknown>;
    expect(metadata.backchannel_logout_supported).toBe(true);
    expect(metadata.backchannel_logout_session_supported).toBe(true);
    expect(metadata).not.toHaveProperty('frontchannel_logout_supported');
  });

  it('RP-initiated logout from A: A and B (same SSO session) each get one verifiable logout token; C, without a URI, nothing', async () => {
    const person = await newPerson('rp-logout');
    const browser = new UserAgent(server.url);
    const [idTokenA, idTokenB] = await signInTo(browser, person, [rpA, rpB, rpC]);

    await rpInitiatedLogout(browser, idTokenA!);
    await within(5000, async () => receiverA.received.length >= 1 && receiverB.received.length >= 1);

    for (const [receiver, client, idToken] of [[receiverA, clientA, idTokenA!], [receiverB, clientB, idTokenB!]] as const) {
      const [post] = receiver.received;
      expect(post?.contentType).toBe('application/x-www-form-urlencoded');
      expect(post?.fields).toEqual(['logout_token']);
      const claims = await verifyLogoutToken(post?.token, client);
      expect(claims.sub).toBe(person.id);
      expect(claims.sid).toBe(sidOf(idToken));
      // The header's key is one our JWKS publishes right now.
      const published = ((await (await fetch(url('/jwks'))).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
      expect(published).toContain(jose.decodeProtectedHeader(post!.token!).kid);
    }
    // Once each: the provider's own sender is replaced by the outbox.
    await within(2000, async () => (await logouts().countDocuments({ sub: person.id, state: 'delivered' })) === 2);
    expect(receiverA.received).toHaveLength(1);
    expect(receiverB.received).toHaveLength(1);
    expect(await logouts().countDocuments({ sub: person.id, clientId: clientC.clientId })).toBe(0);

    const [delivered] = await auditEvents('logout.backchannel_delivered', clientA.clientId);
    expect(delivered).toMatchObject({ outcome: 'success', target: { type: 'account', id: person.id }, details: { attempts: 1 } });
    // Nothing of the token in the logs or the audit trail.
    const token = receiverA.received[0]!.token!;
    expect(server.logs.join('\n')).not.toContain(token);
    expect(server.logs.join('\n')).not.toContain(token.split('.')[2]);
    expect(JSON.stringify(await auditEvents('logout.backchannel_delivered', clientB.clientId))).not.toContain(token.split('.')[1]);
  });

  it('a client that did not ask for the session id gets a token without sid', async () => {
    const clientD = await server.deps.clients.create({ name: 'App D', redirectUris: [REDIRECT_URI], backchannelLogoutUri: receiverA.url });
    const person = await newPerson('no-sid');
    const browser = new UserAgent(server.url);
    const [idTokenD] = await signInTo(browser, person, [await rpFor(server, clientD)]);
    await rpInitiatedLogout(browser, idTokenD!);
    await within(5000, async () => receiverA.received.length >= 1);
    const claims = await verifyLogoutToken(receiverA.received[0]?.token, clientD);
    expect(claims.sub).toBe(person.id);
    expect(claims).not.toHaveProperty('sid');
  });

  it('account centre: "sign out everywhere else" ends the other browser’s session, and its apps hear of it', async () => {
    const person = await newPerson('centre');
    const elsewhere = new UserAgent(server.url);
    const [idTokenA] = await signInTo(elsewhere, person, [rpA]);
    const here = new UserAgent(server.url);
    const overview = await here.follow(url('/account'));
    const signedIn = await signInThroughPages(here, overview.url, person);
    const page = await here.follow(signedIn.location ?? url('/account/sessions'));
    expect(page.status).toBe(200);
    const sessions = await here.get(url('/account/sessions'));
    const ended = await here.post(url('/account/sessions/end-others'), { csrf: formField(sessions.body, 'csrf') });
    expect(ended.status).toBe(303);

    await within(5000, async () => receiverA.received.length >= 1);
    const claims = await verifyLogoutToken(receiverA.received[0]?.token, clientA);
    expect(claims.sub).toBe(person.id);
    expect(claims.sid).toBe(sidOf(idTokenA!));
    expect(receiverB.received).toHaveLength(0);
  });

  it('account centre: signing out (the centre’s own RP-initiated logout) tells the apps of that session', async () => {
    const person = await newPerson('centre-sign-out');
    const browser = new UserAgent(server.url);
    const [, idTokenB] = await signInTo(browser, person, [rpA, rpB]);
    const overview = await browser.follow(url('/account'));
    expect(overview.status).toBe(200);
    const posted = await browser.post(url('/account/sign-out'), { csrf: formField(overview.body, 'csrf') });
    expect(posted.status).toBe(303);
    const confirm = await browser.get(posted.location ?? '');
    const action = /<form method="post" action="([^"]+)"/.exec(confirm.body)?.[1] ?? '';
    const done = await browser.post(new URL(action.replace(/&amp;/g, '&'), server.url).toString(), { xsrf: formField(confirm.body, 'xsrf'), logout: 'yes' });
    expect(done.status).toBe(303);

    await within(5000, async () => receiverA.received.length >= 1 && receiverB.received.length >= 1);
    expect((await verifyLogoutToken(receiverB.received[0]?.token, clientB)).sid).toBe(sidOf(idTokenB!));
    expect((await verifyLogoutToken(receiverA.received[0]?.token, clientA)).sub).toBe(person.id);
  });

  it('an administrator ending one session (the console’s and the API’s service) tells its apps', async () => {
    const person = await newPerson('admin-end');
    const browser = new UserAgent(server.url);
    const [idTokenA] = await signInTo(browser, person, [rpA]);
    const [session] = await server.deps.access.listSessions(person.id);
    expect(await server.deps.access.endSession(person.id, session!.uid)).toBe(true);

    await within(5000, async () => receiverA.received.length >= 1);
    expect((await verifyLogoutToken(receiverA.received[0]?.token, clientA)).sid).toBe(sidOf(idTokenA!));
  });

  it('disabling the account (management API) tells the apps of every session', async () => {
    const person = await newPerson('disabled');
    await signInTo(new UserAgent(server.url), person, [rpA]);
    await signInTo(new UserAgent(server.url), person, [rpB]);
    const { token } = await adminToken(server);
    const answer = await call(server, 'POST', `users/${person.id}/disable`, { token });
    expect(answer.status).toBeLessThan(300);

    await within(5000, async () => receiverA.received.length >= 1 && receiverB.received.length >= 1);
    expect((await verifyLogoutToken(receiverA.received[0]?.token, clientA)).sub).toBe(person.id);
    expect((await verifyLogoutToken(receiverB.received[0]?.token, clientB)).sub).toBe(person.id);
  });

  it('disabling the account from the command line: the CLI stores the notice, the server’s worker delivers it', async () => {
    const person = await newPerson('cli-disabled');
    await signInTo(new UserAgent(server.url), person, [rpA]);
    const cli = createCliServices(server.connection);
    try {
      await cli.userAdmin.setDisabled(person.id, true, SETUP);
    } finally {
      await cli.close();
    }
    expect(await logouts().countDocuments({ sub: person.id, clientId: clientA.clientId })).toBe(1);
    // The server's worker polls every few seconds; a pass now stands for its next poll.
    await server.deps.backchannelLogout.deliverDue();
    await within(5000, async () => receiverA.received.length >= 1);
    expect((await verifyLogoutToken(receiverA.received[0]?.token, clientA)).sub).toBe(person.id);
  });

  it('deleting the account tells the apps of its sessions', async () => {
    const person = await newPerson('deleted');
    await signInTo(new UserAgent(server.url), person, [rpB]);
    expect(await server.deps.userAdmin.delete(person.id, SETUP)).toBe(true);
    await within(5000, async () => receiverB.received.length >= 1);
    expect((await verifyLogoutToken(receiverB.received[0]?.token, clientB)).sub).toBe(person.id);
  });

  it('a receiver that answers 500 is retried after the back-off and the token delivered then (same jti), each outcome audited', async () => {
    const person = await newPerson('retry');
    const browser = new UserAgent(server.url);
    const [idTokenA] = await signInTo(browser, person, [rpA]);
    receiverA.statuses.push(500);
    await rpInitiatedLogout(browser, idTokenA!);

    await within(5000, async () => (await logouts().findOne({ sub: person.id }))?.attempts === 1);
    const failed = await logouts().findOne({ sub: person.id });
    expect(failed).toMatchObject({ state: 'queued', attempts: 1, lastError: 'status_500' });
    expect(receiverA.received).toHaveLength(1);
    // Not due yet: a pass now sends nothing.
    await server.deps.backchannelLogout.deliverDue();
    expect(receiverA.received).toHaveLength(1);

    clock.advance(6_000);
    await server.deps.backchannelLogout.deliverDue();
    await within(5000, async () => (await logouts().findOne({ sub: person.id }))?.state === 'delivered');
    expect(receiverA.received.map((r) => r.status)).toEqual([500, 200]);
    const [first, second] = await Promise.all(receiverA.received.map((r) => verifyLogoutToken(r.token, clientA)));
    expect(second!.jti).toBe(first!.jti);
    expect(second!.sid).toBe(sidOf(idTokenA!));

    const failures = (await auditEvents('logout.backchannel_failed', clientA.clientId)).filter((e) => e.target?.id === person.id);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ outcome: 'failure', reason: 'status_500', details: { attempts: 1, next: 'retry' } });
    const delivered = (await auditEvents('logout.backchannel_delivered', clientA.clientId)).filter((e) => e.target?.id === person.id);
    expect(delivered).toHaveLength(1);
    expect(delivered[0]).toMatchObject({ details: { attempts: 2 } });
  });

  it('a receiver that stays down is given up after the bounded attempts (dead), audited', async () => {
    const person = await newPerson('dead');
    const browser = new UserAgent(server.url);
    const [idTokenB] = await signInTo(browser, person, [rpB]);
    receiverB.always = 503;
    await rpInitiatedLogout(browser, idTokenB!);
    await within(5000, async () => (await logouts().findOne({ sub: person.id }))?.attempts === 1);

    // Each retry just when it falls due (5 s, 10 s, 20 s … capped at ten minutes): well within the hour's bound.
    for (let pass = 0; pass < 20; pass += 1) {
      const record = await logouts().findOne({ sub: person.id });
      if (record?.state !== 'queued') break;
      clock.advance(Math.max(0, (record as unknown as { nextAttemptAt: Date }).nextAttemptAt.getTime() - clock.nowMs()) + 1);
      await server.deps.backchannelLogout.deliverDue();
    }
    const record = await logouts().findOne({ sub: person.id });
    expect(record).toMatchObject({ state: 'dead', deadReason: 'max_attempts', attempts: 10, lastError: 'status_503' });
    expect(receiverB.received).toHaveLength(10);
    // Dead stays dead.
    clock.advance(3600_000);
    await server.deps.backchannelLogout.deliverDue();
    expect(receiverB.received).toHaveLength(10);

    const failures = (await auditEvents('logout.backchannel_failed', clientB.clientId)).filter((e) => e.target?.id === person.id);
    expect(failures).toHaveLength(10);
    expect(failures.filter((e) => e.details?.next === 'dead')).toEqual([expect.objectContaining({ details: expect.objectContaining({ attempts: 10, deadReason: 'max_attempts' }) })]);
  });

  describe('registering the URI', () => {
    it('management API: accepts an https URI and shows it; refuses http on a public host and a fragment with 400', async () => {
      const { token } = await adminToken(server);
      const base = { name: 'API app', redirectUris: ['https://app.example.test/callback'] };
      const created = await call(server, 'POST', 'clients', { token, json: { ...base, backchannelLogoutUri: 'https://app.example.test/logout', backchannelLogoutSessionRequired: true } });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ backchannelLogoutUri: 'https://app.example.test/logout', backchannelLogoutSessionRequired: true });
      const before = (await server.deps.clients.list({ limit: 200 })).total;
      for (const bad of ['http://app.example.test/logout', 'https://app.example.test/logout#x', 'logout']) {
        expectProblem(await call(server, 'POST', 'clients', { token, json: { ...base, backchannelLogoutUri: bad } }), 400, 'client.invalid', ['backchannelLogoutUri']);
      }
      // Only with the authorization_code grant; sid only with a URI.
      expectProblem(
        await call(server, 'POST', 'clients', { token, json: { name: 'Service', redirectUris: [], grantTypes: ['client_credentials'], backchannelLogoutUri: 'https://svc.example.test/logout' } }),
        400,
        'client.invalid',
        ['backchannelLogoutUri'],
      );
      expectProblem(await call(server, 'POST', 'clients', { token, json: { ...base, backchannelLogoutSessionRequired: true } }), 400, 'client.invalid', ['backchannelLogoutSessionRequired']);
      expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);
    });

    it('command line: client create --backchannel-logout-uri accepts a valid URI and refuses a bad one (exit 1, nothing stored)', async () => {
      const ok = await runCommand(clientCreate, ['--name', 'CLI app', '--redirect-uri', 'https://cli.example.test/cb', '--backchannel-logout-uri', 'https://cli.example.test/logout', '--backchannel-logout-session-required', '--json'], server.deps);
      expect(ok.code).toBe(0);
      const json = JSON.parse(ok.stdout) as { client_id: string; backchannel_logout_uri: string; backchannel_logout_session_required: boolean };
      expect(json).toMatchObject({ backchannel_logout_uri: 'https://cli.example.test/logout', backchannel_logout_session_required: true });
      expect((await server.deps.clients.find(json.client_id))?.backchannel_logout_uri).toBe('https://cli.example.test/logout');

      const before = (await server.deps.clients.list({ limit: 200 })).total;
      const bad = await runCommand(clientCreate, ['--name', 'CLI bad', '--redirect-uri', 'https://cli.example.test/cb', '--backchannel-logout-uri', 'http://cli.example.test/logout'], server.deps);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/back-channel logout URI: http:\/\/cli\.example\.test\/logout: must use https/);
      expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);
    });

    it('dynamic registration keeps an https URI and refuses http (loopback too) and fragments with invalid_client_metadata', async () => {
      const { token } = await server.deps.registrationTokens.create({ uses: 10 }, SETUP);
      const register = (body: Record<string, unknown>) =>
        fetch(url('/reg'), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const base = { client_name: 'Registered', redirect_uris: [REDIRECT_URI] };
      const created = await register({ ...base, backchannel_logout_uri: 'https://rp.example.test/logout', backchannel_logout_session_required: true });
      expect(created.status).toBe(201);
      const body = (await created.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ backchannel_logout_uri: 'https://rp.example.test/logout', backchannel_logout_session_required: true });
      expect((await server.deps.clients.find(body.client_id as string))?.backchannel_logout_uri).toBe('https://rp.example.test/logout');

      for (const bad of ['http://rp.example.test/logout', 'http://127.0.0.1:8080/logout', 'https://rp.example.test/logout#x']) {
        const refused = await register({ ...base, backchannel_logout_uri: bad });
        expect({ bad, status: refused.status }).toEqual({ bad, status: 400 });
        expect(((await refused.json()) as { error: string }).error).toBe('invalid_client_metadata');
      }
    });
  });
});
