/**
 * Self-service sign-up against a real database and a real SMTP server: the same answer for free
 * and taken addresses (the inbox alone learns which), codes read from the mail, expiry, single
 * use and the attempt limit, the pending-account rules, and a hundred sign-ups at once.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { SignUpStartResult } from '../../src/accounts/sign-up.service.js';
import { PENDING_DAYS, SIGN_UP_FLOWS_COLLECTION } from '../../src/accounts/sign-up.service.js';
import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import { EMAIL_CODES_COLLECTION } from '../../src/accounts/email-code.service.js';
import { codeFrom } from '../support/mail-server.js';
import { startSelfService } from './self-service-harness.js';
import type { SelfServiceHarness } from './self-service-harness.js';

const PASSWORD = 'a long enough passphrase';
const OTHER_PASSWORD = 'another long passphrase';
let seq = 0;
const fresh = (label: string) => `su-${label}-${(seq += 1)}@example.com`;

describe('sign-up service', () => {
  let h: SelfServiceHarness;

  beforeAll(async () => {
    h = await startSelfService('sign_up', { SIGN_UP_ADDRESS_LIMIT: '1000', SIGN_UP_IP_LIMIT: '100000' });
  });

  afterAll(async () => {
    await h?.close();
  });

  const started = (result: SignUpStartResult) => {
    if (!result.ok) throw new Error(`expected a flow, got ${JSON.stringify(result)}`);
    return result;
  };
  const nextMail = async (to: string, run: () => Promise<unknown>) => {
    const after = h.smtp.countFor(to);
    await run();
    return h.smtp.waitForMail(to, { after });
  };
  const accountCount = () => h.Account.countDocuments({});

  it('answers a taken address exactly like a free one; only the inbox tells them apart', async () => {
    const owner = await h.accounts.create({ email: fresh('owner'), password: OTHER_PASSWORD, emailVerified: true, name: 'Owner' });
    const before = await h.Account.findById(owner.id).lean();
    const free = fresh('free');

    let taken!: SignUpStartResult;
    const ownerMail = await nextMail(owner.email, async () => {
      taken = await h.signUp.start({ email: owner.email.toUpperCase(), name: 'Mallory', password: PASSWORD, ip: '198.51.100.1' });
    });
    let open!: SignUpStartResult;
    const codeMail = await nextMail(free, async () => {
      open = await h.signUp.start({ email: free, name: 'Newcomer', password: PASSWORD, ip: '198.51.100.1' });
    });

    // Same shape, same types, same expiry rule.
    const a = started(taken);
    const b = started(open);
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    expect(a.flowId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(b.flowId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(a.expiresAt.getTime() - h.clock.now()).toBe(h.config.signUp.codeTtlSeconds * 1000);
    expect(b.expiresAt.getTime() - h.clock.now()).toBe(h.config.signUp.codeTtlSeconds * 1000);
    expect(a.email).toBe(owner.email);

    // The owner is told to sign in or reset; the new address gets a code. No code in a subject.
    expect(ownerMail.subject).toBe(`${h.config.productName}: you already have an account`);
    expect(ownerMail.text).toContain(`${h.config.issuer}/account`);
    expect(ownerMail.text).toContain(`${h.config.issuer}/password-reset`);
    expect(ownerMail.text).not.toMatch(/^\s*\d{6}\s*$/m);
    expect(codeFrom(codeMail)).toMatch(/^\d{6}$/);
    expect(codeMail.subject).not.toMatch(/\d{6}/);

    // The owner's account is untouched: same password, same name, nothing added.
    const after = await h.Account.findById(owner.id).lean();
    expect(after).toEqual(before);
    expect((await h.accounts.authenticate(owner.email, OTHER_PASSWORD)).ok).toBe(true);

    // A guess at the taken address's flow answers like a wrong code at the free one.
    expect(await h.signUp.verify({ flowId: a.flowId, code: codeFrom(codeMail), ip: '198.51.100.1' })).toEqual({ ok: false, reason: 'invalid' });
    expect(await h.signUp.verify({ flowId: b.flowId, code: codeFrom(codeMail) === '000000' ? '000001' : '000000', ip: '198.51.100.1' })).toEqual({
      ok: false,
      reason: 'invalid',
    });

    // Audited for admins, with the difference the person never saw.
    await h.audit.flush();
    const events = await h.connection.db!.collection(AUDIT_COLLECTION).find({ action: { $in: ['account.sign_up', 'account.sign_up_existing'] } }).toArray();
    expect(events.some((e) => e.action === 'account.sign_up_existing' && e.target?.id === owner.id)).toBe(true);
    expect(events.some((e) => e.action === 'account.sign_up' && e.target?.label === free)).toBe(true);
    expect(JSON.stringify(events)).not.toContain(PASSWORD);
  });

  it('creates a pending account that cannot sign in until the code from the mail verifies it', async () => {
    const email = fresh('verify');
    let flow!: SignUpStartResult;
    const mail = await nextMail(email, async () => {
      flow = await h.signUp.start({ email, name: '  Ada  ', password: PASSWORD, ip: '198.51.100.2' });
    });
    const { flowId } = started(flow);
    const pending = await h.Account.findOne({ email }).lean();
    expect(pending).toMatchObject({ emailVerified: false });
    expect(pending?.passwordHash).toBeUndefined();
    expect(pending?.signUpPendingUntil).toBeInstanceOf(Date);
    // No password sign-in before verification: the same answer as for an unknown address.
    expect(await h.accounts.authenticate(email, PASSWORD)).toEqual({ ok: false, reason: 'invalid_credentials' });
    expect(await h.signUp.pending(flowId)).toMatchObject({ email });

    const verified = await h.signUp.verify({ flowId, code: codeFrom(mail), ip: '198.51.100.2' });
    expect(verified).toMatchObject({ ok: true, account: { email, emailVerified: true, name: 'Ada', hasPassword: true } });
    const doc = await h.Account.findOne({ email }).lean();
    expect(doc?.signUpPendingUntil).toBeUndefined();
    expect(doc?.passwordHash).toMatch(/^\$argon2id\$/);
    expect((await h.accounts.authenticate(email, PASSWORD)).ok).toBe(true);

    // Single use: the flow is spent.
    expect(await h.signUp.verify({ flowId, code: codeFrom(mail), ip: '198.51.100.2' })).toEqual({ ok: false, reason: 'missing' });
    expect(await h.connection.db!.collection(SIGN_UP_FLOWS_COLLECTION).countDocuments({ _id: flowId as never })).toBe(0);
  });

  it('refuses an expired code, and kills a code after the attempt limit', async () => {
    const email = fresh('expiry');
    let flow!: SignUpStartResult;
    const mail = await nextMail(email, async () => {
      flow = await h.signUp.start({ email, password: PASSWORD, ip: '198.51.100.3' });
    });
    h.clock.advance(h.config.signUp.codeTtlSeconds + 1);
    expect(await h.signUp.verify({ flowId: started(flow).flowId, code: codeFrom(mail), ip: '198.51.100.3' })).toEqual({ ok: false, reason: 'expired' });

    const email2 = fresh('attempts');
    let flow2!: SignUpStartResult;
    const mail2 = await nextMail(email2, async () => {
      flow2 = await h.signUp.start({ email: email2, password: PASSWORD, ip: '198.51.100.4' });
    });
    const code = codeFrom(mail2);
    const wrong = code === '000000' ? '000001' : '000000';
    const reasons: string[] = [];
    for (let i = 0; i < h.config.emailCode.maxAttempts; i += 1) {
      const result = await h.signUp.verify({ flowId: started(flow2).flowId, code: wrong, ip: '198.51.100.4' });
      if (result.ok) throw new Error('a wrong code was accepted');
      reasons.push(result.reason);
      // Past the free attempts the per-address gate asks for a wait: move the clock past it.
      h.clock.advance(60);
    }
    expect(reasons.at(-1)).toBe('exhausted');
    const right = await h.signUp.verify({ flowId: started(flow2).flowId, code, ip: '198.51.100.4' });
    expect(right.ok).toBe(false);
    expect((await h.Account.findOne({ email: email2 }).lean())?.emailVerified).toBe(false);
  });

  it('lets the owner sign up over a stranger who signed up first with their address', async () => {
    const email = fresh('contested');
    let strangers!: SignUpStartResult;
    const strangerMail = await nextMail(email, async () => {
      strangers = await h.signUp.start({ email, name: 'Stranger', password: OTHER_PASSWORD, ip: '203.0.113.9' });
    });
    let owners!: SignUpStartResult;
    const ownerMail = await nextMail(email, async () => {
      owners = await h.signUp.start({ email, name: 'Owner', password: PASSWORD, ip: '198.51.100.5' });
    });
    // One account for the address, shared while pending.
    expect(await h.Account.countDocuments({ email })).toBe(1);

    const verified = await h.signUp.verify({ flowId: started(owners).flowId, code: codeFrom(ownerMail), ip: '198.51.100.5' });
    expect(verified).toMatchObject({ ok: true, account: { name: 'Owner' } });
    // The stranger's flow ended with the verification, its password with it, even for its code
    // (which only the owner's inbox ever saw).
    expect(await h.signUp.verify({ flowId: started(strangers).flowId, code: codeFrom(strangerMail), ip: '203.0.113.9' })).toEqual({
      ok: false,
      reason: 'missing',
    });
    expect(await h.connection.db!.collection(SIGN_UP_FLOWS_COLLECTION).countDocuments({ email })).toBe(0);
    expect((await h.accounts.authenticate(email, OTHER_PASSWORD)).ok).toBe(false);
    expect((await h.accounts.authenticate(email, PASSWORD)).ok).toBe(true);
  });

  it('a code by email proves the address too: the pending account becomes a normal one, without the stranger\'s password', async () => {
    const email = fresh('email-code');
    started(await h.signUp.start({ email, password: OTHER_PASSWORD, ip: '203.0.113.10' }));
    const pending = await h.accounts.findByEmail(email);
    await h.accounts.markEmailVerified(pending!.id);
    const doc = await h.Account.findById(pending!.id).lean();
    expect(doc).toMatchObject({ emailVerified: true });
    expect(doc?.signUpPendingUntil).toBeUndefined();
    expect(doc?.passwordHash).toBeUndefined();
  });

  it('creates at most one account for a hundred concurrent sign-ups of one address', async () => {
    // Limits high enough that every caller reaches the account insert (the limiter's own burst
    // behaviour is tested with it): the unique address is what must hold.
    const burst = await startSelfService('sign_up_burst', { SIGN_UP_ADDRESS_LIMIT: '1000', SIGN_UP_IP_LIMIT: '100000' }, { maxPoolSize: 4 });
    try {
      const email = fresh('burst');
      const settled = await Promise.allSettled(
        Array.from({ length: 100 }, (_, i) => burst.signUp.start({ email, password: `${PASSWORD} ${i}`, ip: `198.51.100.${(i % 200) + 10}` })),
      );
      const results = settled.map((s) => {
        if (s.status === 'rejected') throw s.reason;
        return s.value;
      });
      expect(results.every((r) => r.ok || r.reason === 'throttled')).toBe(true);
      const passed = results.filter((r) => r.ok).length;
      expect(passed).toBeGreaterThanOrEqual(1);
      expect(await burst.Account.countDocuments({ email })).toBe(1);
      expect(await burst.connection.db!.collection(SIGN_UP_FLOWS_COLLECTION).countDocuments({ email })).toBe(passed);
    } finally {
      await burst.close();
    }
  }, 180_000);

  it('refuses bad input, weak passwords and closed sign-up without storing anything', async () => {
    const accountsBefore = await accountCount();
    const flowsBefore = await h.connection.db!.collection(SIGN_UP_FLOWS_COLLECTION).countDocuments();
    const codesBefore = await h.connection.db!.collection(EMAIL_CODES_COLLECTION).countDocuments();
    expect(await h.signUp.start({ email: 'not an address', password: PASSWORD, ip: '198.51.100.6' })).toMatchObject({ ok: false, reason: 'invalid', fields: { email: expect.any(String) } });
    expect(await h.signUp.start({ email: fresh('nul'), name: 'a\u0000b', password: PASSWORD, ip: '198.51.100.6' })).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await h.signUp.start({ email: fresh('long'), password: 'x'.repeat(5000), ip: '198.51.100.6' })).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await h.signUp.start({ email: fresh('weak'), password: 'short!!', ip: '198.51.100.6' })).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await h.signUp.start({ email: fresh('weak'), password: 'elevenchars', ip: '198.51.100.6' })).toEqual({
      ok: false,
      reason: 'weak_password',
      message: 'Use at least 12 characters.',
    });
    expect(await h.signUp.verify({ flowId: 'nope', code: '123456', ip: '198.51.100.6' })).toEqual({ ok: false, reason: 'missing' });
    expect(await h.signUp.resend({ flowId: '../../etc', ip: '198.51.100.6' })).toEqual({ ok: false, reason: 'missing' });
    expect(await accountCount()).toBe(accountsBefore);
    expect(await h.connection.db!.collection(SIGN_UP_FLOWS_COLLECTION).countDocuments()).toBe(flowsBefore);
    expect(await h.connection.db!.collection(EMAIL_CODES_COLLECTION).countDocuments()).toBe(codesBefore);

    const closed = await startSelfService('sign_up_closed', { SIGN_UP: 'closed' });
    try {
      expect(await closed.signUp.start({ email: fresh('closed'), password: PASSWORD, ip: '198.51.100.7' })).toEqual({ ok: false, reason: 'closed' });
      expect(await closed.Account.countDocuments({})).toBe(0);
    } finally {
      await closed.close();
    }
    const invite = await startSelfService('sign_up_invite', { SIGN_UP: 'invite' });
    try {
      expect(await invite.signUp.start({ email: fresh('invite'), password: PASSWORD, ip: '198.51.100.7', invitation: 'made-up' })).toEqual({
        ok: false,
        reason: 'invitation_required',
      });
      expect(await invite.Account.countDocuments({})).toBe(0);
    } finally {
      await invite.close();
    }
  });

  it('limits sign-ups per address, known or not, with the same answer', async () => {
    const limited = await startSelfService('sign_up_limits', { SIGN_UP_ADDRESS_LIMIT: '2' });
    try {
      const owner = await limited.accounts.create({ email: fresh('limit-owner'), password: OTHER_PASSWORD, emailVerified: true });
      const free = fresh('limit-free');
      for (const email of [owner.email, free]) {
        const outcomes = [];
        for (let i = 0; i < 3; i += 1) outcomes.push(await limited.signUp.start({ email, password: PASSWORD, ip: `198.51.100.${20 + i}` }));
        expect(outcomes.map((o) => o.ok)).toEqual([true, true, false]);
        expect(outcomes[2]).toMatchObject({ ok: false, reason: 'throttled', retryAfterSeconds: expect.any(Number) });
      }
    } finally {
      await limited.close();
    }
  });

  it('resends a new code to the flow (the old one stops working), throttled per flow', async () => {
    const email = fresh('resend');
    let flow!: SignUpStartResult;
    const first = await nextMail(email, async () => {
      flow = await h.signUp.start({ email, password: PASSWORD, ip: '198.51.100.8' });
    });
    const { flowId } = started(flow);
    expect(await h.signUp.resend({ flowId, ip: '198.51.100.8' })).toMatchObject({ ok: false, reason: 'throttled' });
    h.clock.advance(h.config.emailCode.resendIntervalSeconds + 5);
    let resent!: Awaited<ReturnType<typeof h.signUp.resend>>;
    const second = await nextMail(email, async () => {
      resent = await h.signUp.resend({ flowId, ip: '198.51.100.8' });
    });
    expect(resent.ok).toBe(true);
    const oldCode = codeFrom(first);
    const newCode = codeFrom(second);
    if (oldCode !== newCode) expect(await h.signUp.verify({ flowId, code: oldCode, ip: '198.51.100.8' })).toEqual({ ok: false, reason: 'invalid' });
    expect(await h.signUp.verify({ flowId, code: newCode, ip: '198.51.100.8' })).toMatchObject({ ok: true });
  });

  it('sweeps a pending account nobody verified, and never a verified one', async () => {
    const email = fresh('sweep');
    started(await h.signUp.start({ email, password: PASSWORD, ip: '198.51.100.9' }));
    const verifiedEmail = fresh('sweep-verified');
    let flow!: SignUpStartResult;
    const mail = await nextMail(verifiedEmail, async () => {
      flow = await h.signUp.start({ email: verifiedEmail, password: PASSWORD, ip: '198.51.100.9' });
    });
    expect((await h.signUp.verify({ flowId: started(flow).flowId, code: codeFrom(mail), ip: '198.51.100.9' })).ok).toBe(true);
    await h.signUp.sweep(new Date(h.clock.now() + 60_000));
    expect(await h.Account.countDocuments({ email })).toBe(1);
    await h.signUp.sweep(new Date(h.clock.now() + PENDING_DAYS * 24 * 60 * 60 * 1000 + 1));
    expect(await h.Account.countDocuments({ email })).toBe(0);
    expect(await h.Account.countDocuments({ email: verifiedEmail })).toBe(1);
    // The address is free again.
    expect((await h.signUp.start({ email, password: PASSWORD, ip: '198.51.100.9' })).ok).toBe(true);
  });
});
