/**
 * The Users section of the admin console, driven through its pages as an admin would: every
 * action changes what deps.userAdmin reports and leaves an audit event naming the admin, the
 * destructive ones go through a confirmation page, the self-guards come back as a 409 page,
 * and a POST without this session's CSRF token changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { UserAdminView } from '../../../src/accounts/user-admin.service.js';
import { fullAuthority } from '../../../src/clients/admin-authority.js';
import { signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { totpCode } from '../../support/second-factor.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formAction, formField } from '../../support/user-agent.js';
import type { Reply } from '../../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';

let counter = 0;
const uniqueEmail = (label: string) => `console-${label}-${(counter += 1)}@example.test`;
/** Test setup acts as the command line would: with every power. */
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

describe('admin console: users', () => {
  let server: TestServer;
  let smtp: MailServer;
  let agent: UserAgent;
  let admin: { id: string; email: string };

  const url = (path: string) => `${server.url}${path}`;
  const userPath = (id: string) => `/admin/users/${id}`;

  /** A user made through the service (not under test here). */
  const newUser = async (label: string, extra: { roles?: 'admin'[]; password?: string; name?: string } = {}): Promise<UserAdminView> =>
    server.deps.userAdmin.create({ email: uniqueEmail(label), emailVerified: true, ...extra }, SETUP);

  /** Posts the form on `page` whose action ends with `actionEnd`, with its CSRF token; does not follow. */
  const postFrom = (page: Reply, actionEnd: string, fields: Record<string, string> = {}) =>
    agent.post(formAction(page.body, actionEnd), { csrf: formField(page.body, 'csrf'), ...fields });

  /** Confirmation page → POST → 303 to `expectedLocation` → the page it shows. */
  const confirmAndPost = async (userId: string, action: string, expectedLocation: string): Promise<Reply> => {
    const confirm = await agent.get(url(`${userPath(userId)}/${action}`));
    expect(confirm.status).toBe(200);
    const done = await postFrom(confirm, `${userPath(userId)}/${action}`);
    expect(done.status).toBe(303);
    expect(done.location).toBe(url(expectedLocation));
    const shown = await agent.get(done.location ?? '');
    expect(shown.status).toBe(200);
    return shown;
  };

  const auditEvents = async (action: string, targetId: string) =>
    (await server.deps.audit.list({ action, target: targetId }, { limit: 20 })).events;

  const expectAuditedByAdmin = async (action: string, targetId: string) => {
    const events = await auditEvents(action, targetId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actor: { type: 'account', id: admin.id, label: admin.email } });
    return events[0];
  };

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('console_users', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', PROFILE_PHONE: 'true', PROFILE_ADDRESS: 'true' } });
    const email = uniqueEmail('admin');
    const account = await server.deps.accounts.create({ email, password: PASSWORD, roles: ['admin'], emailVerified: true });
    admin = { id: account.id, email };
    agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, { email, password: PASSWORD });
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    await smtp.close();
  });

  it('lists users with their roles, status, sign-in methods and MFA, searches, and pages with a cursor', async () => {
    const prefix = `pager-${Date.now()}`;
    for (let i = 0; i < 51; i += 1) {
      await server.deps.userAdmin.create({ email: `${prefix}-${String(i).padStart(2, '0')}@example.test` });
    }
    const disabled = await newUser('listed', { password: PASSWORD, name: 'Listed <b>Person</b>' });
    await server.deps.userAdmin.setDisabled(disabled.id, true);

    const all = await agent.get(url('/admin/users'));
    expect(all.status).toBe(200);
    expect(all.headers.get('cache-control')).toBe('no-store');
    expect(all.body).toContain('aria-current="page"');

    const found = await agent.get(url(`/admin/users?q=${encodeURIComponent(disabled.email)}`));
    expect(found.status).toBe(200);
    expect(found.body).toContain(`href="/admin/users/${disabled.id}"`);
    expect(found.body).toContain('1 user matches');
    // Escaped, never markup.
    expect(found.body).toContain('Listed &lt;b&gt;Person&lt;/b&gt;');
    expect(found.body).not.toContain('<b>Person</b>');
    const row = found.body.slice(found.body.indexOf('<tbody>'));
    expect(row).toContain('Disabled');
    expect(row).toContain('Password, Code by email');
    expect(row).toContain('TOTP off');

    const first = await agent.get(url(`/admin/users?q=${prefix}`));
    expect(first.body).toContain('51 users match');
    expect(first.body.match(/data-label="Email"/g)).toHaveLength(50);
    const next = /href="(\/admin\/users\?q=[^"]*cursor=[^"]+)"/.exec(first.body)?.[1]?.replace(/&amp;/g, '&');
    expect(next).toBeDefined();
    const second = await agent.get(url(next ?? ''));
    expect(second.status).toBe(200);
    expect(second.body.match(/data-label="Email"/g)).toHaveLength(1);
    expect(second.body).toContain(`${prefix}-50@example.test`);
    expect(second.body).toContain('First page');

    const stale = await agent.get(url('/admin/users?cursor=not-a-cursor!'));
    expect(stale.status).toBe(400);
    expect(stale.body).toContain('no longer valid');
  });

  it('shows one user: sign-in methods, MFA with its date and recovery codes left, reset flag, status, roles', async () => {
    const user = await newUser('detail', { password: PASSWORD, name: 'Dee Tail' });
    const { secret, sealed } = await server.deps.totp.beginEnrolment(user);
    const activated = await server.deps.totp.activate(user.id, await totpCode(secret), sealed);
    expect(activated.ok).toBe(true);

    const page = await agent.get(url(userPath(user.id)));
    expect(page.status).toBe(200);
    expect(page.body).toContain(user.email);
    expect(page.body).toContain('Dee Tail');
    expect(page.body).toContain('Password, Code by email, Authenticator app');
    expect(page.body).toMatch(/On\s+since \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
    expect(page.body).toMatch(/<dt>Recovery codes left<\/dt><dd>10<\/dd>/);
    expect(page.body).toMatch(/<dt>Password reset required<\/dt><dd>No/);
    // Destructive actions are links to confirmation pages, not forms that act at once.
    for (const action of ['disable', 'reset-mfa', 'require-password-reset', 'grant-admin', 'delete']) {
      expect(page.body).toContain(`href="${userPath(user.id)}/${action}"`);
      expect(page.body).not.toContain(`action="${userPath(user.id)}/${action}"`);
    }

    const missing = await agent.get(url('/admin/users/no-such-user'));
    expect(missing.status).toBe(404);
  });

  it('has a confirmation page for every destructive action, which changes nothing by itself', async () => {
    const user = await newUser('confirm', { password: PASSWORD, roles: ['admin'] });
    for (const action of ['disable', 'reset-mfa', 'require-password-reset', 'revoke-admin', 'delete']) {
      const confirm = await agent.get(url(`${userPath(user.id)}/${action}`));
      expect(confirm.status).toBe(200);
      expect(confirm.body).toContain(`action="${userPath(user.id)}/${action}"`);
      expect(confirm.body).toContain('name="csrf"');
      expect(confirm.body).toContain(`href="${userPath(user.id)}"`);
    }
    expect(await server.deps.userAdmin.get(user.id)).toMatchObject({ disabled: false, roles: ['admin'], passwordResetRequired: false });
    expect((await server.deps.audit.list({ target: user.id, action: 'user.' }, { limit: 20 })).events.map((e) => e.action)).toEqual([
      'user.role_granted',
      'user.created',
    ]);

    const unknown = await agent.get(url(`${userPath(user.id)}/promote-to-god`));
    expect(unknown.status).toBe(404);
  });

  it('disables (confirmed) and enables an account', async () => {
    const user = await newUser('disable', { password: PASSWORD });
    const shown = await confirmAndPost(user.id, 'disable', `${userPath(user.id)}?notice=disabled`);
    expect(shown.body).toContain('The account was disabled');
    expect((await server.deps.userAdmin.get(user.id))?.disabled).toBe(true);
    await expectAuditedByAdmin('user.disabled', user.id);

    // Enabling is not destructive: a button on the detail page posts at once.
    const enabled = await postFrom(shown, `${userPath(user.id)}/enable`);
    expect(enabled.status).toBe(303);
    expect(enabled.location).toBe(url(`${userPath(user.id)}?notice=enabled`));
    expect((await server.deps.userAdmin.get(user.id))?.disabled).toBe(false);
    await expectAuditedByAdmin('user.enabled', user.id);
  });

  it('resets the second factor', async () => {
    const user = await newUser('mfa', { password: PASSWORD });
    const { secret, sealed } = await server.deps.totp.beginEnrolment(user);
    expect((await server.deps.totp.activate(user.id, await totpCode(secret), sealed)).ok).toBe(true);
    expect((await server.deps.userAdmin.get(user.id))?.mfa.totp).toBe(true);

    const shown = await confirmAndPost(user.id, 'reset-mfa', `${userPath(user.id)}?notice=mfa-reset`);
    expect(shown.body).toContain('The second factor was reset');
    expect((await server.deps.userAdmin.get(user.id))?.mfa).toEqual({ totp: false, recoveryCodesLeft: 0 });
    const event = await expectAuditedByAdmin('user.mfa_reset', user.id);
    expect(event?.details).toMatchObject({ hadTotp: true, recoveryCodesRemoved: 10 });
  });

  it('requires a new password at the next sign-in', async () => {
    const user = await newUser('reset', { password: PASSWORD });
    const shown = await confirmAndPost(user.id, 'require-password-reset', `${userPath(user.id)}?notice=password-reset-required`);
    expect(shown.body).toMatch(/<dt>Password reset required<\/dt><dd>Yes/);
    expect((await server.deps.userAdmin.get(user.id))?.passwordResetRequired).toBe(true);
    await expectAuditedByAdmin('user.password_reset_required', user.id);
  });

  it('grants and revokes the admin role', async () => {
    const user = await newUser('roles');
    await confirmAndPost(user.id, 'grant-admin', `${userPath(user.id)}?notice=admin-granted`);
    expect((await server.deps.userAdmin.get(user.id))?.roles).toEqual(['admin']);
    expect((await expectAuditedByAdmin('user.role_granted', user.id))?.details).toEqual({ role: 'admin' });

    const shown = await confirmAndPost(user.id, 'revoke-admin', `${userPath(user.id)}?notice=admin-revoked`);
    expect(shown.body).toContain('The admin role was revoked');
    expect((await server.deps.userAdmin.get(user.id))?.roles).toEqual([]);
    expect((await expectAuditedByAdmin('user.role_revoked', user.id))?.details).toEqual({ role: 'admin' });
  });

  it('acts on another administrator: the console admin holds every management API scope', async () => {
    const other = await newUser('other-admin', { password: PASSWORD, roles: ['admin'] });
    await confirmAndPost(other.id, 'require-password-reset', `${userPath(other.id)}?notice=password-reset-required`);
    await confirmAndPost(other.id, 'disable', `${userPath(other.id)}?notice=disabled`);
    expect(await server.deps.userAdmin.get(other.id)).toMatchObject({ disabled: true, passwordResetRequired: true, roles: ['admin'] });
    await expectAuditedByAdmin('user.password_reset_required', other.id);
    await expectAuditedByAdmin('user.disabled', other.id);
    await confirmAndPost(other.id, 'delete', '/admin/users?notice=deleted');
    expect(await server.deps.userAdmin.get(other.id)).toBeUndefined();
    await expectAuditedByAdmin('user.deleted', other.id);
  });

  it('deletes a user, then lands on the list', async () => {
    const user = await newUser('delete', { password: PASSWORD });
    const shown = await confirmAndPost(user.id, 'delete', '/admin/users?notice=deleted');
    expect(shown.body).toContain('The user was deleted.');
    expect(shown.body).not.toContain(user.email);
    expect(await server.deps.userAdmin.get(user.id)).toBeUndefined();
    await expectAuditedByAdmin('user.deleted', user.id);

    const gone = await agent.get(url(`${userPath(user.id)}/delete`));
    expect(gone.status).toBe(404);
  });

  it('creates a user (optional page), with field errors and a duplicate refused', async () => {
    const form = await agent.get(url('/admin/users/new'));
    expect(form.status).toBe(200);
    for (const id of ['email', 'name', 'password', 'admin']) expect(form.body).toContain(`<label for="${id}"`);

    const invalid = await postFrom(form, '/admin/users/new', { email: 'not-an-email', name: 'Nia', password: 'short' });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toContain('role="alert"');
    expect(invalid.body).toMatch(/id="email"[^>]*aria-invalid="true"[^>]*aria-describedby="email-error"/);
    expect(invalid.body).toMatch(/id="password"[^>]*aria-invalid="true"/);
    expect(invalid.body).toContain('value="Nia"');
    // The password typed is never sent back.
    expect(invalid.body).not.toContain('value="short"');

    // A weak password: the reason beside the field (aria-describedby), nothing stored, the password not sent back.
    const weakEmail = uniqueEmail('weak');
    const weak = await postFrom(invalid, '/admin/users/new', { email: weakEmail, name: 'Nia', password: 'qwertyuiop12' });
    expect(weak.status).toBe(400);
    expect(weak.body).toMatch(/id="password"[^>]*aria-invalid="true"[^>]*aria-describedby="password-error password-hint"/);
    expect(weak.body).toMatch(/<p class="field-error" id="password-error">[^<]*common or leaked passwords/);
    expect(weak.body).toContain(`value="${weakEmail}"`);
    expect(weak.body).not.toContain('qwertyuiop12');
    expect(await server.deps.accounts.findByEmail(weakEmail)).toBeUndefined();
    const fromName = await postFrom(weak, '/admin/users/new', { email: weakEmail, name: 'Bartholomew Jones', password: 'Bartholomew1987!' });
    expect(fromName.status).toBe(400);
    expect(fromName.body).toMatch(/id="password-error">[^<]*your name/);
    expect(await server.deps.accounts.findByEmail(weakEmail)).toBeUndefined();
    expect(form.body).toMatch(/id="password-hint">[^<]*12 to 128 characters/);

    const email = uniqueEmail('created');
    const created = await postFrom(fromName, '/admin/users/new', { email, name: 'New Admin', admin: 'on', password: PASSWORD });
    expect(created.status).toBe(303);
    const user = await server.deps.accounts.findByEmail(email);
    expect(user).toBeDefined();
    expect(created.location).toBe(url(`${userPath(user?.id ?? '')}?notice=created`));
    expect(await server.deps.userAdmin.get(user?.id ?? '')).toMatchObject({ name: 'New Admin', roles: ['admin'], hasPassword: true });
    await expectAuditedByAdmin('user.created', user?.id ?? '');
    const audited = await auditEvents('user.created', user?.id ?? '');
    expect(JSON.stringify(audited)).not.toContain(PASSWORD);

    const again = await agent.get(url('/admin/users/new'));
    const duplicate = await postFrom(again, '/admin/users/new', { email });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body).toContain('already exists');
  });

  it('refuses to let an admin disable, demote or delete themselves: a 409 page, nothing changed', async () => {
    const own = await agent.get(url(userPath(admin.id)));
    expect(own.status).toBe(200);
    expect(own.body).toContain('You cannot remove the admin role from your own account.');
    expect(own.body).not.toContain(`href="${userPath(admin.id)}/revoke-admin"`);

    const cases: [string, RegExp][] = [
      ['revoke-admin', /You cannot remove the admin role from your own account/],
      ['disable', /You cannot disable your own account/],
      ['delete', /You cannot delete your own account/],
    ];
    for (const [action, message] of cases) {
      const confirm = await agent.get(url(`${userPath(admin.id)}/${action}`));
      expect(confirm.status).toBe(200);
      const refused = await postFrom(confirm, `${userPath(admin.id)}/${action}`);
      expect(refused.status).toBe(409);
      expect(refused.body).toMatch(message);
      expect(refused.body).toContain('role="alert"');
      // Still the console page (navigation and all), not an error crash.
      expect(refused.body).toContain('aria-label="Console"');
    }
    expect(await server.deps.userAdmin.get(admin.id)).toMatchObject({ roles: ['admin'], disabled: false });
    expect((await server.deps.audit.list({ target: admin.id, action: 'user.' }, { limit: 20 })).events.map((e) => e.action)).not.toEqual(
      expect.arrayContaining(['user.role_revoked', 'user.disabled', 'user.deleted']),
    );
    // And the console still works for them.
    expect((await agent.get(url('/admin/users'))).status).toBe(200);
  });

  it('refuses a POST with a missing or another session’s CSRF token (403), changing nothing', async () => {
    const user = await newUser('csrf', { password: PASSWORD });
    const target = url(`${userPath(user.id)}/disable`);

    const missing = await agent.post(target, {});
    expect(missing.status).toBe(403);
    const wrong = await agent.post(target, { csrf: 'forged-token' });
    expect(wrong.status).toBe(403);

    // A real token, from another admin's console session.
    const otherEmail = uniqueEmail('other-admin');
    await server.deps.accounts.create({ email: otherEmail, password: PASSWORD, roles: ['admin'], emailVerified: true });
    const other = new UserAgent(server.url);
    await signInToConsole(other, server, smtp, { email: otherEmail, password: PASSWORD });
    const otherPage = await other.get(url(`${userPath(user.id)}/disable`));
    const foreign = await agent.post(target, { csrf: formField(otherPage.body, 'csrf') });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toContain('request.csrf');
    const createForeign = await agent.post(url('/admin/users/new'), { csrf: formField(otherPage.body, 'csrf'), email: uniqueEmail('x') });
    expect(createForeign.status).toBe(403);

    expect((await server.deps.userAdmin.get(user.id))?.disabled).toBe(false);
    expect(await auditEvents('user.disabled', user.id)).toHaveLength(0);
  });

  describe('the profile form', () => {
    const fields = (extra: Record<string, string> = {}) => ({
      name: 'Mary Jackson',
      givenName: 'Mary',
      familyName: 'Jackson',
      middleName: '',
      nickname: '',
      preferredUsername: 'mjackson',
      picture: '',
      website: 'https://mary.example.test/',
      profile: '',
      gender: '',
      birthdate: '',
      zoneinfo: 'America/New_York',
      locale: 'en-US',
      phoneNumber: '+1 757 555 0100',
      phoneNumberVerified: 'on',
      'address.streetAddress': '1 Langley Blvd',
      'address.locality': 'Hampton',
      'address.region': 'VA',
      'address.postalCode': '23681',
      'address.country': 'USA',
      ...extra,
    });

    it('an admin sets the name and standard claims (a verified phone number, an address): stored, shown, audited with claim names', async () => {
      const user = await newUser('profile');
      const page = await agent.get(url(userPath(user.id)));
      expect(page.status).toBe(200);
      const saved = await postFrom(page, `${userPath(user.id)}/profile`, fields());
      expect([saved.status, saved.location]).toEqual([303, url(`${userPath(user.id)}?notice=profile-saved`)]);
      const stored = await server.deps.accounts.findById(user.id);
      expect(stored?.name).toBe('Mary Jackson');
      expect(stored?.profile).toStrictEqual({
        given_name: 'Mary',
        family_name: 'Jackson',
        preferred_username: 'mjackson',
        website: 'https://mary.example.test/',
        zoneinfo: 'America/New_York',
        locale: 'en-US',
        phone_number: '+17575550100',
        phone_number_verified: true,
        address: { street_address: '1 Langley Blvd', locality: 'Hampton', region: 'VA', postal_code: '23681', country: 'USA' },
      });
      const shown = await agent.get(saved.location!);
      expect(shown.body).toMatch(/id="p-phoneNumber"[^>]*value="\+17575550100"/);
      expect(shown.body).toMatch(/id="p-phoneNumberVerified"[^>]*checked/);
      const [event] = await auditEvents('user.profile_updated', user.id);
      expect(event).toMatchObject({ outcome: 'success', actor: { type: 'account', id: admin.id } });
      expect(event?.details?.fields).toEqual(expect.arrayContaining(['given_name', 'phone_number', 'phone_number_verified', 'address']));
      expect(JSON.stringify(event)).not.toContain('Langley');
    });

    it('refuses bad values with 400, each message beside its field, and changes nothing', async () => {
      const user = await newUser('profile-bad', { name: 'Stays' });
      const page = await agent.get(url(userPath(user.id)));
      const refused = await postFrom(page, `${userPath(user.id)}/profile`, fields({ website: 'http://insecure.example.test/', phoneNumber: '12', locale: 'xx_not', 'address.postalCode': 'p'.repeat(21) }));
      expect(refused.status).toBe(400);
      for (const [id, message] of [
        ['p-website', 'https URL'],
        ['p-phoneNumber', 'international number'],
        ['p-locale', 'language tag'],
        ['p-address-postalCode', 'at most 20 characters'],
      ] as const) {
        expect(refused.body).toMatch(new RegExp(`<input[^>]*id="${id}"[^>]*aria-invalid="true"`));
        expect(refused.body).toMatch(new RegExp(`id="${id}-error">[^<]*${message}`));
      }
      const stored = await server.deps.accounts.findById(user.id);
      expect(stored?.name).toBe('Stays');
      expect(stored?.profile).toStrictEqual({});
      expect(await auditEvents('user.profile_updated', user.id)).toHaveLength(0);
    });
  });
});
