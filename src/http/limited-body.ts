import type { Context } from 'koa';

import { AppError } from './app-error.js';

/**
 * Reads the raw request body, at most `limit` bytes: a declared Content-Length over the limit is
 * refused before reading, and reading stops at the first chunk past it. Both are 413
 * `request.too_large`, naming `what` was too large.
 */
export async function readLimitedBody(ctx: Context, limit: number, what: 'body' | 'form'): Promise<Buffer> {
  if (Number(ctx.get('content-length') || 0) > limit) throw new AppError('request.too_large', { what });

  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      // Stop reading; the error handler closes the connection (Connection: close on 413).
      ctx.req.unpipe();
      throw new AppError('request.too_large', { what });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
