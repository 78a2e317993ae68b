/**
 * The scenarios: what each one sends, and (for sign-in flows) what one flow is. Request
 * scenarios are driven by autocannon; flows by workers that each act as a browser, a new one
 * (with an empty cookie jar) per flow, so every flow is a full sign-in with its consent.
 */
import type { BenchClient, BrowserAgent, Endpoints, TokenResponse } from './browser-agent.js';
import { authorizationRequest, basicAuth, redeem } from './browser-agent.js';

export const SCENARIO_NAMES = [
  'discovery',
  'jwks',
  'client_credentials',
  'introspection',
  'introspection_hint',
  'refresh',
  'userinfo',
  'password_flow',
  'email_code_flow',
] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export interface ScenarioContext {
  endpoints: Endpoints;
  client: BenchClient;
  /** Fresh tokens of a sign-in with offline_access, for the scenarios that use them. */
  tokens?: TokenResponse;
}

export interface HttpRequestSpec {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

export interface RequestScenario {
  name: ScenarioName;
  kind: 'request';
  description: string;
  needsTokens: boolean;
  request(context: ScenarioContext): HttpRequestSpec;
}

export interface FlowWorker {
  /** The account this worker signs in as (one per worker: per-address limits count per address). */
  email: string;
  password: string;
}

export interface FlowScenario {
  name: ScenarioName;
  kind: 'flow';
  description: string;
  /** Not offered by bare oidc-provider. */
  oursOnly: boolean;
  run(agent: BrowserAgent, context: ScenarioContext, worker: FlowWorker, mail: MailReader): Promise<void>;
}

export type Scenario = RequestScenario | FlowScenario;

/** Where a flow reads the code a person would get by mail. */
export interface MailReader {
  countFor(to: string): number;
  /** The one-time code of the first mail to `to` beyond the first `after`. */
  codeFor(to: string, after: number): Promise<string>;
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const tokensOf = (context: ScenarioContext): TokenResponse => {
  if (!context.tokens) throw new Error('this scenario needs tokens from a sign-in');
  return context.tokens;
};
const clientPost = (context: ScenarioContext, url: string, body: Record<string, string>): HttpRequestSpec => ({
  url,
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(context.client), accept: 'application/json' },
  body: form(body),
});

/** Sign-in with a password: authorize → login page → password POST → consent → code → token. */
export async function passwordSignIn(agent: BrowserAgent, context: ScenarioContext, worker: FlowWorker, extra: Record<string, string> = {}, scope = 'openid email profile'): Promise<TokenResponse> {
  const started = authorizationRequest(context.endpoints, context.client, scope, extra);
  const login = await agent.follow(started.url);
  const consent = await agent.submit(login, '/login', { email: worker.email, password: worker.password });
  const callback = await agent.submit(consent, '/confirm');
  return redeem(agent, context.endpoints, context.client, started, callback);
}

export const scenarios: readonly Scenario[] = [
  {
    name: 'discovery',
    kind: 'request',
    description: 'GET /.well-known/openid-configuration',
    needsTokens: false,
    request: (c) => ({ url: c.endpoints.discovery, method: 'GET', headers: {} }),
  },
  { name: 'jwks', kind: 'request', description: 'GET the JWKS', needsTokens: false, request: (c) => ({ url: c.endpoints.jwks, method: 'GET', headers: {} }) },
  {
    name: 'client_credentials',
    kind: 'request',
    description: 'POST /token grant_type=client_credentials (Basic client authentication)',
    needsTokens: false,
    request: (c) => clientPost(c, c.endpoints.token, { grant_type: 'client_credentials' }),
  },
  {
    name: 'introspection',
    kind: 'request',
    description: 'POST /token/introspection of an access token, no token_type_hint',
    needsTokens: true,
    request: (c) => clientPost(c, c.endpoints.introspection, { token: tokensOf(c).access_token }),
  },
  {
    name: 'introspection_hint',
    kind: 'request',
    description: 'POST /token/introspection of an access token, token_type_hint=access_token',
    needsTokens: true,
    request: (c) => clientPost(c, c.endpoints.introspection, { token: tokensOf(c).access_token, token_type_hint: 'access_token' }),
  },
  {
    name: 'refresh',
    kind: 'request',
    description: 'POST /token grant_type=refresh_token (a confidential client: the refresh token is not rotated)',
    needsTokens: true,
    request: (c) => {
      const refreshToken = tokensOf(c).refresh_token;
      if (!refreshToken) throw new Error('the sign-in gave no refresh token');
      return clientPost(c, c.endpoints.token, { grant_type: 'refresh_token', refresh_token: refreshToken });
    },
  },
  {
    name: 'userinfo',
    kind: 'request',
    description: 'GET /me with a bearer access token',
    needsTokens: true,
    request: (c) => ({ url: c.endpoints.userinfo, method: 'GET', headers: { authorization: `Bearer ${tokensOf(c).access_token}`, accept: 'application/json' } }),
  },
  {
    name: 'password_flow',
    kind: 'flow',
    description: 'a new browser signs in: authorize → login page → password → consent → code → token (PKCE)',
    oursOnly: false,
    run: async (agent, context, worker) => {
      await passwordSignIn(agent, context, worker);
    },
  },
  {
    name: 'email_code_flow',
    kind: 'flow',
    description: 'a new browser signs in with a code read from the mail (SMTP on loopback) → consent → code → token (PKCE)',
    oursOnly: true,
    run: async (agent, context, worker, mail) => {
      const started = authorizationRequest(context.endpoints, context.client, 'openid email profile');
      const login = await agent.follow(started.url);
      const before = mail.countFor(worker.email);
      const codePage = await agent.submit(login, '/email-code', { email: worker.email });
      const code = await mail.codeFor(worker.email, before);
      const consent = await agent.submit(codePage, '/email-code/verify', { code });
      const callback = await agent.submit(consent, '/confirm');
      await redeem(agent, context.endpoints, context.client, started, callback);
    },
  },
];
