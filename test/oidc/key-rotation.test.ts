/**
 * Signing key rotation without a restart: a rotated-in key is published before it signs, signs
 * from its activation on, and the key it replaced stays in the JWKS until every token it signed
 * has expired. Tokens are verified as a relying party would (openid-client, and jose against the
 * JWKS as served at that moment); time moves through the services' clock.
 */

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import type { Core } from '../../src/core/core.js';
import { AppError } from '../../src/http/app-error.js';
import { keystoreKids } from '../../src/oidc/provider-keystore.js';
import { createCliServices } from '../support/cli.js';
import type { TestClock } from '../support/clock.js';
import { createTestClock } from '../support/clock.js';
import { REDIRECT_URI, publishedKids, rpFor, signInForTokens } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';
import { within } from '../support/within.js';

const USER = { email: 'rotation@example.com', password: 'correct horse battery staple', name: 'Rita Rotation' };
const ACTOR = { type: 'system' as const, label: 'test' };
const HOUR_MS = 60 * 60 * 1000;

const kidOf = (jwt: string | undefined) => decodeProtectedHeader(jwt ?? '').kid;

/** The code of the AppError `promise` rejects with. */
async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof AppError) return `${err.code}: ${err.message}`;
    throw err;
  }
  throw new Error('not refused');
}

