import type { Role } from '../accounts/account.model.js';
import type { AccountView } from '../accounts/account.service.js';
import { PASSWORD_MIN_LENGTH } from '../accounts/password.js';
import type { CliCommand } from './command.js';
import { EXIT_OK, UsageError, formatTable, parseCommandArgs, toCommandFunction, writeJson } from './command.js';

const createUsage = `Usage: npm run cli -- user create --email EMAIL --password PASSWORD [--name NAME] [--admin] [--json]

Creates a user who signs in with this email and password.

Options:
  --email EMAIL         sign-in email, stored lower-cased (required)
  --password PASSWORD   at least ${PASSWORD_MIN_LENGTH} characters (required; never printed)
  --name NAME           display name (the \`name\` claim)
  --admin               give the admin role
  --json                print one JSON object instead of text
  -h, --help            show this help

NOTE: a password on the command line is visible to other local users (ps) and lands in
your shell history; change it after the first sign-in.
`;

const listUsage = `Usage: npm run cli -- user list [--json]

Lists users. Password hashes and MFA secrets are never shown.

Options:
  --json       print a JSON array instead of text
  -h, --help   show this help
`;

interface UserJson {
  id: string;
  email: string;
  name: string | null;
  roles: string[];
  email_verified: boolean;
  disabled: boolean;
  created_at: string;
}

function toJson(account: AccountView): UserJson {
  return {
    id: account.id,
    email: account.email,
    name: account.name ?? null,
    roles: account.roles,
    email_verified: account.emailVerified,
    disabled: account.disabled,
    created_at: account.createdAt.toISOString(),
  };
}

export const userCreateCommand: CliCommand = {
  name: 'user create',
  summary: 'create a user (--admin for an administrator)',
  usage: createUsage,
  prepare(args) {
    const { values } = parseCommandArgs(args, {
      email: { type: 'string' },
      password: { type: 'string' },
      name: { type: 'string' },
      admin: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (values.help) return 'help';
    const { email, password, name } = values;
    if (email === undefined) throw new UsageError('--email is required');
    if (password === undefined) throw new UsageError('--password is required');
    const roles: Role[] = values.admin ? ['admin'] : [];
    const input = { email, password, name, roles };
    const json = values.json ?? false;

    return async ({ services, out }) => {
      // The service validates email, password and name; its messages never contain the password.
      const account = await services.accounts.create(input);
      if (json) {
        writeJson(out, toJson(account));
      } else {
        const roles = account.roles.length > 0 ? account.roles.join(', ') : 'none';
        out.write(`Created user ${account.email} (id ${account.id}, roles: ${roles}).\n`);
      }
      return EXIT_OK;
    };
  },
};

export const userListCommand: CliCommand = {
  name: 'user list',
  summary: 'list users',
  usage: listUsage,
  prepare(args) {
    const { values } = parseCommandArgs(args, { json: { type: 'boolean' } });
    if (values.help) return 'help';
    const json = values.json ?? false;

    return async ({ services, out }) => {
      const accounts = await services.accounts.list();
      if (json) {
        writeJson(out, accounts.map(toJson));
      } else if (accounts.length === 0) {
        out.write('No users.\n');
      } else {
        out.write(
          formatTable(
            ['ID', 'EMAIL', 'ROLES', 'STATUS', 'NAME'],
            accounts.map((a) => [a.id, a.email, a.roles.join(',') || '-', a.disabled ? 'disabled' : 'active', a.name ?? '']),
          ),
        );
      }
      return EXIT_OK;
    };
  },
};

export const userCreate = toCommandFunction(userCreateCommand);
export const userList = toCommandFunction(userListCommand);
