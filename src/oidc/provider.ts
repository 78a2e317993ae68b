import { randomBytes } from 'node:crypto';

import type { Context, Next } from 'koa';
import Provider, { errors } from 'oidc-provider';
import type { Configuration, KoaContextWithOIDC, UnknownObject } from 'oidc-provider';

import { defaults } from '../../config/defaults.js';
import type { AccountService } from '../accounts/account.service.js';
import { accountReadKey } from '../accounts/account.service.js';
import type { RegistrationPolicies } from '../clients/registration-token.service.js';
import type { Config } from '../config/config.js';
import { newClientId } from '../crypto/identifiers.js';
import { rememberRead } from '../http/request-context.js';
import type { Logger } from '../logging/logger.js';
import type { PrivateJwk } from './keys.js';
import type { ClientStore } from './mongo-adapter.js';
import { createMongoAdapter } from './mongo-adapter.js';
import { explainProviderError } from './error-explanations.js';
import { ACCOUNT_VIEW, clientFlag, createInteractionPolicy } from './policy.js';
import { createSessionTtl } from './session-ttl.js';
import { createIntrospectionPolicy, createResourceIndicators, grantRequestedScopes } from './resource-servers.js';
import type { ResourceLookup } from './resource-servers.js';
import { claimsByScope, optionalProfileScopes } from '../accounts/profile-claims.js';
import type { mongo } from 'mongoose';
import type { PageRenderer } from '../http/render-page.js';

export interface ProviderDeps {
  config: Config;
  db: mongo.Db;
  clientStore: ClientStore;
  accounts: AccountService;
  signingKeys: PrivateJwk[];
  logger: Logger;
  pages: PageRenderer;
  /** features.registration.policies: what every initial access token names (registration-token.service.ts). */
  registrationPolicies: RegistrationPolicies;
  /** The API resources (src/resources) tokens are issued for, read from the node's cache. */
  resources: ResourceLookup;
}

/**
 * Refresh token lifetime: an idle period that restarts with every rotation, never past an
 * absolute cap counted from the original sign-in (`iiat` travels along the rotated chain).
 */
export function refreshTokenTtl(
  ttl: Config['ttl'],
  token: { iiat?: number | undefined; iat?: number | undefined },
  nowSeconds = Math.floor(Date.now() / 1000),
): number {
  const chainStart = token.iiat ?? token.iat ?? nowSeconds;
  const remainingToCap = chainStart + ttl.refreshTokenAbsolute - nowSeconds;
  return Math.max(1, Math.min(ttl.refreshTokenIdle, remainingToCap));
}

/** Per-client lifetime overrides (extraClientMetadata), in seconds. */
export const CLIENT_TTL_METADATA = ['access_token_ttl', 'id_token_ttl', 'refresh_token_ttl'] as const;

/**
 * A client's own lifetime, if it has one. NOTE: extra metadata stays snake_case on the Client
 * instance (see clientFlag in policy.ts).
 */
export function clientTtl(client: unknown, key: (typeof CLIENT_TTL_METADATA)[number]): number | undefined {
  if (typeof client !== 'object' || client === null) return undefined;
  const value = (client as Record<string, unknown>)[key];
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

/**
 * Browsers refuse a `SameSite=None` cookie that is not `Secure`, and a cookie cannot be Secure on
 * plain http (development, tests): there the session cookie falls back to Lax, which only means a
 * cross-site POST to the authorization endpoint does not see an existing session.
 */
export async function laxSessionCookieOverHttp(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.secure) return;
  const cookies = ctx.response.get('set-cookie') as string | string[];
  if (!Array.isArray(cookies) || !cookies.some((c) => c.includes('samesite=none'))) return;
  ctx.response.set('set-cookie', cookies.map((c) => c.replace('samesite=none', 'samesite=lax')));
}

