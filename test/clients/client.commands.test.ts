/**
 * The client commands that go through the admin API of the client service: `client rotate-secret`,
 * and the audit trail the command line leaves (actor: the system, labelled `cli`).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection } from 'mongoose';

import { AUDIT_COLLECTION, createAuditService } from '../../src/audit/audit.service.js';
import { clientCreate, clientDelete, clientList, clientRotateSecret } from '../../src/cli/client.commands.js';
import type { ClientJson, RotatedSecretJson } from '../../src/cli/client.commands.js';
import type { CommandFunction } from '../../src/cli/command.js';
import { CLI_AUTHORITY } from '../../src/cli/command.js';
import { MANAGEMENT_SCOPES, fullAuthority } from '../../src/clients/admin-authority.js';
import type { ServiceDeps } from '../../src/deps.js';
import { dropCliDatabase, openCliDatabase, quietLogger, runCommand } from '../support/cli.js';

describe('client commands and the client service', () => {
  let connection: Connection;
  let services: ServiceDeps;

  const run = (command: CommandFunction, args: string[]) => runCommand(command, args, services);

  async function createConfidential(name: string): Promise<ClientJson> {
    const created = await run(clientCreate, ['--name', name, '--redirect-uri', 'https://app.example.com/cb', '--json']);
    expect(created.code).toBe(0);
    return JSON.parse(created.stdout) as ClientJson;
  }

  beforeAll(async () => {
    ({ connection, services } = await openCliDatabase('client_cli', { CLIENT_SECRET_GRACE_PERIOD: '3600' }));
  });

  afterAll(() => dropCliDatabase(connection));

  describe('client rotate-secret', () => {
    it('--json prints the new secret and when the old one stops working; both work until then', async () => {
      const client = await createConfidential('Rotated');
      const before = Date.now();
      const result = await run(clientRotateSecret, [client.client_id, '--json']);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      const rotated = JSON.parse(result.stdout) as RotatedSecretJson;
      expect(Object.keys(rotated)).toEqual(['client_id', 'client_secret', 'previous_secret_expires_at']);
      expect(rotated.client_id).toBe(client.client_id);
      expect(rotated.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(rotated.client_secret).not.toBe(client.client_secret);
      const until = Date.parse(rotated.previous_secret_expires_at);
      expect(until).toBeGreaterThanOrEqual(before + 3_600_000);
      expect(until).toBeLessThanOrEqual(Date.now() + 3_600_000);

      expect((await services.clients.find(client.client_id))?.client_secret).toBe(rotated.client_secret);
      expect(await services.clients.previousSecret(client.client_id)).toBe(client.client_secret);
    });

    it('prints the secret once as text, saying it will not be shown again', async () => {
      const client = await createConfidential('Rotated as text');
      const result = await run(clientRotateSecret, [client.client_id]);
      expect(result.code).toBe(0);
      const secret = /client_secret:\s+(\S+)/.exec(result.stdout)?.[1];
      expect((await services.clients.find(client.client_id))?.client_secret).toBe(secret);
      expect(result.stdout).toMatch(/previous_secret_expires_at:\s+\d{4}-\d\d-\d\dT/);
      expect(result.stdout).toMatch(/will not be shown again/);
    });

    it('refuses an unknown client and a public one (exit 1, one line on stderr)', async () => {
      const unknown = await run(clientRotateSecret, ['no-such-client']);
      expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'error: no client with id "no-such-client"\n' });

      const created = await run(clientCreate, ['--name', 'SPA', '--public', '--redirect-uri', 'https://spa.example.com/cb', '--json']);
      const spa = JSON.parse(created.stdout) as ClientJson;
      const refused = await run(clientRotateSecret, [spa.client_id]);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(/^error: client ".+" authenticates with none and has no secret to rotate\n$/);
    });

    it('needs exactly one client id (exit 2, usage on stderr)', async () => {
      for (const args of [[], ['a', 'b'], ['a', '--force']]) {
        const result = await run(clientRotateSecret, args);
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(/Usage: npm run cli -- client rotate-secret CLIENT_ID/);
      }
    });
  });

  it('list --json shows every client', async () => {
    const names = Array.from({ length: 3 }, (_, i) => `Listed ${i}`);
    for (const name of names) await createConfidential(name);
    const listed = await run(clientList, ['--json']);
    const clients = JSON.parse(listed.stdout) as ClientJson[];
    expect(clients.length).toBe((await services.clients.list()).total);
    expect(clients.map((c) => c.client_name)).toEqual(expect.arrayContaining(names));
  });

  it('acts with full authority: rotates the secret of and deletes a client with every management API scope and first-party status', async () => {
    // Made as an administrator would (the command line has no option for scopes).
    const strong = await services.clients.create(
      { name: 'Strong service', grantTypes: ['client_credentials'], redirectUris: [], scopes: [...MANAGEMENT_SCOPES], firstParty: true },
      fullAuthority({ type: 'system', label: 'test setup' }),
    );
    const rotated = await run(clientRotateSecret, [strong.clientId, '--json']);
    expect(rotated).toMatchObject({ code: 0, stderr: '' });
    expect((await services.clients.find(strong.clientId))?.client_secret).toBe((JSON.parse(rotated.stdout) as RotatedSecretJson).client_secret);
    expect(await run(clientDelete, [strong.clientId])).toMatchObject({ code: 0, stderr: '' });
    expect(await services.clients.get(strong.clientId)).toBeUndefined();
    // The command line's power is what it says it has: the service without an authority refuses.
    const again = await services.clients.create(
      { name: 'Strong again', grantTypes: ['client_credentials'], redirectUris: [], scopes: ['admin:users:write'] },
      CLI_AUTHORITY,
    );
    await expect(services.clients.remove(again.clientId)).rejects.toMatchObject({ status: 403, code: 'client.scope_not_held' });
  });

  it('what the command line changes is audited as the system, labelled cli, without secrets', async () => {
    const client = await createConfidential('Audited by CLI');
    const rotated = JSON.parse((await run(clientRotateSecret, [client.client_id, '--json'])).stdout) as RotatedSecretJson;
    expect((await run(clientDelete, [client.client_id])).code).toBe(0);

    const db = connection.db;
    if (!db) throw new Error('no database');
    const audit = createAuditService({ db, logger: quietLogger(), retentionDays: 1 });
    const { events } = await audit.list({ target: client.client_id }, { limit: 10 });
    expect(events.map((e) => e.action).sort()).toEqual(['client.created', 'client.deleted', 'client.secret_rotated']);
    for (const event of events) expect(event.actor).toEqual({ type: 'system', label: 'cli' });

    const raw = JSON.stringify(await db.collection(AUDIT_COLLECTION).find({}).toArray());
    expect(raw).not.toContain(client.client_secret);
    expect(raw).not.toContain(rotated.client_secret);
  });
});
