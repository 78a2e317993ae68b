/**
 * The management API's invitations: create (the link once, mailed on request), list, revoke;
 * the users scopes guard them, bad input is a 400 problem, and a refused call stores nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { INVITATIONS_COLLECTION } from '../../../src/invitations/invitation.service.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { adminToken, call, expectProblem } from './api-client.js';

describe('management API: invitations', () => {
  let server: TestServer;
  let smtp: MailServer;
  let writer: { token: string; accountId: string; email: string };
  let reader: string;
  let stranger: string;

  const stored = () => server.deps.db.collection(INVITATIONS_COLLECTION).countDocuments();

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('api_invitations', { logLevel: 'warn', env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    writer = await adminToken(server, ['admin:users:read', 'admin:users:write']);
    reader = (await adminToken(server, ['admin:users:read'])).token;
    stranger = (await adminToken(server, ['admin:clients:read', 'admin:clients:write', 'admin:audit:read'])).token;
  });

  afterAll(async () => {
    await server?.close();
    await smtp?.close();
  });

  it('creates an email-bound invitation, mails its link, shows the link once and audits the token holder', async () => {
    const before = smtp.countFor('invitee@example.com');
    const answer = await call(server, 'POST', 'invitations', {
      token: writer.token,
      json: { email: 'Invitee@Example.com', maxUses: 1, expiresInDays: 5, sendEmail: true },
    });
    expect(answer.status).toBe(201);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.body).toMatchObject({ email: 'invitee@example.com', maxUses: 1, usesCount: 0, state: 'pending', mailed: true });
    expect(answer.body.link).toMatch(new RegExp(`^${server.url}/sign-up\\?invitation=[A-Za-z0-9_-]{43}$`));
    expect(answer.body).not.toHaveProperty('token');
    expect(answer.body).not.toHaveProperty('tokenHash');
    const mail = await smtp.waitForMail('invitee@example.com', { after: before });
    expect(mail.text).toContain(answer.body.link);

    const token = new URL(answer.body.link as string).searchParams.get('invitation') ?? '';
    expect(await server.deps.invitations.check(token, 'invitee@example.com')).toMatchObject({ valid: true, invitationId: answer.body.id });

    const list = await call(server, 'GET', 'invitations', { token: reader });
    expect(list.status).toBe(200);
    expect(list.body.invitations[0]).toMatchObject({ id: answer.body.id, state: 'pending', createdBy: { type: 'account', id: writer.accountId } });
    expect(list.text).not.toContain(token);

    const { events } = await server.deps.audit.list({ action: 'invitation.created', target: answer.body.id }, { limit: 5 });
    expect(events[0]?.actor).toMatchObject({ type: 'account', id: writer.accountId });
  });

  it('creates an open invitation with the defaults', async () => {
    const answer = await call(server, 'POST', 'invitations', { token: writer.token, json: {} });
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({ maxUses: 1, state: 'pending', mailed: false });
    expect(answer.body).not.toHaveProperty('email');
  });

  it('refuses bad input with field problems, storing nothing', async () => {
    const before = await stored();
    expectProblem(await call(server, 'POST', 'invitations', { token: writer.token, json: { maxUses: 0 } }), 400, undefined, ['maxUses']);
    expectProblem(await call(server, 'POST', 'invitations', { token: writer.token, json: { expiresInDays: 365 } }), 400, undefined, ['expiresInDays']);
    expectProblem(await call(server, 'POST', 'invitations', { token: writer.token, json: { roles: ['admin'] } }), 400, undefined, ['roles']);
    expectProblem(await call(server, 'POST', 'invitations', { token: writer.token, json: { email: 'nope' } }), 400, 'invitation.invalid', ['email']);
    expectProblem(await call(server, 'POST', 'invitations', { token: writer.token, json: { sendEmail: true } }), 400, 'invitation.invalid', ['sendEmail']);
    expectProblem(await call(server, 'POST', 'invitations', { token: writer.token, raw: 'not json', contentType: 'application/json' }), 400);
    expect(await stored()).toBe(before);
  });

  it('needs admin:users:write to create or revoke and admin:users:read to list: 403, nothing stored or changed', async () => {
    const before = await stored();
    expectProblem(await call(server, 'POST', 'invitations', { token: reader, json: { email: 'x@example.com' } }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'POST', 'invitations', { token: stranger, json: {} }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'GET', 'invitations', { token: stranger }), 403, 'auth.insufficient_scope');
    expectProblem(await call(server, 'POST', 'invitations', { json: {} }), 401);
    expect(await stored()).toBe(before);

    const { view } = await server.deps.invitations.create({});
    expectProblem(await call(server, 'DELETE', `invitations/${view.id}`, { token: reader }), 403, 'auth.insufficient_scope');
    expect(await server.deps.invitations.get(view.id)).toMatchObject({ state: 'pending' });
  });

  it('revokes once; unknown ids are 404', async () => {
    const { token, view } = await server.deps.invitations.create({ maxUses: 3 });
    const revoked = await call(server, 'DELETE', `invitations/${view.id}`, { token: writer.token });
    expect(revoked.status).toBe(204);
    expect(await server.deps.invitations.check(token)).toEqual({ valid: false, reason: 'invalid' });
    expectProblem(await call(server, 'DELETE', `invitations/${view.id}`, { token: writer.token }), 404, 'invitation.not_found');
    expectProblem(await call(server, 'DELETE', 'invitations/unknown', { token: writer.token }), 404, 'invitation.not_found');
    const list = await call(server, 'GET', 'invitations', { token: reader });
    expect(list.body.invitations.find((i: { id: string }) => i.id === view.id)).toMatchObject({ state: 'revoked', revokedAt: expect.any(String) });
  });

  it('is in the OpenAPI document with its scopes', async () => {
    const doc = (await call(server, 'GET', 'openapi.json')).body;
    expect(doc.paths['/invitations'].post.security).toEqual([{ oauth2: ['admin:users:write'] }, { bearer: [] }]);
    expect(doc.paths['/invitations'].get.security).toEqual([{ oauth2: ['admin:users:read'] }, { bearer: [] }]);
    expect(doc.paths['/invitations/{invitationId}'].delete.operationId).toBe('revokeInvitation');
  });
});
