/**
 * The admin console's Clients section in a real browser: Debian's headless Chromium driven by
 * playwright-core, against the real app (startTestServer) and a real SMTP server on loopback (the
 * admin's second factor is read from the mail). An admin registers a client through the form; the
 * client then signs a person in as a relying party (openid-client, with a tiny HTTP server of our
 * own whose /callback receives the code); the admin changes its redirect URI, rotates its secret
 * and deletes it, and each change is checked from the relying party's side.
 *
 * The tests run in order and share the admin's browser and the client, as an admin's work would.
 *
 * NOTE: not rp.ts's REDIRECT_URI (http://127.0.0.1:9/callback): Chromium refuses port 9 as unsafe
 * (ERR_UNSAFE_PORT), so the browser needs a callback that really answers.
 * NOTE: never `npx playwright install` (no network for it): the browser is Debian's package.
 * Screenshots land in test-artifacts/screenshots/ (git-ignored) for a person to look at.
 */
import { constants as fsConstants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, BrowserContextOptions, Page, Response } from 'playwright-core';

import { codeFrom, startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { authorizationRequest, sleep } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SUITE_TIMEOUT = 90_000;
const STEP_TIMEOUT = 20_000;
const MAIL_TIMEOUT = 15_000;
const GRACE_SECONDS = 3;

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCREENSHOTS = path.join(REPO_ROOT, 'test-artifacts', 'screenshots');

const PASSWORD = 'a long and correct passphrase';
const ADMIN = { email: 'margaret.admin@example.com', password: PASSWORD, name: 'Margaret Hamilton' };
const PERSON = { email: 'annie@example.com', password: PASSWORD, name: 'Annie Easley' };
const CLIENT_NAME = 'Console Registered App';

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
type Size = 'phone' | 'desktop';
const CONTEXT_FOR: Record<Size, BrowserContextOptions> = {
  phone: { viewport: PHONE, isMobile: true, hasTouch: true },
  desktop: { viewport: DESKTOP },
};

async function requireChromium(): Promise<void> {
  try {
    await access(CHROMIUM, fsConstants.X_OK);
  } catch {
    throw new Error(
      `Browser tests need Debian's Chromium at ${CHROMIUM}, which is missing. Install it with \`apt-get install -y chromium\` ` +
        '(do not use `npx playwright install`: the tests drive the system browser).',
    );
  }
}

/** What the browser saw while a page was in use: console lines, network failures, HTTP errors. */
interface BrowserRecord {
  console: string[];
  pageErrors: string[];
  failedRequests: string[];
  httpErrors: string[];
  stylesheets: string[];
}

function record(page: Page, serverUrl: string): BrowserRecord {
  const seen: BrowserRecord = { console: [], pageErrors: [], failedRequests: [], httpErrors: [], stylesheets: [] };
  page.on('console', (message) => seen.console.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => seen.pageErrors.push(error.message));
  page.on('requestfailed', (request) => {
    if (request.url().startsWith(serverUrl)) seen.failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText ?? '?'}`);
  });
  page.on('response', (response) => {
    const request = response.request();
    if (!response.url().startsWith(serverUrl)) return;
    if (response.status() >= 400) seen.httpErrors.push(`${request.method()} ${new URL(response.url()).pathname} ${response.status()}`);
    if (request.resourceType() === 'stylesheet') seen.stylesheets.push(`${new URL(response.url()).pathname} ${response.status()}`);
  });
  return seen;
}

/**
 * CSP violations are console errors. NOTE: older Chromium says "Refused to …"; Chromium 156 says
 * "Sending form data to '…' violates the following Content Security Policy directive: …".
 */
const CSP_VIOLATION = /Refused to|Content Security Policy/i;

/** `pages: false` when the browser only passed through redirects (no page of ours was shown). */
function expectCleanBrowser(seen: BrowserRecord, { pages = true }: { pages?: boolean } = {}): void {
  expect(seen.console.filter((line) => CSP_VIOLATION.test(line))).toEqual([]);
  expect(seen.console.filter((line) => /^(error|warning):/.test(line))).toEqual([]);
  expect(seen.pageErrors).toEqual([]);
  expect(seen.failedRequests).toEqual([]);
  expect(seen.httpErrors).toEqual([]);
  if (pages) expect(seen.stylesheets.length).toBeGreaterThan(0);
  for (const line of seen.stylesheets) expect(line).toMatch(/^\/static\/app\.css (200|304)$/);
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, name), fullPage: true });
}

/** Minimal typing for the browser-side calls we make (the project compiles without the DOM lib). */
interface BrowserElement {
  type: string;
  name: string;
  id: string;
  labels: { length: number } | null;
  getAttribute(name: string): string | null;
}
interface BrowserGlobals {
  getComputedStyle(element: unknown): { backgroundColor: string; color: string; borderTopLeftRadius: string; maxWidth: string };
  document: {
    documentElement: { scrollWidth: number; clientWidth: number };
    querySelectorAll(selector: string): Iterable<BrowserElement>;
  };
}

/**
 * The checks every console page gets: its heading, the stylesheet applied (the header and panels
 * are laid out, buttons painted), no sideways overflow on a phone, a label for every input a person
 * can see; then a screenshot.
 */
async function checkConsolePage(page: Page, size: Size, heading: string | RegExp, shot: string | undefined): Promise<void> {
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await page.waitForLoadState('load');

  const panel = await page
    .locator('.panel')
    .first()
    .evaluate((element) => (globalThis as unknown as BrowserGlobals).getComputedStyle(element).borderTopLeftRadius);
  expect(panel).toBe('12px');
  const main = await page.locator('.admin-main').evaluate((element) => (globalThis as unknown as BrowserGlobals).getComputedStyle(element).maxWidth);
  expect(main).toBe('1152px');
  const buttons = page.locator('.button-primary');
  if ((await buttons.count()) > 0) {
    const button = await buttons.first().evaluate((element) => {
      const style = (globalThis as unknown as BrowserGlobals).getComputedStyle(element);
      return { background: style.backgroundColor, color: style.color };
    });
    expect(button.background).not.toMatch(/^(rgb\(239, 239, 239\)|buttonface|rgba\(0, 0, 0, 0\))$/i);
    expect(button.color).not.toBe(button.background);
  }

  if (size === 'phone') {
    const overflow = await page.evaluate(() => {
      const doc = (globalThis as unknown as BrowserGlobals).document;
      return doc.documentElement.scrollWidth - doc.documentElement.clientWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
  }

  const unlabelled = await page.evaluate(() => {
    const inputs = [...(globalThis as unknown as BrowserGlobals).document.querySelectorAll('input, select, textarea')];
    return inputs
      .filter((input) => input.type !== 'hidden' && input.getAttribute('aria-hidden') !== 'true')
      .filter((input) => !(input.labels && input.labels.length > 0) && !input.getAttribute('aria-label'))
      .map((input) => `${input.type} name=${input.name} id=${input.id}`);
  });
  expect(unlabelled).toEqual([]);

  if (shot) await screenshot(page, shot);
}

/** The relying party: records every callback it receives (any path under /callback) and shows a plain page. */
interface RelyingPartyServer {
  origin: string;
  received: URL[];
  close(): Promise<void>;
}

async function startRelyingParty(): Promise<RelyingPartyServer> {
  const received: URL[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    if (req.method === 'GET' && url.pathname.startsWith('/callback')) {
      received.push(url);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end('<!doctype html><html lang="en"><head><title>Back at the app</title><link rel="icon" href="data:,"></head><body><p>Back at the app.</p></body></html>');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A relying party for the client, authenticating with this secret in HTTP Basic. */
async function rpWithSecret(server: TestServer, clientId: string, secret: string): Promise<oidc.Configuration> {
  const config = await oidc.discovery(
    new URL(server.url),
    clientId,
    { client_secret: secret, token_endpoint_auth_method: 'client_secret_basic' },
    oidc.ClientSecretBasic(secret),
    { execute: [oidc.allowInsecureRequests] },
  );
  oidc.enableNonRepudiationChecks(config);
  return config;
}

/**
 * The OAuth error a token request failed with: in the body (ResponseBodyError), or for a refused
 * Basic authentication in the WWW-Authenticate challenge (RFC 6749 §5.2).
 */
async function oauthError(request: Promise<unknown>): Promise<string> {
  try {
    await request;
  } catch (err) {
    if (err instanceof oidc.ResponseBodyError) return err.error;
    if (err instanceof oidc.WWWAuthenticateChallengeError) return String(err.cause[0]?.parameters.error);
    throw err;
  }
  throw new Error('the request succeeded');
}

describe('admin console: clients, in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: RelyingPartyServer | undefined;
  let smtp: MailServer | undefined;
  let browser: Browser | undefined;
  /** The admin's browser (desktop), signed in once; the phone screenshots borrow its cookies. */
  let adminContext: BrowserContext | undefined;
  /** The person's browser, signing in to the relying party. */
  let personContext: BrowserContext | undefined;
  let personId: string;

  /** What the admin learnt in the console. */
  let clientId: string | undefined;
  let secret: string | undefined;
  let callbackUrl: string;
  let newCallbackUrl: string;

  const serverUrl = () => server!.url;

  async function newContext(options: BrowserContextOptions): Promise<BrowserContext> {
    const context = await browser!.newContext({ locale: 'en-GB', colorScheme: 'light', ...options });
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    return context;
  }

  /** A page of the admin's browser, recorded; closed (and checked clean) after `use`. */
  async function asAdmin(use: (page: Page, seen: BrowserRecord) => Promise<void>): Promise<void> {
    const page = await adminContext!.newPage();
    const seen = record(page, serverUrl());
    try {
      await use(page, seen);
      expectCleanBrowser(seen);
    } finally {
      await page.close();
    }
  }

  /** The same console page at phone size, in a context with the admin's cookies. */
  async function phoneShot(pathname: string, heading: string | RegExp, shot: string): Promise<void> {
    const phone = await newContext({ ...CONTEXT_FOR.phone, storageState: await adminContext!.storageState() });
    try {
      const page = await phone.newPage();
      const seen = record(page, serverUrl());
      await page.goto(`${serverUrl()}${pathname}`);
      await checkConsolePage(page, 'phone', heading, shot);
      expectCleanBrowser(seen);
    } finally {
      await phone.close();
    }
  }

  /**
   * The person signs in to the relying party in their browser (password, then consent unless
   * already given) and the code is redeemed; returns the tokens.
   */
  async function personSignsIn(redirectUri: string, shotPrefix?: string) {
    const rp = await rpWithSecret(server!, clientId!, secret!);
    const started: Started = await authorizationRequest(rp, { redirect_uri: redirectUri });
    const page = await personContext!.newPage();
    const seen = record(page, serverUrl());
    try {
      const before = relyingParty!.received.length;
      const arrived = page.waitForURL((url) => url.href.startsWith(redirectUri), { timeout: STEP_TIMEOUT });
      await page.goto(started.url.toString());
      // A first visit: sign in, then the consent page. Later: the session and the grant carry it.
      const passedThrough = page.url().startsWith(redirectUri);
      if (!passedThrough) {
        const login = page.getByRole('heading', { level: 1, name: 'Sign in' });
        const consent = page.getByRole('button', { name: 'Allow' });
        await login.or(consent).first().waitFor();
        if (await login.isVisible()) {
          if (shotPrefix) await screenshot(page, `${shotPrefix}-login-desktop.png`);
          await page.getByLabel('Email').fill(PERSON.email);
          await page.getByLabel('Password').fill(PERSON.password);
          await page.getByRole('button', { name: 'Sign in' }).click();
        }
        const reached = page.waitForURL((url) => url.href.startsWith(redirectUri), { timeout: STEP_TIMEOUT }).then(() => true);
        const asked = consent.waitFor().then(() => false);
        if (!(await Promise.race([reached, asked]))) {
          await page.getByRole('heading', { level: 1, name: new RegExp(`^${CLIENT_NAME}\\s+wants to access your account$`) }).waitFor();
          if (shotPrefix) await screenshot(page, `${shotPrefix}-consent-desktop.png`);
          await consent.click();
        }
      }
      await arrived;
      await page.getByText('Back at the app.').waitFor();
      expect(relyingParty!.received).toHaveLength(before + 1);
      const tokens = await oidc.authorizationCodeGrant(rp, relyingParty!.received[before]!, {
        pkceCodeVerifier: started.verifier,
        expectedState: started.state,
        expectedNonce: started.nonce,
        idTokenExpected: true,
      });
      expectCleanBrowser(seen, { pages: !passedThrough });
      return tokens;
    } finally {
      await page.close();
    }
  }

  /** The person's browser is sent to /auth with this redirect URI and gets an error page, not a redirect. */
  async function refusedAtAuth(redirectUri: string, secretForRp: string, shot: string): Promise<string> {
    const rp = await rpWithSecret(server!, clientId!, secretForRp);
    const started = await authorizationRequest(rp, { redirect_uri: redirectUri });
    const page = await personContext!.newPage();
    const seen = record(page, serverUrl());
    try {
      const before = relyingParty!.received.length;
      const response: Response | null = await page.goto(started.url.toString());
      expect(response?.status()).toBe(400);
      expect(new URL(page.url()).origin).toBe(serverUrl());
      await page.getByRole('heading', { level: 1, name: 'Something is wrong with this request' }).waitFor();
      await screenshot(page, shot);
      expect(relyingParty!.received).toHaveLength(before);
      // The one console line is Chromium's report of the 400 itself; nothing else went wrong.
      expect(seen.console.filter((line) => !/the server responded with a status of 400/.test(line))).toEqual([]);
      expect(seen.httpErrors).toEqual([`GET /auth 400`]);
      expect(seen.pageErrors).toEqual([]);
      return (await page.locator('.support-info code').first().innerText()).trim();
    } finally {
      await page.close();
    }
  }

  beforeAll(async () => {
    await requireChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
    relyingParty = await startRelyingParty();
    callbackUrl = `${relyingParty.origin}/callback`;
    newCallbackUrl = `${relyingParty.origin}/callback-new`;
    smtp = await startMailServer();
    server = await startTestServer('browser_admin_console', {
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', CLIENT_SECRET_GRACE_PERIOD: String(GRACE_SECONDS) },
    });
    await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true });
    personId = (await server.deps.accounts.create({ ...PERSON, emailVerified: true })).id;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    adminContext = await newContext(CONTEXT_FOR.desktop);
    personContext = await newContext(CONTEXT_FOR.desktop);
  }, SUITE_TIMEOUT);

  afterAll(async () => {
    if (process.env.DEBUG_LOGS && server) console.log(server.logs.join('\n'));
    await adminContext?.close();
    await personContext?.close();
    await browser?.close();
    await relyingParty?.close();
    await server?.close();
    await smtp?.close();
  }, SUITE_TIMEOUT);

  it(
    'an admin signs in with a password and a code from the mail and lands on the client list',
    async () => {
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin`);
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        await page.getByLabel('Email').fill(ADMIN.email);
        await page.getByLabel('Password').fill(ADMIN.password);
        const mailsBefore = smtp!.countFor(ADMIN.email);
        await page.getByRole('button', { name: 'Sign in' }).click();

        // The console requires a second factor: a code by email, sent after the password.
        await page.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
        const mail = await smtp!.waitForMail(ADMIN.email, { after: mailsBefore, timeoutMs: MAIL_TIMEOUT });
        await page.getByLabel('Code from the email').fill(codeFrom(mail));
        await page.getByRole('button', { name: 'Continue' }).click();

        await page.waitForURL(`${serverUrl()}/admin/clients`);
        await checkConsolePage(page, 'desktop', 'Clients', undefined);
        await expect(page.getByRole('link', { name: 'Clients', exact: true }).getAttribute('aria-current')).resolves.toBe('page');
        await expect(page.getByText(ADMIN.email).isVisible()).resolves.toBe(true);
        // The built-in clients are listed.
        await expect(page.getByRole('cell', { name: 'admin-console' }).isVisible()).resolves.toBe(true);
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'creates a confidential client through the form and sees its secret once',
    async () => {
      await phoneShot('/admin/clients/new', 'New client', 'admin-clients-create-phone.png');

      // A mistake first: the form comes back (400) with what was typed and the message beside the field.
      const mistaken = await adminContext!.newPage();
      try {
        const seen = record(mistaken, serverUrl());
        await mistaken.goto(`${serverUrl()}/admin/clients/new`);
        await mistaken.getByLabel('Display name').fill(CLIENT_NAME);
        await mistaken.getByLabel('Redirect URIs', { exact: true }).fill('http://app.example.com/callback');
        await mistaken.getByRole('button', { name: 'Create client' }).click();
        await mistaken.locator('.error-summary').waitFor();
        await checkConsolePage(mistaken, 'desktop', 'New client', 'admin-clients-create-errors-desktop.png');
        const redirects = mistaken.getByLabel('Redirect URIs', { exact: true });
        await expect(redirects.getAttribute('aria-invalid')).resolves.toBe('true');
        await expect(redirects.inputValue()).resolves.toBe('http://app.example.com/callback');
        await expect(mistaken.locator('#f-redirectUris-error').innerText()).resolves.toContain('http://app.example.com/callback');
        await expect(mistaken.getByLabel('Display name').inputValue()).resolves.toBe(CLIENT_NAME);
        // The summary links to the field.
        await mistaken.locator('.error-summary a').first().click();
        expect(new URL(mistaken.url()).hash).toBe('#f-redirectUris');
        // Chromium reports the 400 itself; nothing else went wrong.
        expect(seen.console.filter((line) => !/the server responded with a status of 400/.test(line))).toEqual([]);
        expect(seen.httpErrors).toEqual(['POST /admin/clients 400']);
        expect(seen.pageErrors).toEqual([]);
      } finally {
        await mistaken.close();
      }
      expect((await server!.deps.clients.list({ search: CLIENT_NAME })).total).toBe(0);

      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients`);
        await page.getByRole('link', { name: 'New client' }).click();
        await checkConsolePage(page, 'desktop', 'New client', 'admin-clients-create-desktop.png');

        await page.getByLabel('Display name').fill(CLIENT_NAME);
        await page.getByLabel('Redirect URIs', { exact: true }).fill(callbackUrl);
        // Also client credentials, to ask the token endpoint about its secrets directly.
        await page.getByLabel(/^Client credentials/).check();
        await expect(page.getByLabel(/^Authorization code/).isChecked()).resolves.toBe(true);
        await expect(page.getByLabel('Token endpoint authentication').inputValue()).resolves.toBe('client_secret_basic');
        await page.getByRole('button', { name: 'Create client' }).click();

        await checkConsolePage(page, 'desktop', 'Client created', 'admin-clients-secret-desktop.png');
        const shownId = (await page.locator('#client-id').innerText()).trim();
        const shownSecret = (await page.locator('#client-secret').innerText()).trim();
        expect(shownSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(page.url()).toBe(`${serverUrl()}/admin/clients/${shownId}/secret`);
        clientId = shownId;
        secret = shownSecret;

        // Once: a reload asks the server again, which has nothing to show.
        await page.reload();
        await page.getByRole('heading', { level: 1, name: 'Client secret' }).waitFor();
        await expect(page.getByText('cannot be shown again').isVisible()).resolves.toBe(true);
        expect(await page.content()).not.toContain(shownSecret);
        // Back is the form (the POST was redirected); Forward asks the server again.
        await page.goBack();
        await page.getByRole('heading', { level: 1, name: 'New client' }).waitFor();
        expect(await page.content()).not.toContain(shownSecret);
        await page.goForward();
        await page.getByRole('heading', { level: 1, name: 'Client secret' }).waitFor();
        expect(await page.content()).not.toContain(shownSecret);

        await page.getByRole('link', { name: 'Go to the client' }).click();
        await checkConsolePage(page, 'desktop', CLIENT_NAME, 'admin-clients-detail-desktop.png');
        await expect(page.getByText('Set when the client was made (never rotated).').isVisible()).resolves.toBe(true);
        expect(await page.content()).not.toContain(shownSecret);

        // The list, with the new client among the built-in ones; no secret there either.
        await page.getByRole('link', { name: 'Clients', exact: true }).first().click();
        await checkConsolePage(page, 'desktop', 'Clients', 'admin-clients-list-desktop.png');
        const row = page.getByRole('row').filter({ hasText: CLIENT_NAME });
        await expect(row.getByRole('cell').nth(1).innerText()).resolves.toBe(shownId);
        await expect(row.getByRole('cell').nth(2).innerText()).resolves.toBe('confidential');
        expect(await page.content()).not.toContain(shownSecret);

        // The search box finds it by name.
        await page.getByLabel('Search by name or client id').fill('registered');
        await page.getByRole('button', { name: 'Search' }).click();
        await page.waitForURL(`${serverUrl()}/admin/clients?q=registered`);
        await expect(page.getByText('1 client matches').isVisible()).resolves.toBe(true);
      });
      await phoneShot('/admin/clients', 'Clients', 'admin-clients-list-phone.png');
      await phoneShot(`/admin/clients/${clientId}`, CLIENT_NAME, 'admin-clients-detail-phone.png');
      expect(await server!.deps.clients.get(clientId!)).toMatchObject({ name: CLIENT_NAME, redirectUris: [callbackUrl], public: false });
    },
    SUITE_TIMEOUT,
  );

  it(
    'the new client signs a person in: authorization code with PKCE, consent, callback, tokens',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the previous test');
      const tokens = await personSignsIn(callbackUrl, 'admin-created-client');
      expect(tokens.claims()?.sub).toBe(personId);
      expect(tokens.claims()?.aud).toBe(clientId);
      expect(tokens.access_token).toBeTruthy();
    },
    SUITE_TIMEOUT,
  );

  it(
    'after the admin edits the redirect URI, the old one gets an error page (no redirect) and the new one works',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the earlier tests');
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await page.getByRole('link', { name: 'Edit', exact: true }).click();
        await checkConsolePage(page, 'desktop', 'Edit client', 'admin-clients-edit-desktop.png');
        const redirects = page.getByLabel('Redirect URIs', { exact: true });
        await expect(redirects.inputValue()).resolves.toBe(callbackUrl);
        await redirects.fill(newCallbackUrl);
        await page.getByRole('button', { name: 'Save changes' }).click();
        await checkConsolePage(page, 'desktop', CLIENT_NAME, undefined);
        await expect(page.getByText('The changes were saved.').isVisible()).resolves.toBe(true);
        await expect(page.getByRole('listitem').filter({ hasText: newCallbackUrl }).isVisible()).resolves.toBe(true);
      });

      expect(await refusedAtAuth(callbackUrl, secret, 'admin-clients-old-redirect-refused-desktop.png')).toBe('invalid_redirect_uri');
      // The person's session and consent carry over: straight back to the new callback.
      const tokens = await personSignsIn(newCallbackUrl);
      expect(tokens.claims()?.sub).toBe(personId);
      expect(relyingParty!.received.at(-1)?.pathname).toBe('/callback-new');
    },
    SUITE_TIMEOUT,
  );

  it(
    'after a rotation both secrets work at the token endpoint during the grace period, then only the new one',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the earlier tests');
      const oldRp = await rpWithSecret(server!, clientId, secret);
      let rotated = '';
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await page.getByRole('link', { name: 'Rotate secret' }).click();
        await checkConsolePage(page, 'desktop', 'Rotate the client secret?', 'admin-clients-rotate-desktop.png');
        await expect(page.locator('.grace-period').innerText()).resolves.toContain(`${GRACE_SECONDS} seconds`);
        await page.getByRole('button', { name: 'Rotate secret' }).click();
        await page.getByRole('heading', { level: 1, name: 'Secret rotated' }).waitFor();
        rotated = (await page.locator('#client-secret').innerText()).trim();
        await expect(page.locator('.grace-period').innerText()).resolves.toMatch(
          new RegExp(`^The previous secret keeps working until .+ \\(a grace period of ${GRACE_SECONDS} seconds\\)`),
        );
      });
      expect(rotated).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(rotated).not.toBe(secret);
      const newRp = await rpWithSecret(server!, clientId, rotated);

      const withOld = await oidc.clientCredentialsGrant(oldRp);
      expect(withOld.access_token).toBeTruthy();
      const withNew = await oidc.clientCredentialsGrant(newRp);
      expect(withNew.access_token).toBeTruthy();
      // Still inside the grace period: the checks above were not too slow to mean anything.
      const graceEnds = (await server!.deps.clients.get(clientId))!.previousSecretExpiresAt!;
      expect(Date.now()).toBeLessThan(graceEnds.getTime());

      await sleep(graceEnds.getTime() - Date.now() + 250);
      expect(await oauthError(oidc.clientCredentialsGrant(oldRp))).toBe('invalid_client');
      const afterGrace = await oidc.clientCredentialsGrant(newRp);
      expect(afterGrace.access_token).toBeTruthy();
      secret = rotated;

      // The detail page tells when it was rotated; the grace period is over.
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await checkConsolePage(page, 'desktop', CLIENT_NAME, undefined);
        await expect(page.locator('.secret-status').innerText()).resolves.toMatch(/^Rotated at .+ UTC; the previous secret no longer works\.$/);
        expect(await page.content()).not.toContain(rotated);
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'once the admin deletes the client, it gets no tokens and /auth shows an error page',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the earlier tests');
      const rp = await rpWithSecret(server!, clientId, secret);
      expect((await oidc.clientCredentialsGrant(rp)).access_token).toBeTruthy();

      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await page.getByRole('link', { name: 'Delete', exact: true }).click();
        await checkConsolePage(page, 'desktop', 'Delete this client?', 'admin-clients-delete-desktop.png');
        await page.getByRole('button', { name: 'Delete client' }).click();
        await page.waitForURL(`${serverUrl()}/admin/clients?notice=deleted`);
        await checkConsolePage(page, 'desktop', 'Clients', undefined);
        await expect(page.getByText('The client was deleted').isVisible()).resolves.toBe(true);
        await expect(page.getByRole('link', { name: CLIENT_NAME }).count()).resolves.toBe(0);
      });

      expect(await oauthError(oidc.clientCredentialsGrant(rp))).toBe('invalid_client');
      expect(await refusedAtAuth(newCallbackUrl, secret, 'admin-clients-deleted-client-refused-desktop.png')).toBe('invalid_client');
    },
    SUITE_TIMEOUT,
  );
});
