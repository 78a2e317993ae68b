/**
 * The plumbing of the browser tests (test/e2e/*.browser.test.ts): Debian's headless Chromium driven
 * by playwright-core, a watch on what the browser sees (console, CSP violations, page errors, failed
 * requests, HTTP errors, the stylesheet), the checks every page of ours gets (stylesheet applied, no
 * sideways overflow on a phone, every input labelled), screenshots, and the relying party's side: a
 * tiny HTTP server whose /callback receives the browser, and the code exchanged with openid-client.
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

import { expect } from '@jest/globals';
import * as oidc from 'openid-client';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, BrowserContextOptions, Locator, Page } from 'playwright-core';

import { authorizationRequest } from './rp.js';
import type { Started, Tokens } from './rp.js';
import type { TestServer } from './test-server.js';
import { expectAccessible } from './accessibility.js';

// ---------------------------------------------------------------------------------------------
// The browser

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

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };
export type Size = 'phone' | 'desktop';
/** Context options for a phone (touch, mobile viewport) and for a desktop window. */
export const CONTEXT_FOR: Record<Size, BrowserContextOptions> = {
  phone: { viewport: PHONE, isMobile: true, hasTouch: true },
  desktop: { viewport: DESKTOP },
};

export interface Chromium {
  readonly browser: Browser;
  /**
   * A fresh browser profile: British English, light colour scheme, and the suite's step timeout for
   * every wait and navigation (the helpers below that wait take their time limit from it).
   */
  newContext(options?: BrowserContextOptions): Promise<BrowserContext>;
  close(): Promise<void>;
}

/** Fails with what to do when Debian's Chromium is not installed. */
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

/** Launches Debian's headless Chromium (after checking it is there); contexts get `stepTimeout`. */
export async function launchChromium({ stepTimeout }: { stepTimeout: number }): Promise<Chromium> {
  await requireChromium();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  return {
    browser,
    async newContext(options = {}) {
      const context = await browser.newContext({ locale: 'en-GB', colorScheme: 'light', ...options });
      context.setDefaultTimeout(stepTimeout);
      context.setDefaultNavigationTimeout(stepTimeout);
      return context;
    },
    close: () => browser.close(),
  };
}

/**
 * The end of a browser suite: the server's log printed when DEBUG_LOGS is set, then each of `closing`
 * closed in this order (those never started are skipped).
 */
export async function endSuite(server: TestServer | undefined, closing: ({ close(): Promise<void> } | undefined)[]): Promise<void> {
  if (process.env.DEBUG_LOGS && server) console.log(server.logs.join('\n'));
  for (const thing of closing) await thing?.close();
}

// ---------------------------------------------------------------------------------------------
// What the browser saw

/** What the browser saw while a page was in use: console lines, network failures, HTTP errors. */
export interface BrowserRecord {
  /** Every console line, as `type: text` (Chromium's own reports too, e.g. CSP violations). */
  console: string[];
  pageErrors: string[];
  /** Requests to our server that failed at the network level. */
  failedRequests: string[];
  /** Responses of our server with a status of 400 or more, as `METHOD /path status`. */
  httpErrors: string[];
  /** Stylesheets our server sent, as `/path status`. */
  stylesheets: string[];
}

