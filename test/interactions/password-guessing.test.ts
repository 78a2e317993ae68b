/**
 * Password guessing under real concurrency: however many wrong-password POSTs for one address
 * arrive at once, only the free attempts reach argon2 (and, if the burst lasts long enough, one
 * more after each delay: 1 s, 2 s, 4 s …), the rest are refused (429) without a check, nothing
 * fails with a 5xx, and the failures counted are exactly the passwords checked.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { delayAfter } from '../../src/limits/attempt-limiter.js';
import { REDIRECT_URI, authorizationRequest, rpFor } from '../support/rp.js';
import { createTestClock } from '../support/clock.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const FREE = 5;
/** Short, so that waiting out a delay keeps the suite quick (the bounds below use it). */
const MAX_DELAY = 4;
const KNOWN = { email: 'burst.target@example.com', password: 'the right password, long enough' };
const UNKNOWN = 'nobody.burst@example.com';

/**
 * The most checks the rule allows within `seconds`, after `failures` failures in a row the latest
 * of which was just now: the free ones at once, then one after each delay. (On a slow machine a
 * burst of 100 takes many seconds; a check after the delay is the rule working, not a leak.)
 */
function allowedChecks(failures: number, seconds: number): number {
  const rule = { freeAttempts: FREE, maxDelaySeconds: MAX_DELAY };
  let elapsed = 0;
  let checks = 0;
  for (let f = failures; elapsed + delayAfter(f, rule) <= seconds; f += 1) {
    elapsed += delayAfter(f, rule);
    checks += 1;
  }
  return checks;
}

describe('password guessing with 100 requests at once', () => {
  let server: TestServer;
  // Waits asked for by the throttles pass by moving the services' clock, not by sleeping.
  const clock = createTestClock();
  let rp: oidc.Configuration;

  beforeAll(async () => {
    server = await startTestServer('password_burst', { env: { SIGN_IN_FREE_ATTEMPTS: String(FREE), SIGN_IN_MAX_DELAY: String(MAX_DELAY) }, clock });
    await server.deps.accounts.create(KNOWN);
    const client = await server.deps.clients.create({ name: 'Burst app', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, client);
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server?.close();
  });

  async function loginPage(): Promise<{ agent: UserAgent; page: Reply }> {
    const agent = new UserAgent(server.url);
    const page = await agent.follow((await authorizationRequest(rp)).url.toString());
    expect(page.status).toBe(200);
    return { agent, page };
  }

  /** `n` wrong-password POSTs (each followed to the page it redirects to) for `email` at once, spread over `pages` interactions (browsers); and how long they took. */
  async function burst(email: string, n: number, pages = 4): Promise<Reply[] & { seconds: number }> {
    const opened = await Promise.all(Array.from({ length: pages }, () => loginPage()));
    const started = Date.now();
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const { agent, page } = opened[i % pages]!;
        return agent.submit(formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), email, password: `wrong guess ${i}` });
      }),
    );
    return Object.assign(replies, { seconds: (Date.now() - started) / 1000 });
  }

  const statuses = (replies: Reply[]) => replies.map((r) => r.status);
  /** Passwords actually checked: each leaves one `wrong_password` or `unknown_account` failure in the audit log. */
  const checked = async (email: string) => {
    // Refusals are recorded through the batched audit writer: what it holds is written first.
    await server.deps.audit.flush();
    return server.deps.db.collection('audit_events').countDocuments({
      action: 'sign_in.password',
      outcome: 'failure',
      reason: { $in: ['wrong_password', 'unknown_account'] },
      ...(email === KNOWN.email ? { 'actor.label': email } : {}),
    });
  };
  const counted = (email: string) => server.deps.limits.limiter.count(server.deps.limits.password(email).key);

  it.each([
    ['a known address', KNOWN.email],
    ['an unknown address', UNKNOWN],
  ])('checks at most the free attempts of 100 concurrent guesses for %s, counts exactly those, and answers the rest 429', async (_what, email) => {
    const before = await checked(email);
    const replies = await burst(email, 100);
    const codes = statuses(replies);
    expect(codes.filter((s) => s >= 500)).toEqual([]);
    expect(codes.every((s) => s === 401 || s === 429)).toBe(true);
    const evaluated = codes.filter((s) => s === 401).length;
    // (That someone gets through a race is the limiter's own test, with a few racing callers: with
    // a hundred, all may still be in flight on every try, and a refusal is the safe side.)
    expect(evaluated).toBeLessThanOrEqual(allowedChecks(0, replies.seconds));
    // Exact: every checked password is counted once, and nothing else is.
    expect(await counted(email)).toBe(evaluated);
    expect((await checked(email)) - before).toBe(evaluated);
    for (const refused of replies.filter((r) => r.status === 429)) {
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(refused.body).toContain('Too many failed attempts.');
    }

    // After the wait, a burst of 30 gets one more check (and one more per further delay it outlasts).
    clock.advance(Math.max(...replies.filter((r) => r.status === 429).map((r) => Number(r.headers.get('retry-after')))) * 1000 + 200);
    const failures = await counted(email);
    const later = await burst(email, 30);
    expect(statuses(later).filter((s) => s >= 500)).toEqual([]);
    const more = statuses(later).filter((s) => s === 401).length;
    // The wait is over when the burst starts: one check at once, then one after each further delay.
    expect(more).toBeLessThanOrEqual(1 + allowedChecks(failures + 1, later.seconds));
    expect(await counted(email)).toBe(failures + more);
  }, 180_000);

  it('lets the owner in with the right password once the wait is over, and forgets the failures', async () => {
    const target = { email: 'owner.after@example.com', password: 'owner password, long enough' };
    await server.deps.accounts.create(target);
    await burst(target.email, 30);
    // Wait out whatever delay the burst left (at most 2 s after five or six failures).
    clock.advance(2500);
    const { agent, page } = await loginPage();
    const reply = await agent.submit(formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), ...target });
    // Accepted: 303 to the consent page (the sign-in's last step), which submit followed.
    expect(reply.posted.status).toBe(303);
    expect(reply.status).toBe(200);
    expect(await counted(target.email)).toBe(0);
  });
});
