import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Koa from 'koa';
import mount from 'koa-mount';
import views from 'koa-views';

import type { Deps } from './deps.js';
import { handleErrors } from './http/error-handler.js';
import { refuseCrossSiteWrites } from './http/fetch-metadata.js';
import { createHealthRouter } from './http/health.routes.js';
import { cachePublicMetadata, pinPublicOrigin } from './http/public-origin.js';
import { requestId, securityHeaders } from './http/security-headers.js';
import { bindRequestContext } from './http/request-context.js';
import { serveStatic } from './http/static.routes.js';
import { createSignInRouter } from './sign-in/index.js';
import { limitClientAuthentication } from './limits/client-auth-limit.js';
import { createDemoRouter } from './demo/demo.routes.js';
import { createAccountRouter } from './account/account.routes.js';
import { createPasswordResetRouter } from './account/password-reset.routes.js';
import { createAdminApi } from './admin/api/api.router.js';
import { createAdminConsoleRouter } from './admin/console/console.routes.js';
import { registerAuditPages } from './admin/console/audit.pages.js';
import { registerApiResourcePages } from './admin/console/api-resource.pages.js';
import { registerClientPages } from './admin/console/client.pages.js';
import { registerUserPages } from './admin/console/user.pages.js';
import { registerRegistrationTokenPages } from './admin/console/registration-token.pages.js';
import { registerApiTokenPages } from './admin/console/api-token.pages.js';
import { registerInvitationPages } from './admin/console/invitation.pages.js';
import { createInvitationLinkRouter } from './invitations/invitation-link.routes.js';
import { measureRequests, providerPaths, serveMetrics } from './metrics/metrics.routes.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// src/app.ts in development, dist/src/app.js when compiled: views/ sits at the project root.
export const VIEWS_DIR =
  [path.resolve(here, '..', 'views'), path.resolve(here, '..', '..', 'views')].find((dir) => existsSync(path.join(dir, 'layout.pug'))) ??
  path.resolve(here, '..', 'views');

export function createApp(deps: Deps): Koa {
  const { config, provider, logger, pages } = deps;
  const app = new Koa();
  // NOTE: the provider runs inside this app, so it reads cookies with this app's keys and
  // honours X-Forwarded-For only through this app's `proxy` flag (koa-mount shares the host app's ctx); never
  // X-Forwarded-Host/Proto, which pinPublicOrigin removes.
  app.keys = config.cookieKeys;
  app.proxy = config.trustProxy;
  // NOTE: X-Forwarded-For is read from the right (Koa's maxIpsCount): each proxy appends the
  // address it was connected from, so only the last PROXY_HOPS entries were written by our
  // proxies; anything to their left is whatever the client sent and would be its own choice.
  app.maxIpsCount = config.proxyHops;
  app.silent = true;

  // Outermost, so every answer is counted, refusals of the middleware below included.
  if (deps.metrics) app.use(measureRequests(deps.metrics, providerPaths(provider)));
  // First: nothing below may build a URL from the request's Host or X-Forwarded-Host/Proto.
  app.use(pinPublicOrigin({ issuer: config.issuer }));
  app.use(cachePublicMetadata({ paths: ['/.well-known/openid-configuration', provider.pathFor('jwks')] }));
  app.use(requestId({ trustProxy: config.trustProxy }));
  app.use(async function bindRequestLog(ctx, next) {
    // ctx.ip: with TRUST_PROXY the PROXY_HOPS-th X-Forwarded-For entry from the right, else the socket's.
    ctx.state.log = logger.child({ requestId: ctx.state.requestId, ip: ctx.ip });
    await next();
  });
  app.use(bindRequestContext());
  app.use(securityHeaders({ hsts: config.issuer.startsWith('https://') }));
  // Compiled templates are kept everywhere but in development (where an edited template shows at
  // the next request): tests render what production renders, without compiling each page anew.
  app.use(views(VIEWS_DIR, { extension: 'pug', options: { cache: config.env !== 'development', basedir: VIEWS_DIR } }));
  app.use(handleErrors({ logger, pages }));
  app.use(serveStatic({ viewsDir: VIEWS_DIR }));
  // On the main port only without a port of their own (METRICS_PORT, served by main.ts).
  if (deps.metrics && config.metrics.token !== undefined && config.metrics.port === undefined) {
    app.use(serveMetrics({ metrics: deps.metrics, token: config.metrics.token }));
  }
  // Before the routers read any body: a refused cross-site form does nothing (fetch-metadata.ts).
  app.use(refuseCrossSiteWrites({ issuer: config.issuer, prefixes: ['/interaction', '/account', '/admin'] }));

  const health = createHealthRouter({ connection: deps.connection });
  app.use(health.routes());
  const interactions = createSignInRouter(deps);
  app.use(interactions.routes());
  app.use(interactions.allowedMethods());
  const account = createAccountRouter(deps);
  app.use(account.routes());
  app.use(account.allowedMethods());
  app.use(createPasswordResetRouter(deps).routes());
  app.use(createInvitationLinkRouter(deps).routes());
  // The management API answers everything under /api/admin/v1 itself (problem+json errors).
  app.use(createAdminApi(deps).middleware);
  const adminConsole = createAdminConsoleRouter(deps, [registerClientPages, registerApiResourcePages, registerAuditPages, registerUserPages, registerInvitationPages, registerRegistrationTokenPages, registerApiTokenPages]);
  app.use(adminConsole.routes());
  app.use(adminConsole.allowedMethods());
  if (config.seedDemo) app.use(createDemoRouter({ config, pages }).routes());

  // Failed client authentication per client IP, in front of the provider's token endpoints.
  app.use(limitClientAuthentication({ limits: deps.limits, logger, clock: deps.clock }));
  // Back-pressure for the audit events the provider emits (recorded in the background, as its
  // listeners cannot wait): while the audit buffer is full, the answer waits until it drains.
  app.use(async function auditBackPressure(_ctx, next) {
    await next();
    const draining = deps.audit.backPressure();
    if (draining) await draining;
  });
  app.use(mount(provider));

  app.on('error', (err: unknown) => {
    logger.debug('koa error event', { reason: (err as Error).message });
  });
  return app;
}
