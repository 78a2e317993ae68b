import type { AccountService } from './accounts/account.service.js';
import type { ClientService } from './clients/client.service.js';
import type { Config } from './config/config.js';
import { DEMO_CALLBACK_PATH } from './demo/demo.routes.js';
import type { Logger } from './logging/logger.js';

export const DEMO_USER = { email: 'demo@example.com', password: 'demo-password-123', name: 'Demo User' } as const;
export const DEMO_CONFIDENTIAL_CLIENT_ID = 'demo-confidential-client';
export const DEMO_PUBLIC_CLIENT_ID = 'demo-public-client';

export interface SeedResult {
  created: boolean;
  confidentialSecret: string | undefined;
}

/**
 * Development seed, run once: a demo user, a confidential client and a public client. Their
 * redirect URIs are the built-in demo callback page (so the URL printed by `npm start` ends
 * somewhere useful) and http://localhost:8080/callback for a local app of your own.
 * A later start finds them and creates nothing.
 */
export async function seedDemo(
  { accounts, clients, config, logger }: { accounts: AccountService; clients: ClientService; config: Config; logger: Logger },
): Promise<SeedResult> {
  // NOTE: loadConfig refuses SEED_DEMO for other issuers already; this guards other callers.
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(config.issuer).hostname)) {
    throw new Error(`the demo seed runs only with a loopback issuer, not ${config.issuer}`);
  }
  let created = false;
  let confidentialSecret: string | undefined;
  if (!(await accounts.findByEmail(DEMO_USER.email))) {
    await accounts.create({ ...DEMO_USER, emailVerified: true });
    created = true;
  }
  if (!(await clients.get(DEMO_CONFIDENTIAL_CLIENT_ID))) {
    const client = await clients.create({
      clientId: DEMO_CONFIDENTIAL_CLIENT_ID,
      name: 'Demo confidential app',
      redirectUris: [`${config.issuer}${DEMO_CALLBACK_PATH}`, 'http://localhost:8080/callback'],
      postLogoutRedirectUris: ['http://localhost:8080/'],
    });
    confidentialSecret = client.clientSecret;
    created = true;
  }
  if (!(await clients.get(DEMO_PUBLIC_CLIENT_ID))) {
    await clients.create({
      clientId: DEMO_PUBLIC_CLIENT_ID,
      name: 'Demo public app',
      public: true,
      redirectUris: [`${config.issuer}${DEMO_CALLBACK_PATH}`, 'http://localhost:8080/callback', 'http://127.0.0.1:8080/callback'],
      postLogoutRedirectUris: ['http://localhost:8080/'],
    });
    created = true;
  }
  if (created) logger.info('seeded demo user and clients', { issuer: config.issuer });
  return { created, confidentialSecret };
}
