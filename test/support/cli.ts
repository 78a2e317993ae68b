/**
 * The admin's command line in tests: commands run in process against the services of a fresh
 * test database, and `npm run cli` as a child process that sees only the settings a test gives it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import mongoose from 'mongoose';
import type { Connection } from 'mongoose';

import type { CommandContext, CommandFunction } from '../../src/cli/command.js';
import { loadConfig } from '../../src/config/config.js';
import type { Env } from '../../src/config/config.js';
import { connectDatabase } from '../../src/db/connect.js';
import { buildCore } from '../../src/core/core.js';
import type { Core } from '../../src/core/core.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from './database.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from './test-server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');
const CLI = path.join(ROOT, 'src/cli/main.ts');

/** What a command run ended with: its exit code and everything it wrote. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const quietLogger = () => createLogger({ level: 'error', format: 'json', write: () => undefined });

/** The core the command line builds (buildCore), on `connection`, with the test keys; `env` adds settings. */
export function createCliServices(connection: Connection, env: Env = {}): Core {
  const config = loadConfig({
    NODE_ENV: 'test',
    MONGODB_URI: 'mongodb://unused/',
    COOKIE_KEYS: TEST_COOKIE_KEY,
    ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
    ...env,
  });
  return buildCore({ config, logger: quietLogger(), connection });
}

/** A fresh test database (named after `label`) and the command line's services on it. */
export async function openCliDatabase(label: string, env: Env = {}): Promise<{ connection: Connection; services: Core }> {
  const connection = await connectDatabase(testDatabaseUri(label), quietLogger());
  const services = createCliServices(connection, env);
  // As the command line does on opening (cli-context.ts).
  await services.ensureIndexes({ withProvider: false });
  return { connection, services };
}

/** Drops a suite's database and closes the connection (either may be missing when its setup failed). */
export async function dropCliDatabase(connection: Connection | undefined): Promise<void> {
  await connection?.dropDatabase().catch(() => undefined);
  await connection?.close();
}

/** Runs a command in process with `services`, collecting what it writes. */
export async function runCommand(command: CommandFunction, args: string[], services: Core): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const ctx: CommandContext = {
    services,
    out: { write: (text: string) => (stdout += text) },
    err: { write: (text: string) => (stderr += text) },
  };
  const code = await command(args, ctx);
  return { code, stdout, stderr };
}

/** The environment without any of our settings, so that each test says exactly what the CLI sees. */
export function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['MONGODB_URI', 'DATA_DIR', 'COOKIE_KEYS', 'ENCRYPTION_KEYS', 'ISSUER', 'PORT', 'LOG_LEVEL', 'SEED_DEMO']) {
    delete env[name];
  }
  return env;
}

/** Runs `tsx src/cli/main.ts …` (what `npm run cli` runs) in `cwd`, where no .env lies. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, CLI, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Where a spawned CLI runs: an empty work folder, and settings for a fresh test database and the test keys. */
export interface CliWorkspace {
  workDir: string;
  mongoUri: string;
  env: NodeJS.ProcessEnv;
  /** Drops the database and removes the work folder. */
  remove(): Promise<void>;
}

export async function createCliWorkspace(label: string): Promise<CliWorkspace> {
  const workDir = await mkdtemp(path.join(tmpdir(), `${label.replace(/_/g, '-')}-`));
  const mongoUri = testDatabaseUri(label);
  return {
    workDir,
    mongoUri,
    env: {
      ...baseEnv(),
      NODE_ENV: 'test',
      MONGODB_URI: mongoUri,
      COOKIE_KEYS: TEST_COOKIE_KEY,
      ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      DATA_DIR: path.join(workDir, 'data'),
    },
    async remove() {
      const connection = await mongoose.createConnection(mongoUri, { serverSelectionTimeoutMS: 3_000 }).asPromise();
      await connection.dropDatabase().catch(() => undefined);
      await connection.close();
      await rm(workDir, { recursive: true, force: true });
    },
  };
}
