import { z } from 'zod';

import type { InvitationService } from '../../invitations/invitation.service.js';
import { DEFAULT_INVITATION_DAYS, MAX_INVITATION_DAYS, MAX_INVITATION_USES } from '../../invitations/invitation.service.js';
import { AppError } from '../../http/app-error.js';
import { authorityOf } from './api-auth.js';
import type { ApiRoute } from './api-route.js';
import { defineRoute } from './api-route.js';
import { createdInvitationSchema, invitationListSchema } from './api-schemas.js';

/**
 * Invitations to sign up (SIGN_UP=invite). They need the users scopes: an invitation lets
 * people create plain accounts (never roles), which is less than admin:users:write allows directly.
 */

const invitationParams = z.strictObject({
  invitationId: z.string().min(1).max(100).describe('The invitation id shown in the list (not the token)'),
});

const createBody = z
  .strictObject({
    email: z.string().max(254).optional().describe('Bind the invitation to this address; omit for an open invitation (anyone with the link)'),
    maxUses: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(MAX_INVITATION_USES, `must be at most ${MAX_INVITATION_USES}`)
      .optional()
      .describe('How many accounts it may create; default 1'),
    expiresInDays: z
      .number()
      .int('must be a whole number of days')
      .min(1, 'must be at least 1 day')
      .max(MAX_INVITATION_DAYS, `must be at most ${MAX_INVITATION_DAYS} days`)
      .optional()
      .describe(`Days until it expires; default ${DEFAULT_INVITATION_DAYS}`),
    sendEmail: z.boolean().optional().describe('Mail the link to `email` (email-bound invitations only); default false'),
  })
  .describe('A new invitation');

export function invitationRoutes({ invitations }: { invitations: InvitationService }): ApiRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/invitations',
      operationId: 'listInvitations',
      tag: 'invitations',
      summary: 'List invitations',
      description: 'Newest first, with their state; ended ones (expired, revoked) for 30 days. Never the links.',
      scope: 'admin:users:read',
      responses: { 200: { description: 'The invitations', schema: invitationListSchema } },
      async handle() {
        return { status: 200, body: { invitations: await invitations.list() } };
      },
    }),

    defineRoute({
      method: 'post',
      path: '/invitations',
      operationId: 'createInvitation',
      tag: 'invitations',
      summary: 'Invite someone to sign up',
      description:
        'An invitation link for the sign-up page (used when SIGN_UP=invite). The link (`link`) is shown only in this response; ' +
        'with `sendEmail` it is also mailed to `email`.',
      scope: 'admin:users:write',
      body: createBody,
      errors: [503],
      responses: { 201: { description: 'The new invitation, with its link', schema: createdInvitationSchema } },
      async handle({ body, principal }) {
        const { link, view, mailed } = await invitations.create(body, authorityOf(principal));
        return { status: 201, body: { ...view, link, mailed } };
      },
    }),

    defineRoute({
      method: 'delete',
      path: '/invitations/{invitationId}',
      operationId: 'revokeInvitation',
      tag: 'invitations',
      summary: 'Revoke an invitation',
      scope: 'admin:users:write',
      params: invitationParams,
      errors: [404],
      responses: { 204: { description: 'Revoked' } },
      async handle({ params, principal }) {
        if (!(await invitations.revoke(params.invitationId, authorityOf(principal)))) {
          throw new AppError(404, 'invitation.not_found', 'No invitation with this id, or it was already revoked.');
        }
        return { status: 204 };
      },
    }),
  ];
}
