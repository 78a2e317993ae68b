import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { createTestClock, passTime } from '../support/clock.js';
import { REDIRECT_URI, authorizationRequest, rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const USER = { email: 'slow.down@example.com', password: 'the right password' };
const FREE = 3;
/**
 * Failures that open each test's window: FREE free ones, then two more, each after the delay
 * the one before it started (1 s, 2 s). The attempt after them must wait 4 s, so it is refused
 * however slowly a machine gets from the last failure to that one POST.
 */
const FAILURES = FREE + 2;
/** Seconds to wait after `failures` failures in a row (1, 2, 4 … after the free ones; src/limits/attempt-limiter.ts). */
const delayAfter = (failures: number): number => (failures < FREE ? 0 : 2 ** (failures - FREE));

interface LoginPage {
  agent: UserAgent;
  page: Reply;
}

/** A fresh authorization request (a new interaction each time) in a new browser: its login page. */
async function openLogin(server: TestServer, rp: oidc.Configuration): Promise<LoginPage> {
  const agent = new UserAgent(server.url);
  const { url } = await authorizationRequest(rp);
  const page = await agent.follow(url.toString());
  expect(page.status).toBe(200);
  return { agent, page };
}

/** One password attempt on a login page, following a refusal's 303 to the login page (post/redirect/get). */
function post({ agent, page }: LoginPage, email: string, password: string): Promise<Reply & { posted: Reply }> {
  return agent.submit(formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), email, password });
}

/** A fresh authorization request and one password attempt on its login page. */
async function attempt(server: TestServer, rp: oidc.Configuration, email: string, password: string): Promise<Reply & { posted: Reply }> {
  return post(await openLogin(server, rp), email, password);
}

/**
 * FAILURES wrong passwords for `email`, each in a new authorization request, each one (after the
 * free ones) once the delay the one before it started has passed, so every one is counted (401).
 * Returns a login page of `next` opened BEFORE the last failure: the attempt that follows it is a
 * single POST inside the 4 s delay, without discovery, redirects or page loads in the window.
 */
async function failAndPrepare(
  server: TestServer,
  rp: oidc.Configuration,
  email: string,
  next: { server: TestServer; rp: oidc.Configuration } = { server, rp },
): Promise<LoginPage> {
  let prepared: LoginPage | undefined;
  for (let failures = 0; failures < FAILURES; failures += 1) {
    const page = await openLogin(server, rp);
    if (failures === FAILURES - 1) prepared = await openLogin(next.server, next.rp);
    // Waited after the page loads, right before the POST: waiting longer than the delay is harmless.
    if (delayAfter(failures) > 0) await passTime(server.deps.clock, delayAfter(failures) * 1000 + 100);
    const wrong = await post(page, email, `wrong ${failures}`);
    expect(wrong.status).toBe(401);
    expect(wrong.body).not.toContain('Too many');
  }
  if (!prepared) throw new Error('no failures made');
  return prepared;
}

/** The refusal during the delay: 429, Retry-After in whole seconds, and the same wait on the page. */
function expectDelayed(reply: Reply): number {
  expect(reply.status).toBe(429);
  const retryAfter = Number(reply.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(delayAfter(FAILURES));
  expect(reply.body).toContain(`Too many failed attempts. Wait ${retryAfter} second${retryAfter === 1 ? '' : 's'}, then try again.`);
  expect(reply.body).toContain('role="alert"');
  return retryAfter;
}

function comparable(reply: Reply, email: string): string {
  return reply.body
    .replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID')
    .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value="CSRF"')
    // The seconds left depend on when each request arrived, not on the email.
    .replace(/Wait \d+ seconds?,/g, 'Wait N seconds,')
    .replaceAll(email, 'EMAIL');
}

describe('password guessing is slowed down per email, across interactions and nodes', () => {
  let server: TestServer;
  let second: TestServer;
  let client: CreatedClient;
  let rp: oidc.Configuration;
  // Both nodes' services read this clock: the delays pass by moving it, not by sleeping.
  const clock = createTestClock();

  beforeAll(async () => {
    server = await startTestServer('throttle_pages', { clock, env: { SIGN_IN_FREE_ATTEMPTS: String(FREE), SIGN_IN_MAX_DELAY: '60' } });
    // A second node on the same database.
    second = await startTestServer('throttle_pages', {
      clock,
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
    // The next attempt comes through the second node, discovered and opened before the last failure.
    const next = await failAndPrepare(server, rp, USER.email, { server: second, rp: await rpFor(second, client) });
    // A new authorization request does not reset the count, and neither does another node.
    const delayed = await post(next, USER.email, USER.password);
    const retryAfter = expectDelayed(delayed);

    await passTime(clock, retryAfter * 1000 + 250);
    const allowed = await attempt(server, rp, USER.email, USER.password);
    // Accepted: 303 to the consent page (the sign-in's last step), which submit followed.
    expect(allowed.posted.status).toBe(303);
    expect(allowed.status).toBe(200);
    // Success forgot the failures: the free attempts are free again (without the reset, the
    // second of these would be refused for 8 s).
    for (let i = 0; i < FREE; i += 1) expect((await attempt(server, rp, USER.email, `wrong again ${i}`)).status).toBe(401);
  });

  it('delays an unknown email exactly like a known one (no enumeration)', async () => {
    const known = 'known.delay@example.com';
    const unknown = 'nobody.here@example.com';
    await server.deps.accounts.create({ email: known, password: 'another right password' });
    // Side by side, so the delays are waited out once.
    const finals = await Promise.all(
      [known, unknown].map(async (email) => post(await failAndPrepare(server, rp, email), email, 'whatever it is')),
    );
    const [knownReply, unknownReply] = finals as [Reply, Reply] & typeof finals;
    expectDelayed(knownReply);
    expectDelayed(unknownReply);
    expect(comparable(unknownReply, unknown)).toBe(comparable(knownReply, known));
  });
});
