import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import mongoose from 'mongoose';
import type { Connection } from 'mongoose';
import { generate } from 'otplib';

import { clientCreate, clientDelete, clientList } from '../../src/cli/client.commands.js';
import type { ClientJson } from '../../src/cli/client.commands.js';
import type { CommandFunction } from '../../src/cli/command.js';
import { userCreate, userDelete, userDisable, userEnable, userList, userResetMfa } from '../../src/cli/user.commands.js';
import { loadConfig } from '../../src/config/config.js';
import { connectDatabase } from '../../src/db/connect.js';
import { findRunningDatabase, provisionDatabase, runningDatabaseFile } from '../../src/db/provision.js';
import type { ProvisionedDatabase } from '../../src/db/provision.js';
import { buildCore } from '../../src/core/core.js';
import type { ServiceDeps } from '../../src/deps.js';
import { baseEnv, createCliServices, createCliWorkspace, dropCliDatabase, openCliDatabase, quietLogger, runCli, runCommand } from '../support/cli.js';
import type { CliWorkspace } from '../support/cli.js';
import { TEST_COOKIE_KEY } from '../support/test-server.js';

/** A first FerretDB build may run in the spawned CLI when the cache is empty. */
const PROVISION_TIMEOUT_MS = 15 * 60_000;

const CLIENT_JSON_KEYS = [
  'client_id',
  'client_name',
  'redirect_uris',
  'post_logout_redirect_uris',
  'token_endpoint_auth_method',
  'require_mfa',
  'skip_pkce',
  'allowed_resources',
];


interface UserJson {
  id: string;
  email: string;
  name: string | null;
  roles: string[];
}

