/**
 * Show / hide password on the sign-in page: a progressive enhancement from a script file (the CSP
 * allows no inline script). With JavaScript the field gets a toggle; without it the page is the
 * plain form, and signing in works either way.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';

import {
  CONTEXT_FOR,
  endSuite,
  expectNoSidewaysOverflow,
  inNewContext,
  launchChromium,
  screenshot,
  startAuthorization,
  startCallbackServer,
} from '../support/browser.js';
import type { CallbackServer, Chromium } from '../support/browser.js';
import { rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const SUITE_TIMEOUT = 60_000;
const USER = { email: 'ada@example.com', password: 'a long and correct passphrase', name: 'Ada Lovelace' };

describe('show / hide password (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: CallbackServer | undefined;
  let chromium: Chromium | undefined;
  let rp: oidc.Configuration;

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: 15_000 });
    relyingParty = await startCallbackServer();
    server = await startTestServer('password-toggle');
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    const client = await server.deps.clients.create({ name: 'Toggle App', redirectUris: [relyingParty.callbackUrl] });
    rp = await rpFor(server, client);
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [chromium, relyingParty, server]), SUITE_TIMEOUT);

  it(
    'with JavaScript on a phone: the toggle shows and hides the password, by keyboard too, and the form still signs in',
    async () => {
      await inNewContext(chromium!, CONTEXT_FOR.phone, server!.url, async (page) => {
        await startAuthorization(page, rp, relyingParty!);
        const password = page.getByLabel('Password');
        const toggle = page.getByRole('button', { name: 'Show password' });
        await toggle.waitFor();
        expect(await toggle.getAttribute('aria-controls')).toBe('password');
        await password.fill(USER.password);
        expect(await password.getAttribute('type')).toBe('password');

        await toggle.click();
        expect(await password.getAttribute('type')).toBe('text');
        await expect(page.getByRole('button', { name: 'Hide password' }).isVisible()).resolves.toBe(true);
        // Focus stays in the field, so typing goes on where it was.
        expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('password');
        await expectNoSidewaysOverflow(page);
        await screenshot(page, 'login-password-shown-phone.png');

        // Keyboard: Tab from the field reaches the toggle; Space hides again.
        await page.keyboard.press('Tab');
        expect(await page.evaluate('document.activeElement && document.activeElement.className')).toBe('password-toggle');
        await page.keyboard.press('Space');
        expect(await password.getAttribute('type')).toBe('password');

        // Shown when submitted: the field goes back to a password field, and the sign-in goes through.
        await toggle.click();
        await page.getByLabel('Email').fill(USER.email);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'without JavaScript: no toggle, a plain password field, and the sign-in works',
    async () => {
      await inNewContext(chromium!, { ...CONTEXT_FOR.desktop, javaScriptEnabled: false }, server!.url, async (page) => {
        await startAuthorization(page, rp, relyingParty!);
        const password = page.getByLabel('Password');
        await password.waitFor();
        expect(await password.getAttribute('type')).toBe('password');
        expect(await page.getByRole('button', { name: /^(show|hide) password$/i }).count()).toBe(0);
        await screenshot(page, 'login-no-javascript-desktop.png');
        await page.getByLabel('Email').fill(USER.email);
        await password.fill(USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
      });
    },
    SUITE_TIMEOUT,
  );
});
