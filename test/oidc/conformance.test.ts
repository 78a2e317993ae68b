/**
 * What the OpenID Foundation's Basic OP plan asks of us beyond the everyday flows: the
 * authorization endpoint by POST (OIDC Core §3.1.2.1), confidential clients an admin let leave
 * out PKCE, and `acr_values` taken in order of preference. openid-client is the relying party.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Koa from 'koa';
import * as oidc from 'openid-client';
import request from 'supertest';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { ClientValidationError } from '../../src/clients/client.service.js';
import { laxSessionCookieOverHttp } from '../../src/oidc/provider.js';
import type { Started } from '../support/rp.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, redeem, rpFor } from '../support/rp.js';
import { pageKind, submit } from '../support/second-factor.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formAction, formField, signInThroughPages } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const USER = { email: 'conformance@example.test', password: 'correct horse battery staple', name: 'Conformance Person' };
const CROSS_SITE = { 'sec-fetch-site': 'cross-site', origin: 'https://rp.example' };

/** An auto-submitted form on a relying party's page: a cross-site POST of the request parameters. */
function postForm(agent: UserAgent, url: string, params: Record<string, string>, headers: Record<string, string> = CROSS_SITE): Promise<Reply> {
  return agent.request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
}

describe('OpenID certification: what the Basic OP plan needs', () => {
  let server: TestServer;
  let confidential: CreatedClient;
  let skipsPkce: CreatedClient;

  beforeAll(async () => {
    server = await startTestServer('conformance', { logLevel: 'warn' });
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    confidential = await server.deps.clients.create({ name: 'Conformance RP', redirectUris: [REDIRECT_URI] });
    skipsPkce = await server.deps.clients.create({ name: 'Legacy RP', redirectUris: [REDIRECT_URI], skipPkce: true });
  });

  afterAll(async () => {
    await server.close();
  });

  describe('the authorization endpoint by POST', () => {
    it('completes a code flow started with a cross-site form POST to /auth', async () => {
      const rp = await rpFor(server, confidential);
      const started = await authorizationRequest(rp);
      const agent = new UserAgent(server.url);
      const endpoint = `${started.url.origin}${started.url.pathname}`;
      const posted = await postForm(agent, endpoint, Object.fromEntries(started.url.searchParams));
      expect(posted.status).toBe(303);
      expect(posted.location).toMatch(/\/interaction\/[A-Za-z0-9_-]+$/);
      const callback = await signInThroughPages(agent, posted.location!, USER);
      const tokens = await redeem(rp, started, callback);
      expect(tokens.claims()?.sub).toBeTruthy();
      expect(tokens.claims()?.nonce).toBe(started.nonce);
    });

    it('refuses a POST to /auth with a bad request the way a GET is refused (no 404, no 5xx)', async () => {
      const agent = new UserAgent(server.url);
      const reply = await postForm(agent, `${server.url}/auth`, { client_id: 'no-such-client', response_type: 'code', scope: 'openid' });
      expect(reply.status).toBe(400);
      expect(reply.body).toContain('invalid_client');
    });

    it('still refuses a cross-site POST to the interaction forms (403, nobody signed in)', async () => {
      const rp = await rpFor(server, confidential);
      const started = await authorizationRequest(rp);
      const agent = new UserAgent(server.url);
      const posted = await postForm(agent, started.url.origin + started.url.pathname, Object.fromEntries(started.url.searchParams));
      const login = await agent.follow(posted.location!);
      expect(pageKind(login)).toBe('login');
      const refused = await postForm(agent, formAction(login.body, '/login'), { csrf: formField(login.body, 'csrf'), email: USER.email, password: USER.password });
      expect(refused.status).toBe(403);
      expect(refused.body).toContain('request.cross_site');
      const again = await agent.get(login.url);
      expect(pageKind(again)).toBe('login');
    });

    it('sets the session cookie SameSite=Lax over plain http (a browser refuses None without Secure)', async () => {
      const rp = await rpFor(server, confidential);
      const started = await authorizationRequest(rp);
      const agent = new UserAgent(server.url);
      const login = await agent.follow(started.url.toString());
      const consent = await submit(agent, login, '/login', { email: USER.email, password: USER.password });
      const confirm = await agent.post(formAction(consent.body, '/confirm'), { csrf: formField(consent.body, 'csrf') });
      // The provider sets its session cookie where the sign-in resumes (/auth/:uid).
      const resumed = await agent.request(confirm.location!);
      const cookies = resumed.headers.getSetCookie().filter((c) => /^_session(\.sig)?=/.test(c));
      expect(cookies).toHaveLength(2);
      for (const cookie of cookies) expect(cookie.toLowerCase()).toMatch(/; samesite=lax;/);
    });

    it('keeps SameSite=None (with Secure) when the request is https, and leaves other cookies alone', async () => {
      const app = new Koa();
      app.proxy = true;
      app.use(laxSessionCookieOverHttp);
      app.use((ctx) => {
        ctx.cookies.set('_session', 'id', { sameSite: 'none', httpOnly: true });
        ctx.cookies.set('_interaction', 'uid', { sameSite: 'lax', httpOnly: true });
        ctx.body = 'ok';
      });
      const overHttps = await request(app.callback()).get('/').set('x-forwarded-proto', 'https');
      const secure = (overHttps.headers['set-cookie'] as unknown as string[]).join('\n');
      expect(secure).toMatch(/_session=id; path=\/; samesite=none; secure; httponly/);
      expect(secure).toMatch(/_interaction=uid; path=\/; samesite=lax; secure; httponly/);
      const overHttp = await request(app.callback()).get('/');
      const plain = (overHttp.headers['set-cookie'] as unknown as string[]).join('\n');
      expect(plain).toMatch(/_session=id; path=\/; samesite=lax; httponly/);
      expect(plain).not.toContain('samesite=none');
    });
  });

  describe('PKCE, and the confidential clients an admin let skip it', () => {
    /** An authorization request without code_challenge, as the stock suite and older RPs send it. */
    const withoutPkce = async (client: CreatedClient): Promise<{ rp: oidc.Configuration; started: Omit<Started, 'verifier'>; url: string }> => {
      const rp = await rpFor(server, client);
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT_URI, scope: 'openid', state, nonce });
      return { rp, started: { url, state, nonce }, url: url.toString() };
    };

    it('a confidential client with skipPkce completes a code flow without PKCE', async () => {
      const { rp, started, url } = await withoutPkce(skipsPkce);
      const callback = await signInThroughPages(new UserAgent(server.url), url, USER);
      const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback.location!), {
        expectedState: started.state,
        expectedNonce: started.nonce,
        idTokenExpected: true,
      });
      expect(tokens.access_token).toBeTruthy();
      expect(tokens.claims()?.aud).toBe(skipsPkce.clientId);
    });

    it('the same client still has its code bound to a code_challenge it sends: a wrong verifier is refused', async () => {
      const rp = await rpFor(server, skipsPkce);
      const started = await authorizationRequest(rp);
      const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER);
      await expect(redeem(rp, { ...started, verifier: oidc.randomPKCECodeVerifier() }, callback)).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('without the setting a request without PKCE is refused: invalid_request at the client, no sign-in page', async () => {
      const { url } = await withoutPkce(confidential);
      const reply = await new UserAgent(server.url).follow(url);
      const params = callbackParams(reply);
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/PKCE/);
    });

    it('a public client can never have it: the service refuses (400 client.invalid), nothing stored', async () => {
      const before = (await server.deps.clients.list({ limit: 200 })).total;
      const attempt = server.deps.clients.create({ name: 'Public, no PKCE', redirectUris: [REDIRECT_URI], public: true, skipPkce: true });
      await expect(attempt).rejects.toBeInstanceOf(ClientValidationError);
      await expect(attempt).rejects.toMatchObject({ status: 400, fields: { skipPkce: expect.stringContaining('always uses PKCE') } });
      expect((await server.deps.clients.list({ limit: 200 })).total).toBe(before);
    });

    it('the provider refuses skip_pkce on public client metadata too (dynamic registration, stored metadata)', async () => {
      const publicClient = await server.deps.clients.create({ name: 'Public RP', redirectUris: [REDIRECT_URI], public: true });
      // Metadata written past the service (an old import, say): the provider still asks for PKCE.
      const stored = await server.deps.clients.find(publicClient.clientId);
      await server.deps.clients.upsert(publicClient.clientId, { ...stored!, skip_pkce: true });
      const rp = await rpFor(server, publicClient);
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT_URI, scope: 'openid', state: oidc.randomState() });
      const reply = await new UserAgent(server.url).follow(url.toString());
      expect(reply.status).toBe(400);
      expect(reply.body).toContain('invalid_client_metadata');
    });
  });

  describe('acr_values in order of preference', () => {
    const { singleFactor, multiFactor } = { singleFactor: 'urn:oidc-server:acr:1fa', multiFactor: 'http://schemas.openid.net/pape/policies/2007/06/multi-factor' };

    it.each([
      ['the single-factor value first', () => `${singleFactor} ${multiFactor}`],
      ['the multi-factor value first, the single-factor one offered after it', () => `${multiFactor} ${singleFactor}`],
      ['an unknown value, then the single-factor one', () => `urn:example:gold ${singleFactor}`],
    ])('%s: no second factor, and the ID token names the value met', async (_label, acrValues) => {
      expect(server.config.acr).toMatchObject({ singleFactor, multiFactor });
      const rp = await rpFor(server, confidential);
      const started = await authorizationRequest(rp, { acr_values: acrValues() });
      const seen: Reply[] = [];
      const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER, { seen });
      expect(seen.map(pageKind)).toEqual(['login', 'consent']);
      const claims = (await redeem(rp, started, callback)).claims();
      expect(claims?.acr).toBe(singleFactor);
      expect(claims?.amr).toEqual(['pwd']);
    });

    it('only the multi-factor value: the second factor is asked for (set-up of an authenticator app)', async () => {
      const rp = await rpFor(server, confidential);
      const started = await authorizationRequest(rp, { acr_values: multiFactor });
      const agent = new UserAgent(server.url);
      const login = await agent.follow(started.url.toString());
      const next = await submit(agent, login, '/login', { email: USER.email, password: USER.password });
      expect(pageKind(next)).toBe('enrol');
    });
  });
});
