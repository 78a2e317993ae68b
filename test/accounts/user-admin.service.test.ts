/**
 * The user administration service against a real server and database: validation, search and
 * pagination, the self-guards, and revocation checked the way a relying party would notice it
 * (the access token refused at userinfo, the refresh token refused at the token endpoint).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';
import { generate } from 'otplib';

import type { UserAdminService, UserAdminView } from '../../src/accounts/user-admin.service.js';
import { PasswordPolicyError } from '../../src/accounts/password-policy.js';
import { UserValidationError } from '../../src/accounts/user-admin.service.js';
import type { AuditActor, AuditEvent } from '../../src/audit/audit.service.js';
import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import type { AdminAuthority } from '../../src/clients/admin-authority.js';
import { MANAGEMENT_SCOPES, fullAuthority, scopedAuthority } from '../../src/clients/admin-authority.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { backfillOidcOwner } from '../../src/db/migrations/001-backfill-oidc-owner.js';
import { AppError } from '../../src/http/app-error.js';
import { ADAPTER_MODELS, collectionName, revokeAccountRecords } from '../../src/oidc/mongo-adapter.js';
import { REDIRECT_URI, rpFor, signInForTokens, userinfoStatus } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';
/** Every password used in this file: none may ever reach the audit log. */
const PASSWORDS = [PASSWORD, 'another long passphrase'];

let count = 0;
const uniqueEmail = (label: string) => `ua-${label}-${(count += 1)}@example.com`;

/** Test setup acts as the command line would: with every power. */
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

