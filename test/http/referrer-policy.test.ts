import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { VIEWS_DIR } from '../../src/app.js';
import { CONSOLE_LANDING, signInToConsole } from '../support/admin-console.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * Pages send `Referrer-Policy: no-referrer` and nothing weaker. A `<meta name="referrer">` in
 * the document would replace the header's policy for everything the page loads or links to
 * (the HTML standard's "referrer" metadata name sets the document's policy after the header),
 * so sign-in URLs (with their interaction uid) could leak to client logos and links.
 */

const ADMIN = { email: 'referrer-admin@example.test', password: 'correct horse battery staple' };

function expectNoReferrerOnly(what: string, reply: Reply): void {
  expect({ what, policy: reply.headers.get('referrer-policy') }).toEqual({ what, policy: 'no-referrer' });
  expect({ what, html: reply.headers.get('content-type')?.startsWith('text/html') }).toEqual({ what, html: true });
  expect({ what, meta: /<meta[^>]+name=["']?referrer/i.test(reply.body) }).toEqual({ what, meta: false });
}

function pugFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return pugFiles(full);
    return entry.name.endsWith('.pug') ? [full] : [];
  });
}

describe('referrer policy of the pages', () => {
  let server: TestServer;
  let smtp: MailServer;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('referrer_policy', { logLevel: 'warn', env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.test>' } });
    await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true });
  });

  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  it('no template declares a referrer policy of its own', () => {
    const offenders = pugFiles(VIEWS_DIR).filter((file) => /meta\([^)]*name=["']referrer["']/i.test(readFileSync(file, 'utf8')));
    expect(offenders.map((file) => path.relative(VIEWS_DIR, file))).toEqual([]);
  });

  it('sign-in, error, account and sign-out pages: the header, and no <meta name="referrer">', async () => {
    const client = await server.deps.clients.create({ name: 'Referrer RP', redirectUris: [REDIRECT_URI] });
    const agent = new UserAgent(server.url);
    const login = await agent.follow(authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge }));
    expect(login.status).toBe(200);
    expectNoReferrerOnly('login', login);
    expectNoReferrerOnly('error', await agent.get('/interaction/not-a-real-interaction-uid'));
    expectNoReferrerOnly('account signed out', await agent.get('/account/signed-out'));
    expectNoReferrerOnly('sign-out', await agent.get('/session/end'));
  });

  it('admin console pages: the header, and no <meta name="referrer">', async () => {
    const agent = new UserAgent(server.url);
    const landing = await signInToConsole(agent, server, smtp, ADMIN);
    expect(landing.url).toBe(`${server.url}${CONSOLE_LANDING}`);
    expectNoReferrerOnly('console landing', landing);
    expectNoReferrerOnly('console users', await agent.get('/admin/users'));
  });
});
