import { Readable } from 'node:stream';

import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';

import type { AccountService } from '../../accounts/account.service.js';
import type { PasswordResetService } from '../../accounts/password-reset.service.js';
import type { UserAdminService } from '../../accounts/user-admin.service.js';
import type { AuditService } from '../../audit/audit.service.js';
import type { ClientService } from '../../clients/client.service.js';
import type { RegistrationTokenService } from '../../clients/registration-token.service.js';
import type { Config } from '../../config/config.js';
import { isStorableString } from '../../db/storable.js';
import type { InvitationService } from '../../invitations/invitation.service.js';
import { readJsonBody, JSON_BODY_LIMIT } from '../../http/json-body.js';
import type { Logger } from '../../logging/logger.js';
import type { ApiResourceService } from '../../resources/api-resource.service.js';
import { apiResourceRoutes } from './api-resource.routes.js';
import { createApiAuth } from './api-auth.js';
import type { ApiPrincipal } from './api-auth.js';
import { ADMIN_API_PREFIX } from './api-inputs.js';
import type { ApiReply, ApiRoute } from './api-route.js';
import { defineRoute, koaPath } from './api-route.js';
import { auditRoutes } from './audit.routes.js';
import { clientRoutes } from './client.routes.js';
import { buildOpenApiDocument } from './openapi.js';
import { invitationRoutes } from './invitation.routes.js';
import { InputError, ProblemError, fieldProblemsFrom, problemErrors } from './problem.js';
import { registrationTokenRoutes } from './registration-token.routes.js';
import { userRoutes } from './user.routes.js';

/**
 * The management API: JSON over the same services as the admin console and the CLI, at
 * /api/admin/v1. One route table (api-route.ts) registers the routes here and generates the
 * OpenAPI document served at /api/admin/v1/openapi.json.
 */

export interface AdminApiDeps {
  config: Config;
  logger: Logger;
  provider: Provider;
  accounts: AccountService;
  clients: ClientService;
  /** API resources (RFC 8707): /resources, and the check of the resources a client names. */
  resources: ApiResourceService;
  userAdmin: UserAdminService;
  audit: AuditService;
  registrationTokens: RegistrationTokenService;
  invitations: InvitationService;
  /** Reset mails administrators send (POST /users/{userId}/send-password-reset). */
  passwordReset: PasswordResetService;
}

export interface AdminApi {
  /** Handles every request under /api/admin/v1 (404/405 problems included); passes others on. */
  middleware: Middleware;
  /** The route table: what is registered and what the document lists. */
  routes: readonly ApiRoute[];
  /** The @koa/router the table was registered on (tests compare it with the document). */
  router: Router;
  openApiDocument(): Record<string, unknown>;
}

/** Every route of the API, the OpenAPI document's own included. */
export function adminApiRoutes(deps: AdminApiDeps, openApiDocument: () => Record<string, unknown>): ApiRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/openapi.json',
      operationId: 'getOpenApiDocument',
      tag: 'meta',
      summary: 'This API as an OpenAPI 3.1 document',
      scope: null,
      responses: { 200: { description: 'The OpenAPI document', schema: z.record(z.string(), z.unknown()) } },
      async handle() {
        return { status: 200, body: openApiDocument() };
      },
    }),
    ...clientRoutes(deps),
    ...apiResourceRoutes(deps),
    ...registrationTokenRoutes(deps),
    ...userRoutes(deps),
    ...invitationRoutes(deps),
    ...auditRoutes(deps),
  ];
}

/** Parses one part of the request with its schema; field problems name the part's members. */
function parseInput<S extends z.ZodType>(schema: S | undefined, value: unknown, where: 'path' | 'query' | 'body'): z.output<S> | undefined {
  if (!schema) return undefined;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = fieldProblemsFrom(parsed.error).map((p) =>
    where !== 'body' && p.message === 'is not a field that can be set here' ? { ...p, message: `is not a ${where} parameter of this operation` } : p,
  );
  throw new InputError(problems, where);
}

