import type { InvitationView } from '../invitations/invitation.service.js';
import { DEFAULT_INVITATION_DAYS, MAX_INVITATION_DAYS, MAX_INVITATION_USES } from '../invitations/invitation.service.js';
import type { CliCommand } from './command.js';
import { CLI_AUTHORITY, EXIT_OK, UsageError, listCommand, parseCommandArgs, singlePositional, toCommandFunction, writeFailure, writeJson } from './command.js';

const createUsage = `Usage: npm run cli -- invite create [--email ADDRESS] [--uses N] [--days D] [--send] [--json]

Creates an invitation to sign up (used when SIGN_UP=invite) and prints its link once: only
its id is ever shown again.

Options:
  --email ADDRESS   only this address may sign up with it; default: anyone with the link
  --uses N          how many accounts it may create (1 to ${MAX_INVITATION_USES}); default: 1
  --days D          days until it expires (1 to ${MAX_INVITATION_DAYS}); default: ${DEFAULT_INVITATION_DAYS}
  --send            mail the link to --email (needs SMTP settings outside development)
  --json            print one JSON object instead of text
  -h, --help        show this help

With --json through npm, use \`npm run --silent cli -- …\`: npm prints a banner on stdout.
`;

const listUsage = `Usage: npm run cli -- invite list [--json]

Lists invitations by id (never their links), with their uses and state (pending, used,
expired, revoked). Ended invitations stay listed for 30 days.

Options:
  --json       print a JSON array instead of text
  -h, --help   show this help
`;

const revokeUsage = `Usage: npm run cli -- invite revoke ID

Revokes an invitation (ID as \`invite list\` shows it): its link stops working. Accounts
created with it stay. Exits with code 1 if there is no such invitation or it was already
revoked.

Options:
  -h, --help   show this help
`;

/** An invitation as printed by `--json`. */
export interface InvitationJson {
  id: string;
  email: string | null;
  created_at: string;
  expires_at: string;
  max_uses: number;
  uses_count: number;
  revoked_at: string | null;
  state: InvitationView['state'];
}

function toJson(view: InvitationView): InvitationJson {
  return {
    id: view.id,
    email: view.email ?? null,
    created_at: view.createdAt.toISOString(),
    expires_at: view.expiresAt.toISOString(),
    max_uses: view.maxUses,
    uses_count: view.usesCount,
    revoked_at: view.revokedAt?.toISOString() ?? null,
    state: view.state,
  };
}

/** A whole number from a command-line value, or a usage error naming the option. */
function integerOption(value: string | undefined, option: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${option} must be a whole number`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${option} must be between ${min} and ${max}`);
  return n;
}

export const invitationCreateCommand: CliCommand = {
  name: 'invite create',
  summary: 'create an invitation to sign up (prints its link once)',
  usage: createUsage,
  prepare(args) {
    const { values } = parseCommandArgs(args, {
      email: { type: 'string' },
      uses: { type: 'string' },
      days: { type: 'string' },
      send: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (values.help) return 'help';
    const maxUses = integerOption(values.uses, '--uses', 1, MAX_INVITATION_USES);
    const expiresInDays = integerOption(values.days, '--days', 1, MAX_INVITATION_DAYS);
    const email = values.email;
    const sendEmail = values.send ?? false;
    if (sendEmail && email === undefined) throw new UsageError('--send needs --email');
    const json = values.json ?? false;

    return async ({ services, out, err }) => {
      const { link, view, mailed } = await services.invitations.create({ email, maxUses, expiresInDays, sendEmail }, CLI_AUTHORITY);
      if (sendEmail && !mailed) err.write('warning: the invitation mail could not be sent; hand the link over another way\n');
      if (json) {
        const { id, ...rest } = toJson(view);
        writeJson(out, { id, link, mailed, ...rest });
        return EXIT_OK;
      }
      out.write(
        [
          `Created invitation ${view.id}.`,
          `  link:        ${link}`,
          `  for:         ${view.email ?? 'anyone with the link'}`,
          `  expires_at:  ${view.expiresAt.toISOString()}`,
          `  uses:        ${view.maxUses}`,
          ...(sendEmail ? [`  mailed:      ${mailed ? 'yes' : 'no'}`] : []),
          '',
          'The link will not be shown again: hand it over now.',
          '',
        ].join('\n'),
      );
      return EXIT_OK;
    };
  },
};

export const invitationListCommand = listCommand<InvitationView>({
  name: 'invite list',
  summary: 'list invitations (never shows their links)',
  usage: listUsage,
  load: (services) => services.invitations.list(),
  toJson,
  empty: 'No invitations.',
  columns: ['ID', 'FOR', 'CREATED', 'EXPIRES', 'USES', 'STATE'],
  row: (v) => [v.id, v.email ?? '(anyone)', v.createdAt.toISOString(), v.expiresAt.toISOString(), `${v.usesCount}/${v.maxUses}`, v.state],
});

export const invitationRevokeCommand: CliCommand = {
  name: 'invite revoke',
  summary: 'revoke an invitation',
  usage: revokeUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(args, {}, { allowPositionals: true });
    if (values.help) return 'help';
    const id = singlePositional(positionals, 'ID');

    return async ({ services, out, err }) => {
      if (!(await services.invitations.revoke(id, CLI_AUTHORITY))) {
        return writeFailure(err, `no active invitation with id "${id}"`);
      }
      out.write(`Revoked invitation ${id}.\n`);
      return EXIT_OK;
    };
  },
};

export const invitationCreate = toCommandFunction(invitationCreateCommand);
export const invitationList = toCommandFunction(invitationListCommand);
export const invitationRevoke = toCommandFunction(invitationRevokeCommand);
