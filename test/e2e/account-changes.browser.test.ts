/**
 * The account centre's password, email and deletion pages in a real browser (Debian's headless
 * Chromium via playwright-core): on a phone, at desktop size, and with JavaScript off. Each page
 * gets the common checks (stylesheet, no sideways overflow on a phone, every input labelled), axe
 * (WCAG 2.1 A/AA) in the light and the dark colour scheme where JavaScript runs, and screenshots.
 * The desktop run is keyboard-only: fields are reached with Tab, filled by typing and sent with
 * Enter; a refused field has the focus when the page comes back.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { BrowserContextOptions, Page } from 'playwright-core';

import { CONTEXT_FOR, PHONE, checkPage as checkPageWith, endSuite, expectButtonPainted, expectComputedStyle, inNewContext, launchChromium } from '../support/browser.js';
import type { Chromium, Size } from '../support/browser.js';
import { startMailServer, waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const SUITE_TIMEOUT = 120_000;
const STEP_TIMEOUT = 20_000;
const MAIL_TIMEOUT = 15_000;
const OLD_PASSWORD = 'an old but sturdy passphrase';
const WEAK_PASSWORD = 'password1234';
type Variant = Size | 'no-js';
const VARIANTS: Variant[] = ['phone', 'desktop', 'no-js'];
const NEW_PASSWORD: Record<Variant, string> = { phone: 'quartz lantern meadow ripple', desktop: 'copper violin harbour echo', 'no-js': 'granite pelican velvet orbit' };
const CONTEXTS: Record<Variant, BrowserContextOptions> = { phone: CONTEXT_FOR.phone, desktop: CONTEXT_FOR.desktop, 'no-js': { viewport: PHONE, javaScriptEnabled: false } };

/** The checks of every page, in the light scheme and (where axe can run) the dark one too. */
async function checkPage(page: Page, variant: Variant, heading: string | RegExp, shot: string): Promise<void> {
  const common = {
    heading,
    phone: variant !== 'desktop',
    javaScript: variant !== 'no-js',
    styles: async () => {
      // Every page but the last has a button; that one is checked by its card.
      if ((await page.locator('.button').count()) > 0) await expectButtonPainted(page.locator('.button').first(), { filled: false });
      else await expectComputedStyle(page.locator('.card'), { paddingLeft: variant === 'desktop' ? '32px' : '20px' });
    },
  };
  await checkPageWith(page, { ...common, shot: `${shot}-${variant}.png` });
  if (variant === 'no-js') return;
  await page.emulateMedia({ colorScheme: 'dark' });
  try {
    await checkPageWith(page, { ...common, shot: `${shot}-${variant}-dark.png` });
  } finally {
    await page.emulateMedia({ colorScheme: 'light' });
  }
}

/** Runs `act` and answers the status of the form POST it sends to exactly `path`. */
async function postStatus(page: Page, path: string, act: () => Promise<void>): Promise<number> {
  const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === path), act()]);
  return response.status();
}