async function errorOf(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('user administration service', () => {
  let server: TestServer;
  let users: UserAdminService;
  let admin: UserAdminView;
  let actor: AuditActor;
  /** The admin acting in the console: every management API scope. */
  let by: AdminAuthority;
  let client: CreatedClient;
  let rp: oidc.Configuration;

  /** Every oidc_* record of the account, whether found by the field or in the payload. */
  const oidcRecordsOf = async (accountId: string): Promise<number> => {
    let total = 0;
    for (const model of ADAPTER_MODELS) {
      total += await server.deps.db
        .collection(collectionName(model))
        .countDocuments({ $or: [{ accountId }, { payload: { $regex: `"accountId":"${accountId}"` } }] });
    }
    return total;
  };

  /** This service's events about the account, oldest first (sign-ins and tokens are audited too). */
  const eventsFor = async (accountId: string): Promise<AuditEvent[]> =>
    (await server.deps.audit.list({ target: accountId, action: 'user.' }, { limit: 100 })).events.reverse();

  /** A complete sign-in through the pages with offline_access: a session, a grant, an access and a refresh token. */
  const signIn = async (email: string, password = PASSWORD): Promise<Tokens> => {
    const { tokens } = await signInForTokens(rp, new UserAgent(server.url), { email, password }, {
      scope: 'openid email offline_access',
      prompt: 'consent',
    });
    expect(tokens.refresh_token).toBeTruthy();
    return tokens;
  };

  beforeAll(async () => {
    // MFA is not the point here: admins sign in with a password alone.
    server = await startTestServer('user_admin', { env: { MFA_REQUIRED_FOR_ADMINS: 'false' } });
    users = server.deps.userAdmin;
    admin = await users.create({ email: uniqueEmail('admin'), password: PASSWORD, roles: ['admin'] }, SETUP);
    actor = { type: 'account', id: admin.id, label: admin.email };
    by = fullAuthority(actor);
    client = await server.deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, client);
  });

  afterAll(async () => {
    await server?.close();
  });

  describe('create', () => {
    it('creates a user with a password: sign-in methods, MFA state, audit event with field names only', async () => {
      const email = uniqueEmail('pwd');
      const user = await users.create({ email: `  ${email.toUpperCase()} `, password: PASSWORD, name: ' Grace Hopper ' }, by);
      expect(user).toMatchObject({
        email,
        name: 'Grace Hopper',
        roles: [],
        hasPassword: true,
        disabled: false,
        emailVerified: false,
        passwordResetRequired: false,
        signInMethods: ['password', 'email_code'],
        mfa: { totp: false, recoveryCodesLeft: 0 },
      });
      expect(user).not.toHaveProperty('passwordHash');
      expect((await server.deps.accounts.authenticate(email, PASSWORD)).ok).toBe(true);

      const [created, ...rest] = await eventsFor(user.id);
      expect(rest).toEqual([]);
      expect(created).toMatchObject({
        action: 'user.created',
        outcome: 'success',
        actor: { type: 'account', id: admin.id, label: admin.email },
        target: { type: 'account', id: user.id, label: email },
      });
      expect(created?.details?.fields).toEqual(expect.arrayContaining(['email', 'password', 'name']));
    });

    it('creates a passwordless account when the password is left out', async () => {
      const email = uniqueEmail('nopwd');
      const user = await users.create({ email, emailVerified: true });
      expect(user).toMatchObject({ hasPassword: false, emailVerified: true, signInMethods: ['email_code'] });
      expect((await server.deps.accounts.authenticate(email, '')).ok).toBe(false);
      // No actor given: the system did it.
      expect((await eventsFor(user.id))[0]).toMatchObject({ action: 'user.created', actor: { type: 'system' } });
    });

    it('an admin created with the role has it granted in the audit log', async () => {
      const user = await users.create({ email: uniqueEmail('newadmin'), password: PASSWORD, roles: ['admin', 'admin'] }, by);
      expect(user.roles).toEqual(['admin']);
      expect((await eventsFor(user.id)).map((e) => [e.action, e.details?.role])).toEqual([
        ['user.created', undefined],
        ['user.role_granted', 'admin'],
      ]);
    });

    it('refuses bad input with a message per field, never repeating the password', async () => {
      const err = await errorOf(users.create({ email: 'not an email', password: 'short', roles: ['root' as 'admin'], extra: 1 } as never, by));
      expect(err).toBeInstanceOf(UserValidationError);
      expect(err).toMatchObject({ status: 400, code: 'user.invalid' });
      const { fields } = err as UserValidationError;
      expect(Object.keys(fields).sort()).toEqual(['email', 'extra', 'password', 'roles.0']);
      expect(fields.password).toMatch(/at least 8 characters/);
      expect(err.message).not.toContain('short');
      expect(JSON.stringify(fields)).not.toContain('short');
    });

    it('refuses a weak password (PasswordPolicyError, 400 password.<reason>) before storing or auditing anything', async () => {
      const email = uniqueEmail('weak');
      const cases = [
        { password: 'qwertyuiop12', reason: 'too_common' },
        { password: `${email.split('@')[0] ?? ''}-2024!!`, reason: 'contains_email' },
        { password: 'Bartholomew1987!', reason: 'contains_name' },
        { password: 'Identity2024!!', reason: 'contains_product_name' },
      ];
      for (const { password, reason } of cases) {
        const err = await errorOf(users.create({ email, password, name: 'Bartholomew Jones' }, by));
        expect(err).toBeInstanceOf(PasswordPolicyError);
        expect(err).toMatchObject({ status: 400, code: `password.${reason}`, reason, fields: { password: err.message } });
        expect(err.message).not.toContain(password);
      }
      expect(await server.deps.accounts.findByEmail(email)).toBeUndefined();
      expect((await server.deps.audit.list({ action: 'user.' }, { limit: 200 })).events.some((e) => e.target?.label === email)).toBe(false);
    });

    it('stores the NFKC form: a full-width or ligature password signs in with its plain equivalent', async () => {
      const email = uniqueEmail('nfkc');
      await users.create({ email, password: 'Ｐlankton ﬁsh violin sunrise', emailVerified: true }, by);
      expect((await server.deps.accounts.authenticate(email, 'Plankton fish violin sunrise')).ok).toBe(true);
      expect((await server.deps.accounts.authenticate(email, 'Ｐlankton ﬁsh violin sunrise')).ok).toBe(true);
      expect((await server.deps.accounts.authenticate(email, 'plankton fish violin sunrise')).ok).toBe(false);
    });

    it('refuses a name with control characters and a missing email', async () => {
      const err = (await errorOf(users.create({ name: 'a\u0000b' } as never))) as UserValidationError;
      expect(err.code).toBe('user.invalid');
      expect(Object.keys(err.fields).sort()).toEqual(['email', 'name']);
    });

    it('refuses an email that is taken, whatever its case: 409 user.email_taken', async () => {
      const email = uniqueEmail('dup');
      await users.create({ email, password: PASSWORD });
      const err = await errorOf(users.create({ email: email.toUpperCase(), password: 'another long passphrase' }, by));
      expect(err).toMatchObject({ status: 409, code: 'user.email_taken' });
    });
  });

  describe('list and get', () => {
    const domain = 'pager.example.org';
    const emails = ['e@', 'a@', 'd@', 'c@', 'b@'].map((local) => `${local}${domain}`);
    let ids: string[] = [];

    beforeAll(async () => {
      const created = [];
      for (const [i, email] of emails.entries()) {
        created.push(await users.create({ email, password: PASSWORD, name: i === 0 ? 'Zelda Quux' : `Pager ${i}` }));
      }
      ids = created.map((u) => u.id);
    });

    it('pages through matches in email order with a cursor, and reports the total', async () => {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await users.list({ search: domain, limit: 2, cursor });
        expect(page.total).toBe(5);
        expect(page.users.length).toBeLessThanOrEqual(2);
        seen.push(...page.users.map((u) => u.email));
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor && pages < 10);
      expect(pages).toBe(3);
      expect(seen).toEqual([...emails].sort());
    });

    it('searches case-insensitively in the email and the name, and by exact id', async () => {
      expect((await users.list({ search: 'PAGER.EXAMPLE' })).users).toHaveLength(5);
      expect((await users.list({ search: 'zelda QU' })).users.map((u) => u.email)).toEqual([emails[0]]);
      const byId = await users.list({ search: ids[2] });
      expect(byId.users.map((u) => u.id)).toEqual([ids[2]]);
      expect(byId.total).toBe(1);
      // Regex metacharacters are text, not patterns.
      expect((await users.list({ search: '.*' })).total).toBe(0);
      expect((await users.list({ search: '(' })).total).toBe(0);
    });

    it('lists everyone without a search, each with the admin view', async () => {
      const page = await users.list({ limit: 200 });
      expect(page.total).toBeGreaterThanOrEqual(6);
      const sorted = [...page.users.map((u) => u.email)].sort();
      expect(page.users.map((u) => u.email)).toEqual(sorted);
      expect(page.users.find((u) => u.id === admin.id)).toMatchObject({ roles: ['admin'], signInMethods: ['password', 'email_code'] });
    });

    it('refuses a cursor it did not hand out, and clamps the limit', async () => {
      const err = (await errorOf(users.list({ cursor: '%%%' }))) as UserValidationError;
      expect(err).toMatchObject({ status: 400, code: 'user.invalid' });
      expect(err.fields.cursor).toBeDefined();
      expect((await users.list({ search: domain, limit: 0 })).users).toHaveLength(1);
      expect((await users.list({ search: domain, limit: Number.NaN })).users).toHaveLength(5);
    });

    it('get returns the view, or undefined for an unknown id', async () => {
      expect(await users.get(ids[1] ?? '')).toMatchObject({ email: emails[1] });
      expect(await users.get('no-such-user')).toBeUndefined();
      expect(await users.get('')).toBeUndefined();
    });
  });

  describe('update', () => {
    it('changes the name and the roles, each audited', async () => {
      const user = await users.create({ email: uniqueEmail('upd'), password: PASSWORD, name: 'Old' });
      const granted = await users.update(user.id, { name: 'New Name', roles: ['admin'] }, by);
      expect(granted).toMatchObject({ name: 'New Name', roles: ['admin'] });
      const revoked = await users.update(user.id, { roles: [], name: null }, by);
      expect(revoked.roles).toEqual([]);
      expect(revoked.name).toBeUndefined();
      // Nothing changed: no event.
      await users.update(user.id, { roles: [] }, by);

      const events = (await eventsFor(user.id)).filter((e) => e.action !== 'user.created');
      expect(events.map((e) => [e.action, e.details?.fields ?? e.details?.role])).toEqual([
        ['user.updated', ['name', 'roles']],
        ['user.role_granted', 'admin'],
        ['user.updated', ['name', 'roles']],
        ['user.role_revoked', 'admin'],
      ]);
      for (const event of events) expect(event.actor).toEqual(actor);
    });

    it('refuses an unknown user (404) and fields that cannot be changed here (400)', async () => {
      expect(await errorOf(users.update('no-such-user', { name: 'x' }, by))).toMatchObject({ status: 404, code: 'user.not_found' });
      const user = await users.create({ email: uniqueEmail('upd-bad'), password: PASSWORD });
      const err = (await errorOf(users.update(user.id, { email: 'other@example.com', password: 'x' } as never, by))) as UserValidationError;
      expect(err).toMatchObject({ status: 400, code: 'user.invalid' });
      expect(Object.keys(err.fields).sort()).toEqual(['email', 'password']);
      expect((await users.get(user.id))?.email).toBe(user.email);
    });

    it('disables and enables through update too', async () => {
      const user = await users.create({ email: uniqueEmail('upd-dis'), password: PASSWORD });
      expect((await users.update(user.id, { disabled: true }, by)).disabled).toBe(true);
      expect((await users.update(user.id, { disabled: false }, by)).disabled).toBe(false);
      expect((await eventsFor(user.id)).map((e) => e.action)).toEqual(['user.created', 'user.disabled', 'user.enabled']);
    });
  });

  describe('an admin cannot lock themselves out', () => {
    it('refuses removing their own admin role, disabling or deleting themselves: 409 user.self', async () => {
      for (const attempt of [
        () => users.update(admin.id, { roles: [] }, by),
        () => users.update(admin.id, { disabled: true }, by),
        () => users.setDisabled(admin.id, true, by),
        () => users.delete(admin.id, by),
      ]) {
        const err = await errorOf(attempt());
        expect(err).toMatchObject({ status: 409, code: 'user.self' });
        expect(err.message).toMatch(/your own account/);
      }
      expect(await users.get(admin.id)).toMatchObject({ roles: ['admin'], disabled: false });
    });

    it('may still change their own name, and another admin may do what they may not', async () => {
      expect((await users.update(admin.id, { name: 'The Boss', roles: ['admin'] }, by)).name).toBe('The Boss');
      const other = await users.create({ email: uniqueEmail('admin2'), password: PASSWORD, roles: ['admin'] }, SETUP);
      const otherActor: AuditActor = { type: 'account', id: other.id, label: other.email };
      expect((await users.update(admin.id, { roles: [] }, fullAuthority(otherActor))).roles).toEqual([]);
      expect((await users.update(admin.id, { roles: ['admin'] }, fullAuthority(otherActor))).roles).toEqual(['admin']);
      expect(await users.delete(other.id, by)).toBe(true);
    });
  });

  describe('disable', () => {
    it('ends sessions and revokes grants and tokens: userinfo refuses the access token, the refresh token fails, even after enabling', async () => {
      const email = uniqueEmail('disable');
      const user = await users.create({ email, password: PASSWORD });
      const tokens = await signIn(email);
      expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(200);
      expect(await oidcRecordsOf(user.id)).toBeGreaterThanOrEqual(4); // session, grant, access and refresh token

      const disabled = await users.setDisabled(user.id, true, by);
      expect(disabled.disabled).toBe(true);
      expect(await oidcRecordsOf(user.id)).toBe(0);
      expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(401);
      await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token ?? '')).rejects.toMatchObject({ error: 'invalid_grant' });

      // Revoked, not merely refused while disabled.
      const enabled = await users.setDisabled(user.id, false, by);
      expect(enabled.disabled).toBe(false);
      expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(401);
      await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token ?? '')).rejects.toMatchObject({ error: 'invalid_grant' });
      // And the person can sign in again.
      expect((await userinfoStatus(rp, (await signIn(email)).access_token)).status).toBe(200);

      const events = await eventsFor(user.id);
      expect(events.map((e) => e.action)).toEqual(['user.created', 'user.disabled', 'user.enabled']);
      expect(events[1]?.details?.revokedRecords).toBeGreaterThanOrEqual(4);
      expect(events[1]?.target).toEqual({ type: 'account', id: user.id, label: email });
    }, 60_000);

    it('404 for an unknown user', async () => {
      expect(await errorOf(users.setDisabled('no-such-user', true, by))).toMatchObject({ status: 404, code: 'user.not_found' });
    });
  });

  describe('revokeAccountRecords', () => {
    it('also removes records written before the accountId field existed (once migrated), and nothing of other accounts', async () => {
      const grants = server.deps.db.collection<{ _id: string; payload: string; expiresAt: Date | null }>(collectionName('Grant'));
      const tokens = server.deps.db.collection<{ _id: string; payload: string; expiresAt: Date | null }>(collectionName('AccessToken'));
      const id = 'legacy-account';
      await grants.insertOne({ _id: 'legacy-grant', payload: JSON.stringify({ accountId: id, clientId: 'c', kind: 'Grant' }), expiresAt: null });
      await tokens.insertOne({ _id: 'legacy-at', payload: JSON.stringify({ kind: 'AccessToken', accountId: id, grantId: 'legacy-grant' }), expiresAt: null });
      // Another account whose id starts with this one's, and one whose id contains regex characters.
      await grants.insertOne({ _id: 'other-grant', payload: JSON.stringify({ accountId: `${id}-2`, kind: 'Grant' }), expiresAt: null });
      await grants.insertOne({ _id: 'regex-grant', payload: JSON.stringify({ accountId: 'a.c', kind: 'Grant' }), expiresAt: null });
      // What the migration does to such records (the server runs it before it serves; these arrived after).
      await backfillOidcOwner.up(server.deps.db, { logger: server.deps.logger, assertHeld: async () => undefined });

      expect(await revokeAccountRecords(server.deps.db, id)).toBe(2);
      expect(await grants.countDocuments({ _id: { $in: ['legacy-grant'] } })).toBe(0);
      expect(await tokens.countDocuments({ _id: 'legacy-at' })).toBe(0);
      expect(await grants.countDocuments({ _id: 'other-grant' })).toBe(1);
      // `a.c` is text: it matches the account a.c only, not abc.
      expect(await revokeAccountRecords(server.deps.db, 'abc')).toBe(0);
      expect(await revokeAccountRecords(server.deps.db, 'a.c')).toBe(1);
    });

    it('records written now carry the accountId field', async () => {
      const email = uniqueEmail('field');
      const user = await users.create({ email, password: PASSWORD });
      await signIn(email);
      for (const model of ['Session', 'Grant', 'AccessToken', 'RefreshToken'] as const) {
        expect(await server.deps.db.collection(collectionName(model)).countDocuments({ accountId: user.id })).toBeGreaterThanOrEqual(1);
      }
    }, 30_000);
  });

  describe('resetMfa', () => {
    it('removes the authenticator app and the recovery codes', async () => {
      const user = await users.create({ email: uniqueEmail('mfa'), password: PASSWORD });
      const enrolment = await server.deps.totp.beginEnrolment(user);
      const activated = await server.deps.totp.activate(user.id, await generate({ secret: enrolment.secret }), enrolment.sealed);
      expect(activated.ok).toBe(true);
      const before = await users.get(user.id);
      expect(before).toMatchObject({ totpEnabled: true, signInMethods: ['password', 'email_code', 'totp'], mfa: { totp: true, recoveryCodesLeft: 10 } });
      expect(before?.mfa.enabledAt).toBeInstanceOf(Date);

      const after = await users.resetMfa(user.id, by);
      expect(after).toMatchObject({ totpEnabled: false, signInMethods: ['password', 'email_code'], mfa: { totp: false, recoveryCodesLeft: 0 } });
      expect(after.mfa.enabledAt).toBeUndefined();
      expect(await server.deps.totp.status(user.id)).toEqual({ enabled: false, recoveryCodesLeft: 0 });
      const event = (await eventsFor(user.id)).at(-1);
      expect(event).toMatchObject({ action: 'user.mfa_reset', actor, details: { hadTotp: true, recoveryCodesRemoved: 10 } });
      expect(await errorOf(users.resetMfa('no-such-user', by))).toMatchObject({ status: 404, code: 'user.not_found' });
    });
  });

  describe('requirePasswordReset', () => {
    it('sets the flag and ends the sessions (tokens stay), audited', async () => {
      const email = uniqueEmail('reset');
      const user = await users.create({ email, password: PASSWORD });
      const tokens = await signIn(email);
      const sessions = server.deps.db.collection(collectionName('Session'));
      expect(await sessions.countDocuments({ accountId: user.id })).toBe(1);

      const updated = await users.requirePasswordReset(user.id, by);
      expect(updated.passwordResetRequired).toBe(true);
      expect((await server.deps.accounts.findById(user.id))?.passwordResetRequired).toBe(true);
      expect(await sessions.countDocuments({ accountId: user.id })).toBe(0);
      expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(200);
      expect((await eventsFor(user.id)).at(-1)).toMatchObject({ action: 'user.password_reset_required', actor, details: { endedSessions: 1 } });
      expect(await errorOf(users.requirePasswordReset('no-such-user', by))).toMatchObject({ status: 404 });
    }, 30_000);
  });

  describe('delete', () => {
    it('deletes the account and every oidc record of it; its tokens stop working', async () => {
      const email = uniqueEmail('delete');
      const user = await users.create({ email, password: PASSWORD });
      const tokens = await signIn(email);
      expect(await oidcRecordsOf(user.id)).toBeGreaterThanOrEqual(4);

      expect(await users.delete(user.id, by)).toBe(true);
      expect(await users.get(user.id)).toBeUndefined();
      expect(await server.deps.accounts.findByEmail(email)).toBeUndefined();
      expect(await oidcRecordsOf(user.id)).toBe(0);
      expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(401);
      await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token ?? '')).rejects.toMatchObject({ error: 'invalid_grant' });

      const event = (await eventsFor(user.id)).at(-1);
      expect(event).toMatchObject({ action: 'user.deleted', actor, target: { type: 'account', id: user.id } });
      // No personal data beyond the id (account-deletion.service.ts).
      expect(event?.target?.label).toBeUndefined();
      expect(await users.delete(user.id, by)).toBe(false);
      // The address is free again.
      expect((await users.create({ email, password: PASSWORD })).id).not.toBe(user.id);
    }, 30_000);
  });

  describe('the admin role: nobody gives what they do not hold', () => {
    /** Everything the database holds about the account, to show a refusal changed nothing. */
    const raw = (id: string) => server.deps.db.collection('accounts').findOne({ _id: id as never });

    it('without an authority (the default), nobody creates an administrator or gives the role: 403, nothing stored, audited', async () => {
      const email = uniqueEmail('no-authority');
      const created = await errorOf(users.create({ email, password: PASSWORD, roles: ['admin'] }));
      expect(created).toMatchObject({ status: 403, code: 'user.scope_not_held' });
      expect(await server.deps.accounts.findByEmail(email)).toBeUndefined();

      const user = await users.create({ email: uniqueEmail('plain') });
      const before = await raw(user.id);
      expect(await errorOf(users.update(user.id, { roles: ['admin'] }))).toMatchObject({ status: 403, code: 'user.scope_not_held' });
      expect(await raw(user.id)).toEqual(before);
      expect((await eventsFor(user.id)).at(-1)).toMatchObject({
        action: 'user.role_granted',
        outcome: 'failure',
        reason: 'scope_not_held',
        actor: { type: 'system' },
        details: { role: 'admin', missingScopes: [...MANAGEMENT_SCOPES] },
      });
    });

    it('an authority short of one management API scope cannot act on an administrator in any way', async () => {
      const target = await users.create({ email: uniqueEmail('guarded-admin'), password: PASSWORD, name: 'Ada', roles: ['admin'] }, SETUP);
      const before = await raw(target.id);
      const almost = scopedAuthority(actor, MANAGEMENT_SCOPES.filter((s) => s !== 'admin:audit:read'));
      for (const attempt of [
        () => users.update(target.id, { name: 'Mallory' }, almost),
        () => users.update(target.id, { roles: [] }, almost),
        () => users.setDisabled(target.id, true, almost),
        () => users.resetMfa(target.id, almost),
        () => users.requirePasswordReset(target.id, almost),
        () => users.delete(target.id, almost),
      ]) {
        const err = await errorOf(attempt());
        expect(err).toMatchObject({ status: 403, code: 'user.scope_not_held' });
        expect(err.message).toMatch(/admin:audit:read/);
      }
      expect(await raw(target.id)).toEqual(before);
      const failures = (await eventsFor(target.id)).filter((e) => e.outcome === 'failure');
      expect(failures.map((e) => e.action)).toEqual([
        'user.updated',
        'user.role_revoked',
        'user.disabled',
        'user.mfa_reset',
        'user.password_reset_required',
        'user.deleted',
      ]);
      for (const event of failures) expect(event).toMatchObject({ actor, reason: 'scope_not_held', details: { missingScopes: ['admin:audit:read'] } });
    });

    it('every management API scope is enough, and the role change is audited with the actor', async () => {
      const holder = scopedAuthority(actor, MANAGEMENT_SCOPES);
      const user = await users.create({ email: uniqueEmail('promoted') });
      expect((await users.update(user.id, { roles: ['admin'] }, holder)).roles).toEqual(['admin']);
      expect((await users.setDisabled(user.id, true, holder)).disabled).toBe(true);
      const events = await eventsFor(user.id);
      expect(events.map((e) => [e.action, e.outcome])).toEqual([
        ['user.created', 'success'],
        ['user.updated', 'success'],
        ['user.role_granted', 'success'],
        ['user.disabled', 'success'],
      ]);
      expect(events.find((e) => e.action === 'user.role_granted')).toMatchObject({ actor, details: { role: 'admin' } });
    });

    it('ordinary accounts need no more than the caller has', async () => {
      const user = await users.create({ email: uniqueEmail('ordinary'), password: PASSWORD });
      const none = scopedAuthority(actor, []);
      expect((await users.update(user.id, { name: 'Ord' }, none)).name).toBe('Ord');
      expect((await users.requirePasswordReset(user.id, none)).passwordResetRequired).toBe(true);
      expect(await users.delete(user.id, none)).toBe(true);
    });
  });

  describe('the audit log, after all of the above', () => {
    it('holds every kind of change, and no password or hash', async () => {
      const everything = await server.deps.db.collection(AUDIT_COLLECTION).find().toArray();
      const actions = new Set(everything.map((e) => e.action as string));
      for (const action of ['created', 'updated', 'disabled', 'enabled', 'mfa_reset', 'password_reset_required', 'role_granted', 'role_revoked', 'deleted']) {
        expect(actions).toContain(`user.${action}`);
      }
      const text = JSON.stringify(everything);
      for (const password of PASSWORDS) expect(text).not.toContain(password);
      expect(text).not.toMatch(/argon2/);
    });
  });
});