/** A streamed reply: the first chunk is read before the status is sent, so an early failure is still a problem document. */
async function sendStream(ctx: Context, reply: Extract<ApiReply, { stream: AsyncIterable<string> }>, logger: Logger): Promise<void> {
  const iterator = reply.stream[Symbol.asyncIterator]();
  const first = await iterator.next();
  async function* rest(): AsyncGenerator<string> {
    if (first.done) return;
    yield first.value;
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } catch (err) {
      // Headers are out: the only way left to say "incomplete" is to break the connection.
      logger.error('admin api stream failed', { err, path: ctx.path });
      throw err;
    }
  }
  ctx.status = reply.status;
  ctx.type = reply.contentType;
  ctx.body = Readable.from(rest());
}

function send(ctx: Context, route: ApiRoute, reply: ApiReply, logger: Logger): Promise<void> | void {
  for (const [name, value] of Object.entries(reply.headers ?? {})) ctx.set(name, value);
  if ('stream' in reply) return sendStream(ctx, reply, logger);
  const spec = route.responses[reply.status];
  if (!spec) throw new Error(`${route.operationId} answered ${reply.status}, which its route does not declare`);
  ctx.status = reply.status;
  if (spec.schema) {
    // Through JSON first (dates become strings), then the schema: only documented members leave.
    const plain = JSON.parse(JSON.stringify(reply.body ?? null)) as unknown;
    ctx.body = spec.schema.parse(plain);
    ctx.type = spec.contentType ?? 'application/json';
  }
}

export function createAdminApi(deps: AdminApiDeps): AdminApi {
  const { logger } = deps;
  const auth = createApiAuth(deps);
  let document: Record<string, unknown> | undefined;
  const openApiDocument = () => (document ??= buildOpenApiDocument(routes, deps.config));
  const routes = adminApiRoutes(deps, openApiDocument);

  const router = new Router({ prefix: ADMIN_API_PREFIX });
  for (const route of routes) {
    const steps: Middleware[] = [];
    if (route.scope) steps.push(auth.authenticate, auth.requireScope(route.scope));
    steps.push(async function handleApiRequest(ctx) {
      // Inputs after authorization: nobody without a token learns what the API would accept.
      const unstorable = Object.entries(ctx.params as Record<string, string>).filter(([, value]) => !isStorableString(value));
      if (unstorable.length > 0) throw new InputError(unstorable.map(([field]) => ({ field, message: 'contains a NUL character' })), 'path');
      const params = parseInput(route.params, { ...ctx.params }, 'path');
      const query = parseInput(route.query, { ...ctx.query }, 'query');
      const body = route.body ? parseInput(route.body, await readJsonBody(ctx, { limit: JSON_BODY_LIMIT }), 'body') : undefined;
      const principal = ctx.state.apiPrincipal as ApiPrincipal | undefined;
      const reply = await route.handle({ params: params ?? {}, query: query ?? {}, body, principal, ctx });
      await send(ctx, route, reply, logger);
    });
    router.register(koaPath(route.path), [route.method], steps, { name: route.operationId });
  }

  const errors = problemErrors({ logger });
  const routed = router.routes() as unknown as Middleware;

  async function unmatchedApiRoute(ctx: Context): Promise<void> {
    if (ctx.body !== undefined || ctx.status !== 404) return;
    // Reached only when no route answered: the path is unknown, or known with other methods.
    const layers = (ctx as Context & { matched?: Array<{ methods: string[] }> }).matched ?? [];
    const allowed = [...new Set(layers.flatMap((layer) => layer.methods))];
    if (allowed.length > 0) {
      throw new ProblemError(405, 'request.method_not_allowed', `${ctx.method} is not allowed here. Allowed: ${allowed.join(', ')}.`, {
        Allow: allowed.join(', '),
      });
    }
    throw new ProblemError(404, 'not_found', 'There is no such operation in this API (see openapi.json).');
  }

  return {
    routes,
    router,
    openApiDocument,
    middleware: async function adminApi(ctx, next) {
      if (ctx.path !== ADMIN_API_PREFIX && !ctx.path.startsWith(`${ADMIN_API_PREFIX}/`)) return next();
      await errors(ctx, async () => {
        // Responses carry secrets (new client secrets, registration tokens) and personal data.
        ctx.set('Cache-Control', 'no-store');
        await routed(ctx, () => unmatchedApiRoute(ctx));
      });
    },
  };
}
