import type { Context, Middleware } from 'koa';

import { AppError } from './app-error.js';
import { readLimitedBody } from './limited-body.js';

/** Bodies of the management API are small (a client's metadata is the largest): 64 KiB. */
export const JSON_BODY_LIMIT = 64 * 1024;

/**
 * Reads a JSON request body for our own routes (oidc-provider parses its own endpoints):
 * `application/json` (or a `+json` type) in UTF-8, at most `limit` bytes.
 *
 * - 415 `request.unsupported_media_type`: another content type, or a charset other than UTF-8
 *   (RFC 8259 §8.1: JSON between systems is UTF-8);
 * - 413 `request.too_large`: a declared or actual size over the limit (reading stops there);
 * - 400 `request.body_required`: no body at all; 400 `request.malformed_json`: not UTF-8 or not JSON.
 */
export async function readJsonBody(ctx: Context, { limit = JSON_BODY_LIMIT }: { limit?: number } = {}): Promise<unknown> {
  const declared = ctx.get('content-length');
  const hasBody = ctx.get('transfer-encoding') !== '' || (declared !== '' && declared !== '0');
  if (!hasBody) throw new AppError('request.body_required');
  // NOTE: ctx.is() answers null for a request without a body; `hasBody` was settled above.
  if (!ctx.is('application/json', '+json')) {
    throw new AppError('request.unsupported_media_type', { expected: 'application/json' });
  }
  const charset = ctx.request.charset.toLowerCase();
  if (charset !== '' && charset !== 'utf-8' && charset !== 'utf8') {
    throw new AppError('request.unsupported_media_type', { expected: 'JSON in UTF-8' });
  }
  const body = await readLimitedBody(ctx, limit, 'body');

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new AppError('request.malformed_json', { problem: 'UTF-8' });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // The parser's message may quote the body: not repeated.
    throw new AppError('request.malformed_json', { problem: 'JSON' });
  }
}

/** Middleware form of readJsonBody: the parsed value is left in `ctx.state.json`. */
export function parseJsonBody(options: { limit?: number } = {}): Middleware {
  return async function parseJson(ctx, next) {
    ctx.state.json = await readJsonBody(ctx, options);
    await next();
  };
}
