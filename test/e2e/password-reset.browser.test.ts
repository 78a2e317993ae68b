/**
 * Password reset in a real browser (Debian's headless Chromium via playwright-core), on a phone,
 * at desktop size and with JavaScript off: "Forgot password?" on the login page → the request
 * page (prefilled) → the code from the real mail → a new password (a weak one refused first,
 * with the reason next to the field) → consent → back at the app with a code. Then the mail's
 * link, opened in a browser with no sign-in: the form, "Your password was changed", and the same
 * link refused the second time. Every page: zero WCAG 2.1 A/AA violations axe finds (with
 * JavaScript on), no CSP violation, a screenshot.
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
import { startMailServer, waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const SUITE_TIMEOUT = 90_000;
const STEP_TIMEOUT = 20_000;
const MAIL_TIMEOUT = 15_000;
const CLIENT_NAME = 'Reset Notes';
const OLD_PASSWORD = 'an old and forgotten passphrase';
const WEAK_PASSWORD = 'password1234';
type Variant = Size | 'no-js';
const NEW_PASSWORD: Record<Variant, string> = { phone: 'quartz lantern meadow ripple', desktop: 'copper violin harbour echo', 'no-js': 'granite pelican velvet orbit' };
const CONTEXTS: Record<Variant, BrowserContextOptions> = { phone: CONTEXT_FOR.phone, desktop: CONTEXT_FOR.desktop, 'no-js': { viewport: PHONE, javaScriptEnabled: false } };

/** Runs `click` and answers the status of the form POST it sends to a path ending in `pathEnd`. */
async function postStatus(page: Page, pathEnd: string, click: () => Promise<void>): Promise<number> {
  const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith(pathEnd)), click()]);
  return response.status();
}

async function checkPage(page: Page, variant: Variant, heading: string | RegExp, shot: string): Promise<void> {
  await checkPageWith(page, {
    heading,
    shot,
    phone: variant !== 'desktop',
    javaScript: variant !== 'no-js',
    styles: async () => {
      await expectComputedStyle(page.locator('.card'), variant === 'desktop' ? { maxWidth: '416px', paddingLeft: '32px' } : { maxWidth: 'none', paddingLeft: '20px' });
      await expectButtonPainted(page.locator('.button').first(), { filled: false });
      if (variant === 'desktop') await expectCentred(page.locator('.card'), DESKTOP.width);
    },
  });
}