describe('cli commands, in process', () => {
  let connection: Connection;
  let services: ServiceDeps;

  const run = (command: CommandFunction, args: string[]) => runCommand(command, args, services);

  beforeAll(async () => {
    ({ connection, services } = await openCliDatabase('cli'));
    await services.accounts.ensureIndexes();
  });

  afterAll(() => dropCliDatabase(connection));

  describe('client create', () => {
    it('prints the client_id and the secret once, saying it will not be shown again', async () => {
      const result = await run(clientCreate, ['--name', 'Billing', '--redirect-uri', 'https://billing.example.com/cb']);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      const clientId = /client_id:\s+(\S+)/.exec(result.stdout)?.[1];
      const secret = /client_secret:\s+(\S+)/.exec(result.stdout)?.[1];
      expect(clientId).toBeDefined();
      expect(secret).toBeDefined();
      expect(result.stdout).toMatch(/will not be shown again/);
      // The secret printed is the one the provider will check (sealed at rest, opened by find).
      const stored = await services.clients.find(clientId ?? '');
      expect(stored?.client_secret).toBe(secret);
      expect(stored?.token_endpoint_auth_method).toBe('client_secret_basic');
    });

    it('--json prints one JSON object with the secret and nothing else', async () => {
      const result = await run(clientCreate, [
        '--name',
        'Reports',
        '--redirect-uri',
        'https://reports.example.com/cb',
        '--redirect-uri',
        'http://127.0.0.1:8080/cb',
        '--post-logout-redirect-uri',
        'https://reports.example.com/',
        '--json',
      ]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      const client = JSON.parse(result.stdout) as ClientJson;
      expect(Object.keys(client).sort()).toEqual([...CLIENT_JSON_KEYS, 'client_secret'].sort());
      expect(client).toMatchObject({
        client_name: 'Reports',
        redirect_uris: ['https://reports.example.com/cb', 'http://127.0.0.1:8080/cb'],
        post_logout_redirect_uris: ['https://reports.example.com/'],
        token_endpoint_auth_method: 'client_secret_basic',
      });
      expect(client.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it('--public makes a client without a secret, and allows a private-use scheme', async () => {
      const result = await run(clientCreate, [
        '--name',
        'Mobile',
        '--public',
        '--redirect-uri',
        'com.example.mobile:/callback',
        '--json',
      ]);
      expect(result.code).toBe(0);
      const client = JSON.parse(result.stdout) as ClientJson;
      expect(Object.keys(client).sort()).toEqual([...CLIENT_JSON_KEYS].sort());
      expect(client.token_endpoint_auth_method).toBe('none');
      expect(client.require_mfa).toBe(false);
      expect(result.stdout).not.toMatch(/secret/);
      expect((await services.clients.find(client.client_id))?.client_secret).toBeUndefined();
    });

    it('--require-mfa stores require_mfa, which the provider reads as client metadata', async () => {
      const result = await run(clientCreate, ['--name', 'Payroll', '--redirect-uri', 'https://payroll.example.com/cb', '--require-mfa', '--json']);
      expect(result.code).toBe(0);
      const client = JSON.parse(result.stdout) as ClientJson;
      expect(client.require_mfa).toBe(true);
      expect((await services.clients.find(client.client_id))?.require_mfa).toBe(true);
    });

    it('--skip-pkce stores skip_pkce for a confidential client (PKCE may then be left out) and audits it', async () => {
      const result = await run(clientCreate, ['--name', 'Legacy ERP', '--redirect-uri', 'https://erp.example.com/cb', '--skip-pkce', '--json']);
      expect(result.code).toBe(0);
      const client = JSON.parse(result.stdout) as ClientJson;
      expect(client.skip_pkce).toBe(true);
      expect((await services.clients.find(client.client_id))?.skip_pkce).toBe(true);
      const events = await services.audit.list({ action: 'client.created', target: client.client_id }, { limit: 5 });
      const created = events.events.find((e) => e.target?.id === client.client_id);
      expect(created?.details?.changed).toEqual(expect.arrayContaining(['skipPkce']));
    });

    it('--skip-pkce with --public is refused: exit 1, a public client always uses PKCE, nothing stored', async () => {
      const before = (await services.clients.list()).total;
      const result = await run(clientCreate, ['--name', 'Mobile no PKCE', '--public', '--redirect-uri', 'http://127.0.0.1:8080/cb', '--skip-pkce', '--json']);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^error: .*skip PKCE: a public client .* always uses PKCE/);
      expect((await services.clients.list()).total).toBe(before);
    });

    it.each([
      ['http on a non-loopback host', ['--redirect-uri', 'http://app.example.com/cb'], /must use https/],
      ['a fragment', ['--redirect-uri', 'https://app.example.com/cb#frag'], /fragment/],
      ['a relative URI', ['--redirect-uri', '/cb'], /not an absolute URI/],
      ['a private-use scheme for a confidential client', ['--redirect-uri', 'com.example.app:/cb'], /private-use/],
      [
        'a bad post-logout URI',
        ['--redirect-uri', 'https://app.example.com/cb', '--post-logout-redirect-uri', 'http://app.example.com/'],
        /post-logout/,
      ],
    ])('refuses %s: exit 1, the reason on stderr, nothing stored', async (_label, uriArgs, reason) => {
      const before = (await services.clients.list()).total;
      const result = await run(clientCreate, ['--name', 'Refused', ...uriArgs, '--json']);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^error: /);
      expect(result.stderr).toMatch(reason);
      expect(result.stderr).not.toMatch(/Usage:/);
      expect((await services.clients.list()).total).toBe(before);
    });

    it.each([
      ['no --name', ['--redirect-uri', 'https://app.example.com/cb'], /--name is required/],
      ['no --redirect-uri', ['--name', 'App'], /--redirect-uri is required/],
      ['an unknown option', ['--name', 'App', '--redirect-uri', 'https://a.example.com/cb', '--secret', 'x'], /Unknown option '--secret'/],
      ['a value missing', ['--name'], /argument missing/],
      ['a stray argument', ['--name', 'App', '--redirect-uri', 'https://a.example.com/cb', 'extra'], /Unexpected argument 'extra'/],
    ])('%s: usage on stderr, exit 2', async (_label, args, reason) => {
      const before = (await services.clients.list()).total;
      const result = await run(clientCreate, args);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(reason);
      expect(result.stderr).toMatch(/Usage: npm run cli -- client create/);
      expect((await services.clients.list()).total).toBe(before);
    });

    it('--help prints the usage on stdout', async () => {
      const result = await run(clientCreate, ['--help']);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toMatch(/^Usage: npm run cli -- client create/);
      expect(result.stdout).toMatch(/--redirect-uri/);
    });
  });

  describe('client list', () => {
    it('lists clients and never shows a secret, as text or JSON', async () => {
      const created = await run(clientCreate, ['--name', 'Listed', '--redirect-uri', 'https://listed.example.com/cb', '--json']);
      const { client_id: clientId, client_secret: secret } = JSON.parse(created.stdout) as ClientJson;
      expect(secret).toBeDefined();

      const text = await run(clientList, []);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^CLIENT ID\s+TYPE\s+NAME\s+REDIRECT URIS$/m);
      expect(text.stdout).toMatch(new RegExp(`^${clientId}\\s+confidential\\s+Listed\\s+https://listed\\.example\\.com/cb$`, 'm'));
      expect(text.stdout).not.toContain(secret);
      expect(text.stdout).not.toMatch(/secret/i);

      const json = await run(clientList, ['--json']);
      expect(json.code).toBe(0);
      expect(json.stdout).not.toContain(secret);
      const clients = JSON.parse(json.stdout) as (ClientJson & { created_at: string })[];
      const listed = clients.find((c) => c.client_id === clientId);
      expect(listed).toMatchObject({ client_name: 'Listed', token_endpoint_auth_method: 'client_secret_basic' });
      expect(listed).not.toHaveProperty('client_secret');
      expect(Number.isNaN(Date.parse(listed?.created_at ?? ''))).toBe(false);
    });

    it('refuses arguments it does not know', async () => {
      const result = await run(clientList, ['--all']);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/Usage: npm run cli -- client list/);
    });
  });

  describe('client delete', () => {
    it('deletes a client', async () => {
      const created = await run(clientCreate, ['--name', 'Doomed', '--redirect-uri', 'https://doomed.example.com/cb', '--json']);
      const { client_id: clientId } = JSON.parse(created.stdout) as ClientJson;
      const result = await run(clientDelete, [clientId]);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toContain(clientId);
      expect(await services.clients.get(clientId)).toBeUndefined();
    });

    it('takes the id after "--" too, the escape for an id that starts with "-"', async () => {
      const created = await run(clientCreate, ['--name', 'Doomed too', '--redirect-uri', 'https://doomed.example.com/cb', '--json']);
      const { client_id: clientId } = JSON.parse(created.stdout) as ClientJson;
      const result = await run(clientDelete, ['--', clientId]);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(await services.clients.get(clientId)).toBeUndefined();
    });

    it('exits 1 with a clear message for an unknown id', async () => {
      const result = await run(clientDelete, ['no-such-client']);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe('error: no client with id "no-such-client"\n');
    });

    it('needs exactly one id (exit 2)', async () => {
      expect((await run(clientDelete, [])).code).toBe(2);
      expect((await run(clientDelete, ['a', 'b'])).code).toBe(2);
    });
  });

  describe('user create and list', () => {
    const password = 'a long enough passphrase';

    it('creates a user without echoing the password', async () => {
      const result = await run(userCreate, ['--email', 'Grace@Example.com', '--password', password, '--name', 'Grace Hopper']);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(/Created user grace@example\.com \(id \S+, roles: none\)/);
      expect(result.stdout).not.toContain(password);
      const auth = await services.accounts.authenticate('grace@example.com', password);
      expect(auth.ok).toBe(true);
    });

    it('--admin --json gives the admin role and prints one JSON object', async () => {
      const result = await run(userCreate, ['--email', 'root@example.com', '--password', password, '--admin', '--json']);
      expect(result.code).toBe(0);
      expect(result.stdout).not.toContain(password);
      const user = JSON.parse(result.stdout) as UserJson;
      expect(user).toMatchObject({ email: 'root@example.com', roles: ['admin'], name: null });
      expect((await services.accounts.findById(user.id))?.roles).toEqual(['admin']);
      // Creating an administrator is a role change like any other: in the audit log, by the CLI.
      const events = (await connection.db?.collection<{ action: string; actor: { type: string }; details?: { role?: string } }>('audit_events').find({ 'target.id': user.id }).toArray()) ?? [];
      expect(events.map((e) => e.action).sort()).toEqual(['user.created', 'user.role_granted']);
      expect(events.find((e) => e.action === 'user.role_granted')).toMatchObject({ actor: { type: 'system', label: 'cli' }, details: { role: 'admin' } });
    });

    it('refuses a duplicate email (case-insensitive): exit 1, nothing stored', async () => {
      const before = (await services.accounts.list()).length;
      const result = await run(userCreate, ['--email', 'GRACE@example.com', '--password', 'another passphrase']);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe('error: A user with this email address already exists.\n');
      expect(await services.accounts.list()).toHaveLength(before);
    });

    it('refuses a short password without repeating it (exit 1), and a missing one (exit 2)', async () => {
      const short = await run(userCreate, ['--email', 'short@example.com', '--password', 'pw123']);
      expect(short.code).toBe(1);
      expect(short.stderr).toMatch(/password: must be at least 8 characters/);
      expect(short.stderr).not.toContain('pw123');

      const missing = await run(userCreate, ['--email', 'short@example.com']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/--password is required/);
      expect(await services.accounts.findByEmail('short@example.com')).toBeUndefined();
    });

    it('refuses a weak password with the reason (exit 1), storing nothing', async () => {
      const before = (await services.accounts.list()).length;
      const common = await run(userCreate, ['--email', 'weak@example.com', '--password', 'password1234']);
      expect(common.code).toBe(1);
      expect(common.stderr).toMatch(/^error: This password is on lists of common or leaked passwords/);
      expect(common.stderr).not.toContain('password1234');
      const fromEmail = await run(userCreate, ['--email', 'ferdinand@example.com', '--password', 'Ferdinand2024!']);
      expect(fromEmail.code).toBe(1);
      expect(fromEmail.stderr).toMatch(/^error: .*email address/);
      const tooLong = await run(userCreate, ['--email', 'weak@example.com', '--password', 'y'.repeat(129)]);
      expect(tooLong.code).toBe(1);
      expect(tooLong.stderr).toMatch(/at most 128 characters/);
      expect(await services.accounts.findByEmail('weak@example.com')).toBeUndefined();
      expect(await services.accounts.findByEmail('ferdinand@example.com')).toBeUndefined();
      expect(await services.accounts.list()).toHaveLength(before);
    });

    it('lists users as text and JSON, without password hashes', async () => {
      const text = await run(userList, []);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^\S+\s+grace@example\.com\s+-\s+active\s+Grace Hopper$/m);
      expect(text.stdout).toMatch(/^\S+\s+root@example\.com\s+admin\s+active$/m);

      const json = await run(userList, ['--json']);
      expect(json.code).toBe(0);
      expect(json.stdout).not.toMatch(/argon2|hash|password/i);
      const users = JSON.parse(json.stdout) as UserJson[];
      expect(users.map((u) => u.email)).toEqual(expect.arrayContaining(['grace@example.com', 'root@example.com']));
    });
  });

  describe('user disable, enable, reset-mfa and delete', () => {
    const password = 'a long enough passphrase';
    // In the order written: a find without sort follows the storage's order, which PostgreSQL does not keep.
    const auditOf = async (accountId: string) =>
      (await connection.db?.collection<{ action: string; actor: unknown; target?: { id: string } }>('audit_events').find({ 'target.id': accountId }).sort({ _id: 1 }).toArray()) ?? [];

    it('disable and enable by email, audited as done from the command line', async () => {
      const account = await services.accounts.create({ email: 'toggle@example.com', password });
      const disabled = await run(userDisable, ['Toggle@Example.com']);
      expect(disabled).toMatchObject({ code: 0, stderr: '' });
      expect(disabled.stdout).toBe(`Disabled user toggle@example.com (id ${account.id}); their sessions and tokens are revoked.\n`);
      expect((await services.accounts.findById(account.id))?.disabled).toBe(true);
      expect((await services.accounts.authenticate('toggle@example.com', password)).ok).toBe(false);

      const enabled = await run(userEnable, ['toggle@example.com', '--json']);
      expect(enabled).toMatchObject({ code: 0, stderr: '' });
      const user = JSON.parse(enabled.stdout) as UserJson & { disabled: boolean; password_reset_required: boolean; sign_in_methods: string[]; mfa: unknown };
      expect(user).toMatchObject({ id: account.id, email: 'toggle@example.com', disabled: false, password_reset_required: false });
      expect(user.sign_in_methods).toEqual(['password', 'email_code']);
      expect(user.mfa).toEqual({ totp: false, recovery_codes_left: 0 });
      expect(enabled.stdout).not.toMatch(/hash|argon2/i);
      expect((await services.accounts.authenticate('toggle@example.com', password)).ok).toBe(true);

      const events = await auditOf(account.id);
      expect(events.map((e) => e.action)).toEqual(['user.disabled', 'user.enabled']);
      expect(events[0]?.actor).toEqual({ type: 'system', label: 'cli' });
    });

    it('reset-mfa removes an authenticator app, and says when there was none', async () => {
      const account = await services.accounts.create({ email: 'lostphone@example.com', password });
      const none = await run(userResetMfa, ['lostphone@example.com']);
      expect(none).toMatchObject({ code: 0, stderr: '' });
      expect(none.stdout).toMatch(/had no authenticator app; nothing to remove/);

      const enrolment = await services.totp.beginEnrolment(account);
      expect((await services.totp.activate(account.id, await generate({ secret: enrolment.secret }), enrolment.sealed)).ok).toBe(true);
      const removed = await run(userResetMfa, ['lostphone@example.com']);
      expect(removed.code).toBe(0);
      expect(removed.stdout).toMatch(/^Removed the authenticator app and recovery codes of lostphone@example\.com/);
      expect(await services.totp.status(account.id)).toEqual({ enabled: false, recoveryCodesLeft: 0 });
      expect((await auditOf(account.id)).map((e) => e.action)).toEqual(['user.mfa_reset', 'user.mfa_reset']);
    });

    it('acts on administrators too (the command line has the database: full authority)', async () => {
      const account = await services.accounts.create({ email: 'chief@example.com', password, roles: ['admin'] });
      expect((await run(userDisable, ['chief@example.com'])).code).toBe(0);
      expect((await run(userEnable, ['chief@example.com'])).code).toBe(0);
      expect((await run(userResetMfa, ['chief@example.com'])).code).toBe(0);
      expect((await run(userDelete, ['chief@example.com'])).code).toBe(0);
      expect(await services.accounts.findById(account.id)).toBeUndefined();
      const events = await auditOf(account.id);
      expect(events.map((e) => e.action)).toEqual(['user.disabled', 'user.enabled', 'user.mfa_reset', 'user.deleted']);
      for (const event of events) expect(event).toMatchObject({ outcome: 'success', actor: { type: 'system', label: 'cli' } });
    });

    it('delete removes the user; --json prints what was deleted', async () => {
      const account = await services.accounts.create({ email: 'leaving@example.com', password });
      const result = await run(userDelete, ['leaving@example.com', '--json']);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(result.stdout)).toEqual({ deleted: true, id: account.id, email: 'leaving@example.com' });
      expect(await services.accounts.findById(account.id)).toBeUndefined();
      expect((await auditOf(account.id)).map((e) => e.action)).toEqual(['user.deleted']);

      const text = await run(userDelete, ['grace@example.com']);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^Deleted user grace@example\.com \(id \S+\)\.\n$/);
    });

    it.each([
      ['disable', userDisable],
      ['enable', userEnable],
      ['reset-mfa', userResetMfa],
      ['delete', userDelete],
    ] as const)('user %s: an unknown email exits 1; no email or two exit 2; --help shows the usage', async (action, command) => {
      const unknown = await run(command, ['nobody@example.com']);
      expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'error: no user with email "nobody@example.com"\n' });

      for (const args of [[], ['a@example.com', 'b@example.com'], ['a@example.com', '--force']]) {
        const bad = await run(command, args);
        expect(bad.code).toBe(2);
        expect(bad.stdout).toBe('');
        expect(bad.stderr).toContain(`Usage: npm run cli -- user ${action} EMAIL`);
      }

      const help = await run(command, ['--help']);
      expect(help).toMatchObject({ code: 0, stderr: '' });
      expect(help.stdout).toMatch(new RegExp(`^Usage: npm run cli -- user ${action} EMAIL \\[--json\\]`));
    });
  });
});

