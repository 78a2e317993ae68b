import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';

/**
 * The client IP in the request log and in audit events. Behind TRUST_PROXY it is read from
 * X-Forwarded-For counting PROXY_HOPS entries from the right: each proxy appends the address it
 * was connected from, so everything further left was written by the client and proves nothing.
 */

const USER = { email: 'ip@example.com', password: 'a long enough password 42', name: 'Ip Person' };
/** What a client sends itself (1.1.1.1, 2.2.2.2), then what our one proxy appended. */
const CHAIN = '1.1.1.1, 2.2.2.2, 203.0.113.9';

interface Seen {
  logIp: unknown;
  auditIp: unknown;
}

/** A wrong password posted with `xff`: the `sign-in failed` log line and audit event it left. */
async function failSignIn(server: TestServer, client: CreatedClient, xff: string | undefined): Promise<Seen> {
  const agent = new UserAgent(server.url);
  const login = await agent.follow(authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge }));
  expect(login.status).toBe(200);
  const marker = `${Date.now()}-${Math.random()}`;
  const reply = await agent.request(formAction(login.body, '/login'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': marker, ...(xff ? { 'x-forwarded-for': xff } : {}) },
    body: new URLSearchParams({ csrf: formField(login.body, 'csrf'), email: USER.email, password: 'not the password' }).toString(),
  });
  // Refused the post/redirect/get way: the page it redirects to says 401.
  expect(reply.status).toBe(303);
  expect((await agent.get(reply.location ?? '')).status).toBe(401);
  const line = server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'sign-in failed').pop();
  await server.deps.audit.flush(); // sign-in outcomes are audited by the batched writer
  const event = await server.deps.db.collection(AUDIT_COLLECTION).findOne({ action: 'sign_in.password', outcome: 'failure', userAgent: marker });
  expect(event).not.toBeNull();
  return { logIp: line?.ip, auditIp: event?.ip };
}

async function setUp(label: string, env: Record<string, string>): Promise<{ server: TestServer; client: CreatedClient }> {
  const server = await startTestServer(label, { env });
  await server.deps.accounts.create({ ...USER, emailVerified: true });
  const client = await server.deps.clients.create({ name: 'IP RP', redirectUris: [REDIRECT_URI] });
  return { server, client };
}

describe.each([
  ['TRUST_PROXY=true, one proxy (PROXY_HOPS default 1)', { TRUST_PROXY: 'true' }, '203.0.113.9'],
  ['TRUST_PROXY=true, two proxies (PROXY_HOPS=2)', { TRUST_PROXY: 'true', PROXY_HOPS: '2' }, '2.2.2.2'],
  ['no TRUST_PROXY', {}, '127.0.0.1'],
])('client IP with %s', (label, env: Record<string, string>, expected) => {
  let server: TestServer;
  let client: CreatedClient;

  beforeAll(async () => {
    ({ server, client } = await setUp(`client_ip_${label.slice(0, 20)}`, env));
  });

  afterAll(async () => {
    await server?.close();
  });

  it(`logs and audits ${expected} for X-Forwarded-For: ${CHAIN}`, async () => {
    expect(await failSignIn(server, client, CHAIN)).toEqual({ logIp: expected, auditIp: expected });
    // The addresses the client wrote itself are nowhere.
    for (const forged of ['1.1.1.1', ...(expected === '2.2.2.2' ? [] : ['2.2.2.2'])]) expect(server.logs.join('\n')).not.toContain(forged);
  });

  it('uses the connecting address when there is no X-Forwarded-For', async () => {
    expect(await failSignIn(server, client, undefined)).toEqual({ logIp: '127.0.0.1', auditIp: '127.0.0.1' });
  });
});
