import type { AdapterPayload } from 'oidc-provider';

import type { ClientStore } from '../oidc/mongo-adapter.js';
import type { Config } from '../config/config.js';

export const ACCOUNT_CLIENT_ID = 'account-console';
export const ACCOUNT_CALLBACK_PATH = '/account/callback';

/**
 * The built-in client behind /account: a public, first-party client of this very server, written
 * at every start so its redirect URI follows ISSUER. First-party: its sign-ins skip the consent
 * page (provider.ts, loadExistingGrant), and it asks for nothing but `openid`.
 */
export async function ensureAccountClient(clients: ClientStore, config: Pick<Config, 'issuer' | 'productName'>): Promise<void> {
  const metadata: AdapterPayload = {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: `${config.productName} account`,
    application_type: 'web',
    redirect_uris: [`${config.issuer}${ACCOUNT_CALLBACK_PATH}`],
    post_logout_redirect_uris: [`${config.issuer}/account/signed-out`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    first_party: true,
  };
  await clients.upsert(ACCOUNT_CLIENT_ID, metadata);
}
