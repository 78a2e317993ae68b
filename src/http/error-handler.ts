import type { Middleware } from 'koa';
import { errors } from 'oidc-provider';

import { isDatabaseUnavailable } from '../db/unavailable.js';
import type { Logger } from '../logging/logger.js';
import { AppError } from './app-error.js';
import type { PageRenderer } from './render-page.js';

interface PublicError {
  status: number;
  code: string;
  message: string;
}

function toPublicError(err: unknown): PublicError {
  if (err instanceof AppError) {
    return { status: err.status, code: err.code, message: err.expose ? err.message : 'Something went wrong on our side.' };
  }
  if (err instanceof errors.OIDCProviderError) {
    if (err instanceof errors.SessionNotFound) {
      return {
        status: 400,
        code: err.error,
        message: 'This sign-in has expired or was started in another browser. Go back to the application and try again.',
      };
    }
    if (err.expose) {
      return { status: err.statusCode, code: err.error, message: err.error_description ?? err.message };
    }
  }
  if (isDatabaseUnavailable(err)) {
    return { status: 503, code: 'temporarily_unavailable', message: 'The service is temporarily unavailable. Try again in a moment.' };
  }
  const status = (err as { status?: unknown }).status;
  const expose = (err as { expose?: unknown }).expose;
  // Koa / http-errors style errors (e.g. ctx.throw(404)) that are safe to show.
  if (typeof status === 'number' && status >= 400 && status < 500 && expose === true) {
    return { status, code: 'request.invalid', message: (err as Error).message };
  }
  return { status: 500, code: 'server_error', message: 'Something went wrong on our side. Try again later.' };
}

/** The one error handler at the top: page for browsers, JSON otherwise, never a stack. */
export function handleErrors({ logger, pages }: { logger: Logger; pages: PageRenderer }): Middleware {
  return async function errorHandler(ctx, next) {
    try {
      await next();
      // The provider answers its own 503s (database down); tell clients when to retry there too.
      if (ctx.status === 503) ctx.set('Retry-After', '5');
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new AppError('not_found');
      }
    } catch (err) {
      const pub = toPublicError(err);
      const log = ctx.state.log ?? logger;
      if (pub.status >= 500 && pub.status !== 503) log.error('request failed', { err, method: ctx.method, path: ctx.path });
      else if (pub.status === 503) log.warn('database unavailable', { method: ctx.method, path: ctx.path, reason: (err as Error).message });
      else log.debug('request refused', { status: pub.status, code: pub.code });

      // NOTE: a half-read body must not keep the connection alive.
      if (pub.status === 413) ctx.set('Connection', 'close');
      if (pub.status === 503) ctx.set('Retry-After', '5');
      ctx.set('Cache-Control', 'no-store');
      if (ctx.accepts('json', 'html') === 'html') {
        try {
          await pages.render(
            ctx,
            'errors/error',
            { title: 'Error', status: pub.status, message: pub.message, code: pub.code, requestId: ctx.state.requestId },
            pub.status,
          );
          return;
        } catch (renderErr) {
          log.error('error page failed to render', { err: renderErr });
        }
      }
      ctx.status = pub.status;
      ctx.body = { error: pub.code, error_description: pub.message };
    }
  };
}
