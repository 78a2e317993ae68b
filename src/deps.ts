import type Provider from 'oidc-provider';
import type { Connection } from 'mongoose';

import { ensureAccountClient } from './account/account-client.js';
import { ensureAdminClient } from './admin/admin-client.js';
import type { Config } from './config/config.js';
import type { Clock } from './core/clock.js';
import type { Core } from './core/core.js';
import { buildCore } from './core/core.js';
import type { PageRenderer } from './http/render-page.js';
import { createPageRenderer } from './http/render-page.js';
import type { CsrfTokens } from './sign-in/csrf.js';
import { createCsrfTokens } from './sign-in/csrf.js';
import type { Logger } from './logging/logger.js';
import type { Metrics } from './metrics/metrics.service.js';
import { createMetrics } from './metrics/metrics.service.js';
import { logProviderEvents } from './oidc/events.js';
import type { KeyRing } from './oidc/key-ring.js';
import { createKeyRing } from './oidc/key-ring.js';
import { createProvider } from './oidc/provider.js';
import { installClientSecretRotation } from './oidc/client-secret-rotation.js';
import { installBackchannelLogout } from './oidc/logout-token.js';

/**
 * What a request handler may need: the core (every service, src/core/core.ts) and the parts only
 * the server has, built once at start and passed down (no globals).
 */
export interface Deps extends Core {
  provider: Provider;
  pages: PageRenderer;
  csrf: CsrfTokens;
  /** This node's signing keys: the provider's keystore follows rotations and retirements without a restart. */
  keyRing: KeyRing;
  /** This server's Prometheus metrics (its own registry); undefined unless METRICS_PORT or METRICS_TOKEN is set. */
  metrics: Metrics | undefined;
  /** Stops background work (the expiry sweep, the mailer) at once; close() also waits for audit writes. Neither closes the connection it was given. */
  stop(): void;
}

/** The services the command line uses: the core, without the server's layer. */
export type ServiceDeps = Core;

export interface ServerOptions {
  config: Config;
  logger: Logger;
  connection: Connection;
  clock?: Clock;
}

/** The server: the core, its indexes and background sweep, then the provider, keys, pages and CSRF on top. */
export async function buildServerDeps({ config, logger, connection, clock }: ServerOptions): Promise<Deps> {
  // Filled in below: the provider is built on top of the core's services.
  const built: { provider?: Provider } = {};
  const core = buildCore({
    config,
    logger,
    connection,
    ...(clock ? { clock } : {}),
    // Registration tokens are minted by the server's own provider, built below.
    mintingProvider: () => {
      if (!built.provider) throw new Error('the provider is not built yet');
      return built.provider;
    },
  });
  const { db, clients, accounts, audit } = core;

  // Indexes once, at start (not per request).
  await core.ensureIndexes();
  await ensureAccountClient(clients, config);
  await ensureAdminClient(clients, config);
  // Expired records are never returned either way; the sweep keeps them from piling up.
  core.startSweeping();

  const keyRing = createKeyRing({ service: core.signingKeys, secretBox: core.secretBox, logger });
  const signingKeys = await keyRing.load();
  const pages = createPageRenderer({ productName: config.productName });
  const provider = createProvider({
    config,
    db,
    clientStore: clients,
    accounts,
    signingKeys,
    logger,
    pages,
    registrationPolicies: core.registrationPolicies,
    resources: core.resources,
  });
  built.provider = provider;
  // Rotations, activations and retirements switch this provider's keys in place (key-ring.ts).
  keyRing.attach(provider);
  logProviderEvents(provider, logger, audit);
  // An admin's rotated-out client secret keeps working for CLIENT_SECRET_GRACE_PERIOD seconds.
  installClientSecretRotation(provider, clients);
  // Logout tokens are signed by this provider and sent by our outbox, its own end-session included.
  installBackchannelLogout(provider, core.backchannelLogout, logger);
  // The cookie signing key doubles as the CSRF MAC key, under its own label (csrf.ts).
  const [cookieKey] = config.cookieKeys;
  if (!cookieKey) throw new Error('no cookie key');
  const csrf = createCsrfTokens(cookieKey);
  // Hooks only (no database command per request); the connection monitors commands when metrics are on (main.ts).
  const metrics = config.metrics.enabled ? createMetrics({ logger }) : undefined;
  if (metrics) {
    metrics.observeAudit(audit);
    metrics.observeProvider(provider);
    metrics.observeOutbox(core.outbox);
    metrics.observeBackchannelLogout(core.backchannelLogout);
    metrics.observeCommands(connection.getClient());
  }
  // Last, so a failed start leaves no worker behind; close() stops it.
  core.outbox.start();
  core.backchannelLogout.start();
  // The provider reads the client on every request: from memory, kept in step with every node (close() stops it).
  clients.startWatching();
  core.resources.startWatching();
  keyRing.start();

  return {
    ...core,
    provider,
    pages,
    csrf,
    keyRing,
    metrics,
    stop() {
      keyRing.stop();
      void core.close();
    },
    close() {
      keyRing.stop();
      return core.close();
    },
  };
}

/** The server's dependencies (kept for callers of the older signature). */
export function createDeps(config: Config, logger: Logger, connection: Connection, clock?: Clock): Promise<Deps> {
  return buildServerDeps({ config, logger, connection, ...(clock ? { clock } : {}) });
}
