/**
 * The console's API resources pages over HTTP, as a browser without JavaScript uses them: list,
 * register, edit (the identifier never changes), delete after a confirmation, CSRF on every
 * POST, errors beside their fields with nothing stored; and the client form's API resource
 * checkboxes and default resource, which refuse an identifier that is not registered.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { fullAuthority } from '../../../src/clients/admin-authority.js';
import { signInToConsole } from '../../support/admin-console.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { UserAgent, formField } from '../../support/user-agent.js';
import type { Reply } from '../../support/user-agent.js';

const PASSWORD = 'a long and correct passphrase';
const ADMIN = { email: 'ada.resources@example.com', password: PASSWORD };
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

const href = (identifier: string, rest = '') => `/admin/api-resources/${encodeURIComponent(identifier)}${rest}`;

function resourceForm(csrf: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    csrf,
    identifier: 'https://notes.example.com/api',
    name: 'Notes API',
    tokenFormat: 'jwt',
    accessTokenTtl: '600',
    scopes: 'notes:read Read your notes\r\nnotes:write   Change your notes\r\n\r\n',
    introspectionClients: '',
    ...extra,
  };
}

function clientForm(csrf: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    csrf,
    name: 'Resourceful App',
    redirectUris: 'https://app.example.com/callback',
    'grantTypes.authorization_code': 'on',
    applicationType: 'web',
    tokenEndpointAuthMethod: 'client_secret_basic',
    'scopes.openid': 'on',
    ...extra,
  };
}

/** The tag with this id. */
function tagWithId(html: string, id: string): string {
  const tag = new RegExp(`<(input|textarea|select|fieldset|option)\\b[^>]*\\bid="${id}"[^>]*>`).exec(html)?.[0];
  if (!tag) throw new Error(`no field #${id} on the page`);
  return tag;
}

const fieldError = (html: string, field: string) => new RegExp(`id="f-${field}-error">(.*?)</p>`, 's').exec(html)?.[1];

