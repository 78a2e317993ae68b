/**
 * What an admin's change to a client does to a relying party, seen from the relying party
 * (openid-client): edits apply on the next request, a rotated secret keeps working for the grace
 * period and not after, a deleted client loses everything it was issued, and per-client token
 * lifetimes show in the token response.
 *
 * The tests in the lifecycle block run in order and share one client, as an admin's changes would.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { ClientInput, CreatedClient } from '../../src/clients/client.service.js';
import { createTestClock } from '../support/clock.js';
import { REDIRECT_URI, authorizationRequest, oauthError, redeem, rpFor, signInForTokens, userinfoStatus } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';

const USER = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };
const NEW_REDIRECT_URI = 'http://127.0.0.1:9/new-callback';
// The grace period runs on the services' clock, which the test moves past it (no sleeping).
const GRACE_SECONDS = 10;

const INPUT: ClientInput = {
  name: 'Managed RP',
  redirectUris: [REDIRECT_URI],
  grantTypes: ['authorization_code', 'refresh_token'],
  tokenEndpointAuthMethod: 'client_secret_basic',
  scopes: ['openid', 'email', 'profile', 'offline_access'],
};

/** A relying party for `clientId` that authenticates with this secret, the way `auth` says. */
async function rpWithSecret(server: TestServer, clientId: string, secret: string, auth: 'basic' | 'post' = 'basic'): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(server.url),
    clientId,
    { client_secret: secret, token_endpoint_auth_method: auth === 'basic' ? 'client_secret_basic' : 'client_secret_post' },
    auth === 'basic' ? oidc.ClientSecretBasic(secret) : oidc.ClientSecretPost(secret),
    { execute: [oidc.allowInsecureRequests] },
  );
}

/** The same relying party with another secret, without asking for discovery again. */
function withSecret(rp: oidc.Configuration, secret: string): oidc.Configuration {
  const { client_id: clientId, token_endpoint_auth_method: method } = rp.clientMetadata();
  const auth = method === 'client_secret_post' ? oidc.ClientSecretPost(secret) : oidc.ClientSecretBasic(secret);
  const config = new oidc.Configuration(rp.serverMetadata(), clientId, { client_secret: secret, token_endpoint_auth_method: method }, auth);
  oidc.allowInsecureRequests(config);
  return config;
}

