import type { Middleware } from 'koa';

/**
 * The server has one public origin: the issuer's (ISSUER). Every URL it publishes (discovery,
 * redirects, form actions, the `iss` of responses) must be built from it, never from what a
 * request says about itself.
 *
 * oidc-provider builds its URLs from the Koa request (`new URL(path, ctx.href)`, and `ctx.href`
 * is `ctx.protocol://ctx.host + originalUrl`), so a request with `Host: evil.example` (or, with
 * TRUST_PROXY, `X-Forwarded-Host: evil.example`) would otherwise get a discovery document naming
 * evil.example as its authorization and token endpoints, which a cache in front would then serve
 * to everybody. OpenID Connect Discovery 1.0 §4.3 and RFC 8414 §3.3 let a client rely on the
 * metadata matching the issuer; this pins the request to the issuer instead of refusing other
 * hosts, so that load balancers' health checks with an IP address as Host keep working.
 */
export function pinPublicOrigin({ issuer }: { issuer: string }): Middleware {
  const { host, protocol } = new URL(issuer);
  const scheme = protocol.slice(0, -1);
  return async function pinToIssuer(ctx, next) {
    const { headers } = ctx.req;
    headers.host = host;
    // Koa reads these before Host and the socket when app.proxy is on (TRUST_PROXY): nothing
    // downstream may learn another host or scheme from them either.
    delete headers['x-forwarded-host'];
    delete headers['x-forwarded-proto'];
    // NOTE: an absolute-form request target (RFC 9112 §3.2.2, `GET http://evil.example/jwks
    // HTTP/1.1`, which Node accepts) is returned by Koa's ctx.href as it is, Host or not: turn
    // it into the origin-form path and query.
    if (!ctx.req.url?.startsWith('/') && /^[a-z][a-z0-9+.-]*:\/\//i.test(ctx.req.url ?? '')) {
      const target = originForm(ctx.req.url ?? '/');
      ctx.url = target;
      ctx.originalUrl = target;
      ctx.request.originalUrl = target;
    }
    // NOTE: Koa's `protocol` comes from the socket (always plain http here: TLS ends at the
    // proxy) or, with app.proxy, from X-Forwarded-Proto; neither may decide the scheme of the
    // URLs we publish. This also makes `ctx.secure` (and so the Secure cookie attribute) follow
    // the issuer: an https issuer is only ever reached by browsers over https.
    Object.defineProperty(ctx.request, 'protocol', { value: scheme, configurable: true, enumerable: true });
    await next();
  };
}

function originForm(absolute: string): string {
  try {
    const url = new URL(absolute);
    return `${url.pathname}${url.search}`;
  } catch {
    return '/';
  }
}

/**
 * What every relying party fetches and no request changes: the discovery document and the JWKS
 * (OpenID Connect Discovery 1.0 §4, RFC 7517), cacheable by browsers and shared caches for a few
 * minutes. Short enough that a key rotation (new keys are published before they sign) reaches
 * everybody in time. Only for successful GET and HEAD answers: errors stay `no-store`.
 */
export function cachePublicMetadata({ paths, maxAgeSeconds = 300 }: { paths: readonly string[]; maxAgeSeconds?: number }): Middleware {
  const cacheable = new Set(paths);
  return async function setPublicCacheControl(ctx, next) {
    await next();
    if ((ctx.method === 'GET' || ctx.method === 'HEAD') && ctx.status === 200 && cacheable.has(ctx.path)) {
      ctx.set('Cache-Control', `public, max-age=${maxAgeSeconds}`);
    }
  };
}
