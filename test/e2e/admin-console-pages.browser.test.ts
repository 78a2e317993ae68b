/**
 * Every page of the admin console in a real browser (Debian's headless Chromium, playwright-core),
 * on a phone and on a desktop, in the light and the dark colour scheme: the page's checks
 * (stylesheet, no sideways overflow on a phone, labelled inputs) and axe-core's WCAG 2.1 A/AA
 * rules, with a screenshot of each. Then what the review found, each checked where it shows:
 * the new session and app actions reached with the keyboard alone (and their effect seen from the
 * person's browser), values shown once copied with the Copy button and intact without JavaScript,
 * never wrapped, the API token page at 320 px, the audit log's scroll region, invalid fields'
 * red border, focus on the error summary after a failed submit, and Sign out ending on the
 * console's signed-out page.
 *
 * The browser plumbing is in ../support/browser.ts; the admin signs in once (password and a code
 * from the authenticator app, computed as the admin's phone would) and the other contexts borrow
 * the cookies.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';
import type { BrowserContext, BrowserContextOptions, Page } from 'playwright-core';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { enrolAuthenticator } from '../support/admin-console.js';
import { CONTEXT_FOR, checkPage, computedStyle, endSuite, expectButtonPainted, expectComputedStyle, expectNoSidewaysOverflow, inNewContext, inNewPage, launchChromium, screenshot } from '../support/browser.js';
import type { Chromium, CleanOptions, Size } from '../support/browser.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, oauthError, rpFor, signInForTokens } from '../support/rp.js';
import { freshTotp } from '../support/second-factor.js';
import type { Authenticator } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

const SUITE_TIMEOUT = 240_000;
const STEP_TIMEOUT = 20_000;
const PASSWORD = 'a long and correct passphrase';
const ADMIN = { email: 'grace.admin@example.com', password: PASSWORD, name: 'Grace Hopper' };
const PERSON = { email: 'katherine@example.com', password: PASSWORD, name: 'Katherine Johnson' };
const APP_NAME = 'Orbit Planner';
/** A registered API resource, its identifier long as real ones are. */
const RESOURCE_ID = 'https://notes-api.internal.example.com/v2/notes-and-folders';

type Scheme = 'light' | 'dark';
const SCHEMES: Scheme[] = ['light', 'dark'];
const SIZES: Size[] = ['desktop', 'phone'];

/** The console's signs of the stylesheet applied (as in admin-console.browser.test.ts). */
async function consoleStyles(page: Page): Promise<void> {
  await expectComputedStyle(page.locator('.admin-main'), { maxWidth: '1152px' });
  if ((await page.locator('.panel').count()) > 0) await expectComputedStyle(page.locator('.panel').first(), { borderTopLeftRadius: '12px' });
  const buttons = page.locator('.button-primary');
  if ((await buttons.count()) > 0) await expectButtonPainted(buttons.first());
}

async function checkConsolePage(page: Page, size: Size, heading: string | RegExp, shot: string | undefined): Promise<void> {
  await checkPage(page, { heading, shot, phone: size === 'phone', styles: consoleStyles });
}

/** An error page of ours shown on purpose: Chromium reports the status itself, nothing else may be said. */
const expectedErrorPage = (...httpErrors: string[]): CleanOptions => ({ httpErrors, console: 'silent' });

/** Presses Tab until the focused element's accessible text matches `name` (at most `limit` presses); fails otherwise. */
async function tabTo(page: Page, name: RegExp, limit = 80): Promise<void> {
  for (let i = 0; i < limit; i += 1) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const element = (globalThis as unknown as { document: { activeElement: { textContent: string | null; getAttribute(n: string): string | null } | null } }).document.activeElement;
      return `${element?.getAttribute('aria-label') ?? ''} ${element?.textContent ?? ''}`.replace(/\s+/g, ' ').trim();
    });
    if (name.test(focused)) return;
  }
  throw new Error(`no element named ${String(name)} within ${limit} presses of Tab`);
}

/** The focused element's class attribute and tag. */
async function focusedElement(page: Page): Promise<{ tag: string; className: string; id: string }> {
  return page.evaluate(() => {
    const element = (globalThis as unknown as { document: { activeElement: { tagName: string; className: string; id: string } | null } }).document.activeElement;
    return { tag: element?.tagName.toLowerCase() ?? '', className: String(element?.className ?? ''), id: element?.id ?? '' };
  });
}

