/**
 * Password reset against a real database and a real SMTP server: the same answer for unknown
 * addresses, tokens stored hashed and spent once, codes and links read from the mail, and what
 * completing a reset takes away (sessions, tokens) and leaves (second factors).
 */
import { createHash } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { ResetRequestResult, ResetVerifyResult } from '../../src/accounts/password-reset.service.js';
import { RESET_GRANTS_COLLECTION, RESET_TOKENS_COLLECTION } from '../../src/accounts/password-reset.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import { AppError } from '../../src/http/app-error.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { codeFrom } from '../support/mail-server.js';
import type { ReceivedMail } from '../support/mail-server.js';
import { startSelfService } from './self-service-harness.js';
import type { SelfServiceHarness } from './self-service-harness.js';

const OLD_PASSWORD = 'the old long passphrase';
const NEW_PASSWORD = 'a brand new passphrase';
let seq = 0;
const fresh = (label: string) => `pr-${label}-${(seq += 1)}@example.com`;
const IP = '198.51.100.40';

const tokenFrom = (mail: ReceivedMail): string => {
  const match = /password-reset\?token=([A-Za-z0-9_-]+)/.exec(mail.text);
  if (!match?.[1]) throw new Error('no reset link in the mail');
  return match[1];
};

describe('password reset service', () => {
  let h: SelfServiceHarness;

  beforeAll(async () => {
    h = await startSelfService('password_reset', { PASSWORD_RESET_ADDRESS_LIMIT: '1000', PASSWORD_RESET_IP_LIMIT: '100000' });
  });

  afterAll(async () => {
    await h?.close();
  });

  const requested = (result: ResetRequestResult) => {
    if (!result.ok) throw new Error(`expected a flow, got ${JSON.stringify(result)}`);
    return result;
  };
  const granted = (result: ResetVerifyResult) => {
    if (!result.ok) throw new Error(`expected a grant, got ${JSON.stringify(result)}`);
    return result.grant;
  };
  const nextMail = async <T>(to: string, run: () => Promise<T>): Promise<[T, ReceivedMail]> => {
    const after = h.smtp.countFor(to);
    const result = await run();
    return [result, await h.smtp.waitForMail(to, { after })];
  };
  const person = (label: string) => h.accounts.create({ email: fresh(label), password: OLD_PASSWORD, emailVerified: true, name: 'Person' });
  const db = () => h.connection.db!;

  it('answers an unknown address exactly like a known one, and stores only hashes of the token', async () => {
    const known = await person('known');
    const unknown = fresh('unknown');
    const tokensBefore = await db().collection(RESET_TOKENS_COLLECTION).countDocuments();
    const [a, knownMail] = await nextMail(known.email, () => h.passwordReset.request({ email: known.email, ip: IP }));
    const [b, unknownMail] = await nextMail(unknown, () => h.passwordReset.request({ email: unknown, ip: IP }));
    const ka = requested(a);
    const kb = requested(b);
    expect(Object.keys(ka).sort()).toEqual(Object.keys(kb).sort());
    expect(ka.expiresAt.getTime() - h.clock.now()).toBe(h.config.passwordReset.ttlSeconds * 1000);
    expect(kb.expiresAt.getTime() - h.clock.now()).toBe(h.config.passwordReset.ttlSeconds * 1000);
    // The same writes: one token record each.
    expect(await db().collection(RESET_TOKENS_COLLECTION).countDocuments()).toBe(tokensBefore + 2);

    expect(knownMail.subject).toBe(`Reset your ${h.config.productName} password`);
    expect(codeFrom(knownMail)).toMatch(/^\d{6}$/);
    const token = tokenFrom(knownMail);
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(16);
    expect(unknownMail.subject).toBe(`${h.config.productName}: password reset`);
    expect(unknownMail.text).toContain('there is no account');

    // Stored hashed: nothing in the collection holds the token itself.
    const stored = await db().collection(RESET_TOKENS_COLLECTION).find({}).toArray();
    expect(JSON.stringify(stored)).not.toContain(token);
    expect(stored.some((r) => r._id === (createHash('sha256').update(token).digest('base64url') as unknown))).toBe(true);

    // The unknown address's code and link can never be redeemed.
    expect(await h.passwordReset.verifyCode({ flowId: kb.flowId, code: codeFrom(knownMail), ip: IP })).toEqual({ ok: false, reason: 'invalid' });
  });

  it('sends nothing to a disabled account, with the same answer', async () => {
    const disabled = await person('disabled');
    await h.accounts.setDisabled(disabled.id, true);
    const result = await h.passwordReset.request({ email: disabled.email, ip: IP });
    expect(result).toMatchObject({ ok: true, email: disabled.email });
    await h.mail.idle();
    expect(h.smtp.countFor(disabled.email)).toBe(0);
  });

  it('spends a link once, refuses an expired one, and kills the code with it', async () => {
    const account = await person('link');
    const [flow, mail] = await nextMail(account.email, () => h.passwordReset.request({ email: account.email, ip: IP }));
    const token = tokenFrom(mail);
    const grant = granted(await h.passwordReset.verifyToken({ token, ip: IP }));
    expect(grant).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await h.passwordReset.verifyToken({ token, ip: IP })).toEqual({ ok: false, reason: 'invalid' });
    expect(await h.passwordReset.verifyCode({ flowId: requested(flow).flowId, code: codeFrom(mail), ip: IP })).toEqual({ ok: false, reason: 'missing' });
    // Grants are stored hashed too.
    expect(JSON.stringify(await db().collection(RESET_GRANTS_COLLECTION).find({}).toArray())).not.toContain(grant);

    const [, late] = await nextMail(account.email, () => h.passwordReset.request({ email: account.email, ip: IP }));
    h.clock.advance(h.config.passwordReset.ttlSeconds + 1);
    expect(await h.passwordReset.verifyToken({ token: tokenFrom(late), ip: IP })).toEqual({ ok: false, reason: 'expired' });
    expect(await h.passwordReset.verifyToken({ token: 'not a token', ip: IP })).toEqual({ ok: false, reason: 'invalid' });
  });

  it('a new request does not cancel another browser\'s code', async () => {
    const account = await person('two-browsers');
    const [first, firstMail] = await nextMail(account.email, () => h.passwordReset.request({ email: account.email, ip: IP }));
    await nextMail(account.email, () => h.passwordReset.request({ email: account.email, ip: '203.0.113.50' }));
    expect(await h.passwordReset.verifyCode({ flowId: requested(first).flowId, code: codeFrom(firstMail), ip: IP })).toMatchObject({ ok: true });
  });

  it('completes: new password, sessions and tokens revoked, second factor kept, forced reset cleared, notice mailed', async () => {
    const account = await person('complete');
    const other = await person('bystander');
    await h.accounts.setPasswordResetRequired(account.id, true);
    await h.Account.updateOne({ _id: account.id }, { $set: { mfa: { totp: { secretSealed: 'sealed-secret', enabledAt: new Date() }, recoveryCodes: ['h1.k.x'] } } });
    for (const model of ['Session', 'RefreshToken', 'AccessToken', 'Grant']) {
      for (const accountId of [account.id, other.id]) {
        await db()
          .collection(collectionName(model))
          .insertOne({ _id: `${model}-${accountId}` as never, payload: JSON.stringify({ accountId }), accountId, expiresAt: new Date(Date.now() + 3_600_000) });
      }
    }

    const [flow, mail] = await nextMail(account.email, () => h.passwordReset.request({ email: account.email, ip: IP }));
    const grant = granted(await h.passwordReset.verifyCode({ flowId: requested(flow).flowId, code: codeFrom(mail), ip: IP }));

    // Refused input first: nothing changes, and the grant stays usable.
    expect(await h.passwordReset.complete({ grant, newPassword: 'too short!' })).toEqual({ ok: false, reason: 'weak_password', message: 'Use at least 12 characters.' });
    expect(await h.passwordReset.complete({ grant, newPassword: 'x\u0000'.repeat(10) })).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await h.passwordReset.complete({ grant: 'A'.repeat(43), newPassword: NEW_PASSWORD })).toEqual({ ok: false, reason: 'invalid_grant' });
    expect((await h.accounts.authenticate(account.email, OLD_PASSWORD)).ok).toBe(true);
    expect(await db().collection(collectionName('Session')).countDocuments({ accountId: account.id })).toBe(1);

    const [done, notice] = await nextMail(account.email, () => h.passwordReset.complete({ grant, newPassword: NEW_PASSWORD }));
    expect(done).toMatchObject({ ok: true, account: { id: account.id, passwordResetRequired: false, emailVerified: true } });
    expect(notice.subject).toBe(`Your ${h.config.productName} password was changed`);
    expect(notice.text).toContain(`${h.config.issuer}/password-reset`);
    expect((await h.accounts.authenticate(account.email, OLD_PASSWORD)).ok).toBe(false);
    expect((await h.accounts.authenticate(account.email, NEW_PASSWORD)).ok).toBe(true);
    for (const model of ['Session', 'RefreshToken', 'AccessToken', 'Grant']) {
      expect(await db().collection(collectionName(model)).countDocuments({ accountId: account.id })).toBe(0);
      expect(await db().collection(collectionName(model)).countDocuments({ accountId: other.id })).toBe(1);
    }
    const doc = await h.Account.findById(account.id).lean();
    expect(doc?.mfa?.totp?.secretSealed).toBe('sealed-secret');
    expect(doc?.mfa?.recoveryCodes).toEqual(['h1.k.x']);
    // The grant is spent.
    expect(await h.passwordReset.complete({ grant, newPassword: 'yet another passphrase' })).toEqual({ ok: false, reason: 'invalid_grant' });

    await h.audit.flush();
    const events = await db().collection(AUDIT_COLLECTION).find({ 'target.id': account.id }).toArray();
    expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(['account.password_reset_requested', 'account.password_reset_verified', 'account.password_reset']));
    expect(JSON.stringify(events)).not.toContain(NEW_PASSWORD);
  });

  it('limits requests per address, known or not, with the same answer', async () => {
    const limited = await startSelfService('password_reset_limits', { PASSWORD_RESET_ADDRESS_LIMIT: '2' });
    try {
      const known = await limited.accounts.create({ email: fresh('limit'), password: OLD_PASSWORD });
      for (const email of [known.email, fresh('limit-unknown')]) {
        const outcomes = [];
        for (let i = 0; i < 3; i += 1) outcomes.push(await limited.passwordReset.request({ email, ip: `198.51.100.${60 + i}` }));
        expect(outcomes.map((o) => o.ok)).toEqual([true, true, false]);
        expect(outcomes[2]).toMatchObject({ reason: 'throttled' });
      }
      expect(await limited.passwordReset.request({ email: 'nope', ip: IP })).toMatchObject({ ok: false, reason: 'invalid' });
    } finally {
      await limited.close();
    }
  });

  it('lets an administrator send a reset mail (the link only), refused for disabled and unknown accounts', async () => {
    const account = await person('admin-sent');
    const by = fullAuthority({ type: 'account', id: 'admin-1', label: 'admin@example.com' });
    const [sent, mail] = await nextMail(account.email, () => h.passwordReset.sendByAdmin(account.id, by));
    expect(sent).toMatchObject({ email: account.email });
    expect(mail.text).not.toMatch(/^\s*\d{6}\s*$/m);
    expect(granted(await h.passwordReset.verifyToken({ token: tokenFrom(mail), ip: IP }))).toMatch(/^[A-Za-z0-9_-]{43}$/);

    await expect(h.passwordReset.sendByAdmin('no-such-account', by)).rejects.toMatchObject({ status: 404, code: 'user.not_found' });
    await h.accounts.setDisabled(account.id, true);
    const refused = await h.passwordReset.sendByAdmin(account.id, by).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ status: 409, code: 'user.disabled' });
    await h.audit.flush();
    const events = await db().collection(AUDIT_COLLECTION).find({ action: 'user.password_reset_mail_sent', 'target.id': account.id }).toArray();
    expect(events.map((e) => e.outcome).sort()).toEqual(['failure', 'success']);
    expect(events.every((e) => e.actor.id === 'admin-1')).toBe(true);
  });
});
