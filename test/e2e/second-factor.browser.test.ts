/**
 * Sign-in with an email code and with TOTP, in a real browser: Debian's headless Chromium driven
 * by playwright-core, against the real app (startTestServer) and a real SMTP server on loopback
 * (codes are read from the mail a person would get). The relying party is openid-client (the
 * shared rp.ts helpers) with a tiny HTTP server of our own whose /callback receives the code, as in
 * sign-in.browser.test.ts. The browser plumbing is in ../support/browser.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import type * as oidc from 'openid-client';
import type { BrowserContextOptions, Page } from 'playwright-core';

import type { CreatedClient } from '../../src/clients/client.service.js';
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
import { totpCode, wrongTotpCode } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const SUITE_TIMEOUT = 90_000;
const STEP_TIMEOUT = 20_000;
const MAIL_TIMEOUT = 15_000;

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

/**
 * The checks every page gets (checkPage in browser.ts), with this stylesheet's signs of being applied:
 * the card is laid out (2rem padding, 1.25rem sideways on a phone, where it fills the width; centred and
 * narrower than the window on a desktop) and the first button is painted, not the browser's default grey.
 */
async function checkPage(page: Page, size: Size | 'no-js', heading: string | RegExp, shot: string): Promise<void> {
  await checkPageWith(page, {
    heading,
    shot,
    phone: size !== 'desktop',
    javaScript: size !== 'no-js',
    styles: async () => {
      await expectComputedStyle(
        page.locator('.card'),
        size === 'desktop' ? { maxWidth: '416px', paddingLeft: '32px' } : { maxWidth: 'none', paddingLeft: '20px' },
      );
      // The first button may be a secondary one, whose background is transparent.
      await expectButtonPainted(page.locator('.button').first(), { filled: false });
      if (size === 'desktop') await expectCentred(page.locator('.card'), DESKTOP.width);
    },
  });
}

/** The consent page's heading for this client. */
const consentHeading = (clientName: string) => new RegExp(`^${clientName}\\s+wants to access your account$`);

