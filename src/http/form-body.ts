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
      throw new AppError(415, 'request.unsupported_media_type', 'Forms must be sent as application/x-www-form-urlencoded.');
    }
    const text = (await readLimitedBody(ctx, limit, 'The form is too large.')).toString('utf8');
    const fields: FormFields = {};
    for (const [key, value] of new URLSearchParams(text)) {
      if (Object.hasOwn(fields, key)) {
        throw new AppError(400, 'request.duplicate_field', `The form field "${key.slice(0, 40)}" was sent more than once.`);
      }
      fields[key] = value;
    }
    ctx.state.form = fields;
    await next();
  };
}
