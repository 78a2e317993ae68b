/**
 * Sign-in in a real browser: Debian's headless Chromium driven by playwright-core, against the
 * real app (startTestServer) and a real relying party (a tiny HTTP server of our own whose
 * /callback receives the code, which the test then exchanges with openid-client).
 *
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
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';

import type { CreatedClient } from '../../src/clients/client.service.js';
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
const SUITE_TIMEOUT = 60_000;
const STEP_TIMEOUT = 15_000;

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCREENSHOTS = path.join(REPO_ROOT, 'test-artifacts', 'screenshots');

const CLIENT_NAME = 'Browser Test App';
const USER = { email: 'grace@example.com', password: 'a long and correct passphrase', name: 'Grace Hopper' };
const SCOPE = 'openid email profile';
/** What the consent page says for each requested scope (src/interactions/scope-descriptions.ts). */
const SCOPE_TEXTS = ['Know who you are when you sign in', 'See your email address', 'See your name and basic profile'];

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

/** The relying party: records every callback it receives and shows a plain page. */
interface RelyingPartyServer {
  callbackUrl: string;
  received: URL[];
  close(): Promise<void>;
}

async function startRelyingParty(): Promise<RelyingPartyServer> {
  const received: URL[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    if (req.method === 'GET' && url.pathname === '/callback') {
      received.push(url);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      // An empty icon so the browser does not ask this server for /favicon.ico.
      res.end('<!doctype html><html lang="en"><head><title>Browser Test App</title><link rel="icon" href="data:,"></head><body><p>Back at the app.</p></body></html>');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    callbackUrl: `http://127.0.0.1:${port}/callback`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

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

function cspViolations(seen: BrowserRecord): string[] {
  return seen.console.filter((line) => CSP_VIOLATION.test(line));
}

/**
 * Waits until the browser is back at the app's callback. Fails at once, with the browser's own words,
 * when a CSP violation blocks the way (Chromium applies form-action to the redirects after a form POST).
 */
async function submitAndReachCallback(
  page: Page,
  seen: BrowserRecord,
  callbackUrl: string,
  submit: () => Promise<void>,
  screenshotName: string,
): Promise<void> {
  // Both waiters are armed before the click: the violation can be logged while click() is still running.
  const arrived = page.waitForURL((url) => url.href.startsWith(callbackUrl), { timeout: STEP_TIMEOUT }).then(
    () => ({ ok: true as const }),
    (error: unknown) => ({ ok: false as const, reason: String(error) }),
  );
  const blocked = page
    .waitForEvent('console', { predicate: (message) => CSP_VIOLATION.test(message.text()), timeout: STEP_TIMEOUT })
    .then(
      (message) => ({ ok: false as const, reason: `blocked by CSP: ${message.text().trim()}` }),
      // No violation within the time: let `arrived` decide.
      () => arrived,
    );
  await submit();
  const outcome = await Promise.race([arrived, blocked]);
  if (!outcome.ok) {
    await screenshot(page, screenshotName);
    // A blocked navigation aborts (ERR_ABORTED) about when the violation is logged: name the violation if there is one.
    await page.waitForTimeout(250);
    const violations = cspViolations(seen);
    const why = violations.length ? `blocked by CSP: ${violations.join(' | ').trim()}` : outcome.reason;
    throw new Error(`the browser did not reach the app's callback (now at ${page.url()}): ${why}; console: ${JSON.stringify(seen.console)}`);
  }
}

function expectCleanBrowser(seen: BrowserRecord, allowedHttpErrors: string[] = []): void {
  expect(cspViolations(seen)).toEqual([]);
  expect(seen.pageErrors).toEqual([]);
  expect(seen.failedRequests).toEqual([]);
  expect(seen.httpErrors).toEqual(allowedHttpErrors);
  // The one stylesheet loaded (200, or 304 from the context's cache) on every page.
  expect(seen.stylesheets.length).toBeGreaterThan(0);
  for (const line of seen.stylesheets) expect(line).toMatch(/^\/static\/app\.css (200|304)$/);
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, name), fullPage: true });
}

interface Started {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

async function authorizationRequest(rp: oidc.Configuration, redirectUri: string): Promise<Started> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: redirectUri,
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return { url, verifier, state, nonce };
}

/** Minimal typing for the one browser-side call we make (the project compiles without the DOM lib). */
interface BrowserWindow {
  getComputedStyle(element: unknown): { backgroundColor: string; color: string };
}