describe('second factors in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: CallbackServer | undefined;
  let smtp: MailServer | undefined;
  let chromium: Chromium | undefined;
  let client: CreatedClient;
  let mfaClient: CreatedClient;
  let rp: oidc.Configuration;
  let mfaRp: oidc.Configuration;
  const accountIds = new Map<string, string>();

  /** Learnt in the browser during enrolment; the later tests sign in with them. */
  let totpSecret: string | undefined;
  let recoveryCodes: string[] = [];

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    relyingParty = await startCallbackServer();
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
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [chromium, relyingParty, server, smtp]), SUITE_TIMEOUT);

  /** Every account document as stored (BSON, in _id order): equal bytes, nothing written. */
  const accountsBytes = async () =>
    Buffer.concat((await server!.deps.db.collection('accounts').find({}).sort({ _id: 1 }).toArray()).map((doc) => mongo.BSON.serialize(doc)));

  /**
   * A fresh browser (`options`, clean throughout) is sent to a new authorization request of `relying`;
   * `toConsent` takes it to the consent page; Allow brings it back to the app with a code from our
   * server (RFC 9207 iss), which is redeemed. `afterwards` goes on in the same page with the ID token's claims.
   * `toConsent` may return the HTTP errors it caused on purpose (`GET /interaction/… 401`, the page a refused POST redirects to).
   */
  async function signInAndAllow(
    options: BrowserContextOptions,
    relying: oidc.Configuration,
    failureShot: string,
    toConsent: (page: Page) => Promise<string[] | void>,
    afterwards: (page: Page, claims: oidc.IDToken) => Promise<void>,
  ): Promise<void> {
    await inNewContext(
      chromium!,
      options,
      server!.url,
      async (page, seen) => {
        const authorization = await startAuthorization(page, relying, relyingParty!);
        const httpErrors = (await toConsent(page)) ?? [];
        const callback = await allowAndReachCallback(page, seen, relyingParty!, authorization, failureShot);
        expect(callback.searchParams.get('iss')).toBe(server!.url);
        const tokens = await redeemCallback(relying, authorization, callback);
        await afterwards(page, tokens.claims()!);
        return httpErrors;
      },
      (httpErrors) => ({ httpErrors }),
    );
  }

  /** The login page, then the password of TOTP_USER. */
  async function signInWithPassword(page: Page): Promise<void> {
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await page.getByLabel('Email').fill(TOTP_USER.email);
    await page.getByLabel('Password').fill(TOTP_USER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  /** Login page → "Email me a sign-in code" → code from the mail → consent → Allow → callback. */
  function emailCodeSignIn(size: Size | 'no-js', user: { email: string }, options: BrowserContextOptions): Promise<void> {
    return signInAndAllow(
      options,
      rp,
      `failure-email-code-${size}.png`,
      async (page) => {
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
        await checkPage(page, size, consentHeading(CLIENT_NAME), `email-code-consent-${size}.png`);
        await expect(page.getByText(user.email).first().isVisible()).resolves.toBe(true);
      },
      async (_page, claims) => {
        expect(claims.sub).toBe(accountIds.get(user.email));
        expect(claims.amr).toEqual(['email']);
        expect(claims.acr).toBe(server!.config.acr.singleFactor);
      },
    );
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

  /** Login page → password → the two-step verification page (TOTP_USER has enrolled by then). */
  async function passwordToTwoStep(page: Page, size: Size): Promise<void> {
    await signInWithPassword(page);
    await checkPage(page, size, 'Two-step verification', `totp-sign-in-${size}.png`);
  }

  /** From the two-step verification page to the one for a recovery code instead. */
  async function toRecoveryCodePage(page: Page, size: Size): Promise<void> {
    await page.getByRole('link', { name: "Can't use your app? Use a recovery code" }).click();
    await checkPage(page, size, 'Use a recovery code', `totp-recovery-sign-in-${size}.png`);
    expect(new URL(page.url()).searchParams.get('method')).toBe('recovery');
  }

  /** The code typed into `field` on a second-factor page, Verify, and the consent page for CLIENT_NAME. */
  async function verifyToConsent(page: Page, size: Size, field: string, code: string): Promise<void> {
    await page.getByLabel(field).fill(code);
    await page.getByRole('button', { name: 'Verify' }).click();
    if (field === 'Recovery code') {
      // The page saying how many codes are left comes first; Continue finishes the sign-in.
      await page.getByRole('heading', { name: 'You used a recovery code' }).waitFor();
      await checkPage(page, size, 'You used a recovery code', `recovery-used-${size}.png`);
      await expect(page.getByText('recovery codes left').innerText()).resolves.toMatch(/You have \d+ recovery codes left/);
      // Focus starts on Continue, which names the count as its description.
      await expect(page.locator(':focus').textContent()).resolves.toBe('Continue');
      await expect(page.getByRole('button', { name: 'Continue' }).getAttribute('aria-describedby')).resolves.toBe('codes-left');
      await page.getByRole('button', { name: 'Continue' }).click();
    }
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    await checkPage(page, size, consentHeading(CLIENT_NAME), `totp-consent-${size}.png`);
  }

  /**
   * The account console's security page in the same browser, signed in through the SSO session (no
   * new factor asked): two-step verification is on, with this many recovery codes left.
   */
  async function expectSecurityPageOn(page: Page, size: Size, recoveryCodesLeft: number): Promise<void> {
    await page.goto(`${server!.url}/account/security`);
    // The account centre's frame (a panel beside or under its navigation), not the sign-in card.
    await checkPageWith(page, {
      heading: 'Security',
      shot: `account-security-totp-on-${size}.png`,
      phone: size === 'phone',
      styles: async () => {
        await expectComputedStyle(page.locator('.account-main'), size === 'desktop' ? { borderTopLeftRadius: '12px', paddingLeft: '32px' } : { borderTopLeftRadius: '0px', paddingLeft: '20px' });
        await expectButtonPainted(page.locator('.account-main .button').first(), { filled: false });
      },
    });
    expect(new URL(page.url()).pathname).toBe('/account/security');
    await expect(page.locator('.state-pill').textContent()).resolves.toBe('On');
    await expect(page.getByText('Recovery codes left:').innerText()).resolves.toMatch(new RegExp(`Recovery codes left:\\s*${recoveryCodesLeft}\\b`));
  }

  /** A sign-in of TOTP_USER with both factors: amr and acr say so. */
  function expectTotpUserWithTwoFactors(claims: oidc.IDToken): void {
    expect(claims.sub).toBe(accountIds.get(TOTP_USER.email));
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(claims.acr).toBe(server!.config.acr.multiFactor);
  }

  it(
    'on a phone: a require_mfa client makes the person set up TOTP (QR code and key), then shows recovery codes',
    () =>
      signInAndAllow(
        CONTEXT_FOR.phone,
        mfaRp,
        'failure-totp-enrol-phone.png',
        async (page) => {
          await signInWithPassword(page);

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
          const shownKey = async () => (await page.locator('.secret-key code span').allInnerTexts()).join('').replace(/\s+/g, '');
          expect((await page.locator('.secret-key code span').allInnerTexts()).length).toBeGreaterThan(1);
          const firstKey = await shownKey();
          expect(firstKey).toMatch(/^[A-Z2-7]{16,}$/);

          // Showing the page again (a GET) stores nothing: the key lives in the page until activation.
          const before = await accountsBytes();
          await page.reload();
          await page.getByRole('button', { name: 'Turn on two-step verification' }).waitFor();
          expect((await accountsBytes()).equals(before)).toBe(true);
          const secret = await shownKey();
          expect(secret).toMatch(/^[A-Z2-7]{16,}$/);

          // A wrong code shows the same key again: nothing to scan a second time.
          const codeInput = page.getByLabel('Enter the 6-digit code the app shows');
          expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
          await codeInput.fill(await wrongTotpCode(secret));
          await page.getByRole('button', { name: 'Turn on two-step verification' }).click();
          await expect(page.locator('.alert').first().innerText()).resolves.toContain('That code is not right');
          expect(await shownKey()).toBe(secret);
          // Shown by the GET the refused POST redirected to (post/redirect/get).
          const refused = `GET ${new URL(page.url()).pathname} 401`;

          await page.getByLabel('Enter the 6-digit code the app shows').fill(await totpCode(secret));
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
          await checkPage(page, 'phone', consentHeading(MFA_CLIENT_NAME), 'totp-enrol-consent-phone.png');
          return [refused];
        },
        async (_page, claims) => expectTotpUserWithTwoFactors(claims),
      ),
    SUITE_TIMEOUT,
  );

  it(
    'on a phone, in a fresh browser: password, then the code from the authenticator app; the security page says it is on',
    async () => {
      const secret = totpSecret;
      if (!secret) throw new Error('needs the TOTP enrolled by the previous test');
      await signInAndAllow(
        CONTEXT_FOR.phone,
        rp,
        'failure-totp-phone.png',
        async (page) => {
          await passwordToTwoStep(page, 'phone');
          const codeInput = page.getByLabel('Authentication code');
          expect(await codeInput.getAttribute('autocomplete')).toBe('one-time-code');
          expect(await codeInput.getAttribute('inputmode')).toBe('numeric');

          // A look at the recovery-code page, and back.
          await toRecoveryCodePage(page, 'phone');
          await expect(page.getByLabel('Recovery code').isVisible()).resolves.toBe(true);
          await page.getByRole('link', { name: 'Use your authenticator app instead' }).click();
          await page.getByRole('heading', { level: 1, name: 'Two-step verification' }).waitFor();

          // The next time step: the enrolment already used the current one (no replays, RFC 6238 §5.2);
          // one step ahead is inside the accepted window whenever the server checks it.
          await verifyToConsent(page, 'phone', 'Authentication code', await totpCode(secret, 1));
        },
        async (page, claims) => {
          expectTotpUserWithTwoFactors(claims);
          await expectSecurityPageOn(page, 'phone', 10);
          await expect(page.getByText(TOTP_USER.email).first().isVisible()).resolves.toBe(true);
          await expect(page.getByLabel('Current code from your app', { exact: true }).isVisible()).resolves.toBe(true);
          await expect(page.getByLabel('Password', { exact: true }).isVisible()).resolves.toBe(true);
          await expect(page.getByLabel('Or a current code from your app').isVisible()).resolves.toBe(true);
        },
      );
    },
    SUITE_TIMEOUT,
  );

  it(
    'at desktop size, in a fresh browser: password, then a recovery code instead of the app',
    async () => {
      const recoveryCode = recoveryCodes[0];
      if (!recoveryCode) throw new Error('needs the recovery codes shown by the enrolment test');
      await signInAndAllow(
        CONTEXT_FOR.desktop,
        rp,
        'failure-recovery-desktop.png',
        async (page) => {
          await passwordToTwoStep(page, 'desktop');
          await expect(page.getByLabel('Authentication code').isVisible()).resolves.toBe(true);
          await toRecoveryCodePage(page, 'desktop');

          await verifyToConsent(page, 'desktop', 'Recovery code', recoveryCode);
        },
        async (page, claims) => {
          expectTotpUserWithTwoFactors(claims);
          // One recovery code fewer.
          await expectSecurityPageOn(page, 'desktop', 9);
        },
      );
    },
    SUITE_TIMEOUT,
  );
});
