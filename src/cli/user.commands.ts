import type { Role } from '../accounts/account.model.js';
import type { AccountView } from '../accounts/account.service.js';
import type { UserAdminView } from '../accounts/user-admin.service.js';
import type { CliCommand, CommandContext } from './command.js';
import { CLI_AUTHORITY, EXIT_OK, UsageError, listCommand, parseCommandArgs, singlePositional, toCommandFunction, writeFailure, writeJson } from './command.js';

const createUsage = `Usage: npm run cli -- user create --email EMAIL --password PASSWORD [--name NAME] [--admin] [--json]

Creates a user who signs in with this email and password.

Options:
  --email EMAIL         sign-in email, stored lower-cased (required)
  --password PASSWORD   required; never printed. PASSWORD_MIN_LENGTH (default 12) to 128
                        characters, not a common or leaked password, not built from the
                        email, the name or the product name
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
    const input = { email, password, ...(name !== undefined ? { name } : {}), roles };
    const json = values.json ?? false;

    return async ({ services, out }) => {
      // The service validates email, password (the password policy: a refusal prints its reason
      // and exits 1, nothing stored) and name (its messages never contain the password) and records the creation and the admin role in the audit log, with the CLI as the actor.
      const account = await services.userAdmin.create(input, CLI_AUTHORITY);
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

export const userListCommand = listCommand<AccountView>({
  name: 'user list',
  summary: 'list users',
  usage: listUsage,
  load: (services) => services.accounts.list(),
  toJson,
  empty: 'No users.',
  columns: ['ID', 'EMAIL', 'ROLES', 'STATUS', 'NAME'],
  row: (a) => [a.id, a.email, a.roles.join(',') || '-', a.disabled ? 'disabled' : 'active', a.name ?? ''],
});

export const userCreate = toCommandFunction(userCreateCommand);
export const userList = toCommandFunction(userListCommand);

// ---------------------------------------------------------------------------
// Managing one user by email: disable, enable, reset-mfa, delete (src/accounts/user-admin.service.ts)

interface UserAdminJson extends UserJson {
  password_reset_required: boolean;
  sign_in_methods: string[];
  mfa: { totp: boolean; recovery_codes_left: number };
}

function toAdminJson(user: UserAdminView): UserAdminJson {
  return {
    ...toJson(user),
    password_reset_required: user.passwordResetRequired,
    sign_in_methods: user.signInMethods,
    mfa: { totp: user.mfa.totp, recovery_codes_left: user.mfa.recoveryCodesLeft },
  };
}

function userActionUsage(action: string, description: string): string {
  return `Usage: npm run cli -- user ${action} EMAIL [--json]

${description}

Options:
  --json       print one JSON object instead of text
  -h, --help   show this help
`;
}

/** `user <action> EMAIL [--json]`: finds the account by email, then runs `act` on it. */
function userActionCommand(
  action: string,
  summary: string,
  description: string,
  act: (ctx: CommandContext, account: AccountView, json: boolean) => Promise<number>,
): CliCommand {
  const usage = userActionUsage(action, description);
  return {
    name: `user ${action}`,
    summary,
    usage,
    prepare(args) {
      const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' } }, { allowPositionals: true });
      if (values.help) return 'help';
      const email = singlePositional(positionals, 'EMAIL');
      const json = values.json ?? false;

      return async (ctx) => {
        const account = await ctx.services.accounts.findByEmail(email);
        if (!account) return writeFailure(ctx.err, `no user with email "${email}"`);
        return act(ctx, account, json);
      };
    },
  };
}

export const userDisableCommand = userActionCommand(
  'disable',
  'disable a user: no sign-in, sessions and tokens revoked',
  'Disables the user: they can no longer sign in, and their sessions, grants and tokens are\nrevoked now. `user enable` lets them sign in again (revoked tokens stay revoked).',
  async ({ services, out }, account, json) => {
    const user = await services.userAdmin.setDisabled(account.id, true, CLI_AUTHORITY);
    if (json) writeJson(out, toAdminJson(user));
    else out.write(`Disabled user ${user.email} (id ${user.id}); their sessions and tokens are revoked.\n`);
    return EXIT_OK;
  },
);

export const userEnableCommand = userActionCommand(
  'enable',
  'enable a disabled user',
  'Enables a disabled user: they can sign in again.',
  async ({ services, out }, account, json) => {
    const user = await services.userAdmin.setDisabled(account.id, false, CLI_AUTHORITY);
    if (json) writeJson(out, toAdminJson(user));
    else out.write(`Enabled user ${user.email} (id ${user.id}).\n`);
    return EXIT_OK;
  },
);

export const userResetMfaCommand = userActionCommand(
  'reset-mfa',
  "remove a user's authenticator app and recovery codes",
  "Removes the user's authenticator app (TOTP) and recovery codes, for someone who lost them.\nWhere a second factor is required, they will set up a new one at their next sign-in.",
  async ({ services, out }, account, json) => {
    const hadTotp = account.totpEnabled;
    const user = await services.userAdmin.resetMfa(account.id, CLI_AUTHORITY);
    if (json) writeJson(out, toAdminJson(user));
    else if (hadTotp) out.write(`Removed the authenticator app and recovery codes of ${user.email} (id ${user.id}).\n`);
    else out.write(`${user.email} (id ${user.id}) had no authenticator app; nothing to remove.\n`);
    return EXIT_OK;
  },
);

export const userDeleteCommand = userActionCommand(
  'delete',
  'delete a user and revoke everything issued to them',
  'Deletes the user for good, with their sessions, grants, tokens and codes. This cannot be undone;\n`user disable` keeps the account.',
  async ({ services, out, err }, account, json) => {
    if (!(await services.userAdmin.delete(account.id, CLI_AUTHORITY))) {
      return writeFailure(err, `no user with email "${account.email}"`);
    }
    if (json) writeJson(out, { deleted: true, id: account.id, email: account.email });
    else out.write(`Deleted user ${account.email} (id ${account.id}).\n`);
    return EXIT_OK;
  },
);

export const userDisable = toCommandFunction(userDisableCommand);
export const userEnable = toCommandFunction(userEnableCommand);
export const userResetMfa = toCommandFunction(userResetMfaCommand);
export const userDelete = toCommandFunction(userDeleteCommand);
