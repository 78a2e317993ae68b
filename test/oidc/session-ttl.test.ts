/**
 * The SSO session's lifetime: an idle time (SESSION_IDLE_TTL) that every use renews, never past the
 * absolute lifetime (SESSION_TTL) counted from the session's first save (its payload's iat).
 *
 * No sleeping: the stored session record is read and edited instead (its iat made older, its
 * expiry put in the past), as time passing would leave it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { defaults } from '../../config/defaults.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { sessionTtl } from '../../src/oidc/session-ttl.js';
import { authorizationRequest, callbackParams, redeem, rpFor, signInForTokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

const HOUR = 60 * 60;
const NOW = 1_750_000_000;

describe('sessionTtl', () => {
  const ttl = { session: 24 * HOUR, sessionIdle: 2 * HOUR };

  it.each([
    ['a session saved for the first time (no iat yet)', {}, 2 * HOUR],
    ['a session first saved just now', { iat: NOW }, 2 * HOUR],
    ['a session first saved 20 h ago: the idle time still fits', { iat: NOW - 20 * HOUR }, 2 * HOUR],
    ['exactly an idle time before its absolute end', { iat: NOW - 22 * HOUR }, 2 * HOUR],
    ['an hour before its absolute end: only that hour', { iat: NOW - 23 * HOUR }, HOUR],
    ['a second before its absolute end', { iat: NOW - 24 * HOUR + 1 }, 1],
    ['at its absolute end: at least 1 (the provider needs a positive integer)', { iat: NOW - 24 * HOUR }, 1],
    ['long past its absolute end', { iat: NOW - 400 * HOUR }, 1],
    ['an iat that is not a number counts as now', { iat: '1750000000' }, 2 * HOUR],
  ])('%s', (_label, session, expected) => {
    expect(sessionTtl(ttl, session, NOW)).toBe(expected);
  });

  it('with the idle time equal to the absolute lifetime, behaves as an absolute lifetime', () => {
    const same = { session: 3 * HOUR, sessionIdle: 3 * HOUR };
    expect(sessionTtl(same, { iat: NOW }, NOW)).toBe(3 * HOUR);
    expect(sessionTtl(same, { iat: NOW - HOUR }, NOW)).toBe(2 * HOUR);
  });

  it('a session used every hour ends no later than its absolute end, and one left alone after its idle time', () => {
    const iat = NOW;
    for (let hour = 0; hour <= 30; hour += 1) {
      const now = iat + hour * HOUR;
      const lifetime = sessionTtl(ttl, { iat }, now);
      expect(lifetime).toBeGreaterThanOrEqual(1);
      expect(lifetime).toBeLessThanOrEqual(ttl.sessionIdle);
      if (now < iat + ttl.session) expect(now + lifetime).toBeLessThanOrEqual(iat + ttl.session);
    }
  });

  it('the shipped defaults have an idle time shorter than the absolute lifetime', () => {
    expect(defaults.ttl.sessionIdle).toBeLessThan(defaults.ttl.session);
  });
});

describe('SSO session lifetime through the provider', () => {
  const IDLE = 10 * 60;
  const ABSOLUTE = 24 * HOUR;
  let server: TestServer;
  let client: CreatedClient;
  let rp: oidc.Configuration;
  let sequence = 0;

  interface SessionRecord {
    _id: string;
    payload: string;
    expiresAt: Date | null;
  }

  const sessions = () => server.deps.db.collection<SessionRecord>(collectionName('Session'));

  /** The one stored session of `accountId` (a new account per test, one browser each). */
  async function sessionOf(accountId: string): Promise<SessionRecord & { data: { iat: number; exp: number; accountId: string } }> {
    const all = await sessions().find({}).toArray();
    const mine = all.map((record) => ({ ...record, data: JSON.parse(record.payload) as { iat: number; exp: number; accountId: string } })).filter((r) => r.data.accountId === accountId);
    expect(mine).toHaveLength(1);
    return mine[0]!;
  }

  /** A person signed in once in a new browser (consent given), and their session record. */
  async function signedIn() {
    sequence += 1;
    const person = { email: `session.${sequence}@example.com`, password: 'correct horse battery staple' };
    const accountId = (await server.deps.accounts.create({ ...person, emailVerified: true })).id;
    const browser = new UserAgent(server.url);
    const { tokens } = await signInForTokens(rp, browser, person);
    expect(tokens.claims()?.sub).toBe(accountId);
    return { accountId, browser };
  }

  /** Another authorization request in the same browser; 'sso' when it came back with a code and no page. */
  async function authorizeAgain(browser: UserAgent): Promise<'sso' | 'login'> {
    const started = await authorizationRequest(rp);
    const reply = await browser.follow(started.url.toString());
    if (reply.status === 303 && callbackParams(reply).get('code')) {
      await redeem(rp, started, reply);
      return 'sso';
    }
    expect(reply.status).toBe(200);
    expect(reply.body).toMatch(/action="[^"]*\/login"/);
    return 'login';
  }

  beforeAll(async () => {
    server = await startTestServer('session_ttl', { env: { SESSION_TTL: String(ABSOLUTE), SESSION_IDLE_TTL: String(IDLE) } });
    client = await server.deps.clients.create({ name: 'Notes', redirectUris: ['http://127.0.0.1:9/callback'] });
    rp = await rpFor(server, client);
  });

  afterAll(() => server.close());

  it('a session in use is kept for the idle time from its last use, not the absolute lifetime', async () => {
    const { accountId, browser } = await signedIn();
    const first = await sessionOf(accountId);
    expect(first.expiresAt!.getTime()).toBeLessThanOrEqual(Date.now() + IDLE * 1000);

    const before = Date.now();
    expect(await authorizeAgain(browser)).toBe('sso');
    const after = Date.now();
    const second = await sessionOf(accountId);
    // Renewed by this use: now + idle, whole seconds either side for the provider's rounding.
    expect(second.expiresAt!.getTime()).toBeGreaterThanOrEqual(before + IDLE * 1000 - 1000);
    expect(second.expiresAt!.getTime()).toBeLessThanOrEqual(after + IDLE * 1000 + 1000);
    expect(second.data.exp).toBe(Math.floor(second.expiresAt!.getTime() / 1000));
    // Its first save is remembered through the renewal (and the id change at sign-in).
    expect(second.data.iat).toBe(first.data.iat);
    expect(second.expiresAt!.getTime()).toBeLessThanOrEqual((second.data.iat + ABSOLUTE) * 1000);
  });

  it('a session near its absolute end is renewed only up to that end', async () => {
    const { accountId, browser } = await signedIn();
    const record = await sessionOf(accountId);
    // As if first saved 23 h 58 min ago: two minutes left of the absolute lifetime.
    const iat = Math.floor(Date.now() / 1000) - ABSOLUTE + 120;
    await sessions().updateOne({ _id: record._id }, { $set: { payload: JSON.stringify({ ...JSON.parse(record.payload), iat }) } });

    expect(await authorizeAgain(browser)).toBe('sso');
    const renewed = await sessionOf(accountId);
    expect(renewed.data.iat).toBe(iat);
    expect(renewed.expiresAt!.getTime()).toBeLessThanOrEqual((iat + ABSOLUTE) * 1000 + 1000);
    expect(renewed.expiresAt!.getTime()).toBeLessThan(Date.now() + IDLE * 1000 - 60_000);
    expect(renewed.data.exp).toBeLessThanOrEqual(iat + ABSOLUTE);
  });

  it('a session whose record expired (idle or absolute) is asked to sign in again', async () => {
    const { accountId, browser } = await signedIn();
    const record = await sessionOf(accountId);
    const past = Math.floor(Date.now() / 1000) - 1;
    await sessions().updateOne({ _id: record._id }, { $set: { expiresAt: new Date(past * 1000), payload: JSON.stringify({ ...record.data, exp: past }) } });
    expect(await authorizeAgain(browser)).toBe('login');
  });
});
