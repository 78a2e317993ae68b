/**
 * What drives a sign-in in the bench: a browser stand-in with a cookie jar (paths honoured),
 * following redirects one by one, reading forms from the pages it gets, and a relying party that
 * starts authorization requests with PKCE and redeems the code.
 *
 * NOTE: the server under test may publish an https issuer while it listens on plain http on
 * loopback, as it does behind a TLS-terminating proxy: URLs on the issuer's origin are sent to
 * the listening origin, and Secure cookies are kept and sent back (the proxy's hop is not
 * measured).
 */
import { createHash, randomBytes } from 'node:crypto';

import { CookieJar } from '../test/support/cookie-jar.js';

export interface Reply {
  status: number;
  location: string | undefined;
  body: string;
  url: string;
}

export interface Endpoints {
  /** Where the server listens (http://127.0.0.1:PORT). */
  origin: string;
  /** The issuer's origin, as URLs in pages and redirects name it. */
  publicOrigin: string;
  authorization: string;
  token: string;
  introspection: string;
  userinfo: string;
  jwks: string;
  discovery: string;
}

export interface BenchClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

export class BrowserAgent {
  private readonly jar = new CookieJar();
  /** HTTP requests sent (for per-request costs of a flow). */
  requests = 0;

  constructor(private readonly endpoints: Pick<Endpoints, 'origin' | 'publicOrigin'>) {}

  /** The URL to connect to for a URL the server published. */
  local(url: string): URL {
    const target = new URL(url, this.endpoints.publicOrigin);
    if (target.origin === this.endpoints.publicOrigin) return new URL(`${target.pathname}${target.search}`, this.endpoints.origin);
    return target;
  }

  async request(url: string, init: RequestInit = {}): Promise<Reply> {
    const target = this.local(url);
    const headers = new Headers(init.headers);
    const cookie = this.jar.header(target);
    if (cookie) headers.set('cookie', cookie);
    if (!headers.has('accept')) headers.set('accept', 'text/html');
    this.requests += 1;
    const res = await fetch(target, { ...init, headers, redirect: 'manual' });
    this.jar.store(target, res.headers);
    const location = res.headers.get('location') ?? undefined;
    return { status: res.status, location: location ? new URL(location, target).toString() : undefined, body: await res.text(), url: target.toString() };
  }

  post(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Reply> {
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form).toString(),
    });
  }

  /** Follows redirects on the server; stops at a page, or at a redirect that leaves it (the client's callback). */
  async follow(url: string): Promise<Reply> {
    let reply = await this.request(url);
    for (let hops = 0; hops < 10 && reply.status >= 300 && reply.status < 400 && reply.location; hops += 1) {
      if (this.local(reply.location).origin !== this.endpoints.origin) return reply;
      reply = await this.request(reply.location);
    }
    return reply;
  }

  /** Posts the form whose action (or a button's formaction) ends in `actionEnd`, with the page's CSRF token when it has one. */
  async submit(page: Reply, actionEnd: string, fields: Record<string, string> = {}): Promise<Reply> {
    const action = new RegExp(`action="([^"]*${actionEnd.replace(/[/]/g, '\\/')})"`).exec(page.body)?.[1];
    if (!action) throw new Error(`no form posting to *${actionEnd} on ${page.url} (status ${page.status}): ${page.body.slice(0, 300)}`);
    const csrf = /name="csrf" value="([^"]*)"/.exec(page.body)?.[1];
    const reply = await this.post(action.replace(/&amp;/g, '&'), { ...(csrf ? { csrf: csrf.replace(/&amp;/g, '&') } : {}), ...fields });
    if (reply.status !== 303 || !reply.location) throw new Error(`POST ${actionEnd} answered ${reply.status}: ${reply.body.slice(0, 300)}`);
    return this.follow(reply.location);
  }
}

export interface Started {
  url: string;
  verifier: string;
  state: string;
}

/** An authorization request with S256 PKCE (RFC 7636), state and nonce. */
export function authorizationRequest(endpoints: Endpoints, client: BenchClient, scope: string, extra: Record<string, string> = {}): Started {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('base64url');
  const url = new URL(endpoints.authorization);
  url.search = new URLSearchParams({
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    response_type: 'code',
    scope,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state,
    nonce: randomBytes(8).toString('base64url'),
    ...extra,
  }).toString();
  return { url: url.toString(), verifier, state };
}

export function basicAuth(client: BenchClient): string {
  // RFC 6749 §2.3.1: form-encoded id and secret (ours are URL-safe anyway).
  return `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64')}`;
}

export interface TokenResponse {
  access_token: string;
  id_token?: string;
  refresh_token?: string;
}

/** The callback's code, checked against the state, redeemed at the token endpoint with the PKCE verifier. */
export async function redeem(agent: BrowserAgent, endpoints: Endpoints, client: BenchClient, started: Started, callback: Reply): Promise<TokenResponse> {
  if (callback.status !== 303 && callback.status !== 302) throw new Error(`the sign-in ended with ${callback.status} at ${callback.url}: ${callback.body.slice(0, 300)}`);
  const params = new URL(callback.location ?? '').searchParams;
  const code = params.get('code');
  if (!code || params.get('state') !== started.state) throw new Error(`no code for this state in ${callback.location ?? '(no location)'}`);
  const reply = await agent.request(endpoints.token, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client), accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: started.verifier }).toString(),
  });
  if (reply.status !== 200) throw new Error(`token endpoint answered ${reply.status}: ${reply.body.slice(0, 300)}`);
  const tokens = JSON.parse(reply.body) as TokenResponse;
  if (!tokens.access_token || !tokens.id_token) throw new Error('the token response has no access_token or id_token');
  return tokens;
}

/** Discovery, read once: endpoints as published, to be sent to the listening origin. */
export async function discover(origin: string): Promise<Endpoints> {
  const discovery = `${origin}/.well-known/openid-configuration`;
  const res = await fetch(discovery);
  if (!res.ok) throw new Error(`discovery answered ${res.status}`);
  const doc = (await res.json()) as Record<string, string | undefined>;
  const need = (name: string): string => {
    const value = doc[name];
    if (!value) throw new Error(`discovery has no ${name}`);
    return value;
  };
  const publicOrigin = new URL(need('issuer')).origin;
  const local = (url: string) => {
    const u = new URL(url);
    return u.origin === publicOrigin ? `${origin}${u.pathname}${u.search}` : url;
  };
  return {
    origin,
    publicOrigin,
    discovery,
    authorization: local(need('authorization_endpoint')),
    token: local(need('token_endpoint')),
    introspection: local(need('introspection_endpoint')),
    userinfo: local(need('userinfo_endpoint')),
    jwks: local(need('jwks_uri')),
  };
}
