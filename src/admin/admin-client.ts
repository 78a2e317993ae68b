import type { AdapterPayload } from 'oidc-provider';

import type { Config } from '../config/config.js';
import type { ClientStore } from '../oidc/mongo-adapter.js';

export const ADMIN_CLIENT_ID = 'admin-console';
export const ADMIN_BASE_PATH = '/admin';

/**
 * The built-in client behind the admin console: public, first-party (no consent page), and
 * `require_mfa`, so every console sign-in has a second factor whatever MFA_REQUIRED_FOR_ADMINS
 * says. Written at every start so its redirect URI follows ISSUER.
 */
export async function ensureAdminClient(clients: ClientStore, config: Pick<Config, 'issuer' | 'productName'>): Promise<void> {
  const metadata: AdapterPayload = {
    client_id: ADMIN_CLIENT_ID,
    client_name: `${config.productName} admin console`,
    application_type: 'web',
    redirect_uris: [`${config.issuer}${ADMIN_BASE_PATH}/callback`],
    post_logout_redirect_uris: [`${config.issuer}${ADMIN_BASE_PATH}/signed-out`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    first_party: true,
    require_mfa: true,
  };
  await clients.upsert(ADMIN_CLIENT_ID, metadata);
}
