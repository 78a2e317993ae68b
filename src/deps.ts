import type Provider from 'oidc-provider';
import type { Connection, mongo } from 'mongoose';

import { createAccountModel } from './accounts/account.model.js';
import type { AccountService } from './accounts/account.service.js';
import { createAccountService } from './accounts/account.service.js';
import type { EmailCodeService } from './accounts/email-code.service.js';
import { createEmailCodeService } from './accounts/email-code.service.js';
import type { TotpService } from './accounts/totp.service.js';
import { createTotpService } from './accounts/totp.service.js';
import { createAttemptLimiter } from './limits/attempt-limiter.js';
import type { SignInLimits } from './limits/sign-in-limits.js';
import { createSignInLimits } from './limits/sign-in-limits.js';
import type { UserAdminService } from './accounts/user-admin.service.js';
import { createUserAdminService } from './accounts/user-admin.service.js';
import { ensureAccountClient } from './account/account-client.js';
import { ensureAdminClient } from './admin/admin-client.js';
import type { AuditService } from './audit/audit.service.js';
import { createAuditService } from './audit/audit.service.js';
import type { Mailer } from './mail/mailer.js';
import { createMailer } from './mail/mailer.js';
import { createClientModel } from './clients/client.model.js';
import type { ClientService } from './clients/client.service.js';
import { createClientService } from './clients/client.service.js';
import type { RegistrationTokenService } from './clients/registration-token.service.js';
import {
  createRegistrationPolicies,
  createRegistrationTokenService,
  createStandaloneRegistrationTokenService,
} from './clients/registration-token.service.js';
import type { Config } from './config/config.js';
import { createSecretBox } from './crypto/secret-box.js';
import { guardDatabase } from './db/unavailable.js';
import type { PageRenderer } from './http/render-page.js';
import { createPageRenderer } from './http/render-page.js';
import type { CsrfTokens } from './sign-in/csrf.js';
import { createCsrfTokens } from './sign-in/csrf.js';
import type { Logger } from './logging/logger.js';
import { logProviderEvents } from './oidc/events.js';
import { loadOrCreateSigningKeys } from './oidc/keys.js';
import { ensureAdapterIndexes, sweepExpired } from './oidc/mongo-adapter.js';
import { createProvider } from './oidc/provider.js';
import { installClientSecretRotation } from './oidc/client-secret-rotation.js';

/** Everything a request handler may need, built once (no globals: one object built at start and passed down). */
export interface Deps {
  config: Config;
  logger: Logger;
  connection: Connection;
  db: mongo.Db;
  accounts: AccountService;
  clients: ClientService;
  emailCodes: EmailCodeService;
  totp: TotpService;
  /** What administrators do to people (console, management API, CLI). */
  userAdmin: UserAdminService;
  /** Every limit on guessing and sending, per address, account and client IP (src/limits). */
  limits: SignInLimits;
  mailer: Mailer;
  audit: AuditService;
  /** Initial access tokens for RFC 7591 dynamic registration. */
  registrationTokens: RegistrationTokenService;
  provider: Provider;
  pages: PageRenderer;
  csrf: CsrfTokens;
  /** Stops background work (the expiry sweep); does not close the connection it was given. */
  stop(): void;
}

/** Services only, for the CLI: no provider, no keys. */
export interface ServiceDeps {
  accounts: AccountService;
  clients: ClientService;
  totp: TotpService;
  userAdmin: UserAdminService;
  /** Mints tokens on a provider of its own (registration-token.service.ts, createStandaloneRegistrationTokenService). */
  registrationTokens: RegistrationTokenService;
}

