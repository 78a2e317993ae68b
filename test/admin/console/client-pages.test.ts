/**
 * The console's Clients pages over HTTP, as a browser without JavaScript uses them: who may see
 * them, CSRF on every POST, form errors beside their fields, the shown-once secret, the built-in
 * clients, and the audit trail of every change with the admin as its actor.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { ACCOUNT_CLIENT_ID } from '../../../src/account/account-client.js';
import { ADMIN_CLIENT_ID } from '../../../src/admin/admin-client.js';
import { fullAuthority } from '../../../src/clients/admin-authority.js';
import { signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formField } from '../../support/user-agent.js';
import type { Reply } from '../../support/user-agent.js';

const PASSWORD = 'a long and correct passphrase';
const ADMIN = { email: 'grace.admin@example.com', password: PASSWORD, name: 'Grace Hopper' };
const PERSON = { email: 'not.an.admin@example.com', password: PASSWORD, name: 'Not Admin' };
const GRACE_SECONDS = 600;
/** Test setup acts as the command line would: with every power. */
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

/** The form as a person fills it in for a confidential web client; `extra` adds or replaces fields. */
function clientForm(csrf: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    csrf,
    name: 'Console App',
    logoUri: '',
    redirectUris: 'https://app.example.com/callback\r\nhttp://127.0.0.1:8080/callback',
    postLogoutRedirectUris: '',
    'grantTypes.authorization_code': 'on',
    'grantTypes.refresh_token': 'on',
    applicationType: 'web',
    tokenEndpointAuthMethod: 'client_secret_basic',
    jwksUri: '',
    jwks: '',
    'scopes.openid': 'on',
    'scopes.email': 'on',
    accessTokenTtl: '',
    idTokenTtl: '',
    refreshTokenTtl: '',
    ...extra,
  };
}

function without(form: Record<string, string>, ...keys: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(form).filter(([key]) => !keys.includes(key)));
}

const secretOn = (page: Reply) => /<code[^>]*id="client-secret"[^>]*>([^<]+)<\/code>/.exec(page.body)?.[1];

/** The `<input>` or `<textarea>` tag with this id. */
function tagWithId(html: string, id: string): string {
  const tag = new RegExp(`<(input|textarea|select|fieldset)\\b[^>]*\\bid="${id}"[^>]*>`).exec(html)?.[0];
  if (!tag) throw new Error(`no field #${id} on the page`);
  return tag;
}

