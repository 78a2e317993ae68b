/**
 * Sign-in with an email code and with TOTP, in a real browser: Debian's headless Chromium driven
 * by playwright-core, against the real app (startTestServer) and a real SMTP server on loopback
 * (codes are read from the mail a person would get). The relying party is openid-client (the
 * shared rp.ts helpers) with a tiny HTTP server of our own whose /callback receives the code, as in
 * sign-in.browser.test.ts.
 *
 * NOTE: not rp.ts's REDIRECT_URI (http://127.0.0.1:9/callback): Chromium refuses port 9 as unsafe
 * (ERR_UNSAFE_PORT), and context.route does not see the redirect hop that leads there, so the
 * browser needs a callback that really answers.
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
import { codeFrom, startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { authorizationRequest, rpFor } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { totpCode } from '../support/second-factor.js';
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

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCREENSHOTS = path.join(REPO_ROOT, 'test-artifacts', 'screenshots');

const CLIENT_NAME = 'Browser Code App';
const MFA_CLIENT_NAME = 'Browser Bank';
const PASSWORD = 'a long and correct passphrase';
/** One person per run of the email-code flow: sign-in codes are throttled per address (one a minute). */
const CODE_USERS = {
  phone: { email: 'ada.phone@example.com', name: 'Ada Lovelace' },
  desktop: { email: 'ada.desktop@example.com', name: 'Ada Lovelace' },
  noJs: { email: 'ada.nojs@example.com', name: 'Ada Lovelace' },
};
const TOTP_USER = { email: 'katherine@example.com', password: PASSWORD, name: 'Katherine Johnson' };

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

function cspViolations(seen: BrowserRecord): string[] {
  return seen.console.filter((line) => CSP_VIOLATION.test(line));
}

function expectCleanBrowser(seen: BrowserRecord): void {
  expect(cspViolations(seen)).toEqual([]);
  expect(seen.console.filter((line) => /^(error|warning):/.test(line))).toEqual([]);
  expect(seen.pageErrors).toEqual([]);
  expect(seen.failedRequests).toEqual([]);
  expect(seen.httpErrors).toEqual([]);
  // The one stylesheet loaded (200, or 304 from the context's cache) on every page.
  expect(seen.stylesheets.length).toBeGreaterThan(0);
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
  getComputedStyle(element: unknown): { backgroundColor: string; color: string; maxWidth: string; paddingLeft: string };
  document: {
    documentElement: { scrollWidth: number; clientWidth: number };
    querySelectorAll(selector: string): Iterable<BrowserElement>;
  };
}

/**
 * The checks every page gets: its heading, the stylesheet applied, no sideways overflow on a phone,
 * a label for every input a person can see; then a screenshot.
 */
