import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import mongoose from 'mongoose';
import type { Connection } from 'mongoose';

import type { CommandContext, CommandFunction } from '../../src/cli/command.js';
import type { RegistrationTokenJson } from '../../src/cli/registration-token.commands.js';
import {
  registrationTokenCreate,
  registrationTokenList,
  registrationTokenRevoke,
} from '../../src/cli/registration-token.commands.js';
import { registrationTokenId } from '../../src/clients/registration-token.service.js';
import { loadConfig } from '../../src/config/config.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createServices } from '../../src/deps.js';
import type { ServiceDeps } from '../../src/deps.js';
import { createLogger } from '../../src/logging/logger.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { testDatabaseUri } from '../support/database.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from '../support/test-server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');
const CLI = path.join(ROOT, 'src/cli/main.ts');

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

type CreatedJson = RegistrationTokenJson & { token: string };

const quietLogger = () => createLogger({ level: 'error', format: 'json', write: () => undefined });

describe('registration-token commands, in process', () => {
  let connection: Connection;
  let services: ServiceDeps;

  async function run(command: CommandFunction, args: string[]): Promise<RunResult> {
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

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('cli_regtoken'), quietLogger());
    const config = loadConfig({
      NODE_ENV: 'test',
      MONGODB_URI: 'mongodb://unused/',
      COOKIE_KEYS: TEST_COOKIE_KEY,
      ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
    });
    services = createServices(connection, config, quietLogger());
  });

  afterAll(async () => {
    await connection?.dropDatabase().catch(() => undefined);
    await connection?.close();
  });

  it('create prints the token once with its id, expiry and uses', async () => {
    const result = await run(registrationTokenCreate, ['--expires-in', '3600', '--uses', '2']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const token = /token:\s+(\S+)/.exec(result.stdout)?.[1] ?? '';
    const id = /Created registration token (\S+)\./.exec(result.stdout)?.[1];
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(id).toBe(registrationTokenId(token));
    expect(result.stdout).toMatch(/expires_at:\s+\d{4}-\d\d-\d\dT/);
    expect(result.stdout).toMatch(/uses:\s+2$/m);
    expect(result.stdout).toMatch(/will not be shown again/);
    // Minted as the provider stores it: the record's id is the value.
    expect(await connection.db!.collection(collectionName('InitialAccessToken')).countDocuments({ _id: token } as never)).toBe(1);
  });

  it('create --json prints one object with the token; list never shows it; revoke ends it', async () => {
    const created = await run(registrationTokenCreate, ['--json']);
    expect(created.code).toBe(0);
    const json = JSON.parse(created.stdout) as CreatedJson;
    expect(created.stdout).toBe(`${JSON.stringify(json, null, 2)}\n`);
    expect(Object.keys(json)).toEqual(['id', 'token', 'created_at', 'expires_at', 'uses_allowed', 'uses_count', 'revoked', 'status']);
    expect(json).toMatchObject({ expires_at: null, uses_allowed: null, uses_count: 0, revoked: false, status: 'active' });

    const listed = await run(registrationTokenList, ['--json']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(json.token);
    const tokens = JSON.parse(listed.stdout) as RegistrationTokenJson[];
    expect(tokens[0]).toMatchObject({ id: json.id, status: 'active' });

    const text = await run(registrationTokenList, []);
    expect(text.stdout).toMatch(/^ID\s+CREATED\s+EXPIRES\s+USES\s+STATUS$/m);
    expect(text.stdout).toMatch(new RegExp(`^${json.id}\\s+\\S+\\s+never\\s+0/unlimited\\s+active$`, 'm'));
    expect(text.stdout).not.toContain(json.token);

    const revoked = await run(registrationTokenRevoke, [json.id]);
    expect(revoked).toEqual({ code: 0, stdout: `Revoked registration token ${json.id}.\n`, stderr: '' });
    const again = await run(registrationTokenRevoke, [json.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no active registration token/);
    expect(((JSON.parse((await run(registrationTokenList, ['--json'])).stdout) as RegistrationTokenJson[])[0])?.status).toBe('revoked');

    // The audit log names the command line and never holds the token.
    const events = await connection.db!.collection('audit_events').find({ 'target.id': json.id }).toArray();
    expect(events.map((e) => e.action).sort()).toEqual(['registration_token.created', 'registration_token.revoked']);
    expect(events.every((e) => e.actor?.type === 'system' && e.actor?.label === 'cli')).toBe(true);
    expect(JSON.stringify(events)).not.toContain(json.token);
  });

  it('bad command lines are usage errors (exit 2) before anything is stored', async () => {
    const before = (await services.registrationTokens.list()).length;
    for (const args of [['--uses', '0'], ['--uses', 'two'], ['--expires-in', '5'], ['--expires-in', '-60'], ['--what']]) {
      const result = await run(registrationTokenCreate, args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(result.stderr).toMatch(/^error: /);
    }
    expect((await run(registrationTokenRevoke, [])).code).toBe(2);
    expect((await run(registrationTokenRevoke, ['a', 'b'])).code).toBe(2);
    expect((await services.registrationTokens.list()).length).toBe(before);
  });
});

/** The environment without any of our settings (as in cli.test.ts). */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['MONGODB_URI', 'DATA_DIR', 'COOKIE_KEYS', 'ENCRYPTION_KEYS', 'ISSUER', 'PORT', 'LOG_LEVEL', 'SEED_DEMO']) {
    delete env[name];
  }
  return env;
}

function runCli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<RunResult> {
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

describe('npm run cli -- registration-token, as a child process', () => {
  let workDir: string;
  let mongoUri: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'cli-regtoken-'));
    mongoUri = testDatabaseUri('cli_regtoken_spawn');
    env = {
      ...baseEnv(),
      NODE_ENV: 'test',
      MONGODB_URI: mongoUri,
      COOKIE_KEYS: TEST_COOKIE_KEY,
      ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      DATA_DIR: path.join(workDir, 'data'),
    };
  });

  afterAll(async () => {
    const connection = await mongoose.createConnection(mongoUri, { serverSelectionTimeoutMS: 3_000 }).asPromise();
    await connection.dropDatabase().catch(() => undefined);
    await connection.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('create --json, list --json and revoke, with nothing but results on stdout', async () => {
    const created = await runCli(['registration-token', 'create', '--uses', '1', '--expires-in', '600', '--json'], env, workDir);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const json = JSON.parse(created.stdout) as CreatedJson;
    expect(json.id).toBe(registrationTokenId(json.token));
    expect(json).toMatchObject({ uses_allowed: 1, status: 'active' });

    const listed = await runCli(['registration-token', 'list', '--json'], env, workDir);
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(listed.stdout) as RegistrationTokenJson[]).map((t) => t.id)).toEqual([json.id]);
    expect(listed.stdout).not.toContain(json.token);

    const revoked = await runCli(['registration-token', 'revoke', json.id], env, workDir);
    expect(revoked).toEqual({ code: 0, stdout: `Revoked registration token ${json.id}.\n`, stderr: '' });

    const help = await runCli(['registration-token', '--help'], baseEnv(), workDir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/registration-token create/);
    expect(help.stdout).toMatch(/registration-token revoke/);
  });
});
