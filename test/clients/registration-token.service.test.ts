import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { fullAuthority } from '../../src/clients/admin-authority.js';
import {
  REGISTRATION_POLICIES,
  REGISTRATION_TOKENS_COLLECTION,
  REGISTRATION_TOKEN_USES_COLLECTION,
  registrationTokenId,
} from '../../src/clients/registration-token.service.js';
import { AppError } from '../../src/http/app-error.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { REDIRECT_URI } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const ADMIN = { type: 'account' as const, id: 'admin-1', label: 'admin@example.com' };
/** An administrator acting in the console (registration tokens need no scope beyond the surface's). */
const BY_ADMIN = fullAuthority(ADMIN);
const DAY_MS = 24 * 60 * 60 * 1000;

describe('registration token service', () => {
  let server: TestServer;

  const register = async (token: string) => {
    const res = await fetch(`${server.url}/reg`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ client_name: 'RP', redirect_uris: [REDIRECT_URI] }),
    });
    const body = (await res.json()) as { error?: string; client_id?: string };
    return { status: res.status, body };
  };
  const iatRecords = () => server.deps.db.collection<{ _id: string }>(collectionName('InitialAccessToken'));
  const allAuditText = async () => JSON.stringify(await server.deps.db.collection('audit_events').find().toArray());

  beforeAll(async () => {
    server = await startTestServer('registration_tokens', { env: { DYNAMIC_REGISTRATION: 'true' } });
  });

  afterAll(async () => {
    await server.close();
  });

  it('creates a token: the value once, a hash-derived id, limits and creator on record', async () => {
    const before = Date.now();
    const { token, view } = await server.deps.registrationTokens.create({ expiresInSeconds: 3600, uses: 2 }, BY_ADMIN);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(view.id).toBe(registrationTokenId(token));
    expect(view.id).not.toContain(token.slice(0, 8));
    expect(view).toMatchObject({ usesAllowed: 2, usesCount: 0, revoked: false, createdBy: ADMIN });
    expect(view.expiresAt!.getTime()).toBeGreaterThanOrEqual(before + 3600_000);
    expect(view.expiresAt!.getTime()).toBeLessThanOrEqual(Date.now() + 3600_000);

    // The provider's own record, under the value (its opaque format), carrying every policy.
    const record = await server.deps.db
      .collection<{ _id: string; payload: string }>(collectionName('InitialAccessToken'))
      .findOne({ _id: token });
    expect(JSON.parse(record!.payload)).toMatchObject({ kind: 'InitialAccessToken', policies: [...REGISTRATION_POLICIES] });
    // Our own record never holds the value.
    const ours = await server.deps.db.collection(REGISTRATION_TOKENS_COLLECTION).findOne({ _id: view.id } as never);
    expect(JSON.stringify(ours)).not.toContain(token);

    const { events } = await server.deps.audit.list({ action: 'registration_token.created', target: view.id }, { limit: 5 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      outcome: 'success',
      actor: ADMIN,
      target: { type: 'registration_token', id: view.id },
      details: { usesAllowed: 2, expiresAt: view.expiresAt!.toISOString() },
    });
    expect(await allAuditText()).not.toContain(token);
  });

  it('defaults to no expiry and unlimited uses', async () => {
    const { view } = await server.deps.registrationTokens.create({});
    expect(view.expiresAt).toBeUndefined();
    expect(view.usesAllowed).toBeUndefined();
    expect(view.createdBy).toEqual({ type: 'system' });
  });

  it('refuses out-of-range options', async () => {
    for (const options of [{ uses: 0 }, { uses: 1.5 }, { uses: 1001 }, { expiresInSeconds: 10 }, { expiresInSeconds: 400 * 24 * 3600 }]) {
      await expect(server.deps.registrationTokens.create(options)).rejects.toMatchObject({
        constructor: AppError,
        status: 400,
        code: 'registration_token.invalid',
      });
    }
  });

  it('counts uses, limited and unlimited, and lists newest first', async () => {
    const limited = await server.deps.registrationTokens.create({ uses: 2 });
    const unlimited = await server.deps.registrationTokens.create({});
    expect((await register(limited.token)).status).toBe(201);
    expect((await register(limited.token)).status).toBe(201);
    expect((await register(limited.token)).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await register(unlimited.token)).status).toBe(201);

    const list = await server.deps.registrationTokens.list();
    const ids = list.map((v) => v.id);
    expect(ids.indexOf(unlimited.view.id)).toBeLessThan(ids.indexOf(limited.view.id));
    expect(list.find((v) => v.id === limited.view.id)).toMatchObject({ usesAllowed: 2, usesCount: 2 });
    expect(list.find((v) => v.id === unlimited.view.id)).toMatchObject({ usesCount: 3 });
    expect(list.find((v) => v.id === unlimited.view.id)).not.toHaveProperty('usesAllowed');

    const { events } = await server.deps.audit.list({ action: 'registration_token.used', target: limited.view.id }, { limit: 10 });
    expect(events.map((e) => [e.outcome, e.reason ?? null, e.details?.use ?? null])).toEqual([
      ['failure', 'uses_exhausted', null],
      ['success', null, 2],
      ['success', null, 1],
    ]);
    expect(await allAuditText()).not.toContain(limited.token);
    expect(await allAuditText()).not.toContain(unlimited.token);
  });

  it('revokes once: the provider record goes, later registrations are refused, an audit event names the admin', async () => {
    const { token, view } = await server.deps.registrationTokens.create({ uses: 5 });
    expect(await server.deps.registrationTokens.revoke(view.id, BY_ADMIN)).toBe(true);
    expect(await server.deps.registrationTokens.revoke(view.id, BY_ADMIN)).toBe(false);
    expect(await server.deps.registrationTokens.revoke('no-such-token', BY_ADMIN)).toBe(false);

    expect(await iatRecords().countDocuments({ _id: token })).toBe(0);
    expect((await server.deps.registrationTokens.list()).find((v) => v.id === view.id)).toMatchObject({ revoked: true });
    expect((await register(token)).body.error).toBe('invalid_token');

    const { events } = await server.deps.audit.list({ action: 'registration_token.revoked', target: view.id }, { limit: 5 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actor: ADMIN });
    expect(await allAuditText()).not.toContain(token);
  });

  it('refuses a revoked token even while the provider still has its record (the policy checks too)', async () => {
    const { token, view } = await server.deps.registrationTokens.create({ uses: 5 });
    await server.deps.db
      .collection(REGISTRATION_TOKENS_COLLECTION)
      .updateOne({ _id: view.id } as never, { $set: { revokedAt: new Date() } });
    const reply = await register(token);
    expect(reply).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
    const { events } = await server.deps.audit.list({ action: 'registration_token.used', target: view.id }, { limit: 5 });
    expect(events.map((e) => [e.outcome, e.reason])).toEqual([['failure', 'revoked']]);
  });

  it('fails closed for a token the provider issued without this service (no record of ours)', async () => {
    const token = await new server.deps.provider.InitialAccessToken({ policies: [...REGISTRATION_POLICIES] }).save();
    const before = await server.deps.db.collection('clients').countDocuments();
    expect(await register(token)).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
    expect(await server.deps.db.collection('clients').countDocuments()).toBe(before);
  });

  it('sweeps tokens that ended over 30 days ago, with their uses, and keeps the rest', async () => {
    const ended = await server.deps.registrationTokens.create({ expiresInSeconds: 60, uses: 3 });
    expect((await register(ended.token)).status).toBe(201);
    const revoked = await server.deps.registrationTokens.create({});
    await server.deps.registrationTokens.revoke(revoked.view.id);
    const active = await server.deps.registrationTokens.create({});

    // A month on: nothing has ended long enough yet.
    expect(await server.deps.registrationTokens.sweep(new Date(Date.now() + 29 * DAY_MS))).toBe(0);

    const removed = await server.deps.registrationTokens.sweep(new Date(Date.now() + 31 * DAY_MS));
    expect(removed).toBeGreaterThanOrEqual(2);
    const ids = (await server.deps.registrationTokens.list()).map((v) => v.id);
    expect(ids).not.toContain(ended.view.id);
    expect(ids).not.toContain(revoked.view.id);
    expect(ids).toContain(active.view.id);
    expect(await server.deps.db.collection(REGISTRATION_TOKEN_USES_COLLECTION).countDocuments({ tokenId: ended.view.id })).toBe(0);
  });
});
