import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Middleware } from 'koa';

import type { Metrics } from './metrics.service.js';

/**
 * Where metrics come from (the request middleware) and where they go: /metrics on the main port
 * behind a bearer token, or a port of their own.
 */

export const METRICS_PATH = '/metrics';

/**
 * The route label of a finished request: the pattern the router matched (`/interaction/:uid/login`,
 * the provider's `/token`, `/auth/:uid`), never the raw path, so the label has as many values as
 * the server has routes. Unmatched paths share one value.
 */
function routeOf(ctx: { path: string; status: number; state: Record<string, unknown>; _matchedRoute?: unknown }, knownPaths: ReadonlySet<string>): string {
  if (typeof ctx.state.metricsRoute === 'string') return ctx.state.metricsRoute;
  // Both @koa/router and the provider's router set it (the provider runs on this app's ctx).
  const matched = ctx._matchedRoute;
  if (typeof matched === 'string') return matched;
  // Refused before a router ran (a limit in front of /token, a cross-site form): a fixed path
  // keeps its name, the rest falls into a fixed set.
  if (knownPaths.has(ctx.path)) return ctx.path;
  if (ctx.path.startsWith('/static/') && ctx.status < 400) return '/static/*';
  const area = AREAS.find((prefix) => ctx.path === prefix || ctx.path.startsWith(`${prefix}/`));
  return area ? `${area}/*` : 'unmatched';
}

/** Our own areas, for requests refused before their router matched a route. */
const AREAS = ['/interaction', '/account', '/admin', '/api/admin/v1'];

/** The provider's endpoints without parameters, by name (those its configuration enables). */
const PROVIDER_ROUTES = ['authorization', 'token', 'userinfo', 'jwks', 'introspection', 'revocation', 'end_session', 'registration', 'pushed_authorization_request', 'device_authorization', 'code_verification', 'backchannel_authentication'];

/** Paths that may label a request that no router matched: the provider's fixed endpoints. */
export function providerPaths(provider: { pathFor(name: string): string }): Set<string> {
  const paths = new Set<string>(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']);
  for (const name of PROVIDER_ROUTES) {
    try {
      paths.add(provider.pathFor(name));
    } catch {
      // Not enabled in this configuration.
    }
  }
  return paths;
}

/**
 * Counts and times every request. Install first, so refusals by later middleware count too.
 * `knownPaths`: fixed paths that may name themselves when no router matched (providerPaths).
 */
export function measureRequests(metrics: Metrics, knownPaths: ReadonlySet<string> = new Set()): Middleware {
  return async function measureRequests(ctx, next) {
    const started = process.hrtime.bigint();
    let status: number | undefined;
    try {
      await next();
    } catch (err) {
      // Nothing below turned it into a response: Koa answers with the error's status, or 500.
      const s = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
      status = typeof s === 'number' && s >= 400 && s < 600 ? s : 500;
      throw err;
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observeRequest({ method: ctx.method, route: routeOf(ctx as unknown as Parameters<typeof routeOf>[0], knownPaths), status: status ?? ctx.status }, seconds);
    }
  };
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * True when the Authorization header carries `Bearer <token>`. Compared in constant time (over
 * SHA-256 digests, so the lengths do not show either).
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? '');
  const presented = match?.[1] ?? '';
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0;
}

/** Refused: no hint whether a token was presented or which; no metric in the body. */
function refusal(): { status: number; headers: Record<string, string>; body: string } {
  return {
    status: 401,
    headers: { 'WWW-Authenticate': 'Bearer realm="metrics"', 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' },
    body: 'unauthorized\n',
  };
}

/** GET /metrics on the main port, for a bearer of `token` (METRICS_TOKEN). */
export function serveMetrics({ metrics, token }: { metrics: Metrics; token: string }): Middleware {
  return async function metricsEndpoint(ctx, next) {
    if (ctx.path !== METRICS_PATH) return next();
    ctx.state.metricsRoute = METRICS_PATH;
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      return;
    }
    if (!bearerMatches(ctx.get('authorization') || undefined, token)) {
      const refused = refusal();
      ctx.status = refused.status;
      ctx.set(refused.headers);
      ctx.body = refused.body;
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  };
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The metrics on a port of their own (METRICS_PORT): only GET /metrics answers there, and only to
 * a bearer of `token` when one is set. Meant for a port Prometheus reaches and the public does not.
 */
export async function startMetricsServer({ metrics, port, host, token }: { metrics: Metrics; port: number; host?: string; token?: string | undefined }): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
      const refused = refusal();
      res.writeHead(refused.status, refused.headers).end(refused.body);
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      () => {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ...(host ? [host] : []), () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