describe('admin console: client pages', () => {
  let server: TestServer;
  let smtp: MailServer;
  let admin: UserAgent;
  let adminId: string;

  const url = (path: string) => `${server.url}${path}`;

  /** A page of the console as the signed-in admin, with its CSRF token. */
  const page = async (path: string): Promise<{ reply: Reply; csrf: string }> => {
    const reply = await admin.get(url(path));
    expect(reply.status).toBe(200);
    return { reply, csrf: formField(reply.body, 'csrf') };
  };

  /** Creates a client through the form; returns its id and the secret shown once. */
  const createThroughForm = async (extra: Record<string, string> = {}): Promise<{ clientId: string; secret: string | undefined; secretPage: Reply }> => {
    const { csrf } = await page('/admin/clients/new');
    const created = await admin.post(url('/admin/clients'), clientForm(csrf, extra));
    expect(created.status).toBe(303);
    const match = /\/admin\/clients\/([^/?]+)(\/secret)?/.exec(created.location ?? '');
    if (!match?.[1]) throw new Error(`unexpected redirect ${created.location ?? '(none)'}`);
    const secretPage = await admin.get(created.location!);
    expect(secretPage.status).toBe(200);
    return { clientId: decodeURIComponent(match[1]), secret: secretOn(secretPage), secretPage };
  };

  const auditFor = async (action: string, target: string) => (await server.deps.audit.list({ action, target }, { limit: 10 })).events;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('admin_console_clients', {
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', CLIENT_SECRET_GRACE_PERIOD: String(GRACE_SECONDS) },
    });
    adminId = (await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true })).id;
    await server.deps.accounts.create({ ...PERSON, emailVerified: true });
    admin = new UserAgent(server.url);
    const landing = await signInToConsole(admin, server, smtp, ADMIN);
    expect(landing.status).toBe(200);
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    await smtp.close();
  });

  describe('who may use the pages', () => {
    it('without a session, every page redirects to the console sign-in and every POST is refused', async () => {
      const { clientId } = await createThroughForm({ name: 'Guarded App' });
      const stranger = new UserAgent(server.url);
      for (const path of ['/admin/clients', '/admin/clients/new', `/admin/clients/${clientId}`, `/admin/clients/${clientId}/edit`,
        `/admin/clients/${clientId}/rotate-secret`, `/admin/clients/${clientId}/delete`, `/admin/clients/${clientId}/secret`]) {
        const reply = await stranger.get(url(path));
        expect([reply.status, reply.location]).toEqual([303, url('/admin/sign-in')]);
      }
      for (const path of ['/admin/clients', `/admin/clients/${clientId}`, `/admin/clients/${clientId}/rotate-secret`, `/admin/clients/${clientId}/delete`]) {
        const reply = await stranger.post(url(path), clientForm('anything'));
        expect(reply.status).toBe(401);
      }
      expect(await server.deps.clients.get(clientId)).toBeDefined();
    });

    it('an account without the admin role gets a 403 page', async () => {
      const person = new UserAgent(server.url);
      const landing = await signInToConsole(person, server, smtp, PERSON);
      expect(landing.status).toBe(403);
      expect(landing.headers.get('content-type')).toMatch(/^text\/html/);
      expect(landing.body).toContain('not an administrator');
      expect(landing.body).not.toContain('New client');
      const form = await person.get(url('/admin/clients/new'));
      expect(form.status).toBe(403);
      const before = (await server.deps.clients.list({ limit: 200 })).total;
      const post = await person.post(url('/admin/clients'), clientForm('anything'));
      expect(post.status).toBe(403);
      expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);
    });
  });

  describe('creating a client', () => {
    it('the form creates a confidential client, shows its secret once, and records the admin as the actor', async () => {
      const form = await page('/admin/clients/new');
      expect(form.reply.body).toContain('action="/admin/clients"');
      // Defaults: authorization code + refresh token, client_secret_basic, web.
      expect(tagWithId(form.reply.body, 'f-grant-authorization_code')).toContain('checked');
      expect(tagWithId(form.reply.body, 'f-grant-client_credentials')).not.toContain('checked');
      expect(tagWithId(form.reply.body, 'f-app-web')).toContain('checked');

      const created = await admin.post(url('/admin/clients'), clientForm(form.csrf, { name: 'Shown Once', 'grantTypes.client_credentials': 'on', accessTokenTtl: '600' }));
      expect(created.status).toBe(303);
      expect(created.location).toMatch(/\/admin\/clients\/[A-Za-z0-9_-]+\/secret$/);
      const clientId = decodeURIComponent(/\/admin\/clients\/([^/]+)\/secret$/.exec(created.location!)![1]!);

      const shown = await admin.get(created.location!);
      expect(shown.status).toBe(200);
      expect(shown.headers.get('cache-control')).toBe('no-store');
      const secret = secretOn(shown);
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(shown.body).toContain(`<code id="client-id">${clientId}</code>`);
      expect(shown.body).toContain(`href="/admin/clients/${clientId}"`);
      // The secret shown is the client's secret.
      expect((await server.deps.clients.find(clientId))?.client_secret).toBe(secret);

      // Once: a reload (or Back) finds nothing to show.
      const again = await admin.get(created.location!);
      expect(again.status).toBe(200);
      expect(secretOn(again)).toBeUndefined();
      expect(again.body).not.toContain(secret!);
      expect(again.body).toContain('cannot be shown again');

      const view = await server.deps.clients.get(clientId);
      expect(view).toMatchObject({
        name: 'Shown Once',
        public: false,
        redirectUris: ['https://app.example.com/callback', 'http://127.0.0.1:8080/callback'],
        grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
        scopes: ['openid', 'email'],
        tokenEndpointAuthMethod: 'client_secret_basic',
        accessTokenTtl: 600,
        requireMfa: false,
        firstParty: false,
      });

      const events = await auditFor('client.created', clientId);
      expect(events).toHaveLength(1);
      expect(events[0]!.actor).toMatchObject({ type: 'account', id: adminId, label: ADMIN.email });
      expect(JSON.stringify(events)).not.toContain(secret!);
    });

    it('a public client has no secret: the form leads to its page', async () => {
      const { csrf } = await page('/admin/clients/new');
      const created = await admin.post(
        url('/admin/clients'),
        clientForm(csrf, { name: 'Public SPA', tokenEndpointAuthMethod: 'none', redirectUris: 'https://spa.example.com/cb', requireMfa: 'on', firstParty: 'on' }),
      );
      expect(created.status).toBe(303);
      expect(created.location).toMatch(/\/admin\/clients\/[A-Za-z0-9_-]+\?notice=created$/);
      const detail = await admin.get(created.location!);
      expect(detail.status).toBe(200);
      expect(detail.body).toContain('It has no secret');
      expect(detail.body).toContain('No secret: a public client');
      expect(detail.body).toContain('requires MFA');
      expect(detail.body).toContain('first-party');
      // No rotation for a client without a secret.
      expect(detail.body).not.toContain('Rotate secret');
    });

    it('refused input re-renders the form (400) with each message beside its field and nothing created', async () => {
      const { csrf } = await page('/admin/clients/new');
      const before = (await server.deps.clients.list({ limit: 200 })).total;
      const reply = await admin.post(
        url('/admin/clients'),
        clientForm(csrf, {
          name: '   ',
          redirectUris: 'https://ok.example.com/cb\nhttp://evil.example.com/cb',
          jwks: '{"keys": [',
          accessTokenTtl: 'soon',
          refreshTokenTtl: '-5',
        }),
      );
      expect(reply.status).toBe(400);
      expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);

      // Summary at the top, linking to the fields.
      expect(reply.body).toContain('The client was not saved.');
      expect(reply.body).toContain('href="#f-name"');
      // Each field: marked invalid, described by its message, which follows it.
      for (const [id, message] of [
        ['f-name', 'must not be empty'],
        ['f-redirectUris', 'http://evil.example.com/cb'],
        ['f-jwks', 'is not valid JSON'],
        ['f-accessTokenTtl', 'must be a number of seconds'],
        ['f-refreshTokenTtl', 'positive'],
      ] as const) {
        const tag = tagWithId(reply.body, id);
        expect(tag).toContain('aria-invalid="true"');
        expect(tag).toMatch(new RegExp(`aria-describedby="[^"]*${id}-error`));
        const after = reply.body.slice(reply.body.indexOf(tag));
        const error = new RegExp(`<p class="field-error" id="${id}-error">(.*?)</p>`, 's').exec(after);
        expect(error?.[1]).toContain(message);
        // The message is the next error on the page after its field.
        expect(after.indexOf(`id="${id}-error"`)).toBe(after.indexOf('class="field-error"') + 'class="field-error" '.length);
      }
      // Fields that were fine are not marked.
      expect(tagWithId(reply.body, 'f-logoUri')).not.toContain('aria-invalid');
      // What was typed is shown again (escaped).
      expect(reply.body).toContain('http://evil.example.com/cb</textarea>');
      expect(reply.body).toContain('{&quot;keys&quot;: [</textarea>');
      expect(tagWithId(reply.body, 'f-accessTokenTtl')).toContain('value="soon"');
    });

    it('rules between fields are reported on the field they concern', async () => {
      const { csrf } = await page('/admin/clients/new');
      const reply = await admin.post(
        url('/admin/clients'),
        without(clientForm(csrf, { tokenEndpointAuthMethod: 'none', 'grantTypes.client_credentials': 'on' }), 'grantTypes.authorization_code'),
      );
      expect(reply.status).toBe(400);
      expect(tagWithId(reply.body, 'f-grantTypes')).toContain('aria-describedby="f-grantTypes-error"');
      expect(reply.body).toMatch(/id="f-grantTypes-error">.*refresh_token needs authorization_code/s);
      expect(reply.body).toMatch(/id="f-grantTypes-error">.*cannot use client_credentials/s);
    });

    it('values are escaped, never markup', async () => {
      const { clientId } = await createThroughForm({ name: '<img src=x onerror=alert(1)>' });
      const detail = await admin.get(url(`/admin/clients/${clientId}`));
      expect(detail.body).not.toContain('<img src=x');
      expect(detail.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
      const list = await admin.get(url(`/admin/clients?q=${encodeURIComponent('<img')}`));
      expect(list.body).not.toContain('<img src=x');
      expect(list.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    });
  });

  describe('the list and the detail page', () => {
    it('lists clients with type, grants and tags; searches by name or id; pages with a cursor', async () => {
      const made: string[] = [];
      for (let i = 0; i < 27; i += 1) {
        const client = await server.deps.clients.create({
          name: `Paged ${String(i).padStart(2, '0')}`,
          redirectUris: ['https://paged.example.com/cb'],
          grantTypes: ['authorization_code'],
          ...(i === 0 ? { tokenEndpointAuthMethod: 'none' as const, requireMfa: true, firstParty: true } : {}),
        }, SETUP);
        made.push(client.clientId);
      }
      const first = await admin.get(url('/admin/clients?q=paged'));
      expect(first.status).toBe(200);
      expect(first.body).toContain('27 clients match');
      expect([...first.body.matchAll(/<a href="\/admin\/clients\/[^"]+">Paged \d+<\/a>/g)]).toHaveLength(25);
      const row0 = /<tr>(?:(?!<\/tr>).)*Paged 00(?:(?!<\/tr>).)*<\/tr>/s.exec(first.body)?.[0] ?? '';
      expect(row0).toContain(`<code>${made[0]}</code>`);
      expect(row0).toContain('>public<');
      expect(row0).toContain('<code>authorization_code</code>');
      expect(row0).toContain('requires MFA');
      expect(row0).toContain('first-party');
      const row1 = /<tr>(?:(?!<\/tr>).)*Paged 01(?:(?!<\/tr>).)*<\/tr>/s.exec(first.body)?.[0] ?? '';
      expect(row1).toContain('>confidential<');
      expect(row1).not.toContain('requires MFA');

      const next = /<a href="(\/admin\/clients\?q=paged&amp;cursor=[^"]+)">Next page<\/a>/.exec(first.body)?.[1];
      expect(next).toBeDefined();
      const second = await admin.get(url(next!.replace(/&amp;/g, '&')));
      expect(second.status).toBe(200);
      expect(second.body).toContain('Paged 25');
      expect(second.body).toContain('Paged 26');
      expect(second.body).not.toContain('Paged 24');
      expect(second.body).not.toContain('Next page');
      expect(second.body).toContain('First page');

      // By client id.
      const byId = await admin.get(url(`/admin/clients?q=${encodeURIComponent(made[5]!)}`));
      expect(byId.body).toContain('1 client matches');
      expect(byId.body).toContain('Paged 05');
      // The search box keeps what was searched for.
      expect(tagWithId(byId.body, 'q')).toContain(`value="${made[5]}"`);

      for (const id of made) await server.deps.clients.remove(id, SETUP);
    });

    it('marks dynamically registered clients', async () => {
      const client = await server.deps.clients.create({ name: 'Dyn Reg', redirectUris: ['https://dyn.example.com/cb'] });
      const metadata = await server.deps.clients.find(client.clientId);
      await server.deps.clients.upsert(client.clientId, { ...metadata!, dynamically_registered: true });
      const list = await admin.get(url('/admin/clients?q=Dyn%20Reg'));
      expect(list.body).toContain('registered dynamically');
      await server.deps.clients.remove(client.clientId);
    });

    it('the detail page shows every field and the secret status, but never a secret', async () => {
      const { clientId, secret } = await createThroughForm({
        name: 'Detailed',
        postLogoutRedirectUris: 'https://app.example.com/bye',
        idTokenTtl: '900',
        'scopes.admin:clients:read': 'on',
      });
      const detail = await admin.get(url(`/admin/clients/${clientId}`));
      expect(detail.status).toBe(200);
      for (const text of [
        clientId,
        'https://app.example.com/callback',
        'http://127.0.0.1:8080/callback',
        'https://app.example.com/bye',
        'client_secret_basic',
        'admin:clients:read',
        '900 s',
        'Server default (3600 s',
        'Set when the client was made (never rotated).',
        'Created',
        'Updated',
      ]) {
        expect(detail.body).toContain(text);
      }
      expect(detail.body).not.toContain(secret!);
      const list = await admin.get(url('/admin/clients'));
      expect(list.body).not.toContain(secret!);
    });

    it('an unknown client is a 404 page', async () => {
      for (const path of ['/admin/clients/no-such-client', '/admin/clients/no-such-client/edit', '/admin/clients/no-such-client/delete']) {
        const reply = await admin.get(url(path));
        expect(reply.status).toBe(404);
      }
    });
  });

  describe('changing a client', () => {
    it('the edit form is filled in; saving records what changed, with the admin as the actor', async () => {
      const { clientId, secret } = await createThroughForm({ name: 'Before Edit' });
      const edit = await page(`/admin/clients/${clientId}/edit`);
      expect(tagWithId(edit.reply.body, 'f-name')).toContain('value="Before Edit"');
      expect(edit.reply.body).toContain('https://app.example.com/callback\nhttp://127.0.0.1:8080/callback</textarea>');
      expect(edit.reply.body).toContain(`action="/admin/clients/${clientId}"`);
      expect(edit.reply.body).not.toContain(secret!);

      const saved = await admin.post(url(`/admin/clients/${clientId}`), clientForm(edit.csrf, { name: 'After Edit', redirectUris: 'https://new.example.com/cb' }));
      expect([saved.status, saved.location]).toEqual([303, url(`/admin/clients/${clientId}?notice=updated`)]);
      const detail = await admin.get(saved.location!);
      expect(detail.body).toContain('The changes were saved.');
      expect(await server.deps.clients.get(clientId)).toMatchObject({ name: 'After Edit', redirectUris: ['https://new.example.com/cb'] });
      // The secret was kept.
      expect((await server.deps.clients.find(clientId))?.client_secret).toBe(secret);

      const events = await auditFor('client.updated', clientId);
      expect(events).toHaveLength(1);
      expect(events[0]!.actor).toMatchObject({ type: 'account', id: adminId });
      expect(events[0]!.details?.changed).toEqual(['name', 'redirectUris']);
    });

    it('a refused edit re-renders the form with 400 and changes nothing', async () => {
      const { clientId } = await createThroughForm({ name: 'Stays' });
      const edit = await page(`/admin/clients/${clientId}/edit`);
      const reply = await admin.post(
        url(`/admin/clients/${clientId}`),
        clientForm(edit.csrf, { name: 'Changed', tokenEndpointAuthMethod: 'private_key_jwt', logoUri: 'ftp://logo.example.com/x.png' }),
      );
      expect(reply.status).toBe(400);
      expect(reply.body).toMatch(/id="f-jwks-error">.*private_key_jwt needs/s);
      expect(reply.body).toMatch(/id="f-logoUri-error">.*https URL/s);
      expect(reply.body).toContain(`action="/admin/clients/${clientId}"`);
      expect(tagWithId(reply.body, 'f-name')).toContain('value="Changed"');
      expect((await server.deps.clients.get(clientId))?.name).toBe('Stays');
      expect(await auditFor('client.updated', clientId)).toHaveLength(0);
    });

    it('a switch from a public client to a secret shows the new secret once', async () => {
      const { csrf } = await page('/admin/clients/new');
      const created = await admin.post(url('/admin/clients'), clientForm(csrf, { name: 'Goes Confidential', tokenEndpointAuthMethod: 'none' }));
      const clientId = decodeURIComponent(/\/admin\/clients\/([^/?]+)\?/.exec(created.location!)![1]!);
      const edit = await page(`/admin/clients/${clientId}/edit`);
      expect(edit.reply.body).toMatch(/<option value="none" selected/);
      const saved = await admin.post(url(`/admin/clients/${clientId}`), clientForm(edit.csrf, { name: 'Goes Confidential', tokenEndpointAuthMethod: 'client_secret_post' }));
      expect([saved.status, saved.location]).toEqual([303, url(`/admin/clients/${clientId}/secret`)]);
      const shown = await admin.get(saved.location!);
      const secret = secretOn(shown);
      expect(secret).toBeDefined();
      expect((await server.deps.clients.find(clientId))?.client_secret).toBe(secret);
      expect(secretOn(await admin.get(saved.location!))).toBeUndefined();

      // And back to public: the secret is gone, the page says so.
      const again = await page(`/admin/clients/${clientId}/edit`);
      const dropped = await admin.post(url(`/admin/clients/${clientId}`), clientForm(again.csrf, { name: 'Goes Confidential', tokenEndpointAuthMethod: 'none' }));
      expect(dropped.location).toBe(url(`/admin/clients/${clientId}?notice=secret-dropped`));
      expect((await server.deps.clients.find(clientId))?.client_secret).toBeUndefined();
    });

    it('the JWKS of a private_key_jwt client is shown in the form and kept by a save', async () => {
      const jwks = { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] };
      const client = await server.deps.clients.create({
        name: 'Key Holder',
        redirectUris: ['https://keys.example.com/cb'],
        tokenEndpointAuthMethod: 'private_key_jwt',
        jwks,
      });
      const edit = await page(`/admin/clients/${client.clientId}/edit`);
      expect(edit.reply.body).toContain('&quot;kty&quot;: &quot;EC&quot;');
      const jwksText = /<textarea[^>]*id="f-jwks"[^>]*>([^<]*)<\/textarea>/.exec(edit.reply.body)?.[1]?.replace(/&quot;/g, '"') ?? '';
      const saved = await admin.post(
        url(`/admin/clients/${client.clientId}`),
        clientForm(edit.csrf, { name: 'Key Holder', redirectUris: 'https://keys.example.com/cb', tokenEndpointAuthMethod: 'private_key_jwt', jwks: jwksText }),
      );
      expect(saved.status).toBe(303);
      expect((await server.deps.clients.find(client.clientId))?.jwks).toEqual(jwks);
      // No secret to rotate.
      expect((await admin.get(url(`/admin/clients/${client.clientId}/rotate-secret`))).status).toBe(409);
    });

    it('rotation: a confirmation page, then the new secret once with the grace period; audited', async () => {
      const { clientId, secret } = await createThroughForm({ name: 'Rotating' });
      const confirm = await page(`/admin/clients/${clientId}/rotate-secret`);
      expect(confirm.reply.body).toContain('10 minutes');
      expect(confirm.reply.body).toContain(`action="/admin/clients/${clientId}/rotate-secret"`);
      // The GET changed nothing.
      expect((await server.deps.clients.find(clientId))?.client_secret).toBe(secret);

      const rotated = await admin.post(url(`/admin/clients/${clientId}/rotate-secret`), { csrf: confirm.csrf });
      expect([rotated.status, rotated.location]).toEqual([303, url(`/admin/clients/${clientId}/secret`)]);
      const shown = await admin.get(rotated.location!);
      const fresh = secretOn(shown);
      expect(fresh).toBeDefined();
      expect(fresh).not.toBe(secret);
      expect((await server.deps.clients.find(clientId))?.client_secret).toBe(fresh);
      expect(await server.deps.clients.previousSecret(clientId)).toBe(secret);
      expect(shown.body).toContain('Secret rotated');
      expect(shown.body).toMatch(/The previous secret keeps working until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(a grace period of 10 minutes\)/);

      const detail = await admin.get(url(`/admin/clients/${clientId}`));
      expect(detail.body).toMatch(/Rotated at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, previous secret valid until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\./);
      expect(detail.body).not.toContain(fresh!);
      expect(detail.body).not.toContain(secret!);

      const events = await auditFor('client.secret_rotated', clientId);
      expect(events).toHaveLength(1);
      expect(events[0]!.actor).toMatchObject({ type: 'account', id: adminId });
      expect(JSON.stringify(events)).not.toContain(fresh!);
    });

    it('a shown-once secret travels sealed in a short-lived, path-scoped cookie', async () => {
      const { clientId } = await createThroughForm({ name: 'Mine Only' });
      const confirm = await page(`/admin/clients/${clientId}/rotate-secret`);
      const rotated = await admin.post(url(`/admin/clients/${clientId}/rotate-secret`), { csrf: confirm.csrf });
      const cookie = rotated.headers.getSetCookie().find((line) => line.startsWith('admin-secret-once='));
      expect(cookie).toBeDefined();
      expect(cookie).toMatch(/httponly/i);
      expect(cookie).toMatch(/samesite=strict/i);
      expect(cookie).toContain(`path=/admin/clients/${clientId}/secret`);
      // The cookie's value is sealed: the secret is not in it.
      const fresh = (await server.deps.clients.find(clientId))?.client_secret as string;
      expect(cookie).not.toContain(fresh);
      // Read once by the page it is for, then deleted.
      const shown = await admin.get(rotated.location!);
      expect(secretOn(shown)).toBe(fresh);
      const cleared = shown.headers.getSetCookie().find((line) => line.startsWith('admin-secret-once='));
      expect(cleared).toMatch(/^admin-secret-once=;/);
    });

    it('deletion: a confirmation page, then back to the list with a notice; audited', async () => {
      const { clientId } = await createThroughForm({ name: 'Doomed' });
      const confirm = await page(`/admin/clients/${clientId}/delete`);
      expect(confirm.reply.body).toContain('Delete client');
      expect(await server.deps.clients.get(clientId)).toBeDefined();

      const deleted = await admin.post(url(`/admin/clients/${clientId}/delete`), { csrf: confirm.csrf });
      expect([deleted.status, deleted.location]).toEqual([303, url('/admin/clients?notice=deleted')]);
      const list = await admin.get(deleted.location!);
      expect(list.body).toContain('The client was deleted');
      expect(list.body).not.toContain('Doomed');
      expect(await server.deps.clients.get(clientId)).toBeUndefined();

      const events = await auditFor('client.deleted', clientId);
      expect(events).toHaveLength(1);
      expect(events[0]!.actor).toMatchObject({ type: 'account', id: adminId });
      // Gone: its pages are 404s.
      expect((await admin.get(url(`/admin/clients/${clientId}`))).status).toBe(404);
    });
  });

  describe('an administrator holds every management API scope', () => {
    it('gives a client every management API scope and first-party status, changes it, rotates its secret and deletes it', async () => {
      const adminScopes = server.config.adminApi.scopes;
      expect(adminScopes).toContain('admin:clients:grant');
      // The form offers every scope, the new one too.
      const { reply: form, csrf } = await page('/admin/clients/new');
      for (const scope of adminScopes) expect(tagWithId(form.body, `f-scope-${scope.replace(/[^A-Za-z0-9_-]/g, '-')}`)).toContain(`scopes.${scope}`);
      const everything = Object.fromEntries(adminScopes.map((scope) => [`scopes.${scope}`, 'on']));
      const serviceForm = (token: string, name: string) =>
        without(
          clientForm(token, { name, redirectUris: '', 'grantTypes.client_credentials': 'on', firstParty: 'on', ...everything }),
          'grantTypes.authorization_code',
          'grantTypes.refresh_token',
        );
      const created = await admin.post(url('/admin/clients'), serviceForm(csrf, 'Everything Service'));
      expect(created.status).toBe(303);
      const clientId = decodeURIComponent(/\/admin\/clients\/([^/?]+)/.exec(created.location ?? '')?.[1] ?? '');
      const stored = await server.deps.clients.get(clientId);
      expect(stored).toMatchObject({ firstParty: true, grantTypes: ['client_credentials'] });
      expect(stored?.scopes).toEqual(expect.arrayContaining([...adminScopes]));

      const edit = await page(`/admin/clients/${clientId}/edit`);
      expect((await admin.post(url(`/admin/clients/${clientId}`), serviceForm(edit.csrf, 'Everything Service, renamed'))).status).toBe(303);
      expect((await server.deps.clients.get(clientId))?.name).toBe('Everything Service, renamed');

      const rotate = await page(`/admin/clients/${clientId}/rotate-secret`);
      expect((await admin.post(url(`/admin/clients/${clientId}/rotate-secret`), { csrf: rotate.csrf })).status).toBe(303);
      const remove = await page(`/admin/clients/${clientId}/delete`);
      expect((await admin.post(url(`/admin/clients/${clientId}/delete`), { csrf: remove.csrf })).location).toBe(url('/admin/clients?notice=deleted'));
      expect(await server.deps.clients.get(clientId)).toBeUndefined();
      for (const action of ['client.created', 'client.updated', 'client.secret_rotated', 'client.deleted']) {
        const events = await auditFor(action, clientId);
        expect(events.map((e) => [e.outcome, e.actor.id])).toEqual([['success', adminId]]);
      }
    });
  });

  describe('CSRF', () => {
    it('a missing or foreign token on any POST is refused with 403 and changes nothing', async () => {
      const { clientId, secret } = await createThroughForm({ name: 'Protected' });
      const before = await server.deps.clients.get(clientId);
      const total = (await server.deps.clients.list({ limit: 200 })).total;
      // Foreign: a valid token, but for another session (or another purpose).
      const foreign = [server.deps.csrf.issue('admin:another-session'), server.deps.csrf.issue('some-interaction-uid')];
      const posts: [string, Record<string, string>][] = [
        ['/admin/clients', clientForm('', { name: 'Forged' })],
        [`/admin/clients/${clientId}`, clientForm('', { name: 'Forged' })],
        [`/admin/clients/${clientId}/rotate-secret`, { csrf: '' }],
        [`/admin/clients/${clientId}/delete`, { csrf: '' }],
      ];
      for (const [path, form] of posts) {
        for (const csrf of [undefined, ...foreign]) {
          const body = csrf === undefined ? without(form, 'csrf') : { ...form, csrf };
          const reply = await admin.post(url(path), body);
          expect(reply.status).toBe(403);
          expect(reply.body).toContain('did not come from this site');
        }
      }
      expect(await server.deps.clients.get(clientId)).toEqual(before);
      expect((await server.deps.clients.find(clientId))?.client_secret).toBe(secret);
      expect((await server.deps.clients.list({ limit: 200 })).total).toBe(total);
      for (const action of ['client.updated', 'client.secret_rotated', 'client.deleted']) expect(await auditFor(action, clientId)).toHaveLength(0);
    });
  });

  describe('built-in clients', () => {
    it('are listed and shown with a note, but cannot be edited, rotated or deleted (409)', async () => {
      const list = await admin.get(url('/admin/clients'));
      expect(list.body).toContain(`<code>${ADMIN_CLIENT_ID}</code>`);
      expect(list.body).toContain(`<code>${ACCOUNT_CLIENT_ID}</code>`);
      expect(list.body).toContain('built-in');

      for (const id of [ADMIN_CLIENT_ID, ACCOUNT_CLIENT_ID]) {
        const before = await server.deps.clients.find(id);
        const detail = await admin.get(url(`/admin/clients/${id}`));
        expect(detail.status).toBe(200);
        expect(detail.body).toContain('built into this server');
        expect(detail.body).not.toContain(`href="/admin/clients/${id}/edit"`);
        expect(detail.body).not.toContain(`href="/admin/clients/${id}/delete"`);
        const { csrf } = await page('/admin/clients/new');
        for (const path of [`/admin/clients/${id}/edit`, `/admin/clients/${id}/rotate-secret`, `/admin/clients/${id}/delete`]) {
          const reply = await admin.get(url(path));
          expect(reply.status).toBe(409);
          expect(reply.body).toContain('built into this server');
        }
        for (const [path, form] of [
          [`/admin/clients/${id}`, clientForm(csrf, { name: 'Hijacked', tokenEndpointAuthMethod: 'client_secret_basic' })],
          [`/admin/clients/${id}/rotate-secret`, { csrf }],
          [`/admin/clients/${id}/delete`, { csrf }],
        ] as const) {
          const reply = await admin.post(url(path), form);
          expect(reply.status).toBe(409);
        }
        expect(await server.deps.clients.find(id)).toEqual(before);
      }
    });
  });

  describe('requests without PKCE (skipPkce)', () => {
    it('an admin lets a confidential client skip PKCE: stored, shown on the detail page and in the list, audited with the admin as actor', async () => {
      const { clientId } = await createThroughForm({ name: 'Legacy Portal' });
      expect((await server.deps.clients.get(clientId))?.skipPkce).toBe(false);
      const edit = await page(`/admin/clients/${clientId}/edit`);
      expect(tagWithId(edit.reply.body, 'f-skip-pkce')).not.toContain('checked');
      const saved = await admin.post(url(`/admin/clients/${clientId}`), clientForm(edit.csrf, { name: 'Legacy Portal', skipPkce: 'on' }));
      expect(saved.status).toBe(303);
      expect((await server.deps.clients.find(clientId))?.skip_pkce).toBe(true);
      const detail = await admin.get(url(`/admin/clients/${clientId}`));
      expect(detail.body).toMatch(/Requests without PKCE allowed<\/dt>\s*<dd>\s*(<[^>]+>)*\s*Yes/);
      expect((await admin.get(url('/admin/clients?q=Legacy%20Portal'))).body).toContain('PKCE optional');
      const events = await auditFor('client.updated', clientId);
      expect(events).toHaveLength(1);
      expect(events[0]!.actor).toMatchObject({ type: 'account', id: adminId });
      expect(events[0]!.details?.changed).toEqual(['skipPkce']);
      expect(tagWithId((await page(`/admin/clients/${clientId}/edit`)).reply.body, 'f-skip-pkce')).toContain('checked');
    });

    it('refuses it for a public client (400, the message beside the field), creating or changing nothing', async () => {
      const { csrf } = await page('/admin/clients/new');
      const before = (await server.deps.clients.list({ limit: 200 })).total;
      const reply = await admin.post(url('/admin/clients'), clientForm(csrf, { name: 'Public No PKCE', tokenEndpointAuthMethod: 'none', skipPkce: 'on' }));
      expect(reply.status).toBe(400);
      expect(reply.body).toMatch(/id="f-skipPkce-error">.*a public client .* always uses PKCE/s);
      expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);

      const { clientId } = await createThroughForm({ name: 'Public App', tokenEndpointAuthMethod: 'none' });
      const edit = await page(`/admin/clients/${clientId}/edit`);
      const refused = await admin.post(url(`/admin/clients/${clientId}`), clientForm(edit.csrf, { name: 'Public App', tokenEndpointAuthMethod: 'none', skipPkce: 'on' }));
      expect(refused.status).toBe(400);
      expect((await server.deps.clients.find(clientId))?.skip_pkce).toBeUndefined();
      expect(await auditFor('client.updated', clientId)).toHaveLength(0);
    });
  });

  describe('back-channel logout URI', () => {
    it('accepts an https URI (shown on the detail page and in the edit form) and removes it when emptied', async () => {
      const { clientId } = await createThroughForm({
        name: 'Logout Aware',
        backchannelLogoutUri: 'https://app.example.com/backchannel-logout',
        backchannelLogoutSessionRequired: 'on',
      });
      const stored = await server.deps.clients.find(clientId);
      expect(stored?.backchannel_logout_uri).toBe('https://app.example.com/backchannel-logout');
      expect(stored?.backchannel_logout_session_required).toBe(true);
      const detail = await admin.get(url(`/admin/clients/${clientId}`));
      expect(detail.body).toContain('<code>https://app.example.com/backchannel-logout</code>');
      expect(detail.body).toContain('logout tokens carry the session id');
      const edit = await page(`/admin/clients/${clientId}/edit`);
      expect(tagWithId(edit.reply.body, 'f-backchannelLogoutUri')).toContain('value="https://app.example.com/backchannel-logout"');
      expect(tagWithId(edit.reply.body, 'f-backchannelLogoutSessionRequired')).toContain('checked');

      const saved = await admin.post(url(`/admin/clients/${clientId}`), clientForm(edit.csrf, { name: 'Logout Aware', backchannelLogoutUri: '' }));
      expect(saved.status).toBe(303);
      const after = await server.deps.clients.find(clientId);
      expect(after?.backchannel_logout_uri).toBeUndefined();
      expect(after?.backchannel_logout_session_required).toBeUndefined();
    });

    it('refuses plain http on a public host, a fragment and a relative URI (400, the message beside the field), storing nothing', async () => {
      for (const [uri, message] of [
        ['http://app.example.com/logout', 'must use https'],
        ['https://app.example.com/logout#frag', 'must not contain a fragment'],
        ['/logout', 'is not an absolute URI'],
        ['https://user:pw@app.example.com/logout', 'must not contain credentials'],
      ] as const) {
        const { csrf } = await page('/admin/clients/new');
        const before = (await server.deps.clients.list({ limit: 200 })).total;
        const reply = await admin.post(url('/admin/clients'), clientForm(csrf, { name: 'Bad Logout URI', backchannelLogoutUri: uri }));
        expect({ uri, status: reply.status }).toEqual({ uri, status: 400 });
        expect(tagWithId(reply.body, 'f-backchannelLogoutUri')).toContain('aria-invalid="true"');
        expect(reply.body).toMatch(new RegExp(`id="f-backchannelLogoutUri-error">(<span[^>]*>[^<]*</span>)?[^<]*${message}`));
        expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);
      }
    });
  });
});
