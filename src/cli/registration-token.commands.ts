import type { RegistrationTokenView } from '../clients/registration-token.service.js';
import { MAX_TOKEN_LIFETIME_SECONDS, MAX_TOKEN_USES } from '../clients/registration-token.service.js';
import type { CliCommand } from './command.js';
import { CLI_AUTHORITY, EXIT_OK, UsageError, listCommand, parseCommandArgs, singlePositional, toCommandFunction, writeFailure, writeJson } from './command.js';

const createUsage = `Usage: npm run cli -- registration-token create [--expires-in SECONDS] [--uses N] [--json]

Issues an initial access token for dynamic client registration (RFC 7591): a party that has
it can register a client at the registration endpoint (/reg), as a bearer token. Prints the
token once: only a hash of it is ever shown again. Registration must be on for the token to
work (DYNAMIC_REGISTRATION=true).

Options:
  --expires-in SECONDS   the token stops working after this many seconds (60 to ${MAX_TOKEN_LIFETIME_SECONDS}); default: never
  --uses N               how many clients it may register (1 to ${MAX_TOKEN_USES}); default: unlimited
  --json                 print one JSON object instead of text
  -h, --help             show this help

With --json through npm, use \`npm run --silent cli -- …\`: npm prints a banner on stdout.
`;

const listUsage = `Usage: npm run cli -- registration-token list [--json]

Lists initial access tokens by id (never the tokens themselves), with their uses and status.
Tokens that ended (expired or revoked) stay listed for 30 days.

Options:
  --json       print a JSON array instead of text
  -h, --help   show this help
`;

const revokeUsage = `Usage: npm run cli -- registration-token revoke ID

Revokes an initial access token (ID as \`registration-token list\` shows it): no further client
can register with it. Clients registered with it stay. Exits with code 1 if there is no such
token or it was already revoked.

Options:
  -h, --help   show this help
`;

/** A token as printed by `--json`: snake_case, as the registration endpoint speaks. */
export interface RegistrationTokenJson {
  id: string;
  created_at: string;
  expires_at: string | null;
  uses_allowed: number | null;
  uses_count: number;
  revoked: boolean;
  status: RegistrationTokenStatus;
}

export type RegistrationTokenStatus = 'active' | 'expired' | 'revoked' | 'used up';

export function tokenStatus(view: RegistrationTokenView, now = Date.now()): RegistrationTokenStatus {
  if (view.revoked) return 'revoked';
  if (view.expiresAt && view.expiresAt.getTime() <= now) return 'expired';
  if (view.usesAllowed !== undefined && view.usesCount >= view.usesAllowed) return 'used up';
  return 'active';
}

function toJson(view: RegistrationTokenView): RegistrationTokenJson {
  return {
    id: view.id,
    created_at: view.createdAt.toISOString(),
    expires_at: view.expiresAt?.toISOString() ?? null,
    uses_allowed: view.usesAllowed ?? null,
    uses_count: view.usesCount,
    revoked: view.revoked,
    status: tokenStatus(view),
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

export const registrationTokenCreateCommand: CliCommand = {
  name: 'registration-token create',
  summary: 'issue an initial access token for dynamic registration (prints it once)',
  usage: createUsage,
  prepare(args) {
    const { values } = parseCommandArgs(args, {
      'expires-in': { type: 'string' },
      uses: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (values.help) return 'help';
    const expiresInSeconds = integerOption(values['expires-in'], '--expires-in', 60, MAX_TOKEN_LIFETIME_SECONDS);
    const uses = integerOption(values.uses, '--uses', 1, MAX_TOKEN_USES);
    const json = values.json ?? false;

    return async ({ services, out }) => {
      const { token, view } = await services.registrationTokens.create(
        { ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}), ...(uses !== undefined ? { uses } : {}) },
        CLI_AUTHORITY,
      );
      if (json) {
        const { id, ...rest } = toJson(view);
        // Field order: id, the token, then the rest.
        writeJson(out, { id, token, ...rest });
        return EXIT_OK;
      }
      out.write(
        [
          `Created registration token ${view.id}.`,
          `  token:       ${token}`,
          `  expires_at:  ${view.expiresAt?.toISOString() ?? 'never'}`,
          `  uses:        ${view.usesAllowed ?? 'unlimited'}`,
          '',
          'The token will not be shown again: hand it over now. A client registers with',
          '`Authorization: Bearer <token>` at the registration endpoint (/reg).',
          '',
        ].join('\n'),
      );
      return EXIT_OK;
    };
  },
};

export const registrationTokenListCommand = listCommand<RegistrationTokenView>({
  name: 'registration-token list',
  summary: 'list initial access tokens (never shows the tokens)',
  usage: listUsage,
  load: (services) => services.registrationTokens.list(),
  toJson,
  empty: 'No registration tokens.',
  columns: ['ID', 'CREATED', 'EXPIRES', 'USES', 'STATUS'],
  row: (v) => [
    v.id,
    v.createdAt.toISOString(),
    v.expiresAt?.toISOString() ?? 'never',
    `${v.usesCount}/${v.usesAllowed ?? 'unlimited'}`,
    tokenStatus(v),
  ],
});

export const registrationTokenRevokeCommand: CliCommand = {
  name: 'registration-token revoke',
  summary: 'revoke an initial access token',
  usage: revokeUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(args, {}, { allowPositionals: true });
    if (values.help) return 'help';
    const id = singlePositional(positionals, 'ID');

    return async ({ services, out, err }) => {
      if (!(await services.registrationTokens.revoke(id, CLI_AUTHORITY))) {
        return writeFailure(err, `no active registration token with id "${id}"`);
      }
      out.write(`Revoked registration token ${id}.\n`);
      return EXIT_OK;
    };
  },
};

export const registrationTokenCreate = toCommandFunction(registrationTokenCreateCommand);
export const registrationTokenList = toCommandFunction(registrationTokenListCommand);
export const registrationTokenRevoke = toCommandFunction(registrationTokenRevokeCommand);
