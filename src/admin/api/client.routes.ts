import { z } from 'zod';

import type { ClientService } from '../../clients/client.service.js';
import { clientInputSchema } from '../../clients/client.service.js';
import { AppError } from '../../http/app-error.js';
import type { ApiResourceService } from '../../resources/api-resource.service.js';
import { refuseUnknownResources } from '../client-resources.js';
import { authorityOf } from './api-auth.js';
import type { ApiRoute } from './api-route.js';
import { defineRoute } from './api-route.js';
import { clientPageSchema, clientViewSchema, clientWithSecretSchema, secretRotationSchema } from './api-schemas.js';
import { ADMIN_API_PREFIX, pageQuerySchema } from './api-inputs.js';

const clientParams = z.strictObject({
  clientId: z.string().min(1).max(200).describe('The client id'),
});

/**
 * The body of create and replace: the client service's own input schema (the console and the
 * CLI use the same), strict here so that a misspelt member is refused instead of ignored.
 * Rules between fields (grant types and redirect URIs, auth method and keys, known scopes) are
 * the service's, reported per field in the same way. The API resources a client names must be
 * registered (client-resources.ts): checked here, before the service stores anything.
 */
const clientBody = clientInputSchema.strict();

const notFound = (clientId: string) => new AppError('client.not_found', { clientId });

/** The 403 that the client service's authority rule adds (src/clients/admin-authority.ts). */
const GRANT_NEEDED = (which: string) =>
  `${which} management API scopes or first-party status, which needs admin:clients:grant and each of those scopes ` +
  '(`client.scope_not_held`; nothing is changed)';

export function clientRoutes({ clients, resources }: { clients: ClientService; resources: ApiResourceService }): ApiRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/clients',
      operationId: 'listClients',
      tag: 'clients',
      summary: 'List clients',
      description: 'Ordered by name, then client id; `search` matches a substring of either, case-insensitively.',
      scope: 'admin:clients:read',
      query: pageQuerySchema,
      responses: { 200: { description: 'A page of clients', schema: clientPageSchema } },
      async handle({ query }) {
        return { status: 200, body: await clients.list(query) };
      },
    }),

    defineRoute({
      method: 'post',
      path: '/clients',
      operationId: 'createClient',
      tag: 'clients',
      summary: 'Register a client',
      description:
        'The response carries the client secret (for methods that use one): it is shown only here. Giving the client ' +
        'management API scopes (`scopes`) or `firstParty` also needs admin:clients:grant and each of those scopes. ' +
        '`allowedResources` and `defaultResource` must name registered API resources (see /resources).',
      scope: 'admin:clients:write',
      forbidden: GRANT_NEEDED('the client would get'),
      body: clientBody,
      responses: { 201: { description: 'The new client, with its secret', schema: clientWithSecretSchema } },
      async handle({ body, principal }) {
        await refuseUnknownResources(resources, body);
        const created = await clients.create(body, authorityOf(principal));
        return {
          status: 201,
          body: created,
          headers: { Location: `${ADMIN_API_PREFIX}/clients/${encodeURIComponent(created.clientId)}` },
        };
      },
    }),

    defineRoute({
      method: 'get',
      path: '/clients/{clientId}',
      operationId: 'getClient',
      tag: 'clients',
      summary: 'Read a client',
      scope: 'admin:clients:read',
      params: clientParams,
      errors: [404],
      responses: { 200: { description: 'The client', schema: clientViewSchema } },
      async handle({ params }) {
        const client = await clients.get(params.clientId);
        if (!client) throw notFound(params.clientId);
        return { status: 200, body: client };
      },
    }),

    defineRoute({
      method: 'put',
      path: '/clients/{clientId}',
      operationId: 'replaceClient',
      tag: 'clients',
      summary: 'Change a client',
      description:
        'Replaces every editable field (members left out take their defaults). The secret is kept; switching to a method ' +
        'without a secret drops it, switching to one with a secret makes a new one, returned here once. A client that has ' +
        'or would get management API scopes or `firstParty` can be changed only with admin:clients:grant and each of its scopes. ' +
        '`allowedResources` and `defaultResource` must name registered API resources.',
      scope: 'admin:clients:write',
      forbidden: GRANT_NEEDED('the client has or would get'),
      params: clientParams,
      body: clientBody,
      errors: [404],
      responses: { 200: { description: 'The changed client (with a secret only if a new one was made)', schema: clientWithSecretSchema } },
      async handle({ params, body, principal }) {
        await refuseUnknownResources(resources, body);
        return { status: 200, body: await clients.update(params.clientId, body, authorityOf(principal)) };
      },
    }),

    defineRoute({
      method: 'delete',
      path: '/clients/{clientId}',
      operationId: 'deleteClient',
      tag: 'clients',
      summary: 'Delete a client',
      description:
        'Also deletes every code, token and grant issued to it. A client with management API scopes or `firstParty` can be ' +
        'deleted only with admin:clients:grant and each of its scopes.',
      scope: 'admin:clients:write',
      forbidden: GRANT_NEEDED('the client has'),
      params: clientParams,
      errors: [404],
      responses: { 204: { description: 'Deleted' } },
      async handle({ params, principal }) {
        if (!(await clients.remove(params.clientId, authorityOf(principal)))) throw notFound(params.clientId);
        return { status: 204 };
      },
    }),

    defineRoute({
      method: 'post',
      path: '/clients/{clientId}/secret',
      operationId: 'rotateClientSecret',
      tag: 'clients',
      summary: "Rotate a client's secret",
      description:
        'Makes a new secret, shown only in this response. The previous one keeps working until `previousSecretExpiresAt` ' +
        '(CLIENT_SECRET_GRACE_PERIOD), so that the client can be reconfigured without downtime. No request body. ' +
        'Of concurrent rotations of one client exactly one succeeds; the others get 409 `client.rotation_conflict`. The new ' +
        "secret is the client's powers: a client with management API scopes or `firstParty` needs admin:clients:grant and " +
        'each of its scopes.',
      scope: 'admin:clients:write',
      forbidden: GRANT_NEEDED('the client has'),
      params: clientParams,
      errors: [404, 409],
      responses: { 200: { description: 'The new secret', schema: secretRotationSchema } },
      async handle({ params, principal }) {
        return { status: 200, body: await clients.rotateSecret(params.clientId, authorityOf(principal)) };
      },
    }),
  ];
}
