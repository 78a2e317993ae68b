/**
 * What the tests of the email, password and deletion pages share: a server mailing to a real SMTP
 * test server, people made through the account service, a browser (UserAgent) signed in to the
 * account centre through the real login page, an authentication made old, the step-up sign-in a
 * stale request is sent to, and a relying party whose tokens show what a change did to them.
 */
import { expect } from '@jest/globals';
import { mongo } from 'mongoose';
import type * as oidc from 'openid-client';

import { collectionName } from '../../src/oidc/mongo-adapter.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, rpFor, signInForTokens } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { pageKind, requestSignInCode, submit } from '../support/second-factor.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

export const PASSWORD = 'correct horse battery staple 7';

export interface Person {
  id: string;
  email: string;
  password: string;
}

/**
 * Makes a person's authentication `seconds` old, as time would: the stored sessions' loginTs (what
 * auth_time is read from) moved back. The sessions themselves stay valid.
 */
export async function ageAuthenticationOf(server: TestServer, accountId: string, seconds: number): Promise<void> {
  const sessions = server.deps.db.collection<{ _id: string; payload: string; accountId?: string }>(collectionName('Session'));
  const mine = await sessions.find({ accountId }).toArray();
  expect(mine.length).toBeGreaterThan(0);
  for (const record of mine) {
    const payload = JSON.parse(record.payload) as { loginTs: number };
    await sessions.updateOne({ _id: record._id }, { $set: { payload: JSON.stringify({ ...payload, loginTs: Math.floor(Date.now() / 1000) - seconds }) } });
  }
}

/**
 * Follows a refusal for a stale authentication to the provider's authorization request; checks it
 * asks for a new authentication of this account (max_age=0, login_hint) and returns the login page.
 */
export async function expectFreshSignIn(agent: UserAgent, refused: Reply, email: string, returnTo: string): Promise<Reply> {
  expect(refused.status).toBe(303);
  const signInUrl = new URL(refused.location ?? '');
  expect(signInUrl.pathname).toBe('/account/sign-in');
  expect(signInUrl.searchParams.get('fresh')).toBe('1');
  expect(signInUrl.searchParams.get('return')).toBe(returnTo);
  const start = await agent.get(signInUrl.toString());
  expect(start.status).toBe(303);
  const auth = new URL(start.location ?? '');
  expect(auth.pathname).toBe('/auth');
  expect(auth.searchParams.get('client_id')).toBe('account-console');
  expect(auth.searchParams.get('max_age')).toBe('0');
  expect(auth.searchParams.get('login_hint')).toBe(email);
  // The provider asks again although the session is alive: the login page, for this account.
  const login = await agent.follow(auth.toString());
  expect(pageKind(login)).toBe('login');
  expect(login.body).toContain(`value="${email}"`);
  return login;
}

export function expectClientError(reply: Reply, status?: number): void {
  if (status !== undefined) expect({ url: reply.url, status: reply.status }).toEqual({ url: reply.url, status });
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expect(reply.status).toBeLessThan(500);
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.body).not.toMatch(/^\s*at\s/m);
  expect(reply.body).not.toContain('node_modules');
}

/** The input named `name` on the page: its tag, for attribute checks. */
export function inputTag(body: string, name: string): string {
  const tag = new RegExp(`<input[^>]*name="${name}"[^>]*>`).exec(body)?.[0];
  if (!tag) throw new Error(`no input ${name} on the page`);
  return tag;
}

/** The field is marked as the one that failed: aria-invalid, its message named, the focus on it. */
export function expectFieldMarked(body: string, name: string, message: string | RegExp): void {
  const tag = inputTag(body, name);
  expect(tag).toContain('aria-invalid="true"');
  expect(tag).toContain('autofocus');
  const id = /id="([^"]+)"/.exec(tag)?.[1];
  expect(tag).toMatch(new RegExp(`aria-describedby="[^"]*${id}-error`));
  const block = new RegExp(`id="${id}-error"[^>]*>\\s*<p>([^<]*)</p>`).exec(body)?.[1] ?? '';
  expect(block.replace(/&#39;|&rsquo;/g, "'")).toMatch(message);
  // One field only has the focus.
  expect(body.match(/autofocus/g)).toHaveLength(1);
}

export function harness(get: () => { server: TestServer; smtp: MailServer }) {
  const url = (path: string) => `${get().server.url}${path}`;

  async function newPerson(name: string, options: { password?: boolean } = {}): Promise<Person> {
    const email = `${name}-${Math.random().toString(36).slice(2, 8)}@example.com`;
    const account = await get().server.deps.accounts.create({ email, ...(options.password === false ? {} : { password: PASSWORD }), emailVerified: true });
    return { id: account.id, email, password: options.password === false ? '' : PASSWORD };
  }

  /** `path` → sign-in → login page → password (or a code by email for a passwordless account); then `path`. */
  async function signIn(p: Person, path: string, agent = new UserAgent(get().server.url)): Promise<{ agent: UserAgent; page: Reply }> {
    const login = await agent.follow(url(path));
    expect(pageKind(login)).toBe('login');
    let landed: Reply;
    if (p.password) {
      landed = await submit(agent, login, '/login', { email: p.email, password: p.password });
    } else {
      const { page: codePage, code } = await requestSignInCode(agent, login, p.email, get().smtp);
      landed = await submit(agent, codePage, '/email-code/verify', { code });
    }
    // A sign-in lands on the centre's overview; the page asked for is one GET away.
    if (landed.url === url(path)) return { agent, page: landed };
    expect(new URL(landed.url).pathname.startsWith('/account/')).toBe(true);
    return { agent, page: await agent.get(url(path)) };
  }

  const ageAuthentication = (accountId: string, seconds: number) => ageAuthenticationOf(get().server, accountId, seconds);

  /** Every document of these collections (BSON, in _id order): equal bytes, nothing written. */
  async function snapshot(names: string[] = ['accounts']): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (const name of names) {
      for (const doc of await get().server.deps.db.collection(name).find({}).sort({ _id: 1 }).toArray()) parts.push(Buffer.from(mongo.BSON.serialize(doc)));
    }
    return Buffer.concat(parts);
  }

  /** A relying party with a secret (so it may introspect). */
  async function relyingParty(): Promise<oidc.Configuration> {
    const client = await get().server.deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
    return rpFor(get().server, client);
  }

  /** A sign-in at the relying party in `agent` (its own browser unless given); `offline` (default): with a refresh token. */
  async function tokensFor(rp: oidc.Configuration, p: Person, agent = new UserAgent(get().server.url), { offline = true } = {}): Promise<Tokens> {
    const scope = offline ? 'openid email offline_access' : 'openid email';
    const { tokens } = await signInForTokens(rp, agent, { email: p.email, password: p.password }, { scope, prompt: 'consent' });
    if (offline) expect(tokens.refresh_token).toBeTruthy();
    return tokens;
  }

  /** Whether the browser still has a single sign-on session (the account centre reads it on every request). */
  async function hasSession(agent: UserAgent): Promise<boolean> {
    const reply = await agent.get(url('/account/security'));
    if (reply.status === 200) return true;
    expect({ status: reply.status, location: reply.location }).toEqual({ status: 303, location: url('/account/sign-in?return=%2Faccount%2Fsecurity') });
    return false;
  }

  return { url, newPerson, signIn, ageAuthentication, expectFreshSignIn, snapshot, relyingParty, tokensFor, hasSession };
}