export function createProvider(deps: ProviderDeps): Provider {
  const { config, accounts, logger, pages } = deps;
  const { ttl } = config;

  const policy = createInteractionPolicy({ mfa: config.mfa, acr: config.acr }, config.signUp);
  // The management API's scopes are known scopes too: a client's `scope` metadata may list them
  // (the provider refuses unknown ones), and only tokens for its resource carry them.
  // `phone` and `address` only where accounts store them (PROFILE_PHONE, PROFILE_ADDRESS).
  // An API resource's scopes are not listed: the provider takes any other scope as a resource's,
  // granted only for a resource that defines it (resource-servers.ts).
  const scopes = [...defaults.scopes, ...optionalProfileScopes(config.profileScopes), ...config.adminApi.scopes];
  const resourceIndicators = createResourceIndicators({ config, resources: deps.resources, staticScopes: new Set(scopes) });
  const configuration: Configuration = {
    adapter: createMongoAdapter({ db: deps.db, clientStore: deps.clientStore, logger }),
    // Clients come from MongoDB through the adapter; none are compiled in.
    clients: [],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    responseTypes: ['code'],
    scopes,
    claims: {
      ...Object.fromEntries(Object.entries(defaults.claims).map(([k, v]) => [k, v === null ? null : [...v]])),
      // The standard claims (OIDC Core §5.1) each scope releases; each is also requestable alone
      // with the `claims` parameter.
      ...claimsByScope(config.profileScopes),
    } as Configuration['claims'],
    jwks: { keys: deps.signingKeys as unknown as NonNullable<Configuration['jwks']>['keys'] },
    cookies: {
      keys: config.cookieKeys,
      // Secure is added by the provider whenever the request is https (ctx.secure), which
      // behind a proxy requires TRUST_PROXY=true (app.proxy).
      // The long-lived cookie (the provider's session) is SameSite=None: OpenID Connect Core
      // §3.1.2.1 has the OP accept authorization requests by POST, and a relying party's
      // auto-submitted form is a cross-site POST, on which a Lax cookie is not sent (every such
      // request would then look signed out). The interaction cookies stay Lax, and our own pages
      // keep their CSRF tokens and Fetch-Metadata checks (src/http/fetch-metadata.ts).
      long: { signed: true, httpOnly: true, sameSite: 'none' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    async findAccount(_ctx, sub) {
      // The provider may ask more than once per request (authorization, policy checks, claims): one read.
      // (Or a view this flow's interaction or code carried, mongo-adapter.ts: then no read at all.)
      const account = await rememberRead(accountReadKey(sub), () => accounts.findById(sub));
      // A disabled (or deleted) account has no claims: its sessions and tokens stop working.
      if (!account || account.disabled) return undefined;
      return {
        accountId: account.id,
        // Read by the interaction policy's mfa checks (policy.ts), so they need no second lookup.
        [ACCOUNT_VIEW]: account,
        async claims(_use, scope, requested) {
          // OIDC Core §5.5: claims named in the `claims` parameter, beside those of the scopes.
          const named = Object.keys(requested ?? {});
          return accounts.claims(account, new Set(scope.split(' ')), named) as UnknownObject & { sub: string };
        },
      };
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      // login → mfa (second factor, step-up) → consent: src/oidc/policy.ts.
      policy,
    },
    // A sealed invitation token (src/invitations/invitation-link.routes.ts), kept in the interaction's params.
    extraParams: ['invitation'],
    // Published in discovery (acr_values_supported); the ID token's acr is one of these.
    acrValues: [config.acr.singleFactor, config.acr.emailSecondFactor, config.acr.multiFactor],
    extraClientMetadata: {
      // Our own client metadata: every sign-in to this client needs a second factor.
      // first_party: our own apps (the account console); their sign-ins skip the consent page.
      // dynamically_registered: set by the 'mark-dynamic' registration policy (registration-token.service.ts).
      // access_token_ttl, id_token_ttl, refresh_token_ttl: per-client lifetimes in seconds that an
      // admin sets (src/clients/client-input.ts), read by the ttl functions below.
      // skip_pkce: an admin let this confidential client make authorization requests without PKCE.
      // allowed_resources, default_resource: the API resources (src/resources) it may get access
      // tokens for, and the one a request without `resource` is for.
      properties: ['require_mfa', 'first_party', 'dynamically_registered', 'skip_pkce', 'allowed_resources', 'default_resource', ...CLIENT_TTL_METADATA],
      validator(_ctx, key, value, metadata) {
        if ((key === 'require_mfa' || key === 'first_party' || key === 'dynamically_registered' || key === 'skip_pkce') && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata(`${key} must be a boolean`);
        }
        // RFC 9700 §2.1.1: a public client has no secret; PKCE is all that binds its code to it.
        if (key === 'skip_pkce' && value === true && metadata.token_endpoint_auth_method === 'none') {
          throw new errors.InvalidClientMetadata('skip_pkce is not allowed for a public client');
        }
        if (key === 'allowed_resources' && value !== undefined && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
          throw new errors.InvalidClientMetadata('allowed_resources must be an array of strings');
        }
        if (key === 'default_resource' && value !== undefined) {
          const allowed = Array.isArray(metadata.allowed_resources) ? (metadata.allowed_resources as unknown[]) : [];
          if (typeof value !== 'string' || !allowed.includes(value)) throw new errors.InvalidClientMetadata('default_resource must be one of allowed_resources');
        }
        // (A registrant cannot set these: the registration policies drop them, registration-token.service.ts.)
        const ttlKey = (CLIENT_TTL_METADATA as readonly string[]).includes(key);
        if (ttlKey && value !== undefined && !(typeof value === 'number' && Number.isSafeInteger(value) && value > 0)) {
          throw new errors.InvalidClientMetadata(`${key} must be a positive integer (seconds)`);
        }
      },
    },
    async loadExistingGrant(ctx) {
      const { client, session } = ctx.oidc;
      if (!client || !session?.accountId) return undefined;
      const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId);
      const found = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      // First-party clients are part of this service: no consent page. Their grant holds the
      // OIDC scopes asked for and the requested scopes each named API resource defines; a grant
      // of theirs that was revoked (a replayed code revokes its grant) is made again. Saved only
      // when something was added (a repeat sign-in writes nothing here).
      if (!clientFlag(client, 'first_party')) return found;
      const grant = found ?? new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      if (grantRequestedScopes(grant, ctx) || !found) await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: false },
      // OpenID Connect Core §5.5: an app that wants a claim in the ID token (say, email_verified)
      // asks for it there; scope claims otherwise come from userinfo (§5.4).
      claimsParameter: { enabled: true },
      userinfo: { enabled: true },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: a client may revoke only its own tokens.
        async allowedPolicy(_ctx, client, token) {
          return token.clientId === client.clientId;
        },
      },
      introspection: {
        enabled: true,
        // The library's default lets any confidential client introspect any token. Only the
        // client a token was issued to, and the clients an API resource names for its own
        // tokens (resource-servers.ts). NOTE: JWT access tokens are not stored, and the library
        // answers unsupported_token_type for them: the API verifies them against the JWKS.
        allowedPolicy: createIntrospectionPolicy(deps.resources),
      },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          // The provider hands over a ready-made <form>; take its two values and let our
          // escaped template draw the page (no raw HTML in views).
          const action = /action="([^"]+)"/.exec(form)?.[1];
          const xsrf = /name="xsrf" value="([^"]+)"/.exec(form)?.[1];
          if (!action || !xsrf) throw new Error('unexpected logout form from oidc-provider');
          // The confirm POST ends in a redirect to the client's post-logout URI, which the
          // CSP's form-action must allow (security-headers.ts).
          const postLogout = ctx.oidc.params?.post_logout_redirect_uri;
          const target = typeof postLogout === 'string' ? URL.parse(postLogout) : null;
          if (target) ctx.state.formActionOrigins = [target.protocol.startsWith('http') ? target.origin : target.protocol];
          await pages.render(ctx, 'interactions/logout', {
            title: 'Sign out',
            clientName: ctx.oidc.client?.clientName ?? undefined,
            action: action.replace(/&amp;/g, '&'),
            xsrf,
          });
        },
        async postLogoutSuccessSource(ctx) {
          await pages.render(ctx, 'interactions/logged-out', {
            title: 'Signed out',
            clientName: ctx.oidc.client?.clientName ?? undefined,
          });
        },
      },
      // OpenID Connect Back-Channel Logout 1.0: clients may register `backchannel_logout_uri`.
      // NOTE: the provider would POST the logout tokens itself, once and without retries, at the
      // end-session confirmation; installBackchannelLogout (logout-token.ts) hands them to our
      // outbox instead, which also serves every other way a session ends (backchannel-logout.service.ts).
      // Front-channel logout is not offered: oidc-provider 9 does not implement it.
      backchannelLogout: { enabled: true },
      // Not offered: no front end for it yet, and every extra grant is attack surface.
      deviceFlow: { enabled: false },
      // RFC 7591/7592, off unless DYNAMIC_REGISTRATION=true; only with an initial access token an
      // admin issued (src/clients/registration-token.service.ts), whose policies apply our client
      // rules, mark the client and count uses. The policies are configured even when it is off, so
      // that tokens can be issued in advance.
      registration: {
        enabled: config.dynamicRegistration,
        initialAccessToken: true,
        policies: deps.registrationPolicies,
        // The same shapes as admin-created clients (client.service.ts); secrets base64url, as some
        // RPs put them into Basic auth without the encoding RFC 6749 §2.3.1 requires.
        idFactory: newClientId,
        secretFactory: () => randomBytes(32).toString('base64url'),
      },
      // RFC 7592 §2.2 lets the server rotate the registration access token on update: a leaked
      // token then stops working at the client's next update, at the cost of the client keeping
      // the new one from each response.
      registrationManagement: { enabled: config.dynamicRegistration, rotateRegistrationAccessToken: true },
      // Service clients get management API tokens (src/admin/api): grant_types client_credentials,
      // the admin scopes listed in their `scope` metadata, `resource` = the API.
      clientCredentials: { enabled: true },
      // RFC 8707 resource indicators: the management API (opaque tokens) and the API resources
      // each client is allowed (RFC 9068 JWT or opaque tokens), resource-servers.ts.
      resourceIndicators: { enabled: true, ...resourceIndicators },
    },
    // RFC 9700 §2.1.1: PKCE for every authorization code request, confidential clients too,
    // unless an admin let a confidential client skip it (`skip_pkce`, for relying parties that
    // predate PKCE; they still have their secret and `state`/`nonce`). Public clients always.
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' || !clientFlag(client, 'skip_pkce') },
    // OpenID Connect Core §3.1.2.1: the authorization endpoint (and RP-initiated logout) by POST too.
    enableHttpPostMethods: true,
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    // Public clients always rotate (RFC 9700 §4.14.2); confidential ones when 70% of the
    // idle period has passed, so active apps are not logged out by the idle expiry.
    rotateRefreshToken(ctx) {
      const { RefreshToken: refreshToken, Client: client } = ctx.oidc.entities;
      if (!refreshToken || !client) return false;
      // The absolute cap, enforced here because TTLs are whole seconds of at least one: a token
      // issued in the chain's last second would otherwise outlive the cap by up to a second.
      if (refreshToken.totalLifetime() >= ttl.refreshTokenAbsolute) {
        throw new errors.InvalidGrant('refresh token has reached its maximum lifetime; sign in again');
      }
      if (client.clientAuthMethod === 'none') return true;
      return refreshToken.ttlPercentagePassed() >= 70;
    },
    // A client's own lifetimes (access_token_ttl, id_token_ttl, refresh_token_ttl) win over the defaults.
    ttl: {
      AccessToken(ctx, token, client) {
        return clientTtl(client ?? ctx?.oidc?.client, 'access_token_ttl') ?? token.resourceServer?.accessTokenTTL ?? ttl.accessToken;
      },
      ClientCredentials(ctx, token, client) {
        return clientTtl(client ?? ctx?.oidc?.client, 'access_token_ttl') ?? token.resourceServer?.accessTokenTTL ?? ttl.accessToken;
      },
      AuthorizationCode: ttl.authorizationCode,
      IdToken(ctx, _token, client) {
        return clientTtl(client ?? ctx?.oidc?.client, 'id_token_ttl') ?? ttl.idToken;
      },
      Interaction: ttl.interaction,
      // Idle time, never past the absolute lifetime counted from the session's first save.
      Session: createSessionTtl(ttl),
      Grant: ttl.grant,
      RefreshToken(ctx, token, client) {
        // The client's idle period replaces the default; the absolute cap still applies.
        const idle = clientTtl(client ?? ctx?.oidc?.client, 'refresh_token_ttl') ?? ttl.refreshTokenIdle;
        return refreshTokenTtl({ ...ttl, refreshTokenIdle: idle }, token as unknown as { iiat?: number; iat?: number });
      },
    },
    clientBasedCORS(_ctx, origin, client) {
      // CORS per client: a browser app may call us from the origins of its own redirect URIs.
      if (origin === 'null') return false;
      return client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false;
    },
    async renderError(ctx: KoaContextWithOIDC, out, error) {
      const status = ctx.status >= 400 ? ctx.status : 400;
      // A database outage (503) is expected: a warning, as src/http/error-handler.ts logs it, not an error with a stack.
      if (status === 503) logger.warn('database unavailable', { path: ctx.path, reason: error.message });
      else if (status >= 500) logger.error('provider error', { err: error, path: ctx.path });
      const client = ctx.oidc?.client;
      const explained = explainProviderError(
        out,
        client ? { name: client.clientName ?? undefined, homeUri: client.clientUri ?? undefined } : undefined,
        `${config.issuer}/account`,
        error instanceof errors.SessionNotFound,
      );
      await pages.render(
        ctx,
        'errors/error',
        {
          title: 'Error',
          status,
          message: explained.message,
          code: String(out.error),
          developerDetail: explained.developerDetail,
          wayBack: explained.wayBack,
          requestId: ctx.state.requestId as string | undefined,
        },
        status,
      );
    },
    // NOTE: discovery advertises only what is enabled above.
    discovery: {
      service_documentation: undefined,
      // Initiating User Registration via OpenID Connect 1.0 §2: the prompt values accepted (the
      // library publishes none itself), `create` among them while sign-up is offered.
      prompt_values_supported: ['none', ...policy.filter((prompt) => prompt.requestable).map((prompt) => prompt.name)],
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
      userinfoSigningAlgValues: ['RS256', 'ES256'],
    },
  };

  const provider = new Provider(config.issuer, configuration);
  // NOTE: the provider is mounted in our Koa app; `proxy` must be set on the host app too (app.ts).
  provider.proxy = config.trustProxy;
  provider.use(laxSessionCookieOverHttp);
  return provider;
}
