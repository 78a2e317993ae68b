import type { KoaContextWithOIDC } from 'oidc-provider';

import type { Config } from '../config/config.js';

/**
 * The SSO session's lifetime at each save.
 *
 * NOTE: oidc-provider saves the session again on every request that touches it (each
 * authorization request does, src: its session middleware) with `ttl.Session`; a constant there
 * is therefore an idle time, and a session in use never ends. This makes both limits explicit:
 * the session ends after `sessionIdle` seconds without use, and in any case `session` seconds
 * after it was first saved. `iat` is set in the stored payload at that first save and carried
 * unchanged through later saves (also when the provider renews the session's id at a sign-in),
 * so a new sign-in into a living session does not extend its absolute end.
 */
export function sessionTtl(
  ttl: Pick<Config['ttl'], 'session' | 'sessionIdle'>,
  session: { iat?: unknown },
  nowSeconds = Math.floor(Date.now() / 1000),
): number {
  // A session not saved yet has no iat: it starts now.
  const start = typeof session.iat === 'number' && Number.isFinite(session.iat) ? session.iat : nowSeconds;
  const remaining = start + ttl.session - nowSeconds;
  // The provider requires a positive integer; past the end the session goes a second later.
  return Math.max(1, Math.min(ttl.sessionIdle, Math.floor(remaining)));
}

/** `ttl.Session` for the provider configuration (synchronous, as the provider calls it). */
export function createSessionTtl(ttl: Pick<Config['ttl'], 'session' | 'sessionIdle'>) {
  return function sessionTtlFor(_ctx: KoaContextWithOIDC, session: { iat?: unknown }): number {
    return sessionTtl(ttl, session);
  };
}
