/**
 * The admin console's Clients section in a real browser: Debian's headless Chromium driven by
 * playwright-core, against the real app (startTestServer) and a real SMTP server on loopback. The
 * admin's second factor is an authenticator app (the console accepts nothing weaker), whose codes
 * the test computes as the admin's phone would. An admin registers a client through the form; the
 * client then signs a person in as a relying party (openid-client, with a tiny HTTP server of our
 * own whose /callback receives the code); the admin changes its redirect URI, rotates its secret
 * and deletes it, and each change is checked from the relying party's side.
 *
 * The tests run in order and share the admin's browser and the client, as an admin's work would.
 * The browser plumbing is in ../support/browser.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';
import type { BrowserContext, Page, Response } from 'playwright-core';

import {
  CONTEXT_FOR,
  checkPage,
  endSuite,
  expectButtonPainted,
  expectComputedStyle,
  inNewContext,
  inNewPage,
  launchChromium,
  redeemCallback,
  screenshot,
  startCallbackServer,
} from '../support/browser.js';
import type { CallbackServer, Chromium, CleanOptions, Size } from '../support/browser.js';
import { enrolAuthenticator } from '../support/admin-console.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { createRunningTestClock, passTime } from '../support/clock.js';
import { authorizationRequest, oauthError } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import { freshTotp } from '../support/second-factor.js';
import type { Authenticator } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';

const SUITE_TIMEOUT = 90_000;
const STEP_TIMEOUT = 20_000;
// Long enough for a browser round trip and the token requests on a loaded machine; the rotation
// test uses the grace period for its other checks and then moves the services' clock past what is
// left (no sleeping, so it can be generous).
const GRACE_SECONDS = 45;

const PASSWORD = 'a long and correct passphrase';
const ADMIN = { email: 'margaret.admin@example.com', password: PASSWORD, name: 'Margaret Hamilton' };
const PERSON = { email: 'annie@example.com', password: PASSWORD, name: 'Annie Easley' };
/** An admin who has no authenticator app yet (the server offers codes by email as a second factor). */
const NEW_ADMIN = { email: 'dorothy.admin@example.com', password: PASSWORD, name: 'Dorothy Vaughan' };
const CLIENT_NAME = 'Console Registered App';

/**
 * The checks every console page gets (checkPage in browser.ts), with the console's signs of the
 * stylesheet applied: the header and panels are laid out, the primary button (if any) painted.
 */
async function checkConsolePage(page: Page, size: Size, heading: string | RegExp, shot: string | undefined): Promise<void> {
  await checkPage(page, {
    heading,
    shot,
    phone: size === 'phone',
    styles: async () => {
      await expectComputedStyle(page.locator('.panel').first(), { borderTopLeftRadius: '12px' });
      await expectComputedStyle(page.locator('.admin-main'), { maxWidth: '1152px' });
      const buttons = page.locator('.button-primary');
      if ((await buttons.count()) > 0) await expectButtonPainted(buttons.first());
    },
  });
}

/**
 * A page that shows an error of ours on purpose (`httpErrors`, e.g. `GET /auth 400`): Chromium reports the
 * status on the console itself, and nothing else may be said there.
 */
const expectedErrorPage = (...httpErrors: string[]): CleanOptions => ({ httpErrors, console: 'silent' });

/** A relying party for the client, authenticating with this secret in HTTP Basic. */
async function rpWithSecret(server: TestServer, clientId: string, secret: string): Promise<oidc.Configuration> {
  const config = await oidc.discovery(
    new URL(server.url),
    clientId,
    { client_secret: secret, token_endpoint_auth_method: 'client_secret_basic' },
    oidc.ClientSecretBasic(secret),
    { execute: [oidc.allowInsecureRequests] },
  );
  oidc.enableNonRepudiationChecks(config);
  return config;
}

/** The same relying party with another secret, without asking for discovery again. */
function withSecret(rp: oidc.Configuration, secret: string): oidc.Configuration {
  const config = new oidc.Configuration(
    rp.serverMetadata(),
    rp.clientMetadata().client_id,
    { client_secret: secret, token_endpoint_auth_method: 'client_secret_basic' },
    oidc.ClientSecretBasic(secret),
  );
  oidc.allowInsecureRequests(config);
  oidc.enableNonRepudiationChecks(config);
  return config;
}

