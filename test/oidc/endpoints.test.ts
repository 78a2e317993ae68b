import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, rpFor, signInForTokens } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, formField } from '../support/user-agent.js';

const USER = { email: 'grace@example.com', password: 'a long enough password' };
const POST_LOGOUT = 'http://127.0.0.1:9/signed-out';

describe('introspection, revocation, CORS and logout', () => {
  let server: TestServer;
  let owner: CreatedClient;
  let other: CreatedClient;
  let spa: CreatedClient;
  let ownerRp: oidc.Configuration;
  let otherRp: oidc.Configuration;
  let agent: UserAgent;
  let tokens: Tokens;

  beforeAll(async () => {
    server = await startTestServer('endpoints');
    await server.deps.accounts.create({ ...USER, name: 'Grace Hopper' });
    owner = await server.deps.clients.create({
      name: 'Owner app',
      redirectUris: [REDIRECT_URI],
      postLogoutRedirectUris: [POST_LOGOUT],
    });
    other = await server.deps.clients.create({ name: 'Other app', redirectUris: [REDIRECT_URI] });
    spa = await server.deps.clients.create({ name: 'SPA', public: true, redirectUris: ['https://spa.example.com/callback'] });
    ownerRp = await rpFor(server, owner);
    otherRp = await rpFor(server, other);
    agent = new UserAgent(server.url);
    ({ tokens } = await signInForTokens(ownerRp, agent, USER, { scope: 'openid offline_access', prompt: 'consent' }));
  });

  afterAll(async () => {
    await server.close();
  });

  it('introspection tells the token’s own client that it is active', async () => {
    const result = await oidc.tokenIntrospection(ownerRp, tokens.access_token);
    expect(result.active).toBe(true);
    expect(result.client_id).toBe(owner.clientId);
  });

  it('introspection tells another client nothing about a token it does not own', async () => {
    const result = await oidc.tokenIntrospection(otherRp, tokens.access_token);
    expect(result).toEqual({ active: false });
  });

  it('refuses introspection without client authentication', async () => {
    const introspection = await fetch(`${server.url}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token }).toString(),
    });
    expect(introspection.status).toBe(400);
    expect(await introspection.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('does not let another client revoke a token', async () => {
    await oidc.tokenRevocation(otherRp, tokens.refresh_token!, { token_type_hint: 'refresh_token' }).catch(() => undefined);
    // Still usable by its owner.
    const result = await oidc.tokenIntrospection(ownerRp, tokens.refresh_token!);
    expect(result.active).toBe(true);
  });

  it('answers CORS only for the origins of a client’s own redirect URIs', async () => {
    const preflight = (origin: string) =>
      fetch(`${server.url}/token`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST' },
      });
    const token = (origin: string) =>
      fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x', client_id: spa.clientId }).toString(),
      });

    expect((await preflight('https://spa.example.com')).status).toBeLessThan(300);
    const allowed = await token('https://spa.example.com');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://spa.example.com');

    const refused = await token('https://evil.example.com');
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('signs out through our own page and returns to the registered post-logout URI', async () => {
    const url = new URL(`${server.url}/session/end`);
    url.search = new URLSearchParams({
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: POST_LOGOUT,
      state: 'bye',
    }).toString();
    const page = await agent.get(url.toString());
    expect(page.status).toBe(200);
    expect(page.body).toContain('Sign out?');
    expect(page.body).toContain('Owner app');
    expect(page.body).not.toMatch(/<script|<style|style="/);
    // Chromium would block the form's redirect to the app without this (see security-headers.ts).
    expect(page.headers.get('content-security-policy')).toContain("form-action 'self' http://127.0.0.1:9");

    const action = /<form method="post" action="([^"]+)"/.exec(page.body)?.[1];
    expect(action).toBeDefined();
    const confirmed = await agent.post(new URL(action!.replace(/&amp;/g, '&'), server.url).toString(), {
      xsrf: formField(page.body, 'xsrf'),
      logout: 'yes',
    });
    expect(confirmed.status).toBe(303);
    expect(confirmed.location).toBe(`${POST_LOGOUT}?state=bye`);

    // The session is gone: the next authorization request asks for the password again.
    const again = await agent.follow(
      oidc
        .buildAuthorizationUrl(ownerRp, {
          redirect_uri: REDIRECT_URI,
          scope: 'openid',
          code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
          code_challenge_method: 'S256',
          state: 'x',
        })
        .toString(),
    );
    expect(again.status).toBe(200);
    expect(again.body).toContain('autocomplete="current-password"');
  });

  it('shows a signed-out page when no post-logout URI is given', async () => {
    const fresh = new UserAgent(server.url);
    await signInForTokens(ownerRp, fresh, USER);
    const page = await fresh.get(`${server.url}/session/end`);
    expect(page.status).toBe(200);
    const action = /<form method="post" action="([^"]+)"/.exec(page.body)?.[1];
    const confirmed = await fresh.post(new URL(action!.replace(/&amp;/g, '&'), server.url).toString(), {
      xsrf: formField(page.body, 'xsrf'),
      logout: 'yes',
    });
    const done = confirmed.location ? await fresh.get(confirmed.location) : confirmed;
    expect(done.status).toBe(200);
    expect(done.body).toContain('You are signed out');
  });
});