/** The WCAG 2.1 contrast ratio of two `rgb(r, g, b)` colours. */
function contrast(a: string, b: string): number {
  const luminance = (colour: string) => {
    const [r = 0, g = 0, bl = 0] = (colour.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number).map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return ((hi ?? 0) + 0.05) / ((lo ?? 0) + 0.05);
}

describe('admin console: every page, phone and desktop, light and dark; keyboard, copy, sign-out (headless Chromium)', () => {
  let server: TestServer | undefined;
  let smtp: MailServer | undefined;
  let chromium: Chromium | undefined;
  let adminContext: BrowserContext | undefined;
  let adminApp: Authenticator | undefined;
  let personId: string;
  let app: CreatedClient;
  let rp: oidc.Configuration;

  const serverUrl = () => server!.url;

  /** A new context of the given kind with the admin's cookies. */
  const adminOptions = async (options: BrowserContextOptions): Promise<BrowserContextOptions> => ({ ...options, storageState: await adminContext!.storageState() });

  /** The person signs in to the app in a browser of their own (HTTP): a session and a grant with a refresh token. */
  const personSignsIn = async () => {
    const browser = new UserAgent(serverUrl());
    const { tokens } = await signInForTokens(rp, browser, PERSON, { scope: 'openid email offline_access', prompt: 'consent' });
    return { browser, refreshToken: tokens.refresh_token ?? '' };
  };

  const silentAuthorization = async (browser: UserAgent) => {
    const started = await authorizationRequest(rp, { prompt: 'none', scope: 'openid email' });
    return callbackParams(await browser.follow(started.url.toString()));
  };

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    smtp = await startMailServer();
    server = await startTestServer('browser_console_pages', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    const admin = await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true });
    const enrolled = await enrolAuthenticator(server, admin);
    adminApp = { secret: enrolled.secret, lastStep: enrolled.lastStep };
    personId = (await server.deps.accounts.create({ ...PERSON, emailVerified: true })).id;
    app = await server.deps.clients.create(
      {
        name: APP_NAME,
        redirectUris: [REDIRECT_URI],
        grantTypes: ['authorization_code', 'refresh_token'],
        tokenEndpointAuthMethod: 'client_secret_basic',
        scopes: ['openid', 'email', 'profile', 'offline_access'],
      },
      fullAuthority({ type: 'system', label: 'test setup' }),
    );
    rp = await rpFor(server, app);
    // An API resource with a long identifier and scopes: its pages must fit a phone too.
    await server.deps.resources.create(
      {
        identifier: RESOURCE_ID,
        name: 'Notes API',
        scopes: [
          { name: 'notes:read', description: 'Read your notes' },
          { name: 'notes:write', description: 'Create, change and delete your notes and the folders they are in' },
        ],
        accessTokenTtl: 600,
      },
      fullAuthority({ type: 'system', label: 'test setup' }),
    );
    // A history for the audit log: a provider event that knows only the account id, and details.
    await server.deps.audit.record({ action: 'session.ended', outcome: 'success', actor: { type: 'account', id: personId }, details: { sessionUids: ['aHR0cHM6Ly9leGFtcGxlLmNvbS8', '-leading-dash-uid'], all: true } });
    adminContext = await chromium.newContext(CONTEXT_FOR.desktop);
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [adminContext, chromium, server, smtp]), SUITE_TIMEOUT);

  it(
    'the admin signs in (password and authenticator app)',
    async () => {
      await inNewPage(adminContext!, serverUrl(), async (page) => {
        await page.goto(`${serverUrl()}/admin`);
        await page.getByLabel('Email').fill(ADMIN.email);
        await page.getByLabel('Password').fill(ADMIN.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('heading', { level: 1, name: 'Two-step verification' }).waitFor();
        const { code, step } = await freshTotp(adminApp!);
        await page.getByLabel('Authentication code').fill(code);
        await page.getByRole('button', { name: 'Verify' }).click();
        adminApp!.lastStep = step;
        await page.waitForURL(`${serverUrl()}/admin/clients`);
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'every console page passes the page checks and axe (WCAG 2.1 A/AA) on a phone and a desktop, light and dark',
    async () => {
      await personSignsIn();
      const [session] = await server!.deps.access.listSessions(personId);
      expect(session).toBeDefined();
      const pages: [string, string | RegExp, string][] = [
        ['/admin/clients', 'Clients', 'clients-list'],
        ['/admin/clients/new', 'New client', 'clients-new'],
        ['/admin/api-resources', 'API resources', 'api-resources-list'],
        ['/admin/api-resources/new', 'New API resource', 'api-resources-new'],
        [`/admin/api-resources/${encodeURIComponent(RESOURCE_ID)}`, 'Notes API', 'api-resources-detail'],
        [`/admin/api-resources/${encodeURIComponent(RESOURCE_ID)}/edit`, 'Edit API resource', 'api-resources-edit'],
        [`/admin/api-resources/${encodeURIComponent(RESOURCE_ID)}/delete`, 'Delete this API resource?', 'api-resources-confirm-delete'],
        [`/admin/clients/${app.clientId}`, APP_NAME, 'clients-detail'],
        [`/admin/clients/${app.clientId}/edit`, 'Edit client', 'clients-edit'],
        ['/admin/users', 'Users', 'users-list'],
        ['/admin/users/new', 'New user', 'users-new'],
        [`/admin/users/${personId}`, PERSON.email, 'users-detail'],
        [`/admin/users/${personId}/disable`, 'Disable this account?', 'users-confirm-disable'],
        [`/admin/users/${personId}/sessions/${session?.uid}/end`, 'End this session?', 'users-confirm-end-session'],
        [`/admin/users/${personId}/sessions/end-all`, 'End all of this person’s sessions?', 'users-confirm-end-all'],
        [`/admin/users/${personId}/apps/${app.clientId}/revoke`, `Revoke ${APP_NAME}’s access?`, 'users-confirm-revoke-app'],
        ['/admin/invitations', 'Invitations', 'invitations'],
        ['/admin/audit', 'Audit log', 'audit'],
        ['/admin/mail', 'Mail', 'mail'],
        ['/admin/registration-tokens', 'Registration tokens', 'registration-tokens'],
        ['/admin/api-token', 'API token', 'api-token'],
      ];
      for (const scheme of SCHEMES) {
        for (const size of SIZES) {
          await inNewContext(chromium!, await adminOptions({ ...CONTEXT_FOR[size], colorScheme: scheme }), serverUrl(), async (page) => {
            for (const [path, heading, name] of pages) {
              await page.goto(`${serverUrl()}${path}`);
              await checkConsolePage(page, size, heading, `admin-${name}-${size}-${scheme}.png`);
            }
            // The danger buttons (the user page has several) are readable: ≥ 4.5:1.
            await page.goto(`${serverUrl()}/admin/users/${personId}`);
            const danger = await computedStyle(page.locator('.button-danger').first(), ['color', 'backgroundColor']);
            expect(contrast(danger.color ?? '', danger.backgroundColor ?? '')).toBeGreaterThanOrEqual(4.5);
            // Shown-once pages: a registration token, an invitation link, an API token.
            await page.goto(`${serverUrl()}/admin/registration-tokens`);
            await page.getByRole('button', { name: /Create token/ }).click();
            await checkConsolePage(page, size, 'Registration token created', `admin-registration-token-created-${size}-${scheme}.png`);
            await page.goto(`${serverUrl()}/admin/invitations`);
            await page.getByLabel(/^Email address/).fill(`invitee-${size}-${scheme}@example.com`);
            await page.getByRole('button', { name: /Create invitation/ }).click();
            await checkConsolePage(page, size, 'Invitation created', `admin-invitation-created-${size}-${scheme}.png`);
            await page.goto(`${serverUrl()}/admin/api-token`);
            await page.getByRole('button', { name: 'Create token' }).click();
            await checkConsolePage(page, size, 'API token', `admin-api-token-created-${size}-${scheme}.png`);
            await expect(page.locator('#api-token').isVisible()).resolves.toBe(true);
          });
        }
      }
      // The signed-out page (a browser with no session), both schemes.
      for (const scheme of SCHEMES) {
        await inNewContext(chromium!, { ...CONTEXT_FOR.phone, colorScheme: scheme }, serverUrl(), async (page) => {
          await page.goto(`${serverUrl()}/admin/signed-out`);
          await checkPage(page, { heading: 'You are signed out', phone: true, shot: `admin-signed-out-phone-${scheme}.png`, styles: async () => undefined });
        });
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'the API token page fits 390 px and 320 px (form and token), and the token never wraps',
    async () => {
      for (const width of [390, 320]) {
        await inNewContext(chromium!, await adminOptions({ viewport: { width, height: 800 }, isMobile: true, hasTouch: true }), serverUrl(), async (page) => {
          await page.goto(`${serverUrl()}/admin/api-token`);
          await checkConsolePage(page, 'phone', 'API token', `admin-api-token-form-${width}.png`);
          await page.getByRole('button', { name: 'Create token' }).click();
          await checkConsolePage(page, 'phone', 'API token', `admin-api-token-created-${width}.png`);
          await expectNoSidewaysOverflow(page);
          const token = page.locator('#api-token');
          await expectComputedStyle(token, { whiteSpace: 'nowrap', overflowX: 'auto' });
          // One line: its box is one line high however long the token.
          const { lineHeight, height } = await computedStyle(token, ['lineHeight', 'height']);
          expect(parseFloat(height ?? '0')).toBeLessThan(2 * parseFloat(lineHeight ?? '0') + 24);
          // It scrolls sideways inside its box, which takes keyboard focus.
          await expect(token.getAttribute('tabindex')).resolves.toBe('0');
        });
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'Copy copies the shown-once value exactly; without JavaScript the value is still there, whole and selectable',
    async () => {
      const context = await chromium!.newContext(await adminOptions(CONTEXT_FOR.desktop));
      try {
        await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: serverUrl() });
        await inNewPage(context, serverUrl(), async (page) => {
          await page.goto(`${serverUrl()}/admin/clients/new`);
          await page.getByLabel('Display name').fill('Copy Test App');
          await page.getByLabel('Redirect URIs', { exact: true }).fill('https://copy.example.com/callback');
          await page.getByRole('button', { name: 'Create client' }).click();
          await page.getByRole('heading', { level: 1, name: 'Client created' }).waitFor();
          const secret = (await page.locator('#client-secret').innerText()).trim();
          expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
          await expectComputedStyle(page.locator('#client-secret'), { whiteSpace: 'nowrap' });
          // Keyboard: Tab reaches the button; Enter copies.
          await tabTo(page, /^Copy client secret$/);
          await page.keyboard.press('Enter');
          // Waits for the status (isVisible alone does not wait: a busy machine showed it a moment late).
          await page.getByRole('status').filter({ hasText: 'Copied' }).first().waitFor({ state: 'visible', timeout: 5000 });
          await expect(page.getByRole('status').filter({ hasText: 'Copied' }).first().isVisible()).resolves.toBe(true);
          const copied = await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText());
          expect(copied).toBe(secret);
          await screenshot(page, 'admin-clients-secret-copied-desktop.png');
        });
      } finally {
        await context.close();
      }

      // No JavaScript: no button, and the value is the page's text, whole.
      await inNewContext(chromium!, await adminOptions({ ...CONTEXT_FOR.phone, javaScriptEnabled: false }), serverUrl(), async (page) => {
        await page.goto(`${serverUrl()}/admin/api-token`);
        await page.getByRole('button', { name: 'Create token' }).click();
        await checkPage(page, { heading: 'API token', phone: true, shot: 'admin-api-token-no-js-phone.png', styles: consoleStyles, javaScript: false });
        await expect(page.getByRole('button', { name: /^Copy/ }).count()).resolves.toBe(0);
        const token = (await page.locator('#api-token').innerText()).trim();
        expect(token.length).toBeGreaterThan(20);
        expect(token).not.toMatch(/\s/);
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'an admin ends a session and revokes an app with the keyboard alone; the person’s browser and the app feel it',
    async () => {
      const person = await personSignsIn();
      const sessions = await server!.deps.access.listSessions(personId);
      const target = sessions.find((s) => s.uid && s.lastSeenAt);
      expect(target).toBeDefined();
      await inNewPage(adminContext!, serverUrl(), async (page) => {
        // Revoke the app first (keyboard only): its refresh token stops working.
        await page.goto(`${serverUrl()}/admin/users/${personId}`);
        await tabTo(page, new RegExp(`^Revoke access: ${APP_NAME}`));
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { level: 1, name: `Revoke ${APP_NAME}’s access?` }).waitFor();
        await tabTo(page, /^Revoke access$/);
        await page.keyboard.press('Enter');
        await page.waitForURL(`${serverUrl()}/admin/users/${personId}?notice=app-revoked`);
        await checkConsolePage(page, 'desktop', PERSON.email, 'admin-users-app-revoked-desktop.png');
        expect(await oauthError(oidc.refreshTokenGrant(rp, person.refreshToken))).toBe('invalid_grant');

        // End every session (keyboard only): the person's browser is signed out (no SSO).
        await tabTo(page, /^End all sessions$/);
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { level: 1, name: 'End all of this person’s sessions?' }).waitFor();
        await tabTo(page, /^End all sessions$/);
        await page.keyboard.press('Enter');
        await page.waitForURL(`${serverUrl()}/admin/users/${personId}?notice=sessions-ended`);
        await checkConsolePage(page, 'desktop', PERSON.email, 'admin-users-sessions-ended-desktop.png');
        await expect(page.getByText('Not signed in anywhere.').isVisible()).resolves.toBe(true);
      });
      expect((await silentAuthorization(person.browser)).get('error')).toBe('login_required');
      const events = (await server!.deps.audit.list({ target: personId }, { limit: 20 })).events.filter((e) => e.action === 'session.revoked' || e.action === 'grant.revoked');
      expect(events.map((e) => [e.action, e.actor.label])).toEqual(
        expect.arrayContaining([
          ['session.revoked', ADMIN.email],
          ['grant.revoked', ADMIN.email],
        ]),
      );
    },
    SUITE_TIMEOUT,
  );

  it(
    'the audit log: a labelled region that scrolls sideways with the keyboard, the person’s email as actor, no token broken',
    async () => {
      for (const size of SIZES) {
        await inNewContext(chromium!, await adminOptions(CONTEXT_FOR[size]), serverUrl(), async (page) => {
          await page.goto(`${serverUrl()}/admin/audit?action=session.ended`);
          await checkConsolePage(page, size, 'Audit log', `admin-audit-session-ended-${size}.png`);
          const region = page.getByRole('region', { name: /Audit events/ });
          await expect(region.getAttribute('tabindex')).resolves.toBe('0');
          await expect(page.getByRole('cell', { name: PERSON.email }).first().isVisible()).resolves.toBe(true);
          await expect(page.getByRole('cell', { name: personId, exact: true }).count()).resolves.toBe(0);
          // Each detail value on whole lines: "-leading-dash-uid" is one token, rendered unbroken.
          const value = page.locator('.detail-value').filter({ hasText: 'leading-dash-uid' }).first();
          const rects = await value.evaluate((node) => {
            const range = (globalThis as unknown as { document: { createRange(): { selectNodeContents(n: unknown): void; getClientRects(): { length: number } } } }).document.createRange();
            range.selectNodeContents(node);
            return range.getClientRects().length;
          });
          expect(rects).toBeLessThanOrEqual(2);
          if (size === 'desktop') {
            // Wider than the window: the region scrolls, and the arrow keys scroll it once focused.
            const before = await region.evaluate((node) => (node as unknown as { scrollLeft: number }).scrollLeft);
            await region.focus();
            for (let i = 0; i < 10; i += 1) await page.keyboard.press('ArrowRight');
            const after = await region.evaluate((node) => (node as unknown as { scrollLeft: number }).scrollLeft);
            const { scrollWidth, clientWidth } = await region.evaluate((node) => node as unknown as { scrollWidth: number; clientWidth: number }).then((n) => n);
            if (scrollWidth > clientWidth) expect(after).toBeGreaterThan(before);
            // The Details column is not clipped: its cells are as wide as their content needs.
            const clipped = await page.locator('td[data-label="Details"]').evaluateAll((cells) =>
              cells.filter((cell) => (cell as unknown as { scrollWidth: number; clientWidth: number }).scrollWidth > (cell as unknown as { clientWidth: number }).clientWidth + 1).length,
            );
            expect(clipped).toBe(0);
          }
        });
      }
    },
    SUITE_TIMEOUT,
  );

  it(
    'a failed submit moves focus to the error summary; invalid URL and number fields show their red border',
    async () => {
      for (const scheme of SCHEMES) {
        await inNewContext(
          chromium!,
          await adminOptions({ ...CONTEXT_FOR.desktop, colorScheme: scheme }),
          serverUrl(),
          async (page) => {
            await page.goto(`${serverUrl()}/admin/clients/new`);
            const logo = page.getByLabel(/^Logo URL/);
            const border = async () => (await computedStyle(logo, ['borderTopColor'])).borderTopColor;
            const normal = await border();
            // The browser's own check, after the person typed (:user-invalid).
            await logo.fill('not a url');
            await logo.blur();
            // Past the border's colour transition.
            await page.waitForTimeout(300);
            const typedInvalid = await border();
            expect(typedInvalid).not.toBe(normal);
            await page.getByLabel('Display name').fill('Broken App');
            await page.getByLabel('Redirect URIs', { exact: true }).fill('http://app.example.com/callback');
            await page.getByRole('button', { name: 'Create client' }).click();
            await page.locator('.error-summary').waitFor();
            expect(await focusedElement(page)).toMatchObject({ tag: 'div' });
            expect((await focusedElement(page)).className).toContain('error-summary');
            await checkConsolePage(page, 'desktop', 'New client', `admin-clients-errors-focus-${scheme}.png`);
            // The server's verdict (aria-invalid) also draws the red border.
            const redirects = page.getByLabel('Redirect URIs', { exact: true });
            await expect(redirects.getAttribute('aria-invalid')).resolves.toBe('true');
            expect((await computedStyle(redirects, ['borderTopColor'])).borderTopColor).toBe(typedInvalid);

            // A number field refused by the server (invitations: uses out of range).
            await page.goto(`${serverUrl()}/admin/invitations`);
            const uses = page.getByLabel(/^Uses/).first();
            await uses.fill('0');
            await page.getByRole('button', { name: /Create invitation/ }).click();
            await page.locator('.error-summary').waitFor();
            expect((await focusedElement(page)).className).toContain('error-summary');
            await expect(page.locator('#uses').getAttribute('aria-invalid')).resolves.toBe('true');
            expect((await computedStyle(page.locator('#uses'), ['borderTopColor'])).borderTopColor).toBe(typedInvalid);
          },
          expectedErrorPage('POST /admin/clients 400', 'POST /admin/invitations 400'),
        );
      }
      // Without JavaScript too (autofocus is HTML).
      await inNewContext(
        chromium!,
        await adminOptions({ ...CONTEXT_FOR.desktop, javaScriptEnabled: false }),
        serverUrl(),
        async (page) => {
          await page.goto(`${serverUrl()}/admin/registration-tokens`);
          await page.locator('#uses').fill('0');
          await page.getByRole('button', { name: /Create token/ }).click();
          await page.locator('.error-summary').waitFor();
          // NOTE: a selector, not page.evaluate (which never returns with JavaScript disabled).
          await expect(page.locator('.error-summary:focus').count()).resolves.toBe(1);
        },
        expectedErrorPage('POST /admin/registration-tokens 400'),
      );
    },
    SUITE_TIMEOUT,
  );

  it(
    'Sign out goes through the provider’s logout and lands on the console’s signed-out page, with Sign in again',
    async () => {
      await inNewPage(adminContext!, serverUrl(), async (page) => {
        await page.goto(`${serverUrl()}/admin/users`);
        await tabTo(page, /^Sign out$/);
        await page.keyboard.press('Enter');
        await page.getByRole('heading', { level: 1, name: 'Sign out?' }).waitFor();
        await screenshot(page, 'admin-sign-out-confirm-desktop.png');
        await page.getByRole('button', { name: 'Yes, sign me out' }).click();
        await page.waitForURL(`${serverUrl()}/admin/signed-out`);
        await checkPage(page, { heading: 'You are signed out', phone: false, shot: 'admin-signed-out-desktop.png', styles: async () => undefined });
        const again = page.getByRole('link', { name: 'Sign in again' });
        await expect(again.getAttribute('href')).resolves.toBe('/admin/sign-in');
        // The console is closed now: it asks for a sign-in.
        await page.goto(`${serverUrl()}/admin/users`);
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
      });
    },
    SUITE_TIMEOUT,
  );
});
