import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { adminToken, call } from '../admin/api/api-client.js';
import { signInToConsole } from '../support/admin-console.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { submit } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * State-changing POSTs to our own pages (/interaction, /account, /admin) must come from our own
 * pages: Sec-Fetch-Site, when the browser sends it, must be `same-origin`; without it, a foreign
 * Origin is refused. A refused form gets a 403 page and changes nothing. `Origin: null` alone
 * is no reason to refuse: with `Referrer-Policy: no-referrer` a browser sends it on same-origin
 * form POSTs too.
 */

const ADMIN = { email: 'xsite-admin@example.test', password: 'correct horse battery staple' };
const PERSON = { email: 'xsite-person@example.test', password: 'a long enough password 42', name: 'Cross Site' };
const ATTACKER = 'https://attacker.example';

/** What a hostile page's form (or a script there) makes the browser send. */
const REFUSED: [string, Record<string, string>][] = [
  ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site', origin: ATTACKER }],
  ['Sec-Fetch-Site: same-site (a sibling subdomain)', { 'sec-fetch-site': 'same-site', origin: 'https://other.127.0.0.1.example' }],
  ['Sec-Fetch-Site: none', { 'sec-fetch-site': 'none' }],
  ['Sec-Fetch-Site: cross-site with Origin: null', { 'sec-fetch-site': 'cross-site', origin: 'null' }],
  ['a foreign Origin and no Sec-Fetch-Site (an older browser)', { origin: ATTACKER }],
];

function expectCrossSitePage(reply: Reply): void {
  expect(reply.status).toBe(403);
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.body).toContain('request.cross_site');
  expect(reply.location).toBeUndefined();
}

function postWith(agent: UserAgent, url: string, form: Record<string, string>, headers: Record<string, string>): Promise<Reply> {
  return agent.request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });
}