describe('signing key rotation on one node (the clock moves)', () => {
  let server: TestServer;
  let clock: TestClock;
  let client: CreatedClient;
  let accountId: string;

  beforeAll(async () => {
    clock = createTestClock();
    server = await startTestServer('key_rotation', { clock });
    accountId = (await server.deps.accounts.create({ ...USER, emailVerified: true })).id;
    client = await server.deps.clients.create({ name: 'Rotation RP', redirectUris: [REDIRECT_URI] });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('publishes a new key before it signs, signs with it from its activation, keeps the old one until its tokens expire', async () => {
    const keys = server.deps.signingKeys;
    const rp = await rpFor(server, client);
    const initial = await publishedKids(rp);
    expect(initial).toHaveLength(2);
    const [rsOld, esOld] = initial as [string, string];

    // Before: signed with the first-boot RS256 key (openid-client checked the signature against the JWKS).
    const browser = new UserAgent(server.url);
    const { tokens: before } = await signInForTokens(rp, browser, USER, { scope: 'openid email offline_access', prompt: 'consent' });
    /** The status of the end-session page given this ID token as its hint (the provider verifies it with its keystore). */
    const endSessionWith = async (idToken: string) => (await browser.get(`${server.url}/session/end?${new URLSearchParams({ id_token_hint: idToken, client_id: client.clientId })}`)).status;
    expect(kidOf(before.id_token)).toBe(rsOld);
    expect(before.refresh_token).toBeTruthy();

    // Rotation: the new key is in the JWKS at once, pending for KEY_PREPUBLISH_SECONDS (an hour by default).
    const [rotated] = await keys.rotate(['RS256'], ACTOR);
    const rsNew = rotated?.kid ?? '';
    expect(rotated).toMatchObject({ alg: 'RS256', state: 'pending' });
    expect(rotated!.activatedAt.getTime() - rotated!.publishAt.getTime()).toBe(HOUR_MS);
    await server.deps.keyRing.refresh();
    expect(await publishedKids(rp)).toEqual([rsOld, rsNew, esOld]);
    // A relying party that reads the JWKS now (and caches it) already knows the key that will sign.
    const cachingRp = await rpFor(server, client);

    // A pending key signs nothing: a token issued now still carries the old kid.
    const whilePending: Tokens = await oidc.refreshTokenGrant(cachingRp, before.refresh_token!);
    expect(kidOf(whilePending.id_token)).toBe(rsOld);
    expect(whilePending.claims()?.sub).toBe(accountId);

    // Activation: nothing is written; the node computes it from the time.
    clock.advance(HOUR_MS + 1000);
    await server.deps.keyRing.refresh();
    const after: Tokens = await oidc.refreshTokenGrant(cachingRp, whilePending.refresh_token ?? before.refresh_token!);
    expect(kidOf(after.id_token)).toBe(rsNew);
    expect(after.claims()?.sub).toBe(accountId);
    // The old key stays published: both tokens verify against the JWKS as served now.
    expect(await publishedKids(rp)).toEqual([rsNew, rsOld, esOld]);
    const jwks = createRemoteJWKSet(new URL(rp.serverMetadata().jwks_uri!));
    for (const token of [before.id_token, whilePending.id_token, after.id_token]) {
      const { payload } = await jwtVerify(token!, jwks, { issuer: server.url, audience: client.clientId });
      expect(payload.sub).toBe(accountId);
    }
    // A fresh sign-in signs with the new key too, and openid-client accepts it.
    const { tokens: fresh } = await signInForTokens(await rpFor(server, client), new UserAgent(server.url), USER, { scope: 'openid email' });
    expect(kidOf(fresh.id_token)).toBe(rsNew);

    // The provider itself still accepts the old key's tokens (an id_token_hint at sign-out).
    expect(await endSessionWith(before.id_token!)).toBe(200);
    expect(await endSessionWith(after.id_token!)).toBe(200);

    // The old key is still needed: retiring it is refused, and says until when.
    const old = (await keys.list()).find((v) => v.kid === rsOld);
    expect(old).toMatchObject({ state: 'published-only', supersededAt: rotated!.activatedAt });
    expect(old!.retireAfter!.getTime() - old!.supersededAt!.getTime()).toBe(keys.retentionSeconds * 1000);
    // At least the longest ID token a client may be given (a day), whatever ID_TOKEN_TTL says.
    expect(keys.retentionSeconds).toBeGreaterThanOrEqual(24 * 60 * 60);
    expect(await refusal(keys.retire(rsOld, { force: false, actor: ACTOR }))).toMatch(
      new RegExp(`^signing_key\\.still_needed: .*${old!.retireAfter!.toISOString().replace(/\./g, '\\.')}.*--force`),
    );
    // The active key is never retired, not even with --force.
    expect(await refusal(keys.retire(rsNew, { force: true, actor: ACTOR }))).toMatch(/^signing_key\.signing: .*active RS256 key/);
    expect(await publishedKids(rp)).toContain(rsOld);

    // Just before its retirement time it is still published; after it, it leaves the JWKS on its own.
    clock.set(old!.retireAfter!.getTime() - 1000);
    await server.deps.keyRing.refresh();
    expect(await publishedKids(rp)).toContain(rsOld);
    clock.set(old!.retireAfter!.getTime());
    await server.deps.keyRing.refresh();
    expect(await publishedKids(rp)).toEqual([rsNew, esOld]);
    expect((await keys.list()).find((v) => v.kid === rsOld)).toMatchObject({ state: 'retired', retiredAt: null });
    // Past its retirement time a hint it signed no longer verifies: the provider ignores a hint's expiry, not its key.
    expect(await endSessionWith(before.id_token!)).toBe(400);
    expect(await endSessionWith(after.id_token!)).toBe(200);
    // Retiring it by hand now needs no --force, and removes its private key.
    await keys.retire(rsOld, { force: false, actor: ACTOR });
    const row = await server.deps.db.collection('signing_keys').findOne({ _id: rsOld as never });
    expect(row).toMatchObject({ retiredAt: clock.now() });
    expect(row).not.toHaveProperty('sealedJwk');
    // ES256 was never rotated: its key signed and published throughout.
    expect(keystoreKids(server.deps.provider)).toEqual([rsNew, esOld]);
  });

  it('a pending key retired early cancels the rotation; one close to activation needs --force', async () => {
    const keys = server.deps.signingKeys;
    const rp = await rpFor(server, client);
    const published = await publishedKids(rp);
    const [pending] = await keys.rotate(['ES256'], ACTOR);
    const kid = pending?.kid ?? '';
    // A second rotation of the same algorithm waits for the first.
    expect(await refusal(keys.rotate(['ES256'], ACTOR))).toMatch(new RegExp(`^signing_key\\.rotation_pending: .*\\(${kid}\\)`));
    await server.deps.keyRing.refresh();
    expect(await publishedKids(rp)).toEqual([...published, kid]);

    // An hour ahead of activation: retiring it hurts nobody.
    const cancelled = await keys.retire(kid, { force: false, actor: ACTOR });
    expect(cancelled).toMatchObject({ forced: false, view: { state: 'retired' } });
    await server.deps.keyRing.refresh();
    expect(await publishedKids(rp)).toEqual(published);

    // Seconds before activation: some node might already sign with it.
    const [soon] = await keys.rotate(['ES256'], ACTOR);
    clock.advance(HOUR_MS - 10_000);
    expect(await refusal(keys.retire(soon!.kid, { force: false, actor: ACTOR }))).toMatch(/^signing_key\.still_needed: .* is still needed: it starts signing at .*--force/);
    expect((await keys.retire(soon!.kid, { force: true, actor: ACTOR })).forced).toBe(true);
    clock.advance(20_000);
    await server.deps.keyRing.refresh();
    // The retired key never activated: the old ES256 key still signs.
    expect(await publishedKids(rp)).toEqual(published);
    expect((await keys.list()).filter((v) => v.alg === 'ES256' && v.state === 'active').map((v) => v.kid)).toEqual([published.at(-1)]);

    const events = await server.deps.db.collection('audit_events').find({ action: { $in: ['signing_key.rotated', 'signing_key.retired'] } }).toArray();
    expect(events.filter((e) => e.action === 'signing_key.rotated' && e.outcome === 'success').length).toBeGreaterThanOrEqual(3);
    expect(events.some((e) => e.action === 'signing_key.retired' && e.outcome === 'failure' && e.reason === 'still_needed')).toBe(true);
    expect(events.find((e) => e.action === 'signing_key.retired' && (e.target as { id: string }).id === soon!.kid && e.outcome === 'success')).toMatchObject({
      details: { forced: true, previousState: 'pending' },
    });
  });

  it('unknown and already retired keys are refused with a clear message', async () => {
    const keys = server.deps.signingKeys;
    expect(await refusal(keys.retire('no-such-kid', { force: true, actor: ACTOR }))).toBe('signing_key.not_found: no signing key with kid "no-such-kid" (see `keys list`)');
    const retired = (await keys.list()).find((v) => v.retiredAt !== null);
    expect(await refusal(keys.retire(retired!.kid, { force: true, actor: ACTOR }))).toMatch(/^signing_key\.already_retired/);
  });
});

describe('two nodes on one database follow a rotation without a restart', () => {
  let a: TestServer;
  let b: TestServer;
  /** The command line's services on the same database, as `npm run cli -- keys …` would have them. */
  let cli: Core;
  const PROPAGATION_MS = 3000;

  beforeAll(async () => {
    a = await startTestServer('key_rotation_nodes');
    b = await startTestServer('key_rotation_nodes', { mongoUri: a.mongoUri });
    cli = createCliServices(a.connection, { KEY_PREPUBLISH_SECONDS: '3' });
  });

  afterAll(async () => {
    await cli?.close();
    await b?.close();
    await a?.close();
  });

  const jwksOf = async (server: TestServer) => {
    const res = await fetch(`${server.url}/jwks`);
    return ((await res.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
  };

  it('a key rotated in elsewhere is published by both nodes within seconds, and both sign with it once it activates', async () => {
    const before = await jwksOf(a);
    expect(await jwksOf(b)).toEqual(before);
    const client = await a.deps.clients.create({ name: 'Two nodes', redirectUris: [REDIRECT_URI] });
    await a.deps.accounts.create({ ...USER, emailVerified: true });
    const rpB = await rpFor(b, client);
    const { tokens } = await signInForTokens(rpB, new UserAgent(b.url), USER, { scope: 'openid offline_access', prompt: 'consent' });
    expect(kidOf(tokens.id_token)).toBe(before[0]);

    const [rotated] = await cli.signingKeys.rotate(['RS256'], ACTOR);
    const kid = rotated?.kid ?? '';
    const published = await within(PROPAGATION_MS, async () => (await jwksOf(a)).includes(kid) && (await jwksOf(b)).includes(kid));
    expect(published).toBeLessThan(PROPAGATION_MS);
    // Published before it signs, on both nodes.
    expect(Date.now()).toBeLessThan(rotated!.activatedAt.getTime());
    expect(keystoreKids(a.deps.provider)[0]).toBe(before[0]);
    expect(keystoreKids(b.deps.provider)[0]).toBe(before[0]);
    // A relying party reading the JWKS during the pre-publication time caches the new key with it
    // (openid-client does not refetch a JWKS it read seconds ago: exactly why keys are published early).
    const rpDuring = await rpFor(b, client);
    const during: Tokens = await oidc.refreshTokenGrant(rpDuring, tokens.refresh_token!);
    expect(kidOf(during.id_token)).toBe(before[0]);

    // Activation reaches every node from the time alone (no write), within a tick of it.
    const activation = rotated!.activatedAt.getTime();
    await within(activation - Date.now() + 1500, async () => keystoreKids(a.deps.provider)[0] === kid && keystoreKids(b.deps.provider)[0] === kid);
    expect(Date.now()).toBeGreaterThanOrEqual(activation);
    const refreshed: Tokens = await oidc.refreshTokenGrant(rpDuring, during.refresh_token ?? tokens.refresh_token!);
    expect(kidOf(refreshed.id_token)).toBe(kid);
    // Both nodes still publish the old key, which the first token needs.
    expect(await jwksOf(a)).toContain(before[0]);
    expect(await jwksOf(b)).toContain(before[0]);

    // Retired by hand (--force): gone from both nodes' JWKS within seconds.
    await cli.signingKeys.retire(before[0]!, { force: true, actor: ACTOR });
    await within(PROPAGATION_MS, async () => !(await jwksOf(a)).includes(before[0]!) && !(await jwksOf(b)).includes(before[0]!));
    expect(await jwksOf(a)).toEqual(await jwksOf(b));
    expect(a.logs.some((line) => line.includes('signing keys switched'))).toBe(true);
  });
});
