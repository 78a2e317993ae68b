import { z } from 'zod';

import { AppError } from '../../http/app-error.js';
import type { ApiResourceService } from '../../resources/api-resource.service.js';
import { apiResourceInputSchema, newApiResourceSchema } from '../../resources/api-resource.service.js';
import { authorityOf } from './api-auth.js';
import type { ApiRoute } from './api-route.js';
import { defineRoute } from './api-route.js';
import { ADMIN_API_PREFIX } from './api-inputs.js';
import { apiResourceListSchema, apiResourceViewSchema } from './api-schemas.js';

/**
 * API resources (RFC 8707): the apps' own APIs that access tokens can be for. They are client
 * configuration (a client names the resources it may get tokens for), so they share the
 * clients' scopes: admin:clients:read to read, admin:clients:write to change.
 *
 * The store refuses identifiers on this server's own origin and the management API's own
 * identifier, so nobody holding admin:clients:write can make tokens whose audience is one of
 * our endpoints, or redefine the OpenID Connect or management API scopes.
 */

const resourceParams = z.strictObject({
  identifier: z.string().min(1).max(2000).describe('The resource identifier (an absolute URI), percent-encoded as one path segment'),
});

/** Create: the store's own input schema, strict so that a misspelt member is refused instead of ignored. */
const createBody = newApiResourceSchema.strict();
/** Replace: every editable field; the identifier is the path's and never changes. */
const replaceBody = apiResourceInputSchema.strict();

const notFound = (identifier: string) => new AppError('resource.not_found', { identifier });
const location = (identifier: string) => `${ADMIN_API_PREFIX}/resources/${encodeURIComponent(identifier)}`;

const CLIENT_CONFIGURATION = 'API resources are client configuration: the admin:clients scopes cover them.';

export function apiResourceRoutes({ resources }: { resources: ApiResourceService }): ApiRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/resources',
      operationId: 'listApiResources',
      tag: 'resources',
      summary: 'List API resources',
      description: `Every registered API resource, by name then identifier. ${CLIENT_CONFIGURATION}`,
      scope: 'admin:clients:read',
      responses: { 200: { description: 'The API resources', schema: apiResourceListSchema } },
      async handle() {
        return { status: 200, body: { resources: await resources.list() } };
      },
    }),

    defineRoute({
      method: 'post',
      path: '/resources',
      operationId: 'createApiResource',
      tag: 'resources',
      summary: 'Register an API resource',
      description:
        'The identifier is an absolute https, http or urn URI without a query or fragment, not on this server’s own origin ' +
        'and not the management API’s; it becomes the `aud` of the access tokens for this API and cannot change later. ' +
        'Scopes cannot be OpenID Connect or management API scopes. 409 `resource.exists` when the identifier is taken. ' +
        CLIENT_CONFIGURATION,
      scope: 'admin:clients:write',
      body: createBody,
      errors: [409],
      responses: { 201: { description: 'The new API resource', schema: apiResourceViewSchema } },
      async handle({ body, principal }) {
        const created = await resources.create(body, authorityOf(principal));
        return { status: 201, body: created, headers: { Location: location(created.identifier) } };
      },
    }),

    defineRoute({
      method: 'get',
      path: '/resources/{identifier}',
      operationId: 'getApiResource',
      tag: 'resources',
      summary: 'Read an API resource',
      description: CLIENT_CONFIGURATION,
      scope: 'admin:clients:read',
      params: resourceParams,
      errors: [404],
      responses: { 200: { description: 'The API resource', schema: apiResourceViewSchema } },
      async handle({ params }) {
        const resource = await resources.get(params.identifier);
        if (!resource) throw notFound(params.identifier);
        return { status: 200, body: resource };
      },
    }),

    defineRoute({
      method: 'put',
      path: '/resources/{identifier}',
      operationId: 'replaceApiResource',
      tag: 'resources',
      summary: 'Change an API resource',
      description:
        'Replaces every editable field (members left out take their defaults); the identifier stays. Tokens already issued ' +
        `keep what they were issued with. ${CLIENT_CONFIGURATION}`,
      scope: 'admin:clients:write',
      params: resourceParams,
      body: replaceBody,
      errors: [404],
      responses: { 200: { description: 'The changed API resource', schema: apiResourceViewSchema } },
      async handle({ params, body, principal }) {
        return { status: 200, body: await resources.update(params.identifier, body, authorityOf(principal)) };
      },
    }),

    defineRoute({
      method: 'delete',
      path: '/resources/{identifier}',
      operationId: 'deleteApiResource',
      tag: 'resources',
      summary: 'Delete an API resource',
      description:
        'No new tokens are issued for it: clients that still list it get invalid_target when they ask for it. JWT access ' +
        `tokens already issued stay valid until they expire. ${CLIENT_CONFIGURATION}`,
      scope: 'admin:clients:write',
      params: resourceParams,
      errors: [404],
      responses: { 204: { description: 'Deleted' } },
      async handle({ params, principal }) {
        if (!(await resources.remove(params.identifier, authorityOf(principal)))) throw notFound(params.identifier);
        return { status: 204 };
      },
    }),
  ];
}
