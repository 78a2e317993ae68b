import { createRequire } from 'node:module';

import { pino } from 'pino';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import type PinoPretty from 'pino-pretty';

import { currentRequest } from '../http/request-context.js';

/**
 * Structured logs on pino: one JSON object per line in production (for log shippers), a readable
 * line in development (pino-pretty, formatted in-process: no worker thread). The rest of the code
 * sees only this small `Logger` interface.
 *
 * Two rules hold for every line:
 * - Fields whose names look secret are redacted at any depth, so a careless
 *   `log.info('x', { password })` cannot leak (nothing secret in logs). NOTE: pino's own `redact`
 *   takes paths (`a.b.password`), not a rule on names at any depth, so the fields are cleaned here
 *   before pino sees them.
 * - A line logged while a request is handled carries that request's id (`requestId`), also from
 *   services that hold the process-wide logger rather than the request's child: the id comes from
 *   the request context (src/http/request-context.ts).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const SECRET_FIELD = /pass(word)?|secret|token|code_verifier|^code$|cookie|authorization|csrf|key$/i;
/** Deeper than any field we log; past it values are cut, so a cyclic or huge object cannot stall a request. */
const MAX_DEPTH = 6;

function serialiseError(err: Error, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message, stack: err.stack };
  const { code } = err as { code?: unknown };
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (err.cause !== undefined) out.cause = redact(err.cause, depth + 1);
  return out;
}

/** Replaces the values of secret-looking fields, at any depth; Errors become { name, message, stack }. */
export function redact(value: unknown, depth = 0): unknown {
  if (value instanceof Error) return depth > MAX_DEPTH ? { name: value.name, message: value.message } : serialiseError(value, depth);
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return '[truncated]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Date) return value;
  // Bytes are never worth a line (and may be key material): their size says enough.
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_FIELD.test(k) ? '[redacted]' : redact(v, depth + 1)]),
  );
}

export interface LoggerOptions {
  level: LogLevel;
  format: 'json' | 'pretty';
  /**
   * Where each line goes, without its newline (tests collect lines this way). Default: standard
   * output, written synchronously (a crash loses no line already logged).
   */
  write?: (line: string) => void;
}

function destination(options: LoggerOptions): DestinationStream {
  const { write } = options;
  if (options.format === 'pretty') {
    // Loaded only for pretty output (development): it costs a noticeable part of a second at start.
    const pinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    const prettify = pinoPretty.prettyFactory({
      colorize: !write && Boolean(process.stdout.isTTY),
      translateTime: 'SYS:HH:MM:ss',
      ignore: 'pid,hostname',
      singleLine: false,
    });
    const out = write ?? ((line: string) => process.stdout.write(`${line}\n`));
    return { write: (chunk: string) => out(prettify(chunk).replace(/\n$/, '')) };
  }
  if (write) return { write: (chunk: string) => write(chunk.replace(/\n$/, '')) };
  return pino.destination({ dest: 1, sync: true });
}

function wrap(base: PinoLogger, bound: LogFields): Logger {
  const boundRequestId = 'requestId' in bound;
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    // Checked first: a debug line in production costs no redaction.
    if (!base.isLevelEnabled(level)) return;
    const all: LogFields = { ...bound, ...fields };
    if (!boundRequestId && all.requestId === undefined) {
      const requestId = currentRequest()?.requestId;
      if (requestId) all.requestId = requestId;
    }
    base[level](redact(all) as LogFields, message);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    // NOTE: bound fields are merged into each line here, not through pino's child(): a field given
    // again on a line then replaces the bound one instead of appearing twice in the JSON.
    child: (fields) => wrap(base, { ...bound, ...fields }),
  };
}

export function createLogger(options: LoggerOptions): Logger {
  const base = pino(
    {
      level: options.level,
      // `"level":"info"` and an ISO time, as log shippers and our tests read them.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Errors are serialised by redact() above, wherever they sit; pino's own `err` serializer
      // would wrap that result again.
      serializers: { err: (value: unknown) => value },
    },
    destination(options),
  );
  return wrap(base, {});
}