describe('client administration, seen by the relying party', () => {
  let server: TestServer;
  // Starts at the real time: the provider's tokens and sessions keep the system clock.
  const clock = createTestClock(Date.now());

  beforeAll(async () => {
    server = await startTestServer('client_admin_flow', { env: { CLIENT_SECRET_GRACE_PERIOD: String(GRACE_SECONDS) }, clock });
    await server.deps.accounts.create({ ...USER, emailVerified: true });
  });

  afterAll(async () => {
    await server.close();
  });

  describe('lifecycle of one confidential client', () => {
    let client: CreatedClient;
    let secret: string;
    let tokens: Tokens;
    let refreshToken: string;
    const agent = () => new UserAgent(server.url);

    it('a client created by the service completes the authorization code flow with PKCE', async () => {
      client = await server.deps.clients.create(INPUT);
      secret = client.clientSecret ?? '';
      expect(secret).not.toBe('');
      const rp = await rpFor(server, client);
      ({ tokens } = await signInForTokens(rp, agent(), USER, { scope: 'openid email offline_access', prompt: 'consent' }));
      expect(tokens.claims()?.aud).toBe(client.clientId);
      expect(tokens.refresh_token).toBeTruthy();
      refreshToken = tokens.refresh_token ?? '';
    });

    it('after its redirect URIs change, the old one gets an error page (no redirect) and the new one works', async () => {
      await server.deps.clients.update(client.clientId, { ...INPUT, redirectUris: [NEW_REDIRECT_URI] });
      const rp = await rpFor(server, client);

      const old = await authorizationRequest(rp);
      const refused = await agent().get(old.url.toString());
      expect(refused.status).toBe(400);
      expect(refused.location).toBeUndefined();
      expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
      expect(refused.body).toContain('<code>invalid_redirect_uri</code>');

      const started = await authorizationRequest(rp, { redirect_uri: NEW_REDIRECT_URI });
      const callback = await signInThroughPages(agent(), started.url.toString(), USER);
      expect(callback.status).toBe(303);
      expect(callback.location?.startsWith(`${NEW_REDIRECT_URI}?code=`)).toBe(true);
      const fresh = await redeem(rp, started, callback);
      expect(fresh.access_token).toBeTruthy();
    });

    it('after a rotation both secrets work at the token endpoint during the grace period, then only the new one', async () => {
      // Discovery before the rotation: the grace period is for the token requests.
      const oldRp = await rpWithSecret(server, client.clientId, secret);
      const rotated = await server.deps.clients.rotateSecret(client.clientId);
      const newRp = withSecret(oldRp, rotated.clientSecret);

      const withOld = await oidc.refreshTokenGrant(oldRp, refreshToken);
      expect(withOld.access_token).toBeTruthy();
      refreshToken = withOld.refresh_token ?? refreshToken;
      const withNew = await oidc.refreshTokenGrant(newRp, refreshToken);
      expect(withNew.access_token).toBeTruthy();
      refreshToken = withNew.refresh_token ?? refreshToken;
      // Still inside the grace period (the services' clock has not moved since the rotation).
      expect(clock.nowMs()).toBeLessThan(rotated.previousSecretExpiresAt.getTime());

      // Past the end of the grace period (its end is exact: rotateSecret's own clock).
      clock.set(rotated.previousSecretExpiresAt.getTime() + 100);
      expect(await oauthError(oidc.refreshTokenGrant(oldRp, refreshToken))).toBe('invalid_client');
      const afterGrace = await oidc.refreshTokenGrant(newRp, refreshToken);
      expect(afterGrace.access_token).toBeTruthy();
      refreshToken = afterGrace.refresh_token ?? refreshToken;
      secret = rotated.clientSecret;
    });

    it('switched to client_secret_post, the secret works in the request body', async () => {
      const updated = await server.deps.clients.update(client.clientId, {
        ...INPUT,
        redirectUris: [NEW_REDIRECT_URI],
        tokenEndpointAuthMethod: 'client_secret_post',
      });
      expect(updated.clientSecret).toBeUndefined();
      const postRp = await rpWithSecret(server, client.clientId, secret, 'post');
      const refreshed = await oidc.refreshTokenGrant(postRp, refreshToken);
      expect(refreshed.access_token).toBeTruthy();
      refreshToken = refreshed.refresh_token ?? refreshToken;
      tokens = refreshed as Tokens;
      expect((await server.deps.clients.find(client.clientId))?.token_endpoint_auth_method).toBe('client_secret_post');

      // NOTE: oidc-provider takes a secret in Basic auth or in the body for either method
      // (lib/shared/client_auth.js); what matters is the secret.
      const wrongRp = await rpWithSecret(server, client.clientId, `${secret}x`, 'post');
      expect(await oauthError(oidc.refreshTokenGrant(wrongRp, refreshToken))).toBe('invalid_client');
    });

    it('once deleted, the client gets no tokens and its refresh token is dead, even for a client re-created under its id', async () => {
      const postRp = await rpWithSecret(server, client.clientId, secret, 'post');
      expect(await server.deps.clients.remove(client.clientId)).toBe(true);

      expect(await oauthError(oidc.refreshTokenGrant(postRp, refreshToken))).toBe('invalid_client');
      expect((await userinfoStatus(postRp, tokens.access_token)).status).toBe(401);
      for (const model of ['oidc_refresh_token', 'oidc_access_token', 'oidc_authorization_code', 'oidc_grant']) {
        expect(await server.deps.db.collection(model).countDocuments({ clientId: client.clientId })).toBe(0);
      }

      // The same client_id again (the seed's way in): the old refresh token is gone, not merely orphaned.
      const again = await server.deps.clients.create({ clientId: client.clientId, name: 'Re-created', redirectUris: [REDIRECT_URI], public: false });
      const againRp = await rpWithSecret(server, client.clientId, again.clientSecret ?? '');
      expect(await oauthError(oidc.refreshTokenGrant(againRp, refreshToken))).toBe('invalid_grant');
    });
  });

  it('per-client token lifetimes show in the token response and the tokens', async () => {
    const client = await server.deps.clients.create({ ...INPUT, name: 'Short-lived RP', accessTokenTtl: 123, idTokenTtl: 456, refreshTokenTtl: 789 });
    const rp = await rpFor(server, client);
    const { tokens } = await signInForTokens(rp, new UserAgent(server.url), USER, { scope: 'openid offline_access', prompt: 'consent' });
    expect(tokens.expires_in).toBe(123);
    const claims = tokens.claims();
    expect((claims?.exp ?? 0) - (claims?.iat ?? 0)).toBe(456);

    const introspected = await oidc.tokenIntrospection(rp, tokens.refresh_token ?? '', { token_type_hint: 'refresh_token' });
    expect(introspected.active).toBe(true);
    expect((introspected.exp ?? 0) - (introspected.iat ?? 0)).toBe(789);

    // Another client on the same server keeps the defaults.
    const plain = await server.deps.clients.create({ ...INPUT, name: 'Default RP' });
    const plainRp = await rpFor(server, plain);
    const { tokens: plainTokens } = await signInForTokens(plainRp, new UserAgent(server.url), USER);
    expect(plainTokens.expires_in).toBe(server.config.ttl.accessToken);
  });
});
