import { z } from 'zod';

import type { PasswordResetService } from '../../accounts/password-reset.service.js';
import type { SignInMethod, UserAdminService, UserAdminView } from '../../accounts/user-admin.service.js';
import { PasswordPolicyError } from '../../accounts/password-policy.js';
import { UserValidationError } from '../../accounts/user-admin.service.js';
import type { AdminAuthority } from '../../clients/admin-authority.js';
import { fullAuthority } from '../../clients/admin-authority.js';
import { AppError } from '../../http/app-error.js';
import type { ConsoleContext } from './console-kit.js';
import type { ConsolePages } from './console.routes.js';

/**
 * Users: list and search, one person's details, and what admins do to people (disable, reset
 * the second factor, require a new password, grant or revoke the admin role, delete), all
 * through deps.userAdmin so the rules (self-guards, revocation, audit) are the service's.
 *
 * Every destructive action is a GET confirmation page, then a POST from it (CSRF-checked by
 * kit.post); a refused action (409 `user.self`: an admin cannot lock themselves out) comes
 * back as the detail page with the service's message, at the service's status.
 */

const BASE = '/admin/users';

/** Account ids are opaque (16 random bytes, base64url); anything else cannot name one. */
const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

const listQuery = z.object({
  q: z.string().max(200).optional(),
  cursor: z.string().max(400).optional(),
});

const METHOD_LABELS: Record<SignInMethod, string> = {
  password: 'Password',
  email_code: 'Code by email',
  totp: 'Authenticator app',
};

/** Notices after a redirect: a fixed code in the query, never text from the URL. */
const NOTICES = {
  created: 'The user was created.',
  disabled: 'The account was disabled: its sessions ended and its tokens were revoked.',
  enabled: 'The account was enabled.',
  'mfa-reset': 'The second factor was reset: the authenticator app and the recovery codes were removed.',
  'password-reset-required': 'At the next sign-in this person must choose a new password. Their sessions have ended.',
  'password-reset-sent': 'A password reset mail with a single-use link was sent to this person.',
  'admin-granted': 'The admin role was granted.',
  'admin-revoked': 'The admin role was revoked.',
  deleted: 'The user was deleted.',
} as const;
type NoticeCode = keyof typeof NOTICES;

function noticeFrom(value: unknown): string | undefined {
  return typeof value === 'string' && Object.hasOwn(NOTICES, value) ? NOTICES[value as NoticeCode] : undefined;
}

type ActionId = 'disable' | 'enable' | 'reset-mfa' | 'require-password-reset' | 'send-password-reset' | 'grant-admin' | 'revoke-admin' | 'delete';

/** What an action may use besides the user service. */
interface ActionServices {
  passwordReset: PasswordResetService;
}

interface ActionSpec {
  /** The button. */
  label: string;
  /** The confirmation page's question. */
  question: string;
  /** What happens, on the confirmation page. */
  consequence: string;
  /** Destructive: reached through a confirmation page. Otherwise the detail page posts directly. */
  confirm: boolean;
  danger: boolean;
  /** Offered for this user (the service decides what is allowed). */
  offered(user: UserAdminView, self: boolean): boolean;
  /** Said on the detail page instead of the button when not offered for yourself. */
  selfNote?: string;
  run(users: UserAdminService, user: UserAdminView, by: AdminAuthority, services: ActionServices): Promise<unknown>;
  notice: NoticeCode;
}

