/**
 * This server as a benchmark target: built exactly as src/main.ts builds it (loadConfig,
 * connectDatabase, buildServerDeps, createApp, the same server timeouts), in a process of its
 * own, with the driver's command monitoring on so that the bench can count database commands.
 *
 * Started by bench/run.ts (never by hand): configuration comes from the environment the bench
 * gives (NODE_ENV=production and the settings it lists in its output), plus
 *   BENCH_DB_NAME    the scratch database (dropped when the bench stops this process)
 *   BENCH_LOG_FILE   where the server's log goes (JSON lines, as in production)
 */
import { createWriteStream } from 'node:fs';
import http from 'node:http';

import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { connectDatabase } from '../src/db/connect.js';
import { buildServerDeps } from '../src/deps.js';
import { createLogger } from '../src/logging/logger.js';
import { startProbe } from './child-probe.js';
import type { SetupInput, SetupOutput } from './protocol.js';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const uri = config.mongodbUri;
  const dbName = process.env.BENCH_DB_NAME;
  if (!uri || !dbName) throw new Error('MONGODB_URI and BENCH_DB_NAME are set by the bench');
  const logFile = createWriteStream(process.env.BENCH_LOG_FILE ?? '/dev/null', { flags: 'a' });
  const logger = createLogger({ level: config.logLevel, format: 'json', write: (line) => logFile.write(`${line}\n`) });

  const connection = await connectDatabase(uri, logger, { dbName, monitorCommands: true });
  let stopping: Promise<void> | undefined;
  let close = async (): Promise<void> => {
    await connection.close();
  };
  const probe = startProbe({
    async setup(raw): Promise<SetupOutput> {
      const input = raw as SetupInput;
      const client = await deps.clients.create({
        name: 'Bench',
        redirectUris: [input.redirectUri],
        grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
      });
      if (!client.clientSecret) throw new Error('the bench client has no secret');
      // One after another: argon2id hashes side by side would each take their 19 MiB at once, and
      // the allocator keeps that resident, which would then show in every scenario's peak RSS.
      for (const a of input.passwordAccounts) await deps.accounts.create({ email: a.email, password: a.password, emailVerified: true });
      for (const email of input.codeAccounts) await deps.accounts.create({ email, emailVerified: true });
      return { clientId: client.clientId, clientSecret: client.clientSecret };
    },
    // Audit events are written after the response: let them land inside the scenario that caused them.
    settle: () => deps.audit.flush(),
    stop: () => (stopping ??= close()),
  });
  probe.watch(connection.getClient());

  const deps = await buildServerDeps({ config, logger, connection });
  const app = createApp(deps);
  const server = http.createServer(app.callback());
  // As src/main.ts: slow-client protection.
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, '127.0.0.1', resolve);
  });
  close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await deps.close().catch(() => undefined);
    // The scratch database goes with the server that used it.
    await connection.db?.dropDatabase().catch(() => undefined);
    await connection.close();
    await new Promise<void>((resolve) => logFile.end(resolve));
  };
  probe.ready(server, config.port);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench server failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
