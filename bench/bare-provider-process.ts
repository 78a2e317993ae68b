/**
 * The ceiling: bare oidc-provider 9 with its in-memory adapter, in a process of its own, with the
 * same protocol settings the scenarios touch (PKCE always, client_credentials, introspection,
 * refresh tokens for offline_access, confidential clients not rotating) and nothing of ours:
 * no database, no audit, no limits, no CSRF, no templates.
 *
 * Its sign-in is a minimal interaction handler of the bench's own (not devInteractions): a login
 * form whose password is compared as plain text with the account's (no argon2), then a consent
 * form that grants the requested scopes. The same pages and hops as ours (authorize, login page,
 * password POST, consent page, consent POST, callback), so a flow costs the same requests.
 *
 * Started by bench/run.ts with PORT set.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Koa from 'koa';
import mount from 'koa-mount';
import Provider from 'oidc-provider';
import type { ClientMetadata, Configuration } from 'oidc-provider';

import { startProbe } from './child-probe.js';
import type { SetupInput, SetupOutput } from './protocol.js';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) throw new Error('PORT is set by the bench');
const issuer = `http://127.0.0.1:${port}`;
const cookieKeys = [randomBytes(32).toString('base64url')];

/** email → { sub, password }, and sub → email, filled by setup. */
const accounts = new Map<string, { sub: string; password: string }>();
const emails = new Map<string, string>();
const clients: ClientMetadata[] = [];

// An RS256 key of its own (ours signs ID tokens with RS256 too), rather than the library's
// development keys.
const signingKey = { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' };

const HOUR = 60 * 60;
const DAY = 24 * HOUR;

const configuration: Configuration = {
  clients,
  jwks: { keys: [signingKey as NonNullable<Configuration['jwks']>['keys'][number]] },
  cookies: { keys: cookieKeys },
  // Our server's default lifetimes.
  ttl: {
    AccessToken: HOUR,
    AuthorizationCode: 60,
    ClientCredentials: HOUR,
    IdToken: HOUR,
    Interaction: HOUR,
    RefreshToken: 14 * DAY,
    Session: 14 * DAY,
    Grant: 365 * DAY,
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: emails.get(sub), email_verified: true };
      },
    };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // As ours: only the client a token was issued to may introspect it.
    introspection: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  pkce: { required: () => true },
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  rotateRefreshToken(ctx) {
    const client = ctx.oidc.entities.Client;
    return client?.clientAuthMethod === 'none';
  },
};

// NOTE: clients are read from `configuration.clients` when the provider is built, so the
// provider is built by setup, once the bench says what to register; until then every request is 503.
let provider: Provider | undefined;
let mounted: Koa.Middleware | undefined;

const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

async function formBody(req: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 10_000) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const app = new Koa();
app.keys = cookieKeys;
app.silent = true;
app.use(async function interactions(ctx, next) {
  if (!provider) {
    ctx.status = 503;
    return;
  }
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/confirm)?$/.exec(ctx.path);
  if (!match) return next();
  const uid = match[1] ?? '';
  const action = match[2];
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  if (ctx.method === 'GET' && !action) {
    ctx.type = 'html';
    ctx.body =
      details.prompt.name === 'login'
        ? page(
            'Sign in',
            `<form method="post" action="/interaction/${uid}/login"><input name="email" type="email"><input name="password" type="password"><button>Sign in</button></form>`,
          )
        : page('Allow', `<form method="post" action="/interaction/${uid}/confirm"><button>Allow</button></form>`);
    return;
  }
  if (ctx.method !== 'POST' || !action) return next();
  if (action === '/login') {
    const form = await formBody(ctx.req);
    const account = accounts.get(form.get('email') ?? '');
    if (!account || account.password !== form.get('password')) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = page('Sign in', 'wrong email or password');
      return;
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return;
  }
  // Consent: grant what the prompt says is missing (the library's example does the same).
  await formBody(ctx.req);
  const { prompt, params, session } = details;
  const grant = !session
    ? undefined
    : details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: String(params.client_id) });
  if (prompt.name !== 'consent' || !grant) {
    ctx.status = 400;
    ctx.body = 'not at consent';
    return;
  }
  const missing = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  ctx.status = 303;
  ctx.redirect(returnTo);
});
app.use(async function theProvider(ctx, next) {
  if (!mounted) return next();
  return mounted(ctx, next);
});

const server = http.createServer(app.callback());
const probe = startProbe({
  async setup(raw): Promise<SetupOutput> {
    const input = raw as SetupInput;
    if (provider) throw new Error('set up once');
    const clientId = `bench-${randomBytes(6).toString('hex')}`;
    const clientSecret = randomBytes(32).toString('base64url');
    clients.push({
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [input.redirectUri],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid offline_access email profile',
    });
    input.passwordAccounts.forEach((a, i) => {
      accounts.set(a.email, { sub: `pw${i}`, password: a.password });
      emails.set(`pw${i}`, a.email);
    });
    provider = new Provider(issuer, configuration);
    mounted = mount(provider);
    return { clientId, clientSecret };
  },
  async stop() {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  },
});
server.listen(port, '127.0.0.1', () => probe.ready(server, port));
