/**
 * The account centre (/account) in a real browser: Debian's headless Chromium driven by
 * playwright-core, against the real app. Every page of the centre on a phone (390 px) and a
 * desktop, checked (heading, stylesheet, no sideways overflow, labels) and screenshotted, with
 * axe-core finding no WCAG 2.1 A/AA violation in the light and the dark colour scheme; each action
 * reached and done with the keyboard alone; and every action done again with JavaScript off.
 *
 * The person's other browser (a phone signed in to the app "Notes") is a plain HTTP user agent:
 * it gives the sessions and apps pages something to list, and proves from outside that an action
 * took effect. The browser plumbing is in ../support/browser.ts.
 */
import { readFile } from 'node:fs/promises';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { BrowserContextOptions, Page } from 'playwright-core';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { expectAccessible } from '../support/accessibility.js';
import { CONTEXT_FOR, checkPage, endSuite, expectButtonPainted, expectComputedStyle, inNewContext, launchChromium, screenshot } from '../support/browser.js';
import type { Chromium, Size } from '../support/browser.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';

const SUITE_TIMEOUT = 120_000;
const STEP_TIMEOUT = 20_000;
const PASSWORD = 'a long and correct passphrase';
const SAFARI_IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1';

type Variant = Size | 'no-js';
const CONTEXTS: Record<Variant, BrowserContextOptions> = {
  phone: CONTEXT_FOR.phone,
  desktop: CONTEXT_FOR.desktop,
  'no-js': { ...CONTEXT_FOR.phone, javaScriptEnabled: false },
};

/** The centre's pages, with their headings. */
const PAGES = [
  { path: '/account/overview', name: 'overview', heading: /^(Hello, .+|Your account)$/ },
  { path: '/account/profile', name: 'profile', heading: 'Profile' },
  { path: '/account/security', name: 'security', heading: 'Security' },
  { path: '/account/sessions', name: 'sessions', heading: 'Sessions' },
  { path: '/account/apps', name: 'apps', heading: 'Connected apps' },
  { path: '/account/data', name: 'data', heading: 'Your data' },
] as const;

/** A UserAgent that says it is Safari on an iPhone. */
class PhoneAgent extends UserAgent {
  override request(url: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    headers.set('user-agent', SAFARI_IPHONE);
    return super.request(url, { ...init, headers });
  }
}

/** The checks of a centre page, with the centre's signs of its stylesheet: the frame laid out, buttons painted. */
async function checkCentrePage(page: Page, variant: Variant, heading: string | RegExp, shot: string): Promise<void> {
  await checkPage(page, {
    heading,
    shot,
    phone: variant !== 'desktop',
    javaScript: variant !== 'no-js',
    styles: async () => {
      await expectComputedStyle(page.locator('.account-main'), variant === 'desktop' ? { borderTopLeftRadius: '12px', paddingLeft: '32px' } : { borderTopLeftRadius: '0px', paddingLeft: '20px' });
      // A column beside the page on a desktop, a wrapping row above it on a phone.
      await expectComputedStyle(page.locator('.account-nav ul'), { flexDirection: variant === 'desktop' ? 'column' : 'row', flexWrap: 'wrap' });
      await expectButtonPainted(page.locator('.account-sign-out .button'), { filled: false });
      const primary = page.locator('.account-main .button-primary');
      if ((await primary.count()) > 0) await expectButtonPainted(primary.first());
    },
  });
}

/**
 * The dark colour scheme, once the colours have settled (links and buttons fade their colours for
 * 120 ms, and axe must not measure a colour half-way).
 */
async function inDarkMode(page: Page): Promise<void> {
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.waitForTimeout(400);
}

/**
 * Opens /account/data in another tab of the same browser, starts the download there with `start`,
 * and returns the file's JSON (its name checked). NOTE: Chromium reports the navigation a
 * download replaces as a failed request, so it is kept out of the watched page.
 */
async function downloadData(page: Page, start: (tab: Page) => Promise<void>): Promise<{ account: { email: string; name: string } }> {
  const tab = await page.context().newPage();
  try {
    await tab.goto(new URL('/account/data', page.url()).toString());
    await tab.getByRole('heading', { level: 1, name: 'Your data' }).waitFor();
    const downloading = tab.waitForEvent('download');
    await start(tab);
    const download = await downloading;
    expect(download.suggestedFilename()).toMatch(/^account-data-\d{4}-\d\d-\d\d\.json$/);
    return JSON.parse(await readFile(await download.path(), 'utf8')) as { account: { email: string; name: string } };
  } finally {
    await tab.close();
  }
}

