import type { Context } from 'koa';
import type { z } from 'zod';

import type { ApiPrincipal } from './api-auth.js';
import type { AdminScope } from './api-tokens.js';

/**
 * One entry of the management API's route table. The same array registers the routes
 * (api.router.ts) and generates the OpenAPI document (openapi.ts), so the two cannot drift:
 * the zod schemas here validate the requests, shape the responses and become the document's
 * JSON Schemas.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ApiResponseSpec {
  description: string;
  /**
   * What the body looks like. The router serialises a handler's body through it (unknown members
   * are dropped), so nothing leaves the API that the document does not describe.
   */
  schema?: z.ZodType;
  /** Default `application/json`. */
  contentType?: string;
}

/** A JSON reply, or a stream of text chunks (JSON lines). */
export type ApiReply =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { status: number; stream: AsyncIterable<string>; contentType: string; headers?: Record<string, string> };

export interface ApiInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** Undefined only on public routes (`scope: null`). */
  principal: ApiPrincipal | undefined;
  ctx: Context;
}

type AnyObject = z.ZodType<Record<string, unknown>, Record<string, unknown>>;

export interface ApiRoute<P extends AnyObject = AnyObject, Q extends AnyObject = AnyObject, B extends z.ZodType = z.ZodType> {
  method: HttpMethod;
  /** Relative to /api/admin/v1, OpenAPI style: `/clients/{clientId}`. */
  path: string;
  operationId: string;
  tag: string;
  summary: string;
  description?: string;
  /** The scope the token must hold; null for a public route (the OpenAPI document). */
  scope: AdminScope | null;
  params?: P;
  query?: Q;
  /** A JSON body (application/json, at most 64 KiB). */
  body?: B;
  /** Success responses by status. */
  responses: Record<number, ApiResponseSpec>;
  /** Error statuses this operation may answer besides the ones every operation may (see openapi.ts). */
  errors?: number[];
  /**
   * Why the operation may answer 403 although the token has the route's scope (a change that
   * needs more than the caller holds): added to the document's 403 description.
   */
  forbidden?: string;
  // NOTE: a method, not a function-valued property: method parameters are compared bivariantly,
  // so a route with specific schemas fits in the one ApiRoute[] table.
  handle(input: ApiInput<z.output<P>, z.output<Q>, z.output<B>>): Promise<ApiReply>;
}

/** No parameters of this kind: the handler gets `{}`. */
type NoInput = z.ZodObject<Record<string, never>>;

/** Types a route's handler from its schemas. */
export function defineRoute<P extends AnyObject = NoInput, Q extends AnyObject = NoInput, B extends z.ZodType = z.ZodUndefined>(
  route: ApiRoute<P, Q, B>,
): ApiRoute {
  return route as unknown as ApiRoute;
}

/** `/clients/{clientId}` → `/clients/:clientId` (@koa/router's syntax). */
export function koaPath(path: string): string {
  return path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
}
