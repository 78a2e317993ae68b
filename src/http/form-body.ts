import type { Middleware } from 'koa';

import { AppError } from './app-error.js';
import { readLimitedBody } from './limited-body.js';

export type FormFields = Record<string, string>;

/**
 * A form body parser for our own pages only (oidc-provider parses its own endpoints):
 * application/x-www-form-urlencoded, size-limited, each field at most once.
 */
export function parseForm({ limit }: { limit: number }): Middleware {
  return async function parseFormBody(ctx, next) {
    if (!ctx.is('application/x-www-form-urlencoded')) {
      throw new AppError('request.unsupported_media_type', { expected: 'application/x-www-form-urlencoded' });
    }
    const text = (await readLimitedBody(ctx, limit, 'form')).toString('utf8');
    const fields: FormFields = {};
    for (const [key, value] of new URLSearchParams(text)) {
      if (Object.hasOwn(fields, key)) {
        throw new AppError('request.duplicate_field', { field: key });
      }
      fields[key] = value;
    }
    ctx.state.form = fields;
    await next();
  };
}