/** What the focused element is called (its text, value or label), read in the page. */
async function focusedName(page: Page): Promise<string> {
  return (await page.evaluate(
    `(() => { const e = document.activeElement; if (!e || e === document.body) return ''; return (e.tagName === 'INPUT' ? e.id : e.innerText || e.getAttribute('aria-label') || '').replace(/\\s+/g, ' ').trim(); })()`,
  )) as string;
}

/**
 * Presses Tab until the focused element's name matches `name` (from wherever focus is), as a
 * keyboard user would; fails when it is not reached within `max` presses.
 */
async function tabTo(page: Page, name: RegExp, max = 40): Promise<void> {
  const seen: string[] = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press('Tab');
    const current = await focusedName(page);
    if (name.test(current)) return;
    seen.push(current);
  }
  throw new Error(`${String(name)} not reached with Tab; focus went through: ${JSON.stringify(seen)}`);
}

describe('account centre, in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let chromium: Chromium | undefined;
  let notes: CreatedClient;
  let rp: oidc.Configuration;
  /** This test's person: a new one per test, so that each test's sessions and apps are its own. */
  let person: { id: string; email: string; password: string };
  let people = 0;

  beforeAll(async () => {
    server = await startTestServer('account_centre_browser');
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    notes = await server.deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
    rp = await rpFor(server, notes);
  }, SUITE_TIMEOUT);

  beforeEach(async () => {
    people += 1;
    const email = `katherine-${people}@example.com`;
    const account = await server!.deps.accounts.create({ email, password: PASSWORD, name: 'Katherine Johnson', emailVerified: true });
    person = { id: account.id, email, password: PASSWORD };
  });

  afterAll(() => endSuite(server, [chromium, server]), SUITE_TIMEOUT);

  const url = (path: string) => `${server!.url}${path}`;

  /** The person's phone signs in to Notes (consenting): one more session, and a connected app. */
  async function phoneSignsInToNotes(): Promise<PhoneAgent> {
    const phone = new PhoneAgent(server!.url);
    const started = await authorizationRequest(rp);
    const callback = await signInThroughPages(phone, started.url.toString(), person);
    expect(callbackParams(callback).get('code')).toBeTruthy();
    return phone;
  }

  /** Whether the phone still has single sign-on: an authorization with prompt=none gets a code. */
  async function phoneHasSso(phone: PhoneAgent): Promise<boolean> {
    const started = await authorizationRequest(rp, { prompt: 'none' });
    const params = callbackParams(await phone.follow(started.url.toString()));
    if (params.get('error') === 'login_required') return false;
    expect(params.get('code')).toBeTruthy();
    return true;
  }

  /** /account in the browser: the login page, the password, and the overview. */
  async function signIn(page: Page): Promise<void> {
    await page.goto(url('/account'));
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await page.getByLabel('Email').fill(person.email);
    await page.getByLabel('Password', { exact: true }).fill(person.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(url('/account/overview'));
  }

  for (const size of ['phone', 'desktop'] as const) {
    it(
      `every page on a ${size}: checked, screenshotted, and no axe violation in light and dark`,
      () =>
        inNewContext(chromium!, CONTEXTS[size], server!.url, async (page) => {
          await phoneSignsInToNotes();
          await signIn(page);
          for (const { path, name, heading } of PAGES) {
            await page.goto(url(path));
            expect(new URL(page.url()).pathname).toBe(path);
            await checkCentrePage(page, size, heading, `account-${name}-${size}.png`);
            await expect(page.locator('.account-nav a[aria-current="page"]').count()).resolves.toBe(1);
            await inDarkMode(page);
            await expectAccessible(page, `${path} (dark)`);
            await screenshot(page, `account-${name}-${size}-dark.png`);
            await page.emulateMedia({ colorScheme: 'light' });
          }
          // What the lists show.
          await page.goto(url('/account/sessions'));
          await expect(page.locator('.item').count()).resolves.toBeGreaterThanOrEqual(2);
          await expect(page.getByText('This browser', { exact: true }).count()).resolves.toBe(1);
          await page.goto(url('/account/apps'));
          await expect(page.locator('.item-title', { hasText: 'Notes' }).count()).resolves.toBe(1);
        }),
      SUITE_TIMEOUT,
    );
  }

  it(
    'with the keyboard alone: change the name (a refusal focuses the field), remove an app, sign out another session, download the data, sign out',
    () =>
      inNewContext(
        chromium!,
        CONTEXTS.desktop,
        server!.url,
        async (page) => {
          const phone = await phoneSignsInToNotes();
          await signIn(page);

          // Profile: a tab in the name is refused; the page comes back focused on the field.
          await page.goto(url('/account/profile'));
          await tabTo(page, /^name$/);
          // A tab character cannot be typed into a field (the key moves focus): set as pasted.
          await page.locator('#name').fill('Katherine\tJ');
          await tabTo(page, /^Save name$/);
          await page.keyboard.press('Enter');
          await page.locator('#name-error').waitFor();
          expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('name');
          await expect(page.locator('#name').getAttribute('aria-invalid')).resolves.toBe('true');
          await checkCentrePage(page, 'desktop', 'Profile', 'account-profile-error-desktop.png');
          await page.keyboard.press('Control+A');
          await page.keyboard.type('Katherine G. Johnson');
          await page.keyboard.press('Enter');
          await page.waitForURL(url('/account/profile?saved=saved'));
          await page.getByText('Your name is saved').waitFor();
          expect((await server!.deps.accounts.findById(person.id))?.name).toBe('Katherine G. Johnson');

          // Connected apps: Remove access of Notes.
          await page.goto(url('/account/apps'));
          await tabTo(page, /^Remove access of Notes$/);
          await page.keyboard.press('Enter');
          await page.waitForURL(url('/account/apps?removed=1'));
          expect(await server!.deps.access.listApps(person.id)).toEqual([]);

          // Sessions: sign out the phone, the other session.
          await page.goto(url('/account/sessions'));
          await tabTo(page, /^Sign out Safari on iOS/);
          await page.keyboard.press('Enter');
          await page.waitForURL(url('/account/sessions?done=ended'));
          await checkCentrePage(page, 'desktop', 'Sessions', 'account-sessions-ended-desktop.png');
          expect(await phoneHasSso(phone)).toBe(false);

          // Your data: the download (in a tab of its own: the browser reports a download as an aborted navigation).
          const data = await downloadData(page, async (tab) => {
            await tabTo(tab, /^Download my data$/);
            await tab.keyboard.press('Enter');
          });
          expect(data.account).toMatchObject({ email: person.email, name: 'Katherine G. Johnson' });

          // Sign out: the header's button, the provider's one question, the signed-out page.
          await page.goto(url('/account/overview'));
          await tabTo(page, /^Sign out$/);
          await page.keyboard.press('Enter');
          await page.getByRole('button', { name: 'Yes, sign me out' }).waitFor();
          await tabTo(page, /^Yes, sign me out$/);
          await page.keyboard.press('Enter');
          await page.waitForURL(url('/account/signed-out'));
          await page.getByRole('heading', { level: 1, name: 'Signed out' }).waitFor();
          await expectAccessible(page, 'signed out');
          await screenshot(page, 'account-signed-out-desktop.png');
          await tabTo(page, /^Sign in again$/);
          await page.keyboard.press('Enter');
          await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        },
        { httpErrors: ['POST /account/profile 400'] },
      ),
    SUITE_TIMEOUT,
  );

  it(
    'with JavaScript off: every page works, and each action is done by its form',
    () =>
      inNewContext(chromium!, CONTEXTS['no-js'], server!.url, async (page) => {
        const phone = await phoneSignsInToNotes();
        await signIn(page);
        for (const { path, name, heading } of PAGES) {
          await page.goto(url(path));
          await checkCentrePage(page, 'no-js', heading, `account-${name}-no-js.png`);
        }

        await page.goto(url('/account/profile'));
        await page.getByLabel('Name', { exact: true }).fill('Katherine Coleman Johnson');
        await page.getByRole('button', { name: 'Save name' }).click();
        await page.getByText('Your name is saved').waitFor();

        await page.goto(url('/account/apps'));
        await page.getByRole('button', { name: 'Remove access of Notes' }).click();
        await page.getByText('No apps have access to your account.').waitFor();

        await page.goto(url('/account/sessions'));
        await page.getByRole('button', { name: 'Sign out all other sessions' }).click();
        await page.getByText('Every other session is signed out').waitFor();
        expect(await phoneHasSso(phone)).toBe(false);

        const data = await downloadData(page, (tab) => tab.getByRole('button', { name: 'Download my data' }).click());
        expect(data.account.name).toBe('Katherine Coleman Johnson');

        await page.locator('.account-sign-out').getByRole('button', { name: 'Sign out' }).click();
        await page.getByRole('button', { name: 'Yes, sign me out' }).click();
        await page.getByRole('heading', { level: 1, name: 'Signed out' }).waitFor();
        await page.goto(url('/account/overview'));
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
      }),
    SUITE_TIMEOUT,
  );
});
