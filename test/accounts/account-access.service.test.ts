/**
 * The account access service against the real database, over sessions and grants the provider
 * made itself (people sign in through the pages; openid-client redeems the codes): what it lists
 * (with when and where a session was last seen), and that ending and revoking touch only the
 * account named, keep what they are told to keep, and take the tokens along.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { fullAuthority } from '../../src/clients/admin-authority.js';
import type { ClientInput, CreatedClient } from '../../src/clients/client.service.js';
import { describeUserAgent } from '../../src/http/user-agent-label.js';
import { GRANT_BOUND_MODELS, collectionName } from '../../src/oidc/mongo-adapter.js';
import { REDIRECT_URI, rpFor, signInForTokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';
const APP: ClientInput = {
  name: 'Calendar',
  logoUri: 'https://calendar.example/logo.png',
  redirectUris: [REDIRECT_URI],
  grantTypes: ['authorization_code', 'refresh_token'],
  tokenEndpointAuthMethod: 'client_secret_basic',
  scopes: ['openid', 'email', 'profile', 'offline_access'],
};

let counter = 0;

describe('account access service', () => {
  let server: TestServer;
  let app: CreatedClient;
  let ownApp: CreatedClient;
  let rp: oidc.Configuration;
  let ownRp: oidc.Configuration;

  const db = () => {
    const found = server.connection.db;
    if (!found) throw new Error('no database');
    return found;
  };
  const countFor = (model: string, filter: Record<string, unknown>) => db().collection(collectionName(model)).countDocuments(filter);

  const newPerson = async () => {
    const email = `access-service-${(counter += 1)}@example.test`;
    const account = await server.deps.accounts.create({ email, password: PASSWORD, emailVerified: true });
    return { id: account.id, email, password: PASSWORD };
  };

  /** A browser signed in to `rp` (a new SSO session), with consent; returns the browser and the tokens. */
  const signIn = async (person: { email: string; password: string }, extra: Record<string, string> = {}, relyingParty = rp, browser = new UserAgent(server.url)) => {
    const { tokens } = await signInForTokens(relyingParty, browser, person, { scope: 'openid email offline_access', prompt: 'consent', ...extra });
    return { browser, tokens };
  };

  beforeAll(async () => {
    server = await startTestServer('account_access_service');
    app = await server.deps.clients.create(APP);
    // First-party status is given only with every power, as the command line has it.
    ownApp = await server.deps.clients.create({ ...APP, name: 'Our own pages', logoUri: undefined, firstParty: true }, fullAuthority({ type: 'system', label: 'test setup' }));
    rp = await rpFor(server, app);
    ownRp = await rpFor(server, ownApp);
  });

  afterAll(async () => {
    await server.close();
  });

  it('lists the account’s live sessions with when they started, when and where they were last seen, and their apps', async () => {
    const person = await newPerson();
    const before = Date.now();
    await signIn(person);
    const sessions = await server.deps.access.listSessions(person.id);
    expect(sessions).toHaveLength(1);
    const [session] = sessions;
    expect(session?.uid).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(session?.ip).toBe('127.0.0.1');
    expect(session?.userAgent).toBeTruthy();
    expect(session?.device).toBe(describeUserAgent(session?.userAgent));
    expect(session?.startedAt?.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(session?.lastSeenAt?.getTime()).toBeGreaterThanOrEqual(session?.startedAt?.getTime() ?? Infinity);
    expect(session?.expiresAt?.getTime()).toBeGreaterThan(Date.now());
    expect(session?.amr).toContain('pwd');
    expect(session?.apps).toEqual([{ clientId: app.clientId, name: 'Calendar', logoUri: APP.logoUri, firstParty: false }]);
    // The public handle only, never the cookie's value (the record's id).
    const record = await db().collection(collectionName('Session')).findOne({ uid: session?.uid });
    expect(JSON.stringify(sessions)).not.toContain(String(record?._id));

    // Another account's list is its own.
    const other = await newPerson();
    expect(await server.deps.access.listSessions(other.id)).toEqual([]);

    // Most recently used first.
    const second = await signIn(person);
    const [newest] = await server.deps.access.listSessions(person.id);
    expect(newest?.uid).not.toBe(session?.uid);
    expect(second.tokens.access_token).toBeTruthy();
  });

  it('does not end another account’s session, and ending one revokes the grants that do not outlive a logout', async () => {
    const person = await newPerson();
    const stranger = await newPerson();
    // No offline_access: the grant belongs to the session.
    await signIn(person, { scope: 'openid email', prompt: 'consent' });
    const [session] = await server.deps.access.listSessions(person.id);
    const uid = session?.uid ?? '';

    expect(await server.deps.access.endSession(stranger.id, uid)).toBe(false);
    expect(await server.deps.access.endSession(person.id, 'no-such-uid')).toBe(false);
    expect(await server.deps.access.listSessions(person.id)).toHaveLength(1);
    expect(await server.deps.access.listApps(person.id)).toHaveLength(1);

    expect(await server.deps.access.endSession(person.id, uid)).toBe(true);
    expect(await server.deps.access.listSessions(person.id)).toEqual([]);
    expect(await server.deps.access.listApps(person.id)).toEqual([]);
    expect(await countFor('AccessToken', { accountId: person.id })).toBe(0);
    // Once only.
    expect(await server.deps.access.endSession(person.id, uid)).toBe(false);
  });

  it('endOtherSessions keeps the given session and ends the rest; without one it ends all', async () => {
    const person = await newPerson();
    const stranger = await newPerson();
    await signIn(person);
    await signIn(person);
    await signIn(person);
    await signIn(stranger);
    const sessions = await server.deps.access.listSessions(person.id);
    expect(sessions).toHaveLength(3);
    const keep = sessions[1]?.uid;

    expect(await server.deps.access.endOtherSessions(person.id, keep)).toBe(2);
    expect((await server.deps.access.listSessions(person.id)).map((s) => s.uid)).toEqual([keep]);
    expect(await server.deps.access.listSessions(stranger.id)).toHaveLength(1);

    expect(await server.deps.access.endOtherSessions(person.id, undefined)).toBe(1);
    expect(await server.deps.access.listSessions(person.id)).toEqual([]);
    expect(await server.deps.access.endOtherSessions(person.id, undefined)).toBe(0);
    expect(await server.deps.access.listSessions(stranger.id)).toHaveLength(1);
  });

  it('lists connected apps with scopes and since; revokeApp deletes the grants and every token under them', async () => {
    const person = await newPerson();
    const stranger = await newPerson();
    const before = Math.floor(Date.now() / 1000) * 1000;
    const first = await signIn(person);
    await signIn(person, { scope: 'openid profile offline_access' });
    await signIn(stranger);
    expect(first.tokens.refresh_token).toBeTruthy();

    const [listed, ...rest] = await server.deps.access.listApps(person.id);
    expect(rest).toEqual([]);
    expect(listed).toMatchObject({ clientId: app.clientId, name: 'Calendar', logoUri: APP.logoUri, firstParty: false, grants: 2 });
    expect([...(listed?.scopes ?? [])].sort()).toEqual(['email', 'offline_access', 'openid', 'profile']);
    expect(listed?.since?.getTime()).toBeGreaterThanOrEqual(before);

    const grants = await db().collection(collectionName('Grant')).find({ accountId: person.id }).toArray();
    expect(grants).toHaveLength(2);
    const grantIds = grants.map((g) => g._id);
    expect(await countFor('RefreshToken', { grantId: { $in: grantIds } })).toBe(2);
    expect(await countFor('AccessToken', { grantId: { $in: grantIds } })).toBeGreaterThanOrEqual(2);

    expect(await server.deps.access.revokeApp(person.id, 'no-such-client')).toBe(false);
    expect(await server.deps.access.revokeApp(person.id, app.clientId)).toBe(true);
    expect(await server.deps.access.listApps(person.id)).toEqual([]);
    expect(await countFor('Grant', { _id: { $in: grantIds } })).toBe(0);
    for (const model of GRANT_BOUND_MODELS) expect({ model, left: await countFor(model, { grantId: { $in: grantIds } }) }).toEqual({ model, left: 0 });
    // Nothing left: false; the stranger's consent untouched.
    expect(await server.deps.access.revokeApp(person.id, app.clientId)).toBe(false);
    expect(await server.deps.access.listApps(stranger.id)).toHaveLength(1);
    // The sessions themselves stay (revoking an app does not sign the person out).
    expect(await server.deps.access.listSessions(person.id)).toHaveLength(2);
  });

  it('hides first-party apps unless asked', async () => {
    const person = await newPerson();
    const browser = new UserAgent(server.url);
    await signIn(person, {}, rp, browser);
    // First party: no consent page, same browser (SSO).
    await signInForTokens(ownRp, browser, person, { scope: 'openid email' });

    expect((await server.deps.access.listApps(person.id)).map((a) => a.clientId)).toEqual([app.clientId]);
    const all = await server.deps.access.listApps(person.id, { includeFirstParty: true });
    expect(all.map((a) => [a.name, a.firstParty])).toEqual([
      ['Calendar', false],
      ['Our own pages', true],
    ]);
    // The session still names both apps.
    const [session] = await server.deps.access.listSessions(person.id);
    expect(session?.apps.map((a) => a.clientId).sort()).toEqual([app.clientId, ownApp.clientId].sort());
  });
});
