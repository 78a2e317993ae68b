import type { Middleware } from 'koa';

import type { Logger } from '../logging/logger.js';
import type { SignInLimits } from './sign-in-limits.js';

/**
 * Failed client authentication per client IP at the endpoints where clients authenticate
 * (RFC 6749 §2.3): once IP_CLIENT_AUTH_FAILURE_LIMIT failures happened within IP_LIMIT_WINDOW,
 * every request from that IP (network) is answered 429 with Retry-After until the oldest failure
 * leaves the window, without reaching the provider.
 *
 * NOTE: unlike the sign-in limits, this one counts after the fact (one read before, one insert
 * per failure) instead of reserving an attempt before the check: a busy service client would
 * otherwise pay three database commands per token. So the requests already in flight when the
 * limit is reached are still answered; what that lets through is nothing an attacker can use
 * (client secrets are 256 random bits, assertions are signed), and the limit holds for every
 * request that arrives after it.
 */

/** oidc-provider's routes that authenticate the client (its defaults; provider.ts changes none). */
export const CLIENT_AUTH_PATHS: ReadonlySet<string> = new Set(['/token', '/token/introspection', '/token/revocation', '/request']);

export function limitClientAuthentication({ limits, logger }: { limits: SignInLimits; logger: Logger }): Middleware {
  return async function limitClientAuthentication(ctx, next) {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path)) return next();
    const gate = limits.clientAuthFromIp(ctx.ip);
    const verdict = await limits.limiter.peek(gate);
    if (!verdict.allowed) {
      (ctx.state.log as Logger | undefined ?? logger).info('client authentication refused: too many failures from this address', { path: ctx.path, retryAfterSeconds: verdict.retryAfterSeconds });
      ctx.status = 429;
      ctx.set('Retry-After', String(verdict.retryAfterSeconds));
      ctx.set('Cache-Control', 'no-store');
      // RFC 6749 §5.2 has no code for "too many requests"; temporarily_unavailable (registered
      // for the authorization endpoint) says "try again later", and Retry-After says when.
      ctx.body = {
        error: 'temporarily_unavailable',
        error_description: `Too many failed client authentications from this address. Try again in ${verdict.retryAfterSeconds} seconds.`,
      };
      return;
    }
    await next();
    const body = ctx.body as { error?: unknown } | undefined;
    if (ctx.status === 401 && typeof body === 'object' && body !== null && body.error === 'invalid_client') {
      await limits.limiter.record(gate);
    }
  };
}