/** A time as the console shows it: to the second, in UTC (formatTime in client.pages.ts). */
const consoleTime = (date: Date) => `${date.toISOString().replace('T', ' ').slice(0, 19)} UTC`;

describe('admin console: clients, in a real browser (headless Chromium)', () => {
  let server: TestServer | undefined;
  let relyingParty: CallbackServer | undefined;
  let smtp: MailServer | undefined;
  let chromium: Chromium | undefined;
  /** The admin's browser (desktop), signed in once; the phone screenshots borrow its cookies. */
  let adminContext: BrowserContext | undefined;
  /** The person's browser, signing in to the relying party. */
  let personContext: BrowserContext | undefined;
  let personId: string;
  /** The admin's authenticator app (its key, and the last step whose code the server took). */
  let adminApp: Authenticator | undefined;
  /** The services' clock: real time, moved past the rest of a grace period instead of sleeping. */
  const clock = createRunningTestClock();

  /** What the admin learnt in the console. */
  let clientId: string | undefined;
  let secret: string | undefined;
  let callbackUrl: string;
  let newCallbackUrl: string;

  const serverUrl = () => server!.url;

  /** A page of the admin's browser, watched; checked clean (`clean`: see expectCleanBrowser) and closed after `use`. */
  function asAdmin(use: (page: Page) => Promise<void>, clean: CleanOptions = {}): Promise<void> {
    return inNewPage(adminContext!, serverUrl(), use, clean);
  }

  /** The same console page at phone size, in a context with the admin's cookies. */
  async function phoneShot(pathname: string, heading: string | RegExp, shot: string): Promise<void> {
    await inNewContext(chromium!, { ...CONTEXT_FOR.phone, storageState: await adminContext!.storageState() }, serverUrl(), async (page) => {
      await page.goto(`${serverUrl()}${pathname}`);
      await checkConsolePage(page, 'phone', heading, shot);
    });
  }

  /**
   * The person signs in to the relying party in their browser (password, then consent unless
   * already given) and the code is redeemed; returns the tokens.
   */
  async function personSignsIn(redirectUri: string, shotPrefix?: string) {
    const rp = await rpWithSecret(server!, clientId!, secret!);
    const started: Started = await authorizationRequest(rp, { redirect_uri: redirectUri });
    const { tokens } = await inNewPage(
      personContext!,
      serverUrl(),
      async (page) => {
        const before = relyingParty!.received.length;
        const arrived = page.waitForURL((url) => url.href.startsWith(redirectUri), { timeout: STEP_TIMEOUT });
        await page.goto(started.url.toString());
        // A first visit: sign in, then the consent page. Later: the session and the grant carry it.
        const passedThrough = page.url().startsWith(redirectUri);
        if (!passedThrough) {
          const login = page.getByRole('heading', { level: 1, name: 'Sign in' });
          const consent = page.getByRole('button', { name: 'Allow' });
          await login.or(consent).first().waitFor();
          if (await login.isVisible()) {
            if (shotPrefix) await screenshot(page, `${shotPrefix}-login-desktop.png`);
            await page.getByLabel('Email').fill(PERSON.email);
            await page.getByLabel('Password').fill(PERSON.password);
            await page.getByRole('button', { name: 'Sign in' }).click();
          }
          const reached = page.waitForURL((url) => url.href.startsWith(redirectUri), { timeout: STEP_TIMEOUT }).then(() => true);
          const asked = consent.waitFor().then(() => false);
          if (!(await Promise.race([reached, asked]))) {
            await page.getByRole('heading', { level: 1, name: new RegExp(`^${CLIENT_NAME}\\s+wants to access your account$`) }).waitFor();
            if (shotPrefix) await screenshot(page, `${shotPrefix}-consent-desktop.png`);
            await consent.click();
          }
        }
        await arrived;
        await page.getByText('Back at the app.').waitFor();
        const tokens = await redeemCallback(rp, started, relyingParty!.expectOneCallbackSince(before));
        return { tokens, passedThrough };
      },
      // When the browser only passed through redirects, no page of ours was shown.
      ({ passedThrough }) => ({ pages: !passedThrough }),
    );
    return tokens;
  }

  /** The person's browser is sent to /auth with this redirect URI and gets an error page, not a redirect. */
  async function refusedAtAuth(redirectUri: string, secretForRp: string, shot: string): Promise<string> {
    const rp = await rpWithSecret(server!, clientId!, secretForRp);
    const started = await authorizationRequest(rp, { redirect_uri: redirectUri });
    return inNewPage(
      personContext!,
      serverUrl(),
      async (page) => {
        const before = relyingParty!.received.length;
        const response: Response | null = await page.goto(started.url.toString());
        expect(response?.status()).toBe(400);
        expect(new URL(page.url()).origin).toBe(serverUrl());
        await page.getByRole('heading', { level: 1, name: 'Something is wrong with this request' }).waitFor();
        await screenshot(page, shot);
        expect(relyingParty!.received).toHaveLength(before);
        return (await page.locator('.support-info code').first().innerText()).trim();
      },
      // The one console line is Chromium's report of the 400 itself; nothing else went wrong.
      expectedErrorPage('GET /auth 400'),
    );
  }

  beforeAll(async () => {
    chromium = await launchChromium({ stepTimeout: STEP_TIMEOUT });
    relyingParty = await startCallbackServer();
    callbackUrl = relyingParty.callbackUrl;
    newCallbackUrl = `${relyingParty.origin}/callback-new`;
    smtp = await startMailServer();
    server = await startTestServer('browser_admin_console', {
      clock,
      env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', CLIENT_SECRET_GRACE_PERIOD: String(GRACE_SECONDS) },
    });
    const admin = await server.deps.accounts.create({ ...ADMIN, roles: ['admin'], emailVerified: true });
    // Set up earlier on the account page, as every admin must.
    const enrolled = await enrolAuthenticator(server, admin);
    adminApp = { secret: enrolled.secret, lastStep: enrolled.lastStep };
    personId = (await server.deps.accounts.create({ ...PERSON, emailVerified: true })).id;
    await server.deps.accounts.create({ ...NEW_ADMIN, roles: ['admin'], emailVerified: true });
    adminContext = await chromium.newContext(CONTEXT_FOR.desktop);
    personContext = await chromium.newContext(CONTEXT_FOR.desktop);
  }, SUITE_TIMEOUT);

  afterAll(() => endSuite(server, [adminContext, personContext, chromium, relyingParty, server, smtp]), SUITE_TIMEOUT);

  it(
    'an admin signs in with a password and a code from the authenticator app and lands on the client list',
    async () => {
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin`);
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        await page.getByLabel('Email').fill(ADMIN.email);
        await page.getByLabel('Password').fill(ADMIN.password);
        await page.getByRole('button', { name: 'Sign in' }).click();

        // The console requires the authenticator app after the password (never a code by email).
        await page.getByRole('heading', { level: 1, name: 'Two-step verification' }).waitFor();
        const { code, step } = await freshTotp(adminApp!, clock);
        await page.getByLabel('Authentication code').fill(code);
        await page.getByRole('button', { name: 'Verify' }).click();
        adminApp!.lastStep = step;

        await page.waitForURL(`${serverUrl()}/admin/clients`);
        await checkConsolePage(page, 'desktop', 'Clients', undefined);
        await expect(page.getByRole('link', { name: 'Clients', exact: true }).getAttribute('aria-current')).resolves.toBe('page');
        await expect(page.getByText(ADMIN.email).isVisible()).resolves.toBe(true);
        // The built-in clients are listed.
        await expect(page.getByRole('cell', { name: 'admin-console' }).isVisible()).resolves.toBe(true);
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'creates a confidential client through the form and sees its secret once',
    async () => {
      await phoneShot('/admin/clients/new', 'New client', 'admin-clients-create-phone.png');

      // A mistake first: the form comes back (400) with what was typed and the message beside the field.
      // Chromium reports the 400 itself; nothing else may go wrong.
      await asAdmin(async (mistaken) => {
        await mistaken.goto(`${serverUrl()}/admin/clients/new`);
        await mistaken.getByLabel('Display name').fill(CLIENT_NAME);
        await mistaken.getByLabel('Redirect URIs', { exact: true }).fill('http://app.example.com/callback');
        await mistaken.getByRole('button', { name: 'Create client' }).click();
        await mistaken.locator('.error-summary').waitFor();
        await checkConsolePage(mistaken, 'desktop', 'New client', 'admin-clients-create-errors-desktop.png');
        const redirects = mistaken.getByLabel('Redirect URIs', { exact: true });
        await expect(redirects.getAttribute('aria-invalid')).resolves.toBe('true');
        await expect(redirects.inputValue()).resolves.toBe('http://app.example.com/callback');
        await expect(mistaken.locator('#f-redirectUris-error').innerText()).resolves.toContain('http://app.example.com/callback');
        await expect(mistaken.getByLabel('Display name').inputValue()).resolves.toBe(CLIENT_NAME);
        // The summary links to the field.
        await mistaken.locator('.error-summary a').first().click();
        expect(new URL(mistaken.url()).hash).toBe('#f-redirectUris');
      }, expectedErrorPage('POST /admin/clients 400'));
      expect((await server!.deps.clients.list({ search: CLIENT_NAME })).total).toBe(0);

      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients`);
        await page.getByRole('link', { name: 'New client' }).click();
        await checkConsolePage(page, 'desktop', 'New client', 'admin-clients-create-desktop.png');

        await page.getByLabel('Display name').fill(CLIENT_NAME);
        await page.getByLabel('Redirect URIs', { exact: true }).fill(callbackUrl);
        // Also client credentials, to ask the token endpoint about its secrets directly.
        await page.getByLabel(/^Client credentials/).check();
        await expect(page.getByLabel(/^Authorization code/).isChecked()).resolves.toBe(true);
        await expect(page.getByLabel('Token endpoint authentication').inputValue()).resolves.toBe('client_secret_basic');
        await page.getByRole('button', { name: 'Create client' }).click();

        await checkConsolePage(page, 'desktop', 'Client created', 'admin-clients-secret-desktop.png');
        const shownId = (await page.locator('#client-id').innerText()).trim();
        const shownSecret = (await page.locator('#client-secret').innerText()).trim();
        expect(shownSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(page.url()).toBe(`${serverUrl()}/admin/clients/${shownId}/secret`);
        clientId = shownId;
        secret = shownSecret;

        // Once: a reload asks the server again, which has nothing to show.
        await page.reload();
        await page.getByRole('heading', { level: 1, name: 'Client secret' }).waitFor();
        await expect(page.getByText('cannot be shown again').isVisible()).resolves.toBe(true);
        expect(await page.content()).not.toContain(shownSecret);
        // Back is the form (the POST was redirected); Forward asks the server again.
        await page.goBack();
        await page.getByRole('heading', { level: 1, name: 'New client' }).waitFor();
        expect(await page.content()).not.toContain(shownSecret);
        await page.goForward();
        await page.getByRole('heading', { level: 1, name: 'Client secret' }).waitFor();
        expect(await page.content()).not.toContain(shownSecret);

        await page.getByRole('link', { name: 'Go to the client' }).click();
        await checkConsolePage(page, 'desktop', CLIENT_NAME, 'admin-clients-detail-desktop.png');
        await expect(page.getByText('Set when the client was made (never rotated).').isVisible()).resolves.toBe(true);
        expect(await page.content()).not.toContain(shownSecret);

        // The list, with the new client among the built-in ones; no secret there either.
        await page.getByRole('link', { name: 'Clients', exact: true }).first().click();
        await checkConsolePage(page, 'desktop', 'Clients', 'admin-clients-list-desktop.png');
        const row = page.getByRole('row').filter({ hasText: CLIENT_NAME });
        await expect(row.getByRole('cell').nth(1).innerText()).resolves.toBe(shownId);
        await expect(row.getByRole('cell').nth(2).innerText()).resolves.toBe('confidential');
        expect(await page.content()).not.toContain(shownSecret);

        // The search box finds it by name.
        await page.getByLabel('Search by name or client id').fill('registered');
        await page.getByRole('button', { name: 'Search' }).click();
        await page.waitForURL(`${serverUrl()}/admin/clients?q=registered`);
        await expect(page.getByText('1 client matches').isVisible()).resolves.toBe(true);
      });
      await phoneShot('/admin/clients', 'Clients', 'admin-clients-list-phone.png');
      await phoneShot(`/admin/clients/${clientId}`, CLIENT_NAME, 'admin-clients-detail-phone.png');
      expect(await server!.deps.clients.get(clientId!)).toMatchObject({ name: CLIENT_NAME, redirectUris: [callbackUrl], public: false });
    },
    SUITE_TIMEOUT,
  );

  it(
    'the new client signs a person in: authorization code with PKCE, consent, callback, tokens',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the previous test');
      const tokens = await personSignsIn(callbackUrl, 'admin-created-client');
      expect(tokens.claims()?.sub).toBe(personId);
      expect(tokens.claims()?.aud).toBe(clientId);
      expect(tokens.access_token).toBeTruthy();
    },
    SUITE_TIMEOUT,
  );

  it(
    'after the admin edits the redirect URI, the old one gets an error page (no redirect) and the new one works',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the earlier tests');
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await page.getByRole('link', { name: 'Edit', exact: true }).click();
        await checkConsolePage(page, 'desktop', 'Edit client', 'admin-clients-edit-desktop.png');
        const redirects = page.getByLabel('Redirect URIs', { exact: true });
        await expect(redirects.inputValue()).resolves.toBe(callbackUrl);
        await redirects.fill(newCallbackUrl);
        await page.getByRole('button', { name: 'Save changes' }).click();
        await checkConsolePage(page, 'desktop', CLIENT_NAME, undefined);
        await expect(page.getByText('The changes were saved.').isVisible()).resolves.toBe(true);
        await expect(page.getByRole('listitem').filter({ hasText: newCallbackUrl }).isVisible()).resolves.toBe(true);
      });

      expect(await refusedAtAuth(callbackUrl, secret, 'admin-clients-old-redirect-refused-desktop.png')).toBe('invalid_redirect_uri');
      // The person's session and consent carry over: straight back to the new callback.
      const tokens = await personSignsIn(newCallbackUrl);
      expect(tokens.claims()?.sub).toBe(personId);
      expect(relyingParty!.received.at(-1)?.pathname).toBe('/callback-new');
    },
    SUITE_TIMEOUT,
  );

  it(
    'after a rotation both secrets work at the token endpoint during the grace period, then only the new one',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the earlier tests');
      // Discovery before the rotation: the grace period is for the token requests.
      const oldRp = await rpWithSecret(server!, clientId, secret);
      let rotated = '';
      /** Around the rotation: the grace period ends GRACE_SECONDS after a time between these. */
      let clickedAt = 0;
      let shownAt = 0;
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await page.getByRole('link', { name: 'Rotate secret' }).click();
        await checkConsolePage(page, 'desktop', 'Rotate the client secret?', 'admin-clients-rotate-desktop.png');
        await expect(page.locator('.grace-period').innerText()).resolves.toContain(`${GRACE_SECONDS} seconds`);
        clickedAt = clock.nowMs();
        await page.getByRole('button', { name: 'Rotate secret' }).click();
        await page.getByRole('heading', { level: 1, name: 'Secret rotated' }).waitFor();
        shownAt = clock.nowMs();
        rotated = (await page.locator('#client-secret').innerText()).trim();
        await expect(page.locator('.grace-period').innerText()).resolves.toMatch(
          new RegExp(`^The previous secret keeps working until .+ \\(a grace period of ${GRACE_SECONDS} seconds\\)`),
        );
      });
      expect(rotated).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(rotated).not.toBe(secret);
      // The exact end, as the service keeps it (it reports the previous secret only while it is valid).
      const graceEnds = (await server!.deps.clients.get(clientId))?.previousSecretExpiresAt ?? new Date(0);
      expect(graceEnds.getTime()).toBeGreaterThanOrEqual(clickedAt + GRACE_SECONDS * 1000);
      expect(graceEnds.getTime()).toBeLessThanOrEqual(shownAt + GRACE_SECONDS * 1000);
      const newRp = withSecret(oldRp, rotated);

      const withOld = await oidc.clientCredentialsGrant(oldRp);
      expect(withOld.access_token).toBeTruthy();
      const withNew = await oidc.clientCredentialsGrant(newRp);
      expect(withNew.access_token).toBeTruthy();
      // Still inside the grace period: the checks above were not too slow to mean anything.
      expect(clock.nowMs()).toBeLessThan(graceEnds.getTime());

      // While the grace period runs: the detail page says until when the previous secret works,
      // and the rotation page warns that rotating again would end it at once.
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await checkConsolePage(page, 'desktop', CLIENT_NAME, undefined);
        await expect(page.locator('.secret-status').innerText()).resolves.toMatch(
          new RegExp(`^Rotated at .+ UTC, previous secret valid until ${consoleTime(graceEnds)}\\.$`),
        );
        await page.getByRole('link', { name: 'Rotate secret' }).click();
        await checkConsolePage(page, 'desktop', 'Rotate the client secret?', undefined);
        await expect(page.getByRole('note').innerText()).resolves.toContain(
          `The secret before the current one still works until ${consoleTime(graceEnds)}.`,
        );
        expect(await page.content()).not.toContain(rotated);
      });

      // Only what is left of the grace period.
      await passTime(clock, Math.max(0, graceEnds.getTime() - clock.nowMs()) + 100);
      expect(await oauthError(oidc.clientCredentialsGrant(oldRp))).toBe('invalid_client');
      const afterGrace = await oidc.clientCredentialsGrant(newRp);
      expect(afterGrace.access_token).toBeTruthy();
      secret = rotated;

      // The detail page tells when it was rotated; the grace period is over.
      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await checkConsolePage(page, 'desktop', CLIENT_NAME, undefined);
        await expect(page.locator('.secret-status').innerText()).resolves.toMatch(/^Rotated at .+ UTC; the previous secret no longer works\.$/);
        expect(await page.content()).not.toContain(rotated);
      });
    },
    SUITE_TIMEOUT,
  );

  it(
    'once the admin deletes the client, it gets no tokens and /auth shows an error page',
    async () => {
      if (!clientId || !secret) throw new Error('needs the client created by the earlier tests');
      const rp = await rpWithSecret(server!, clientId, secret);
      expect((await oidc.clientCredentialsGrant(rp)).access_token).toBeTruthy();

      await asAdmin(async (page) => {
        await page.goto(`${serverUrl()}/admin/clients/${clientId}`);
        await page.getByRole('link', { name: 'Delete', exact: true }).click();
        await checkConsolePage(page, 'desktop', 'Delete this client?', 'admin-clients-delete-desktop.png');
        await page.getByRole('button', { name: 'Delete client' }).click();
        await page.waitForURL(`${serverUrl()}/admin/clients?notice=deleted`);
        await checkConsolePage(page, 'desktop', 'Clients', undefined);
        await expect(page.getByText('The client was deleted').isVisible()).resolves.toBe(true);
        await expect(page.getByRole('link', { name: CLIENT_NAME }).count()).resolves.toBe(0);
      });

      expect(await oauthError(oidc.clientCredentialsGrant(rp))).toBe('invalid_client');
      expect(await refusedAtAuth(newCallbackUrl, secret, 'admin-clients-deleted-client-refused-desktop.png')).toBe('invalid_client');
    },
    SUITE_TIMEOUT,
  );
  it(
    'an admin without an authenticator app is asked to set one up at the console sign-in, never for a code by email',
    async () => {
      expect(server!.config.mfa.emailFallback).toBe(true);
      const mailsBefore = smtp!.countFor(NEW_ADMIN.email);
      await inNewContext(chromium!, CONTEXT_FOR.desktop, serverUrl(), async (page) => {
        await page.goto(`${serverUrl()}/admin`);
        await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
        await page.getByLabel('Email').fill(NEW_ADMIN.email);
        await page.getByLabel('Password').fill(NEW_ADMIN.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        const next = page.getByRole('heading', { level: 1, name: /^(Set up two-step verification|Check your email|Two-step verification)$/ });
        await next.waitFor();
        await expect(next.innerText()).resolves.toBe('Set up two-step verification');
        await expect(page.getByRole('img', { name: /QR code for your authenticator app/ }).isVisible()).resolves.toBe(true);
      });
      expect(smtp!.countFor(NEW_ADMIN.email)).toBe(mailsBefore);
    },
    SUITE_TIMEOUT,
  );
});