/** Starts recording what `page` sees; requests and responses count only when they go to `serverUrl`. */
export function watchPage(page: Page, serverUrl: string): BrowserRecord {
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
export const CSP_VIOLATION = /Refused to|Content Security Policy/i;

export function cspViolations(seen: BrowserRecord): string[] {
  return seen.console.filter((line) => CSP_VIOLATION.test(line));
}

export interface CleanOptions {
  /**
   * The HTTP errors our server is meant to have sent, exactly and in order, as watchPage writes them
   * (`POST /admin/clients 400`); Chromium's console report of each status is then allowed too.
   * Default: none.
   */
  httpErrors?: string[];
  /**
   * 'no-errors' (default): no console error or warning. 'silent': no console line of any kind
   * (besides Chromium's reports of the allowed HTTP errors).
   */
  console?: 'no-errors' | 'silent';
  /** false when the browser only passed through redirects (no page of ours was shown, so no stylesheet). */
  pages?: boolean;
}

/**
 * No CSP violation, console error or warning, page error, failed request or unexpected HTTP error;
 * the one stylesheet loaded (200, or 304 from the context's cache) on every page.
 */
export function expectCleanBrowser(seen: BrowserRecord, { httpErrors = [], console = 'no-errors', pages = true }: CleanOptions = {}): void {
  const reportsOfAllowed = httpErrors.map((line) => new RegExp(`the server responded with a status of ${line.split(' ').at(-1)}`));
  const consoleLines = seen.console.filter((line) => !reportsOfAllowed.some((report) => report.test(line)));
  expect(cspViolations(seen)).toEqual([]);
  expect(console === 'silent' ? consoleLines : consoleLines.filter((line) => /^(error|warning):/.test(line))).toEqual([]);
  expect(seen.pageErrors).toEqual([]);
  expect(seen.failedRequests).toEqual([]);
  expect(seen.httpErrors).toEqual(httpErrors);
  if (pages) expect(seen.stylesheets.length).toBeGreaterThan(0);
  for (const line of seen.stylesheets) expect(line).toMatch(/^\/static\/app\.css (200|304)$/);
}

/** expectCleanBrowser's options, or a function of what the page's use returned that gives them. */
export type CleanAfter<T> = CleanOptions | ((result: T) => CleanOptions);

/**
 * Opens a page in `context`, watches it, runs `use`, expects the browser clean (see
 * expectCleanBrowser; `clean` for its options) and closes the page. Returns what `use` returns.
 */
export async function inNewPage<T>(
  context: BrowserContext,
  serverUrl: string,
  use: (page: Page, seen: BrowserRecord) => Promise<T>,
  clean: CleanAfter<T> = {},
): Promise<T> {
  const page = await context.newPage();
  try {
    const seen = watchPage(page, serverUrl);
    const result = await use(page, seen);
    expectCleanBrowser(seen, typeof clean === 'function' ? clean(result) : clean);
    return result;
  } finally {
    await page.close();
  }
}

/** inNewPage in a fresh context (a browser nobody has used yet), closed afterwards. */
export async function inNewContext<T>(
  browser: Chromium,
  options: BrowserContextOptions,
  serverUrl: string,
  use: (page: Page, seen: BrowserRecord) => Promise<T>,
  clean: CleanAfter<T> = {},
): Promise<T> {
  const context = await browser.newContext(options);
  try {
    return await inNewPage(context, serverUrl, use, clean);
  } finally {
    await context.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Screenshots and page checks

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCREENSHOTS = path.join(REPO_ROOT, 'test-artifacts', 'screenshots');

/** The whole page, saved as test-artifacts/screenshots/`name`. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
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
  getComputedStyle(element: unknown): Record<string, string>;
  document: {
    documentElement: { scrollWidth: number; clientWidth: number };
    querySelectorAll(selector: string): Iterable<BrowserElement>;
  };
}

/** The computed values of these CSS properties (camelCase, as in `maxWidth`) of the one element. */
export async function computedStyle(element: Locator, properties: string[]): Promise<Record<string, string>> {
  return element.evaluate((node, names) => {
    const style = (globalThis as unknown as BrowserGlobals).getComputedStyle(node);
    return Object.fromEntries(names.map((name) => [name, style[name] ?? '']));
  }, properties);
}

/** The stylesheet applied to the element: its computed style has exactly these values. */
export async function expectComputedStyle(element: Locator, expected: Record<string, string>): Promise<void> {
  expect(await computedStyle(element, Object.keys(expected))).toEqual(expected);
}

/**
 * The button is painted by the stylesheet: not the browser's default grey, and its text another colour
 * than its background. `filled` (default true): not transparent either (a secondary button may be).
 */
export async function expectButtonPainted(button: Locator, { filled = true }: { filled?: boolean } = {}): Promise<void> {
  const { backgroundColor: background, color } = await computedStyle(button, ['backgroundColor', 'color']);
  expect(background).not.toMatch(filled ? /^(transparent|rgba\(0, 0, 0, 0\)|rgb\(239, 239, 239\)|buttonface)$/i : /^(rgb\(239, 239, 239\)|buttonface)$/i);
  expect(color).not.toBe(background);
}

/** Nothing overflows sideways (what matters on a 390 px phone). */
export async function expectNoSidewaysOverflow(page: Page): Promise<void> {
  const overflow = await page.evaluate(() => {
    const doc = (globalThis as unknown as BrowserGlobals).document;
    return doc.documentElement.scrollWidth - doc.documentElement.clientWidth;
  });
  expect(overflow).toBeLessThanOrEqual(0);
}

/** The element is narrower than half the window and centred in it (layout CSS applied). */
export async function expectCentred(element: Locator, windowWidth: number): Promise<void> {
  const box = await element.boundingBox();
  expect(box).not.toBeNull();
  expect(box!.width).toBeLessThan(windowWidth / 2);
  expect(Math.abs(box!.x + box!.width / 2 - windowWidth / 2)).toBeLessThan(20);
}

/**
 * Every input a person can see or reach has a label (a hidden username for password managers is
 * aria-hidden and out of the tab order).
 */
export async function expectInputsLabelled(page: Page): Promise<void> {
  const unlabelled = await page.evaluate(() => {
    const inputs = [...(globalThis as unknown as BrowserGlobals).document.querySelectorAll('input, select, textarea')];
    return inputs
      .filter((input) => input.type !== 'hidden' && input.getAttribute('aria-hidden') !== 'true')
      .filter((input) => !(input.labels && input.labels.length > 0) && !input.getAttribute('aria-label'))
      .map((input) => `${input.type} name=${input.name} id=${input.id}`);
  });
  expect(unlabelled).toEqual([]);
}

export interface PageChecks {
  /** The page's h1. */
  heading: string | RegExp;
  /** Checks that the stylesheet applied, for this kind of page (after the page has loaded). */
  styles: (page: Page) => Promise<void>;
  /** On a phone: nothing may overflow sideways. */
  phone: boolean;
  /** The screenshot's file name; none when undefined. */
  shot: string | undefined;
  /**
   * Whether the page runs JavaScript, so that axe can run in it (default true).
   * NOTE: page.evaluate never returns in a context with JavaScript disabled.
   */
  javaScript?: boolean;
}

/**
 * The checks every page gets: its heading, the page loaded, the stylesheet applied, no sideways
 * overflow on a phone, a label for every input a person can see, no WCAG 2.1 A/AA violation that
 * axe finds; then a screenshot.
 */
export async function checkPage(page: Page, { heading, styles, phone, shot, javaScript = true }: PageChecks): Promise<void> {
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await page.waitForLoadState('load');
  await styles(page);
  if (phone) await expectNoSidewaysOverflow(page);
  await expectInputsLabelled(page);
  if (javaScript) await expectAccessible(page, typeof heading === 'string' ? heading : heading.source);
  if (shot) await screenshot(page, shot);
}

// ---------------------------------------------------------------------------------------------
// The relying party's side

/**
 * The relying party's web server on loopback: records every callback it receives (any path under
 * /callback: /callback, /callback-new, …) and shows a plain page saying "Back at the app.".
 *
 * NOTE: not rp.ts's REDIRECT_URI (http://127.0.0.1:9/callback): Chromium refuses port 9 as unsafe
 * (ERR_UNSAFE_PORT), and context.route does not see the redirect hop that leads there, so the
 * browser needs a callback that really answers.
 */
export interface CallbackServer {
  origin: string;
  /** `${origin}/callback`. */
  callbackUrl: string;
  received: URL[];
  /** Expects exactly one callback after the first `mark` ones (received.length before), and returns it. */
  expectOneCallbackSince(mark: number): URL;
  close(): Promise<void>;
}

export async function startCallbackServer(): Promise<CallbackServer> {
  const received: URL[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    if (req.method === 'GET' && url.pathname.startsWith('/callback')) {
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
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    callbackUrl: `${origin}/callback`,
    received,
    expectOneCallbackSince(mark) {
      expect(received).toHaveLength(mark + 1);
      return received[mark]!;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An authorization request the browser was sent to; `mark` counts the callbacks received before. */
export interface BrowserAuthorization extends Started {
  mark: number;
}

/**
 * Sends the page to a new authorization request of `rp` (S256 PKCE, state, nonce) that returns to the
 * callback server's /callback; `extra` adds or overrides parameters.
 */
export async function startAuthorization(
  page: Page,
  rp: oidc.Configuration,
  relyingParty: CallbackServer,
  extra: Record<string, string> = {},
): Promise<BrowserAuthorization> {
  const mark = relyingParty.received.length;
  const started = await authorizationRequest(rp, { redirect_uri: relyingParty.callbackUrl, ...extra });
  await page.goto(started.url.toString());
  return { ...started, mark };
}

/**
 * Runs `submit` (a click), then waits until the browser is back at the app's callback and shows its
 * page; expects exactly one new callback, with the request's state, and returns it. Fails at once, with
 * the browser's own words, when a CSP violation blocks the way (Chromium applies form-action to the
 * redirects after a form POST), after a screenshot named `failureShot`.
 */
export async function submitAndReachCallback(
  page: Page,
  seen: BrowserRecord,
  relyingParty: CallbackServer,
  authorization: BrowserAuthorization,
  submit: () => Promise<void>,
  failureShot: string,
): Promise<URL> {
  // Both waiters are armed before the click: the violation can be logged while click() is still running.
  const arrived = page.waitForURL((url) => url.href.startsWith(relyingParty.callbackUrl)).then(
    () => ({ ok: true as const }),
    (error: unknown) => ({ ok: false as const, reason: String(error) }),
  );
  const blocked = page.waitForEvent('console', { predicate: (message) => CSP_VIOLATION.test(message.text()) }).then(
    (message) => ({ ok: false as const, reason: `blocked by CSP: ${message.text().trim()}` }),
    // No violation within the time: let `arrived` decide.
    () => arrived,
  );
  await submit();
  const outcome = await Promise.race([arrived, blocked]);
  if (!outcome.ok) {
    await screenshot(page, failureShot);
    // A blocked navigation aborts (ERR_ABORTED) about when the violation is logged: name the violation if there is one.
    await page.waitForTimeout(250);
    const violations = cspViolations(seen);
    const why = violations.length ? `blocked by CSP: ${violations.join(' | ').trim()}` : outcome.reason;
    throw new Error(`the browser did not reach the app's callback (now at ${page.url()}): ${why}; console: ${JSON.stringify(seen.console)}`);
  }
  await page.getByText('Back at the app.').waitFor();
  const callback = relyingParty.expectOneCallbackSince(authorization.mark);
  expect(callback.searchParams.get('state')).toBe(authorization.state);
  return callback;
}

/** submitAndReachCallback with a click on the consent page's Allow. */
export function allowAndReachCallback(
  page: Page,
  seen: BrowserRecord,
  relyingParty: CallbackServer,
  authorization: BrowserAuthorization,
  failureShot: string,
): Promise<URL> {
  return submitAndReachCallback(page, seen, relyingParty, authorization, () => page.getByRole('button', { name: 'Allow' }).click(), failureShot);
}

/** Redeems the code of a callback the browser brought back: PKCE, state, nonce and an ID token checked. */
export async function redeemCallback(rp: oidc.Configuration, started: Started, callback: URL): Promise<Tokens> {
  return oidc.authorizationCodeGrant(rp, callback, {
    pkceCodeVerifier: started.verifier,
    expectedState: started.state,
    expectedNonce: started.nonce,
    idTokenExpected: true,
  });
}
