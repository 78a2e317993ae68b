import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { Connection } from 'mongoose';

import type { CommandFunction } from '../../src/cli/command.js';
import type { SigningKeyJson } from '../../src/cli/keys.commands.js';
import { keysList, keysRetire, keysRotate } from '../../src/cli/keys.commands.js';
import type { Core } from '../../src/core/core.js';
import { SIGNING_KEYS_COLLECTION } from '../../src/oidc/keys.js';
import { createCliServices, createCliWorkspace, dropCliDatabase, openCliDatabase, runCli, runCommand } from '../support/cli.js';
import type { CliWorkspace } from '../support/cli.js';

describe('keys commands, in process', () => {
  let connection: Connection;
  let services: Core;
  const run = (command: CommandFunction, args: string[], on: Core = services) => runCommand(command, args, on);
  const listed = async (on: Core = services) => JSON.parse((await run(keysList, ['--json'], on)).stdout) as SigningKeyJson[];
  const stored = () => connection.db!.collection(SIGNING_KEYS_COLLECTION).countDocuments();

  beforeAll(async () => {
    ({ connection, services } = await openCliDatabase('cli_keys'));
  });

  afterAll(async () => {
    await services?.close();
    await dropCliDatabase(connection);
  });

  it('before the server first started there is nothing to list or rotate', async () => {
    expect(await run(keysList, [])).toEqual({ code: 0, stdout: 'No signing keys yet: the server creates them when it first starts.\n', stderr: '' });
    expect(await run(keysList, ['--json'])).toMatchObject({ code: 0, stdout: '[]\n' });
    expect(await run(keysRotate, [])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: there is no active RS256 key to rotate yet: the server creates the first keys when it first starts\n',
    });
    expect(await stored()).toBe(0);
  });

  it('list shows one active key per algorithm; rotate adds pending keys; a second rotation is refused', async () => {
    // What the server does at its first start.
    await services.signingKeys.ensureInitialKeys();
    const table = await run(keysList, []);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^KID\s+ALG\s+STATE\s+PUBLISHED\s+ACTIVATED\s+RETIRE_AFTER\s+RETIRED$/m);
    const initial = await listed();
    expect(initial.map((k) => [k.alg, k.state, k.retire_after])).toEqual([
      ['RS256', 'active', null],
      ['ES256', 'active', null],
    ]);
    for (const key of initial) expect(table.stdout).toMatch(new RegExp(`^${key.kid}\\s+${key.alg}\\s+active\\s+\\S+\\s+\\S+\\s+-\\s+-$`, 'm'));

    const rotated = await run(keysRotate, ['--alg', 'rs256']);
    expect(rotated).toMatchObject({ code: 0, stderr: '' });
    const kid = /^Rotated in RS256 key (\S+)\.$/m.exec(rotated.stdout)?.[1] ?? '';
    const after = await listed();
    const pending = after.find((k) => k.kid === kid);
    expect(pending).toMatchObject({ alg: 'RS256', state: 'pending', retired_at: null });
    // Published now, signing an hour later (KEY_PREPUBLISH_SECONDS' default).
    expect(Date.parse(pending!.activated_at) - Date.parse(pending!.published_at)).toBe(60 * 60 * 1000);
    expect(rotated.stdout).toContain(`signs from: ${pending!.activated_at}`);
    const rsOld = initial[0]!;
    const retireAfter = after.find((k) => k.kid === rsOld.kid)?.retire_after;
    expect(retireAfter).toBeTruthy();
    expect(rotated.stdout).toContain(`replaces:   ${rsOld.kid}, published until ${retireAfter}`);
    expect(rotated.stdout).toContain('no restart is needed');
    // The old key still signs until the new one activates.
    expect(after.find((k) => k.kid === rsOld.kid)?.state).toBe('active');

    expect(await run(keysRotate, ['--alg', 'RS256'])).toEqual({
      code: 1,
      stdout: '',
      stderr: `error: a new RS256 key (${kid}) is already waiting to activate at ${pending!.activated_at}; retire it first to rotate again\n`,
    });
    // A refused `all` rotation writes nothing, not even for the algorithm that could rotate.
    const count = await stored();
    expect((await run(keysRotate, [])).code).toBe(1);
    expect(await stored()).toBe(count);

    // Retiring the pending key cancels the rotation (an hour before activation: not needed yet).
    expect(await run(keysRetire, [kid])).toEqual({ code: 0, stdout: `Retired RS256 key ${kid}: it leaves the JWKS on every node within seconds.\n`, stderr: '' });
    expect((await listed()).find((k) => k.kid === kid)).toMatchObject({ state: 'retired' });
    expect((await listed()).find((k) => k.kid === rsOld.kid)).toMatchObject({ state: 'active', retire_after: null });
  });

  it('retire refuses the active key, and a superseded key still needed unless --force', async () => {
    // KEY_PREPUBLISH_SECONDS=0: the new key signs at once, and the old one becomes published-only.
    const immediate = createCliServices(connection, { KEY_PREPUBLISH_SECONDS: '0' });
    try {
      const before = (await listed()).filter((k) => k.alg === 'ES256' && k.state === 'active');
      expect(before).toHaveLength(1);
      const old = before[0]!;
      const rotated = await run(keysRotate, ['--alg', 'ES256', '--json'], immediate);
      expect(rotated.code).toBe(0);
      const [created] = JSON.parse(rotated.stdout) as SigningKeyJson[];
      expect(created).toMatchObject({ alg: 'ES256', state: 'active' });
      const superseded = (await listed()).find((k) => k.kid === old.kid);
      expect(superseded).toMatchObject({ state: 'published-only' });

      expect(await run(keysRetire, [created!.kid])).toMatchObject({ code: 1, stdout: '' });
      expect((await run(keysRetire, [created!.kid, '--force'])).stderr).toBe(
        `error: signing key "${created!.kid}" is the active ES256 key: it signs every new token, so it cannot be retired. Rotate first (keys rotate --alg ES256), then retire it once it is no longer needed.\n`,
      );

      expect(await run(keysRetire, [old.kid])).toEqual({
        code: 1,
        stdout: '',
        stderr: `error: signing key "${old.kid}" is still needed: tokens it signed may be live until ${superseded!.retire_after}. Wait, or retire it anyway with --force.\n`,
      });
      expect((await listed()).find((k) => k.kid === old.kid)?.state).toBe('published-only');

      expect(await run(keysRetire, [old.kid, '--force'])).toEqual({
        code: 0,
        stdout: `Retired ES256 key ${old.kid}: it leaves the JWKS on every node within seconds.\n`,
        stderr: `warning: ${old.kid} was still needed; tokens it signed no longer verify\n`,
      });
      const row = await connection.db!.collection(SIGNING_KEYS_COLLECTION).findOne({ _id: old.kid as never });
      expect(row?.retiredAt).toBeInstanceOf(Date);
      expect(row).not.toHaveProperty('sealedJwk');
      expect(await run(keysRetire, [old.kid, '--force'])).toEqual({ code: 1, stdout: '', stderr: `error: signing key "${old.kid}" is already retired\n` });

      // Audited as the command line.
      await services.audit.flush();
      const events = await connection.db!.collection('audit_events').find({ 'target.id': old.kid }).sort({ _id: 1 }).toArray();
      expect(events.map((e) => [e.action, e.outcome, e.reason ?? null])).toEqual([
        ['signing_key.retired', 'failure', 'still_needed'],
        ['signing_key.retired', 'success', null],
      ]);
      expect(events[1]).toMatchObject({ actor: { type: 'system', label: 'cli' }, target: { type: 'signing_key', label: 'ES256' }, details: { forced: true, previousState: 'published-only' } });
      const rotation = await connection.db!.collection('audit_events').findOne({ action: 'signing_key.rotated', 'target.id': created!.kid });
      expect(rotation).toMatchObject({ outcome: 'success', details: { alg: 'ES256', supersedes: old.kid } });
    } finally {
      await immediate.close();
    }
  });

  it('unknown kids and bad command lines are refused with a clear message and a non-zero exit code', async () => {
    expect(await run(keysRetire, ['no-such-kid'])).toEqual({ code: 1, stdout: '', stderr: 'error: no signing key with kid "no-such-kid" (see `keys list`)\n' });
    const noKid = await run(keysRetire, []);
    expect(noKid).toMatchObject({ code: 2, stdout: '' });
    expect(noKid.stderr).toMatch(/^error: KID is required\n\nUsage: npm run cli -- keys retire KID \[--force\]/);
    expect((await run(keysRetire, ['a', 'b'])).stderr).toMatch(/^error: unexpected argument 'b'/);
    const badAlg = await run(keysRotate, ['--alg', 'HS256']);
    expect(badAlg).toMatchObject({ code: 2, stdout: '' });
    expect(badAlg.stderr).toMatch(/^error: --alg must be one of RS256, ES256 or all\n/);
    expect((await run(keysList, ['--all'])).code).toBe(2);
    expect(await run(keysRotate, ['--help'])).toMatchObject({ code: 0, stdout: expect.stringContaining('KEY_PREPUBLISH_SECONDS') });
  });
});

describe('keys commands through `npm run cli`', () => {
  let workspace: CliWorkspace;

  beforeAll(async () => {
    workspace = await createCliWorkspace('cli_keys_spawned');
  });

  afterAll(async () => {
    await workspace?.remove();
  });

  it('lists, and refuses an unknown kid with exit code 1', async () => {
    const help = await runCli(['keys', '--help'], workspace.env, workspace.workDir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/keys list\s+list the signing keys/);
    expect(help.stdout).toMatch(/keys rotate\s+add a new signing key/);
    expect(help.stdout).toMatch(/keys retire\s+retire a signing key/);
    const retire = await runCli(['keys', 'retire', 'no-such-kid'], workspace.env, workspace.workDir);
    expect(retire).toMatchObject({ code: 1, stdout: '' });
    expect(retire.stderr).toContain('error: no signing key with kid "no-such-kid" (see `keys list`)');
  });
});
