/**
 * The Registration tokens and API token sections of the admin console: tokens made through the
 * pages work where they are meant to (POST /reg, the management API), are shown once, can be
 * revoked, and never reach the audit log or the server's logs.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../../src/audit/audit.service.js';
import { signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { REDIRECT_URI } from '../../support/rp.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formAction, formField } from '../../support/user-agent.js';
import type { Reply } from '../../support/user-agent.js';

const PASSWORD = 'correct horse battery staple';
const ADMIN_EMAIL = 'console-tokens-admin@example.test';

/** The value in the shown-once box. */
function shownOnce(page: Reply): string {
  const token = /<div class="secret-once"[^>]*>.*?<code[^>]*>([^<]+)<\/code>/s.exec(page.body)?.[1];
  if (!token) throw new Error('no shown-once token on the page');
  return token;
}

describe('admin console: registration tokens and API tokens', () => {
  let server: TestServer;
  let smtp: MailServer;
  let agent: UserAgent;
  let adminId: string;

  const url = (path: string) => `${server.url}${path}`;
  const postFrom = (page: Reply, actionEnd: string, fields: Record<string, string> = {}) =>
    agent.post(formAction(page.body, actionEnd), { csrf: formField(page.body, 'csrf'), ...fields });

  const register = async (token: string) => {
    const res = await fetch(url('/reg'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ client_name: 'Console-made registrant', redirect_uris: [REDIRECT_URI] }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /** Every audit event as stored, and every log line: where a token must never appear. */
  const expectNowhereRecorded = async (token: string) => {
    const stored = await server.deps.db.collection(AUDIT_COLLECTION).find({}).toArray();
    expect(stored.length).toBeGreaterThan(0);
    expect(JSON.stringify(stored)).not.toContain(token);
    expect(server.logs.join('\n')).not.toContain(token);
  };

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('console_tokens', {
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', DYNAMIC_REGISTRATION: 'true' },
    });
    adminId = (await server.deps.accounts.create({ email: ADMIN_EMAIL, password: PASSWORD, roles: ['admin'], emailVerified: true })).id;
    agent = new UserAgent(server.url);
    await signInToConsole(agent, server, smtp, { email: ADMIN_EMAIL, password: PASSWORD });
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    await smtp.close();
  });

  it('creates a registration token in the console, shown once, that registers a client at /reg', async () => {
    const list = await agent.get(url('/admin/registration-tokens'));
    expect(list.status).toBe(200);
    expect(list.body).toContain('Dynamic registration is on');
    expect(list.body).toContain('<label for="expiresInHours"');
    expect(list.body).toContain('<label for="uses"');

    const created = await postFrom(list, '/admin/registration-tokens', { expiresInHours: '2', uses: '1' });
    expect(created.status).toBe(200);
    expect(created.headers.get('cache-control')).toBe('no-store');
    const token = shownOnce(created);
    expect(created.body).toContain(`${server.url}/reg`);
    expect(created.body).toContain('Authorization: Bearer &lt;token&gt;');
    expect(created.body).toContain(`Authorization: Bearer ${token}`);
    expect(created.body).toContain('Dynamic registration is on');

    const [view] = await server.deps.registrationTokens.list();
    expect(view).toMatchObject({ usesAllowed: 1, usesCount: 0, revoked: false, createdBy: { type: 'account', id: adminId } });
    const lifetime = (view?.expiresAt?.getTime() ?? 0) - (view?.createdAt.getTime() ?? 0);
    expect(lifetime).toBe(2 * 60 * 60 * 1000);

    // The list shows it by id, never the token again.
    const listed = await agent.get(url('/admin/registration-tokens'));
    expect(listed.body).toContain(view?.id ?? '?');
    expect(listed.body).not.toContain(token);
    expect(listed.body).toContain('0 / 1');
    expect(listed.body).toContain(ADMIN_EMAIL);

    const registered = await register(token);
    expect(registered.status).toBe(201);
    expect(registered.body.client_id).toEqual(expect.any(String));
    const afterUse = await agent.get(url('/admin/registration-tokens'));
    expect(afterUse.body).toContain('1 / 1');
    expect(afterUse.body).toContain('Used up');

    const events = (await server.deps.audit.list({ action: 'registration_token.created', target: view?.id ?? '?' }, { limit: 5 })).events;
    expect(events).toHaveLength(1);
    expect(events[0]?.actor).toMatchObject({ type: 'account', id: adminId });
    await expectNowhereRecorded(token);
  });

  it('refuses invalid limits with messages next to the fields, creating nothing', async () => {
    const before = (await server.deps.registrationTokens.list()).length;
    const list = await agent.get(url('/admin/registration-tokens'));
    const refused = await postFrom(list, '/admin/registration-tokens', { expiresInHours: 'soon', uses: '0' });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatch(/id="expiresInHours"[^>]*aria-invalid="true"/);
    expect(refused.body).toMatch(/id="uses"[^>]*aria-invalid="true"/);
    expect(refused.body).toContain('Hours must be a whole number');
    expect(refused.body).toContain('Uses must be at least 1');
    expect(refused.body).toContain('value="soon"');
    expect((await server.deps.registrationTokens.list()).length).toBe(before);
  });

  it('revokes a registration token through a confirmation page; /reg then refuses it', async () => {
    const list = await agent.get(url('/admin/registration-tokens'));
    const token = shownOnce(await postFrom(list, '/admin/registration-tokens', { expiresInHours: '', uses: '' }));
    const view = (await server.deps.registrationTokens.list()).find((v) => !v.revoked && v.usesAllowed === undefined);
    expect(view).toBeDefined();
    expect(view?.expiresAt).toBeUndefined();
    const id = view?.id ?? '?';

    const listed = await agent.get(url('/admin/registration-tokens'));
    expect(listed.body).toContain(`href="/admin/registration-tokens/${id}/revoke"`);
    const confirm = await agent.get(url(`/admin/registration-tokens/${id}/revoke`));
    expect(confirm.status).toBe(200);
    expect((await server.deps.registrationTokens.list()).find((v) => v.id === id)?.revoked).toBe(false);

    const done = await postFrom(confirm, `/admin/registration-tokens/${id}/revoke`);
    expect(done.status).toBe(303);
    expect(done.location).toBe(url('/admin/registration-tokens?notice=revoked'));
    const shown = await agent.get(done.location ?? '');
    expect(shown.body).toContain('The registration token was revoked');
    expect(shown.body).not.toContain(`href="/admin/registration-tokens/${id}/revoke"`);
    expect((await server.deps.registrationTokens.list()).find((v) => v.id === id)?.revoked).toBe(true);
    const events = (await server.deps.audit.list({ action: 'registration_token.revoked', target: id }, { limit: 5 })).events;
    expect(events.map((e) => e.actor.id)).toEqual([adminId]);

    const refused = await register(token);
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_token');

    const unknown = await agent.get(url('/admin/registration-tokens/AAAAAAAAAAAAAAAA/revoke'));
    expect(unknown.status).toBe(404);
  });

  it('mints a management API token for the admin, shown once, that works against the API and is never audited', async () => {
    const form = await agent.get(url('/admin/api-token'));
    expect(form.status).toBe(200);
    for (const scope of server.config.adminApi.scopes) expect(form.body).toContain(`<label for="scope-${scope}"`);

    const none = await postFrom(form, '/admin/api-token');
    expect(none.status).toBe(400);
    expect(none.body).toContain('Choose at least one scope.');

    const minted = await postFrom(none, '/admin/api-token', { 'scope-admin:clients:read': 'on' });
    expect(minted.status).toBe(200);
    expect(minted.headers.get('cache-control')).toBe('no-store');
    const token = shownOnce(minted);
    expect(minted.body).toContain(`curl -H &quot;Authorization: Bearer ${token}&quot; ${server.config.adminApi.resource}/clients`);
    expect(minted.body).toMatch(/<dt>Expires<\/dt><dd>\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC<\/dd>/);

    const api = await fetch(`${server.config.adminApi.resource}/clients`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    expect(api.status).toBe(200);
    // Only the scopes chosen.
    const users = await fetch(`${server.config.adminApi.resource}/users`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    expect(users.status).toBe(403);

    const events = (await server.deps.audit.list({ action: 'api_token.issued', actor: adminId }, { limit: 5 })).events;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      outcome: 'success',
      actor: { type: 'account', id: adminId, label: ADMIN_EMAIL },
      details: { scopes: ['admin:clients:read'], expiresIn: expect.any(Number) },
    });
    await expectNowhereRecorded(token);
  });

  it('lists admin:clients:grant; a token gives clients only what it holds itself', async () => {
    const form = await agent.get(url('/admin/api-token'));
    expect(form.body).toMatch(/<label for="scope-admin:clients:grant"><code>admin:clients:grant<\/code> — Give clients management API scopes \(only those this token also has\) or first-party status/);
    // Reading is the common case: writing and granting are deliberate choices.
    expect(form.body).not.toMatch(/id="scope-admin:clients:grant"[^>]*checked/);

    const service = { name: 'Minted service', grantTypes: ['client_credentials'], redirectUris: [], scopes: ['admin:audit:read'] };
    const create = (token: string) =>
      fetch(`${server.config.adminApi.resource}/clients`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'content-type': 'application/json' },
        body: JSON.stringify(service),
      });

    const writer = shownOnce(await postFrom(form, '/admin/api-token', { 'scope-admin:clients:write': 'on' }));
    const before = await server.deps.db.collection('clients').countDocuments();
    const refused = await create(writer);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { code: string }).code).toBe('client.scope_not_held');
    expect(await server.deps.db.collection('clients').countDocuments()).toBe(before);

    const again = await agent.get(url('/admin/api-token'));
    const granter = shownOnce(
      await postFrom(again, '/admin/api-token', { 'scope-admin:clients:write': 'on', 'scope-admin:clients:grant': 'on', 'scope-admin:audit:read': 'on' }),
    );
    const created = await create(granter);
    expect(created.status).toBe(201);
    expect(((await created.json()) as { scopes: string[] }).scopes).toEqual(['admin:audit:read']);
  });

  it('mints nothing for a POST without this session’s CSRF token', async () => {
    const before = await server.deps.db.collection('oidc_access_token').countDocuments();
    const refused = await agent.post(url('/admin/api-token'), { 'scope-admin:clients:read': 'on' });
    expect(refused.status).toBe(403);
    const forged = await agent.post(url('/admin/registration-tokens'), { csrf: 'forged', uses: '1' });
    expect(forged.status).toBe(403);
    expect(await server.deps.db.collection('oidc_access_token').countDocuments()).toBe(before);
  });
});
