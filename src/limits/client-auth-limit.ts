import type { Middleware } from 'koa';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { Logger } from '../logging/logger.js';
import type { SignInLimits } from './sign-in-limits.js';

/**
 * Failed client authentication per client IP at the endpoints where clients authenticate
 * (RFC 6749 §2.3): once IP_CLIENT_AUTH_FAILURE_LIMIT failures happened within IP_LIMIT_WINDOW,
 * every request from that IP (network) is answered 429 with Retry-After until the oldest failure
 * leaves the window, without reaching the provider.
 *
 * NOTE: unlike the sign-in limits, this one counts after the fact instead of reserving an attempt
 * before the check, and it reads the shared count only for an IP this node has seen fail within
 * the window: a busy service client that authenticates correctly pays no database command for
 * it, on the hottest endpoint there is. So each node lets one failure through before it starts
 * checking an IP, and the requests already in flight when the limit is reached are still answered:
 * nothing an attacker can use (client secrets are 256 random bits, assertions are signed); every
 * request after that is refused, on every node that has seen the IP fail.
 */

/** oidc-provider's routes that authenticate the client (its defaults; provider.ts changes none). */
export const CLIENT_AUTH_PATHS: ReadonlySet<string> = new Set(['/token', '/token/introspection', '/token/revocation', '/request']);

/** How many failing IPs a node remembers at once (the oldest is forgotten first): a bound on memory. */
const MAX_REMEMBERED = 10_000;

export function limitClientAuthentication({ limits, logger, clock = systemClock }: { limits: SignInLimits; logger: Logger; clock?: Clock }): Middleware {
  const now = () => clock.nowMs();
  /** IP keys this node saw fail, until when they are worth a look at the shared count. */
  const failing = new Map<string, number>();
  const seenFailing = (key: string): boolean => {
    const until = failing.get(key);
    if (until === undefined) return false;
    if (until > now()) return true;
    failing.delete(key);
    return false;
  };
  const rememberFailure = (key: string, windowSeconds: number) => {
    failing.delete(key);
    if (failing.size >= MAX_REMEMBERED) {
      const oldest = failing.keys().next().value;
      if (oldest !== undefined) failing.delete(oldest);
    }
    failing.set(key, now() + windowSeconds * 1000);
  };

  return async function limitClientAuthentication(ctx, next) {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path)) return next();
    const gate = limits.clientAuthFromIp(ctx.ip);
    const verdict = seenFailing(gate.key) ? await limits.limiter.peek(gate) : ({ allowed: true } as const);
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
      rememberFailure(gate.key, gate.rule.kind === 'window' ? gate.rule.windowSeconds : 0);
    }
  };
}