describe('password reset in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: CallbackServer | undefined;
  let smtp: MailServer | undefined;
  let chromium: Chromium | undefined;
  let rp: oidc.Configuration;
  const accountIds = new Map<string, string>();
  const emailFor = (variant: Variant, what: string) => `reset.${what}.${variant}@example.com`;

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    relyingParty = await startCallbackServer();
    smtp = await startMailServer();
    server = await startTestServer('browser-password-reset', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', PASSWORD_RESET_IP_LIMIT: '1000' } });
    for (const variant of Object.keys(CONTEXTS) as Variant[]) {
      for (const what of ['flow', 'link']) {
        const email = emailFor(variant, what);
        const account = await server.deps.accounts.create({ email, password: OLD_PASSWORD, name: 'Grace Hopper', emailVerified: true });
        accountIds.set(email, account.id);
      }
    }
    const client = await server.deps.clients.create({ name: CLIENT_NAME, redirectUris: [relyingParty.callbackUrl] });
    rp = await rpFor(server, client);
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [chromium, relyingParty, server, smtp]), SUITE_TIMEOUT);

  const fromTheLoginPage = (variant: Variant) =>
    inNewContext(
      chromium!,
      CONTEXTS[variant],
      server!.url,
      async (page, seen) => {
        const email = emailFor(variant, 'flow');
        const authorization = await startAuthorization(page, rp, relyingParty!);
        await checkPage(page, variant, 'Sign in', `reset-login-${variant}.png`);
        await page.getByLabel('Email').fill(email);
        await page.getByRole('button', { name: 'Forgot password?' }).click();

        await checkPage(page, variant, 'Reset your password', `reset-request-${variant}.png`);
        await expect(page.getByLabel('Email').inputValue()).resolves.toBe(email);
        const before = smtp!.countFor(email);
        expect(await postStatus(page, '/reset/request', () => page.getByRole('button', { name: 'Send me a code' }).click())).toBe(303);

        await checkPage(page, variant, 'Check your email', `reset-code-${variant}.png`);
        const codeInput = page.getByLabel('Code from the email');
        expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
        expect(await codeInput.getAttribute('inputmode')).toBe('numeric');
        await codeInput.fill((await waitForCodeMail(smtp!, email, { after: before, timeoutMs: MAIL_TIMEOUT })).code);
        expect(await postStatus(page, '/reset/code', () => page.getByRole('button', { name: 'Continue' }).click())).toBe(303);

        await checkPage(page, variant, 'Choose a new password', `reset-password-${variant}.png`);
        const interactionPath = new URL(page.url()).pathname;
        expect(interactionPath).toMatch(/^\/interaction\/[A-Za-z0-9_-]+$/);
        const password = page.getByLabel('New password', { exact: true });
        expect(await password.getAttribute('autocomplete')).toBe('new-password');
        await password.fill(WEAK_PASSWORD);
        await page.getByLabel('Repeat the new password').fill(WEAK_PASSWORD);
        // Post/redirect/get: the refusal is a 303 to the step's page, whose GET answers 400.
        expect(await postStatus(page, '/reset/password', () => page.getByRole('button', { name: 'Set password and continue' }).click())).toBe(303);
        // Refused: the reason next to the field, tied to it for screen readers.
        await checkPage(page, variant, 'Choose a new password', `reset-password-refused-${variant}.png`);
        await expect(page.locator('#password-error').isVisible()).resolves.toBe(true);
        expect(await page.getByLabel('New password', { exact: true }).getAttribute('aria-describedby')).toContain('password-error');
        expect(await page.getByLabel('New password', { exact: true }).getAttribute('aria-invalid')).toBe('true');

        await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD[variant]);
        await page.getByLabel('Repeat the new password').fill(NEW_PASSWORD[variant]);
        await page.getByRole('button', { name: 'Set password and continue' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        const callback = await allowAndReachCallback(page, seen, relyingParty!, authorization, `failure-reset-${variant}.png`);
        const tokens = await redeemCallback(rp, authorization, callback);
        expect(tokens.claims()?.sub).toBe(accountIds.get(email));
        expect(tokens.claims()?.amr).toEqual(['email']);
        expect((await server!.deps.accounts.authenticate(email, NEW_PASSWORD[variant])).ok).toBe(true);
        // The weak password's refusal (the GET its POST redirected to), and nothing else.
        return [`GET ${interactionPath} 400`];
      },
      (httpErrors) => ({ httpErrors }),
    );

  const byTheLink = (variant: Variant) =>
    inNewContext(
      chromium!,
      CONTEXTS[variant],
      server!.url,
      async (page) => {
        const email = emailFor(variant, 'link');
        const before = smtp!.countFor(email);
        // An administrator sends the link: no sign-in in progress anywhere.
        await server!.deps.passwordReset.sendByAdmin(accountIds.get(email) ?? '');
        const mail = await smtp!.waitForMail(email, { after: before, timeoutMs: MAIL_TIMEOUT });
        const link = /https?:\/\/\S+\/password-reset\?token=[A-Za-z0-9_%-]+/.exec(mail.text)?.[0] ?? '';
        expect(link).not.toBe('');

        await page.goto(link);
        await checkPage(page, variant, 'Choose a new password', `reset-link-${variant}.png`);
        await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD[variant]);
        await page.getByLabel('Repeat the new password').fill(NEW_PASSWORD[variant]);
        // Post/redirect/get to a page whose URL holds no secret.
        expect(await postStatus(page, '/password-reset', () => page.getByRole('button', { name: 'Set new password' }).click())).toBe(303);
        await checkPage(page, variant, 'Your password was changed', `reset-link-done-${variant}.png`);
        expect(await page.getByRole('link', { name: 'Sign in' }).getAttribute('href')).toBe(`${server!.url}/account`);
        expect((await server!.deps.accounts.authenticate(email, NEW_PASSWORD[variant])).ok).toBe(true);

        // The same link again: the form shows (a GET spends nothing), the POST says it no longer works.
        await page.goto(link);
        await page.getByLabel('New password', { exact: true }).fill(`${NEW_PASSWORD[variant]} again`);
        await page.getByLabel('Repeat the new password').fill(`${NEW_PASSWORD[variant]} again`);
        expect(await postStatus(page, '/password-reset', () => page.getByRole('button', { name: 'Set new password' }).click())).toBe(303);
        await checkPage(page, variant, 'This link no longer works', `reset-link-used-${variant}.png`);
        await expect(page.getByRole('link', { name: 'Ask for a new link' }).isVisible()).resolves.toBe(true);
      },
      // The used link: the page its POST redirected to (no token in that URL).
      { httpErrors: ['GET /password-reset/invalid 400'] },
    );

  for (const variant of Object.keys(CONTEXTS) as Variant[]) {
    it(`${variant}: from "Forgot password?" on the login page to the app, a weak password refused on the way`, () => fromTheLoginPage(variant), SUITE_TIMEOUT);
    it(`${variant}: the mail's link in a browser with no sign-in, then the same link refused`, () => byTheLink(variant), SUITE_TIMEOUT);
  }
});
