import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { enrolAuthenticator } from '../support/admin-console.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, oauthError, redeem, rpFor, userinfoStatus } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { pageKind, submit } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField, signInThroughPages } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

/**
 * The account centre's pages (/account/*) over HTTP, each action checked from outside: a signed-out
 * session no longer gives single sign-on (prompt=none → login_required), a removed app's refresh
 * token is refused and its next sign-in asks for consent, a new name reaches userinfo, the download
 * holds the account and no secret. And every form refuses a missing or foreign CSRF token, bad
 * input and other people's sessions with a 4xx page, changing nothing.
 */

const PASSWORD = 'correct horse battery staple 7';
const FIREFOX_LINUX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const SAFARI_IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1';

/** A UserAgent that says which browser it is, as a real one does. */
class Browser extends UserAgent {
  constructor(
    baseUrl: string,
    private readonly userAgent: string,
  ) {
    super(baseUrl);
  }

  override request(url: string, init: RequestInit = {}): Promise<Reply> {
    const headers = new Headers(init.headers);
    headers.set('user-agent', this.userAgent);
    return super.request(url, { ...init, headers });
  }
}

interface Person {
  id: string;
  email: string;
  password: string;
}

function expectClientError(reply: Reply, status: number): void {
  expect(reply.status).toBe(status);
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.body).not.toMatch(/^\s*at\s/m);
  expect(reply.body).not.toContain('node_modules');
}

/** The page's messages: the error alert's and the notice's text. */
const alertText = (body: string) => /<div class="alert alert-error"[^>]*><p>([^<]*)<\/p>/.exec(body)?.[1];
const noticeText = (body: string) => /<div class="alert alert-info"[^>]*><p>([^<]*)<\/p>/.exec(body)?.[1];

