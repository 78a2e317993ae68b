import { AsyncLocalStorage } from 'node:async_hooks';

import type { Middleware } from 'koa';

/**
 * Who is on the other end of the current request, for code that has no `ctx` at hand: the
 * provider's model events (a token saved, destroyed) and services writing the audit log.
 */
export interface RequestInfo {
  requestId: string | undefined;
  /** The client IP: from X-Forwarded-For only with TRUST_PROXY (app.proxy). */
  ip: string | undefined;
  userAgent: string | undefined;
}

const storage = new AsyncLocalStorage<RequestInfo>();

export function currentRequest(): RequestInfo | undefined {
  return storage.getStore();
}

/** Runs the rest of the request inside its RequestInfo. Install after the request id. */
export function bindRequestContext(): Middleware {
  return async function bindRequestContext(ctx, next) {
    const info: RequestInfo = {
      requestId: ctx.state.requestId as string | undefined,
      ip: ctx.ip || undefined,
      userAgent: ctx.get('user-agent').slice(0, 300) || undefined,
    };
    await storage.run(info, next);
  };
}
