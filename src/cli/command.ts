import { parseArgs } from 'node:util';
import type { ParseArgsOptionsConfig } from 'node:util';

import type { ServiceDeps } from '../deps.js';
import { AppError } from '../http/app-error.js';

/** Exit codes: 0 done, 1 refused or failed (validation, not found, database), 2 bad command line. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

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

export function writeUsageError(err: Output, error: UsageError, usage: string): number {
  err.write(`error: ${error.message}\n\n${usage}`);
  return EXIT_USAGE;
}

/** Runs prepared work, reporting our own errors (AppError: validation, conflicts) as one line on stderr. */
export async function runPrepared(prepared: PreparedCommand, ctx: CommandContext): Promise<number> {
  try {
    return await prepared(ctx);
  } catch (error) {
    if (error instanceof AppError && error.expose) {
      ctx.err.write(`error: ${error.message}\n`);
      return EXIT_FAILURE;
    }
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
