import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { authorizationRequest, redeem, rpFor } from '../support/rp.js';
import { pageKind, recoveryCodesFrom, requestSignInCode, secretFromEnrolPage, submit, totpCode } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

const USER = { email: 'smoke@example.com', password: 'correct horse battery staple' };

describe('smoke', () => {
  let server: TestServer;
  let smtp: MailServer;
  let client: CreatedClient;
  let mfaClient: CreatedClient;
  let rp: oidc.Configuration;
  let mfaRp: oidc.Configuration;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('smoke', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    await server.deps.accounts.create(USER);
    client = await server.deps.clients.create({ name: 'App', redirectUris: ['http://127.0.0.1:9/callback'] });
    mfaClient = await server.deps.clients.create({ name: 'Bank', redirectUris: ['http://127.0.0.1:9/callback'], requireMfa: true });
    rp = await rpFor(server, client);
    mfaRp = await rpFor(server, mfaClient);
  });
  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    await smtp.close();
  });

  it('email code sign-in', async () => {
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(rp);
    const login = await agent.follow(started.url.toString());
    expect(pageKind(login)).toBe('login');
    const { page, code } = await requestSignInCode(agent, login, USER.email, smtp);
    expect(pageKind(page)).toBe('email-code');
    const consent = await submit(agent, page, '/email-code/verify', { code });
    expect(pageKind(consent)).toBe('consent');
    const confirmed = await agent.post(consent.body.match(/action="([^"]*\/confirm)"/)?.[1] ?? '', { csrf: consent.body.match(/name="csrf" value="([^"]*)"/)?.[1] ?? '' });
    const callback = await agent.follow(confirmed.location ?? '');
    const tokens = await redeem(rp, started, callback);
    expect(tokens.claims()?.amr).toEqual(['email']);
  });

  it('password then email as second factor for a require_mfa client, then enrol at /account', async () => {
    const agent = new UserAgent(server.url);
    const started = await authorizationRequest(mfaRp);
    const login = await agent.follow(started.url.toString());
    const before = smtp.countFor(USER.email);
    const second = await submit(agent, login, '/login', { email: USER.email, password: USER.password });
    expect(pageKind(second)).toBe('email-code');
    const mail = await smtp.waitForMail(USER.email, { after: before });
    const { codeFrom } = await import('../support/mail-server.js');
    const consent = await submit(agent, second, '/second-factor/email', { code: codeFrom(mail) });
    expect(pageKind(consent)).toBe('consent');
    const confirmed = await agent.post(consent.body.match(/action="([^"]*\/confirm)"/)?.[1] ?? '', { csrf: consent.body.match(/name="csrf" value="([^"]*)"/)?.[1] ?? '' });
    const callback = await agent.follow(confirmed.location ?? '');
    const tokens = await redeem(mfaRp, started, callback);
    expect(tokens.claims()?.amr).toEqual(['pwd', 'email', 'mfa']);
    expect(tokens.claims()?.acr).toBe(server.config.acr.multiFactor);

    // Account page with the same browser: SSO through the account console.
    let page = await agent.follow(`${server.url}/account/security`);
    console.log(page.status, page.url, page.body.slice(0, 300));
    const enrol = await agent.follow(`${server.url}/account/security/totp`);
    expect(pageKind(enrol)).toBe('enrol');
    const secret = secretFromEnrolPage(enrol.body);
    const codes = await submit(agent, enrol, '/account/security/totp', { code: await totpCode(secret) });
    expect(pageKind(codes)).toBe('recovery-codes');
    expect(recoveryCodesFrom(codes.body)).toHaveLength(10);
    page = await submit(agent, codes, '/account/security/done');
    expect(page.body).toContain('On');

    // A new browser: password, then TOTP (account has TOTP now), plain client.
    const agent2 = new UserAgent(server.url);
    const started2 = await authorizationRequest(rp);
    const login2 = await agent2.follow(started2.url.toString());
    const totpPage = await submit(agent2, login2, '/login', { email: USER.email, password: USER.password });
    expect(pageKind(totpPage)).toBe('totp');
    const next = await submit(agent2, totpPage, '/second-factor/totp', { code: await totpCode(secret, 1) });
    expect(pageKind(next)).toBe('consent');
  });
});
