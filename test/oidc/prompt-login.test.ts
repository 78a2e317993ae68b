/**
 * A relying party that asks for a fresh sign-in (prompt=login, max_age=0) from a person who has
 * not yet consented to it: one password form, one consent page, then the code — never the
 * password form again after consent (which the provider's login check once caused, looping
 * forever with prompt=login consent).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { authorizationRequest, callbackParams, redeem, rpFor, signInForTokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import type { Reply } from '../support/user-agent.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';
import { REDIRECT_URI } from '../support/rp.js';

const USER = { email: 'grace@example.com', password: 'correct horse battery staple', name: 'Grace Hopper' };

const isLoginPage = (reply: Reply) => reply.status === 200 && /action="[^"]*\/login"/.test(reply.body);
const isConsentPage = (reply: Reply) => reply.status === 200 && /action="[^"]*\/confirm"/.test(reply.body);

describe('prompt=login and max_age=0 with a client that still needs consent', () => {
  let server: TestServer;
  let accountId: string;

  beforeAll(async () => {
    server = await startTestServer('prompt_login');
    accountId = (await server.deps.accounts.create({ ...USER, emailVerified: true })).id;
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server?.close();
  });

  const cases: [string, Record<string, string>][] = [
    ['prompt=login', { prompt: 'login' }],
    ['prompt=login consent', { prompt: 'login consent' }],
    ['max_age=0', { max_age: '0' }],
  ];

  for (const signedInBefore of [false, true]) {
    describe(signedInBefore ? 'in a browser already signed in (SSO) to another client' : 'in a fresh browser', () => {
      it.each(cases)('%s: exactly one password form, one consent page, then a code', async (_name, params) => {
        const browser = new UserAgent(server.url);
        if (signedInBefore) {
          const other = await server.deps.clients.create({ name: 'Other app', redirectUris: [REDIRECT_URI] });
          await signInForTokens(await rpFor(server, other), browser, USER);
        }
        // A client this person has never consented to.
        const client = await server.deps.clients.create({ name: 'First visit', redirectUris: [REDIRECT_URI] });
        const rp = await rpFor(server, client);
        const started = await authorizationRequest(rp, params);
        const seen: Reply[] = [];
        const reply = await signInThroughPages(browser, started.url.toString(), USER, { seen });

        const pages = seen.map((page) => (isLoginPage(page) ? 'password form' : isConsentPage(page) ? 'consent page' : `other (${page.status})`));
        expect(pages).toEqual(['password form', 'consent page']);
        expect(callbackParams(reply).get('code')).toBeTruthy();
        const tokens = await redeem(rp, started, reply);
        expect(tokens.claims()?.sub).toBe(accountId);
        // The sign-in just done is the one the ID token reports.
        expect(Math.abs((tokens.claims()?.auth_time ?? 0) - Date.now() / 1000)).toBeLessThan(60);
      });
    });
  }
});