describe('the account centre', () => {
  let server: TestServer;
  let notes: CreatedClient;
  let rp: oidc.Configuration;

  beforeAll(async () => {
    server = await startTestServer('account_centre');
    notes = await server.deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI], scopes: ['openid', 'email', 'profile', 'offline_access'], grantTypes: ['authorization_code', 'refresh_token'] });
    rp = await rpFor(server, notes);
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server?.close();
  });

  const url = (path: string) => `${server.url}${path}`;
  const accountClientName = () => `${server.config.productName} account`;

  let people = 0;
  async function newPerson(label: string, extra: { name?: string } = {}): Promise<Person> {
    people += 1;
    const email = `${label}-${people}@example.com`;
    const account = await server.deps.accounts.create({ email, password: PASSWORD, ...extra });
    return { id: account.id, email, password: PASSWORD };
  }

  /** Signs `p` in to the centre in `agent` (a new browser by default); returns the overview it lands on. */
  async function signIn(p: Person, agent: UserAgent = new Browser(server.url, FIREFOX_LINUX)): Promise<{ agent: UserAgent; overview: Reply }> {
    const login = await agent.follow(url('/account'));
    expect(pageKind(login)).toBe('login');
    const overview = await submit(agent, login, '/login', { email: p.email, password: p.password });
    expect(overview.status).toBe(200);
    expect(overview.url).toBe(url('/account/overview'));
    return { agent, overview };
  }

  /** An authorization with prompt=none for Notes from this browser: the parameters the app gets back. */
  async function silentAuthorization(agent: UserAgent): Promise<URLSearchParams> {
    const started = await authorizationRequest(rp, { prompt: 'none' });
    return callbackParams(await agent.follow(started.url.toString()));
  }

  /** Signs in to Notes in this browser (consenting when asked) and redeems the code; `seen` collects the pages. */
  async function notesTokens(agent: UserAgent, p: Person, seen: Reply[] = []): Promise<Tokens> {
    const started = await authorizationRequest(rp, { scope: 'openid email profile offline_access', prompt: 'consent' });
    const callback = await signInThroughPages(agent, started.url.toString(), p, { seen });
    return redeem(rp, started, callback);
  }

  const auditOf = async (accountId: string, action: string) => (await server.deps.audit.list({ actor: accountId, action }, { limit: 50 })).events;

  /** Every stored record of these collections, as bytes: equal means nothing was written. */
  const storedBytes = async (...names: string[]) => {
    const parts: Buffer[] = [];
    for (const name of names) {
      for (const doc of await server.deps.db.collection(name).find({}).sort({ _id: 1 }).toArray()) parts.push(Buffer.from(mongo.BSON.serialize(doc)));
    }
    return Buffer.concat(parts);
  };
  const accessRecords = () => storedBytes('accounts', collectionName('Session'), collectionName('Grant'), collectionName('RefreshToken'));

  /** Posts to `path` without, with an empty, another session's and a made-up CSRF token: each a 403 page. */
  async function expectCsrfRefused(agent: UserAgent, path: string, fields: Record<string, string>, foreignToken: string): Promise<void> {
    for (const [label, token] of [
      ['missing', undefined],
      ['empty', ''],
      ['another session', foreignToken],
      ['made up', 'A'.repeat(43)],
    ] as const) {
      const reply = await agent.post(url(path), token === undefined ? fields : { ...fields, csrf: token });
      expect({ path, label, status: reply.status }).toEqual({ path, label, status: 403 });
      expectClientError(reply, 403);
    }
  }

  describe('overview', () => {
    it('/account goes to the overview: name, email (not verified), sign-in methods and the last sign-ins with app, device and IP', async () => {
      const p = await newPerson('overview', { name: 'Grace Hopper' });
      // A wrong password first (another browser), then the right one.
      const stranger = new Browser(server.url, SAFARI_IPHONE);
      const login = await stranger.follow(url('/account'));
      const refused = await submit(stranger, login, '/login', { email: p.email, password: 'not the password at all' });
      expect(refused.status).toBe(401);

      const home = await new UserAgent(server.url).get(url('/account'));
      expect(home.status).toBe(303);
      expect(home.location).toBe(url('/account/overview'));

      const { overview } = await signIn(p);
      expect(overview.headers.get('cache-control')).toContain('no-store');
      expect(overview.body).toContain('<h1 class="card-title">Hello, Grace Hopper</h1>');
      expect(overview.body).toContain(p.email);
      expect(overview.body).toMatch(/<dt>Email<\/dt>[\s\S]*?Not verified/);
      expect(overview.body).toMatch(/<dt>Password<\/dt><dd><span class="state-pill state-pill-on">Set<\/span>/);
      expect(overview.body).toMatch(/<dt>Authenticator app<\/dt><dd><span class="state-pill">Off<\/span>/);
      expect(overview.body).toContain('aria-current="page">Overview</a>');

      const items = [...overview.body.matchAll(/<li class="item">([\s\S]*?)<\/li>/g)].map((m) => m[1] ?? '');
      expect(items).toHaveLength(2);
      // Newest first: this sign-in, through the centre, from Firefox on Linux; then the refusal from the iPhone.
      expect(items[0]).toMatch(/Password<\/span><span class="state-pill state-pill-on">Accepted/);
      expect(items[0]).toContain(accountClientName());
      expect(items[0]).toContain('Firefox on Linux');
      expect(items[0]).toContain('IP 127.0.0.1');
      expect(items[0]).toMatch(/<time datetime="\d{4}-\d\d-\d\dT[^"]+Z">\d{1,2} \w{3,4} \d{4}, \d\d:\d\d UTC<\/time>/);
      expect(items[1]).toMatch(/Password<\/span><span class="state-pill state-pill-warn">Wrong password/);
      expect(items[1]).toContain('Safari on iOS');
    });

    it('lists at most the last 10 sign-in steps, and none of the other events', async () => {
      const p = await newPerson('busy');
      const self = { type: 'account' as const, id: p.id, label: p.email };
      for (let i = 0; i < 14; i += 1) {
        await server.deps.audit.record({ action: i % 2 ? 'mfa.totp' : 'sign_in.password', outcome: 'success', actor: self, target: self, clientId: notes.clientId, ip: `198.51.100.${i}` });
        await server.deps.audit.record({ action: 'token.issued', outcome: 'success', actor: { type: 'client', id: notes.clientId }, target: self, clientId: notes.clientId });
      }
      const { overview } = await signIn(p);
      const items = [...overview.body.matchAll(/<li class="item">([\s\S]*?)<\/li>/g)].map((m) => m[1] ?? '');
      expect(items).toHaveLength(10);
      expect(items[0]).toContain('IP 127.0.0.1');
      expect(items[1]).toContain('IP 198.51.100.13');
      expect(items[1]).toContain('Authenticator app code');
      expect(items[1]).toContain('Notes');
      expect(items[9]).toContain('IP 198.51.100.5');
    });
  });

  describe('profile', () => {
    it('saves a trimmed name (post/redirect/get, audited), which apps then read as `name` from userinfo; blank removes it', async () => {
      const p = await newPerson('profile');
      const { agent } = await signIn(p);
      const page = await agent.get(url('/account/profile'));
      expect(page.status).toBe(200);
      expect(page.body).toContain('<label for="name">Name</label>');

      const posted = await agent.post(url('/account/profile'), { csrf: formField(page.body, 'csrf'), name: '  Ada Lovelace  ' });
      expect(posted.status).toBe(303);
      expect(posted.location).toBe(url('/account/profile?saved=saved'));
      const saved = await agent.get(posted.location ?? '');
      expect(noticeText(saved.body)).toContain('Your name is saved');
      expect(saved.body).toContain('value="Ada Lovelace"');
      expect((await server.deps.accounts.findById(p.id))?.name).toBe('Ada Lovelace');
      const [event] = await auditOf(p.id, 'user.profile_updated');
      expect(event).toMatchObject({ outcome: 'success', target: { id: p.id }, details: { fields: ['name'], nameRemoved: false } });
      expect(JSON.stringify(event)).not.toContain('Lovelace');

      // An app with the profile scope reads it (the same browser: single sign-on, then consent).
      const tokens = await notesTokens(agent, p);
      const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, p.id);
      expect(userinfo.name).toBe('Ada Lovelace');

      const removed = await submit(agent, saved, '/account/profile', { name: '   ' });
      expect(removed.url).toBe(url('/account/profile?saved=removed'));
      expect((await server.deps.accounts.findById(p.id))?.name).toBeUndefined();
      expect((await oidc.fetchUserInfo(rp, tokens.access_token, p.id)).name).toBeUndefined();
    });

    it('refuses control characters and a name too long (400, the field marked), and a missing or foreign CSRF token (403): nothing changes', async () => {
      const p = await newPerson('profile-bad', { name: 'Before' });
      const other = await newPerson('profile-other');
      const { agent } = await signIn(p);
      const foreignToken = formField((await signIn(other)).overview.body, 'csrf');
      const page = await agent.get(url('/account/profile'));
      const before = await storedBytes('accounts');

      for (const [name, message] of [
        ['Line\nbreak', 'cannot contain line breaks'],
        ['Tab\there', 'cannot contain line breaks'],
        ['Nul\u0000', 'cannot contain line breaks'],
        ['x'.repeat(101), 'at most 100 characters'],
      ] as const) {
        const reply = await submit(agent, page, '/account/profile', { name });
        expectClientError(reply, 400);
        const input = /<input[^>]*id="name"[^>]*>/.exec(reply.body)?.[0] ?? '';
        expect(input).toContain('aria-invalid="true"');
        expect(input).toContain('aria-describedby="name-error name-hint"');
        expect(input).toMatch(/autofocus/);
        expect(reply.body).toMatch(new RegExp(`<p class="field-error" id="name-error">[^<]*${message}`));
      }
      await expectCsrfRefused(agent, '/account/profile', { name: 'Changed' }, foreignToken);
      expect((await storedBytes('accounts')).equals(before)).toBe(true);
      expect((await auditOf(p.id, 'user.profile_updated')).every((event) => event.outcome === 'failure')).toBe(true);
    });
  });

  describe('profile details (standard claims)', () => {
    const details = (extra: Record<string, string> = {}) => ({
      givenName: 'Ada',
      familyName: 'Lovelace',
      middleName: '',
      nickname: 'Countess',
      preferredUsername: 'ada',
      picture: 'https://img.example.test/ada.png',
      website: 'https://ada.example.test/',
      profile: '',
      gender: '',
      birthdate: '1815-12-10',
      zoneinfo: 'Europe/London',
      locale: 'en-gb',
      ...extra,
    });

    it('saves the details (audited by claim name), which apps read from userinfo with the profile scope; empty removes one', async () => {
      const p = await newPerson('details');
      const { agent } = await signIn(p);
      const page = await agent.get(url('/account/profile'));
      expect(page.body).toContain('action="/account/profile/details"');
      // No phone or address fields where the deployment does not store them.
      expect(page.body).not.toContain('name="phoneNumber"');
      expect(page.body).not.toContain('name="address.locality"');
      const saved = await submit(agent, page, '/account/profile/details', details());
      expect(saved.url).toBe(url('/account/profile?saved=details'));
      expect(noticeText(saved.body)).toContain('Your details are saved');
      expect(saved.body).toMatch(/id="d-locale"[^>]*value="en-GB"/);
      const [event] = await auditOf(p.id, 'user.profile_updated');
      expect(event).toMatchObject({ outcome: 'success', details: { fields: expect.arrayContaining(['given_name', 'picture', 'locale']) } });
      expect(JSON.stringify(event)).not.toContain('Countess');

      const tokens = await notesTokens(agent, p);
      const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, p.id);
      expect(userinfo).toMatchObject({ given_name: 'Ada', family_name: 'Lovelace', nickname: 'Countess', preferred_username: 'ada', picture: 'https://img.example.test/ada.png', zoneinfo: 'Europe/London', locale: 'en-GB', birthdate: '1815-12-10' });
      expect(userinfo.updated_at).toBe(Math.floor((await server.deps.accounts.findById(p.id))!.profileUpdatedAt.getTime() / 1000));
      expect(userinfo).not.toHaveProperty('middle_name');

      const cleared = await submit(agent, saved, '/account/profile/details', details({ nickname: '' }));
      expect(cleared.url).toBe(url('/account/profile?saved=details'));
      expect((await oidc.fetchUserInfo(rp, tokens.access_token, p.id)).nickname).toBeUndefined();
    });

    it('refuses bad values with 400, each message beside its field, the typed values shown again; nothing is stored', async () => {
      const p = await newPerson('details-bad');
      const { agent } = await signIn(p);
      const page = await agent.get(url('/account/profile'));
      const before = await storedBytes('accounts');
      const reply = await submit(agent, page, '/account/profile/details', details({
        picture: 'javascript:alert(1)',
        website: 'http://ada.example.test/',
        zoneinfo: 'Atlantis/Capital',
        locale: 'english please',
        birthdate: '1815-13-01',
        nickname: 'n'.repeat(101),
        givenName: '<b>Ada</b>',
      }));
      expectClientError(reply, 400);
      expect(alertText(reply.body)).toContain('Your details were not saved');
      for (const [id, message] of [
        ['d-picture', 'must be an https URL'],
        ['d-website', 'must be an https URL'],
        ['d-zoneinfo', 'time zone'],
        ['d-locale', 'language tag'],
        ['d-birthdate', 'YYYY-MM-DD'],
        ['d-nickname', 'at most 100 characters'],
      ] as const) {
        expect(reply.body).toMatch(new RegExp(`<input[^>]*id="${id}"[^>]*aria-invalid="true"`));
        expect(reply.body).toMatch(new RegExp(`<p class="field-error" id="${id}-error">[^<]*${message}`));
      }
      // What was typed comes back escaped, never as markup.
      expect(reply.body).toContain('value="&lt;b&gt;Ada&lt;/b&gt;"');
      expect((await storedBytes('accounts')).equals(before)).toBe(true);
      expect((await auditOf(p.id, 'user.profile_updated'))[0]).toMatchObject({ outcome: 'failure', reason: 'profile_invalid' });
      await expectCsrfRefused(agent, '/account/profile/details', details(), 'not-a-token');
      expect((await storedBytes('accounts')).equals(before)).toBe(true);
    });
  });

  describe('sessions', () => {
    it('lists every session (browser, IP, times, apps; this one marked); signing one out ends its single sign-on', async () => {
      const p = await newPerson('sessions');
      const { agent: laptop } = await signIn(p);
      const phone = new Browser(server.url, SAFARI_IPHONE);
      await signIn(p, phone);
      // The phone also signs in to Notes: the session lists it.
      await notesTokens(phone, p);

      const page = await laptop.get(url('/account/sessions'));
      expect(page.status).toBe(200);
      const items = [...page.body.matchAll(/<li class="item item-with-action[^"]*">([\s\S]*?)<\/li>/g)].map((m) => m[1] ?? '');
      expect(items).toHaveLength(2);
      // This browser first, marked; its Sign out is the centre's sign-out.
      expect(items[0]).toMatch(/Firefox on Linux<\/span><span class="state-pill state-pill-on">This browser/);
      expect(items[0]).toContain('action="/account/sign-out"');
      expect(items[1]).toContain('Safari on iOS');
      expect(items[1]).not.toContain('This browser');
      expect(items[1]).toContain('<dt>IP address</dt><dd>127.0.0.1</dd>');
      expect(items[1]).toMatch(/<dt>Apps<\/dt><dd>[^<]*Notes/);
      expect(items[1]).toMatch(/<dt>Last used<\/dt><dd><time datetime=/);
      const phoneUid = /name="uid" value="([^"]+)"/.exec(items[1] ?? '')?.[1] ?? '';
      expect(phoneUid).not.toBe('');
      expect((await silentAuthorization(phone)).get('code')).toBeTruthy();

      const ended = await submit(laptop, page, '/account/sessions/end', { uid: phoneUid });
      expect(ended.url).toBe(url('/account/sessions?done=ended'));
      expect(noticeText(ended.body)).toContain('That session is signed out');
      expect(ended.body).not.toContain('Safari on iOS');

      // From the outside: the phone has no single sign-on any more, and the centre asks it to sign in.
      expect((await silentAuthorization(phone)).get('error')).toBe('login_required');
      const phoneCentre = await phone.get(url('/account/overview'));
      expect(phoneCentre.status).toBe(303);
      expect(phoneCentre.location).toBe(url('/account/sign-in?return=%2Faccount%2Foverview'));
      // The laptop is still signed in.
      expect((await laptop.get(url('/account/overview'))).status).toBe(200);
      const [event] = await auditOf(p.id, 'session.revoked');
      expect(event).toMatchObject({ outcome: 'success', details: { uid: phoneUid } });
    });

    it('"Sign out all other sessions" ends every other session and keeps this one', async () => {
      const p = await newPerson('others');
      const { agent: keep } = await signIn(p);
      const second = (await signIn(p)).agent;
      const third = (await signIn(p, new Browser(server.url, SAFARI_IPHONE))).agent;
      // Each could get a code silently from Notes (consented once, single sign-on).
      for (const agent of [keep, second, third]) await notesTokens(agent, p);

      const page = await keep.get(url('/account/sessions'));
      const done = await submit(keep, page, '/account/sessions/end-others');
      expect(done.url).toBe(url('/account/sessions?done=others'));
      expect(noticeText(done.body)).toContain('Every other session is signed out');
      expect([...done.body.matchAll(/<li class="item item-with-action/g)]).toHaveLength(1);
      expect(done.body).not.toContain('Sign out all other sessions');

      expect((await silentAuthorization(second)).get('error')).toBe('login_required');
      expect((await silentAuthorization(third)).get('error')).toBe('login_required');
      expect((await silentAuthorization(keep)).get('code')).toBeTruthy();
      expect((await keep.get(url('/account/overview'))).status).toBe(200);
      const [event] = await auditOf(p.id, 'session.revoked');
      expect(event).toMatchObject({ outcome: 'success', details: { ended: 2, scope: 'all_others' } });
      expect(event?.details?.uids).toHaveLength(2);

      // Nothing left to end (an older tab's form): said so.
      const again = await keep.post(url('/account/sessions/end-others'), { csrf: formField(done.body, 'csrf') });
      expect(again.location).toBe(url('/account/sessions?done=none'));
      expect(noticeText((await keep.get(again.location ?? '')).body)).toContain('no other sessions');
    });

    it("refuses an unknown uid, another account's session (404, not ended), a malformed uid (400) and bad CSRF (403)", async () => {
      const p = await newPerson('sessions-bad');
      const other = await newPerson('sessions-victim');
      const { agent } = await signIn(p);
      const second = (await signIn(p)).agent;
      const { agent: victim, overview: victimPage } = await signIn(other);
      await notesTokens(victim, other);
      const [victimSession] = await server.deps.access.listSessions(other.id);
      const secondSession = (await server.deps.access.listSessions(p.id))[0];
      expect(victimSession).toBeDefined();
      const page = await agent.get(url('/account/sessions'));
      const before = await accessRecords();

      const unknown = await submit(agent, page, '/account/sessions/end', { uid: 'NoSuchSession123' });
      expectClientError(unknown, 404);
      expect(alertText(unknown.body)).toContain('already signed out, or it is not one of yours');
      const foreign = await submit(agent, page, '/account/sessions/end', { uid: victimSession!.uid });
      expectClientError(foreign, 404);
      for (const uid of ['', 'has spaces in it', 'x'.repeat(65), '<script>']) {
        const malformed = await submit(agent, page, '/account/sessions/end', { uid });
        expectClientError(malformed, 400);
        expect(malformed.body).not.toContain('<script>');
      }
      await expectCsrfRefused(agent, '/account/sessions/end', { uid: secondSession!.uid }, formField(victimPage.body, 'csrf'));
      await expectCsrfRefused(agent, '/account/sessions/end-others', {}, formField(victimPage.body, 'csrf'));

      expect((await accessRecords()).equals(before)).toBe(true);
      expect((await silentAuthorization(victim)).get('code')).toBeTruthy();
      expect((await second.get(url('/account/overview'))).status).toBe(200);
      expect((await auditOf(p.id, 'session.revoked')).map((e) => e.outcome)).toEqual(['failure', 'failure']);
    });

    it("signing out this browser from the list is the centre's sign-out", async () => {
      const p = await newPerson('sessions-self');
      const { agent } = await signIn(p);
      const page = await agent.get(url('/account/sessions'));
      const uid = (await server.deps.access.listSessions(p.id))[0]?.uid ?? '';
      const reply = await agent.post(url('/account/sessions/end'), { csrf: formField(page.body, 'csrf'), uid });
      expect(reply.status).toBe(303);
      const target = new URL(reply.location ?? '');
      expect(target.pathname).toBe('/session/end');
      expect(target.searchParams.get('client_id')).toBe('account-console');
    });
  });

  describe('connected apps', () => {
    it('lists each app once with its permissions in words; "Remove access" ends its tokens and asks for consent again', async () => {
      const p = await newPerson('apps');
      const { agent } = await signIn(p);
      const tokens = await notesTokens(agent, p);
      // A second grant from another browser: still one app.
      await notesTokens((await signIn(p)).agent, p);
      expect(tokens.refresh_token).toBeTruthy();

      const page = await agent.get(url('/account/apps'));
      expect(page.status).toBe(200);
      const items = [...page.body.matchAll(/<li class="item item-with-action">([\s\S]*?)<\/form><\/li>/g)].map((m) => m[1] ?? '');
      expect(items).toHaveLength(1);
      expect(items[0]).toContain('<p class="item-title">Notes</p>');
      for (const words of ['Know who you are when you sign in', 'See your email address', 'See your name and basic profile', 'Stay connected to your account']) expect(items[0]).toContain(words);
      expect(items[0]).toMatch(/Access since <time datetime=/);
      // The centre itself (first-party) is never listed.
      expect(page.body).not.toContain(accountClientName());

      // Still working before: a refresh.
      const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
      const refreshToken = refreshed.refresh_token ?? tokens.refresh_token!;

      const removed = await submit(agent, page, '/account/apps/revoke', { clientId: notes.clientId });
      expect(removed.url).toBe(url('/account/apps?removed=1'));
      expect(noticeText(removed.body)).toContain('Access removed');
      expect(removed.body).toContain('No apps have access to your account.');

      expect(await oauthError(oidc.refreshTokenGrant(rp, refreshToken))).toBe('invalid_grant');
      expect((await userinfoStatus(rp, refreshed.access_token)).status).toBe(401);
      const seen: Reply[] = [];
      await notesTokens(agent, p, seen);
      expect(seen.some((reply) => pageKind(reply) === 'consent')).toBe(true);
      const [event] = await auditOf(p.id, 'grant.revoked');
      expect(event).toMatchObject({ outcome: 'success', clientId: notes.clientId, details: { clientId: notes.clientId } });
    });

    it('refuses an unknown app, the centre itself (404), a malformed id (400) and bad CSRF (403): nothing revoked', async () => {
      const p = await newPerson('apps-bad');
      const other = await newPerson('apps-other');
      const { agent } = await signIn(p);
      const tokens = await notesTokens(agent, p);
      const foreignToken = formField((await signIn(other)).overview.body, 'csrf');
      const page = await agent.get(url('/account/apps'));
      const before = await accessRecords();

      for (const clientId of ['no-such-app', 'account-console', 'admin-console']) {
        const reply = await submit(agent, page, '/account/apps/revoke', { clientId });
        expectClientError(reply, 404);
        expect(alertText(reply.body)).toContain('has no access to your account');
        expect(reply.body).toContain('<p class="item-title">Notes</p>');
      }
      for (const clientId of ['', 'x'.repeat(201), 'with space']) expectClientError(await submit(agent, page, '/account/apps/revoke', { clientId }), 400);
      await expectCsrfRefused(agent, '/account/apps/revoke', { clientId: notes.clientId }, foreignToken);

      expect((await accessRecords()).equals(before)).toBe(true);
      expect((await oidc.refreshTokenGrant(rp, tokens.refresh_token!)).access_token).toBeTruthy();
      expect((await agent.get(url('/account/overview'))).status).toBe(200);
    });
  });

  describe('download my data', () => {
    /** Moves the authentication of every session of the account `seconds` back. */
    async function ageAuthentication(accountId: string, seconds: number): Promise<void> {
      const sessions = server.deps.db.collection<{ _id: string; payload: string; accountId?: string }>(collectionName('Session'));
      for (const record of await sessions.find({ accountId }).toArray()) {
        const payload = JSON.parse(record.payload) as { loginTs: number };
        await sessions.updateOne({ _id: record._id }, { $set: { payload: JSON.stringify({ ...payload, loginTs: Math.floor(Date.now() / 1000) - seconds }) } });
      }
    }

    it('a JSON attachment with the account, its sessions, apps and audit events, and no password hash or authenticator secret', async () => {
      const p = await newPerson('export', { name: 'Katherine Johnson' });
      const { agent } = await signIn(p);
      await notesTokens(agent, p);
      const authenticator = await enrolAuthenticator(server, { id: p.id, email: p.email });
      const stored = await server.deps.db.collection('accounts').findOne({ _id: p.id as never });
      const hash = String(stored?.passwordHash);
      expect(hash).toMatch(/^\$argon2id\$/);

      const page = await agent.get(url('/account/data'));
      expect(page.status).toBe(200);
      expect(page.body).toContain('Download my data');
      const reply = await agent.post(url('/account/data'), { csrf: formField(page.body, 'csrf') });
      expect(reply.status).toBe(200);
      expect(reply.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(reply.headers.get('content-disposition')).toMatch(/^attachment; filename="account-data-\d{4}-\d\d-\d\d\.json"$/);
      expect(reply.headers.get('cache-control')).toContain('no-store');

      const data = JSON.parse(reply.body) as {
        account: { id: string; email: string; name: string; signIn: { password: boolean; authenticatorApp: boolean; recoveryCodesLeft: number } };
        sessions: { current: boolean; device: string; ip: string }[];
        connectedApps: { clientId: string; name: string; scopes: string[] }[];
        auditEvents: { action: string; by: string }[];
      };
      expect(data.account).toMatchObject({ id: p.id, email: p.email, name: 'Katherine Johnson', signIn: { password: true, authenticatorApp: true, recoveryCodesLeft: 10 } });
      expect(data.sessions).toEqual([expect.objectContaining({ current: true, device: 'Firefox on Linux', ip: '127.0.0.1' })]);
      expect(data.connectedApps).toEqual([expect.objectContaining({ clientId: notes.clientId, name: 'Notes', scopes: expect.arrayContaining(['openid', 'email', 'offline_access']) })]);
      const actions = data.auditEvents.map((event) => event.action);
      expect(actions).toEqual(expect.arrayContaining(['sign_in.password', 'consent.granted']));
      expect(data.auditEvents.find((event) => event.action === 'sign_in.password')?.by).toBe('you');

      for (const secret of [hash, authenticator.secret, ...authenticator.recoveryCodes, 'passwordHash', 'secretSealed', 'recoveryCodes"']) expect(reply.body).not.toContain(secret);
      const [event] = await auditOf(p.id, 'user.data_exported');
      expect(event).toMatchObject({ outcome: 'success', details: { apps: 1, sessions: 1 } });
    });

    it('with a stale authentication: sent to sign in again (max_age=0), then back, and the download works; bad CSRF is 403', async () => {
      const p = await newPerson('export-stale');
      const other = await newPerson('export-other');
      const { agent } = await signIn(p);
      const foreignToken = formField((await signIn(other)).overview.body, 'csrf');
      const fresh = await agent.get(url('/account/data'));
      await expectCsrfRefused(agent, '/account/data', {}, foreignToken);

      await ageAuthentication(p.id, server.config.recentAuthMaxAgeSeconds + 60);
      // A stale POST downloads nothing and asks again.
      const stalePost = await agent.post(url('/account/data'), { csrf: formField(fresh.body, 'csrf') });
      expect(stalePost.status).toBe(303);
      expect(new URL(stalePost.location ?? '').searchParams.get('return')).toBe('/account/data?signed-in-again=1');
      expect(await auditOf(p.id, 'user.data_exported')).toEqual([]);

      const refused = await agent.get(url('/account/data'));
      expect(refused.status).toBe(303);
      const signInUrl = new URL(refused.location ?? '');
      expect(signInUrl.pathname).toBe('/account/sign-in');
      expect(signInUrl.searchParams.get('fresh')).toBe('1');
      expect(signInUrl.searchParams.get('return')).toBe('/account/data');
      const start = await agent.get(signInUrl.toString());
      const auth = new URL(start.location ?? '');
      expect(auth.searchParams.get('max_age')).toBe('0');
      expect(auth.searchParams.get('login_hint')).toBe(p.email);
      const login = await agent.follow(auth.toString());
      expect(pageKind(login)).toBe('login');
      const back = await submit(agent, login, '/login', { email: p.email, password: p.password });
      expect(back.url).toBe(url('/account/data'));
      const download = await agent.post(formAction(back.body, '/account/data'), { csrf: formField(back.body, 'csrf') });
      expect(download.status).toBe(200);
      expect(download.headers.get('content-disposition')).toMatch(/^attachment;/);
      expect((JSON.parse(download.body) as { account: { email: string } }).account.email).toBe(p.email);
    });
  });

  describe('signing out', () => {
    it('POST /account/sign-out: the provider asks once, ends the session, and lands on the signed-out page', async () => {
      const p = await newPerson('sign-out');
      const { agent, overview } = await signIn(p);
      await notesTokens(agent, p);
      expect(overview.body).toContain('action="/account/sign-out"');

      // Without its CSRF token: refused, still signed in.
      expectClientError(await agent.post(url('/account/sign-out'), {}), 403);
      expect((await agent.get(url('/account/overview'))).status).toBe(200);

      const posted = await agent.post(url('/account/sign-out'), { csrf: formField(overview.body, 'csrf') });
      expect(posted.status).toBe(303);
      const endSession = new URL(posted.location ?? '');
      expect(endSession.pathname).toBe('/session/end');
      expect(endSession.searchParams.get('client_id')).toBe('account-console');
      expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(url('/account/signed-out'));

      const confirm = await agent.get(endSession.toString());
      expect(confirm.status).toBe(200);
      expect(confirm.body).toContain('Yes, sign me out');
      const action = /<form method="post" action="([^"]+)"/.exec(confirm.body)?.[1] ?? '';
      const done = await agent.post(new URL(action.replace(/&amp;/g, '&'), server.url).toString(), { xsrf: formField(confirm.body, 'xsrf'), logout: 'yes' });
      expect(done.status).toBe(303);
      expect(done.location).toBe(url('/account/signed-out'));
      const signedOut = await agent.get(done.location ?? '');
      expect(signedOut.status).toBe(200);
      expect(signedOut.body).toContain('<h1 class="card-title">Signed out</h1>');
      expect(signedOut.body).toContain('href="/account/sign-in">Sign in again</a>');

      expect((await silentAuthorization(agent)).get('error')).toBe('login_required');
      expect((await agent.get(url('/account/overview'))).location).toBe(url('/account/sign-in?return=%2Faccount%2Foverview'));
      await server.deps.audit.flush();
      const ended = await server.deps.audit.list({ actor: p.id, action: 'session.ended' }, { limit: 5 });
      expect(ended.events).toHaveLength(1);

      // Signing out again (another tab): nothing to end, straight to the page.
      const again = await agent.post(url('/account/sign-out'), { csrf: 'whatever' });
      expect(again.status).toBe(303);
      expect(again.location).toBe(url('/account/signed-out'));
    });

    it('"No, stay signed in" on the provider\'s page lands on a page that says so', async () => {
      const p = await newPerson('stay');
      const { agent, overview } = await signIn(p);
      const posted = await agent.post(url('/account/sign-out'), { csrf: formField(overview.body, 'csrf') });
      const confirm = await agent.get(posted.location ?? '');
      const action = /<form method="post" action="([^"]+)"/.exec(confirm.body)?.[1] ?? '';
      const done = await agent.post(new URL(action.replace(/&amp;/g, '&'), server.url).toString(), { xsrf: formField(confirm.body, 'xsrf') });
      expect(done.location).toBe(url('/account/signed-out'));
      const page = await agent.get(done.location ?? '');
      expect(page.body).toContain("You're still signed in");
      expect(page.body).toContain('href="/account/overview"');
      expect((await agent.get(url('/account/overview'))).status).toBe(200);
    });
  });
});
