import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { AppError } from '../../src/http/app-error.js';
import { createMailer } from '../../src/mail/mailer.js';
import {
  INVITATIONS_COLLECTION,
  INVITATION_USES_COLLECTION,
  createInvitationService,
  invitationTokenHash,
} from '../../src/invitations/invitation.service.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const ADMIN = { type: 'account' as const, id: 'admin-1', label: 'admin@example.com' };
const BY_ADMIN = fullAuthority(ADMIN);
const DAY_MS = 24 * 60 * 60 * 1000;

describe('invitation service', () => {
  let server: TestServer;
  let smtp: MailServer;

  const invitations = () => server.deps.invitations;
  const records = () => server.deps.db.collection(INVITATIONS_COLLECTION);
  const useRecords = () => server.deps.db.collection(INVITATION_USES_COLLECTION);
  /** Everything stored about invitations and every audit event and log line: where a token must never be. */
  const expectTokenNowhere = async (token: string) => {
    const stored = [
      ...(await records().find().toArray()),
      ...(await useRecords().find().toArray()),
      ...(await server.deps.db.collection(AUDIT_COLLECTION).find().toArray()),
    ];
    expect(JSON.stringify(stored)).not.toContain(token);
    expect(server.logs.join('\n')).not.toContain(token);
  };
  const snapshot = async () => ({
    invitations: await records().find().sort({ _id: 1 }).toArray(),
    uses: await useRecords().find().sort({ _id: 1 }).toArray(),
    audit: await server.deps.db.collection(AUDIT_COLLECTION).countDocuments(),
  });

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('invitations', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
  });

  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  it('creates an invitation: a 256-bit token in the link, only its hash stored, audited without it', async () => {
    const before = Date.now();
    const created = await invitations().create({ email: 'New.Person@Example.com', maxUses: 1, expiresInDays: 3 }, BY_ADMIN);
    expect(created.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.link).toBe(`${server.url}/sign-up?invitation=${created.token}`);
    expect(created.mailed).toBe(false);
    expect(created.view).toMatchObject({ email: 'new.person@example.com', maxUses: 1, usesCount: 0, state: 'pending', createdBy: ADMIN });
    expect(created.view.id).toMatch(/^[A-Za-z0-9]{22}$/);
    expect(created.view.expiresAt.getTime() - created.view.createdAt.getTime()).toBe(3 * DAY_MS);
    expect(created.view.createdAt.getTime()).toBeGreaterThanOrEqual(before);

    const stored = await records().findOne({ _id: created.view.id } as never);
    expect(stored).toMatchObject({ tokenHash: invitationTokenHash(created.token), email: 'new.person@example.com', revokedAt: null });
    expect(stored?.tokenHash).not.toBe(created.token);

    const { events } = await server.deps.audit.list({ action: 'invitation.created', target: created.view.id }, { limit: 5 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actor: ADMIN, target: { type: 'invitation', id: created.view.id }, details: { maxUses: 1 } });
    await expectTokenNowhere(created.token);
  });

  it('defaults to one use for seven days, open to anyone', async () => {
    const { view } = await invitations().create({});
    expect(view).toMatchObject({ maxUses: 1, state: 'pending', createdBy: { type: 'system' } });
    expect(view).not.toHaveProperty('email');
    expect(view.expiresAt.getTime() - view.createdAt.getTime()).toBe(7 * DAY_MS);
  });

  it('refuses bad input, storing nothing', async () => {
    const before = await records().countDocuments();
    for (const input of [
      { maxUses: 0 },
      { maxUses: 1.5 },
      { maxUses: 1001 },
      { expiresInDays: 0 },
      { expiresInDays: 91 },
      { email: 'not an address' },
      { sendEmail: true },
      { roles: ['admin'] },
    ]) {
      await expect(invitations().create(input as never, BY_ADMIN)).rejects.toMatchObject({ constructor: expect.any(Function), status: 400, code: 'invitation.invalid' });
    }
    await expect(invitations().create({ maxUses: -1 })).rejects.toBeInstanceOf(AppError);
    expect(await records().countDocuments()).toBe(before);
  });

  it('an email-bound invitation accepts only its address, in any case', async () => {
    const { token, view } = await invitations().create({ email: 'bound@example.com', maxUses: 2 });
    expect(await invitations().check(token, 'someone.else@example.com')).toEqual({ valid: false, reason: 'invalid' });
    expect(await invitations().redeem(token, 'someone.else@example.com')).toEqual({ ok: false, reason: 'invalid' });
    expect(await invitations().check(token, 'not-an-address')).toEqual({ valid: false, reason: 'invalid' });

    expect(await invitations().check(token)).toMatchObject({ valid: true, invitationId: view.id, boundEmail: 'bound@example.com' });
    expect(await invitations().check(token, ' BOUND@Example.COM ')).toMatchObject({ valid: true, invitationId: view.id });
    expect(await invitations().redeem(token, 'Bound@Example.com')).toEqual({ ok: true, invitationId: view.id, use: 0 });

    const { events } = await server.deps.audit.list({ action: 'invitation.redeemed', target: view.id }, { limit: 5 });
    expect(events.map((e) => [e.outcome, e.reason ?? null, e.actor.label ?? null])).toEqual([
      ['success', null, 'bound@example.com'],
      ['failure', 'wrong_email', 'someone.else@example.com'],
    ]);
  });

  it('an open invitation accepts any address, up to its uses', async () => {
    const { token, view } = await invitations().create({ maxUses: 2 });
    expect(await invitations().check(token, 'a@example.com')).toMatchObject({ valid: true });
    expect(await invitations().check(token)).not.toHaveProperty('boundEmail');
    expect(await invitations().redeem(token, 'a@example.com')).toMatchObject({ ok: true, use: 0 });
    expect(await invitations().redeem(token, 'b@example.com')).toMatchObject({ ok: true, use: 1 });
    expect(await invitations().redeem(token, 'c@example.com')).toEqual({ ok: false, reason: 'invalid' });
    expect(await invitations().check(token, 'c@example.com')).toEqual({ valid: false, reason: 'invalid' });
    expect(await invitations().get(view.id)).toMatchObject({ usesCount: 2, state: 'used' });
    const { events } = await server.deps.audit.list({ action: 'invitation.redeemed', target: view.id, outcome: 'failure' }, { limit: 5 });
    expect(events.map((e) => e.reason)).toEqual(['used_up']);
  });

  it('check() has no side effects', async () => {
    const { token, view } = await invitations().create({ email: 'check@example.com' });
    const before = await snapshot();
    for (let i = 0; i < 5; i++) {
      await invitations().check(token, 'check@example.com');
      await invitations().check(token, 'other@example.com');
      await invitations().check(`${token.slice(0, -1)}A`);
    }
    expect(await snapshot()).toEqual(before);
    expect(await invitations().get(view.id)).toMatchObject({ usesCount: 0, state: 'pending' });
  });

  it('unknown and malformed tokens are simply invalid', async () => {
    const before = await snapshot();
    for (const token of ['', 'x', 'A'.repeat(43), '$'.repeat(43), 'A'.repeat(5000)]) {
      expect(await invitations().check(token, 'a@example.com')).toEqual({ valid: false, reason: 'invalid' });
      expect(await invitations().redeem(token, 'a@example.com')).toEqual({ ok: false, reason: 'invalid' });
    }
    expect(await snapshot()).toEqual(before);
  });

  it('expires: refused after expiresAt, with the same answer; the admin sees "expired"', async () => {
    let clock = Date.now();
    const service = createInvitationService({ db: server.deps.db, audit: server.deps.audit, logger: server.deps.logger, issuer: server.url, now: () => clock });
    const { token, view } = await service.create({ email: 'late@example.com', expiresInDays: 1 });
    clock += DAY_MS - 1000;
    expect(await service.check(token, 'late@example.com')).toMatchObject({ valid: true });
    clock += 1000;
    expect(await service.check(token, 'late@example.com')).toEqual({ valid: false, reason: 'invalid' });
    expect(await service.redeem(token, 'late@example.com')).toEqual({ ok: false, reason: 'invalid' });
    expect(await service.get(view.id)).toMatchObject({ state: 'expired', usesCount: 0 });
    const { events } = await server.deps.audit.list({ action: 'invitation.redeemed', target: view.id }, { limit: 5 });
    expect(events.map((e) => [e.outcome, e.reason])).toEqual([['failure', 'expired']]);
  });

  it('revokes once, audited; a revoked invitation is refused with the same answer', async () => {
    const { token, view } = await invitations().create({ maxUses: 5 });
    expect(await invitations().revoke(view.id, BY_ADMIN)).toBe(true);
    expect(await invitations().revoke(view.id, BY_ADMIN)).toBe(false);
    expect(await invitations().revoke('NoSuchInvitation000000', BY_ADMIN)).toBe(false);
    expect(await invitations().revoke('../../etc', BY_ADMIN)).toBe(false);
    expect(await invitations().check(token, 'a@example.com')).toEqual({ valid: false, reason: 'invalid' });
    expect(await invitations().redeem(token, 'a@example.com')).toEqual({ ok: false, reason: 'invalid' });
    expect(await invitations().get(view.id)).toMatchObject({ state: 'revoked', usesCount: 0 });
    const revoked = await server.deps.audit.list({ action: 'invitation.revoked', target: view.id }, { limit: 5 });
    expect(revoked.events).toHaveLength(1);
    expect(revoked.events[0]).toMatchObject({ outcome: 'success', actor: ADMIN });
    await expectTokenNowhere(token);
  });

  it('100 concurrent redemptions of a 3-use invitation: exactly 3 succeed, 3 slots stored', async () => {
    const { token, view } = await invitations().create({ maxUses: 3 });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => invitations().redeem(token, `racer${i}@example.com`)));
    const wins = results.filter((r) => r.ok);
    expect(wins).toHaveLength(3);
    expect(wins.map((w) => (w.ok ? w.use : -1)).sort()).toEqual([0, 1, 2]);
    expect(await useRecords().countDocuments({ invitationId: view.id })).toBe(3);
    expect(await invitations().get(view.id)).toMatchObject({ usesCount: 3, state: 'used' });
    await server.deps.audit.flush();
    const { events } = await server.deps.audit.list({ action: 'invitation.redeemed', target: view.id, outcome: 'success' }, { limit: 200 });
    expect(events).toHaveLength(3);
  });

  it('release() gives a use back for a sign-up that did not go through', async () => {
    const { token, view } = await invitations().create({ maxUses: 1 });
    const first = await invitations().redeem(token, 'a@example.com');
    expect(first.ok).toBe(true);
    expect(await invitations().redeem(token, 'b@example.com')).toMatchObject({ ok: false });
    if (first.ok) await invitations().release(first);
    expect(await invitations().get(view.id)).toMatchObject({ usesCount: 0, state: 'pending' });
    expect(await invitations().redeem(token, 'b@example.com')).toMatchObject({ ok: true, use: 0 });
  });

  it('mails an email-bound invitation through SMTP: the link in the body, never in the subject', async () => {
    const to = 'mailed@example.com';
    const before = smtp.countFor(to);
    const created = await invitations().create({ email: to, sendEmail: true, expiresInDays: 2 }, BY_ADMIN);
    expect(created.mailed).toBe(true);
    const mail = await smtp.waitForMail(to, { after: before });
    expect(mail.subject).toBe(`You are invited to ${server.config.productName}`);
    expect(mail.subject).not.toContain(created.token);
    expect(mail.text).toContain(created.link);
    expect(mail.text).not.toContain('&amp;');
    expect(mail.html).toContain(`href="${created.link}"`);
    expect(mail.text).toContain(created.view.expiresAt.toISOString().slice(0, 10));
    await expectTokenNowhere(created.token);
  });

  it('a mail that cannot be sent leaves the invitation standing, says so, and logs no link', async () => {
    // A real SMTP transport to a port nobody listens on.
    const closed = await startMailServer();
    const port = closed.port;
    await closed.close();
    const mailer = createMailer({ config: { ...server.config, mail: { ...server.config.mail, smtp: { url: `smtp://127.0.0.1:${port}` } } }, logger: server.deps.logger });
    const service = createInvitationService({ db: server.deps.db, audit: server.deps.audit, logger: server.deps.logger, issuer: server.url, mailer });
    try {
      const created = await service.create({ email: 'unreachable@example.com', sendEmail: true });
      expect(created.mailed).toBe(false);
      expect(await service.check(created.token, 'unreachable@example.com')).toMatchObject({ valid: true });
      expect(server.logs.join('\n')).toContain('invitation mail failed');
      await expectTokenNowhere(created.token);
    } finally {
      mailer.close();
    }
  });

  it('sweeps invitations that ended over 30 days ago, with their uses', async () => {
    const old = await invitations().create({ maxUses: 2, expiresInDays: 1 });
    await invitations().redeem(old.token, 'x@example.com');
    const live = await invitations().create({});
    const later = new Date(Date.now() + 32 * DAY_MS);
    expect(await invitations().sweep(later)).toBeGreaterThanOrEqual(1);
    expect(await invitations().get(old.view.id)).toBeUndefined();
    expect(await useRecords().countDocuments({ invitationId: old.view.id })).toBe(0);
    // Expires in 7 days: ended 25 days before `later`, so kept.
    expect(await invitations().get(live.view.id)).toBeDefined();
  });
});
