/**
 * Sign-up and email verification in a real browser: Debian's headless Chromium driven by
 * playwright-core, against the real app and a real SMTP server on loopback (the code is read from
 * the mail a person would get), with openid-client as the relying party. On a phone, at desktop
 * size and without JavaScript; every page passes axe (WCAG 2.1 A/AA) and is photographed.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as oidc from 'openid-client';
import type { BrowserContextOptions, Page } from 'playwright-core';

import {
  CONTEXT_FOR,
  DESKTOP,
  PHONE,
  allowAndReachCallback,
  checkPage as checkPageWith,
  endSuite,
  expectButtonPainted,
  expectCentred,
  expectComputedStyle,
  inNewContext,
  launchChromium,
  redeemCallback,
  startAuthorization,
  startCallbackServer,
} from '../support/browser.js';
import type { CallbackServer, Chromium, Size } from '../support/browser.js';
import { codeFrom, startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const SUITE_TIMEOUT = 90_000;
const STEP_TIMEOUT = 20_000;
const MAIL_TIMEOUT = 15_000;
const CLIENT_NAME = 'Browser Notes';
const PASSWORD = 'violet harbour lantern 82';

/** Runs `click` and answers the status of the form POST it sends to a path ending in `pathEnd`. */
async function postStatus(page: Page, pathEnd: string, click: () => Promise<void>): Promise<number> {
  const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith(pathEnd)), click()]);
  return response.status();
}

async function checkPage(page: Page, size: Size | 'no-js', heading: string | RegExp, shot: string): Promise<void> {
  await checkPageWith(page, {
    heading,
    shot,
    phone: size !== 'desktop',
    javaScript: size !== 'no-js',
    styles: async () => {
      await expectComputedStyle(page.locator('.card'), size === 'desktop' ? { maxWidth: '416px', paddingLeft: '32px' } : { maxWidth: 'none', paddingLeft: '20px' });
      await expectButtonPainted(page.locator('.button').first(), { filled: false });
      if (size === 'desktop') await expectCentred(page.locator('.card'), DESKTOP.width);
    },
  });
}

describe('sign-up in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: CallbackServer | undefined;
  let smtp: MailServer | undefined;
  let chromium: Chromium | undefined;
  let rp: oidc.Configuration;

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    relyingParty = await startCallbackServer();
    smtp = await startMailServer();
    server = await startTestServer('browser-sign-up', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', SIGN_UP: 'open', SIGN_UP_IP_LIMIT: '10000' } });
    const client = await server.deps.clients.create({ name: CLIENT_NAME, redirectUris: [relyingParty.callbackUrl] });
    rp = await rpFor(server, client);
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [chromium, relyingParty, server, smtp]), SUITE_TIMEOUT);

  /** Login page → Create account → a weak password refused → the form → the code page → consent → the app. */
  async function signUp(size: Size | 'no-js', options: BrowserContextOptions): Promise<void> {
    const email = `grace.${size}@example.com`;
    await inNewContext(
      chromium!,
      options,
      server!.url,
      async (page, seen) => {
        const authorization = await startAuthorization(page, rp, relyingParty!, { scope: 'openid email' });
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        await page.getByRole('link', { name: 'Create account' }).click();
        await checkPage(page, size, 'Create your account', `sign-up-${size}.png`);
        const uid = new URL(page.url()).pathname.split('/')[2] ?? '';
        expect(await page.getByLabel('Email').getAttribute('autocomplete')).toBe('email');
        expect(await page.getByLabel('Name').getAttribute('autocomplete')).toBe('name');
        const password = page.getByLabel('Password', { exact: true });
        expect(await password.getAttribute('autocomplete')).toBe('new-password');
        await expect(page.locator('#password-hint').isVisible()).resolves.toBe(true);

        // A password the policy refuses: the reason next to the field, tied to it.
        await page.getByLabel('Email').fill(email);
        await page.getByLabel('Name').fill('Grace Hopper');
        await password.fill('password1234');
        // Post/redirect/get: the refusal is a 303 to the form, whose GET answers 400.
        expect(await postStatus(page, '/sign-up', () => page.getByRole('button', { name: 'Create account' }).click())).toBe(303);
        await checkPage(page, size, 'Create your account', `sign-up-refused-${size}.png`);
        const refused = page.getByLabel('Password', { exact: true });
        expect(await refused.getAttribute('aria-invalid')).toBe('true');
        expect(await refused.getAttribute('aria-describedby')).toContain('password-error');
        await expect(page.locator('#password-error').isVisible()).resolves.toBe(true);

        const mailsBefore = smtp!.countFor(email);
        await refused.fill(PASSWORD);
        await page.getByRole('button', { name: 'Create account' }).click();
        await checkPage(page, size, 'Check your inbox', `verify-email-${size}.png`);
        await expect(page.locator('.card-subtitle').innerText()).resolves.toContain(email);
        const codeInput = page.getByLabel('Code from the email');
        expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
        expect(await codeInput.getAttribute('inputmode')).toBe('numeric');

        // A new code at once: throttled, with the time left.
        expect(await postStatus(page, '/sign-up/resend', () => page.getByRole('button', { name: 'send a new code' }).click())).toBe(303);
        await checkPage(page, size, 'Check your inbox', `verify-email-resend-${size}.png`);
        await expect(page.locator('#step-notice').innerText()).resolves.toMatch(/ask for a new one in \d+ (second|minute)/);

        const mail = await smtp!.waitForMail(email, { after: mailsBefore, timeoutMs: MAIL_TIMEOUT });
        await page.getByLabel('Code from the email').fill(codeFrom(mail));
        expect(await postStatus(page, '/sign-up/verify', () => page.getByRole('button', { name: 'Confirm and continue' }).click())).toBe(303);
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        await checkPage(page, size, new RegExp(`^${CLIENT_NAME}\\s+wants to access your account$`), `sign-up-consent-${size}.png`);
        const callback = await allowAndReachCallback(page, seen, relyingParty!, authorization, `failure-sign-up-${size}.png`);
        const tokens = await redeemCallback(rp, authorization, callback);
        expect(tokens.claims()?.sub).toBe((await server!.deps.accounts.findByEmail(email))?.id);
        expect((await server!.deps.accounts.findByEmail(email))?.emailVerified).toBe(true);
        return uid;
      },
      // The refused password and the early resend are the only HTTP errors, on purpose: the GETs
      // their POSTs redirected to (post/redirect/get).
      (uid) => ({ httpErrors: [`GET /interaction/${uid} 400`, `GET /interaction/${uid} 429`] }),
    );
  }

  it('on a phone', () => signUp('phone', CONTEXT_FOR.phone), SUITE_TIMEOUT);
  it('at desktop size', () => signUp('desktop', CONTEXT_FOR.desktop), SUITE_TIMEOUT);
  it('without JavaScript', () => signUp('no-js', { viewport: PHONE, javaScriptEnabled: false }), SUITE_TIMEOUT);
});
