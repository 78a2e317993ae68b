import { errors } from 'oidc-provider';
import type { AccessToken, Client, ClientCredentials, Configuration, KoaContextWithOIDC, RefreshToken, ResourceServer } from 'oidc-provider';

import { adminApiResourceServer } from '../admin/api/api-tokens.js';
import type { Config } from '../config/config.js';
import { rememberRead } from '../http/request-context.js';
import type { ApiResourceService, ApiResourceView } from '../resources/api-resource.service.js';
import { SIGNING_ALGORITHMS } from './keys.js';
import type { SigningAlgorithm } from './keys.js';

/**
 * RFC 8707 resource indicators and RFC 9068 JWT access tokens for the apps' own APIs (the API
 * resources of src/resources), beside the management API's opaque tokens (src/admin/api).
 *
 * A client gets tokens only for the resources its `allowed_resources` metadata lists; an unknown
 * resource and one the client may not use get the same `invalid_target`, so a client cannot probe
 * which APIs exist. The resource is read from this node's cache (api-resource.service.ts), and at
 * most once per request (`rememberRead`): the token endpoint asks for it more than once.
 */

export type ResourceLookup = Pick<ApiResourceService, 'find'>;

type ResourceIndicatorsFeature = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;
type IntrospectionPolicy = (ctx: KoaContextWithOIDC, client: Client, token: AccessToken | ClientCredentials | RefreshToken) => Promise<boolean>;

const NOT_AVAILABLE = 'the resource is unknown or this client may not get tokens for it';