// ---------------------------------------------------------------------------
// The real command line, as a child process

describe('npm run cli, as a child process', () => {
  let workspace: CliWorkspace;
  let workDir: string;
  let mongoUri: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    workspace = await createCliWorkspace('cli_spawn');
    ({ workDir, mongoUri, env } = workspace);
  });

  afterAll(() => workspace?.remove());

  it('creates a client with --json (stdout is exactly the JSON) and lists it without the secret', async () => {
    const created = await runCli(
      ['client', 'create', '--name', 'Spawned', '--redirect-uri', 'https://spawned.example.com/cb', '--json'],
      env,
      workDir,
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const client = JSON.parse(created.stdout) as ClientJson;
    expect(created.stdout).toBe(`${JSON.stringify(client, null, 2)}\n`);
    expect(Object.keys(client)).toEqual([
      'client_id',
      'client_secret',
      'client_name',
      'redirect_uris',
      'post_logout_redirect_uris',
      'token_endpoint_auth_method',
      'require_mfa',
      'skip_pkce',
      'allowed_resources',
    ]);
    expect(client.skip_pkce).toBe(false);

    // Sealed under ENCRYPTION_KEYS: a server with the same keys opens it.
    const connection = await connectDatabase(mongoUri, quietLogger());
    try {
      expect((await createCliServices(connection).clients.find(client.client_id))?.client_secret).toBe(client.client_secret);
    } finally {
      await connection.close();
    }

    const listed = await runCli(['client', 'list', '--json'], env, workDir);
    expect(listed.code).toBe(0);
    expect(listed.stderr).toBe('');
    const clients = JSON.parse(listed.stdout) as ClientJson[];
    expect(clients.map((c) => c.client_id)).toEqual([client.client_id]);
    expect(listed.stdout).not.toContain(client.client_secret);
  });

  it('exits 1 on a refused redirect URI and 2 on a bad command line, with nothing on stdout', async () => {
    const refused = await runCli(['client', 'create', '--name', 'X', '--redirect-uri', 'http://x.example.com/cb'], env, workDir);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(/must use https/);

    const unknown = await runCli(['client', 'rename'], env, workDir);
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toMatch(/unknown command 'client rename'/);

    const none = await runCli([], env, workDir);
    expect(none).toMatchObject({ code: 2, stdout: '' });
    expect(none.stderr).toMatch(/Usage: npm run cli --/);
  });

  it('user disable and delete run through main.ts, and the overview lists them', async () => {
    const overview = await runCli(['user', '--help'], baseEnv(), workDir);
    expect(overview).toMatchObject({ code: 0, stderr: '' });
    for (const action of ['create', 'list', 'disable', 'enable', 'reset-mfa', 'delete']) {
      expect(overview.stdout).toMatch(new RegExp(`^  user ${action} `, 'm'));
    }

    const created = await runCli(['user', 'create', '--email', 'spawned@example.com', '--password', 'a long enough passphrase', '--json'], env, workDir);
    expect(created.code).toBe(0);
    const { id } = JSON.parse(created.stdout) as UserJson;
    const disabled = await runCli(['user', 'disable', 'spawned@example.com', '--json'], env, workDir);
    expect(disabled).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(disabled.stdout)).toMatchObject({ id, disabled: true });
    const deleted = await runCli(['user', 'delete', 'spawned@example.com'], env, workDir);
    expect(deleted).toMatchObject({ code: 0, stderr: '', stdout: `Deleted user spawned@example.com (id ${id}).\n` });
    const again = await runCli(['user', 'delete', 'spawned@example.com'], env, workDir);
    expect(again).toMatchObject({ code: 1, stdout: '' });
    // Five child processes, each a full tsx start: on a busy machine that alone can pass a minute.
  }, 180_000);

  it('--help works without any configuration or database', async () => {
    const help = await runCli(['user', 'create', '--help'], baseEnv(), workDir);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: npm run cli -- user create --email EMAIL --password PASSWORD/);
    expect(existsSync(path.join(workDir, '.data'))).toBe(false);
  });
});

