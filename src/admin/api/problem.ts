import { STATUS_CODES } from 'node:http';

import type { Context, Middleware } from 'koa';
import { errors } from 'oidc-provider';
import { z } from 'zod';

import { AppError, AppErrorBase } from '../../http/app-error.js';
import { isDatabaseUnavailable } from '../../db/unavailable.js';
import type { FieldProblem } from '../../http/field-problems.js';
import type { Logger } from '../../logging/logger.js';

/**
 * Errors of the management API as RFC 9457 problem details (`application/problem+json`).
 *
 * `type` is `about:blank` (RFC 9457 §4.2.1): the HTTP status says what kind of problem it is,
 * and `title` is the status's reason phrase. The extension member `code` is our namespaced
 * error code (`user.email_taken`, `auth.insufficient_scope`), stable for programs to branch on;
 * `errors` lists field problems of a refused input.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export type { FieldProblem } from '../../http/field-problems.js';
export { fieldProblemsFrom } from '../../http/field-problems.js';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The request path the problem occurred on. */
  instance?: string;
  code: string;
  errors?: FieldProblem[];
}

export const problemSchema = z
  .object({
    type: z.string().describe('`about:blank`: the status code says what kind of problem this is (RFC 9457 §4.2.1)'),
    title: z.string().describe('The HTTP reason phrase of the status'),
    status: z.number().int().min(400).max(599),
    detail: z.string().describe('What went wrong, for people'),
    instance: z.string().optional().describe('The request path'),
    code: z.string().describe('Namespaced error code for programs, e.g. `user.email_taken`, `auth.insufficient_scope`'),
    errors: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .describe('One entry per refused input field'),
  })
  .describe('RFC 9457 problem details');

/** An AppError that sends headers with its problem document (WWW-Authenticate, Allow). */
export class ProblemError extends AppError {
  override name = 'ProblemError';
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(status, code, message);
    this.headers = headers;
  }
}

/** An AppError whose problem lists field errors (the services' ValidationErrors have `fields`). */
export class InputError extends AppErrorBase {
  override name = 'InputError';
  readonly fieldProblems: FieldProblem[];

  constructor(fieldProblems: FieldProblem[], where: 'body' | 'query' | 'path' | 'fields' = 'fields') {
    super('request.invalid', { where });
    this.fieldProblems = fieldProblems;
  }
}

function hasFields(err: unknown): err is AppError & { fields: Record<string, string> } {
  if (!(err instanceof AppError)) return false;
  const fields = (err as { fields?: unknown }).fields;
  return typeof fields === 'object' && fields !== null;
}

interface Classified {
  status: number;
  code: string;
  detail: string;
  errors?: FieldProblem[];
}

function classify(err: unknown): Classified {
  if (err instanceof InputError) return { status: 400, code: err.code, detail: err.message, errors: err.fieldProblems };
  if (hasFields(err)) {
    // ClientValidationError, UserValidationError: one message per field.
    const fieldProblems = Object.entries(err.fields).map(([field, message]) => ({ field, message }));
    return { status: err.status, code: err.code, detail: 'The request has invalid fields.', errors: fieldProblems };
  }
  if (err instanceof AppError && err.status === 400 && err.code.endsWith('.invalid_cursor')) {
    // The list services refuse a cursor they did not hand out (audit, clients): the `cursor` parameter.
    return { status: 400, code: err.code, detail: 'The request has invalid query parameters.', errors: [{ field: 'cursor', message: err.message }] };
  }
  if (err instanceof AppError) {
    return { status: err.status, code: err.code, detail: err.expose ? err.message : 'Something went wrong on our side.' };
  }
  if (isDatabaseUnavailable(err)) {
    return { status: 503, code: 'temporarily_unavailable', detail: 'The service is temporarily unavailable. Try again in a moment.' };
  }
  if (err instanceof errors.OIDCProviderError && err.expose) {
    return { status: err.statusCode, code: err.error, detail: err.error_description ?? err.message };
  }
  const status = (err as { status?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500 && (err as { expose?: unknown }).expose === true) {
    return { status, code: 'request.invalid', detail: (err as Error).message };
  }
  return { status: 500, code: 'server_error', detail: 'Something went wrong on our side. Try again later.' };
}

export function problem(ctx: Context, status: number, code: string, detail: string, fieldProblems?: FieldProblem[]): Problem {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    instance: ctx.path,
    code,
    ...(fieldProblems && fieldProblems.length > 0 ? { errors: fieldProblems } : {}),
  };
}

export function sendProblem(ctx: Context, body: Problem): void {
  ctx.status = body.status;
  ctx.body = body;
  ctx.type = PROBLEM_CONTENT_TYPE;
  ctx.set('Cache-Control', 'no-store');
}

/**
 * The management API's error handler: every error below it, ours or a library's, becomes a
 * problem document; 5xx are logged with their stack and never shown. Headers set before the
 * error (WWW-Authenticate, Allow) are kept.
 */
export function problemErrors({ logger }: { logger: Logger }): Middleware {
  return async function handleApiErrors(ctx, next) {
    try {
      await next();
    } catch (err) {
      const c = classify(err);
      // WWW-Authenticate of a refused token (api-auth.ts), Allow of a 405 (ProblemError).
      const headers = (err as { headers?: unknown }).headers;
      if (c.status < 500 && headers && typeof headers === 'object') {
        for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
          if (typeof value === 'string') ctx.set(name, value);
        }
      }
      const log = (ctx.state.log as Logger | undefined) ?? logger;
      if (c.status >= 500 && c.status !== 503) log.error('admin api request failed', { err, method: ctx.method, path: ctx.path });
      else if (c.status === 503) log.warn('database unavailable', { method: ctx.method, path: ctx.path, reason: (err as Error).message });
      else log.debug('admin api request refused', { status: c.status, code: c.code });
      // NOTE: a half-read body must not keep the connection alive.
      if (c.status === 413) ctx.set('Connection', 'close');
      if (c.status === 503) ctx.set('Retry-After', '5');
      sendProblem(ctx, problem(ctx, c.status, c.code, c.detail, c.errors));
    }
  };
}
