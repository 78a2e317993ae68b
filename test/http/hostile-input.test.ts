import { createHash } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { adminToken } from '../admin/api/api-client.js';
import { signInToConsole } from '../support/admin-console.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationUrlFor, pkcePair } from '../support/rp.js';
import { enrolOnAccountPage, pageKind, requestSignInCode, submit } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';
import { rawHttp, storeCookies } from './raw-client.js';
import type { RawReply } from './raw-client.js';

/**
 * Hostile input, table-driven, against every form and endpoint there is: the sign-in pages
 * (/interaction/:uid/*), the account pages (/account/*), the admin console (/admin/*, signed in
 * as an admin), the management API (/api/admin/v1/*, with a token) and the provider's endpoints.
 *
 * Every row must be answered with a 4xx: a rendered HTML page for browser routes, OAuth error
 * JSON from the provider, an RFC 9457 problem from the API; never a 5xx or a stack trace; and
 * nothing may be stored half-way: each target names the state it could change (counted after
 * each row and compared with what the row before left), and every group compares the size of
 * every collection and every account, client and registration token before and after.
 *
 * test/interactions/bad-input.test.ts already covers POST /interaction/:uid/login (content
 * types, size limits, duplicates, NUL, long email, bad percent-encoding, csrf), GET /auth and
 * POST /token in depth: those rows are not repeated here.
 *
 * Requests go through node:http (raw-client.ts) so that path tricks reach the server as written
 * (fetch would resolve `..` and `%2e%2e` segments first).
 */

const ADMIN = { email: 'hostile-admin@example.test', password: 'correct horse battery staple' };
/** Signs in only to reach the consent page and the account pages. */
const PERSON = { email: 'hostile-person@example.test', password: 'a long enough password 42', name: 'Hostile Person' };
/** Has an authenticator app: the second-factor pages. */
const TOTP_PERSON = { email: 'hostile-totp@example.test', password: 'another long password 42', name: 'Totp Person' };
/** Asks for sign-in codes by email. */
const CODE_PERSON = { email: 'hostile-code@example.test', name: 'Code Person' };
/** Must choose a new password at the next sign-in. */
const RESET_PERSON = { email: 'hostile-reset@example.test', password: 'a password to be replaced 42', name: 'Reset Person' };

const WRONG_CSRF = 'not-the-csrf-token';
const MIB = 1024 * 1024;

type Kind = 'page' | 'oauth' | 'api';

interface Sent {
  method: string;
  target: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/** A cookie jar by name (our cookies have distinct names), fed by a UserAgent's replies. */
class JarAgent extends UserAgent {
  readonly jar = new Map<string, string>();

  override async request(url: string, init: RequestInit = {}): Promise<Reply> {
    const reply = await super.request(url, init);
    storeCookies(this.jar, reply.headers.getSetCookie());
    return reply;
  }

  cookie(): string {
    return [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/** Every hidden input of the first form on a page posting to `actionEnd` (csrf, sealed state, …). */
function hiddenFields(html: string, actionEnd: string): Record<string, string> {
  const form = new RegExp(`<form[^>]*action="[^"]*${actionEnd.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"[^>]*>([\\s\\S]*?)</form>`).exec(html)?.[1];
  if (form === undefined) throw new Error(`no form posting to *${actionEnd}`);
  const fields: Record<string, string> = {};
  for (const input of form.match(/<input[^>]*type="hidden"[^>]*>/g) ?? []) {
    const name = /name="([^"]*)"/.exec(input)?.[1];
    const value = /value="([^"]*)"/.exec(input)?.[1] ?? '';
    if (name) fields[name] = value.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  }
  return fields;
}

// ---------------------------------------------------------------------------------------------
// What every answer must look like

function expectNoLeak(body: string): void {
  expect(body).not.toMatch(/^\s*at\s/m);
  expect(body).not.toMatch(/\bat [^\n]*\(?[^\n]*\.[jt]s:\d+:\d+\)?/);
  expect(body).not.toContain('/src/');
  expect(body).not.toContain('node_modules');
}

function expectRefusal(kind: Kind, reply: RawReply): void {
  const type = String(reply.headers['content-type'] ?? '');
  // One object, so that a failure shows status, type and the start of the body together.
  const seen = { status: reply.status, type, body: reply.body.slice(0, 300) };
  expect({ ...seen, is4xx: reply.status >= 400 && reply.status < 500 }).toEqual({ ...seen, is4xx: true });
  expectNoLeak(reply.body);
  if (kind === 'page') {
    expect({ ...seen, html: type.startsWith('text/html') }).toEqual({ ...seen, html: true });
    expect(reply.body).toContain('<!DOCTYPE html>');
    expect(reply.body).toMatch(/<header class="(site|admin|account)-header"/);
  } else if (kind === 'oauth') {
    expect({ ...seen, json: type.startsWith('application/json') }).toEqual({ ...seen, json: true });
    expect(typeof (JSON.parse(reply.body) as { error?: unknown }).error).toBe('string');
  } else {
    expect({ ...seen, problem: type.startsWith('application/problem+json') }).toEqual({ ...seen, problem: true });
    const problem = JSON.parse(reply.body) as { status?: unknown; code?: unknown };
    expect(problem.status).toBe(reply.status);
    expect(typeof problem.code).toBe('string');
  }
  // The server runs in this process: nothing a request sent reached Object.prototype.
  expect(Object.prototype).not.toHaveProperty('polluted');
  expect(Object.prototype).not.toHaveProperty('isAdmin');
}

// ---------------------------------------------------------------------------------------------
// Form bodies (our pages and the provider's form endpoints)

type Pairs = [string, string][];
type Fields = Record<string, string>;

const encode = (pairs: Pairs): string => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
const pairsOf = (fields: Fields): Pairs => Object.entries(fields);

type FieldMutation = 'long' | 'control' | 'array' | 'object' | 'twice';
const ALL_FIELD_MUTATIONS: FieldMutation[] = ['long', 'control', 'array', 'object', 'twice'];


interface FieldSpec {
  name: string;
  /** The corruptions this field must be refused with (default: all). */
  refuse?: FieldMutation[];
}

interface FormTarget {
  label: string;
  kind: Kind;
  method?: string;
  path: () => string;
  cookie?: () => string;
  headers?: () => Record<string, string>;
  /** Fields that pass the csrf check and would be accepted as they are (or refused only for a reason the rows do not depend on). */
  valid: () => Fields;
  /** Fields that are refused for a reason of their own (wrong password, invalid value): the base of rows that only add junk. Default: valid() with a wrong csrf. */
  refused?: () => Fields;
  inputs: FieldSpec[];
  /** Rows left out here because another test covers them (named there). */
  skip?: string[];
  /** The state this endpoint could change, as a comparable value. */
  state: () => Promise<unknown>;
}

const HUGE_VALUE = 'h'.repeat(MIB);

/** Rows that only exercise the form parser's content-type and size checks. */
const SAME_PARSER = ['json', 'json-as-form', 'text-plain', 'multipart', 'xml', 'no-type', 'charset', 'huge'];

/**
 * Hostile values this suite found accepted and stored when it was written, refused since (in the
 * table like every other row, and once more each below, on every way in).
 */
const FORMER_FINDINGS = {
  /** A redirect URI with NUL and control characters (RFC 3986 allows neither): src/clients/redirect-uri.ts. */
  redirectUriControls: 'redirectUris: NUL and control characters',
  /** Dynamic registration with 500 redirect URIs (the management API takes 20): the registration policy. */
  manyRedirectUris: 'redirect_uris: 500 items of 100 characters',
};