describe('cross-site POSTs to our pages', () => {
  let server: TestServer;
  let smtp: MailServer;
  let client: CreatedClient;
  let sameOrigin: Record<string, string>;

  // Flushed first: sign-ins are audited by the batched writer, which must not land mid-comparison.
  const auditCount = async () => {
    await server.deps.audit.flush();
    return server.deps.db.collection(AUDIT_COLLECTION).countDocuments();
  };
  const clientCount = () => server.deps.db.collection('clients').countDocuments();

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('cross_site_forms', { logLevel: 'warn', env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.test>' } });
    await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true });
    await server.deps.accounts.create({ ...PERSON, emailVerified: true });
    client = await server.deps.clients.create({ name: 'Cross-site RP', redirectUris: [REDIRECT_URI] });
    // What Chromium sends on a form POST from one of our pages to another (no-referrer: Origin null).
    sameOrigin = { 'sec-fetch-site': 'same-origin', origin: 'null' };
  });

  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  describe('the sign-in form', () => {
    const loginPage = async (): Promise<{ agent: UserAgent; page: Reply }> => {
      const agent = new UserAgent(server.url);
      const page = await agent.follow(authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge }));
      expect(page.status).toBe(200);
      return { agent, page };
    };

    it.each(REFUSED)('refuses %s with a 403 page; the right password signs nobody in', async (_label, headers) => {
      const { agent, page } = await loginPage();
      const before = await auditCount();
      const reply = await postWith(agent, formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), email: PERSON.email, password: PERSON.password }, headers);
      expectCrossSitePage(reply);
      // Nothing happened: no sign-in attempt recorded, and the interaction still asks for a password.
      expect(await auditCount()).toBe(before);
      const again = await agent.get(page.url);
      expect(again.status).toBe(200);
      expect(again.body).toContain('name="password"');
    });

    it('accepts the same POST from our own page (Sec-Fetch-Site: same-origin, Origin: null), and with our Origin', async () => {
      for (const headers of [sameOrigin, { origin: server.url }]) {
        const { agent, page } = await loginPage();
        const reply = await postWith(agent, formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), email: PERSON.email, password: PERSON.password }, headers);
        expect(reply.status).toBe(303);
      }
    });
  });

  describe('the admin console', () => {
    let admin: UserAgent;

    beforeAll(async () => {
      admin = new UserAgent(server.url);
      await signInToConsole(admin, server, smtp, ADMIN);
    });

    const newClientForm = async (): Promise<Record<string, string>> => {
      const page = await admin.get('/admin/clients/new');
      expect(page.status).toBe(200);
      return {
        csrf: formField(page.body, 'csrf'),
        name: 'Planted by another site',
        redirectUris: 'https://attacker.example/callback',
        'grantTypes.authorization_code': 'on',
        applicationType: 'web',
        tokenEndpointAuthMethod: 'client_secret_basic',
        'scopes.openid': 'on',
      };
    };

    it.each(REFUSED)('refuses %s to "New client" with a 403 page, and creates nothing', async (_label, headers) => {
      const form = await newClientForm();
      const [clients, audit] = [await clientCount(), await auditCount()];
      expectCrossSitePage(await postWith(admin, '/admin/clients', form, headers));
      expect([await clientCount(), await auditCount()]).toEqual([clients, audit]);
    });

    it('refuses it also when the path is spelled in other letter case (the router matches it) or percent-encoded', async () => {
      const form = await newClientForm();
      const clients = await clientCount();
      for (const path of ['/ADMIN/clients', '/Admin/Clients', '/%61dmin/clients']) {
        const reply = await postWith(admin, path, form, { 'sec-fetch-site': 'cross-site' });
        expect({ path, status: reply.status }).toEqual({ path, status: 403 });
      }
      expect(await clientCount()).toBe(clients);
    });

    it.each(REFUSED)('refuses %s to "New API resource" and to deleting one, and changes nothing', async (_label, headers) => {
      const identifier = 'https://cross-site-kept.example.test';
      if (!(await server.deps.resources.get(identifier))) await server.deps.resources.create({ identifier, name: 'Kept' });
      const page = await admin.get('/admin/api-resources/new');
      expect(page.status).toBe(200);
      const csrf = formField(page.body, 'csrf');
      const resources = (await server.deps.resources.list()).length;
      const audit = await auditCount();
      expectCrossSitePage(await postWith(admin, '/admin/api-resources', { csrf, identifier: 'https://planted.example.test', name: 'Planted', tokenFormat: 'jwt' }, headers));
      expectCrossSitePage(await postWith(admin, `/admin/api-resources/${encodeURIComponent(identifier)}/delete`, { csrf }, headers));
      expect([(await server.deps.resources.list()).length, await auditCount()]).toEqual([resources, audit]);
      expect(await server.deps.resources.get(identifier)).toBeDefined();
    });

    it('accepts the form from the console itself (Sec-Fetch-Site: same-origin, Origin: null)', async () => {
      const clients = await clientCount();
      const reply = await postWith(admin, '/admin/clients', await newClientForm(), sameOrigin);
      expect(reply.status).toBe(303);
      expect(await clientCount()).toBe(clients + 1);
    });
  });

  describe('the account pages', () => {
    it('refuses a cross-site POST to the security page with a 403 page, and records nothing', async () => {
      const agent = new UserAgent(server.url);
      const login = await agent.follow(`${server.url}/account/security`);
      const security = await submit(agent, login, '/login', { email: PERSON.email, password: PERSON.password });
      expect(security.url).toBe(`${server.url}/account/security`);
      // The authenticator set-up page: its form turns two-step verification on.
      const enrol = await agent.get('/account/security/totp');
      expect(enrol.status).toBe(200);
      const csrf = formField(enrol.body, 'csrf');
      for (const [, headers] of REFUSED) {
        const before = await auditCount();
        expectCrossSitePage(await postWith(agent, '/account/security/totp', { csrf, code: '123456' }, headers));
        expect(await auditCount()).toBe(before);
      }
      // From the page itself the request goes through (and the wrong code is refused as such).
      const own = await postWith(agent, '/account/security/totp', { csrf, code: '123456' }, sameOrigin);
      expect(own.status).not.toBe(403);
    });
  });

  describe('endpoints that are not our pages', () => {
    it('leaves the token endpoint to the provider: called cross-origin by design', async () => {
      const res = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site', origin: ATTACKER },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: 'nope', redirect_uri: REDIRECT_URI, client_id: client.clientId }).toString(),
      });
      const body = (await res.json()) as { error?: string };
      expect(body.error).not.toBe('request.cross_site');
      expect(['invalid_client', 'invalid_grant', 'invalid_request']).toContain(body.error);
    });

    it('leaves the management API to its bearer tokens', async () => {
      const { token } = await adminToken(server);
      const created = await call(server, 'POST', 'clients', {
        token,
        json: { name: 'API app', redirectUris: ['https://app.example.test/callback'] },
        headers: { 'sec-fetch-site': 'cross-site', origin: ATTACKER },
      });
      expect(created.status).toBe(201);
    });
  });
});
