import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { Connection } from 'mongoose';

import type { CommandFunction } from '../../src/cli/command.js';
import type { InvitationJson } from '../../src/cli/invitation.commands.js';
import { invitationCreate, invitationList, invitationRevoke } from '../../src/cli/invitation.commands.js';
import type { ServiceDeps } from '../../src/deps.js';
import { INVITATIONS_COLLECTION } from '../../src/invitations/invitation.service.js';
import { baseEnv, createCliWorkspace, dropCliDatabase, openCliDatabase, runCli, runCommand } from '../support/cli.js';
import type { CliWorkspace } from '../support/cli.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';

type CreatedJson = InvitationJson & { link: string; mailed: boolean };

describe('invite commands, in process', () => {
  let connection: Connection;
  let services: ServiceDeps;
  let smtp: MailServer;
  const run = (command: CommandFunction, args: string[]) => runCommand(command, args, services);
  const stored = () => connection.db!.collection(INVITATIONS_COLLECTION).countDocuments();

  beforeAll(async () => {
    smtp = await startMailServer();
    ({ connection, services } = await openCliDatabase('cli_invite', { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>' }));
  });

  afterAll(async () => {
    await dropCliDatabase(connection);
    await smtp?.close();
  });

  it('create prints the link once with the id, address, expiry and uses; audited as the CLI', async () => {
    const result = await run(invitationCreate, ['--email', 'Cli.Invitee@Example.com', '--uses', '2', '--days', '3']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const id = /Created invitation (\S+)\./.exec(result.stdout)?.[1] ?? '';
    const link = /link:\s+(\S+)/.exec(result.stdout)?.[1] ?? '';
    expect(link).toMatch(/\/sign-up\?invitation=[A-Za-z0-9_-]{43}$/);
    expect(result.stdout).toMatch(/for:\s+cli\.invitee@example\.com$/m);
    expect(result.stdout).toMatch(/uses:\s+2$/m);
    expect(result.stdout).toMatch(/will not be shown again/);
    const view = await services.invitations.get(id);
    expect(view).toMatchObject({ email: 'cli.invitee@example.com', maxUses: 2, state: 'pending', createdBy: { type: 'system', label: 'cli' } });
    expect((view?.expiresAt.getTime() ?? 0) - (view?.createdAt.getTime() ?? 0)).toBe(3 * 24 * 60 * 60 * 1000);
    const token = new URL(link).searchParams.get('invitation') ?? '';
    expect(await services.invitations.check(token, 'cli.invitee@example.com')).toMatchObject({ valid: true, invitationId: id });
    expect(JSON.stringify(await connection.db!.collection(INVITATIONS_COLLECTION).find().toArray())).not.toContain(token);
  });

  it('create --send mails the link through SMTP', async () => {
    const before = smtp.countFor('mailed-by-cli@example.com');
    const result = await run(invitationCreate, ['--email', 'mailed-by-cli@example.com', '--send', '--json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const json = JSON.parse(result.stdout) as CreatedJson;
    expect(json).toMatchObject({ email: 'mailed-by-cli@example.com', mailed: true, max_uses: 1, uses_count: 0, state: 'pending' });
    const mail = await smtp.waitForMail('mailed-by-cli@example.com', { after: before });
    expect(mail.text).toContain(json.link);
  });

  it('create --json, list never shows the link, revoke ends it', async () => {
    const created = await run(invitationCreate, ['--json']);
    expect(created.code).toBe(0);
    const json = JSON.parse(created.stdout) as CreatedJson;
    expect(Object.keys(json)).toEqual(['id', 'link', 'mailed', 'email', 'created_at', 'expires_at', 'max_uses', 'uses_count', 'revoked_at', 'state']);
    expect(json).toMatchObject({ email: null, max_uses: 1, state: 'pending', mailed: false });

    const listed = await run(invitationList, ['--json']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(json.link);
    expect((JSON.parse(listed.stdout) as InvitationJson[])[0]).toMatchObject({ id: json.id, state: 'pending' });
    const table = await run(invitationList, []);
    expect(table.stdout).toMatch(/^ID\s+FOR\s+CREATED\s+EXPIRES\s+USES\s+STATE$/m);
    expect(table.stdout).toMatch(new RegExp(`^${json.id}\\s+\\(anyone\\)\\s+\\S+\\s+\\S+\\s+0/1\\s+pending$`, 'm'));

    expect(await run(invitationRevoke, [json.id])).toMatchObject({ code: 0, stdout: `Revoked invitation ${json.id}.\n` });
    expect(await run(invitationRevoke, [json.id])).toMatchObject({ code: 1, stderr: `error: no active invitation with id "${json.id}"\n` });
    expect((await services.invitations.get(json.id))?.state).toBe('revoked');
    const events = await connection.db!.collection('audit_events').find({ action: 'invitation.revoked', 'target.id': json.id }).toArray();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: 'success', actor: { type: 'system', label: 'cli' } });
  });

  it('refuses bad command lines (exit 2) and bad addresses (exit 1), storing nothing', async () => {
    const before = await stored();
    for (const args of [['--uses', '0'], ['--uses', 'many'], ['--days', '91'], ['--send'], ['--bogus'], ['--email']]) {
      const result = await run(invitationCreate, args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^error: /);
      expect(result.stderr).toContain('Usage: npm run cli -- invite create');
    }
    const bad = await run(invitationCreate, ['--email', 'not-an-address']);
    expect(bad).toMatchObject({ code: 1, stdout: '' });
    expect(bad.stderr).toMatch(/^error: email: /);
    expect((await run(invitationRevoke, [])).code).toBe(2);
    expect(await stored()).toBe(before);
  });
});

describe('invite commands through main.ts', () => {
  let workspace: CliWorkspace;

  beforeAll(async () => {
    workspace = await createCliWorkspace('cli_invite_main');
  });

  afterAll(() => workspace?.remove());

  it('the overview lists them, and create then list run against the database', async () => {
    const overview = await runCli(['invite', '--help'], baseEnv(), workspace.workDir);
    expect(overview).toMatchObject({ code: 0, stderr: '' });
    for (const action of ['create', 'list', 'revoke']) expect(overview.stdout).toMatch(new RegExp(`^  invite ${action} `, 'm'));

    const created = await runCli(['invite', 'create', '--email', 'main@example.com', '--json'], workspace.env, workspace.workDir);
    expect(created.code).toBe(0);
    const json = JSON.parse(created.stdout) as CreatedJson;
    const listed = await runCli(['invite', 'list', '--json'], workspace.env, workspace.workDir);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as InvitationJson[]).map((i) => i.id)).toEqual([json.id]);
  }, 60_000);
});
