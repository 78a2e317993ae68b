import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { adminToken, call, expectProblem } from './api-client.js';

/** /users of the management API, over the user admin service. */

const PASSWORD = 'a long enough password 42';

let server: TestServer;
let token: string;
let adminId: string;
let readOnly: string;

beforeAll(async () => {
  server = await startTestServer('admin_api_users', { logLevel: 'warn' });
  ({ token, accountId: adminId } = await adminToken(server));
  ({ token: readOnly } = await adminToken(server, ['admin:users:read']));
});

afterAll(async () => {
  await server.close();
});

async function createUser(email: string, extra: Record<string, unknown> = {}): Promise<string> {
  const answer = await call(server, 'POST', 'users', { token, json: { email, ...extra } });
  expect(answer.status).toBe(201);
  return answer.body.id as string;
}

describe('users', () => {
  it('creates a user, never echoing the password', async () => {
    const answer = await call(server, 'POST', 'users', {
      token,
      json: { email: ' New.Person@Example.TEST ', password: PASSWORD, name: 'New Person', roles: [], emailVerified: true },
    });
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({
      id: expect.any(String),
      email: 'new.person@example.test',
      name: 'New Person',
      roles: [],
      disabled: false,
      hasPassword: true,
      emailVerified: true,
      signInMethods: ['password', 'email_code'],
      mfa: { totp: false, recoveryCodesLeft: 0 },
      passwordResetRequired: false,
    });
    expect(answer.headers.get('location')).toBe(`/api/admin/v1/users/${encodeURIComponent(answer.body.id as string)}`);
    expect(answer.text).not.toContain(PASSWORD);
    expect(server.logs.join('\n')).not.toContain(PASSWORD);

    expectProblem(await call(server, 'POST', 'users', { token, json: { email: 'new.person@example.test' } }), 409, 'user.email_taken');
  });

  it('refuses invalid input with a message per field', async () => {
    const answer = await call(server, 'POST', 'users', { token, json: { email: 'not an address', password: 'short', roles: ['root'], id: 'mine' } });
    expectProblem(answer, 400, 'request.invalid', ['email', 'password', 'roles.0', 'id']);
    expect(answer.text).not.toContain('short"');
    expectProblem(await call(server, 'POST', 'users', { token, json: {} }), 400, 'request.invalid', ['email']);
  });

  it('refuses a weak password with the reason (400 password.<reason>), storing nothing', async () => {
    const cases = [
      { password: 'password1234', code: 'password.too_common', email: 'weak-common@example.test' },
      { password: 'eleven char', code: 'password.too_short', email: 'weak-short@example.test' },
      { password: 'x'.repeat(129), code: 'password.too_long', email: 'weak-long@example.test' },
      { password: 'Ferdinand2024!', code: 'password.contains_email', email: 'ferdinand@example.test' },
      { password: 'Bartholomew1987!', code: 'password.contains_name', email: 'weak-name@example.test', name: 'Bartholomew Jones' },
      { password: 'Identity2024!!', code: 'password.contains_product_name', email: 'weak-product@example.test' },
    ];
    for (const { password, code, email, name } of cases) {
      const answer = await call(server, 'POST', 'users', { token, json: { email, password, ...(name ? { name } : {}) } });
      expectProblem(answer, 400, code, ['password']);
      const [problem] = answer.body.errors as { field: string; message: string }[];
      expect(problem?.message).toMatch(/characters|common|guess|email|name|Identity/);
      expect(answer.text).not.toContain(password);
      expect(await server.deps.accounts.findByEmail(email)).toBeUndefined();
    }
    // The same input with a strong password goes through.
    await createUser('weak-common@example.test', { password: PASSWORD });
  });

  it('lists users by email with search, limit and cursor', async () => {
    for (const n of [2, 3, 1]) await createUser(`listed${n}@example.test`);
    const first = await call(server, 'GET', 'users?search=listed&limit=2', { token: readOnly });
    expect(first.status).toBe(200);
    expect(first.body.total).toBe(3);
    expect(first.body.users.map((u: { email: string }) => u.email)).toEqual(['listed1@example.test', 'listed2@example.test']);
    const second = await call(server, 'GET', `users?search=listed&limit=2&cursor=${encodeURIComponent(first.body.nextCursor)}`, { token: readOnly });
    expect(second.body.users.map((u: { email: string }) => u.email)).toEqual(['listed3@example.test']);
    expect(second.body).not.toHaveProperty('nextCursor');

    expectProblem(await call(server, 'GET', 'users?limit=201', { token }), 400, 'request.invalid', ['limit']);
    expectProblem(await call(server, 'GET', 'users?cursor=***', { token }), 400, 'user.invalid', ['cursor']);
  });

  it('reads one user', async () => {
    const id = await createUser('readable@example.test', { name: 'Readable' });
    const answer = await call(server, 'GET', `users/${id}`, { token: readOnly });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id, email: 'readable@example.test', name: 'Readable' });
    expectProblem(await call(server, 'GET', 'users/no-such-user', { token }), 404, 'user.not_found');
  });

  it('changes name and roles', async () => {
    const id = await createUser('changed@example.test');
    const answer = await call(server, 'PATCH', `users/${id}`, { token, json: { name: 'Changed', roles: ['admin'] } });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ name: 'Changed', roles: ['admin'] });
    expectProblem(await call(server, 'PATCH', `users/${id}`, { token, json: { email: 'x@example.test' } }), 400, 'request.invalid', ['email']);
    expectProblem(await call(server, 'PATCH', `users/${id}`, { token, json: { disabled: 'yes' } }), 400, 'request.invalid', ['disabled']);
    expectProblem(await call(server, 'PATCH', 'users/no-such-user', { token, json: { name: 'x' } }), 404, 'user.not_found');
  });

  it('sets standard profile claims, audited by claim name; refuses bad values field by field, storing nothing', async () => {
    const id = await createUser('profiled@example.test', { name: 'Profiled' });
    const answer = await call(server, 'PATCH', `users/${id}`, {
      token,
      json: { name: 'Pro Filed', profile: { givenName: ' Pro ', picture: 'https://img.example.test/p.png', zoneinfo: 'America/New_York', locale: 'fr-ca' } },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.name).toBe('Pro Filed');
    expect(answer.body.profile).toStrictEqual({ givenName: 'Pro', picture: 'https://img.example.test/p.png', zoneinfo: 'America/New_York', locale: 'fr-CA' });
    expect(Date.parse(answer.body.profileUpdatedAt as string)).toBeGreaterThan(Date.now() - 60_000);
    await server.deps.audit.flush();
    const events = await server.deps.audit.list({ action: 'user.profile_updated', target: id }, { limit: 5 });
    expect(events.events[0]?.actor).toMatchObject({ type: 'account', id: adminId });
    expect(events.events[0]?.details?.fields).toEqual(expect.arrayContaining(['given_name', 'picture', 'zoneinfo', 'locale']));
    expect(JSON.stringify(events.events[0])).not.toContain('img.example.test');

    const refused = await call(server, 'PATCH', `users/${id}`, {
      token,
      json: { name: 'Not Stored', profile: { website: 'ftp://x.example.test', locale: '12', zoneinfo: 'Nowhere/Town', givenName: 'g'.repeat(101) } },
    });
    expectProblem(refused, 400, undefined, ['profile.website', 'profile.locale', 'profile.zoneinfo', 'profile.givenName']);
    // This deployment stores no phone numbers (PROFILE_PHONE): a clear 400 too.
    expectProblem(await call(server, 'PATCH', `users/${id}`, { token, json: { profile: { phoneNumber: '+33123456789' } } }), 400, 'user.invalid', ['phoneNumber']);
    const after = await call(server, 'GET', `users/${id}`, { token });
    expect(after.body.name).toBe('Pro Filed');
    expect(after.body.profile).toStrictEqual(answer.body.profile);
  });

  it('disables and enables a user', async () => {
    const id = await createUser('toggled@example.test');
    const disabled = await call(server, 'POST', `users/${id}/disable`, { token });
    expect(disabled.status).toBe(200);
    expect(disabled.body.disabled).toBe(true);
    const enabled = await call(server, 'POST', `users/${id}/enable`, { token });
    expect(enabled.status).toBe(200);
    expect(enabled.body.disabled).toBe(false);
    expectProblem(await call(server, 'POST', 'users/no-such-user/disable', { token }), 404, 'user.not_found');
  });

  it('resets the second factor and requires a new password', async () => {
    const id = await createUser('reset@example.test', { password: PASSWORD });
    const mfa = await call(server, 'POST', `users/${id}/reset-mfa`, { token });
    expect(mfa.status).toBe(200);
    expect(mfa.body.mfa).toEqual({ totp: false, recoveryCodesLeft: 0 });
    const reset = await call(server, 'POST', `users/${id}/require-password-reset`, { token });
    expect(reset.status).toBe(200);
    expect(reset.body.passwordResetRequired).toBe(true);
    await server.deps.audit.flush();
    const events = await server.deps.audit.list({ target: id, actor: adminId }, { limit: 10 });
    expect(events.events.map((e) => e.action)).toEqual(expect.arrayContaining(['user.mfa_reset', 'user.password_reset_required', 'user.created']));
  });

  it('keeps an admin from locking themselves out', async () => {
    expectProblem(await call(server, 'POST', `users/${adminId}/disable`, { token }), 409, 'user.self');
    expectProblem(await call(server, 'PATCH', `users/${adminId}`, { token, json: { roles: [] } }), 409, 'user.self');
    expectProblem(await call(server, 'DELETE', `users/${adminId}`, { token }), 409, 'user.self');
    expect((await call(server, 'GET', `users/${adminId}`, { token })).body.disabled).toBe(false);
  });

  it('deletes a user', async () => {
    const id = await createUser('deleted@example.test');
    const answer = await call(server, 'DELETE', `users/${id}`, { token });
    expect(answer.status).toBe(204);
    expectProblem(await call(server, 'GET', `users/${id}`, { token }), 404, 'user.not_found');
    expectProblem(await call(server, 'DELETE', `users/${id}`, { token }), 404, 'user.not_found');
  });

  it('needs the write scope to change anything', async () => {
    const id = await createUser('guarded@example.test');
    expectProblem(await call(server, 'POST', `users/${id}/disable`, { token: readOnly }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'PATCH', `users/${id}`, { token: readOnly, json: { name: 'x' } }), 403, 'auth.insufficient_scope');
  });
});
