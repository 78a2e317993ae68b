import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { createEmailChangeService, emailChangeBinding } from '../../src/accounts/email-change.service.js';
import type { EmailChangeService } from '../../src/accounts/email-change.service.js';
import { RESET_GRANTS_COLLECTION, RESET_TOKENS_COLLECTION } from '../../src/accounts/password-reset.service.js';
import type { MailServer } from '../support/mail-server.js';
import { waitForCodeMail } from '../support/mail-server.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';

/**
 * The email change service (email-change.service.ts): what reached the old inbox stops working
 * once the address changed (sign-in and reset codes, reset links and grants), and a code is
 * bound to the account and session that asked for it.
 */

describe('email change service', () => {
  let server: TestServer;
  let smtp: MailServer;
  let service: EmailChangeService;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('email_change_service'));
    service = createEmailChangeService(server.deps);
  });
  afterAll(() => stopMailingServer({ server, smtp }));

  it('after the change, codes, reset links and grants sent to the old address no longer work', async () => {
    const { accounts, emailCodes, db } = server.deps;
    const account = await accounts.create({ email: 'before@example.com', emailVerified: true });
    const signInCode = await emailCodes.issue({ email: account.email, accountId: account.id, binding: 'old-inbox-sign-in', purpose: 'sign-in' });
    const resetCode = await emailCodes.issue({ email: account.email, accountId: account.id, binding: 'old-inbox-reset', purpose: 'password-reset' });
    if (!signInCode.ok || !resetCode.ok) throw new Error('codes not issued');
    const later = new Date(Date.now() + 3600_000);
    await db.collection<{ _id: string }>(RESET_TOKENS_COLLECTION).insertOne({ _id: 'old-link', accountId: account.id, email: account.email, expiresAt: later } as never);
    await db.collection<{ _id: string }>(RESET_GRANTS_COLLECTION).insertOne({ _id: 'old-grant', accountId: account.id, expiresAt: later } as never);

    const binding = emailChangeBinding(account.id, 'session-1');
    const requested = await service.request({ account, newEmail: ' After@Example.com ', binding, ip: '192.0.2.1' });
    expect(requested).toMatchObject({ ok: true, email: 'after@example.com' });
    expect(await service.pending(binding)).toMatchObject({ email: 'after@example.com' });
    const code = (await waitForCodeMail(smtp, 'after@example.com')).code;

    // Another session of the same account, or another account, finds no code.
    expect(await service.verify({ account, code, binding: emailChangeBinding(account.id, 'session-2'), ip: '192.0.2.1' })).toEqual({ ok: false, reason: 'missing' });
    const stranger = await accounts.create({ email: 'stranger@example.com' });
    expect(await service.verify({ account: stranger, code, binding: emailChangeBinding(stranger.id, 'session-1'), ip: '192.0.2.1' })).toEqual({ ok: false, reason: 'missing' });

    const verified = await service.verify({ account, code, binding, ip: '192.0.2.1' });
    expect(verified).toMatchObject({ ok: true, previousEmail: 'before@example.com', account: { email: 'after@example.com', emailVerified: true } });
    expect(await service.pending(binding)).toBeUndefined();

    expect(await emailCodes.verify({ binding: 'old-inbox-sign-in', purpose: 'sign-in', code: signInCode.code })).toMatchObject({ ok: false });
    expect(await emailCodes.verify({ binding: 'old-inbox-reset', purpose: 'password-reset', code: resetCode.code })).toMatchObject({ ok: false });
    expect(await db.collection(RESET_TOKENS_COLLECTION).countDocuments({ accountId: account.id })).toBe(0);
    expect(await db.collection(RESET_GRANTS_COLLECTION).countDocuments({ accountId: account.id })).toBe(0);
    expect(await accounts.findByEmail('before@example.com')).toBeUndefined();
  });

  it('refuses malformed input without counting or sending anything', async () => {
    const account = await server.deps.accounts.create({ email: 'steady@example.com' });
    const binding = emailChangeBinding(account.id, 'session-1');
    const mails = smtp.messages.length;
    for (const newEmail of [undefined, 42, '', 'nope', ['a@example.com'], 'STEADY@example.com']) {
      const result = await service.request({ account, newEmail, binding, ip: '192.0.2.1' });
      expect(result.ok).toBe(false);
    }
    for (const code of [undefined, '', '12345', '1234567', 'abcdef', ['123456']]) {
      expect(await service.verify({ account, code, binding, ip: '192.0.2.1' })).toEqual({ ok: false, reason: 'format' });
    }
    expect(smtp.messages.length).toBe(mails);
    expect(await service.pending(binding)).toBeUndefined();
  });
});
