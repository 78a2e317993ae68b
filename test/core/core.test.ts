/**
 * The core the server and the command line share (buildCore): every service built once on one
 * clock, one list of stores for indexes and the sweep, and a close() that lets audit writes land.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import { loadConfig } from '../../src/config/config.js';
import { buildCore } from '../../src/core/core.js';
import { connectDatabase } from '../../src/db/connect.js';
import { AppError } from '../../src/http/app-error.js';
import { quietLogger } from '../support/cli.js';
import { createTestClock } from '../support/clock.js';
import { testDatabaseUri } from '../support/database.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from '../support/test-server.js';

const config = loadConfig({ NODE_ENV: 'test', MONGODB_URI: 'mongodb://unused/', COOKIE_KEYS: TEST_COOKIE_KEY, ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS });

describe('buildCore', () => {
  let connection: Connection;

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('core'), quietLogger());
  });

  afterAll(async () => {
    await connection?.dropDatabase().catch(() => undefined);
    await connection?.close();
  });

  it('makes every store’s indexes from one list, and the unique ones refuse duplicates', async () => {
    const core = buildCore({ config, logger: quietLogger(), connection });
    expect(core.stores.map((s) => s.name)).toEqual([
      'accounts',
      'clients',
      'api resources',
      'oidc',
      'email codes',
      'limits',
      'totp',
      'audit',
      'registration tokens',
      'mail outbox',
      'back-channel logout',
      'invitations',
      'sign-up',
      'password reset',
      'known browsers',
      'signing keys',
    ]);
    await core.ensureIndexes();
    await core.accounts.create({ email: 'once@example.com', password: 'correct horse battery staple' });
    await expect(core.accounts.create({ email: 'once@example.com', password: 'correct horse battery staple' })).rejects.toMatchObject({ status: 409, code: 'account.email_taken' });
    await core.close();
  });

  it('gives every service the one clock: a code expires when the clock moves past its lifetime, and the sweep removes it', async () => {
    const clock = createTestClock();
    const core = buildCore({ config, logger: quietLogger(), connection, clock });
    await core.ensureIndexes();
    const issued = await core.emailCodes.issue({ email: 'clock@example.com', accountId: 'acct-clock', binding: 'uid-core-clock', purpose: 'sign-in' });
    expect(issued).toMatchObject({ ok: true, expiresAt: new Date(clock.nowMs() + config.emailCode.ttlSeconds * 1000) });
    clock.advance(config.emailCode.ttlSeconds * 1000 + 1);
    const code = issued.ok ? issued.code : '';
    expect(await core.emailCodes.verify({ binding: 'uid-core-clock', purpose: 'sign-in', code })).toMatchObject({ ok: false, reason: 'expired' });
    clock.advance(24 * 60 * 60 * 1000);
    expect(await core.sweep()).toBeGreaterThan(0);
    await core.close();
  });

  it('close() waits for audit writes still in flight, and twice is the same as once', async () => {
    const core = buildCore({ config, logger: quietLogger(), connection });
    await core.ensureIndexes();
    void core.audit.record({ action: 'user.created', outcome: 'success', actor: { type: 'system' }, target: { type: 'account', id: 'flushed' } });
    await Promise.all([core.close(), core.close()]);
    const page = await core.audit.list({ target: 'flushed' }, { limit: 10 });
    expect(page.events.map((e) => e.action)).toEqual(['user.created']);
  });

  it('mints a registration token without a server provider (the command line)', async () => {
    const core = buildCore({ config, logger: quietLogger(), connection });
    await core.ensureIndexes();
    const { token, view } = await core.registrationTokens.create({ uses: 1 });
    expect(token.length).toBeGreaterThan(20);
    expect((await core.registrationTokens.list()).map((t) => t.id)).toContain(view.id);
    await core.close();
  });
});

describe('AppError from the catalogue', () => {
  it('takes status and message from the code, and the older form still works', () => {
    expect(new AppError('user.not_found')).toMatchObject({ status: 404, code: 'user.not_found', expose: true });
    expect(new AppError('client.not_found', { clientId: 'abc' }).message).toBe('no client with id "abc"');
    expect(new AppError('request.too_large', { what: 'form' })).toMatchObject({ status: 413, message: 'The form is too large.' });
    expect(new AppError(418, 'legacy.code', 'Old style')).toMatchObject({ status: 418, code: 'legacy.code', message: 'Old style' });
  });
});
