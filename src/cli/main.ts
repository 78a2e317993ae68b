/**
 * The admin's command line: `npm run cli -- <group> <action> [options]`.
 * Results go to stdout, everything else (logs, errors, usage after a mistake) to stderr.
 * Exit codes: 0 done, 1 refused or failed, 2 bad command line (src/cli/command.ts).
 */
import { ConfigError } from '../config/config.js';
import { clientCreateCommand, clientDeleteCommand, clientListCommand, clientRotateSecretCommand, clientSetResourcesCommand } from './client.commands.js';
import type { CliCommand, Output } from './command.js';
import { dbMigrateCommand } from './db.commands.js';
import { invitationCreateCommand, invitationListCommand, invitationRevokeCommand } from './invitation.commands.js';
import { keysListCommand, keysRetireCommand, keysRotateCommand } from './keys.commands.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, runPrepared, writeUsageError } from './command.js';
import { resourceCreateCommand, resourceDeleteCommand, resourceListCommand, resourceUpdateCommand } from './resource.commands.js';
import {
  registrationTokenCreateCommand,
  registrationTokenListCommand,
  registrationTokenRevokeCommand,
} from './registration-token.commands.js';
import {
  userCreateCommand,
  userDeleteCommand,
  userDisableCommand,
  userEnableCommand,
  userListCommand,
  userResetMfaCommand,
} from './user.commands.js';

const commands: readonly CliCommand[] = [
  clientCreateCommand,
  clientListCommand,
  clientDeleteCommand,
  clientRotateSecretCommand,
  clientSetResourcesCommand,
  resourceCreateCommand,
  resourceListCommand,
  resourceUpdateCommand,
  resourceDeleteCommand,
  registrationTokenCreateCommand,
  registrationTokenListCommand,
  registrationTokenRevokeCommand,
  invitationCreateCommand,
  invitationListCommand,
  invitationRevokeCommand,
  userCreateCommand,
  userListCommand,
  userDisableCommand,
  userEnableCommand,
  userResetMfaCommand,
  userDeleteCommand,
  keysListCommand,
  keysRotateCommand,
  keysRetireCommand,
  dbMigrateCommand,
];

const HELP_FLAGS = new Set(['--help', '-h', 'help']);

function overview(group?: string): string {
  const shown = commands.filter((c) => !group || c.name.startsWith(`${group} `));
  const width = Math.max(...shown.map((c) => c.name.length));
  return [
    `Usage: npm run cli -- ${group ?? '<group>'} <command> [options]`,
    '',
    'Commands:',
    ...shown.map((c) => `  ${c.name.padEnd(width)}   ${c.summary}`),
    '',
    `Run \`npm run cli -- ${group ? `${group} <command>` : '<group> <command>'} --help\` for a command's options.`,
    'For --json output without npm\'s banner on stdout: `npm run --silent cli -- …`.',
    '',
  ].join('\n');
}

async function run(argv: string[], out: Output, err: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const [group, action, ...rest] = argv;
  const groups = new Set(commands.map((c) => c.name.split(' ')[0]));

  if (group === undefined || HELP_FLAGS.has(group)) {
    if (group === undefined) return writeUsageError(err, new UsageError('a command is required'), overview());
    out.write(overview());
    return EXIT_OK;
  }
  if (!groups.has(group)) return writeUsageError(err, new UsageError(`unknown command '${group}'`), overview());
  if (action === undefined || HELP_FLAGS.has(action)) {
    if (action === undefined) return writeUsageError(err, new UsageError(`a ${group} command is required`), overview(group));
    out.write(overview(group));
    return EXIT_OK;
  }
  const command = commands.find((c) => c.name === `${group} ${action}`);
  if (!command) return writeUsageError(err, new UsageError(`unknown command '${group} ${action}'`), overview(group));

  // Arguments first: `--help` and a bad command line never start a database.
  let prepared: ReturnType<CliCommand['prepare']>;
  try {
    prepared = command.prepare(rest);
  } catch (error) {
    if (error instanceof UsageError) return writeUsageError(err, error, command.usage);
    throw error;
  }
  if (prepared === 'help') {
    out.write(command.usage);
    return EXIT_OK;
  }

  // NOTE: loaded only now, so that `--help` and usage errors stay quick: the bootstrap pulls
  // in mongoose and the services.
  const [{ openCliSession }, { applyDefaultEnvironment, loadDotEnv }] = await Promise.all([import('./cli-context.js'), import('../config/runtime.js')]);
  loadDotEnv(env);
  applyDefaultEnvironment(env, import.meta.url);
  const session = await openCliSession(env, err, { migrate: !command.skipsMigrations });
  try {
    return await runPrepared(prepared, { services: session.services, out, err });
  } finally {
    await session.close();
  }
}

run(process.argv.slice(2), process.stdout, process.stderr, process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) process.stderr.write(`${error.message}\n`);
    else process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
