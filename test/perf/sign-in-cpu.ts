/**
 * CPU per password sign-in, measured on the server alone: the server process builds the app as
 * production does (NODE_ENV=production, buildServerDeps + createApp) and a forked driver process
 * walks N whole flows through it (authorization request → login page → password POST → consent
 * page → consent POST → code → token request), each with a new browser and account. The server
 * reports `process.cpuUsage()` over the N flows, so the driver's own work is not counted.
 *
 *   NODE_ENV=production tsx test/perf/sign-in-cpu.ts [flows=40] [--profile=<file.cpuprofile>]
 *
 * `--profile` writes a CPU profile of the server over the measured flows only (open it in Chrome
 * DevTools); argon2 runs on libuv's thread pool and is missing from it, but not from the CPU time.
 *
 * Uses MONGODB_URI when set (in a scratch database it leaves behind), else a database of its own
 * in a temporary folder. argon2id runs with the production parameters: part of every flow.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';

import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { connectDatabase } from '../../src/db/connect.js';
import { provisionDatabase } from '../../src/db/provision.js';
import type { ProvisionedDatabase } from '../../src/db/provision.js';
import { buildServerDeps } from '../../src/deps.js';
import { createLogger } from '../../src/logging/logger.js';
import { pkcePair } from '../support/rp.js';
import { UserAgent, formAction, formField } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const WARM_UP = 5;

interface FlowJob {
  url: string;
  clientId: string;
  clientSecret: string;
  emails: string[];
}

/** The server names its https issuer in redirects; this process talks plain HTTP to its port. */
const local = (url: string | undefined): string => (url ?? '').replace(/^https:/, 'http:');

/** Follows redirects on the server; stops at a page or at a redirect leaving it. */
async function follow(agent: UserAgent, url: string): Promise<Reply> {
  let reply = await agent.get(local(url));
  while (reply.status >= 300 && reply.status < 400 && reply.location && local(reply.location).startsWith(agent.baseUrl)) reply = await agent.get(local(reply.location));
  return reply;
}

/** One whole flow in a fresh browser; throws unless it ends with an ID token. */
async function flow(job: FlowJob, email: string): Promise<void> {
  const agent = new UserAgent(job.url);
  const { verifier, challenge } = pkcePair();
  const query = new URLSearchParams({
    client_id: job.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: 'openid email profile',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
    nonce: randomBytes(8).toString('hex'),
  });
  const login = await follow(agent, `${job.url}/auth?${query.toString()}`);
  const posted = await agent.post(local(formAction(login.body, '/login')), { csrf: formField(login.body, 'csrf'), email, password: PASSWORD });
  const consent = await follow(agent, posted.location ?? '');
  const confirmed = await agent.post(local(formAction(consent.body, '/confirm')), { csrf: formField(consent.body, 'csrf') });
  const callback = await follow(agent, confirmed.location ?? '');
  const code = callback.location ? new URL(callback.location).searchParams.get('code') : null;
  if (!code) throw new Error(`no code: ${callback.status} ${callback.location ?? callback.body.slice(0, 200)}`);
  const res = await fetch(`${job.url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(job.clientId)}:${encodeURIComponent(job.clientSecret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }).toString(),
  });
  const body = (await res.json()) as { id_token?: string };
  if (!body.id_token) throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
}

/** The driver (forked): runs the flows it is sent, one at a time, and reports back. */
async function drive(): Promise<void> {
  process.on('message', (message: { job: FlowJob; phase: string }) => {
    void (async () => {
      for (const email of message.job.emails) await flow(message.job, email);
      process.send?.({ done: message.phase });
    })().catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  });
  process.send?.({ ready: true });
}

function ask(child: ChildProcess, job: FlowJob, phase: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: { done?: string }) => {
      if (message.done !== phase) return;
      child.off('message', onMessage);
      resolve();
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`driver exited with ${code}`)));
    child.send({ job, phase });
  });
}

async function serve(flows: number, profileFile: string | undefined): Promise<void> {
  let database: ProvisionedDatabase | undefined;
  let dataDir: string | undefined;
  let baseUri = process.env.MONGODB_URI?.trim();
  if (!baseUri) {
    dataDir = await mkdtemp(path.join(tmpdir(), 'sign-in-cpu-'));
    database = await provisionDatabase({ dataDir });
    baseUri = database.uri;
  }
  const mongoUri = `${baseUri.replace(/\/?$/, '/')}sign_in_cpu_${randomBytes(3).toString('hex')}`;
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  // Production mode: the issuer must be https; the app pins every request to it (ctx.secure), so
  // plain HTTP on the loopback port behaves as the TLS-terminated production path.
  const config = loadConfig({
    NODE_ENV: 'production',
    PORT: String(port),
    ISSUER: `https://127.0.0.1:${port}`,
    MONGODB_URI: mongoUri,
    COOKIE_KEYS: randomBytes(32).toString('base64url'),
    ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64url')}`,
    SMTP_URL: 'smtp://127.0.0.1:9',
    MAIL_FROM: 'Id <id@example.com>',
    IP_SIGN_IN_FAILURE_LIMIT: '100000',
    LOG_LEVEL: 'warn',
  });
  const logger = createLogger({ level: 'warn', format: 'json', write: () => undefined });
  const connection = await connectDatabase(mongoUri, logger);
  const deps = await buildServerDeps({ config, logger, connection });
  server.on('request', createApp(deps).callback());

  const client = await deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
  const emails = Array.from({ length: WARM_UP + flows }, (_, i) => `person${i}@example.com`);
  for (const email of emails) await deps.accounts.create({ email, password: PASSWORD, emailVerified: true });
  const job = (list: string[]): FlowJob => ({ url, clientId: client.clientId, clientSecret: client.clientSecret ?? '', emails: list });

  const driver = fork(fileURLToPath(import.meta.url), ['--driver'], { stdio: 'inherit' });
  try {
    await new Promise<void>((resolve) => driver.once('message', () => resolve()));
    await ask(driver, job(emails.slice(0, WARM_UP)), 'warm-up');
    const profiler = profileFile ? new Session() : undefined;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    const before = process.cpuUsage();
    const started = performance.now();
    await ask(driver, job(emails.slice(WARM_UP)), 'measured');
    const used = process.cpuUsage(before);
    const wall = performance.now() - started;
    if (profiler && profileFile) {
      const { profile } = await profiler.post('Profiler.stop');
      await writeFile(profileFile, JSON.stringify(profile));
      profiler.disconnect();
    }
    const perFlow = (used.user + used.system) / 1000 / flows;
    console.log(
      `${flows} sign-in flows (NODE_ENV=production): ${perFlow.toFixed(1)} ms CPU per flow ` +
        `(user ${(used.user / 1000 / flows).toFixed(1)}, system ${(used.system / 1000 / flows).toFixed(1)}), ${(wall / flows).toFixed(1)} ms wall per flow`,
    );
  } finally {
    driver.kill();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await deps.close();
    await connection.dropDatabase().catch(() => undefined);
    await connection.close();
    await database?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--driver')) {
  await drive();
} else {
  const args = process.argv.slice(2);
  const flows = Number(args.find((a) => !a.startsWith('--')) ?? 40);
  const profileFile = args.find((a) => a.startsWith('--profile='))?.slice('--profile='.length);
  await serve(Number.isSafeInteger(flows) && flows > 0 ? flows : 40, profileFile);
}