function formRows(target: FormTarget): [string, () => Sent][] {
  const rows: [string, () => Sent][] = [];
  // `null`: no Content-Type header at all.
  const form = (pairs: Pairs | string | Buffer, contentType: string | null = 'application/x-www-form-urlencoded'): Sent => ({
    method: target.method ?? 'POST',
    target: target.path(),
    headers: {
      accept: target.kind === 'page' ? 'text/html' : 'application/json',
      ...(target.cookie ? { cookie: target.cookie() } : {}),
      ...target.headers?.(),
      ...(contentType ? { 'content-type': contentType } : {}),
    },
    body: typeof pairs === 'string' || Buffer.isBuffer(pairs) ? pairs : encode(pairs),
  });
  const refusedBase = (): Fields => target.refused?.() ?? { ...target.valid(), ...('csrf' in target.valid() ? { csrf: WRONG_CSRF } : {}) };
  const add = (id: string, label: string, make: () => Sent) => {
    if (!target.skip?.includes(id)) rows.push([label, make]);
  };

  for (const { name, refuse = ALL_FIELD_MUTATIONS } of target.inputs) {
    const replaced = (value: string) => pairsOf({ ...target.valid(), [name]: value });
    const without = () => pairsOf(target.valid()).filter(([k]) => k !== name);
    const original = () => target.valid()[name] ?? '';
    if (refuse.includes('long')) add(`long:${name}`, `${name}: 5,000 characters`, () => form(replaced('x'.repeat(5000))));
    if (refuse.includes('control')) add(`control:${name}`, `${name}: NUL and control characters`, () => form(replaced(`${original()}\u0000\u0001\u0008\u001b[2J\u007f\u202e`)));
    // NOTE: on our pages `f[]=…&f[]=…` is the duplicate-field refusal again ('twice'); the
    // provider's parser is another one, so the row is kept there.
    if (refuse.includes('array') && target.kind !== 'page') add(`array:${name}`, `${name} as an array (${name}[]=…&${name}[]=…)`, () => form([...without(), [`${name}[]`, original()], [`${name}[]`, original()]]));
    if (refuse.includes('object')) add(`object:${name}`, `${name} as an object (${name}[a]=…)`, () => form([...without(), [`${name}[a]`, original()]]));
    if (refuse.includes('twice')) add(`twice:${name}`, `${name} sent twice`, () => form([...pairsOf(target.valid()), [name, original()]]));
  }

  const garbleable = () => {
    const others = target.inputs.map((i) => i.name).filter((n) => n !== 'csrf');
    return others.length > 0 ? others : ['csrf'];
  };
  add('proto', '__proto__, constructor, hasOwnProperty and prototype paths as field names', () =>
    form([
      ...pairsOf(refusedBase()),
      ['__proto__', 'x'],
      ['__proto__[polluted]', '1'],
      ['constructor', 'x'],
      ['constructor[prototype][polluted]', '1'],
      ['hasOwnProperty', 'x'],
      ['toString', 'x'],
      ['valueOf', 'x'],
      ['isAdmin', 'true'],
    ]),
  );
  add('json', 'a JSON body', () => form(JSON.stringify(target.valid()), 'application/json'));
  add('json-as-form', 'a JSON body labelled as a form', () => form(JSON.stringify(target.valid())));
  add('text-plain', 'a text/plain body', () => form(encode(pairsOf(target.valid())), 'text/plain'));
  add('multipart', 'a multipart/form-data body', () => {
    const parts = Object.entries(target.valid()).map(([k, v]) => `--b0undary\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
    return form(`${parts.join('')}--b0undary--\r\n`, 'multipart/form-data; boundary=b0undary');
  });
  add('xml', 'an XML body', () => form('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><form><csrf>&e;</csrf></form>', 'application/xml'));
  add('no-type', 'a body without a content type', () => form(encode(pairsOf(target.valid())), null));
  add('charset', 'a form in UTF-16 (charset=utf-16le)', () => form(Buffer.from(encode(pairsOf(target.valid())), 'utf16le'), 'application/x-www-form-urlencoded; charset=utf-16le'));
  add('percent', 'invalid percent-encoding in the values (%E0%A4%A, %zz, lone %)', () => {
    const names = new Set(garbleable());
    const text = Object.entries(target.valid())
      .map(([k, v]) => `${encodeURIComponent(k)}=${names.has(k) ? '%E0%A4%A%zz%' : encodeURIComponent(v)}`)
      .join('&');
    return form(text);
  });
  add('utf8', 'invalid UTF-8 bytes in the values', () => {
    const names = new Set(garbleable());
    const parts = Object.entries(target.valid()).map(([k, v]) =>
      names.has(k) ? Buffer.concat([Buffer.from(`${encodeURIComponent(k)}=`), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80])]) : Buffer.from(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`),
    );
    return form(Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('&'), p]))));
  });
  add('huge', 'a 1 MiB body', () => form([...pairsOf(target.valid()), ['padding', HUGE_VALUE]]));
  add('empty', 'an empty form', () => form(''));
  return rows;
}

// ---------------------------------------------------------------------------------------------
// JSON bodies (the management API, dynamic registration)

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

interface JsonTarget {
  label: string;
  kind: Kind;
  method: string;
  path: () => string;
  headers: () => Record<string, string>;
  /** A body that would be accepted. */
  valid: () => Record<string, JsonValue>;
  /** Members to corrupt: a string member, or a list of strings. */
  members: { name: string; type: 'string' | 'string[]' }[];
  /** Row labels left out. */
  skip?: string[];
  state: () => Promise<unknown>;
}

function jsonRows(target: JsonTarget): [string, () => Sent][] {
  // `null`: no Content-Type header at all.
  const send = (body: string | Buffer | undefined, contentType: string | null = 'application/json'): Sent => ({
    method: target.method,
    target: target.path(),
    headers: { accept: 'application/json', ...target.headers(), ...(contentType ? { 'content-type': contentType } : {}) },
    ...(body === undefined ? {} : { body }),
  });
  const withMember = (name: string, value: JsonValue) => send(JSON.stringify({ ...target.valid(), [name]: value }));
  const rows: [string, () => Sent][] = [];
  for (const { name, type } of target.members) {
    const controls = '\u0000\u0001\u0008\u001b[2J\u007f\u202e';
    if (type === 'string') {
      rows.push([`${name}: 5,000 characters`, () => withMember(name, 'x'.repeat(5000))]);
      rows.push([`${name}: NUL and control characters`, () => withMember(name, `name${controls}`)]);
      rows.push([`${name}: a list`, () => withMember(name, ['a', 'b'])]);
    } else {
      rows.push([`${name}: a string instead of a list`, () => withMember(name, 'https://app.example.test/callback')]);
      rows.push([`${name}: NUL and control characters in an item`, () => withMember(name, [`https://app.example.test/cb${controls}`])]);
      rows.push([`${name}: 500 items of 100 characters`, () => withMember(name, Array.from({ length: 500 }, (_, i) => `https://app.example.test/${String(i).padStart(80, 'x')}`))]);
    }
    rows.push([`${name}: an object`, () => withMember(name, { $ne: null, $gt: '' })]);
    rows.push([`${name}: a number`, () => withMember(name, 12345)]);
    rows.push([`${name}: true`, () => withMember(name, true)]);
  }
  const validText = () => JSON.stringify(target.valid()).slice(1, -1);
  rows.push(['a __proto__ member', () => send(`{"__proto__":{"polluted":1,"isAdmin":true},${validText()}}`)]);
  rows.push(['a constructor.prototype member', () => send(`{"constructor":{"prototype":{"polluted":1}},${validText()}}`)]);
  rows.push(['a member sent twice, the second with NUL', () => {
    const first = target.members[0]?.name ?? 'name';
    return send(`{${validText()},"${first}":"x\\u0000"}`);
  }]);
  rows.push(['operator-looking keys ($where, dotted)', () => send(JSON.stringify({ ...target.valid(), $where: 'sleep(1000)', 'a.b': 1 }))]);
  rows.push(['a form body', () => send(new URLSearchParams(Object.entries(target.valid()).map(([k, v]): [string, string] => [k, String(v)])).toString(), 'application/x-www-form-urlencoded')]);
  rows.push(['a text/plain body', () => send(JSON.stringify(target.valid()), 'text/plain')]);
  rows.push(['JSON without a content type', () => send(JSON.stringify(target.valid()), null)]);
  rows.push(['JSON in Latin-1 (charset=iso-8859-1)', () => send(JSON.stringify(target.valid()), 'application/json; charset=iso-8859-1')]);
  rows.push(['no body', () => send(undefined)]);
  rows.push(['malformed JSON', () => send('{"name": "unterminated')]);
  rows.push(['invalid UTF-8 bytes', () => send(Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]))]);
  rows.push(['a top-level list', () => send(JSON.stringify([target.valid()]))]);
  rows.push(['a top-level string', () => send('"just a string"')]);
  rows.push(['5,000 nested lists', () => send(`${'['.repeat(5000)}${']'.repeat(5000)}`)]);
  rows.push(['a 1 MiB body', () => send(JSON.stringify({ ...target.valid(), padding: HUGE_VALUE }))]);
  return rows.filter(([label]) => !target.skip?.includes(label));
}

