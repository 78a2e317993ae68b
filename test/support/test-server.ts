import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Connection } from 'mongoose';

import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config, Env } from '../../src/config/config.js';
import { connectDatabase } from '../../src/db/connect.js';
import type { Clock } from '../../src/core/clock.js';
import { buildServerDeps } from '../../src/deps.js';
import type { Deps } from '../../src/deps.js';
import { createLogger } from '../../src/logging/logger.js';
import type { LogLevel } from '../../src/logging/logger.js';
import { testDatabaseUri } from './database.js';

export const TEST_COOKIE_KEY = 'test-cookie-key-0123456789abcdefghijklmnop';
export const TEST_ENCRYPTION_KEYS = `test1:${Buffer.alloc(32, 7).toString('base64url')}`;

export interface TestServer {
  url: string;
  port: number;
  config: Config;
  deps: Deps;
  connection: Connection;
  mongoUri: string;
  /** Log lines the server wrote (JSON), for "nothing secret in logs" checks. */
  logs: string[];
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Reuse a database (e.g. to restart a server on the same data). Default: a fresh one. */
  mongoUri?: string;
  /** Listen on this port (to restart on the same issuer). Default: a free one. */
  port?: number;
  env?: Env;
  logLevel?: LogLevel;
  /** Emit the driver's command events on `connection.getClient()` (to count database commands). */
  monitorCommands?: boolean;
  /** The services' clock (test/support/clock.ts): move it instead of sleeping. Default: the system's. oidc-provider keeps the system time. */
  clock?: Clock;
}

/**
 * Builds the server exactly as production does (buildServerDeps + createApp) on a real port:
 * listen first, then build the Provider with the real issuer (its endpoint URLs name the issuer's port).
 */
export async function startTestServer(label: string, options: TestServerOptions = {}): Promise<TestServer> {
  const mongoUri = options.mongoUri ?? testDatabaseUri(label);
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: String(port),
    ISSUER: url,
    MONGODB_URI: mongoUri,
    COOKIE_KEYS: TEST_COOKIE_KEY,
    ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
    // NOTE: every test request comes from 127.0.0.1, so the per-IP limits would count the whole
    // suite as one visitor. Suites that test those limits set their own values.
    IP_SIGN_IN_FAILURE_LIMIT: '100000',
    IP_CODE_SEND_LIMIT: '100000',
    IP_CLIENT_AUTH_FAILURE_LIMIT: '100000',
    EMAIL_CODE_ADDRESS_LIMIT: '10000',
    EMAIL_CODE_ADDRESS_IP_LIMIT: '10000',
    ...options.env,
  });
  const logs: string[] = [];
  const logger = createLogger({ level: options.logLevel ?? 'debug', format: 'json', write: (line) => logs.push(line) });
  const connection = await connectDatabase(mongoUri, logger, options.monitorCommands ? { monitorCommands: true } : {});
  const deps = await buildServerDeps({ config, logger, connection, ...(options.clock ? { clock: options.clock } : {}) });
  const app = createApp(deps);
  server.on('request', app.callback());
  return {
    url,
    port,
    config,
    deps,
    connection,
    mongoUri,
    logs,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.close();
      await connection.close();
    },
  };
}
