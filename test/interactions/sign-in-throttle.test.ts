import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationRequest, rpFor, sleep } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const USER = { email: 'slow.down@example.com', password: 'the right password' };
const FREE = 3;

/** A fresh authorization request (a new interaction each time) and one password attempt on its login page. */
async function attempt(server: TestServer, rp: oidc.Configuration, email: string, password: string): Promise<Reply> {
  const agent = new UserAgent(server.url);
  const { url } = await authorizationRequest(rp);
  const login = await agent.follow(url.toString());
  expect(login.status).toBe(200);
  return agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email, password });
}

function comparable(reply: Reply, email: string): string {
  return reply.body
    .replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID')
    .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value="CSRF"')
    .replaceAll(email, 'EMAIL');
}

describe('password guessing is slowed down per email, across interactions and nodes', () => {
  let server: TestServer;
  let second: TestServer;
  let client: CreatedClient;
  let rp: oidc.Configuration;

  beforeAll(async () => {
    server = await startTestServer('throttle_pages', { env: { SIGN_IN_FREE_ATTEMPTS: String(FREE), SIGN_IN_MAX_DELAY: '60' } });
    // A second node on the same database.
    second = await startTestServer('throttle_pages', {
      mongoUri: server.mongoUri,
      env: { SIGN_IN_FREE_ATTEMPTS: String(FREE), SIGN_IN_MAX_DELAY: '60' },
    });
    await server.deps.accounts.create(USER);
    client = await server.deps.clients.create({ name: 'Throttled app', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, client);
  });

  afterAll(async () => {
    await second.close();
    await server.close();
  });

  it('refuses even the right password while the delay runs, says how long, then lets it through', async () => {
    for (let i = 0; i < FREE; i += 1) {
      const wrong = await attempt(server, rp, USER.email, `wrong ${i}`);
      expect(wrong.status).toBe(401);
    }
    // A new authorization request does not reset the count, and neither does another node.
    const delayed = await attempt(second, await rpFor(second, client), USER.email, USER.password);
    expect(delayed.status).toBe(429);
    expect(Number(delayed.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(delayed.body).toContain('Too many failed attempts. Wait 1 second, then try again.');
    expect(delayed.body).toContain('role="alert"');

    await sleep(1100);
    const allowed = await attempt(server, rp, USER.email, USER.password);
    expect(allowed.status).toBe(303);
    // Success forgot the failures: one more wrong password is an ordinary 401.
    expect((await attempt(server, rp, USER.email, 'wrong again')).status).toBe(401);
  });

  it('delays an unknown email exactly like a known one (no enumeration)', async () => {
    const known = 'known.delay@example.com';
    const unknown = 'nobody.here@example.com';
    await server.deps.accounts.create({ email: known, password: 'another right password' });
    const finals: Reply[] = [];
    for (const email of [known, unknown]) {
      for (let i = 0; i < FREE; i += 1) expect((await attempt(server, rp, email, `wrong ${i}`)).status).toBe(401);
      finals.push(await attempt(server, rp, email, 'whatever it is'));
    }
    const [knownReply, unknownReply] = finals as [Reply, Reply];
    expect(knownReply.status).toBe(429);
    expect(unknownReply.status).toBe(429);
    expect(comparable(unknownReply, unknown)).toBe(comparable(knownReply, known));
  });
});
