import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AccountView } from '../../src/accounts/account.service.js';
import { EMAIL_CODES_COLLECTION } from '../../src/accounts/email-code.service.js';
import { RESET_GRANTS_COLLECTION, RESET_TOKENS_COLLECTION } from '../../src/accounts/password-reset.service.js';
import { SIGN_UP_CLAIMS_COLLECTION, SIGN_UP_FLOWS_COLLECTION } from '../../src/accounts/sign-up.service.js';
import { RECOVERY_CODE_USES_COLLECTION, TOTP_USED_STEPS_COLLECTION } from '../../src/accounts/totp.service.js';
import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { LIMIT_ATTEMPTS_COLLECTION } from '../../src/limits/attempt-limiter.js';
import { OUTBOX_COLLECTION } from '../../src/mail/outbox.service.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

/**
 * The one account deletion (account-deletion.service.ts), through the administrators' path
 * (user-admin.service.ts `delete`), which the account centre shares: every record of the person
 * goes and nobody else's; the audit log keeps ids and an administrator's own traces, never the
 * person's address, IP or browser; the address gets the notice.
 */

describe('account deletion (shared by the account centre and the admin path)', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('account_deletion');
  });
  afterAll(() => server?.close());

  const later = () => new Date(Date.now() + 3600_000);

  /** One record of every kind the deletion must remove (or keep, for the bystander). */
  async function seed(account: AccountView): Promise<void> {
    const { db, emailCodes, limits, audit } = server.deps;
    await emailCodes.issue({ email: account.email, accountId: account.id, binding: `b-${account.id}`, purpose: 'sign-in' });
    await emailCodes.issue({ email: account.email, accountId: null, binding: `u-${account.id}`, purpose: 'password-reset' });
    await db.collection<{ _id: string }>(TOTP_USED_STEPS_COLLECTION).insertOne({ _id: `${account.id}:totp:1`, accountId: account.id, expiresAt: later() } as never);
    await db.collection<{ _id: string }>(RECOVERY_CODE_USES_COLLECTION).insertOne({ _id: `${account.id}:h`, accountId: account.id, hash: 'h', usedAt: new Date() } as never);
    await db.collection<{ _id: string }>(SIGN_UP_FLOWS_COLLECTION).insertOne({ _id: `flow-${account.id}`, email: account.email, accountId: account.id, expiresAt: later() } as never);
    await db.collection<{ _id: string }>(SIGN_UP_CLAIMS_COLLECTION).insertOne({ _id: `verified:${account.id}`, expiresAt: later() } as never);
    await db.collection<{ _id: string }>(RESET_TOKENS_COLLECTION).insertOne({ _id: `token-${account.id}`, accountId: account.id, email: account.email, expiresAt: later() } as never);
    await db.collection<{ _id: string }>(RESET_GRANTS_COLLECTION).insertOne({ _id: `grant-${account.id}`, accountId: account.id, expiresAt: later() } as never);
    for (const gate of [limits.password(account.email), limits.factor(account.id, 'totp')]) {
      const verdict = await limits.limiter.begin([gate]);
      if (verdict.allowed) await verdict.attempt.failed();
    }
    await server.deps.outbox.enqueueTemplate(account.email, 'no-account', { email: account.email });
    const self = { type: 'account' as const, id: account.id, label: account.email };
    await audit.record({ action: 'sign_in.password', outcome: 'success', actor: self, target: self, ip: '192.0.2.7', userAgent: 'Person/1.0' });
    await audit.record({ action: 'sign_in.password', outcome: 'failure', actor: { type: 'anonymous' }, target: self, ip: '192.0.2.8', userAgent: 'Visitor/1.0', details: { email: account.email } });
  }

  /** How many records of each kind name the account or its address. */
  async function recordsOf(account: AccountView): Promise<Record<string, number>> {
    const { db, limits } = server.deps;
    const count = (name: string, filter: object) => db.collection(name).countDocuments(filter);
    return {
      codes: await count(EMAIL_CODES_COLLECTION, { $or: [{ accountId: account.id }, { email: account.email }] }),
      totpSteps: await count(TOTP_USED_STEPS_COLLECTION, { accountId: account.id }),
      recoveryUses: await count(RECOVERY_CODE_USES_COLLECTION, { accountId: account.id }),
      signUpFlows: await count(SIGN_UP_FLOWS_COLLECTION, { accountId: account.id }),
      signUpClaims: await count(SIGN_UP_CLAIMS_COLLECTION, { _id: `verified:${account.id}` }),
      resetTokens: await count(RESET_TOKENS_COLLECTION, { accountId: account.id }),
      resetGrants: await count(RESET_GRANTS_COLLECTION, { accountId: account.id }),
      limits: await count(LIMIT_ATTEMPTS_COLLECTION, { key: { $in: [limits.password(account.email).key, limits.factor(account.id, 'totp').key] } }),
      mails: await count(OUTBOX_COLLECTION, { to: account.email, template: 'no-account' }),
    };
  }

  it("removes the person's records and nobody else's; the audit log keeps ids, and an administrator's own traces", async () => {
    const admin = { type: 'account' as const, id: 'AdminAdminAdminAdmin01', label: 'root@example.com' };
    const person = await server.deps.accounts.create({ email: 'gone@example.com', password: 'correct horse battery staple 7' });
    const bystander = await server.deps.accounts.create({ email: 'stays@example.com' });
    await seed(person);
    await seed(bystander);
    await server.deps.audit.record({ action: 'user.updated', outcome: 'success', actor: admin, target: { type: 'account', id: person.id, label: person.email }, ip: '198.51.100.1', userAgent: 'Admin/1.0' });
    const ipGate = server.deps.limits.signInFromIp('203.0.113.9');
    const ipVerdict = await server.deps.limits.limiter.begin([ipGate]);
    if (ipVerdict.allowed) await ipVerdict.attempt.failed();
    for (const [kind, n] of Object.entries(await recordsOf(person))) expect({ kind, n: n > 0 }).toEqual({ kind, n: true });

    expect(await server.deps.userAdmin.delete(person.id, fullAuthority(admin))).toBe(true);
    expect(await server.deps.accounts.findById(person.id)).toBeUndefined();
    for (const [kind, n] of Object.entries(await recordsOf(person))) expect({ kind, n }).toEqual({ kind, n: 0 });
    for (const [kind, n] of Object.entries(await recordsOf(bystander))) expect({ kind, n: n > 0 }).toEqual({ kind, n: true });
    expect(await server.deps.db.collection(LIMIT_ATTEMPTS_COLLECTION).countDocuments({ key: ipGate.key })).toBe(1);
    // The notice is the one mail left for the address.
    expect(await server.deps.db.collection(OUTBOX_COLLECTION).find({ to: person.email }).map((m) => m.template as string).toArray()).toEqual(['account-deleted']);

    await server.deps.audit.flush();
    const events = await server.deps.db.collection(AUDIT_COLLECTION).find({ $or: [{ 'actor.id': person.id }, { 'target.id': person.id }] }).sort({ _id: 1 }).toArray();
    expect(events.map((e) => `${e.action as string}:${e.outcome as string}`)).toEqual(['sign_in.password:success', 'sign_in.password:failure', 'user.updated:success', 'user.deleted:success']);
    for (const event of events) expect(JSON.stringify(event)).not.toContain(person.email);
    const [own, anonymous, byAdmin, deleted] = events;
    expect([own?.ip, own?.userAgent, anonymous?.ip, anonymous?.userAgent]).toEqual([undefined, undefined, undefined, undefined]);
    expect(own?.actor).toEqual({ type: 'account', id: person.id });
    expect(byAdmin).toMatchObject({ actor: admin, ip: '198.51.100.1', userAgent: 'Admin/1.0', target: { type: 'account', id: person.id } });
    expect(deleted).toMatchObject({ actor: admin, target: { type: 'account', id: person.id }, details: { by: 'admin' } });
    expect(deleted?.target.label).toBeUndefined();
    // The bystander's events are untouched.
    const theirs = await server.deps.db.collection(AUDIT_COLLECTION).find({ 'target.id': bystander.id }).toArray();
    expect(theirs.every((e) => e.target.label === bystander.email && typeof e.ip === 'string')).toBe(true);

    // Nothing left to delete.
    expect(await server.deps.userAdmin.delete(person.id, fullAuthority(admin))).toBe(false);
  });
});
