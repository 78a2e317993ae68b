import { z } from 'zod';

import type { PasswordResetService } from '../../accounts/password-reset.service.js';
import type { UserAdminService } from '../../accounts/user-admin.service.js';
import { userCreateSchema, userUpdateSchema } from '../../accounts/user-admin.service.js';
import { AppError } from '../../http/app-error.js';
import { authorityOf } from './api-auth.js';
import { ADMIN_API_PREFIX, pageQuerySchema } from './api-inputs.js';
import type { ApiRoute } from './api-route.js';
import { defineRoute } from './api-route.js';
import { userPageSchema, userViewSchema } from './api-schemas.js';

const userParams = z.strictObject({
  userId: z.string().min(1).max(200).describe('The account id (the `sub` claim)'),
});

const notFound = () => new AppError('user.not_found');

const SELF_GUARD = ' An administrator cannot do this to their own account (409 `user.self`).';

/** The 403 that the user service's authority rule adds (src/clients/admin-authority.ts). */
const ADMIN_POWER =
  'the user is an administrator, which needs every management API scope (an administrator holds them all; ' +
  '`user.scope_not_held`; nothing is changed)';
const ADMIN_GUARD = ' Acting on an administrator needs every management API scope (403 `user.scope_not_held`).';

/** The four one-word actions: POST with no body, answering the user as it is afterwards. */
function userAction(
  users: UserAdminService,
  spec: { path: string; operationId: string; summary: string; description: string; selfGuarded: boolean },
  act: (id: string, actor: Parameters<UserAdminService['resetMfa']>[1]) => Promise<unknown>,
): ApiRoute {
  return defineRoute({
    method: 'post',
    path: spec.path,
    operationId: spec.operationId,
    tag: 'users',
    summary: spec.summary,
    description: spec.description + (spec.selfGuarded ? SELF_GUARD : '') + ADMIN_GUARD,
    scope: 'admin:users:write',
    forbidden: ADMIN_POWER,
    params: userParams,
    errors: spec.selfGuarded ? [404, 409] : [404],
    responses: { 200: { description: 'The user after the change', schema: userViewSchema } },
    async handle({ params, principal }) {
      return { status: 200, body: await act(params.userId, authorityOf(principal)) };
    },
  });
}

const resetMailSchema = z
  .object({
    email: z.string().describe('Where the mail went: the account\'s address'),
    expiresAt: z.iso.datetime().describe('When the link in the mail stops working'),
  })
  .describe('A password reset mail handed over for delivery');

