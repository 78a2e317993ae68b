import { parseArgs } from 'node:util';
import type { ParseArgsOptionsConfig } from 'node:util';

import type { AuditActor } from '../audit/audit.service.js';
import type { AdminAuthority } from '../clients/admin-authority.js';
import { fullAuthority } from '../clients/admin-authority.js';
import type { ServiceDeps } from '../deps.js';
import { AppError } from '../http/app-error.js';

/** Exit codes: 0 done, 1 refused or failed (validation, not found, database), 2 bad command line. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Who the audit log names for what the command line does: there is no signed-in account here. */
export const CLI_ACTOR: AuditActor = { type: 'system', label: 'cli' };

/**
 * The command line acts with full authority (src/clients/admin-authority.ts): whoever runs it
 * has the database and its keys, which is every power this server has.
 */
export const CLI_AUTHORITY: AdminAuthority = fullAuthority(CLI_ACTOR);

/** Where a command writes; process.stdout and process.stderr fit, and so does a test's collector. */
export interface Output {
  write(text: string): unknown;
}

/** What a command runs with: the services and its two streams (stdout for results, stderr for the rest). */
export interface CommandContext {
  services: ServiceDeps;
  out: Output;
  err: Output;
}

/** A command line that cannot be understood: reported with the usage text, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type PreparedCommand = (ctx: CommandContext) => Promise<number>;

export interface CliCommand {
  /** The words that name it, e.g. `client create`. */
  name: string;
  /** One line for the overview. */
  summary: string;
  /** The full `--help` text. */
  usage: string;
  /**
   * Parses and checks the arguments without touching the database (so that `--help` and a
   * bad command line never start one): 'help', or the work to run. Throws UsageError.
   */
  prepare(args: string[]): 'help' | PreparedCommand;
  /**
   * True for the commands that handle migrations themselves (`db migrate`): opening the session
   * then leaves pending migrations alone, where it otherwise applies them as the server does.
   */
  skipsMigrations?: boolean;
}

/** The `(args, { services, out, err })` form of a command, for callers that already hold the services. */
export type CommandFunction = (args: string[], ctx: CommandContext) => Promise<number>;

/**
 * Runs node:util parseArgs (called strict by the caller) and turns its errors (unknown option,
 * missing value, unexpected positional) into a UsageError.
 */
export function parseOrUsage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) throw new UsageError((error as Error).message);
    throw error;
  }
}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * A command's arguments, strictly (unknown options are usage errors), with `--help`/`-h`
 * added to every command's options.
 */
export function parseCommandArgs<const O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
  { allowPositionals = false }: { allowPositionals?: boolean } = {},
) {
  return parseOrUsage(() => parseArgs({ args, strict: true, allowPositionals, options: { ...options, ...HELP_OPTION } }));
}

/**
 * The one positional argument a command takes (`ID`, `CLIENT_ID`, `EMAIL`): a usage error when
 * it is missing or followed by another.
 */
export function singlePositional(positionals: string[], name: string): string {
  const [value, ...extra] = positionals;
  if (value === undefined) throw new UsageError(`${name} is required`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  return value;
}

export function writeUsageError(err: Output, error: UsageError, usage: string): number {
  err.write(`error: ${error.message}\n\n${usage}`);
  return EXIT_USAGE;
}

/** A refusal or failure: one `error:` line on stderr, exit code 1. */
export function writeFailure(err: Output, message: string): number {
  err.write(`error: ${message}\n`);
  return EXIT_FAILURE;
}

/** Runs prepared work, reporting our own errors (AppError: validation, conflicts) as one line on stderr. */
export async function runPrepared(prepared: PreparedCommand, ctx: CommandContext): Promise<number> {
  try {
    return await prepared(ctx);
  } catch (error) {
    if (error instanceof AppError && error.expose) return writeFailure(ctx.err, error.message);
    throw error;
  }
}

export function toCommandFunction(command: CliCommand): CommandFunction {
  return async (args, ctx) => {
    let prepared: ReturnType<CliCommand['prepare']>;
    try {
      prepared = command.prepare(args);
    } catch (error) {
      if (error instanceof UsageError) return writeUsageError(ctx.err, error, command.usage);
      throw error;
    }
    if (prepared === 'help') {
      ctx.out.write(command.usage);
      return EXIT_OK;
    }
    return runPrepared(prepared, ctx);
  };
}

/** JSON for `--json`: one value, pretty-printed, and nothing else on stdout. */
export function writeJson(out: Output, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Left-aligned columns for human output; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[header, ...rows].map(line).join('\n')}\n`;
}

export interface ListCommandSpec<T> {
  /** The words that name it, e.g. `user list`. */
  name: string;
  summary: string;
  /** The full `--help` text; the command takes `--json` and nothing else. */
  usage: string;
  /** Every item, in the order listed. */
  load(services: ServiceDeps): Promise<T[]>;
  /** An item as `--json` prints it (the output is a JSON array of these). */
  toJson(item: T): unknown;
  /** The line printed when there is nothing to list, e.g. `No users.` */
  empty: string;
  /** The table's column titles, and an item's cells under them. */
  columns: string[];
  row(item: T): string[];
}

/** `<group> list [--json]`: every item as a JSON array, or as a table (a line of its own when there are none). */
export function listCommand<T>(spec: ListCommandSpec<T>): CliCommand {
  return {
    name: spec.name,
    summary: spec.summary,
    usage: spec.usage,
    prepare(args) {
      const { values } = parseCommandArgs(args, { json: { type: 'boolean' } });
      if (values.help) return 'help';
      const json = values.json ?? false;

      return async ({ services, out }) => {
        const items = await spec.load(services);
        if (json) writeJson(out, items.map((item) => spec.toJson(item)));
        else if (items.length === 0) out.write(`${spec.empty}\n`);
        else out.write(formatTable(spec.columns, items.map((item) => spec.row(item))));
        return EXIT_OK;
      };
    },
  };
}
