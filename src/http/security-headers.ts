import { randomBytes } from 'node:crypto';

import type { Middleware } from 'koa';

/**
 * Security headers for every response, the provider's included.
 * CSP has no 'unsafe-inline': scripts come only from our own files (progressive enhancement; every
 * page works without them).
 * NOTE: Chromium applies form-action to the redirects that follow a form POST, so the sign-in
 * forms must be allowed to end at the client's redirect URI: handlers add that origin to
 * ctx.state.formActionOrigins.
 */
export function securityHeaders({ hsts }: { hsts: boolean }): Middleware {
  return async function setSecurityHeaders(ctx, next) {
    try {
      await next();
    } finally {
      const extra = ((ctx.state.formActionOrigins as string[] | undefined) ?? []).filter((o) => /^[a-z][a-z0-9+.-]*:[^\s;,']*$/i.test(o));
      ctx.set(
        'Content-Security-Policy',
        [
          "default-src 'none'",
          "script-src 'self'",
          "style-src 'self'",
          // Client logos (consent page, admin console) are https URLs the client registered; they
          // load without a referrer (Referrer-Policy below) and images run no script.
          "img-src 'self' data: https:",
          "font-src 'self'",
          "connect-src 'self'",
          `form-action 'self'${extra.length ? ` ${extra.join(' ')}` : ''}`,
          "frame-ancestors 'none'",
          "base-uri 'none'",
        ].join('; '),
      );
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('X-Frame-Options', 'DENY');
      ctx.set('Referrer-Policy', 'no-referrer');
      ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
      // NOTE: not on JSON: discovery, JWKS and userinfo are fetched cross-origin by browser apps.
      if (ctx.response.is('html')) ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
      ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()');
      if (hsts) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    }
  };
}

/** A request id for logs and error pages; a proxy's X-Request-Id is kept only when we trust the proxy. */
export function requestId({ trustProxy }: { trustProxy: boolean }): Middleware {
  return async function assignRequestId(ctx, next) {
    const incoming = ctx.get('x-request-id');
    const id = trustProxy && /^[A-Za-z0-9._-]{8,128}$/.test(incoming) ? incoming : randomBytes(12).toString('base64url');
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    await next();
  };
}