export function createServices(connection: Connection, config: Config, logger: Logger): ServiceDeps {
  const db = connection.db;
  if (!db) throw new Error('database connection is not open');
  const secretBox = createSecretBox(config.encryptionKeys);
  const Account = createAccountModel(connection);
  const accounts = createAccountService({ Account, logger });
  const totp = createTotpService({ Account, db, secretBox, keys: config.encryptionKeys, issuer: config.productName });
  // Its own audit writer over the same collection: the CLI has no Deps, only these services.
  const audit = createAuditService({ db, logger, retentionDays: config.audit.retentionDays });
  const clients = createClientService({ Client: createClientModel(connection), secretBox, audit, config, db });
  const userAdmin = createUserAdminService({ accounts, totp, db, audit, logger });
  const registrationTokens = createStandaloneRegistrationTokenService({ issuer: config.issuer, db, audit, clientStore: clients, logger });
  return { accounts, clients, totp, userAdmin, registrationTokens };
}

export async function createDeps(config: Config, logger: Logger, connection: Connection): Promise<Deps> {
  const db = connection.db;
  if (!db) throw new Error('database connection is not open');
  const secretBox = createSecretBox(config.encryptionKeys);
  const { accounts, clients, totp, userAdmin } = createServices(connection, config, logger);

  // Indexes once, at start (not per request).
  await accounts.ensureIndexes();
  await clients.ensureIndexes();
  const { ttlSupported } = await ensureAdapterIndexes(db, logger);
  const emailCodes = createEmailCodeService(db, {
    ttlSeconds: config.emailCode.ttlSeconds,
    resendIntervalSeconds: config.emailCode.resendIntervalSeconds,
    maxAttempts: config.emailCode.maxAttempts,
  });
  await emailCodes.ensureIndexes();
  // Every limit on guessing and sending (passwords, codes, second factors, per IP): src/limits.
  const limiter = createAttemptLimiter(db);
  await limiter.ensureIndexes();
  const limits = createSignInLimits(limiter, config);
  await totp.ensureIndexes();
  const mailer = createMailer({ config, logger });
  const audit = createAuditService({ db, logger, retentionDays: config.audit.retentionDays });
  await audit.ensureIndexes();
  const registrationPolicies = createRegistrationPolicies({ db, audit });
  await ensureAccountClient(clients, config);
  await ensureAdminClient(clients, config);

  // Without TTL indexes expired records would pile up (they are never returned either way), so a
  // sweep removes them. It runs on MongoDB too: used recovery codes have no expiry a TTL index
  // could act on (totp.service.ts), and the other stores' sweeps are cheap indexed deletes.
  const sweep = setInterval(() => {
    guardDatabase(async () => {
      let removed = ttlSupported ? 0 : await sweepExpired(db);
      for (const store of [emailCodes, limiter, totp, audit, registrationTokens, clients]) removed += await store.sweep();
      return removed;
    }).then(
      (n) => n > 0 && logger.debug('swept expired records', { removed: n }),
      (err: unknown) => logger.warn('expiry sweep failed', { reason: (err as Error).message }),
    );
  }, 60_000);
  sweep.unref();

  const signingKeys = await loadOrCreateSigningKeys({ db, secretBox, logger });
  const pages = createPageRenderer({ productName: config.productName });
  const provider = createProvider({ config, db, clientStore: clients, accounts, signingKeys, logger, pages, registrationPolicies });
  // NOTE: the sweep above reaches this one too; it first runs a minute after start.
  const registrationTokens = createRegistrationTokenService({ provider, db, audit });
  await registrationTokens.ensureIndexes();
  logProviderEvents(provider, logger, audit);
  // An admin's rotated-out client secret keeps working for CLIENT_SECRET_GRACE_PERIOD seconds.
  installClientSecretRotation(provider, clients);
  // The cookie signing key doubles as the CSRF MAC key, under its own label (csrf.ts).
  const [cookieKey] = config.cookieKeys;
  if (!cookieKey) throw new Error('no cookie key');
  const csrf = createCsrfTokens(cookieKey);

  return {
    config,
    logger,
    connection,
    db,
    accounts,
    clients,
    emailCodes,
    totp,
    userAdmin,
    limits,
    mailer,
    audit,
    registrationTokens,
    provider,
    pages,
    csrf,
    stop() {
      clearInterval(sweep);
      mailer.close();
    },
  };
}