/** The client's `allowed_resources` metadata (extra metadata stays snake_case on the Client instance). */
export function allowedResourcesOf(client: unknown): string[] {
  if (typeof client !== 'object' || client === null) return [];
  const value = (client as Record<string, unknown>).allowed_resources;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** The client's `default_resource`, while it is still one of its allowed resources. */
export function defaultResourceOf(client: unknown): string | undefined {
  if (typeof client !== 'object' || client === null) return undefined;
  const value = (client as Record<string, unknown>).default_resource;
  return typeof value === 'string' && allowedResourcesOf(client).includes(value) ? value : undefined;
}

/** The key under which a request remembers a resource it read. */
export const resourceReadKey = (identifier: string) => `api_resource:${identifier}`;

/** A resource, read at most once per request (from the node's cache while it is trusted). */
export function findResource(resources: ResourceLookup, identifier: string): Promise<ApiResourceView | undefined> {
  return rememberRead(resourceReadKey(identifier), () => resources.find(identifier));
}

/**
 * The algorithm a JWT access token is signed with: the one the client asked for its ID tokens
 * when our keystore signs with it (RS256 or ES256), else RS256, which every JOSE library verifies.
 */
export function accessTokenAlgFor(client: Pick<Client, 'idTokenSignedResponseAlg'> | undefined): SigningAlgorithm {
  const asked = client?.idTokenSignedResponseAlg;
  return (SIGNING_ALGORITHMS as readonly string[]).includes(asked ?? '') ? (asked as SigningAlgorithm) : 'RS256';
}

/** What the provider issues tokens for `resource` with: its scopes, audience, lifetime and format. */
export function resourceServerInfo(resource: ApiResourceView, client: Client | undefined, defaultTtl: number): ResourceServer {
  const info: ResourceServer = {
    scope: resource.scopes.map((s) => s.name).join(' '),
    audience: resource.identifier,
    // A client's own access_token_ttl still wins (ttl.AccessToken in provider.ts).
    accessTokenTTL: resource.accessTokenTtl ?? defaultTtl,
    accessTokenFormat: resource.tokenFormat,
  };
  // RFC 9068: typ at+jwt, signed with the server's keys (the API verifies them against our JWKS).
  if (resource.tokenFormat === 'jwt') info.jwt = { sign: { alg: accessTokenAlgFor(client) } };
  return info;
}

export interface ResourceIndicatorDeps {
  config: Pick<Config, 'adminApi' | 'ttl'>;
  resources: ResourceLookup;
  /** The scopes the provider knows (OpenID Connect's and the management API's): not an API resource's. */
  staticScopes: ReadonlySet<string>;
}

export function createResourceIndicators({ config, resources, staticScopes }: ResourceIndicatorDeps): Required<Pick<ResourceIndicatorsFeature, 'getResourceServerInfo' | 'defaultResource' | 'useGrantedResource'>> {
  return {
    async getResourceServerInfo(_ctx, resourceIndicator, client) {
      if (resourceIndicator === config.adminApi.resource) {
        // NOTE: oidc-provider checks a client's `scope` metadata against requested scopes only
        // when the metadata is present; adminApiResourceServer requires the admin scopes to be
        // listed (or the client to be the admin console, whose tokens act for an admin).
        const info = adminApiResourceServer(config, client);
        if (!info) throw new errors.InvalidTarget('this client may not get tokens for the management API');
        return info;
      }
      // The client's list first: a resource it may not use is refused without a read.
      if (!allowedResourcesOf(client).includes(resourceIndicator)) throw new errors.InvalidTarget(NOT_AVAILABLE);
      const resource = await findResource(resources, resourceIndicator);
      // Deleted since the client listed it: no new tokens.
      if (!resource) throw new errors.InvalidTarget(NOT_AVAILABLE);
      return resourceServerInfo(resource, client, config.ttl.accessToken);
    },

    // A request without `resource` is for the client's default_resource (authorization and
    // client_credentials). At the token endpoint, when several resources were granted (`oneOf`),
    // the default one if it is among them; otherwise the list stays unresolved and the provider
    // answers invalid_target (the client must name one, RFC 8707 §2.2).
    async defaultResource(_ctx, client, oneOf) {
      const fallback = defaultResourceOf(client);
      if (oneOf) return fallback && oneOf.includes(fallback) ? fallback : oneOf;
      return fallback;
    },

    // A code or refresh token whose grant holds an API's scopes gets a token for that API even
    // without `resource` at the token endpoint (its `openid` scope would otherwise make it a token
    // for userinfo). One that holds only OpenID Connect (or management API) scopes keeps today's
    // behaviour: a token for userinfo unless `resource` is named.
    async useGrantedResource(_ctx, model) {
      return [...model.scopes].some((scope) => !staticScopes.has(scope));
    },
  };
}

/**
 * Who may introspect a token (RFC 7662 §4 leaves the policy to us): the client it was issued to,
 * and, for a token whose audience is one of the API resources, a confidential client the
 * resource lists in `introspectionClients` (the API itself, registered as a client). Nobody else:
 * the library's default would let any confidential client introspect any token.
 */
export function createIntrospectionPolicy(resources: ResourceLookup): IntrospectionPolicy {
  return async (_ctx, client, token) => {
    if (client.clientAuthMethod === 'none') return false;
    if (token.clientId === client.clientId) return true;
    const audience = (token as { aud?: unknown }).aud;
    if (typeof audience !== 'string') return false;
    const resource = await findResource(resources, audience);
    return resource?.introspectionClients.includes(client.clientId) ?? false;
  };
}

type GrantLike = Pick<InstanceType<KoaContextWithOIDC['oidc']['provider']['Grant']>, 'getOIDCScope' | 'addOIDCScope' | 'getResourceScope' | 'addResourceScope'>;

/**
 * Adds to `grant` what this authorization request asks for and the grant lacks: the OpenID
 * Connect scopes, and for each named resource the requested scopes it defines (a scope no named
 * resource defines is never granted). For first-party clients, which get no consent page.
 * True when something was added (the grant must be saved).
 */
export function grantRequestedScopes(grant: GrantLike, ctx: KoaContextWithOIDC): boolean {
  const { oidc } = ctx;
  let changed = false;
  const held = new Set(grant.getOIDCScope().split(' '));
  const missingOidc = [...oidc.requestParamOIDCScopes].filter((scope) => !held.has(scope));
  if (missingOidc.length > 0) {
    grant.addOIDCScope(missingOidc.join(' '));
    changed = true;
  }
  for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
    const heldForResource = new Set(grant.getResourceScope(indicator).split(' '));
    const missing = [...oidc.requestParamScopes].filter((scope) => server.scopes.has(scope) && !heldForResource.has(scope));
    if (missing.length > 0) {
      grant.addResourceScope(indicator, missing.join(' '));
      changed = true;
    }
  }
  return changed;
}
