/**
 * The relying-party side of the OIDC tests: openid-client v6 configured against a test server,
 * authorization requests with PKCE, and a full sign-in ending in tokens.
 */
import { createHash, randomBytes } from 'node:crypto';

import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import type { TestServer } from './test-server.js';
import type { Reply, UserAgent } from './user-agent.js';
import { signInThroughPages } from './user-agent.js';

export const REDIRECT_URI = 'http://127.0.0.1:9/callback';

/** A PKCE S256 verifier and its challenge, for tests that build requests by hand. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/**
 * A code-flow authorization URL built by hand (no discovery): S256 PKCE, random state and
 * nonce, REDIRECT_URI, scope `openid email profile`; `params` add to or override these.
 */
export function authorizationUrlFor(
  baseUrl: string,
  clientId: string,
  params: { code_challenge: string } & Record<string, string>,
): string {
  const query = new URLSearchParams({
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: 'openid email profile',
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
    nonce: randomBytes(8).toString('hex'),
    ...params,
  });
  return `${baseUrl}/auth?${query.toString()}`;
}

export interface Credentials {
  email: string;
  password: string;
}

/** openid-client as `client`, configured by discovery at `issuer` (a test server's URL, a proxy in front of several). */
export async function rpAt(issuer: string, client: CreatedClient): Promise<oidc.Configuration> {
  const config = await oidc.discovery(
    new URL(issuer),
    client.clientId,
    client.clientSecret ? { client_secret: client.clientSecret } : { token_endpoint_auth_method: 'none' },
    client.clientSecret ? oidc.ClientSecretBasic(client.clientSecret) : oidc.None(),
    { execute: [oidc.allowInsecureRequests] },
  );
  // Validate ID token signatures against the JWKS too, not only iss/aud/nonce.
  oidc.enableNonRepudiationChecks(config);
  return config;
}

export function rpFor(server: TestServer, client: CreatedClient): Promise<oidc.Configuration> {
  return rpAt(server.url, client);
}

export interface Started {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

/** An authorization request with S256 PKCE, state and nonce; `extra` overrides or adds parameters. */
export async function authorizationRequest(rp: oidc.Configuration, extra: Record<string, string> = {}): Promise<Started> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}

/** The authorization endpoint with exactly these query parameters (for requests openid-client would not build). */
export function rawAuthorizationUrl(rp: oidc.Configuration, params: Record<string, string>): string {
  const endpoint = rp.serverMetadata().authorization_endpoint;
  if (!endpoint) throw new Error('no authorization_endpoint in discovery');
  const url = new URL(endpoint);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

/** Query parameters of a redirect to the client's redirect_uri. */
export function callbackParams(reply: Reply): URLSearchParams {
  if (!reply.location?.startsWith(REDIRECT_URI)) {
    throw new Error(`expected a redirect to ${REDIRECT_URI}, got ${reply.status} ${reply.location ?? '(no location)'}`);
  }
  return new URL(reply.location).searchParams;
}

export type Tokens = oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;

/** Starts an authorization request, signs in (and consents) through the pages, and redeems the code. */
export async function signInForTokens(
  rp: oidc.Configuration,
  agent: UserAgent,
  credentials: Credentials,
  extra: Record<string, string> = {},
): Promise<{ started: Started; callback: Reply; tokens: Tokens }> {
  const started = await authorizationRequest(rp, extra);
  const callback = await signInThroughPages(agent, started.url.toString(), credentials);
  const tokens = await redeem(rp, started, callback);
  return { started, callback, tokens };
}

export async function redeem(rp: oidc.Configuration, started: Started, callback: Reply): Promise<Tokens> {
  if (!callback.location) throw new Error(`sign-in did not end in a redirect: ${callback.status}`);
  return oidc.authorizationCodeGrant(rp, new URL(callback.location), {
    pkceCodeVerifier: started.verifier,
    expectedState: started.state,
    expectedNonce: started.nonce,
    idTokenExpected: true,
  });
}

/**
 * The OAuth error a token request failed with: in the body (ResponseBodyError), or for a refused
 * Basic authentication in the WWW-Authenticate challenge (RFC 6749 §5.2).
 */
export async function oauthError(request: Promise<unknown>): Promise<string> {
  try {
    await request;
  } catch (err) {
    if (err instanceof oidc.ResponseBodyError) return err.error;
    if (err instanceof oidc.WWWAuthenticateChallengeError) return String(err.cause[0]?.parameters.error);
    throw err;
  }
  throw new Error('the request succeeded');
}

/** Bearer call to the userinfo endpoint without openid-client, to see the status itself. */
export async function userinfoStatus(rp: oidc.Configuration, accessToken: string): Promise<{ status: number; wwwAuthenticate: string | null }> {
  const endpoint = rp.serverMetadata().userinfo_endpoint;
  if (!endpoint) throw new Error('no userinfo_endpoint in discovery');
  const res = await fetch(endpoint, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.text();
  return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate') };
}

/** The JWKS as published, with the key ids in order. */
export async function publishedKids(rp: oidc.Configuration): Promise<string[]> {
  const endpoint = rp.serverMetadata().jwks_uri;
  if (!endpoint) throw new Error('no jwks_uri in discovery');
  const res = await fetch(endpoint);
  const body = (await res.json()) as { keys: { kid?: string }[] };
  return body.keys.map((k) => k.kid ?? '(no kid)');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
