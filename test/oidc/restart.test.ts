/**
 * A restart (or another node) loses nothing: refresh tokens, signing keys and sessions live in
 * MongoDB, so a new server on the same database and issuer carries on where the old one stopped.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationRequest, callbackParams, publishedKids, rpFor, signInForTokens, userinfoStatus } from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

const USER = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };

describe('restarting the server on the same database', () => {
  const running: TestServer[] = [];

  afterAll(async () => {
    for (const server of running) await server.close();
  });

  it('keeps refresh tokens, signing keys and sessions working across a restart', async () => {
    const first = await startTestServer('restart');
    running.push(first);
    const accountId = (await first.deps.accounts.create({ ...USER, emailVerified: true })).id;
    const client: CreatedClient = await first.deps.clients.create({ name: 'Confidential RP', redirectUris: [REDIRECT_URI] });
    const firstRp = await rpFor(first, client);
    const browser = new UserAgent(first.url);
    const { tokens } = await signInForTokens(firstRp, browser, USER, { scope: 'openid email offline_access', prompt: 'consent' });
    expect(tokens.refresh_token).toBeTruthy();
    const kidsBefore = await publishedKids(firstRp);
    expect(kidsBefore.length).toBeGreaterThan(0);

    running.pop();
    await first.close();

    const second = await startTestServer('restart', { mongoUri: first.mongoUri, port: first.port });
    running.push(second);
    expect(second.url).toBe(first.url);
    const rp = await rpFor(second, client);
    expect(rp.serverMetadata().issuer).toBe(first.url);

    // The signing keys were loaded, not created anew.
    expect(await publishedKids(rp)).toEqual(kidsBefore);

    // An ID token issued before the restart verifies against the new server's JWKS.
    const jwks = createRemoteJWKSet(new URL(rp.serverMetadata().jwks_uri!));
    const verified = await jwtVerify(tokens.id_token!, jwks, { issuer: second.url, audience: client.clientId });
    expect(verified.payload.sub).toBe(accountId);
    expect(kidsBefore).toContain(verified.protectedHeader.kid);

    // The refresh token issued before the restart still works, and so do the tokens it yields.
    const refreshed: Tokens = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
    expect(refreshed.claims()?.sub).toBe(accountId);
    const userinfo = await oidc.fetchUserInfo(rp, refreshed.access_token, accountId);
    expect(userinfo).toMatchObject({ sub: accountId, email: 'ada@example.com' });
    // The access token from before the restart is still good too.
    expect((await userinfoStatus(rp, tokens.access_token)).status).toBe(200);

    // The browser's session survived: no login form, straight back with a code.
    const started = await authorizationRequest(rp, { scope: 'openid email' });
    const reply = await browser.follow(started.url.toString());
    expect(reply.body).not.toContain('name="password"');
    expect(reply.status).toBe(303);
    expect(callbackParams(reply).get('code')).toBeTruthy();
  });
});
