import { STATUS_CODES } from 'node:http';

import { z } from 'zod';

import type { Config } from '../../config/config.js';
import type { ApiRoute } from './api-route.js';
import { problemSchema, PROBLEM_CONTENT_TYPE } from './problem.js';

/**
 * The OpenAPI 3.1 document of the management API, generated from the route table that
 * registers the routes (api-route.ts) and its zod schemas (z.toJSONSchema: JSON Schema 2020-12,
 * the dialect of OpenAPI 3.1).
 */

type JsonSchema = Record<string, unknown>;
type JsonObject = Record<string, unknown>;

const SCOPE_DESCRIPTIONS: Record<string, string> = {
  'admin:clients:read': 'List and read OAuth clients, API resources and registration tokens',
  'admin:clients:write':
    'Create, change and delete OAuth clients and API resources (client configuration), rotate client secrets, issue and revoke registration tokens',
  'admin:clients:grant':
    'Give clients management API scopes (only ones the token holds itself) or first-party status; change, rotate the secret of, ' +
    'or delete such clients. Needed with admin:clients:write for any change to such a client.',
  'admin:users:read': 'List and read users and invitations',
  'admin:users:write':
    'Create, change, disable and delete users, reset their second factor and password, issue and revoke invitations. Giving the admin role, or acting on an ' +
    'administrator, needs every scope of this API besides.',
  'admin:audit:read': 'Read and export the audit log',
};

const TAG_DESCRIPTIONS: Record<string, string> = {
  clients: 'OAuth clients (relying parties)',
  resources: 'API resources (RFC 8707): the apps’ own APIs that access tokens can be for; client configuration, under the admin:clients scopes',
  'registration-tokens': 'Initial access tokens for RFC 7591 dynamic client registration',
  users: 'People who sign in',
  invitations: 'Invitations to sign up (SIGN_UP=invite)',
  audit: 'The audit log',
  meta: 'About this API',
};

/** The JSON Schema of a zod schema, without the `$schema` member (the document's dialect applies). */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function parametersOf(schema: z.ZodType | undefined, location: 'path' | 'query'): JsonObject[] {
  if (!schema) return [];
  const json = jsonSchemaOf(schema, 'input');
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...propertySchema } = property;
    return {
      name,
      in: location,
      // OpenAPI 3.1 §4.8.12.1: path parameters are always required.
      required: location === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: propertySchema,
    };
  });
}

const problemRef = { $ref: '#/components/schemas/Problem' };

function errorResponse(status: number, description: string): JsonObject {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: problemRef } } };
}

/** Statuses every operation of this kind may answer, whatever its own errors. */
function errorStatuses(route: ApiRoute): Map<number, string> {
  const out = new Map<number, string>();
  if (route.params || route.query || route.body) out.set(400, 'The request is invalid: `errors` lists the fields');
  if (route.scope) {
    out.set(401, 'No bearer token, or one that is unknown, expired, revoked or not for this API (WWW-Authenticate says which)');
    const base = `The token lacks the scope ${route.scope}, or its account is not an enabled administrator`;
    out.set(403, route.forbidden ? `${base}; or ${route.forbidden}` : base);
  }
  for (const status of route.errors ?? []) out.set(status, STATUS_CODES[status] ?? 'Error');
  if (route.body) {
    out.set(413, 'The body is larger than 64 KiB');
    out.set(415, 'The body is not application/json');
  }
  out.set(500, 'Something went wrong on the server');
  return new Map([...out].sort(([a], [b]) => a - b));
}

function operationOf(route: ApiRoute): JsonObject {
  const responses: JsonObject = {};
  for (const [status, spec] of Object.entries(route.responses)) {
    responses[status] = spec.schema
      ? { description: spec.description, content: { [spec.contentType ?? 'application/json']: { schema: jsonSchemaOf(spec.schema, 'output') } } }
      : { description: spec.description };
  }
  for (const [status, description] of errorStatuses(route)) {
    responses[String(status)] ??= errorResponse(status, description);
  }
  const parameters = [...parametersOf(route.params, 'path'), ...parametersOf(route.query, 'query')];
  return {
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    // A scoped route takes an OAuth token with that scope; public routes need nothing.
    security: route.scope ? [{ oauth2: [route.scope] }, { bearer: [] }] : [],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(route.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchemaOf(route.body, 'input') } } } }
      : {}),
    responses,
  };
}

export function buildOpenApiDocument(
  routes: readonly ApiRoute[],
  config: Pick<Config, 'issuer' | 'productName' | 'adminApi'>,
): JsonObject {
  const paths: Record<string, JsonObject> = {};
  for (const route of routes) {
    const item = (paths[route.path] ??= {});
    if (item[route.method]) throw new Error(`duplicate route ${route.method.toUpperCase()} ${route.path}`);
    item[route.method] = operationOf(route);
  }
  const tags = [...new Set(routes.map((r) => r.tag))].map((name) => ({ name, ...(TAG_DESCRIPTIONS[name] ? { description: TAG_DESCRIPTIONS[name] } : {}) }));
  const scopes = Object.fromEntries(config.adminApi.scopes.map((s) => [s, SCOPE_DESCRIPTIONS[s] ?? s]));

  return {
    openapi: '3.1.0',
    info: {
      title: `${config.productName} management API`,
      version: '1',
      description:
        'Manage OAuth clients, API resources, users, registration tokens and the audit log. Every operation except this document needs an ' +
        `access token issued by this server for the resource \`${config.adminApi.resource}\` (RFC 8707): a service client ` +
        'gets one with the client_credentials grant (`resource` and `scope` parameters; the client must list the scopes in ' +
        'its `scope` metadata), an administrator gets one from the admin console. Errors are RFC 9457 problem details. ' +
        'Nobody gives more than they hold: giving a client scopes of this API or first-party status needs `admin:clients:grant` ' +
        'and each of those scopes, as does changing, rotating the secret of or deleting such a client (403 ' +
        '`client.scope_not_held`); giving the admin role, or acting on an administrator, needs every scope of this API (403 ' +
        '`user.scope_not_held`).',
    },
    servers: [{ url: config.adminApi.resource }],
    tags,
    paths,
    components: {
      schemas: { Problem: jsonSchemaOf(problemSchema, 'output') },
      securitySchemes: {
        oauth2: {
          type: 'oauth2',
          description: `Client credentials grant with resource=${config.adminApi.resource}`,
          flows: { clientCredentials: { tokenUrl: `${config.issuer}/token`, scopes } },
        },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An opaque access token issued by this server for the management API (e.g. by the admin console)',
        },
      },
    },
  };
}
