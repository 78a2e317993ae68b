import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../../src/audit/audit.service.js';
import { startMailServer } from '../../support/mail-server.js';
import type { MailServer } from '../../support/mail-server.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { adminToken, call, expectProblem } from './api-client.js';

/** POST /users/{userId}/send-password-reset: an administrator mails a person a reset link. */

let server: TestServer;
let smtp: MailServer;
let token: string;
let readOnly: string;

beforeAll(async () => {
  smtp = await startMailServer();
  server = await startTestServer('admin_api_reset_mail', { logLevel: 'warn', env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.test>' } });
  ({ token } = await adminToken(server));
  ({ token: readOnly } = await adminToken(server, ['admin:users:read']));
});

afterAll(async () => {
  await server?.close();
  await smtp?.close();
});

describe('send a password reset mail', () => {
  it('mails the account a single-use link, audited; refused without the write scope, for unknown and disabled users', async () => {
    const user = await server.deps.accounts.create({ email: 'resettable@example.test', password: 'a long enough password 42' });
    const answer = await call(server, 'POST', `users/${user.id}/send-password-reset`, { token });
    expect(answer.status).toBe(202);
    expect(answer.body).toEqual({ email: user.email, expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    const mail = await smtp.waitForMail(user.email);
    expect(mail.text).toMatch(new RegExp(`${server.url}/password-reset\\?token=[A-Za-z0-9_-]{43}`));
    expect(mail.subject).toBe(`Reset your ${server.config.productName} password`);

    expectProblem(await call(server, 'POST', `users/${user.id}/send-password-reset`, { token: readOnly }), 403);
    expectProblem(await call(server, 'POST', 'users/no-such-user/send-password-reset', { token }), 404, 'user.not_found');
    await server.deps.accounts.setDisabled(user.id, true);
    expectProblem(await call(server, 'POST', `users/${user.id}/send-password-reset`, { token }), 409, 'user.disabled');

    await server.deps.audit.flush();
    const events = await server.deps.db.collection(AUDIT_COLLECTION).find({ action: 'user.password_reset_mail_sent', 'target.id': user.id }).toArray();
    expect(events.map((e) => e.outcome).sort()).toEqual(['failure', 'success']);
    expect(JSON.stringify(events)).not.toMatch(/token=/);
  });

  it('is in the OpenAPI document', async () => {
    const doc = await call(server, 'GET', 'openapi.json', {});
    expect(doc.body.paths['/users/{userId}/send-password-reset'].post.operationId).toBe('sendUserPasswordReset');
  });
});
