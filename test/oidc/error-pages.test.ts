/**
 * The pages a person meets when the provider refuses a browser request it cannot send back to the
 * app: plain words about what happened, a way out, and the OAuth details folded away for the
 * app's developer.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import { REDIRECT_URI, authorizationRequest, rawAuthorizationUrl, rpFor } from '../support/rp.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import { UserAgent } from '../support/user-agent.js';

/** Developer words that must not be the page's message to a person. */
const JARGON = /redirect_uri|client is invalid|client_id|invalid_request|PKCE/;

function mainMessage(body: string): string {
  return /<p class="error-message">([^<]*)<\/p>/.exec(body)?.[1] ?? '';
}

function wayBack(body: string): { href: string; label: string } | undefined {
  const match = /<p class="way-back"><a class="button button-primary" href="([^"]*)">([^<]*)<\/a><\/p>/.exec(body);
  return match ? { href: match[1]!, label: match[2]! } : undefined;
}

describe('error pages for people', () => {
  let server: TestServer;
  let withHome: CreatedClient;
  let withoutHome: CreatedClient;

  beforeAll(async () => {
    server = await startTestServer('error-pages');
    withHome = await server.deps.clients.create({ name: 'Acme Notes', redirectUris: [REDIRECT_URI] });
    withoutHome = await server.deps.clients.create({ name: 'Plain App', redirectUris: [REDIRECT_URI] });
    // A client registered with its home page (client_uri, OpenID Connect Dynamic Registration §2).
    const clients = server.deps.db.collection<{ _id: string; metadata: string }>('clients');
    const record = await clients.findOne({ _id: withHome.clientId });
    expect(record).not.toBeNull();
    const metadata = { ...(JSON.parse(record!.metadata) as Record<string, unknown>), client_uri: 'https://notes.example/' };
    await clients.updateOne({ _id: withHome.clientId }, { $set: { metadata: JSON.stringify(metadata) } });
  });

  afterAll(async () => {
    await server.close();
  });

  it('an unregistered redirect_uri: plain words, the app home as the way back, the details folded for developers', async () => {
    const rp = await rpFor(server, withHome);
    const started = await authorizationRequest(rp, { redirect_uri: 'http://127.0.0.1:9/elsewhere' });
    const reply = await new UserAgent(server.url).follow(started.url.toString());
    expect(reply.status).toBe(400);
    expect(reply.location).toBeUndefined();
    const message = mainMessage(reply.body);
    expect(message).toMatch(/not registered here, so for your safety you were not sent there/);
    expect(message).not.toMatch(JARGON);
    // The message never names the client (anyone can pair its client_id with a bad redirect_uri).
    expect(message).not.toContain('Acme');
    expect(wayBack(reply.body)).toEqual({ href: 'https://notes.example/', label: 'Go to Acme Notes' });
    expect(reply.body).toContain("<summary>Details for the app's developer</summary>");
    expect(reply.body).toMatch(/redirect_uri did not match/);
    expect(reply.body).toContain('<code>invalid_redirect_uri</code>');
  });

  it('a client without a registered home: "Sign in again" leads to a fresh sign-in', async () => {
    const rp = await rpFor(server, withoutHome);
    const started = await authorizationRequest(rp, { redirect_uri: 'http://127.0.0.1:9/elsewhere' });
    const reply = await new UserAgent(server.url).follow(started.url.toString());
    expect(reply.status).toBe(400);
    expect(wayBack(reply.body)).toEqual({ href: `${server.url}/account`, label: 'Sign in again' });
  });

  it('an unknown client: says the app is not known here, never names it, offers to sign in again', async () => {
    const rp = await rpFor(server, withoutHome);
    const reply = await new UserAgent(server.url).follow(
      rawAuthorizationUrl(rp, {
        client_id: 'no-such-client-0123456789',
        response_type: 'code',
        scope: 'openid',
        redirect_uri: REDIRECT_URI,
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
        state: oidc.randomState(),
      }),
    );
    expect(reply.status).toBe(400);
    const message = mainMessage(reply.body);
    expect(message).toMatch(/not known to this sign-in service/);
    expect(message).not.toMatch(JARGON);
    expect(wayBack(reply.body)?.label).toBe('Sign in again');
    expect(reply.body).toContain('<code>invalid_client</code>');
  });

  it('a javascript: client_uri is never offered as a link', async () => {
    const clients = server.deps.db.collection<{ _id: string; metadata: string }>('clients');
    const hostile = await server.deps.clients.create({ name: 'Hostile', redirectUris: [REDIRECT_URI] });
    const record = await clients.findOne({ _id: hostile.clientId });
    const metadata = { ...(JSON.parse(record!.metadata) as Record<string, unknown>), client_uri: 'javascript:alert(1)' };
    await clients.updateOne({ _id: hostile.clientId }, { $set: { metadata: JSON.stringify(metadata) } });
    const rp = await rpFor(server, hostile);
    const started = await authorizationRequest(rp, { redirect_uri: 'http://127.0.0.1:9/elsewhere' });
    const reply = await new UserAgent(server.url).follow(started.url.toString());
    expect(reply.status).toBe(400);
    expect(reply.body).not.toContain('javascript:');
    expect(wayBack(reply.body)?.label).toBe('Sign in again');
  });

  it('an expired or foreign sign-in (no interaction cookie): plain words, sign in again', async () => {
    const rp = await rpFor(server, withoutHome);
    const started = await authorizationRequest(rp);
    const agent = new UserAgent(server.url);
    const first = await agent.follow(started.url.toString());
    const uid = /\/interaction\/([^/"]+)/.exec(first.url ?? first.body)?.[1];
    expect(uid).toBeTruthy();
    // Another browser (no cookies) resumes that authorization.
    const reply = await new UserAgent(server.url).get(`/auth/${uid}`);
    expect(reply.status).toBe(400);
    expect(mainMessage(reply.body)).toMatch(/expired or was started in another browser/);
    expect(wayBack(reply.body)?.label).toBe('Sign in again');
  });
});
