import { z } from 'zod';

import type { RegistrationTokenService } from '../../clients/registration-token.service.js';
import { MAX_TOKEN_LIFETIME_SECONDS, MAX_TOKEN_USES } from '../../clients/registration-token.service.js';
import { AppError } from '../../http/app-error.js';
import { authorityOf } from './api-auth.js';
import type { ApiRoute } from './api-route.js';
import { defineRoute } from './api-route.js';
import { createdRegistrationTokenSchema, registrationTokenListSchema } from './api-schemas.js';

const tokenParams = z.strictObject({
  tokenId: z.string().min(1).max(100).describe('The token id shown in the list (not the token)'),
});

const createBody = z
  .strictObject({
    expiresInSeconds: z
      .number()
      .int('must be a whole number of seconds')
      .min(60, 'must be at least 60 seconds')
      .max(MAX_TOKEN_LIFETIME_SECONDS, `must be at most ${MAX_TOKEN_LIFETIME_SECONDS} seconds`)
      .optional()
      .describe('Lifetime in seconds; omit for a token that does not expire'),
    uses: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(MAX_TOKEN_USES, `must be at most ${MAX_TOKEN_USES}`)
      .optional()
      .describe('How many clients it may register; omit for no limit'),
  })
  .describe('A new registration token');

export function registrationTokenRoutes({ registrationTokens }: { registrationTokens: RegistrationTokenService }): ApiRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/registration-tokens',
      operationId: 'listRegistrationTokens',
      tag: 'registration-tokens',
      summary: 'List registration tokens',
      description: 'Newest first, expired and revoked ones too (for 30 days). Never the token values.',
      scope: 'admin:clients:read',
      responses: { 200: { description: 'The tokens', schema: registrationTokenListSchema } },
      async handle() {
        return { status: 200, body: { registrationTokens: await registrationTokens.list() } };
      },
    }),

    defineRoute({
      method: 'post',
      path: '/registration-tokens',
      operationId: 'createRegistrationToken',
      tag: 'registration-tokens',
      summary: 'Issue a registration token',
      description:
        'An initial access token for the RFC 7591 registration endpoint (enabled with DYNAMIC_REGISTRATION). ' +
        'Its value (`token`) is shown only in this response. Send `{}` for a token without limits.',
      scope: 'admin:clients:write',
      body: createBody,
      responses: { 201: { description: 'The new token, with its value', schema: createdRegistrationTokenSchema } },
      async handle({ body, principal }) {
        const { token, view } = await registrationTokens.create(body, authorityOf(principal));
        return { status: 201, body: { ...view, token } };
      },
    }),

    defineRoute({
      method: 'delete',
      path: '/registration-tokens/{tokenId}',
      operationId: 'revokeRegistrationToken',
      tag: 'registration-tokens',
      summary: 'Revoke a registration token',
      scope: 'admin:clients:write',
      params: tokenParams,
      errors: [404],
      responses: { 204: { description: 'Revoked' } },
      async handle({ params, principal }) {
        if (!(await registrationTokens.revoke(params.tokenId, authorityOf(principal)))) {
          throw new AppError('registration_token.not_found');
        }
        return { status: 204 };
      },
    }),
  ];
}