const ACTIONS: Record<ActionId, ActionSpec> = {
  disable: {
    label: 'Disable account',
    question: 'Disable this account?',
    consequence:
      'The person can no longer sign in. Their sessions end now and every token issued to them is revoked. You can enable the account again later.',
    confirm: true,
    danger: true,
    offered: (user, self) => !user.disabled && !self,
    selfNote: 'You cannot disable your own account.',
    run: (users, user, by) => users.setDisabled(user.id, true, by),
    notice: 'disabled',
  },
  enable: {
    label: 'Enable account',
    question: 'Enable this account?',
    consequence: 'The person can sign in again.',
    confirm: false,
    danger: false,
    offered: (user) => user.disabled,
    run: (users, user, by) => users.setDisabled(user.id, false, by),
    notice: 'enabled',
  },
  'reset-mfa': {
    label: 'Reset second factor',
    question: 'Reset the second factor?',
    consequence:
      'Removes the authenticator app and all recovery codes. Where a second factor is required, the person then gets a code by email and can set up a new app.',
    confirm: true,
    danger: true,
    offered: (user) => user.mfa.totp || user.mfa.recoveryCodesLeft > 0,
    run: (users, user, by) => users.resetMfa(user.id, by),
    notice: 'mfa-reset',
  },
  'require-password-reset': {
    label: 'Require a new password',
    question: 'Require a new password at the next sign-in?',
    consequence:
      'The person’s sessions end now; the next sign-in ends on a page where they must choose a new password. Tokens already issued stay valid (disable the account to revoke them).',
    confirm: true,
    danger: true,
    offered: (user) => user.hasPassword && !user.passwordResetRequired,
    run: (users, user, by) => users.requirePasswordReset(user.id, by),
    notice: 'password-reset-required',
  },
  'send-password-reset': {
    label: 'Send password reset mail',
    question: 'Send a password reset mail?',
    consequence: 'The person gets a single-use link to choose a new password. Nothing changes until they use it.',
    // Nothing changes until the person acts: a button on the detail page (a CSRF-checked POST).
    confirm: false,
    danger: false,
    offered: (user) => !user.disabled,
    run: (_users, user, by, services) => services.passwordReset.sendByAdmin(user.id, by),
    notice: 'password-reset-sent',
  },
  'grant-admin': {
    label: 'Grant admin role',
    question: 'Make this person an administrator?',
    consequence:
      'Administrators manage clients, users and the audit log through this console and the management API. They must use a second factor to sign in here.',
    confirm: true,
    danger: false,
    offered: (user) => !user.roles.includes('admin'),
    run: (users, user, by) => users.update(user.id, { roles: [...new Set([...user.roles, 'admin' as const])] }, by),
    notice: 'admin-granted',
  },
  'revoke-admin': {
    label: 'Revoke admin role',
    question: 'Remove the admin role?',
    consequence: 'The person can no longer use the admin console, and their management API tokens stop working.',
    confirm: true,
    danger: true,
    offered: (user, self) => user.roles.includes('admin') && !self,
    selfNote: 'You cannot remove the admin role from your own account.',
    run: (users, user, by) => users.update(user.id, { roles: user.roles.filter((r) => r !== 'admin') }, by),
    notice: 'admin-revoked',
  },
  delete: {
    label: 'Delete user',
    question: 'Delete this user?',
    consequence:
      'The account is deleted for good, and everything issued to it (sessions, grants, tokens) is revoked. The audit log keeps its events. This cannot be undone.',
    confirm: true,
    danger: true,
    offered: (_user, self) => !self,
    selfNote: 'You cannot delete your own account.',
    run: async (users, user, by) => {
      if (!(await users.delete(user.id, by))) throw notFound();
    },
    notice: 'deleted',
  },
};

const ACTION_ORDER: ActionId[] = ['enable', 'disable', 'reset-mfa', 'require-password-reset', 'send-password-reset', 'grant-admin', 'revoke-admin', 'delete'];

function isActionId(value: unknown): value is ActionId {
  return typeof value === 'string' && Object.hasOwn(ACTIONS, value);
}

const notFound = () => new AppError('user.not_found');

const userHref = (id: string) => `${BASE}/${encodeURIComponent(id)}`;

/** The user as the pages show them (plain values, no service objects). */
function userModel(user: UserAdminView) {
  return {
    id: user.id,
    href: userHref(user.id),
    email: user.email,
    name: user.name ?? '',
    emailVerified: user.emailVerified,
    roles: user.roles,
    isAdmin: user.roles.includes('admin'),
    disabled: user.disabled,
    signInMethods: user.signInMethods.map((m) => METHOD_LABELS[m]),
    totp: user.mfa.totp,
    totpEnabledAt: user.mfa.enabledAt,
    recoveryCodesLeft: user.mfa.recoveryCodesLeft,
    passwordResetRequired: user.passwordResetRequired,
    hasPassword: user.hasPassword,
    createdAt: user.createdAt,
    updatedAt: user.updatedAt,
  };
}

