import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationRequest, redeem, rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent, signInThroughPages } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const USER = { email: 'Ada@Example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };

describe('authorization code flow with openid-client as the relying party', () => {
  let server: TestServer;
  let confidential: CreatedClient;
  let publicClient: CreatedClient;
  let accountId: string;

  beforeAll(async () => {
    server = await startTestServer('flow');
    const account = await server.deps.accounts.create({ ...USER, emailVerified: true });
    accountId = account.id;
    confidential = await server.deps.clients.create({ name: 'Confidential RP', redirectUris: [REDIRECT_URI] });
    publicClient = await server.deps.clients.create({ name: 'Public RP', redirectUris: [REDIRECT_URI], public: true });
  });

  afterAll(async () => {
    await server.close();
  });

  it('discovers, signs in, consents, exchanges the code with PKCE, reads userinfo, refreshes and revokes', async () => {
    const rp = await rpFor(server, confidential);
    const metadata = rp.serverMetadata();
    expect(metadata.issuer).toBe(server.url);
    expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
    expect(metadata.id_token_signing_alg_values_supported).toEqual(expect.arrayContaining(['RS256', 'ES256']));

    const started = await authorizationRequest(rp, { scope: 'openid email profile offline_access', prompt: 'consent' });
    const agent = new UserAgent(server.url);
    const seen: Reply[] = [];
    const callback = await signInThroughPages(agent, started.url.toString(), USER, { seen });
    expect(callback.status).toBe(303);
    expect(callback.location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
    // An admin registered this client: its consent page carries no "registered itself" warning.
    const consent = seen.find((page) => page.body.includes('/confirm"'));
    expect(consent?.body).toContain('wants to access your account');
    expect(consent?.body).not.toContain('unreviewed-app');

    const tokens = await redeem(rp, started, callback);
    const claims = tokens.claims()!;
    expect(claims.sub).toBe(accountId);
    expect(claims.iss).toBe(server.url);
    expect(claims.aud).toBe(confidential.clientId);
    expect(claims.nonce).toBe(started.nonce);
    // Scope claims travel through userinfo when an access token is issued (OIDC Core §5.4).
    expect(claims.email).toBeUndefined();
    expect(tokens.refresh_token).toBeTruthy();

    // Independently of openid-client: the signature verifies with the published JWKS.
    const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri!));
    const verified = await jwtVerify(tokens.id_token!, jwks, { issuer: server.url, audience: confidential.clientId });
    expect(verified.payload.sub).toBe(accountId);

    const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, accountId);
    expect(userinfo).toMatchObject({ sub: accountId, email: 'ada@example.com', email_verified: true, name: 'Ada Lovelace' });

    const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
    const currentRefresh = refreshed.refresh_token ?? tokens.refresh_token!;

    await oidc.tokenRevocation(rp, currentRefresh, { token_type_hint: 'refresh_token' });
    await expect(oidc.refreshTokenGrant(rp, currentRefresh)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('rotates refresh tokens for public clients and revokes the grant when a rotated token is reused', async () => {
    const rp = await rpFor(server, publicClient);
    const started = await authorizationRequest(rp, { scope: 'openid offline_access', prompt: 'consent' });
    const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER);
    const tokens = await redeem(rp, started, callback);
    const first = tokens.refresh_token!;
    const second = await oidc.refreshTokenGrant(rp, first);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first);

    // Reuse of the rotated token: refused, and the whole grant goes with it.
    await expect(oidc.refreshTokenGrant(rp, first)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(oidc.refreshTokenGrant(rp, second.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(oidc.fetchUserInfo(rp, second.access_token, accountId)).rejects.toBeDefined();
  });
});