/** Keyboard only: Tab until the field labelled `label` has the focus, then type `text`. */
async function tabTo(page: Page, label: string): Promise<void> {
  const field = page.getByLabel(label, { exact: true });
  for (let i = 0; i < 40; i += 1) {
    if (await field.evaluate((el) => el === (el.ownerDocument as unknown as { activeElement: unknown }).activeElement)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached ${label}`);
}

describe('the account centre: password, email and deletion in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let smtp: MailServer | undefined;
  let chromium: Chromium | undefined;
  const emailFor = (variant: Variant, what: string) => `changes.${what}.${variant}@example.com`;

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    smtp = await startMailServer();
    server = await startTestServer('browser-account-changes', { env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' } });
    for (const variant of VARIANTS) {
      await server.deps.accounts.create({ email: emailFor(variant, 'person'), password: OLD_PASSWORD, name: 'Grace Hopper', emailVerified: true });
    }
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [chromium, server, smtp]), SUITE_TIMEOUT);

  /** Signs in at the login page (keyboard only on the desktop) and lands on `path`. */
  async function signIn(page: Page, variant: Variant, email: string, password: string, path: string): Promise<void> {
    await page.goto(`${server!.url}/account/sign-in?return=${encodeURIComponent(path)}`);
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    if (variant === 'desktop') {
      await tabTo(page, 'Email');
      await page.keyboard.type(email);
      await tabTo(page, 'Password');
      await page.keyboard.type(password);
      await page.keyboard.press('Enter');
    } else {
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password', { exact: true }).fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
    }
    await page.waitForURL(`${server!.url}${path}`);
  }

  /** Fills a field: typing after Tab on the desktop (keyboard only), fill() elsewhere. */
  async function enter(page: Page, variant: Variant, label: string, text: string): Promise<void> {
    if (variant !== 'desktop') return page.getByLabel(label, { exact: true }).fill(text);
    await tabTo(page, label);
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type(text);
  }

  const journey = (variant: Variant) =>
    inNewContext(
      chromium!,
      CONTEXTS[variant],
      server!.url,
      async (page) => {
        const email = emailFor(variant, 'person');
        const newEmail = emailFor(variant, 'moved');
        await signIn(page, variant, email, OLD_PASSWORD, '/account/password');

        // Password: a weak one refused on its field (which has the focus), then changed.
        await checkPage(page, variant, 'Change your password', 'account-password');
        expect(await page.getByLabel('Current password').getAttribute('autocomplete')).toBe('current-password');
        expect(await page.getByLabel('New password', { exact: true }).getAttribute('autocomplete')).toBe('new-password');
        await enter(page, variant, 'Current password', OLD_PASSWORD);
        await enter(page, variant, 'New password', WEAK_PASSWORD);
        await enter(page, variant, 'Repeat the new password', WEAK_PASSWORD);
        const send = () => (variant === 'desktop' ? page.keyboard.press('Enter') : page.getByRole('button', { name: 'Change password' }).click());
        expect(await postStatus(page, '/account/password', send)).toBe(400);
        await checkPage(page, variant, 'Change your password', 'account-password-refused');
        const field = page.getByLabel('New password', { exact: true });
        expect(await field.getAttribute('aria-invalid')).toBe('true');
        expect(await field.getAttribute('aria-describedby')).toContain('password-error');
        await expect(page.locator('#password-error').isVisible()).resolves.toBe(true);
        if (variant !== 'no-js') expect(await field.evaluate((el) => el === (el.ownerDocument as unknown as { activeElement: unknown }).activeElement)).toBe(true);
        await enter(page, variant, 'Current password', OLD_PASSWORD);
        await enter(page, variant, 'New password', NEW_PASSWORD[variant]);
        await enter(page, variant, 'Repeat the new password', NEW_PASSWORD[variant]);
        expect(await postStatus(page, '/account/password', send)).toBe(303);
        await page.getByText('Your password is changed').waitFor();
        await checkPage(page, variant, 'Change your password', 'account-password-done');
        expect((await server!.deps.accounts.authenticate(email, NEW_PASSWORD[variant])).ok).toBe(true);

        // Email: the code from the new inbox.
        await page.goto(`${server!.url}/account/email`);
        await checkPage(page, variant, 'Email address', 'account-email');
        expect(await page.getByLabel('New email address').getAttribute('autocomplete')).toBe('email');
        const before = smtp!.countFor(newEmail);
        await enter(page, variant, 'New email address', newEmail);
        const sendCode = () => (variant === 'desktop' ? page.keyboard.press('Enter') : page.getByRole('button', { name: 'Send a code to the new address' }).click());
        expect(await postStatus(page, '/account/email', sendCode)).toBe(303);
        await checkPage(page, variant, 'Email address', 'account-email-code');
        const code = (await waitForCodeMail(smtp!, newEmail, { after: before, timeoutMs: MAIL_TIMEOUT })).code;
        await enter(page, variant, 'Code from the email', code);
        const confirm = () => (variant === 'desktop' ? page.keyboard.press('Enter') : page.getByRole('button', { name: 'Confirm new address' }).click());
        expect(await postStatus(page, '/account/email/verify', confirm)).toBe(303);
        await page.getByText('Your email address is changed').waitFor();
        await checkPage(page, variant, 'Email address', 'account-email-done');
        expect((await server!.deps.accounts.findByEmail(newEmail))?.emailVerified).toBe(true);

        // Deletion: a wrong confirmation refused on its field, then the account is gone.
        await page.goto(`${server!.url}/account/delete`);
        await checkPage(page, variant, 'Delete your account', 'account-delete');
        await enter(page, variant, 'To confirm, type your email address', 'DELETE');
        const del = () => (variant === 'desktop' ? page.keyboard.press('Enter') : page.getByRole('button', { name: 'Delete my account' }).click());
        expect(await postStatus(page, '/account/delete', del)).toBe(400);
        await checkPage(page, variant, 'Delete your account', 'account-delete-refused');
        expect(await page.getByLabel('To confirm, type your email address').getAttribute('aria-invalid')).toBe('true');
        await enter(page, variant, 'To confirm, type your email address', newEmail);
        expect(await postStatus(page, '/account/delete', del)).toBe(303);
        await checkPage(page, variant, 'Your account is deleted', 'account-deleted');
        expect(await server!.deps.accounts.findByEmail(newEmail)).toBeUndefined();
        // Signed out: the centre asks for a sign-in again.
        await page.goto(`${server!.url}/account/security`);
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
      },
      { httpErrors: ['POST /account/password 400', 'POST /account/delete 400'] },
    );

  for (const variant of VARIANTS) {
    it(`${variant}: change the password (a weak one refused first), change the email with the mailed code, delete the account`, () => journey(variant), SUITE_TIMEOUT);
  }
});
