import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { Connection } from 'mongoose';

import type { CommandFunction } from '../../src/cli/command.js';
import type { RegistrationTokenJson } from '../../src/cli/registration-token.commands.js';
import {
  registrationTokenCreate,
  registrationTokenList,
  registrationTokenRevoke,
} from '../../src/cli/registration-token.commands.js';
import { registrationTokenId } from '../../src/clients/registration-token.service.js';
import type { ServiceDeps } from '../../src/deps.js';
import { collectionName } from '../../src/oidc/mongo-adapter.js';
import { baseEnv, createCliWorkspace, dropCliDatabase, openCliDatabase, runCli, runCommand } from '../support/cli.js';
import type { CliWorkspace } from '../support/cli.js';

type CreatedJson = RegistrationTokenJson & { token: string };

describe('registration-token commands, in process', () => {
  let connection: Connection;
  let services: ServiceDeps;
  const run = (command: CommandFunction, args: string[]) => runCommand(command, args, services);

  beforeAll(async () => {
    ({ connection, services } = await openCliDatabase('cli_regtoken'));
  });

  afterAll(() => dropCliDatabase(connection));

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

describe('npm run cli -- registration-token, as a child process', () => {
  let workspace: CliWorkspace;
  let env: NodeJS.ProcessEnv;
  let workDir: string;

  beforeAll(async () => {
    workspace = await createCliWorkspace('cli_regtoken_spawn');
    ({ env, workDir } = workspace);
  });

  afterAll(() => workspace?.remove());

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