export function userRoutes({ userAdmin, passwordReset }: { userAdmin: UserAdminService; passwordReset: PasswordResetService }): ApiRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/users',
      operationId: 'listUsers',
      tag: 'users',
      summary: 'List users',
      description: 'Ordered by email; `search` matches a substring of the email or the name (case-insensitive), or the exact id.',
      scope: 'admin:users:read',
      query: pageQuerySchema,
      responses: { 200: { description: 'A page of users', schema: userPageSchema } },
      async handle({ query }) {
        return { status: 200, body: await userAdmin.list(query) };
      },
    }),

    defineRoute({
      method: 'post',
      path: '/users',
      operationId: 'createUser',
      tag: 'users',
      summary: 'Create a user',
      description: 'Giving the `admin` role needs every management API scope (403 `user.scope_not_held`).',
      scope: 'admin:users:write',
      forbidden: 'the user would get the admin role, which needs every management API scope (`user.scope_not_held`; nothing is stored)',
      body: userCreateSchema,
      errors: [409],
      responses: { 201: { description: 'The new user', schema: userViewSchema } },
      async handle({ body, principal }) {
        const user = await userAdmin.create(body, authorityOf(principal));
        return { status: 201, body: user, headers: { Location: `${ADMIN_API_PREFIX}/users/${encodeURIComponent(user.id)}` } };
      },
    }),

    defineRoute({
      method: 'get',
      path: '/users/{userId}',
      operationId: 'getUser',
      tag: 'users',
      summary: 'Read a user',
      scope: 'admin:users:read',
      params: userParams,
      errors: [404],
      responses: { 200: { description: 'The user', schema: userViewSchema } },
      async handle({ params }) {
        const user = await userAdmin.get(params.userId);
        if (!user) throw notFound();
        return { status: 200, body: user };
      },
    }),

    defineRoute({
      method: 'patch',
      path: '/users/{userId}',
      operationId: 'updateUser',
      tag: 'users',
      summary: 'Change a user',
      description:
        'Members left out stay as they are. `disabled: true` ends the person\'s sessions and revokes their tokens.' +
        SELF_GUARD +
        ' Giving the `admin` role, or any change to an administrator, needs every management API scope (403 `user.scope_not_held`).',
      scope: 'admin:users:write',
      forbidden:
        'the user is, or would become, an administrator: that needs every management API scope (`user.scope_not_held`; ' +
        'nothing is changed)',
      params: userParams,
      body: userUpdateSchema,
      errors: [404, 409],
      responses: { 200: { description: 'The user after the change', schema: userViewSchema } },
      async handle({ params, body, principal }) {
        return { status: 200, body: await userAdmin.update(params.userId, body, authorityOf(principal)) };
      },
    }),

    userAction(
      userAdmin,
      {
        path: '/users/{userId}/disable',
        operationId: 'disableUser',
        summary: 'Disable a user',
        description: 'The account can no longer sign in; its sessions end and its grants and tokens are revoked.',
        selfGuarded: true,
      },
      (id, actor) => userAdmin.setDisabled(id, true, actor),
    ),
    userAction(
      userAdmin,
      {
        path: '/users/{userId}/enable',
        operationId: 'enableUser',
        summary: 'Enable a user',
        description: 'The account can sign in again.',
        selfGuarded: false,
      },
      (id, actor) => userAdmin.setDisabled(id, false, actor),
    ),
    userAction(
      userAdmin,
      {
        path: '/users/{userId}/reset-mfa',
        operationId: 'resetUserMfa',
        summary: "Reset a user's second factor",
        description: 'Removes the authenticator app and the recovery codes.',
        selfGuarded: false,
      },
      (id, actor) => userAdmin.resetMfa(id, actor),
    ),
    userAction(
      userAdmin,
      {
        path: '/users/{userId}/require-password-reset',
        operationId: 'requireUserPasswordReset',
        summary: 'Make a user choose a new password',
        description: "The next sign-in ends on the new-password page; the person's sessions end now.",
        selfGuarded: false,
      },
      (id, actor) => userAdmin.requirePasswordReset(id, actor),
    ),

    defineRoute({
      method: 'post',
      path: '/users/{userId}/send-password-reset',
      operationId: 'sendUserPasswordReset',
      tag: 'users',
      summary: 'Send a user a password reset mail',
      description:
        'Mails the account a single-use link to choose a new password (valid PASSWORD_RESET ttl). Nothing changes until the ' +
        'person uses it; then their sessions end and their tokens are revoked. A disabled account is refused (409 ' +
        '`user.disabled`); mails to one address are limited per hour (429 `password_reset.throttled`).',
      scope: 'admin:users:write',
      params: userParams,
      errors: [404, 409, 429],
      responses: { 202: { description: 'The mail was handed over for delivery', schema: resetMailSchema } },
      async handle({ params, principal }) {
        const sent = await passwordReset.sendByAdmin(params.userId, authorityOf(principal));
        return { status: 202, body: { email: sent.email, expiresAt: sent.expiresAt.toISOString() } };
      },
    }),

    defineRoute({
      method: 'delete',
      path: '/users/{userId}',
      operationId: 'deleteUser',
      tag: 'users',
      summary: 'Delete a user',
      description: 'Deletes the account and revokes everything issued to it.' + SELF_GUARD + ADMIN_GUARD,
      scope: 'admin:users:write',
      forbidden: ADMIN_POWER,
      params: userParams,
      errors: [404, 409],
      responses: { 204: { description: 'Deleted' } },
      async handle({ params, principal }) {
        if (!(await userAdmin.delete(params.userId, authorityOf(principal)))) throw notFound();
        return { status: 204 };
      },
    }),
  ];
}