describe('admin console: API resource pages', () => {
  let server: TestServer;
  let smtp: MailServer;
  let admin: UserAgent;
  let adminId: string;

  const page = async (path: string): Promise<{ reply: Reply; csrf: string }> => {
    const reply = await admin.get(path);
    expect(reply.status).toBe(200);
    return { reply, csrf: formField(reply.body, 'csrf') };
  };
  const resourceCount = async () => (await server.deps.resources.list()).length;
  const clientCount = async () => (await server.deps.clients.list({ limit: 200 })).total;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('admin_console_resources', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    adminId = (await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true })).id;
    admin = new UserAgent(server.url);
    await signInToConsole(admin, server, smtp, ADMIN);
  });

  afterAll(async () => {
    await server.close();
    await smtp.close();
  });

  it('the navigation has the section; without a session the pages redirect to sign-in and POSTs are refused', async () => {
    const list = await admin.get('/admin/api-resources');
    expect(list.status).toBe(200);
    expect(list.body).toMatch(/<a href="\/admin\/api-resources" aria-current="page">API resources<\/a>/);
    expect(list.body).toContain('No API resources are registered.');
    await server.deps.resources.create({ identifier: 'https://guarded.example.com', name: 'Guarded' }, SETUP);

    const stranger = new UserAgent(server.url);
    for (const path of ['/admin/api-resources', '/admin/api-resources/new', href('https://guarded.example.com'), href('https://guarded.example.com', '/edit'), href('https://guarded.example.com', '/delete')]) {
      const reply = await stranger.get(path);
      expect([path, reply.status, reply.location]).toEqual([path, 303, `${server.url}/admin/sign-in`]);
    }
    for (const path of ['/admin/api-resources', href('https://guarded.example.com'), href('https://guarded.example.com', '/delete')]) {
      expect((await stranger.post(path, resourceForm('anything', { identifier: 'https://stranger.example.com' }))).status).toBe(401);
    }
    expect(await server.deps.resources.get('https://guarded.example.com')).toMatchObject({ name: 'Guarded' });
    expect(await server.deps.resources.get('https://stranger.example.com')).toBeUndefined();
  });

  it('registers a resource through the form, shows it, and records the admin as the actor', async () => {
    const form = await page('/admin/api-resources/new');
    expect(form.reply.body).toContain('action="/admin/api-resources"');
    expect(form.reply.body).toMatch(/<label for="f-identifier">Identifier<\/label>/);
    expect(form.reply.body).toMatch(/<label for="f-scopes">/);
    expect(tagWithId(form.reply.body, 'f-format-jwt')).toContain('checked');

    const created = await admin.post('/admin/api-resources', resourceForm(form.csrf));
    expect([created.status, created.location]).toEqual([303, `${server.url}${href('https://notes.example.com/api')}?notice=created`]);
    expect(await server.deps.resources.get('https://notes.example.com/api')).toMatchObject({
      name: 'Notes API',
      tokenFormat: 'jwt',
      accessTokenTtl: 600,
      scopes: [
        { name: 'notes:read', description: 'Read your notes' },
        { name: 'notes:write', description: 'Change your notes' },
      ],
      introspectionClients: [],
    });

    const detail = await admin.get(created.location!);
    expect(detail.status).toBe(200);
    expect(detail.body).toContain('The API resource was registered.');
    expect(detail.body).toContain('<code id="resource-identifier">https://notes.example.com/api</code>');
    expect(detail.body).toContain('Read your notes');
    expect(detail.body).toContain('600 s (10 minutes)');

    const list = await admin.get('/admin/api-resources');
    expect(list.body).toContain(`href="${href('https://notes.example.com/api')}"`);

    const events = (await server.deps.audit.list({ action: 'api_resource.created', target: 'https://notes.example.com/api' }, { limit: 5 })).events;
    expect(events).toHaveLength(1);
    expect(events[0]!.actor).toMatchObject({ type: 'account', id: adminId, label: ADMIN.email });
  });

  it('refuses bad input with each message beside its field, keeps what was typed, and stores nothing', async () => {
    const before = await resourceCount();
    const { csrf } = await page('/admin/api-resources/new');
    const reply = await admin.post(
      '/admin/api-resources',
      resourceForm(csrf, { identifier: 'https://bad.example.com/#x', name: '', accessTokenTtl: 'soon', scopes: 'ok:scope Fine\nnodescription\nopenid Sign in', tokenFormat: 'paseto' }),
    );
    expect(reply.status).toBe(400);
    expect(reply.body).toContain('The API resource was not saved.');
    expect(fieldError(reply.body, 'name')).toMatch(/name is required/);
    expect(fieldError(reply.body, 'accessTokenTtl')).toMatch(/number of seconds/);
    expect(fieldError(reply.body, 'scopes')).toMatch(/line 2: a scope needs a description/);
    expect(fieldError(reply.body, 'tokenFormat')).toBeDefined();
    expect(tagWithId(reply.body, 'f-name')).toContain('aria-invalid="true"');
    expect(tagWithId(reply.body, 'f-scopes')).toContain('aria-describedby="f-scopes-hint f-scopes-error"');
    expect(reply.body).toContain('https://bad.example.com/#x');
    expect(reply.body).toMatch(/<a href="#f-name">Display name: /);

    // Once the fields parse, the identifier's own rules and the reserved scopes.
    const second = await admin.post('/admin/api-resources', resourceForm(csrf, { identifier: `${server.config.issuer}/me` }));
    expect(second.status).toBe(400);
    expect(fieldError(second.body, 'identifier')).toMatch(/own origin/);
    const reserved = await admin.post('/admin/api-resources', resourceForm(csrf, { identifier: 'https://reserved.example.com', scopes: 'admin:users:write Everything' }));
    expect(fieldError(reserved.body, 'scopes')).toMatch(/management API scope/);
    const management = await admin.post('/admin/api-resources', resourceForm(csrf, { identifier: server.config.adminApi.resource }));
    expect(fieldError(management.body, 'identifier')).toBeDefined();
    expect(await resourceCount()).toBe(before);
  });

  it('a taken identifier is refused and the first resource is kept', async () => {
    await server.deps.resources.create({ identifier: 'https://taken.example.com', name: 'First' }, SETUP);
    const { csrf } = await page('/admin/api-resources/new');
    const reply = await admin.post('/admin/api-resources', resourceForm(csrf, { identifier: 'https://taken.example.com', name: 'Second' }));
    expect(reply.status).toBe(409);
    expect(fieldError(reply.body, 'identifier')).toMatch(/already registered/);
    expect(tagWithId(reply.body, 'f-name')).toContain('value="Second"');
    expect((await server.deps.resources.get('https://taken.example.com'))?.name).toBe('First');
  });

  it('edits a resource: the identifier is read-only and a posted one is ignored', async () => {
    const identifier = 'urn:example:calendar';
    await server.deps.resources.create({ identifier, name: 'Calendar', scopes: [{ name: 'cal:read', description: 'See your calendar' }] }, SETUP);
    const edit = await page(href(identifier, '/edit'));
    const field = tagWithId(edit.reply.body, 'f-identifier');
    expect(field).toContain('readonly');
    expect(field).not.toContain('name=');
    expect(edit.reply.body).toContain('cal:read See your calendar</textarea>');

    const saved = await admin.post(href(identifier), resourceForm(edit.csrf, { identifier: 'https://moved.example.com', name: 'Calendar v2', tokenFormat: 'opaque', accessTokenTtl: '', scopes: 'cal:read See your calendar\ncal:write Change your calendar', introspectionClients: 'calendar-backend\n' }));
    expect([saved.status, saved.location]).toEqual([303, `${server.url}${href(identifier)}?notice=updated`]);
    const after = await server.deps.resources.get(identifier);
    expect(after).toMatchObject({ name: 'Calendar v2', tokenFormat: 'opaque', introspectionClients: ['calendar-backend'] });
    expect(after?.scopes.map((s) => s.name)).toEqual(['cal:read', 'cal:write']);
    expect(after?.accessTokenTtl).toBeUndefined();
    expect(await server.deps.resources.get('https://moved.example.com')).toBeUndefined();

    const bad = await admin.post(href(identifier), resourceForm(edit.csrf, { name: '' }));
    expect(bad.status).toBe(400);
    expect(tagWithId(bad.body, 'f-identifier')).toContain(`value="${identifier}"`);
    expect((await server.deps.resources.get(identifier))?.name).toBe('Calendar v2');
  });

  it('deletes after a confirmation page that names the clients listing it; GETs change nothing', async () => {
    const identifier = 'https://doomed.example.com';
    await server.deps.resources.create({ identifier, name: 'Doomed' }, SETUP);
    const client = await server.deps.clients.create({ name: 'Doomed User', redirectUris: ['https://app.example.com/cb'], allowedResources: [identifier] }, SETUP);
    const confirm = await page(href(identifier, '/delete'));
    expect(confirm.reply.body).toContain('Delete this API resource?');
    expect(confirm.reply.body).toContain('Doomed User');
    expect(confirm.reply.body).toContain(`action="${href(identifier, '/delete')}"`);
    expect(await server.deps.resources.get(identifier)).toBeDefined();

    expect((await admin.post(href(identifier, '/delete'), { csrf: 'forged' })).status).toBe(403);
    expect(await server.deps.resources.get(identifier)).toBeDefined();

    const deleted = await admin.post(href(identifier, '/delete'), { csrf: confirm.csrf });
    expect([deleted.status, deleted.location]).toEqual([303, `${server.url}/admin/api-resources?notice=deleted`]);
    expect(await server.deps.resources.get(identifier)).toBeUndefined();
    expect((await admin.get(href(identifier))).status).toBe(404);
    expect((await admin.post(href(identifier, '/delete'), { csrf: confirm.csrf })).status).toBe(404);
    // The client's page says the resource it still lists is no longer registered.
    const clientPage = await admin.get(`/admin/clients/${encodeURIComponent(client.clientId)}`);
    expect(clientPage.body).toContain('no longer a registered API resource');
  });

  it('every form carries the CSRF token and a forged one changes nothing', async () => {
    const { csrf } = await page('/admin/api-resources/new');
    const before = await resourceCount();
    expect((await admin.post('/admin/api-resources', resourceForm('forged', { identifier: 'https://forged.example.com' }))).status).toBe(403);
    expect((await admin.post('/admin/api-resources', resourceForm('', { identifier: 'https://forged.example.com' }))).status).toBe(403);
    expect(await resourceCount()).toBe(before);
    expect((await admin.post(href('https://notes.example.com/api'), resourceForm('forged', { name: 'Forged' }))).status).toBe(403);
    expect((await server.deps.resources.get('https://notes.example.com/api'))?.name).toBe('Notes API');
    for (const path of ['/admin/api-resources/new', href('https://notes.example.com/api', '/edit'), href('https://notes.example.com/api', '/delete')]) {
      const reply = await admin.get(path);
      for (const form of reply.body.match(/<form[^>]*method="post"[^>]*>[\s\S]*?<\/form>/g) ?? []) expect(form).toContain(`name="csrf" value="`);
    }
    expect(csrf).toBeTruthy();
  });

  it('unknown or unstorable identifiers in the path are 404 pages, never a 500', async () => {
    for (const path of [href('https://nowhere.example.com'), href('https://nowhere.example.com', '/edit'), '/admin/api-resources/%00', `/admin/api-resources/${'x'.repeat(2100)}`, '/admin/api-resources/%E0%A4%A']) {
      const reply = await admin.get(path);
      expect({ path, status: reply.status }).toEqual({ path, status: 404 });
      expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
    }
  });

  describe('the client form', () => {
    const orders = 'https://orders.example.com';
    const stock = 'urn:example:stock';

    beforeAll(async () => {
      await server.deps.resources.create({ identifier: orders, name: 'Orders API' }, SETUP);
      await server.deps.resources.create({ identifier: stock, name: 'Stock API' }, SETUP);
    });

    /** The checkbox field name the form gives this identifier. */
    const checkboxFor = (html: string, identifier: string) => {
      const tag = new RegExp(`<input[^>]*name="(resources\\.\\d+)"[^>]*value="${identifier.replace(/[.:/]/g, '\\$&')}"[^>]*>`).exec(html);
      if (!tag?.[1]) throw new Error(`no checkbox for ${identifier}`);
      return tag[1];
    };

    it('offers the registered resources as labelled checkboxes and a default select; saves and shows them', async () => {
      const form = await page('/admin/clients/new');
      expect(form.reply.body).toMatch(/<legend>API resources<\/legend>/);
      expect(form.reply.body).toMatch(/<label for="f-defaultResource">Default API resource<\/label>/);
      const ordersField = checkboxFor(form.reply.body, orders);
      const stockField = checkboxFor(form.reply.body, stock);
      const ordersId = /id="(f-resource-\d+)"/.exec(new RegExp(`<input[^>]*name="${ordersField.replace('.', '\\.')}"[^>]*>`).exec(form.reply.body)![0])![1]!;
      expect(form.reply.body).toContain(`<label for="${ordersId}">Orders API `);

      const created = await admin.post('/admin/clients', clientForm(form.csrf, { [ordersField]: orders, [stockField]: stock, defaultResource: orders }));
      expect(created.status).toBe(303);
      const clientId = decodeURIComponent(/\/admin\/clients\/([^/?]+)/.exec(created.location!)![1]!);
      expect(await server.deps.clients.get(clientId)).toMatchObject({ allowedResources: [orders, stock], defaultResource: orders });

      const detail = await admin.get(`/admin/clients/${encodeURIComponent(clientId)}`);
      expect(detail.body).toContain('Orders API');
      expect(detail.body).toContain(`href="${href(orders)}"`);

      const edit = await page(`/admin/clients/${encodeURIComponent(clientId)}/edit`);
      expect(new RegExp(`<input[^>]*value="${orders}"[^>]*checked`).test(edit.reply.body)).toBe(true);
      expect(new RegExp(`<option value="${orders}" selected`).test(edit.reply.body)).toBe(true);
      const saved = await admin.post(`/admin/clients/${encodeURIComponent(clientId)}`, clientForm(edit.csrf, { [checkboxFor(edit.reply.body, stock)]: stock }));
      expect(saved.status).toBe(303);
      const after = await server.deps.clients.get(clientId);
      expect(after?.allowedResources).toEqual([stock]);
      expect(after?.defaultResource).toBeUndefined();
    });

    it('a crafted identifier that is not registered re-renders the form with a field error, and nothing is stored', async () => {
      const { csrf } = await page('/admin/clients/new');
      const before = await clientCount();
      const crafted = await admin.post('/admin/clients', clientForm(csrf, { 'resources.0': orders, 'resources.7': 'https://evil.example.com', defaultResource: orders }));
      expect(crafted.status).toBe(400);
      expect(fieldError(crafted.body, 'allowedResources')).toMatch(/&quot;https:\/\/evil\.example\.com&quot; is not a registered API resource/);
      expect(tagWithId(crafted.body, 'f-allowedResources')).toContain('f-allowedResources-error');
      // The crafted identifier is shown, checked, so that the admin sees what was refused.
      expect(crafted.body).toMatch(/value="https:\/\/evil\.example\.com" checked/);

      const wrongDefault = await admin.post('/admin/clients', clientForm(csrf, { defaultResource: 'https://evil.example.com' }));
      expect(wrongDefault.status).toBe(400);
      expect(fieldError(wrongDefault.body, 'defaultResource')).toMatch(/not a registered API resource/);
      const notAllowed = await admin.post('/admin/clients', clientForm(csrf, { 'resources.0': orders, defaultResource: stock }));
      expect(notAllowed.status).toBe(400);
      expect(fieldError(notAllowed.body, 'defaultResource')).toMatch(/one of the allowed API resources/);
      expect(await clientCount()).toBe(before);

      // An edit that adds one is refused too; the client is unchanged.
      const client = await server.deps.clients.create({ name: 'Crafted Edit', redirectUris: ['https://app.example.com/cb'] }, SETUP);
      const edit = await page(`/admin/clients/${encodeURIComponent(client.clientId)}/edit`);
      const refused = await admin.post(`/admin/clients/${encodeURIComponent(client.clientId)}`, clientForm(edit.csrf, { name: 'Renamed', 'resources.3': server.config.adminApi.resource }));
      expect(refused.status).toBe(400);
      expect(await server.deps.clients.get(client.clientId)).toMatchObject({ name: 'Crafted Edit', allowedResources: [] });
    });
  });
});
