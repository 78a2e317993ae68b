import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { Connection } from 'mongoose';

import type { ClientJson } from '../../src/cli/client.commands.js';
import { clientCreate, clientSetResources } from '../../src/cli/client.commands.js';
import type { CommandFunction } from '../../src/cli/command.js';
import type { ApiResourceJson } from '../../src/cli/resource.commands.js';
import { resourceCreate, resourceDelete, resourceList, resourceUpdate } from '../../src/cli/resource.commands.js';
import type { ServiceDeps } from '../../src/deps.js';
import { baseEnv, createCliWorkspace, dropCliDatabase, openCliDatabase, runCli, runCommand } from '../support/cli.js';
import type { CliWorkspace } from '../support/cli.js';

/** `resource list | create | update | delete` and the API resources of `client create` / `client set-resources`. */

describe('resource commands, in process', () => {
  let connection: Connection;
  let services: ServiceDeps;
  const run = (command: CommandFunction, args: string[]) => runCommand(command, args, services);
  const count = async () => (await services.resources.list()).length;

  beforeAll(async () => {
    ({ connection, services } = await openCliDatabase('cli_resources'));
  });

  afterAll(() => dropCliDatabase(connection));

  it('create prints the resource; list shows it; update keeps what is not given; delete ends it; all audited as the cli', async () => {
    const created = await run(resourceCreate, [
      '--identifier', 'https://api.example.com',
      '--name', 'Notes API',
      '--scope', 'notes:read=Read your notes',
      '--scope', 'notes:write=Change your notes',
      '--format', 'jwt',
      '--ttl', '600',
      '--introspection-client', 'notes-backend',
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('Created API resource "Notes API".');
    expect(created.stdout).toMatch(/identifier:\s+https:\/\/api\.example\.com$/m);
    expect(created.stdout).toMatch(/scope:\s+notes:read \(Read your notes\)$/m);
    expect(await services.resources.get('https://api.example.com')).toMatchObject({
      name: 'Notes API',
      tokenFormat: 'jwt',
      accessTokenTtl: 600,
      scopes: [
        { name: 'notes:read', description: 'Read your notes' },
        { name: 'notes:write', description: 'Change your notes' },
      ],
      introspectionClients: ['notes-backend'],
    });

    const listed = await run(resourceList, []);
    expect(listed.stdout).toMatch(/^IDENTIFIER\s+FORMAT\s+TTL\s+SCOPES\s+NAME$/m);
    expect(listed.stdout).toMatch(/^https:\/\/api\.example\.com\s+jwt\s+600\s+notes:read notes:write\s+Notes API$/m);
    const json = JSON.parse((await run(resourceList, ['--json'])).stdout) as ApiResourceJson[];
    expect(json).toHaveLength(1);
    expect(Object.keys(json[0]!)).toEqual(['identifier', 'name', 'scopes', 'token_format', 'access_token_ttl', 'introspection_clients', 'created_at', 'updated_at']);

    const renamed = await run(resourceUpdate, ['https://api.example.com', '--name', 'Notes', '--format', 'opaque', '--json']);
    expect(renamed.code).toBe(0);
    expect(JSON.parse(renamed.stdout)).toMatchObject({
      name: 'Notes',
      token_format: 'opaque',
      access_token_ttl: 600,
      introspection_clients: ['notes-backend'],
      scopes: [{ name: 'notes:read' }, { name: 'notes:write' }],
    });
    const cleared = await run(resourceUpdate, ['https://api.example.com', '--ttl', 'default', '--no-scopes', '--no-introspection-clients', '--json']);
    expect(JSON.parse(cleared.stdout)).toMatchObject({ name: 'Notes', access_token_ttl: null, scopes: [], introspection_clients: [] });

    const deleted = await run(resourceDelete, ['https://api.example.com']);
    expect(deleted).toEqual({ code: 0, stdout: 'Deleted API resource https://api.example.com.\n', stderr: '' });
    expect(await run(resourceDelete, ['https://api.example.com'])).toEqual({ code: 1, stdout: '', stderr: 'error: no API resource "https://api.example.com"\n' });
    expect((await run(resourceUpdate, ['https://api.example.com', '--name', 'X'])).code).toBe(1);
    expect((await run(resourceList, [])).stdout).toBe('No API resources.\n');

    const events = await connection.db!.collection('audit_events').find({ 'target.id': 'https://api.example.com' }).toArray();
    expect(events.map((e) => e.action).sort()).toEqual(['api_resource.created', 'api_resource.deleted', 'api_resource.updated', 'api_resource.updated']);
    expect(events.every((e) => e.actor?.type === 'system' && e.actor?.label === 'cli')).toBe(true);
  });

  it('bad command lines are usage errors (exit 2), refusals exit 1, and nothing is stored', async () => {
    const before = await count();
    for (const args of [
      ['--name', 'No identifier'],
      ['--identifier', 'https://a.example.com'],
      ['--identifier', 'https://a.example.com', '--name', 'X', '--scope', 'no-description'],
      ['--identifier', 'https://a.example.com', '--name', 'X', '--scope', '=nameless'],
      ['--identifier', 'https://a.example.com', '--name', 'X', '--format', 'paseto'],
      ['--identifier', 'https://a.example.com', '--name', 'X', '--ttl', '5'],
      ['--identifier', 'https://a.example.com', '--name', 'X', '--ttl', 'default'],
      ['--identifier', 'https://a.example.com', '--name', 'X', '--what'],
    ]) {
      const result = await run(resourceCreate, args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(result.stderr).toMatch(/^error: /);
    }
    for (const args of [
      ['--identifier', 'not a uri', '--name', 'X'],
      ['--identifier', 'http://localhost:3000/api', '--name', 'Our own origin'],
      ['--identifier', services.config.adminApi.resource, '--name', 'The management API'],
      ['--identifier', 'https://a.example.com', '--name', 'X', '--scope', 'openid=Sign in'],
      ['--identifier', 'https://a.example.com', '--name', 'X\u0000'],
    ]) {
      const result = await run(resourceCreate, args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 1, stdout: '' });
      expect(result.stderr).toMatch(/^error: invalid API resource: /);
    }
    expect(await count()).toBe(before);

    await services.resources.create({ identifier: 'https://kept.example.com', name: 'Kept' });
    const taken = await run(resourceCreate, ['--identifier', 'https://kept.example.com', '--name', 'Again']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/already exists/);
    for (const args of [[], ['a', 'b'], ['https://kept.example.com', '--scope', 'x=y', '--no-scopes'], ['https://kept.example.com', '--ttl', 'soon']]) {
      expect((await run(resourceUpdate, args)).code).toBe(2);
    }
    expect((await run(resourceUpdate, ['https://kept.example.com', '--name', ''])).code).toBe(1);
    expect((await run(resourceDelete, [])).code).toBe(2);
    expect(await services.resources.get('https://kept.example.com')).toMatchObject({ name: 'Kept' });
  });

  it('client create --resource and --default-resource; set-resources replaces them; unregistered ones are refused', async () => {
    await services.resources.create({ identifier: 'https://orders.example.com', name: 'Orders' });
    await services.resources.create({ identifier: 'urn:example:stock', name: 'Stock' });

    const created = await run(clientCreate, [
      '--name', 'Shop',
      '--redirect-uri', 'https://shop.example.com/cb',
      '--resource', 'https://orders.example.com',
      '--resource', 'urn:example:stock',
      '--default-resource', 'https://orders.example.com',
      '--json',
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const client = JSON.parse(created.stdout) as ClientJson;
    expect(client).toMatchObject({
      allowed_resources: ['https://orders.example.com', 'urn:example:stock'],
      default_resource: 'https://orders.example.com',
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: ['https://shop.example.com/cb'],
    });
    expect(client.client_secret).toEqual(expect.any(String));
    // The same client the short input makes, with its resources.
    expect(await services.clients.get(client.client_id)).toMatchObject({ grantTypes: ['authorization_code', 'refresh_token'], applicationType: 'web' });

    const text = await run(clientCreate, ['--name', 'Text', '--redirect-uri', 'https://text.example.com/cb', '--resource', 'urn:example:stock']);
    expect(text.stdout).toMatch(/allowed_resource:\s+urn:example:stock$/m);

    const before = (await services.clients.list({ limit: 200 })).total;
    for (const args of [
      ['--resource', 'https://unknown.example.com'],
      ['--resource', 'https://orders.example.com', '--default-resource', 'https://unknown.example.com'],
      ['--resource', 'https://orders.example.com', '--default-resource', 'urn:example:stock'],
    ]) {
      const refused = await run(clientCreate, ['--name', 'Refused', '--redirect-uri', 'https://r.example.com/cb', ...args]);
      expect({ args, code: refused.code, stdout: refused.stdout }).toEqual({ args, code: 1, stdout: '' });
      expect(refused.stderr).toMatch(/^error: invalid client: (API resources|default API resource): /);
    }
    expect((await services.clients.list({ limit: 200 })).total).toBe(before);

    const set = await run(clientSetResources, [client.client_id, '--resource', 'urn:example:stock', '--json']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ allowed_resources: ['urn:example:stock'] });
    const after = await services.clients.get(client.client_id);
    expect(after).toMatchObject({ name: 'Shop', redirectUris: ['https://shop.example.com/cb'], allowedResources: ['urn:example:stock'], tokenEndpointAuthMethod: 'client_secret_basic' });
    expect(after?.defaultResource).toBeUndefined();

    const refused = await run(clientSetResources, [client.client_id, '--resource', 'https://unknown.example.com']);
    expect(refused.code).toBe(1);
    expect((await services.clients.get(client.client_id))?.allowedResources).toEqual(['urn:example:stock']);
    const none = await run(clientSetResources, [client.client_id]);
    expect(none.stdout).toBe(`Updated client ${client.client_id}: it may get tokens for no API resource.\n`);
    expect((await services.clients.get(client.client_id))?.allowedResources).toEqual([]);
    expect(await run(clientSetResources, ['no-such-client'])).toEqual({ code: 1, stdout: '', stderr: 'error: no client with id "no-such-client"\n' });
    expect((await run(clientSetResources, [])).code).toBe(2);
  });
});

describe('npm run cli -- resource, as a child process', () => {
  let workspace: CliWorkspace;

  beforeAll(async () => {
    workspace = await createCliWorkspace('cli_resources_spawn');
  });

  afterAll(() => workspace?.remove());

  it('create --json and list --json, with nothing but results on stdout; help lists the commands', async () => {
    const { env, workDir } = workspace;
    const created = await runCli(['resource', 'create', '--identifier', 'https://api.example.com', '--name', 'Notes API', '--scope', 'notes:read=Read your notes', '--json'], env, workDir);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ identifier: 'https://api.example.com', token_format: 'jwt', access_token_ttl: null });
    const listed = await runCli(['resource', 'list', '--json'], env, workDir);
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(listed.stdout) as ApiResourceJson[]).map((r) => r.identifier)).toEqual(['https://api.example.com']);

    const help = await runCli(['resource', '--help'], baseEnv(), workDir);
    expect(help.code).toBe(0);
    for (const command of ['create', 'list', 'update', 'delete']) expect(help.stdout).toContain(`resource ${command}`);
  });
});
