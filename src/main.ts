import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';

import { createApp } from './app.js';
import { ConfigError } from './config/config.js';
import type { Config } from './config/config.js';
import { applyDefaultEnvironment, databaseName, loadDotEnv, loadRuntimeConfig } from './config/runtime.js';
import { connectDatabase, describeUri } from './db/connect.js';
import { createMigrationRunner } from './db/migration-runner.js';
import { openRuntimeDatabase } from './db/runtime-database.js';
import { buildServerDeps } from './deps.js';
import { createLogger } from './logging/logger.js';
import { startMetricsServer } from './metrics/metrics.routes.js';
import type { MetricsServer } from './metrics/metrics.routes.js';
import { DEMO_CALLBACK_PATH } from './demo/demo.routes.js';
import { DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_PUBLIC_CLIENT_ID, DEMO_USER, seedDemo } from './seed.js';

/** Builds the printed "try it" URL for the public demo client: PKCE S256, state and nonce. */
function demoAuthorizationUrl(config: Config): string {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const url = new URL(`${config.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: DEMO_PUBLIC_CLIENT_ID,
    response_type: 'code',
    scope: 'openid email profile',
    redirect_uri: `${config.issuer}${DEMO_CALLBACK_PATH}`,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('base64url'),
    nonce: randomBytes(8).toString('base64url'),
  }).toString();
  return `${url.toString()}\n    (code_verifier for this URL: ${verifier})`;
}

async function main(): Promise<void> {
  loadDotEnv(process.env);
  applyDefaultEnvironment(process.env, import.meta.url);
  const config = await loadRuntimeConfig(process.env);
  const production = config.env === 'production';
  const logger = createLogger({ level: config.logLevel, format: production ? 'json' : 'pretty' });

  // Production: MONGODB_URI or a one-line refusal; development: the embedded database, loaded only then.
  const database = await openRuntimeDatabase(config, (m) => logger.info(m));
  // Command monitoring feeds the database latency metric; it costs a copy of each reply, so only with metrics on.
  const connection = await connectDatabase(database.uri, logger, { ...databaseName(config), monitorCommands: config.metrics.enabled });
  logger.info('database connected', { kind: database.kind, uri: describeUri(database.uri) });
  // Before anything reads the data; nodes starting together take turns under a lock in the database.
  await createMigrationRunner({ db: connection.db!, logger }).migrate();

  const deps = await buildServerDeps({ config, logger, connection });
  const app = createApp(deps);
  const server = http.createServer(app.callback());
  // Slow-client protection: finish headers and bodies within bounded time.
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, resolve);
  }).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new ConfigError(`Port ${config.port} is already in use: stop what runs there, or set PORT (and ISSUER) to another port.`);
    }
    throw err;
  });

  logger.info(`listening on port ${config.port}`, { issuer: config.issuer, env: config.env });
  let metricsServer: MetricsServer | undefined;
  if (deps.metrics && config.metrics.port !== undefined) {
    metricsServer = await startMetricsServer({ metrics: deps.metrics, port: config.metrics.port, token: config.metrics.token });
    logger.info(`metrics on port ${metricsServer.port}`, { path: '/metrics', bearerRequired: config.metrics.token !== undefined });
  }
  if (config.seedDemo) {
    const seeded = await seedDemo({ accounts: deps.accounts, clients: deps.clients, config, logger });
    const lines = [
      '',
      `  Issuer:        ${config.issuer}`,
      `  Discovery:     ${config.issuer}/.well-known/openid-configuration`,
      `  Demo user:     ${DEMO_USER.email} / ${DEMO_USER.password}`,
      `  Demo clients:  ${DEMO_PUBLIC_CLIENT_ID} (public, PKCE)  ·  ${DEMO_CONFIDENTIAL_CLIENT_ID} (confidential)`,
      seeded.confidentialSecret
        ? `  Confidential client secret (shown once): ${seeded.confidentialSecret}`
        : '  (the confidential demo secret was shown on first start; make a new client with `npm run cli -- client create`)',
      '  Try a sign-in:',
      `    ${demoAuthorizationUrl(config)}`,
      `  Your security page (authenticator app):  ${config.issuer}/account/security`,
      `  Admin console:  ${config.issuer}/admin  (make an admin: npm run cli -- user create --email … --password … --admin)`,
      config.mail.smtp ? '' : '  Mail (sign-in codes) is written to this log: look for "development mail".',
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    server.close();
    server.closeIdleConnections();
    void metricsServer?.close();
    // Audit writes started by provider events are not awaited by requests: close() lets them land first.
    void deps
      .close()
      .catch(() => undefined)
      .then(() => connection.close())
      .catch(() => undefined)
      .then(() => database.stop())
      .finally(() => process.exit(0));
    setTimeout(() => process.exit(1), 10_000).unref();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
  } else {
    process.stderr.write(`failed to start: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  }
  process.exit(1);
});
