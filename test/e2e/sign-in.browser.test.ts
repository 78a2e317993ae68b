/**
 * Sign-in in a real browser: Debian's headless Chromium driven by playwright-core, against the
 * real app (startTestServer) and a real relying party (a tiny HTTP server of our own whose
 * /callback receives the code, which the test then exchanges with openid-client). The browser
 * plumbing is in ../support/browser.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import {
  CONTEXT_FOR,
  DESKTOP,
  PHONE,
  allowAndReachCallback,
  computedStyle,
  endSuite,
  expectButtonPainted,
  expectCentred,
  expectNoSidewaysOverflow,
  inNewContext,
  launchChromium,
  redeemCallback,
  screenshot,
  startAuthorization,
  startCallbackServer,
  submitAndReachCallback,
} from '../support/browser.js';
import type { CallbackServer, Chromium } from '../support/browser.js';
import { rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const SUITE_TIMEOUT = 60_000;
const STEP_TIMEOUT = 15_000;

const CLIENT_NAME = 'Browser Test App';
const USER = { email: 'grace@example.com', password: 'a long and correct passphrase', name: 'Grace Hopper' };
const SCOPE = 'openid email profile';
/** What the consent page says for each requested scope (src/interactions/scope-descriptions.ts). */
const SCOPE_TEXTS = ['Know who you are when you sign in', 'See your email address', 'See your name and basic profile'];