describe('sign-in in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: RelyingPartyServer | undefined;
  let browser: Browser | undefined;
  let rp: oidc.Configuration;
  let client: CreatedClient;
  let accountId: string;

  beforeAll(async () => {
    await requireChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
    relyingParty = await startRelyingParty();
    server = await startTestServer('browser');
    const account = await server.deps.accounts.create({ ...USER, emailVerified: true });
    accountId = account.id;
    client = await server.deps.clients.create({ name: CLIENT_NAME, redirectUris: [relyingParty.callbackUrl] });
    rp = await oidc.discovery(
      new URL(server.url),
      client.clientId,
      { client_secret: client.clientSecret! },
      oidc.ClientSecretBasic(client.clientSecret!),
      { execute: [oidc.allowInsecureRequests] },
    );
    oidc.enableNonRepudiationChecks(rp);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, SUITE_TIMEOUT);

  afterAll(async () => {
    if (process.env.DEBUG_LOGS && server) console.log(server.logs.join('\n'));
    await browser?.close();
    await relyingParty?.close();
    await server?.close();
  }, SUITE_TIMEOUT);

  async function newContext(options: BrowserContextOptions): Promise<BrowserContext> {
    const context = await browser!.newContext({ locale: 'en-GB', colorScheme: 'light', ...options });
    context.setDefaultTimeout(STEP_TIMEOUT);
    return context;
  }

  it(
    'on a phone: login page, wrong password, consent, Allow, back at the app with a code that exchanges for tokens',
    async () => {
      const context = await newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
      try {
        const page = await context.newPage();
        const seen = record(page, server!.url);
        const started = await authorizationRequest(rp, relyingParty!.callbackUrl);

        await page.goto(started.url.toString());
        const interactionPath = new URL(page.url()).pathname;
        expect(interactionPath).toMatch(/^\/interaction\/[A-Za-z0-9_-]+$/);
        const email = page.getByLabel('Email');
        const password = page.getByLabel('Password');
        const signIn = page.getByRole('button', { name: 'Sign in' });
        await expect(page.getByRole('heading', { level: 1, name: 'Sign in' }).isVisible()).resolves.toBe(true);
        await expect(page.getByText(CLIENT_NAME, { exact: true }).isVisible()).resolves.toBe(true);
        await expect(page.title()).resolves.toMatch(/^Sign in/);
        expect(await email.getAttribute('autocomplete')).toBe('username');
        expect(await email.getAttribute('type')).toBe('email');
        expect(await password.getAttribute('autocomplete')).toBe('current-password');
        expect(await password.getAttribute('type')).toBe('password');
        await expect(signIn.isVisible()).resolves.toBe(true);
        await expect(page.getByRole('button', { name: /Cancel/ }).isVisible()).resolves.toBe(true);

        // The stylesheet applied: the primary button is painted, not the browser's default grey or transparent.
        const buttonStyle = await signIn.evaluate((element) => {
          const style = (globalThis as unknown as BrowserWindow).getComputedStyle(element);
          return { background: style.backgroundColor, color: style.color };
        });
        expect(buttonStyle.background).not.toMatch(/^(transparent|rgba\(0, 0, 0, 0\)|rgb\(239, 239, 239\))$/);
        expect(buttonStyle.color).not.toBe(buttonStyle.background);
        // …and laid out: a full-width touch target (an unstyled button is only as wide as its text).
        const buttonBox = await signIn.boundingBox();
        expect(buttonBox!.width).toBeGreaterThan(PHONE.width * 0.8);
        expect(buttonBox!.height).toBeGreaterThanOrEqual(44);
        // Nothing overflows sideways on a 390 px screen.
        const overflow = await page.evaluate(() => {
          const doc = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
          return doc.documentElement.scrollWidth - doc.documentElement.clientWidth;
        });
        expect(overflow).toBeLessThanOrEqual(0);
        await screenshot(page, 'login.png');

        // A wrong password first: the same page again, with an alert, the email kept and the password cleared.
        await email.fill(USER.email);
        await password.fill('not the right passphrase');
        await signIn.click();
        const alert = page.getByRole('alert');
        await alert.waitFor();
        await expect(alert.innerText()).resolves.toContain('Incorrect email or password.');
        expect(await page.getByLabel('Email').inputValue()).toBe(USER.email);
        expect(await page.getByLabel('Password').inputValue()).toBe('');
        expect(await page.getByLabel('Password').getAttribute('aria-describedby')).toBe('login-error');
        await screenshot(page, 'login-error.png');

        // Then the right one: the consent page names the client and the requested scopes.
        await page.getByLabel('Password').fill(USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        const consentHeading = page.getByRole('heading', { level: 1 });
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        await expect(consentHeading.innerText()).resolves.toMatch(new RegExp(`^${CLIENT_NAME}\\s+wants to access your account$`));
        await expect(page.getByText(USER.email).first().isVisible()).resolves.toBe(true);
        const permissions = await page.getByRole('listitem').allInnerTexts();
        for (const text of SCOPE_TEXTS) expect(permissions).toContain(text);
        await expect(page.getByRole('button', { name: 'Deny' }).isVisible()).resolves.toBe(true);
        await screenshot(page, 'consent.png');

        // Allow: the browser follows the redirects (form-action applies to them) back to the app.
        await submitAndReachCallback(
          page,
          seen,
          relyingParty!.callbackUrl,
          () => page.getByRole('button', { name: 'Allow' }).click(),
          'failure-after-allow.png',
        );
        await expect(page.getByText('Back at the app.').isVisible()).resolves.toBe(true);

        expect(relyingParty!.received).toHaveLength(1);
        const callback = relyingParty!.received[0]!;
        expect(callback.href).toBe(page.url());
        expect(callback.searchParams.get('code')).toBeTruthy();
        expect(callback.searchParams.get('state')).toBe(started.state);
        expect(callback.searchParams.get('iss')).toBe(server!.url); // RFC 9207

        const tokens = await oidc.authorizationCodeGrant(rp, callback, {
          pkceCodeVerifier: started.verifier,
          expectedState: started.state,
          expectedNonce: started.nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims()!;
        expect(claims.sub).toBe(accountId);
        expect(claims.aud).toBe(client.clientId);
        expect(claims.nonce).toBe(started.nonce);
        expect(tokens.access_token).toBeTruthy();

        // The only HTTP error our server sent is the 401 page for the wrong password.
        expectCleanBrowser(seen, [`POST ${interactionPath}/login 401`]);
      } finally {
        await context.close();
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'at desktop size: the login page renders with the stylesheet',
    async () => {
      const context = await newContext({ viewport: DESKTOP });
      try {
        const page = await context.newPage();
        const seen = record(page, server!.url);
        const started = await authorizationRequest(rp, relyingParty!.callbackUrl);
        await page.goto(started.url.toString());
        await page.getByRole('button', { name: 'Sign in' }).waitFor();
        await expect(page.getByLabel('Email').isVisible()).resolves.toBe(true);
        await expect(page.getByLabel('Password').isVisible()).resolves.toBe(true);
        // The card is centred and narrower than the window: layout CSS applied.
        const box = await page.locator('.card').boundingBox();
        expect(box).not.toBeNull();
        expect(box!.width).toBeLessThan(DESKTOP.width / 2);
        expect(Math.abs(box!.x + box!.width / 2 - DESKTOP.width / 2)).toBeLessThan(20);
        await screenshot(page, 'login-desktop.png');
        expectCleanBrowser(seen);
      } finally {
        await context.close();
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'without JavaScript: sign-in reaches the consent page, and Allow returns to the app',
    async () => {
      const context = await newContext({ viewport: PHONE, javaScriptEnabled: false });
      try {
        const page = await context.newPage();
        const seen = record(page, server!.url);
        const started = await authorizationRequest(rp, relyingParty!.callbackUrl);
        const before = relyingParty!.received.length;

        await page.goto(started.url.toString());
        await page.getByLabel('Email').fill(USER.email);
        await page.getByLabel('Password').fill(USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        await expect(page.getByRole('heading', { level: 1 }).innerText()).resolves.toContain(CLIENT_NAME);

        await submitAndReachCallback(
          page,
          seen,
          relyingParty!.callbackUrl,
          () => page.getByRole('button', { name: 'Allow' }).click(),
          'failure-no-js-after-allow.png',
        );
        expect(relyingParty!.received).toHaveLength(before + 1);
        const callback = relyingParty!.received[before]!;
        expect(callback.searchParams.get('state')).toBe(started.state);
        const tokens = await oidc.authorizationCodeGrant(rp, callback, {
          pkceCodeVerifier: started.verifier,
          expectedState: started.state,
          expectedNonce: started.nonce,
          idTokenExpected: true,
        });
        expect(tokens.claims()!.sub).toBe(accountId);
        expectCleanBrowser(seen);
      } finally {
        await context.close();
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'Cancel on the login page returns to the app with access_denied',
    async () => {
      const context = await newContext({ viewport: PHONE });
      try {
        const page = await context.newPage();
        const seen = record(page, server!.url);
        const started = await authorizationRequest(rp, relyingParty!.callbackUrl);
        const before = relyingParty!.received.length;

        await page.goto(started.url.toString());
        await submitAndReachCallback(
          page,
          seen,
          relyingParty!.callbackUrl,
          () => page.getByRole('button', { name: /Cancel/ }).click(),
          'failure-after-cancel.png',
        );
        expect(relyingParty!.received).toHaveLength(before + 1);
        const callback = relyingParty!.received[before]!;
        expect(callback.searchParams.get('error')).toBe('access_denied');
        expect(callback.searchParams.get('state')).toBe(started.state);
        expect(callback.searchParams.get('code')).toBeNull();
        await expect(
          oidc.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state }),
        ).rejects.toMatchObject({ error: 'access_denied' });
        expectCleanBrowser(seen);
      } finally {
        await context.close();
      }
    },
    SUITE_TIMEOUT,
  );
});