/** Create form: fields as typed (never the password), for re-display after an error. */
const createForm = z.object({
  email: z.string().max(320).default(''),
  name: z.string().max(200).default(''),
  password: z.string().max(1024).default(''),
  admin: z.literal('on').optional(),
  emailVerified: z.literal('on').optional(),
});

const CREATE_FIELDS = ['email', 'name', 'password', 'roles'] as const;

export const registerUserPages: ConsolePages = (router, deps, kit) => {
  const { userAdmin } = deps;
  // An administrator in the console holds every management API scope: kit.requireAdmin checked
  // the admin role (and a second factor) on this request. So the console acts with full authority.
  const authority = (ctx: ConsoleContext) => fullAuthority(kit.actor(ctx));

  const loadUser = async (ctx: ConsoleContext): Promise<UserAdminView> => {
    const id = idSchema.safeParse(ctx.params.id);
    const user = id.success ? await userAdmin.get(id.data) : undefined;
    if (!user) throw notFound();
    return user;
  };

  const renderDetail = async (ctx: ConsoleContext, user: UserAdminView, extra: { notice?: string; error?: string }, status = 200) => {
    const self = user.id === ctx.state.admin.account.id;
    const actions = ACTION_ORDER.map((id) => ({ id, spec: ACTIONS[id] })).filter(({ id }) => id !== 'delete');
    const offered = (id: ActionId) => ACTIONS[id].offered(user, self);
    await kit.render(
      ctx,
      'admin/users/detail',
      'users',
      {
        title: user.email,
        user: userModel(user),
        // NOTE: not `self`: pug takes a local named `self` as its own option.
        isSelf: self,
        actions: actions
          .filter(({ id }) => offered(id))
          .map(({ id, spec }) => ({
            id,
            label: spec.label,
            danger: spec.danger,
            confirm: spec.confirm,
            href: `${userHref(user.id)}/${id}`,
          })),
        selfNotes: self ? ACTION_ORDER.filter((id) => !offered(id) && ACTIONS[id].selfNote).map((id) => ACTIONS[id].selfNote) : [],
        deleteHref: offered('delete') ? `${userHref(user.id)}/delete` : undefined,
        notice: extra.notice,
        error: extra.error,
      },
      status,
    );
  };

  const renderCreate = async (
    ctx: ConsoleContext,
    values: { email: string; name: string; admin: boolean; emailVerified: boolean },
    errors: Record<string, string>,
    status = 200,
  ) => {
    const passwordRules = { minLength: deps.passwordPolicy.minLength, maxLength: deps.passwordPolicy.maxLength, productName: deps.config.productName };
    await kit.render(ctx, 'admin/users/new', 'users', { title: 'New user', values, errors, hasErrors: Object.keys(errors).length > 0, passwordRules }, status);
  };

  router.get('/users', kit.requireAdmin, async function listUsers(ctx) {
    const parsed = listQuery.safeParse(ctx.query);
    const query = parsed.success ? parsed.data : {};
    const search = query.q?.trim() ?? '';
    let invalid = !parsed.success;
    let page;
    try {
      page = await userAdmin.list({ search, limit: 50, cursor: query.cursor || undefined });
    } catch (err) {
      if (!(err instanceof UserValidationError)) throw err;
      // A stale or edited page link: show the first page and say so.
      invalid = true;
      page = await userAdmin.list({ search, limit: 50 });
    }
    const keep = new URLSearchParams(search ? { q: search } : {});
    const next = page.nextCursor ? new URLSearchParams(keep) : undefined;
    next?.set('cursor', page.nextCursor ?? '');
    await kit.render(
      ctx,
      'admin/users/list',
      'users',
      {
        title: 'Users',
        search,
        total: page.total,
        users: page.users.map(userModel),
        invalid,
        notice: noticeFrom(ctx.query.notice),
        nextHref: next ? `${BASE}?${next.toString()}` : undefined,
        firstHref: query.cursor ? `${BASE}${keep.size > 0 ? `?${keep.toString()}` : ''}` : undefined,
      },
      invalid ? 400 : 200,
    );
  });

  // Before /users/:id, which would match "new" too.
  router.get('/users/new', kit.requireAdmin, async function newUserForm(ctx) {
    await renderCreate(ctx, { email: '', name: '', admin: false, emailVerified: false }, {});
  });

  router.post('/users/new', ...kit.post, async function createUser(ctx) {
    const form = createForm.safeParse(ctx.state.form);
    const fields = form.success ? form.data : { email: '', name: '', password: '', admin: undefined, emailVerified: undefined };
    const values = { email: fields.email.trim(), name: fields.name, admin: fields.admin === 'on', emailVerified: fields.emailVerified === 'on' };
    if (!form.success) {
      await renderCreate(ctx, values, { input: 'The form could not be read. Check the fields and try again.' }, 400);
      return;
    }
    try {
      const user = await userAdmin.create(
        {
          email: values.email,
          ...(values.name.trim() ? { name: values.name } : {}),
          // An empty password field means a passwordless account (sign-in by a code by email).
          ...(fields.password ? { password: fields.password } : {}),
          roles: values.admin ? ['admin'] : [],
          emailVerified: values.emailVerified,
        },
        authority(ctx),
      );
      kit.redirect(ctx, `${userHref(user.id)}?notice=created`);
    } catch (err) {
      if (err instanceof PasswordPolicyError) {
        // The reason beside the password field; the password itself is never sent back.
        await renderCreate(ctx, values, { password: err.message }, err.status);
        return;
      }
      if (err instanceof UserValidationError) {
        const errors: Record<string, string> = {};
        for (const [field, message] of Object.entries(err.fields)) {
          const key = (CREATE_FIELDS as readonly string[]).includes(field.split('.')[0] ?? '') ? (field.split('.')[0] ?? 'input') : 'input';
          errors[key] ??= message;
        }
        await renderCreate(ctx, values, errors, 400);
        return;
      }
      if (err instanceof AppError && err.code === 'user.email_taken') {
        await renderCreate(ctx, values, { email: err.message }, err.status);
        return;
      }
      throw err;
    }
  });

  router.get('/users/:id', kit.requireAdmin, async function showUser(ctx) {
    await renderDetail(ctx, await loadUser(ctx), { notice: noticeFrom(ctx.query.notice) });
  });

  router.get('/users/:id/:action', kit.requireAdmin, async function confirmUserAction(ctx) {
    const actionId = ctx.params.action;
    if (!isActionId(actionId)) throw new AppError('not_found');
    const user = await loadUser(ctx);
    const spec = ACTIONS[actionId];
    await kit.render(ctx, 'admin/users/confirm', 'users', {
      title: spec.question,
      user: userModel(user),
      isSelf: user.id === ctx.state.admin.account.id,
      action: { id: actionId, label: spec.label, question: spec.question, consequence: spec.consequence, danger: spec.danger },
      postHref: `${userHref(user.id)}/${actionId}`,
      cancelHref: userHref(user.id),
    });
  });

  router.post('/users/:id/:action', ...kit.post, async function runUserAction(ctx) {
    const actionId = ctx.params.action;
    if (!isActionId(actionId)) throw new AppError('not_found');
    const user = await loadUser(ctx);
    const spec = ACTIONS[actionId];
    try {
      await spec.run(userAdmin, user, authority(ctx), { passwordReset: deps.passwordReset });
    } catch (err) {
      // Refusals the admin can act on (409 user.self, 400): shown on the person's page.
      if (err instanceof AppError && err.status >= 400 && err.status < 500 && err.status !== 404) {
        await renderDetail(ctx, (await userAdmin.get(user.id)) ?? user, { error: err.message }, err.status);
        return;
      }
      throw err;
    }
    if (actionId === 'delete') kit.redirect(ctx, `${BASE}?notice=${spec.notice}`);
    else kit.redirect(ctx, `${userHref(user.id)}?notice=${spec.notice}`);
  });
};