// ---------------------------------------------------------------------------------------------
// State to compare

const digest = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/** Collections that record refusals (failed attempts, the audit log): they may grow on a 4xx. */
const BOOKKEEPING = /^(audit_events|sign_in_attempts|factor_attempts|email_code_claims)$|limit|attempt|throttle/;

describe('hostile input against every form and endpoint', () => {
  let server: TestServer;
  let smtp: MailServer;
  let client: CreatedClient;
  let authClientId: string;
  let apiToken: string;
  let registrationToken: string;
  let editableClientId: string;
  /** An API resource the edit and delete rows aim at (percent-encoded as one path segment). */
  const EDITABLE_RESOURCE = 'https://editable-api.example.test';
  const editableResourcePath = encodeURIComponent(EDITABLE_RESOURCE);
  let registrationTokenId: string;
  let targetUserId: string;
  let successesAfterSetUp: number;

  const ctx = {
    admin: undefined as JarAgent | undefined,
    adminCsrf: '',
    login: { agent: undefined as JarAgent | undefined, uid: '', csrf: '' },
    emailCode: { agent: undefined as JarAgent | undefined, uid: '', fields: {} as Fields },
    totp: { agent: undefined as JarAgent | undefined, uid: '', fields: {} as Fields },
    consent: { agent: undefined as JarAgent | undefined, uid: '', csrf: '' },
    newPassword: { agent: undefined as JarAgent | undefined, uid: '', fields: {} as Fields },
    accountPlain: { agent: undefined as JarAgent | undefined, fields: {} as Fields },
    accountTotp: { agent: undefined as JarAgent | undefined, csrf: '' },
  };

  const count = (collection: string, filter: Record<string, unknown> = {}) => server.deps.db.collection(collection).countDocuments(filter);
  const oidc = (model: string, filter: Record<string, unknown> = {}) => count(collectionName(model), filter);
  const docs = async (collection: string, filter: Record<string, unknown> = {}) =>
    digest(await server.deps.db.collection(collection).find(filter, { projection: { updatedAt: 0, lastSignInAt: 0, lastSeenAt: 0 } }).sort({ _id: 1 }).toArray());
  const signedInSessions = () => oidc('Session', { payload: { $regex: '"accountId"' } });

  /** Every collection's size, bookkeeping of refusals left out. */
  const allCollections = async (): Promise<Record<string, number>> => {
    const names = (await server.deps.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).filter((n) => !BOOKKEEPING.test(n)).sort();
    return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await count(n)] as const)));
  };

  const authorizationUrl = () => authorizationUrlFor(server.url, client.clientId, { code_challenge: pkcePair().challenge, scope: 'openid email' });
  const uidOf = (reply: Reply) => /\/interaction\/([^/?#]+)/.exec(reply.url)?.[1] ?? '';
  const basic = () => `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`;

  beforeAll(async () => {
    smtp = await startMailServer();
    server = await startTestServer('hostile_input', {
      logLevel: 'warn',
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.test>', DYNAMIC_REGISTRATION: 'true', EMAIL_CODE_RESEND_INTERVAL: '0' },
    });
    const { accounts, clients, userAdmin, registrationTokens } = server.deps;
    await accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true });
    await accounts.create({ ...PERSON, emailVerified: true });
    await accounts.create({ ...TOTP_PERSON, emailVerified: true });
    await accounts.create({ ...CODE_PERSON, emailVerified: true });
    const reset = await accounts.create({ ...RESET_PERSON, emailVerified: true });
    await userAdmin.requirePasswordReset(reset.id);
    targetUserId = (await accounts.create({ email: 'hostile-target@example.test', password: 'target password 42', emailVerified: true })).id;
    client = await clients.create({ name: 'Hostile RP', redirectUris: [REDIRECT_URI] });
    // Two redirect URIs: a request whose redirect_uri is garbled or missing cannot fall back to
    // the only one registered (which the provider rightly does), so every row must be refused.
    authClientId = (await clients.create({ name: 'Hostile RP (two redirect URIs)', redirectUris: [REDIRECT_URI, `${REDIRECT_URI}/other`] })).clientId;
    editableClientId = (await clients.create({ name: 'Editable', redirectUris: ['https://editable.example.test/cb'] })).clientId;
    await server.deps.resources.create({ identifier: EDITABLE_RESOURCE, name: 'Editable API', scopes: [{ name: 'things:read', description: 'Read your things' }] });
    ({ token: apiToken } = await adminToken(server));
    const created = await registrationTokens.create({ uses: 1000, expiresInSeconds: 3600 });
    registrationToken = created.token;
    registrationTokenId = created.view.id;

    // Independent browsers, set up side by side: the admin console, one per sign-in step, and
    // the account pages (one person without an authenticator app, one with).
    await Promise.all([
      (async () => {
        const admin = new JarAgent(server.url);
        await signInToConsole(admin, server, smtp, ADMIN);
        ctx.admin = admin;
        ctx.adminCsrf = hiddenFields((await admin.get('/admin/clients/new')).body, '/admin/clients').csrf ?? '';
      })(),
      (async () => {
        const login = new JarAgent(server.url);
        const loginPage = await login.follow(authorizationUrl());
        ctx.login = { agent: login, uid: uidOf(loginPage), csrf: hiddenFields(loginPage.body, '/login').csrf ?? '' };
      })(),
      (async () => {
        const code = new JarAgent(server.url);
        const codeLogin = await code.follow(authorizationUrl());
        const { page: codePage } = await requestSignInCode(code, codeLogin, CODE_PERSON.email, smtp);
        ctx.emailCode = { agent: code, uid: uidOf(codeLogin), fields: hiddenFields(codePage.body, '/email-code/verify') };
      })(),
      (async () => {
        const consent = new JarAgent(server.url);
        const consentPage = await submit(consent, await consent.follow(authorizationUrl()), '/login', { email: PERSON.email, password: PERSON.password });
        expect(pageKind(consentPage)).toBe('consent');
        ctx.consent = { agent: consent, uid: uidOf(consentPage), csrf: hiddenFields(consentPage.body, '/confirm').csrf ?? '' };
      })(),
      (async () => {
        const reset = new JarAgent(server.url);
        const resetLogin = await reset.follow(authorizationUrl());
        const newPasswordPage = await submit(reset, resetLogin, '/login', { email: RESET_PERSON.email, password: RESET_PERSON.password });
        ctx.newPassword = { agent: reset, uid: uidOf(resetLogin), fields: hiddenFields(newPasswordPage.body, '/new-password') };
      })(),
      (async () => {
        const plain = new JarAgent(server.url);
        const security = await submit(plain, await plain.follow(`${server.url}/account/security`), '/login', { email: PERSON.email, password: PERSON.password });
        expect(security.url).toBe(`${server.url}/account/security`);
        ctx.accountPlain = { agent: plain, fields: hiddenFields((await plain.get('/account/security/totp')).body, '/account/security/totp') };
      })(),
      (async () => {
        const withTotp = new JarAgent(server.url);
        await submit(withTotp, await withTotp.follow(`${server.url}/account/sign-in`), '/login', { email: TOTP_PERSON.email, password: TOTP_PERSON.password });
        const { page: codesPage } = await enrolOnAccountPage(withTotp, server.url);
        ctx.accountTotp = { agent: withTotp, csrf: hiddenFields(codesPage.body, '/account/security/done').csrf ?? '' };
        // The second-factor page of a sign-in by the person who now has an authenticator app.
        const totp = new JarAgent(server.url);
        const totpLogin = await totp.follow(authorizationUrl());
        const totpPage = await submit(totp, totpLogin, '/login', { email: TOTP_PERSON.email, password: TOTP_PERSON.password });
        expect(pageKind(totpPage)).toBe('totp');
        ctx.totp = { agent: totp, uid: uidOf(totpLogin), fields: hiddenFields(totpPage.body, '/second-factor/totp') };
      })(),
    ]);
    // The set-up's own sign-ins are audited in the background: let them land before counting.
    await server.deps.audit.flush();
    successesAfterSetUp = await count(AUDIT_COLLECTION, { outcome: 'success' });
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server?.close();
    await smtp?.close();
  });

  /**
   * Sends one request; a sign-in form refused the post/redirect/get way (303 to its page with
   * `?error=`) is followed, with the same cookies, to the page that shows the refusal and its status.
   */
  const sendFollowingRefusal = async (sent: Sent): Promise<RawReply> => {
    const reply = await rawHttp(server.port, { method: sent.method, target: sent.target, headers: sent.headers, ...(sent.body === undefined ? {} : { body: sent.body }) });
    const location = reply.status === 303 ? reply.location : undefined;
    const page = location ? new URL(location, server.url) : undefined;
    if (!page || !/^\/interaction\/[^/]+$/.test(page.pathname) || !page.searchParams.has('error')) return reply;
    const cookie = sent.headers.cookie ?? sent.headers.Cookie;
    return rawHttp(server.port, { method: 'GET', target: `${page.pathname}${page.search}`, headers: { accept: 'text/html', ...(cookie ? { cookie } : {}) } });
  };

  /** Runs one row: the answer is a refusal of `kind`, and `state` did not change. */
  const refuses = async (kind: Kind, state: () => Promise<unknown>, make: () => Sent) => {
    const before = await state();
    const sent = make();
    const reply = await sendFollowingRefusal(sent);
    expectRefusal(kind, reply);
    expect(await state()).toEqual(before);
  };

  /**
   * Around the describe block it is called in: every collection's size (bookkeeping of refusals
   * left out) and every account, client and registration token, before and after.
   */
  const guardDatabase = () => {
    const snapshot = async () => ({
      collections: await allCollections(),
      documents: await Promise.all([docs('accounts'), docs('clients'), docs('registration_tokens')]),
    });
    let before: Awaited<ReturnType<typeof snapshot>>;
    beforeAll(async () => {
      before = await snapshot();
    });
    afterAll(async () => {
      expect(await snapshot()).toEqual(before);
    });
  };

  /**
   * The rows of one describe block: each is refused and leaves `state` (cheap counts) as the row
   * before left it (one read per row); the block compares the whole database around them.
   */
  const table = (kind: Kind, state: () => Promise<unknown>, rows: [string, () => Sent][]) => {
    guardDatabase();
    let last: unknown;
    beforeAll(async () => {
      last = await state();
    });
    it.each(rows)('%s', async (_label, make) => {
      const sent = make();
      const reply = await sendFollowingRefusal(sent);
      expectRefusal(kind, reply);
      const [was, now] = [last, await state()];
      last = now;
      expect(now).toEqual(was);
    });
  };

  /** A describe block per target. */
  const group = (title: string, rows: [string, () => Sent][], kind: Kind, state: () => Promise<unknown>) => {
    describe(title, () => table(kind, state, rows));
  };

  const formGroup = (target: FormTarget) => group(target.label, formRows(target), target.kind, target.state);
  const jsonGroup = (target: JsonTarget) => group(target.label, jsonRows(target), target.kind, target.state);

  // -------------------------------------------------------------------------------------------
  // The sign-in pages (src/interactions): every route, at the step it belongs to where one
  // exists, so that hostile values reach its validation; at the login step otherwise.

  const interactionState = () => Promise.all([signedInSessions(), oidc('Grant'), oidc('AuthorizationCode'), count('email_codes')]);
  const atLogin = (route: string, inputs: FieldSpec[], extra: () => Fields = () => ({})): FormTarget => ({
    label: `POST /interaction/:uid/${route} (at the login step)`,
    kind: 'page',
    path: () => `/interaction/${ctx.login.uid}/${route}`,
    cookie: () => ctx.login.agent!.cookie(),
    valid: () => ({ csrf: ctx.login.csrf, ...extra() }),
    inputs,
    state: interactionState,
  });

  formGroup({
    ...atLogin('login', [{ name: 'csrf' }, { name: 'email', refuse: ['array', 'object'] }, { name: 'password' }], () => ({ email: 'nobody-hostile@example.test', password: 'wrong password' })),
    // Covered by test/interactions/bad-input.test.ts.
    skip: ['json', 'text-plain', 'multipart', 'no-type', 'huge', 'percent', 'twice:email', 'twice:password', 'twice:csrf'],
  });
  formGroup({
    ...atLogin('email-code', [{ name: 'csrf' }, { name: 'email' }], () => ({ email: 'not-an-address' })),
    refused: () => ({ csrf: ctx.login.csrf, email: 'not-an-address' }),
  });
  for (const route of ['email-code/resend', 'restart', 'abort']) formGroup(atLogin(route, [{ name: 'csrf' }]));
  // Steps that do not belong to the login prompt: refused as out of order, whatever the body.
  // The content types and sizes go through the same parser as on the routes' own steps below.
  for (const route of ['email-code/verify', 'second-factor/totp', 'second-factor/recovery', 'second-factor/email', 'second-factor/password', 'second-factor/enrol', 'second-factor/continue', 'new-password', 'confirm']) {
    formGroup({ ...atLogin(route, [{ name: 'csrf' }, { name: 'code', refuse: ['array', 'twice'] }], () => ({ code: '123456' })), skip: SAME_PARSER });
  }

  formGroup({
    label: 'POST /interaction/:uid/email-code/verify (at the email-code step)',
    kind: 'page',
    path: () => `/interaction/${ctx.emailCode.uid}/email-code/verify`,
    cookie: () => ctx.emailCode.agent!.cookie(),
    valid: () => ({ ...ctx.emailCode.fields, code: '000000' }),
    refused: () => ({ ...ctx.emailCode.fields, code: 'not-a-code' }),
    inputs: [{ name: 'csrf' }, { name: 'code' }],
    state: () => Promise.all([signedInSessions(), oidc('Grant')]),
  });

  for (const [route, codeValue] of [['second-factor/totp', '000000'], ['second-factor/recovery', 'aaaa-bbbb-cccc']] as const) {
    formGroup({
      label: `POST /interaction/:uid/${route} (at the second-factor step)`,
      kind: 'page',
      path: () => `/interaction/${ctx.totp.uid}/${route}`,
      cookie: () => ctx.totp.agent!.cookie(),
      valid: () => ({ ...ctx.totp.fields, code: codeValue }),
      refused: () => ({ ...ctx.totp.fields, code: '!' }),
      inputs: [{ name: 'csrf' }, { name: 'code' }],
      state: () => Promise.all([signedInSessions(), count('totp_used_steps'), count('recovery_code_uses')]),
    });
  }

  formGroup({
    label: 'POST /interaction/:uid/new-password (at the new-password step)',
    kind: 'page',
    path: () => `/interaction/${ctx.newPassword.uid}/new-password`,
    cookie: () => ctx.newPassword.agent!.cookie(),
    // Not the same twice: refused whatever else the rows change.
    valid: () => ({ ...ctx.newPassword.fields, password: 'a brand new password 42', confirm: 'a brand new password 42' }),
    refused: () => ({ ...ctx.newPassword.fields, password: 'a brand new password 42', confirm: 'something else entirely' }),
    inputs: [{ name: 'csrf' }, { name: 'password' }, { name: 'confirm', refuse: ['long', 'control', 'array', 'object', 'twice'] }],
    state: () => Promise.all([signedInSessions()]),
  });

  for (const route of ['confirm', 'abort']) {
    formGroup({
      label: `POST /interaction/:uid/${route} (at the consent step)`,
      kind: 'page',
      path: () => `/interaction/${ctx.consent.uid}/${route}`,
      cookie: () => ctx.consent.agent!.cookie(),
      valid: () => ({ csrf: ctx.consent.csrf }),
      inputs: [{ name: 'csrf' }],
      state: () => Promise.all([oidc('Grant'), oidc('AuthorizationCode')]),
    });
  }

  describe('interaction ids with path tricks', () => {
    const uids = ['__proto__', 'constructor', 'hasOwnProperty', '%2e%2e', '..%2F..%2Fadmin', '%00', '%FF%FE', 'a'.repeat(3000), '%E0%A4%A'];
    const routes = ['', '/login', '/email-code', '/second-factor/totp', '/new-password', '/restart'];
    const rows: [string, () => Sent][] = uids.flatMap((uid) =>
      routes.map((route): [string, () => Sent] => [
        `${route ? 'POST' : 'GET'} /interaction/${uid.slice(0, 20)}${uid.length > 20 ? '…' : ''}${route}`,
        () => ({
          method: route ? 'POST' : 'GET',
          target: `/interaction/${uid}${route}`,
          headers: { accept: 'text/html', cookie: ctx.login.agent!.cookie(), 'content-type': 'application/x-www-form-urlencoded' },
          ...(route ? { body: encode([['csrf', ctx.login.csrf], ['email', PERSON.email], ['password', PERSON.password]]) } : {}),
        }),
      ]),
    );
    table('page', interactionState, rows);
  });

  // -------------------------------------------------------------------------------------------
  // The account pages (src/account)

  const accountState = () => Promise.all([count('totp_used_steps'), count('recovery_code_uses')]);
  formGroup({
    label: 'POST /account/security/totp (no authenticator yet)',
    kind: 'page',
    path: () => '/account/security/totp',
    cookie: () => ctx.accountPlain.agent!.cookie(),
    valid: () => ({ ...ctx.accountPlain.fields, code: '000000' }),
    refused: () => ({ ...ctx.accountPlain.fields, code: 'nope' }),
    inputs: [{ name: 'csrf' }, { name: 'code' }],
    state: accountState,
  });
  for (const [route, fields, inputs] of [
    ['recovery-codes', { code: '000000' }, [{ name: 'csrf' }, { name: 'code' }]],
    ['totp/remove', { password: 'not the password' }, [{ name: 'csrf' }, { name: 'password', refuse: ['control', 'array', 'object', 'twice'] }]],
    ['done', {}, [{ name: 'csrf' }]],
  ] as [string, Fields, FieldSpec[]][]) {
    formGroup({
      label: `POST /account/security/${route} (authenticator enrolled)`,
      kind: 'page',
      path: () => `/account/security/${route}`,
      cookie: () => ctx.accountTotp.agent!.cookie(),
      valid: () => ({ csrf: ctx.accountTotp.csrf, ...fields }),
      inputs,
      state: accountState,
    });
  }

  describe('account and console callbacks with hostile queries', () => {
    const queries = ['code[]=a&code[]=b&state=x', 'state=%00&code=%FF', `state=${'s'.repeat(5000)}`, '__proto__[polluted]=1&state=x', 'error=access_denied&error_description=%3Cscript%3E', 'iss=https%3A%2F%2Fevil.example&code=x&state=y'];
    const rows: [string, () => Sent][] = ['/account/callback', '/admin/callback'].flatMap((path) =>
      queries.map((q): [string, () => Sent] => [`GET ${path}?${q.slice(0, 40)}`, () => ({ method: 'GET', target: `${path}?${q}`, headers: { accept: 'text/html' } })]),
    );
    table('page', () => Promise.all([signedInSessions(), oidc('AccessToken')]), rows);
  });

  // -------------------------------------------------------------------------------------------
  // The admin console (src/admin/console), signed in as an admin

  const consoleForm = (label: string, path: () => string, valid: () => Fields, inputs: FieldSpec[], state: () => Promise<unknown>, refused?: () => Fields): FormTarget => ({
    label,
    kind: 'page',
    path,
    cookie: () => ctx.admin!.cookie(),
    valid: () => ({ csrf: ctx.adminCsrf, ...valid() }),
    ...(refused ? { refused: () => ({ csrf: ctx.adminCsrf, ...refused() }) } : {}),
    inputs,
    state,
  });
  const clientFields = (): Fields => ({
    name: 'A fine app',
    logoUri: '',
    redirectUris: 'https://fine.example.test/callback',
    postLogoutRedirectUris: '',
    'grantTypes.authorization_code': 'on',
    applicationType: 'web',
    tokenEndpointAuthMethod: 'client_secret_basic',
    jwksUri: '',
    jwks: '',
    'scopes.openid': 'on',
    accessTokenTtl: '',
    idTokenTtl: '',
    refreshTokenTtl: '',
  });
  const clientInputs: FieldSpec[] = [{ name: 'csrf' }, { name: 'name' }, { name: 'redirectUris' }, { name: 'tokenEndpointAuthMethod' }, { name: 'accessTokenTtl', refuse: ['long', 'control', 'array', 'twice'] }];
  const clientsState = () => Promise.all([count('clients')]);

  for (const [label, path] of [
    ['POST /admin/clients (new client)', () => '/admin/clients'],
    ['POST /admin/clients/:id (edit)', () => `/admin/clients/${editableClientId}`],
  ] as [string, () => string][]) {
    formGroup({ ...consoleForm(label, path, clientFields, clientInputs, clientsState, () => ({ ...clientFields(), redirectUris: 'not a url' })), skip: ['control:redirectUris'] });
  }
  for (const action of ['rotate-secret', 'delete']) {
    formGroup(consoleForm(`POST /admin/clients/:id/${action}`, () => `/admin/clients/${editableClientId}/${action}`, () => ({}), [{ name: 'csrf' }], clientsState));
  }
  // API resources: the whole collection is compared (an edit must not change a resource half-way).
  const resourcesState = () => Promise.all([docs('api_resources')]);
  const resourceFields = (): Fields => ({
    identifier: 'https://new-hostile-api.example.test',
    name: 'Hostile API',
    tokenFormat: 'jwt',
    accessTokenTtl: '600',
    scopes: 'things:write Change your things',
    introspectionClients: '',
  });
  // Scopes, lifetime and introspection clients are optional: `scopes[a]=…` leaves them out, which is allowed.
  const optionalText: FieldMutation[] = ['long', 'control', 'twice'];
  formGroup(
    consoleForm(
      'POST /admin/api-resources (new API resource)',
      () => '/admin/api-resources',
      resourceFields,
      [{ name: 'csrf' }, { name: 'identifier' }, { name: 'name' }, { name: 'scopes', refuse: optionalText }, { name: 'accessTokenTtl', refuse: optionalText }],
      resourcesState,
      () => ({ ...resourceFields(), identifier: 'not a uri' }),
    ),
  );
  formGroup(
    consoleForm(
      'POST /admin/api-resources/:id (edit)',
      () => `/admin/api-resources/${editableResourcePath}`,
      resourceFields,
      [{ name: 'csrf' }, { name: 'name' }, { name: 'scopes', refuse: optionalText }, { name: 'accessTokenTtl', refuse: optionalText }],
      resourcesState,
      () => ({ ...resourceFields(), name: '' }),
    ),
  );
  formGroup(consoleForm('POST /admin/api-resources/:id/delete', () => `/admin/api-resources/${editableResourcePath}/delete`, () => ({}), [{ name: 'csrf' }], resourcesState));
  formGroup({
    ...consoleForm(
      'POST /admin/clients (new client naming API resources)',
      () => '/admin/clients',
      () => ({ ...clientFields(), 'resources.0': EDITABLE_RESOURCE, defaultResource: EDITABLE_RESOURCE }),
      // Both are optional: `defaultResource[a]=…` leaves it out, which is allowed.
      [{ name: 'resources.0', refuse: optionalText }, { name: 'defaultResource', refuse: optionalText }],
      clientsState,
      () => ({ ...clientFields(), 'resources.0': 'https://unregistered.example.test' }),
    ),
    skip: [...SAME_PARSER, 'percent', 'utf8', 'empty'],
  });
  const userFields = (): Fields => ({ email: 'new-hostile-user@example.test', name: 'New User', password: 'a fine new password 42' });
  const usersState = () => Promise.all([count('accounts')]);
  formGroup(
    consoleForm(
      'POST /admin/users/new',
      () => '/admin/users/new',
      userFields,
      // Name and password are optional (no password: sign-in by email code): `name[a]=…` leaves one out, which is allowed.
      [{ name: 'csrf' }, { name: 'email' }, { name: 'name', refuse: ['long', 'control', 'array', 'twice'] }, { name: 'password', refuse: ['array', 'twice'] }],
      usersState,
      () => ({ ...userFields(), email: 'not-an-address' }),
    ),
  );
  for (const action of ['disable', 'require-password-reset', 'grant-admin', 'delete']) {
    formGroup(consoleForm(`POST /admin/users/:id/${action}`, () => `/admin/users/${targetUserId}/${action}`, () => ({}), [{ name: 'csrf' }], usersState));
  }
  const regTokensState = () => Promise.all([count('registration_tokens'), oidc('InitialAccessToken')]);
  formGroup(
    consoleForm(
      'POST /admin/registration-tokens',
      () => '/admin/registration-tokens',
      () => ({ expiresInHours: '24', uses: '1' }),
      // Both are optional (defaults apply): `uses[a]=…` leaves one out, which is allowed.
      [{ name: 'csrf' }, { name: 'expiresInHours', refuse: ['long', 'control', 'array', 'twice'] }, { name: 'uses', refuse: ['long', 'control', 'array', 'twice'] }],
      regTokensState,
      () => ({ expiresInHours: '24', uses: '-1' }),
    ),
  );
  formGroup(consoleForm('POST /admin/registration-tokens/:id/revoke', () => `/admin/registration-tokens/${registrationTokenId}/revoke`, () => ({}), [{ name: 'csrf' }], regTokensState));
  formGroup(
    consoleForm(
      'POST /admin/api-token',
      () => '/admin/api-token',
      () => ({ 'scope.admin:clients:read': 'on' }),
      [{ name: 'csrf' }],
      () => Promise.all([oidc('AccessToken')]),
      () => ({}),
    ),
  );

  describe('console ids and queries with path tricks', () => {
    const ids = ['__proto__', 'constructor', 'toString', '%2e%2e', '..%2F..%2Fusers', '%00', '%FF%FE', 'a'.repeat(3000), '%E0%A4%A'];
    const rows: [string, () => Sent][] = [];
    const post = (target: string): Sent => ({
      method: 'POST',
      target,
      headers: { accept: 'text/html', cookie: ctx.admin!.cookie(), 'content-type': 'application/x-www-form-urlencoded' },
      body: encode([['csrf', ctx.adminCsrf]]),
    });
    const get = (target: string): Sent => ({ method: 'GET', target, headers: { accept: 'text/html', cookie: ctx.admin!.cookie() } });
    for (const id of ids) {
      const short = `${id.slice(0, 20)}${id.length > 20 ? '…' : ''}`;
      rows.push([`GET /admin/clients/${short}`, () => get(`/admin/clients/${id}`)]);
      rows.push([`POST /admin/clients/${short}/delete`, () => post(`/admin/clients/${id}/delete`)]);
      rows.push([`GET /admin/users/${short}`, () => get(`/admin/users/${id}`)]);
      rows.push([`POST /admin/users/${short}/disable`, () => post(`/admin/users/${id}/disable`)]);
      rows.push([`POST /admin/users/:id/${short} (as the action)`, () => post(`/admin/users/${targetUserId}/${id}`)]);
      rows.push([`POST /admin/registration-tokens/${short}/revoke`, () => post(`/admin/registration-tokens/${id}/revoke`)]);
      rows.push([`GET /admin/api-resources/${short}`, () => get(`/admin/api-resources/${id}`)]);
      rows.push([`POST /admin/api-resources/${short}/delete`, () => post(`/admin/api-resources/${id}/delete`)]);
    }
    // Parameters the pages do not know are ignored (200), as anywhere on the web: the rows give the known ones bad values.
    for (const q of ['q=a&q=b', `q=${'q'.repeat(5000)}`, 'cursor=%00%FF', 'cursor=a&cursor=b', `cursor=${'c'.repeat(5000)}`]) {
      rows.push([`GET /admin/clients?${q.slice(0, 30)}`, () => get(`/admin/clients?${q}`)]);
      rows.push([`GET /admin/users?${q.slice(0, 30)}`, () => get(`/admin/users?${q}`)]);
    }
    for (const q of ['from=2020-01-01&from=2020-01-02', 'to=%00', `action=${'a'.repeat(5000)}`, 'outcome=a&outcome=b']) rows.push([`GET /admin/audit?${q.slice(0, 30)}`, () => get(`/admin/audit?${q}`)]);
    table('page', () => Promise.all([clientsState(), usersState(), regTokensState(), resourcesState()]), rows);
  });

  // -------------------------------------------------------------------------------------------
  // The management API (src/admin/api), with a token

  const bearer = () => ({ authorization: `Bearer ${apiToken}` });
  jsonGroup({
    label: 'POST /api/admin/v1/clients',
    kind: 'api',
    method: 'POST',
    path: () => '/api/admin/v1/clients',
    headers: bearer,
    valid: () => ({ name: 'API app', redirectUris: ['https://api-app.example.test/callback'] }),
    members: [{ name: 'name', type: 'string' }, { name: 'redirectUris', type: 'string[]' }, { name: 'allowedResources', type: 'string[]' }, { name: 'defaultResource', type: 'string' }],
    state: clientsState,
  });
  jsonGroup({
    label: 'POST /api/admin/v1/resources',
    kind: 'api',
    method: 'POST',
    path: () => '/api/admin/v1/resources',
    headers: bearer,
    valid: () => ({ identifier: 'https://new-api-hostile.example.test', name: 'API', scopes: [{ name: 'x:read', description: 'Read x' }] }),
    members: [{ name: 'identifier', type: 'string' }, { name: 'name', type: 'string' }, { name: 'introspectionClients', type: 'string[]' }],
    state: resourcesState,
  });
  jsonGroup({
    label: 'PUT /api/admin/v1/resources/{identifier}',
    kind: 'api',
    method: 'PUT',
    path: () => `/api/admin/v1/resources/${editableResourcePath}`,
    headers: bearer,
    valid: () => ({ name: 'Edited API', tokenFormat: 'opaque' }),
    members: [{ name: 'name', type: 'string' }, { name: 'tokenFormat', type: 'string' }, { name: 'introspectionClients', type: 'string[]' }],
    state: resourcesState,
  });
  jsonGroup({
    label: 'PUT /api/admin/v1/clients/{clientId}',
    kind: 'api',
    method: 'PUT',
    path: () => `/api/admin/v1/clients/${editableClientId}`,
    headers: bearer,
    valid: () => ({ name: 'Edited by API', redirectUris: ['https://editable.example.test/cb'] }),
    members: [{ name: 'name', type: 'string' }, { name: 'redirectUris', type: 'string[]' }],
    state: clientsState,
  });
  jsonGroup({
    label: 'POST /api/admin/v1/users',
    kind: 'api',
    method: 'POST',
    path: () => '/api/admin/v1/users',
    headers: bearer,
    valid: () => ({ email: 'api-hostile@example.test', name: 'Api User' }),
    members: [{ name: 'email', type: 'string' }, { name: 'name', type: 'string' }],
    state: usersState,
  });
  jsonGroup({
    label: 'PATCH /api/admin/v1/users/{userId}',
    kind: 'api',
    method: 'PATCH',
    path: () => `/api/admin/v1/users/${targetUserId}`,
    headers: bearer,
    valid: () => ({ name: 'Patched' }),
    members: [{ name: 'name', type: 'string' }],
    state: usersState,
  });
  jsonGroup({
    label: 'POST /api/admin/v1/registration-tokens',
    kind: 'api',
    method: 'POST',
    path: () => '/api/admin/v1/registration-tokens',
    headers: bearer,
    valid: () => ({ uses: 1 }),
    members: [],
    state: regTokensState,
  });

  describe('management API ids, queries and tokens with tricks', () => {
    const ids = ['__proto__', 'constructor', '%2e%2e', '..%2F..%2Fusers', '%00', '%FF%FE', 'a'.repeat(3000), '%E0%A4%A', '$ne'];
    const call = (method: string, target: string, headers: Record<string, string> = bearer(), body?: string): Sent => ({
      method,
      target,
      headers: { accept: 'application/json', ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body } : {}),
    });
    const rows: [string, () => Sent][] = [];
    for (const id of ids) {
      const short = `${id.slice(0, 20)}${id.length > 20 ? '…' : ''}`;
      rows.push([`GET clients/${short}`, () => call('GET', `/api/admin/v1/clients/${id}`)]);
      rows.push([`PUT clients/${short}`, () => call('PUT', `/api/admin/v1/clients/${id}`, bearer(), JSON.stringify({ name: 'x', redirectUris: ['https://x.example.test/cb'] }))]);
      rows.push([`DELETE clients/${short}`, () => call('DELETE', `/api/admin/v1/clients/${id}`)]);
      rows.push([`POST clients/${short}/secret`, () => call('POST', `/api/admin/v1/clients/${id}/secret`)]);
      rows.push([`DELETE users/${short}`, () => call('DELETE', `/api/admin/v1/users/${id}`)]);
      rows.push([`POST users/${short}/disable`, () => call('POST', `/api/admin/v1/users/${id}/disable`)]);
      rows.push([`DELETE registration-tokens/${short}`, () => call('DELETE', `/api/admin/v1/registration-tokens/${id}`)]);
      rows.push([`GET resources/${short}`, () => call('GET', `/api/admin/v1/resources/${id}`)]);
      rows.push([`PUT resources/${short}`, () => call('PUT', `/api/admin/v1/resources/${id}`, bearer(), JSON.stringify({ name: 'x' }))]);
      rows.push([`DELETE resources/${short}`, () => call('DELETE', `/api/admin/v1/resources/${id}`)]);
    }
    for (const q of ['limit=1&limit=2', 'limit[]=1', 'limit=1e309', 'limit=-0', `search=${'s'.repeat(5000)}`, 'search[$ne]=x', '__proto__[polluted]=1', 'cursor=%00%FF', 'unknown=1']) {
      rows.push([`GET clients?${q.slice(0, 30)}`, () => call('GET', `/api/admin/v1/clients?${q}`)]);
      rows.push([`GET users?${q.slice(0, 30)}`, () => call('GET', `/api/admin/v1/users?${q}`)]);
    }
    for (const q of ['from=yesterday', 'from[]=2020-01-01', 'outcome=%00', `action=${'a'.repeat(5000)}`]) rows.push([`GET audit-events?${q.slice(0, 30)}`, () => call('GET', `/api/admin/v1/audit-events?${q}`)]);
    for (const [label, authorization] of [
      ['no token', undefined],
      ['an empty bearer token', 'Bearer '],
      ['a made-up token', 'Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
      ['a 5,000-character token', `Bearer ${'t'.repeat(5000)}`],
      ['a Basic header', `Basic ${Buffer.from('a:b').toString('base64')}`],
      ['two tokens', `Bearer a, Bearer b`],
    ] as [string, string | undefined][]) {
      rows.push([`POST clients with ${label}`, () => call('POST', '/api/admin/v1/clients', authorization ? { authorization } : {}, JSON.stringify({ name: 'x', redirectUris: ['https://x.example.test/cb'] }))]);
    }
    table('api', () => Promise.all([clientsState(), usersState(), regTokensState(), resourcesState()]), rows);
  });

  // -------------------------------------------------------------------------------------------
  // The provider's endpoints (node-oidc-provider), with our error rendering

  const tokensState = () => Promise.all([oidc('AccessToken'), oidc('RefreshToken'), oidc('AuthorizationCode'), oidc('Grant')]);
  const providerForm = (label: string, path: string, kind: Kind, valid: () => Fields, inputs: FieldSpec[], extra: Partial<FormTarget> = {}): FormTarget => ({
    label,
    kind,
    path: () => path,
    valid,
    inputs,
    state: tokensState,
    ...extra,
  });

  formGroup(
    providerForm(
      'POST /token (what test/interactions/bad-input.test.ts leaves out)',
      '/token',
      'oauth',
      () => ({ grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: REDIRECT_URI, code_verifier: 'v'.repeat(43) }),
      [{ name: 'grant_type' }, { name: 'code', refuse: ['array', 'object', 'twice'] }, { name: 'redirect_uri', refuse: ['array', 'twice'] }],
      { headers: () => ({ authorization: basic() }), refused: () => ({ grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: REDIRECT_URI }), skip: ['json', 'huge'] },
    ),
  );
  for (const path of ['/token/introspection', '/token/revocation']) {
    // An unknown token is no error at either endpoint (RFC 7662 §2.2, RFC 7009 §2.2): the rows
    // corrupt the request itself.
    // corrupt the request itself (a garbled token is just an unknown one; an unknown parameter
    // such as `token_type_hint[]` is ignored, RFC 6749 §3.2).
    formGroup(providerForm(`POST ${path}`, path, 'oauth', () => ({ token: 'some-token', token_type_hint: 'access_token' }), [{ name: 'token', refuse: ['array', 'object', 'twice'] }, { name: 'token_type_hint', refuse: ['twice'] }], {
      headers: () => ({ authorization: basic() }),
      refused: () => ({ token_type_hint: 'access_token' }),
      skip: ['percent', 'utf8'],
    }));
  }
  formGroup(providerForm('POST /me', '/me', 'oauth', () => ({ access_token: 'made-up-access-token' }), [{ name: 'access_token' }], { refused: () => ({ access_token: 'made-up-access-token' }) }));
  formGroup(
    providerForm(
      'POST /auth (a browser)',
      '/auth',
      'page',
      () => ({ client_id: authClientId, response_type: 'code', redirect_uri: 'https://attacker.example/cb', scope: 'openid', code_challenge: 'c'.repeat(43), code_challenge_method: 'S256' }),
      [{ name: 'client_id' }, { name: 'redirect_uri' }, { name: 'response_type', refuse: ['long', 'control', 'array', 'twice'] }],
      { refused: () => ({ client_id: 'no-such-client', response_type: 'code', scope: 'openid' }), state: () => Promise.all([tokensState(), oidc('Interaction')]) },
    ),
  );
  formGroup(
    providerForm('POST /session/end', '/session/end', 'page', () => ({ id_token_hint: 'not.a.jwt', post_logout_redirect_uri: 'https://attacker.example/' }), [{ name: 'id_token_hint', refuse: ['long', 'control', 'array', 'twice'] }, { name: 'post_logout_redirect_uri', refuse: ['array', 'twice'] }], {
      refused: () => ({ id_token_hint: 'not.a.jwt' }),
      state: () => Promise.all([tokensState(), oidc('Session')]),
      // A logout request with no readable parameter is a valid one (RP-Initiated Logout: the
      // confirmation page, whose form token the provider keeps in a session, as for a GET without
      // parameters): rows that leave nothing readable are not refusals here.
      skip: ['json-as-form', 'text-plain', 'no-type', 'charset', 'percent', 'empty'],
    }),
  );
  formGroup(providerForm('POST /session/end/confirm', '/session/end/confirm', 'page', () => ({ xsrf: 'made-up', logout: 'yes' }), [{ name: 'xsrf' }], { state: () => Promise.all([tokensState(), oidc('Session')]), refused: () => ({ xsrf: 'made-up', logout: 'yes' }) }));

  jsonGroup({
    label: 'POST /reg (dynamic registration, with an initial access token)',
    kind: 'oauth',
    method: 'POST',
    path: () => '/reg',
    headers: () => ({ authorization: `Bearer ${registrationToken}` }),
    valid: () => ({ client_name: 'Self-registered', redirect_uris: ['https://self.example.test/cb'] }),
    members: [{ name: 'client_name', type: 'string' }, { name: 'redirect_uris', type: 'string[]' }],
    skip: [
      // RFC 7591 §2: the server MUST ignore metadata it does not understand (checked below: it
      // is ignored and pollutes nothing).
      'a __proto__ member',
      'a constructor.prototype member',
      'operator-looking keys ($where, dotted)',
      // The provider reads the body whatever charset is named; this one is ASCII anyway.
      'JSON in Latin-1 (charset=iso-8859-1)',
    ],
    state: () => Promise.all([count('clients')]),
  });

  it('recorded no successful action of any kind after the set-up: every row was refused', async () => {
    const since = await server.deps.db.collection(AUDIT_COLLECTION).find({ outcome: 'success' }).sort({ _id: 1 }).skip(successesAfterSetUp).toArray();
    expect(since.map((event) => event.action)).toEqual([]);
  });

  // Rows that were findings of this suite (accepted and stored once), refused since.
  describe('former findings: redirect URIs with control characters, and too many of them', () => {
    const apiClient = (redirectUri: string): Sent => ({
      method: 'POST',
      target: '/api/admin/v1/clients',
      headers: { accept: 'application/json', ...bearer(), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Control characters', redirectUris: [redirectUri] }),
    });
    const consoleClient = (redirectUri: string): Sent => ({
      method: 'POST',
      target: '/admin/clients',
      headers: { accept: 'text/html', cookie: ctx.admin!.cookie(), 'content-type': 'application/x-www-form-urlencoded' },
      body: encode(pairsOf({ csrf: ctx.adminCsrf, ...clientFields(), redirectUris: redirectUri })),
    });
    const controls = 'https://app.example.test/cb\u0000\u0001\u0008\u001b[2J\u007f\u202e';
    const register = (body: Record<string, JsonValue> | string): Sent => ({
      method: 'POST',
      target: '/reg',
      headers: { accept: 'application/json', authorization: `Bearer ${registrationToken}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const clientCount = () => Promise.all([count('clients')]);
    it(`POST /api/admin/v1/clients: ${FORMER_FINDINGS.redirectUriControls} in an item`, async () => refuses('api', clientsState, () => apiClient(controls)));
    it(`POST /admin/clients: ${FORMER_FINDINGS.redirectUriControls}`, async () => refuses('page', clientsState, () => consoleClient(controls)));
    it(`PUT /api/admin/v1/clients/{clientId}: ${FORMER_FINDINGS.redirectUriControls} in an item`, async () =>
      refuses('api', clientsState, () => ({ ...apiClient(controls), method: 'PUT', target: `/api/admin/v1/clients/${editableClientId}` })),
    );
    it(`POST /reg: redirect_uris with NUL and control characters`, async () => refuses('oauth', clientCount, () => register({ client_name: 'Controls', redirect_uris: [controls] })));
    it(`POST /reg: ${FORMER_FINDINGS.manyRedirectUris}`, async () =>
      refuses('oauth', clientCount, () => register({ client_name: 'Many', redirect_uris: Array.from({ length: 500 }, (_, i) => `https://self.example.test/${String(i).padStart(80, 'x')}`) })),
    );

    it('POST /reg ignores __proto__, constructor and operator-looking members (RFC 7591 §2) and pollutes nothing', async () => {
      const valid = JSON.stringify({ client_name: 'Ignored members', redirect_uris: ['https://ignored.example.test/cb'] }).slice(1, -1);
      const sent = register(`{"__proto__":{"polluted":1,"isAdmin":true},"constructor":{"prototype":{"polluted":1}},"$where":"sleep(1000)","a.b":1,${valid}}`);
      const reply = await rawHttp(server.port, { method: sent.method, target: sent.target, headers: sent.headers, body: sent.body ?? '' });
      expect(reply.status).toBe(201);
      const registered = JSON.parse(reply.body) as Record<string, unknown>;
      expect(Object.keys(registered)).not.toEqual(expect.arrayContaining(['polluted', 'isAdmin', '$where', 'a.b']));
      expect(Object.hasOwn(registered, '__proto__')).toBe(false);
      expect(Object.prototype).not.toHaveProperty('polluted');
      expect(Object.prototype).not.toHaveProperty('isAdmin');
    });
  });
});
