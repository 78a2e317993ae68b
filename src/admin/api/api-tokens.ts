import type Provider from 'oidc-provider';
import type { Client, ResourceServer } from 'oidc-provider';

import type { defaults } from '../../../config/defaults.js';
import type { Config } from '../../config/config.js';
import { ADMIN_CLIENT_ID } from '../admin-client.js';

/**
 * Tokens for the management API (/api/admin/v1): access tokens our own provider issues for the
 * API's resource indicator (RFC 8707), opaque, so that the API looks them up in-process and a
 * revoked token (disabled account, deleted client) stops working at once.
 */

export type AdminScope =
  | 'admin:clients:read'
  | 'admin:clients:write'
  /** Give clients management API scopes (only ones the caller holds) or first-party status: src/clients/admin-authority.ts. */
  | 'admin:clients:grant'
  | 'admin:users:read'
  | 'admin:users:write'
  | 'admin:audit:read';

// The union and the configured list are the same scopes (a compile error here if they drift).
const SAME_SCOPES: [AdminScope, (typeof defaults.adminScopes)[number]] extends [(typeof defaults.adminScopes)[number], AdminScope] ? true : never = true;
void SAME_SCOPES;

type ApiConfig = Pick<Config, 'adminApi' | 'ttl'>;

export function isAdminScope(config: Pick<Config, 'adminApi'>, scope: string): scope is AdminScope {
  return config.adminApi.scopes.includes(scope);
}

/**
 * The management API scopes a client may hold: all of them for the built-in admin console
 * (whose tokens act for an admin, checked on every request), otherwise those its `scope`
 * metadata lists.
 *
 * NOTE: a client without `scope` metadata may ask for any scope the provider knows
 * (oidc-provider's validateClientScope); for the management API that is not taken as
 * permission: the admin scopes must be listed on the client.
 */
export function adminScopesFor(config: Pick<Config, 'adminApi'>, client: Pick<Client, 'clientId' | 'scope'> | undefined): AdminScope[] {
  if (!client) return [];
  const all = config.adminApi.scopes.filter((s): s is AdminScope => isAdminScope(config, s));
  if (client.clientId === ADMIN_CLIENT_ID) return all;
  const listed = new Set(typeof client.scope === 'string' ? client.scope.split(' ') : []);
  return all.filter((s) => listed.has(s));
}

/**
 * What `features.resourceIndicators.getResourceServerInfo` answers for the management API for
 * this client, or undefined when the client may get no token for it (the caller throws
 * invalid_target). The token's scopes are the requested ones filtered by `scope` here.
 */
export function adminApiResourceServer(config: ApiConfig, client: Pick<Client, 'clientId' | 'scope'> | undefined): ResourceServer | undefined {
  const scopes = adminScopesFor(config, client);
  if (scopes.length === 0) return undefined;
  return {
    scope: scopes.join(' '),
    audience: config.adminApi.resource,
    // Opaque: the API finds the token in the database, so revocation takes effect at once.
    accessTokenFormat: 'opaque',
    accessTokenTTL: config.ttl.accessToken,
  };
}

/**
 * An access token for the management API acting for an admin, issued to the built-in
 * `admin-console` client, for the console to call the API in-process or to hand to the admin.
 *
 * The token is the provider's own AccessToken (stored through our adapter like every other):
 * no grant (it is not issued from an authorization), so it is not bound to a session
 * (`expiresWithSession` unset) and lives for ACCESS_TOKEN_TTL; it is revoked with everything
 * else of the account when the account is disabled or deleted (revokeAccountRecords), and the
 * API checks on every request that the account still exists, is enabled and is an admin.
 *
 * Throws when a scope is not a management API scope or the admin console client is missing.
 */
export async function mintAdminApiToken(
  provider: Provider,
  config: ApiConfig,
  { accountId, scopes }: { accountId: string; scopes: readonly string[] },
): Promise<{ token: string; expiresIn: number }> {
  if (!accountId) throw new Error('mintAdminApiToken: accountId is required');
  const unknown = scopes.filter((s) => !isAdminScope(config, s));
  if (unknown.length > 0) throw new Error(`mintAdminApiToken: not management API scopes: ${unknown.join(' ')}`);
  if (scopes.length === 0) throw new Error('mintAdminApiToken: at least one scope is required');

  const client = await provider.Client.find(ADMIN_CLIENT_ID);
  const info = adminApiResourceServer(config, client);
  if (!client || !info) throw new Error(`mintAdminApiToken: the ${ADMIN_CLIENT_ID} client is not registered`);

  // NOTE: the typings ask for grantId and gty, which the model does not need: a token without
  // grantId is simply not revoked with a grant (revoke() skips it) and never bound to a session.
  const properties = {
    client,
    accountId,
    // Sets `aud` and the opaque format, as the token endpoint does for a resource indicator.
    resourceServer: new provider.ResourceServer(config.adminApi.resource, info),
    scope: [...new Set(scopes)].join(' '),
  } as unknown as ConstructorParameters<Provider['AccessToken']>[0];
  const accessToken = new provider.AccessToken(properties);
  const token = await accessToken.save();
  return { token, expiresIn: accessToken.expiration };
}
