/**
 * No account enumeration on the sign-in forms: a known address and an unknown one, driven through
 * the same sequence side by side, get the same answer at every step — status, page (without the
 * interaction's own uid, token and the address typed), Retry-After and cookies — from the first
 * code request through wrong codes, delays and resends, and for passwords the same. Each form
 * POST is compared (its 303 and Location, which names the refusal) and so is the page it leads to.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import { createTestClock } from '../support/clock.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, rpFor } from '../support/rp.js';
import { pageKind } from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const FREE = 3;

/** What anyone could compare of an answer: everything but this interaction's uid, its token, the address typed and the seconds left. */
function observed(reply: Reply, email: string) {
  return {
    status: reply.status,
    kind: pageKind(reply),
    retryAfter: reply.headers.get('retry-after') === null ? 'none' : 'set',
    cookies: reply.headers
      .getSetCookie()
      .map((c) => c.split('=')[0])
      .sort(),
    location: (reply.location ?? '').replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID').replace(/wait=\d+/, 'wait=N'),
    body: reply.body
      .replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID')
      .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value="CSRF"')
      .replace(/\b\d+ (second|minute)s?\b/g, 'N units')
      .replaceAll(email, 'EMAIL'),
  };
}

describe('a known and an unknown address get the same answers, step by step', () => {
  let server: TestServer;
  // Waits asked for by the throttles pass by moving the services' clock, not by sleeping.
  const clock = createTestClock();
  let smtp: MailServer;
  let rp: oidc.Configuration;
  const known = { email: 'someone.real@example.com', password: 'the real password, long enough' };
  const unknown = 'no.one.here@example.com';

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('enumeration', {
      FACTOR_FREE_ATTEMPTS: String(FREE),
      FACTOR_MAX_DELAY: '4',
      SIGN_IN_FREE_ATTEMPTS: String(FREE),
      SIGN_IN_MAX_DELAY: '4',
      EMAIL_CODE_RESEND_INTERVAL: '2',
    }, { clock }));
    await server.deps.accounts.create(known);
    const client = await server.deps.clients.create({ name: 'Enumeration app', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, client);
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  async function loginPage(): Promise<{ agent: UserAgent; page: Reply }> {
    const agent = new UserAgent(server.url);
    const page = await agent.follow((await authorizationRequest(rp)).url.toString());
    expect(pageKind(page)).toBe('login');
    return { agent, page };
  }

  /**
   * Runs `steps` for both addresses side by side (each step for both before the next), and
   * compares what came back; a step may wait for what the answer asked (Retry-After).
   */
  async function sideBySide(steps: ((agent: UserAgent, page: Reply, email: string) => Promise<Reply & { posted: Reply }>)[]) {
    const both = await Promise.all([loginPage(), loginPage()]);
    const emails = [known.email, unknown];
    const pages = both.map((b) => b.page);
    const trace: { known: unknown; unknown: unknown }[] = [];
    for (const step of steps) {
      const replies = await Promise.all(both.map((b, i) => step(b.agent, pages[i]!, emails[i]!)));
      const [k, u] = replies as [Reply & { posted: Reply }, Reply & { posted: Reply }];
      trace.push({ known: { posted: observed(k.posted, known.email), page: observed(k, known.email) }, unknown: { posted: observed(u.posted, unknown), page: observed(u, unknown) } });
      replies.forEach((reply, i) => {
        if (reply.status === 200 || reply.status === 401 || reply.status === 429) pages[i] = reply;
      });
      // Wait out a delay the way a patient attacker would, for both at once.
      const waits = replies.map((r) => Number(r.headers.get('retry-after') ?? 0));
      if (Math.max(...waits) > 0) clock.advance(Math.max(...waits) * 1000 + 150);
    }
    return trace;
  }

  // Each posts the form and follows its 303 to the page (post/redirect/get), as a browser does.
  const askForCode = (agent: UserAgent, page: Reply, email: string) => agent.submit(formAction(page.body, '/email-code'), { csrf: formField(page.body, 'csrf'), email });
  const wrongCode = (n: number) => (agent: UserAgent, page: Reply) =>
    agent.submit(formAction(page.body, '/email-code/verify'), { csrf: formField(page.body, 'csrf'), code: String(100000 + n) });
  const resend = (agent: UserAgent, page: Reply) => agent.submit(formAction(page.body, '/email-code/resend'), { csrf: formField(page.body, 'csrf') });
  const wrongPassword = (n: number) => (agent: UserAgent, page: Reply, email: string) =>
    agent.submit(formAction(page.body, '/login'), { csrf: formField(page.body, 'csrf'), email, password: `not it ${n}` });

  it('sign-in codes: the request, eight wrong codes (through the delays and the dead code), an early resend, a later resend', async () => {
    const trace = await sideBySide([
      askForCode,
      ...Array.from({ length: 8 }, (_, n) => wrongCode(n)),
      resend,
      async (agent, page) => {
        clock.advance(2200);
        return resend(agent, page);
      },
      wrongCode(99),
    ]);
    for (const [i, step] of trace.entries()) expect({ step: i, ...(step.unknown as object) }).toEqual({ step: i, ...(step.known as object) });
    // The sequence really went through the limits: some wrong codes were delayed.
    const statuses = trace.map((s) => (s.known as { page: { status: number } }).page.status);
    expect(statuses).toContain(429);
    expect(statuses.filter((status) => status === 401).length).toBeGreaterThanOrEqual(FREE);
    // Every form answered with a 303 (post/redirect/get).
    expect(trace.every((s) => (s.known as { posted: { status: number } }).posted.status === 303)).toBe(true);
  }, 120_000);

  it('passwords: eight wrong passwords, through the delays', async () => {
    const trace = await sideBySide(Array.from({ length: 8 }, (_, n) => wrongPassword(n)));
    for (const [i, step] of trace.entries()) expect({ step: i, ...(step.unknown as object) }).toEqual({ step: i, ...(step.known as object) });
    expect(trace.some((s) => (s.known as { page: { status: number } }).page.status === 429)).toBe(true);
    expect(trace.every((s) => (s.known as { posted: { status: number } }).posted.status === 303)).toBe(true);
  }, 120_000);
});