// Without MONGODB_URI the CLI uses the embedded database under DATA_DIR, like `npm start`.
// When tests run against an external MONGODB_URI there may be no local server to start.
const describeEmbedded = process.env.MONGODB_URI?.trim() ? describe.skip : describe;

describeEmbedded('npm run cli on the embedded database', () => {
  let workDir: string;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'cli-embedded-'));
    // Enterable by others: as root, PostgreSQL runs as the user postgres.
    await chmod(workDir, 0o711);
    dataDir = path.join(workDir, 'data');
    // NOTE: an absolute DATA_DIR, as this test process provisions with absolute paths too:
    // provisionDatabase runs the server with cwd = its data folder, so a relative folder
    // name given to the server resolves inside itself (see the report on provision.ts).
    env = { ...baseEnv(), NODE_ENV: 'test', DATA_DIR: dataDir };
  });

  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('shares the database of a running server instead of killing it', async () => {
    // What `npm start` does (src/main.ts), with its DATA_DIR layout.
    const pidFile = path.join(dataDir, 'db.pid');
    const server: ProvisionedDatabase = await provisionDatabase({ dataDir: path.join(dataDir, 'db'), pidFile });
    try {
      const serverPid = Number((await readFile(pidFile, 'utf8')).trim());
      expect(await findRunningDatabase(pidFile)).toBe(server.uri);

      const created = await runCli(
        ['client', 'create', '--name', 'Shared', '--public', '--redirect-uri', 'http://localhost:8080/cb', '--json'],
        env,
        workDir,
      );
      expect(created.code).toBe(0);
      const client = JSON.parse(created.stdout) as ClientJson;

      // Still the same server process, untouched, and it has the client in the `oidc` database.
      expect(Number((await readFile(pidFile, 'utf8')).trim())).toBe(serverPid);
      expect(() => process.kill(serverPid, 0)).not.toThrow();
      const connection = await mongoose
        .createConnection(server.uri, { dbName: 'oidc', serverSelectionTimeoutMS: 3_000 })
        .asPromise();
      try {
        const stored = await connection.db
          ?.collection<{ _id: string; name: string; public: boolean }>('clients')
          .findOne({ _id: client.client_id });
        expect(stored).toMatchObject({ name: 'Shared', public: true });
      } finally {
        await connection.close();
      }
    } finally {
      await server.stop();
    }
    expect(existsSync(pidFile)).toBe(false);
    expect(existsSync(runningDatabaseFile(pidFile))).toBe(false);
  }, PROVISION_TIMEOUT_MS);

  it('starts the embedded database itself when no server runs, and stops it before exiting', async () => {
    const pidFile = path.join(dataDir, 'db.pid');
    const listed = await runCli(['client', 'list', '--json'], env, workDir);
    expect(listed.code).toBe(0);
    // The client made through the server's database above: same files, same database name.
    expect((JSON.parse(listed.stdout) as ClientJson[]).map((c) => c.client_name)).toEqual(['Shared']);
    expect(listed.stderr).toMatch(/starting /);
    expect(existsSync(pidFile)).toBe(false);
    expect(existsSync(runningDatabaseFile(pidFile))).toBe(false);
  }, PROVISION_TIMEOUT_MS);

  it('uses the same development secrets as the server (DATA_DIR/dev-secrets.json)', async () => {
    const created = await runCli(
      ['client', 'create', '--name', 'Sealed', '--redirect-uri', 'https://sealed.example.com/cb', '--json'],
      env,
      workDir,
    );
    expect(created.code).toBe(0);
    const client = JSON.parse(created.stdout) as ClientJson;
    const stored = JSON.parse(await readFile(path.join(dataDir, 'dev-secrets.json'), 'utf8')) as {
      encryptionKeys: { id: string; key: string }[];
    };
    const database = await provisionDatabase({ dataDir: path.join(dataDir, 'db'), pidFile: path.join(dataDir, 'db.pid') });
    const connection = await connectDatabase(database.uri, quietLogger(), { dbName: 'oidc' });
    try {
      const config = loadConfig({
        NODE_ENV: 'test',
        COOKIE_KEYS: TEST_COOKIE_KEY,
        ENCRYPTION_KEYS: stored.encryptionKeys.map((k) => `${k.id}:${k.key}`).join(','),
      });
      const services = buildCore({ config, logger: quietLogger(), connection });
      expect((await services.clients.find(client.client_id))?.client_secret).toBe(client.client_secret);
    } finally {
      await connection.close();
      await database.stop();
    }
  }, PROVISION_TIMEOUT_MS);

  it('findRunningDatabase ignores a record whose process is not a database server', async () => {
    const pidFile = path.join(workDir, 'other.pid');
    // The jest process's parent is alive, but it is not ferretdb or mongod.
    await writeFile(pidFile, `${process.ppid}\n`);
    await writeFile(runningDatabaseFile(pidFile), JSON.stringify({ pid: process.ppid, uri: 'mongodb://127.0.0.1:1/' }));
    expect(await findRunningDatabase(pidFile)).toBeUndefined();
  });
});
