/**
 * A small structured logger: one JSON object per line in production (for log shippers),
 * a readable line in development. Fields whose names look secret are redacted, so a
 * careless `log.info('x', { password })` cannot leak (nothing secret in logs).
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

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /pass(word)?|secret|token|code_verifier|^code$|cookie|authorization|csrf|key$/i;

function redact(value: unknown, depth = 0): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k,
      SECRET_FIELD.test(k) ? '[redacted]' : redact(v, depth + 1),
    ]),
  );
}

export interface LoggerOptions {
  level: LogLevel;
  format: 'json' | 'pretty';
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions, bound: LogFields = {}): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (order[level] < order[options.level]) return;
    const all = redact({ ...bound, ...fields }) as LogFields;
    if (options.format === 'json') {
      write(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...all }));
    } else {
      const extra = Object.keys(all).length > 0 ? ` ${JSON.stringify(all)}` : '';
      write(`${new Date().toISOString().slice(11, 19)} ${level.toUpperCase().padEnd(5)} ${message}${extra}`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}