describe('sign-in in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: CallbackServer | undefined;
  let chromium: Chromium | undefined;
  let rp: oidc.Configuration;
  let client: CreatedClient;
  let accountId: string;

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    relyingParty = await startCallbackServer();
    // Dynamic registration on, for the self-registered app's consent page.
    server = await startTestServer('browser', { env: { DYNAMIC_REGISTRATION: 'true' } });
    const account = await server.deps.accounts.create({ ...USER, emailVerified: true });
    accountId = account.id;
    client = await server.deps.clients.create({ name: CLIENT_NAME, redirectUris: [relyingParty.callbackUrl] });
    rp = await rpFor(server, client);
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [chromium, relyingParty, server]), SUITE_TIMEOUT);

  it(
    'on a phone: login page, wrong password, consent, Allow, back at the app with a code that exchanges for tokens',
    async () => {
      await inNewContext(
        chromium!,
        CONTEXT_FOR.phone,
        server!.url,
        async (page, seen) => {
          const started = await startAuthorization(page, rp, relyingParty!, { scope: SCOPE });
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

          // The stylesheet applied: the primary button is painted, not the browser's default grey or transparent…
          await expectButtonPainted(signIn);
          // …and laid out: a full-width touch target (an unstyled button is only as wide as its text).
          const buttonBox = await signIn.boundingBox();
          expect(buttonBox!.width).toBeGreaterThan(PHONE.width * 0.8);
          expect(buttonBox!.height).toBeGreaterThanOrEqual(44);
          await expectNoSidewaysOverflow(page);
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
          const callback = await allowAndReachCallback(page, seen, relyingParty!, started, 'failure-after-allow.png');
          await expect(page.getByText('Back at the app.').isVisible()).resolves.toBe(true);

          expect(relyingParty!.received).toHaveLength(1);
          expect(callback.href).toBe(page.url());
          expect(callback.searchParams.get('code')).toBeTruthy();
          expect(callback.searchParams.get('iss')).toBe(server!.url); // RFC 9207

          const tokens = await redeemCallback(rp, started, callback);
          const claims = tokens.claims()!;
          expect(claims.sub).toBe(accountId);
          expect(claims.aud).toBe(client.clientId);
          expect(claims.nonce).toBe(started.nonce);
          expect(tokens.access_token).toBeTruthy();
          return interactionPath;
        },
        // The only HTTP error our server sent is the 401 page for the wrong password, shown by the
        // GET its POST redirected to (post/redirect/get).
        (interactionPath) => ({ httpErrors: [`GET ${interactionPath} 401`] }),
      );
    },
    SUITE_TIMEOUT,
  );

  it(
    'at desktop size: the login page renders with the stylesheet',
    () =>
      inNewContext(chromium!, CONTEXT_FOR.desktop, server!.url, async (page) => {
        await startAuthorization(page, rp, relyingParty!, { scope: SCOPE });
        await page.getByRole('button', { name: 'Sign in' }).waitFor();
        await expect(page.getByLabel('Email').isVisible()).resolves.toBe(true);
        await expect(page.getByLabel('Password').isVisible()).resolves.toBe(true);
        // The card is centred and narrower than the window: layout CSS applied.
        await expectCentred(page.locator('.card'), DESKTOP.width);
        await screenshot(page, 'login-desktop.png');
      }),
    SUITE_TIMEOUT,
  );

  it.each(['desktop', 'phone'] as const)(
    'on a %s: the card does not move between steps (login, a refused password, the code page), and Back to sign in keeps the email',
    (size) =>
      inNewContext(chromium!, CONTEXT_FOR[size], server!.url, async (page) => {
        await startAuthorization(page, rp, relyingParty!, { scope: SCOPE });
        await page.getByRole('button', { name: 'Sign in' }).waitFor();
        const place = async () => {
          const card = await page.locator('.card').boundingBox();
          const heading = await page.getByRole('heading', { level: 1 }).boundingBox();
          return { x: card!.x, y: card!.y, width: card!.width, headingY: heading!.y };
        };
        const login = await place();

        // A wrong password: the browser lands on the login page again by a GET (post/redirect/get).
        await page.getByLabel('Email').fill(USER.email);
        await page.getByLabel('Password').fill('not the password at all');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByText('Incorrect email or password.').waitFor();
        expect(new URL(page.url()).search).toBe('?error=wrong_password');
        expect(await place()).toEqual(login);
        await expect(page.getByLabel('Email').inputValue()).resolves.toBe(USER.email);

        await page.getByRole('button', { name: 'Email me a sign-in code' }).click();
        await page.getByRole('heading', { name: 'Check your email' }).waitFor();
        expect(await place()).toEqual(login);

        // Back to sign in: the login page, with the address typed before.
        await page.getByRole('button', { name: 'Back to sign in' }).click();
        await page.getByRole('button', { name: 'Sign in' }).waitFor();
        await expect(page.getByLabel('Email').inputValue()).resolves.toBe(USER.email);
        expect(await place()).toEqual(login);
        return new URL(page.url()).pathname;
      }, (interactionPath) => ({ httpErrors: [`GET ${interactionPath} 401`] })),
    SUITE_TIMEOUT,
  );

  it(
    'without JavaScript: sign-in reaches the consent page, and Allow returns to the app',
    () =>
      inNewContext(chromium!, { viewport: PHONE, javaScriptEnabled: false }, server!.url, async (page, seen) => {
        const started = await startAuthorization(page, rp, relyingParty!, { scope: SCOPE });
        await page.getByLabel('Email').fill(USER.email);
        await page.getByLabel('Password').fill(USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        await expect(page.getByRole('heading', { level: 1 }).innerText()).resolves.toContain(CLIENT_NAME);

        const callback = await allowAndReachCallback(page, seen, relyingParty!, started, 'failure-no-js-after-allow.png');
        const tokens = await redeemCallback(rp, started, callback);
        expect(tokens.claims()!.sub).toBe(accountId);
      }),
    SUITE_TIMEOUT,
  );

  it(
    'a self-registered app: the consent page on a phone warns that nobody reviewed it and names where Allow leads',
    async () => {
      const { token } = await server!.deps.registrationTokens.create({ uses: 1 });
      const registered = await fetch(`${server!.url}/reg`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'Totally Official Bank', redirect_uris: [relyingParty!.callbackUrl] }),
      });
      expect(registered.status).toBe(201);
      const { client_id: clientId, client_secret: clientSecret } = (await registered.json()) as { client_id: string; client_secret: string };
      const selfRp = await oidc.discovery(new URL(server!.url), clientId, { client_secret: clientSecret }, oidc.ClientSecretBasic(clientSecret), {
        execute: [oidc.allowInsecureRequests],
      });

      await inNewContext(chromium!, CONTEXT_FOR.phone, server!.url, async (page, seen) => {
        const started = await startAuthorization(page, selfRp, relyingParty!, { scope: SCOPE });
        await page.getByLabel('Email').fill(USER.email);
        await page.getByLabel('Password').fill(USER.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Allow' }).waitFor();
        const warning = page.getByRole('note');
        await expect(warning.isVisible()).resolves.toBe(true);
        const text = await warning.innerText();
        expect(text).toContain('This app registered itself.');
        expect(text).toContain(`Allowing sends you back to ${new URL(relyingParty!.callbackUrl).origin}.`);
        // Styled as a warning, not as plain text: the stylesheet's border applies.
        expect(await computedStyle(warning, ['borderLeftWidth'])).toEqual({ borderLeftWidth: '4px' });
        await expectNoSidewaysOverflow(page);
        await screenshot(page, 'consent-self-registered.png');

        const callback = await allowAndReachCallback(page, seen, relyingParty!, started, 'failure-self-registered-after-allow.png');
        expect((await redeemCallback(selfRp, started, callback)).claims()!.aud).toBe(clientId);
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'Cancel on the login page returns to the app with access_denied',
    () =>
      inNewContext(chromium!, { viewport: PHONE }, server!.url, async (page, seen) => {
        const started = await startAuthorization(page, rp, relyingParty!, { scope: SCOPE });
        const callback = await submitAndReachCallback(
          page,
          seen,
          relyingParty!,
          started,
          () => page.getByRole('button', { name: /Cancel/ }).click(),
          'failure-after-cancel.png',
        );
        expect(callback.searchParams.get('error')).toBe('access_denied');
        expect(callback.searchParams.get('code')).toBeNull();
        await expect(
          oidc.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: started.verifier, expectedState: started.state }),
        ).rejects.toMatchObject({ error: 'access_denied' });
      }),
    SUITE_TIMEOUT,
  );
});