async function checkPage(page: Page, size: Size | 'no-js', heading: string | RegExp, shot: string): Promise<void> {
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await page.waitForLoadState('load');

  // The stylesheet applied: the card is laid out (2rem padding, 1.25rem sideways on a phone, where
  // it fills the width) and the first button is painted, not the browser's default grey or transparent.
  const card = await page.locator('.card').evaluate((element) => {
    const style = (globalThis as unknown as BrowserGlobals).getComputedStyle(element);
    return { maxWidth: style.maxWidth, paddingLeft: style.paddingLeft };
  });
  expect(card).toEqual(size === 'desktop' ? { maxWidth: '416px', paddingLeft: '32px' } : { maxWidth: 'none', paddingLeft: '20px' });
  const button = await page
    .locator('.button')
    .first()
    .evaluate((element) => {
      const style = (globalThis as unknown as BrowserGlobals).getComputedStyle(element);
      return { background: style.backgroundColor, color: style.color };
    });
  expect(button.background).not.toMatch(/^(rgb\(239, 239, 239\)|buttonface)$/i);
  expect(button.color).not.toBe(button.background);

  if (size !== 'desktop') {
    const overflow = await page.evaluate(() => {
      const doc = (globalThis as unknown as BrowserGlobals).document;
      return doc.documentElement.scrollWidth - doc.documentElement.clientWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
  } else {
    // Centred and narrower than the window.
    const box = await page.locator('.card').boundingBox();
    expect(box!.width).toBeLessThan(DESKTOP.width / 2);
    expect(Math.abs(box!.x + box!.width / 2 - DESKTOP.width / 2)).toBeLessThan(20);
  }

  // Every input a person can see or reach has a label (the hidden username for password managers
  // on the security page is aria-hidden and out of the tab order).
  const unlabelled = await page.evaluate(() => {
    const inputs = [...(globalThis as unknown as BrowserGlobals).document.querySelectorAll('input, select, textarea')];
    return inputs
      .filter((input) => input.type !== 'hidden' && input.getAttribute('aria-hidden') !== 'true')
      .filter((input) => !(input.labels && input.labels.length > 0) && !input.getAttribute('aria-label'))
      .map((input) => `${input.type} name=${input.name} id=${input.id}`);
  });
  expect(unlabelled).toEqual([]);

  await screenshot(page, shot);
}

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
      res.end('<!doctype html><html lang="en"><head><title>Back at the app</title><link rel="icon" href="data:,"></head><body><p>Back at the app.</p></body></html>');
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

/**
 * Clicks, then waits until the browser is back at the app's callback. Fails at once, with the browser's own
 * words, when a CSP violation blocks the way (Chromium applies form-action to the redirects after a POST).
 */
async function submitAndReachCallback(
  page: Page,
  seen: BrowserRecord,
  callbackUrl: string,
  submit: () => Promise<void>,
  failureShot: string,
): Promise<void> {
  const arrived = page.waitForURL((url) => url.href.startsWith(callbackUrl), { timeout: STEP_TIMEOUT }).then(
    () => ({ ok: true as const }),
    (error: unknown) => ({ ok: false as const, reason: String(error) }),
  );
  const blocked = page
    .waitForEvent('console', { predicate: (message) => CSP_VIOLATION.test(message.text()), timeout: STEP_TIMEOUT })
    .then(
      (message) => ({ ok: false as const, reason: `blocked by CSP: ${message.text().trim()}` }),
      () => arrived,
    );
  await submit();
  const outcome = await Promise.race([arrived, blocked]);
  if (!outcome.ok) {
    await screenshot(page, failureShot);
    await page.waitForTimeout(250);
    const violations = cspViolations(seen);
    const why = violations.length ? `blocked by CSP: ${violations.join(' | ').trim()}` : outcome.reason;
    throw new Error(`the browser did not reach the app's callback (now at ${page.url()}): ${why}; console: ${JSON.stringify(seen.console)}`);
  }
  await page.getByText('Back at the app.').waitFor();
}

async function exchange(rp: oidc.Configuration, started: Started, callback: URL) {
  return oidc.authorizationCodeGrant(rp, callback, {
    pkceCodeVerifier: started.verifier,
    expectedState: started.state,
    expectedNonce: started.nonce,
    idTokenExpected: true,
  });
}

describe('second factors in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: RelyingPartyServer | undefined;
  let smtp: MailServer | undefined;
  let browser: Browser | undefined;
  let client: CreatedClient;
  let mfaClient: CreatedClient;
  let rp: oidc.Configuration;
  let mfaRp: oidc.Configuration;
  const accountIds = new Map<string, string>();

  /** Learnt in the browser during enrolment; the later tests sign in with them. */
  let totpSecret: string | undefined;
  let recoveryCodes: string[] = [];

  beforeAll(async () => {
    await requireChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
    relyingParty = await startRelyingParty();
    smtp = await startMailServer();
    // Without the email fallback, a require_mfa client makes an account without TOTP enrol one.
    server = await startTestServer('browser-second-factor', {
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', MFA_EMAIL_FALLBACK: 'false' },
    });
    for (const user of [...Object.values(CODE_USERS), TOTP_USER]) {
      const account = await server.deps.accounts.create({ ...user, password: PASSWORD, emailVerified: true });
      accountIds.set(user.email, account.id);
    }
    client = await server.deps.clients.create({ name: CLIENT_NAME, redirectUris: [relyingParty.callbackUrl] });
    mfaClient = await server.deps.clients.create({ name: MFA_CLIENT_NAME, redirectUris: [relyingParty.callbackUrl], requireMfa: true });
    rp = await rpFor(server, client);
    mfaRp = await rpFor(server, mfaClient);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  }, SUITE_TIMEOUT);

  afterAll(async () => {
    if (process.env.DEBUG_LOGS && server) console.log(server.logs.join('\n'));
    await browser?.close();
    await relyingParty?.close();
    await server?.close();
    await smtp?.close();
  }, SUITE_TIMEOUT);

  async function newContext(options: BrowserContextOptions): Promise<BrowserContext> {
    const context = await browser!.newContext({ locale: 'en-GB', colorScheme: 'light', ...options });
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    return context;
  }

  /** Login page → "Email me a sign-in code" → code from the mail → consent → Allow → callback. */
  async function emailCodeSignIn(size: Size | 'no-js', user: { email: string }, options: BrowserContextOptions): Promise<void> {
    const context = await newContext(options);
    try {
      const before = relyingParty!.received.length;
      const page = await context.newPage();
      const seen = record(page, server!.url);
      const started = await authorizationRequest(rp, { redirect_uri: relyingParty!.callbackUrl });

      await page.goto(started.url.toString());
      expect(new URL(page.url()).pathname).toMatch(/^\/interaction\/[A-Za-z0-9_-]+$/);
      await checkPage(page, size, 'Sign in', `email-code-login-${size}.png`);
      const emailInput = page.getByLabel('Email');
      expect(await emailInput.getAttribute('type')).toBe('email');
      await expect(page.getByLabel('Password').isVisible()).resolves.toBe(true);
      await expect(page.getByText(CLIENT_NAME, { exact: true }).isVisible()).resolves.toBe(true);
      const sendCode = page.getByRole('button', { name: 'Email me a sign-in code' });
      await expect(sendCode.isVisible()).resolves.toBe(true);

      // No password: the button skips the form's validation and posts the email alone.
      await emailInput.fill(user.email);
      const mailsBefore = smtp!.countFor(user.email);
      await sendCode.click();
      await checkPage(page, size, 'Check your email', `email-code-${size}.png`);
      await expect(page.locator('.card-subtitle').innerText()).resolves.toContain(user.email);
      const codeInput = page.getByLabel('Code from the email');
      expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
      expect(await codeInput.getAttribute('inputmode')).toBe('numeric');

      const mail = await smtp!.waitForMail(user.email, { after: mailsBefore, timeoutMs: MAIL_TIMEOUT });
      await codeInput.fill(codeFrom(mail));
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      await checkPage(page, size, new RegExp(`^${CLIENT_NAME}\\s+wants to access your account$`), `email-code-consent-${size}.png`);
      await expect(page.getByText(user.email).first().isVisible()).resolves.toBe(true);

      await submitAndReachCallback(
        page,
        seen,
        relyingParty!.callbackUrl,
        () => page.getByRole('button', { name: 'Allow' }).click(),
        `failure-email-code-${size}.png`,
      );
      expect(relyingParty!.received).toHaveLength(before + 1);
      const callback = relyingParty!.received[before]!;
      expect(callback.searchParams.get('state')).toBe(started.state);
      expect(callback.searchParams.get('iss')).toBe(server!.url);
      const tokens = await exchange(rp, started, callback);
      const claims = tokens.claims()!;
      expect(claims.sub).toBe(accountIds.get(user.email));
      expect(claims.amr).toEqual(['email']);
      expect(claims.acr).toBe(server!.config.acr.singleFactor);

      expectCleanBrowser(seen);
    } finally {
      await context.close();
    }
  }

  it(
    'on a phone: sign in with a code from the email, consent, back at the app with a code',
    () => emailCodeSignIn('phone', CODE_USERS.phone, CONTEXT_FOR.phone),
    SUITE_TIMEOUT,
  );

  it(
    'at desktop size: sign in with a code from the email, consent, back at the app with a code',
    () => emailCodeSignIn('desktop', CODE_USERS.desktop, CONTEXT_FOR.desktop),
    SUITE_TIMEOUT,
  );

  it(
    'without JavaScript: sign in with a code from the email still works',
    () => emailCodeSignIn('no-js', CODE_USERS.noJs, { viewport: PHONE, javaScriptEnabled: false }),
    SUITE_TIMEOUT,
  );

  it(
    'on a phone: a require_mfa client makes the person set up TOTP (QR code and key), then shows recovery codes',
    async () => {
      const context = await newContext(CONTEXT_FOR.phone);
      try {
        const before = relyingParty!.received.length;
        const page = await context.newPage();
        const seen = record(page, server!.url);
        const started = await authorizationRequest(mfaRp, { redirect_uri: relyingParty!.callbackUrl });

        await page.goto(started.url.toString());
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        await page.getByLabel('Email').fill(TOTP_USER.email);
        await page.getByLabel('Password').fill(TOTP_USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();

        await checkPage(page, 'phone', 'Set up two-step verification', 'totp-enrol-phone.png');
        await expect(page.locator('.card-subtitle').innerText()).resolves.toContain(MFA_CLIENT_NAME);
        // The QR code is an image the browser decoded (a data: URL the CSP allows), at its full size.
        const qr = page.getByRole('img', { name: /QR code for your authenticator app/ });
        await expect(qr.isVisible()).resolves.toBe(true);
        const natural = await qr.evaluate((element) => {
          const img = element as unknown as { complete: boolean; naturalWidth: number; naturalHeight: number };
          return { complete: img.complete, width: img.naturalWidth, height: img.naturalHeight };
        });
        expect(natural.complete).toBe(true);
        expect(natural.width).toBeGreaterThan(0);
        expect(natural.height).toBeGreaterThan(0);
        const qrBox = await qr.boundingBox();
        expect(qrBox!.width).toBeGreaterThanOrEqual(150);

        // The key for typing by hand, as the person reads it off the screen.
        const groups = await page.locator('.secret-key code span').allInnerTexts();
        expect(groups.length).toBeGreaterThan(1);
        const secret = groups.join('').replace(/\s+/g, '');
        expect(secret).toMatch(/^[A-Z2-7]{16,}$/);

        const codeInput = page.getByLabel('Enter the 6-digit code the app shows');
        expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
        await codeInput.fill(await totpCode(secret));
        await page.getByRole('button', { name: 'Turn on two-step verification' }).click();

        await checkPage(page, 'phone', 'Save your recovery codes', 'totp-recovery-codes-phone.png');
        const codes = (await page.locator('ol.recovery-codes li code').allInnerTexts()).map((code) => code.trim());
        expect(codes).toHaveLength(10);
        expect(new Set(codes).size).toBe(10);
        await expect(page.getByRole('link', { name: 'Download as a text file' }).isVisible()).resolves.toBe(true);
        totpSecret = secret;
        recoveryCodes = codes;

        await page.getByRole('button', { name: "I've saved them, continue" }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        await checkPage(page, 'phone', new RegExp(`^${MFA_CLIENT_NAME}\\s+wants to access your account$`), 'totp-enrol-consent-phone.png');

        await submitAndReachCallback(
          page,
          seen,
          relyingParty!.callbackUrl,
          () => page.getByRole('button', { name: 'Allow' }).click(),
          'failure-totp-enrol-phone.png',
        );
        expect(relyingParty!.received).toHaveLength(before + 1);
        const tokens = await exchange(mfaRp, started, relyingParty!.received[before]!);
        const claims = tokens.claims()!;
        expect(claims.sub).toBe(accountIds.get(TOTP_USER.email));
        expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
        expect(claims.acr).toBe(server!.config.acr.multiFactor);

        expectCleanBrowser(seen);
      } finally {
        await context.close();
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'on a phone, in a fresh browser: password, then the code from the authenticator app; the security page says it is on',
    async () => {
      if (!totpSecret) throw new Error('needs the TOTP enrolled by the previous test');
      const context = await newContext(CONTEXT_FOR.phone);
      try {
        const before = relyingParty!.received.length;
        const page = await context.newPage();
        const seen = record(page, server!.url);
        const started = await authorizationRequest(rp, { redirect_uri: relyingParty!.callbackUrl });

        await page.goto(started.url.toString());
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        await page.getByLabel('Email').fill(TOTP_USER.email);
        await page.getByLabel('Password').fill(TOTP_USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();

        await checkPage(page, 'phone', 'Two-step verification', 'totp-sign-in-phone.png');
        const codeInput = page.getByLabel('Authentication code');
        expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
        expect(await codeInput.getAttribute('inputmode')).toBe('numeric');

        // A look at the recovery-code page, and back.
        await page.getByRole('link', { name: "Can't use your app? Use a recovery code" }).click();
        await checkPage(page, 'phone', 'Use a recovery code', 'totp-recovery-sign-in-phone.png');
        expect(new URL(page.url()).searchParams.get('method')).toBe('recovery');
        await expect(page.getByLabel('Recovery code').isVisible()).resolves.toBe(true);
        await page.getByRole('link', { name: 'Use your authenticator app instead' }).click();
        await page.getByRole('heading', { level: 1, name: 'Two-step verification' }).waitFor();

        // The next time step: the enrolment already used the current one (no replays, RFC 6238 §5.2);
        // one step ahead is inside the accepted window whenever the server checks it.
        await page.getByLabel('Authentication code').fill(await totpCode(totpSecret, 1));
        await page.getByRole('button', { name: 'Verify' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        await checkPage(page, 'phone', new RegExp(`^${CLIENT_NAME}\\s+wants to access your account$`), 'totp-consent-phone.png');

        await submitAndReachCallback(
          page,
          seen,
          relyingParty!.callbackUrl,
          () => page.getByRole('button', { name: 'Allow' }).click(),
          'failure-totp-phone.png',
        );
        expect(relyingParty!.received).toHaveLength(before + 1);
        const tokens = await exchange(rp, started, relyingParty!.received[before]!);
        const claims = tokens.claims()!;
        expect(claims.sub).toBe(accountIds.get(TOTP_USER.email));
        expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
        expect(claims.acr).toBe(server!.config.acr.multiFactor);

        // Same browser: the account console signs in through the SSO session, no new factor asked.
        await page.goto(`${server!.url}/account/security`);
        await checkPage(page, 'phone', 'Security', 'account-security-totp-on-phone.png');
        expect(new URL(page.url()).pathname).toBe('/account/security');
        await expect(page.locator('.state-pill').textContent()).resolves.toBe('On');
        await expect(page.getByText(TOTP_USER.email).first().isVisible()).resolves.toBe(true);
        await expect(page.getByText('Recovery codes left:').innerText()).resolves.toMatch(/Recovery codes left:\s*10/);
        await expect(page.getByLabel('Current code from your app', { exact: true }).isVisible()).resolves.toBe(true);
        await expect(page.getByLabel('Password', { exact: true }).isVisible()).resolves.toBe(true);
        await expect(page.getByLabel('Or a current code from your app').isVisible()).resolves.toBe(true);

        expectCleanBrowser(seen);
      } finally {
        await context.close();
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'at desktop size, in a fresh browser: password, then a recovery code instead of the app',
    async () => {
      const recoveryCode = recoveryCodes[0];
      if (!recoveryCode) throw new Error('needs the recovery codes shown by the enrolment test');
      const context = await newContext(CONTEXT_FOR.desktop);
      try {
        const before = relyingParty!.received.length;
        const page = await context.newPage();
        const seen = record(page, server!.url);
        const started = await authorizationRequest(rp, { redirect_uri: relyingParty!.callbackUrl });

        await page.goto(started.url.toString());
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        await page.getByLabel('Email').fill(TOTP_USER.email);
        await page.getByLabel('Password').fill(TOTP_USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();

        await checkPage(page, 'desktop', 'Two-step verification', 'totp-sign-in-desktop.png');
        await expect(page.getByLabel('Authentication code').isVisible()).resolves.toBe(true);
        await page.getByRole('link', { name: "Can't use your app? Use a recovery code" }).click();
        await checkPage(page, 'desktop', 'Use a recovery code', 'totp-recovery-sign-in-desktop.png');
        expect(new URL(page.url()).searchParams.get('method')).toBe('recovery');

        await page.getByLabel('Recovery code').fill(recoveryCode);
        await page.getByRole('button', { name: 'Verify' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        await checkPage(page, 'desktop', new RegExp(`^${CLIENT_NAME}\\s+wants to access your account$`), 'totp-consent-desktop.png');

        await submitAndReachCallback(
          page,
          seen,
          relyingParty!.callbackUrl,
          () => page.getByRole('button', { name: 'Allow' }).click(),
          'failure-recovery-desktop.png',
        );
        expect(relyingParty!.received).toHaveLength(before + 1);
        const tokens = await exchange(rp, started, relyingParty!.received[before]!);
        const claims = tokens.claims()!;
        expect(claims.sub).toBe(accountIds.get(TOTP_USER.email));
        expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);

        // One recovery code fewer.
        await page.goto(`${server!.url}/account/security`);
        await checkPage(page, 'desktop', 'Security', 'account-security-totp-on-desktop.png');
        await expect(page.locator('.state-pill').textContent()).resolves.toBe('On');
        await expect(page.getByText('Recovery codes left:').innerText()).resolves.toMatch(/Recovery codes left:\s*9/);

        expectCleanBrowser(seen);
      } finally {
        await context.close();
      }
    },
    SUITE_TIMEOUT,
  );
});
