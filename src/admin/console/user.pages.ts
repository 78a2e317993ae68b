import { z } from 'zod';

import type { ConnectedApp, SessionView } from '../../accounts/account-access.service.js';
import type { PasswordResetService } from '../../accounts/password-reset.service.js';
import type { SignInMethod, UserAdminService, UserAdminView } from '../../accounts/user-admin.service.js';
import { PasswordPolicyError } from '../../accounts/password-policy.js';
import { UserValidationError } from '../../accounts/user-admin.service.js';
import { ProfileValidationError } from '../../accounts/profile-claims.js';
import type { ProfileFields } from '../../accounts/profile-claims.js';
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
 *
 * The detail page also lists where the person is signed in (their SSO sessions) and the apps
 * holding their consent, from deps.access; an admin ends one session, all of them, or takes back
 * one app's access, each through a confirmation page, audited here with the admin as actor (the
 * access service does not audit: it does not know who acts).
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
  'profile-saved': 'The profile was saved. Apps see it the next time they ask for it.',
  disabled: 'The account was disabled: its sessions ended and its tokens were revoked.',
  enabled: 'The account was enabled.',
  'mfa-reset': 'The second factor was reset: the authenticator app and the recovery codes were removed.',
  'password-reset-required': 'At the next sign-in this person must choose a new password. Their sessions have ended.',
  'password-reset-sent': 'A password reset mail with a single-use link was sent to this person.',
  'admin-granted': 'The admin role was granted.',
  'admin-revoked': 'The admin role was revoked.',
  deleted: 'The user was deleted.',
  'session-ended': 'The session was ended: that browser is signed out, and apps that signed in through it must ask again.',
  'sessions-ended': 'Every session was ended: the person is signed out everywhere.',
  'no-sessions': 'There was no session to end.',
  'app-revoked': 'The app’s access was revoked: its tokens no longer work, and it must ask for consent again.',
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

/** Session uids are the provider's (base64url); anything else cannot name one. */
const sessionUidSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
/** Client ids: what client-input.ts allows, and the built-in ids; nothing longer. */
const clientIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$/);

/** A session as the pages show it. `current`: the browser the admin uses right now. */
function sessionModel(session: SessionView, userId: string, currentUid: string | undefined) {
  return {
    uid: session.uid,
    device: session.device,
    ip: session.ip ?? '',
    startedAt: session.startedAt,
    lastSeenAt: session.lastSeenAt,
    apps: session.apps.map((app) => app.name),
    current: session.uid === currentUid,
    endHref: `${userHref(userId)}/sessions/${encodeURIComponent(session.uid)}/end`,
  };
}

/** A connected app as the pages show it. */
function appModel(app: ConnectedApp, userId: string) {
  return {
    clientId: app.clientId,
    name: app.name,
    logoUri: app.logoUri,
    scopes: app.scopes,
    claims: app.claims,
    since: app.since,
    grants: app.grants,
    revokeHref: `${userHref(userId)}/apps/${encodeURIComponent(app.clientId)}/revoke`,
  };
}

const userHref = (id: string) => `${BASE}/${encodeURIComponent(id)}`;

/** The profile form's text fields (the address ones are posted as `address.<name>`). */
const PROFILE_TEXT_FIELDS = ['givenName', 'familyName', 'middleName', 'nickname', 'preferredUsername', 'picture', 'website', 'profile', 'gender', 'birthdate', 'zoneinfo', 'locale'] as const;
const ADDRESS_TEXT_FIELDS = ['streetAddress', 'locality', 'region', 'postalCode', 'country', 'formatted'] as const;

/** The stored name and profile as the form's values (by input name). */
function profileFormValues(name: string | undefined, profile: ProfileFields): Record<string, string> {
  const values: Record<string, string> = { name: name ?? '' };
  for (const key of PROFILE_TEXT_FIELDS) values[key] = profile[key] ?? '';
  values.phoneNumber = profile.phoneNumber ?? '';
  if (profile.phoneNumberVerified) values.phoneNumberVerified = 'on';
  for (const key of ADDRESS_TEXT_FIELDS) values[`address.${key}`] = profile.address?.[key] ?? '';
  return values;
}

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
  const { userAdmin, access, audit } = deps;
  // An administrator in the console holds every management API scope: kit.requireAdmin checked
  // the admin role (and a second factor) on this request. So the console acts with full authority.
  const authority = (ctx: ConsoleContext) => fullAuthority(kit.actor(ctx));

  const loadUser = async (ctx: ConsoleContext): Promise<UserAdminView> => {
    const id = idSchema.safeParse(ctx.params.id);
    const user = id.success ? await userAdmin.get(id.data) : undefined;
    if (!user) throw notFound();
    return user;
  };

  const { profileScopes } = deps.config;
  const renderDetail = async (
    ctx: ConsoleContext,
    user: UserAdminView,
    extra: { notice?: string; error?: string; profile?: { values: Record<string, string>; errors: Record<string, string> } },
    status = 200,
  ) => {
    const self = user.id === ctx.state.admin.account.id;
    const [sessions, apps] = await Promise.all([access.listSessions(user.id), access.listApps(user.id)]);
    const currentUid = self ? ctx.state.admin.sessionUid : undefined;
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
        sessions: sessions.map((session) => sessionModel(session, user.id, currentUid)),
        endAllHref: sessions.length > 0 ? `${userHref(user.id)}/sessions/end-all` : undefined,
        apps: apps.map((app) => appModel(app, user.id)),
        profileForm: {
          action: `${userHref(user.id)}/profile`,
          values: extra.profile?.values ?? profileFormValues(user.name, user.profile),
          errors: extra.profile?.errors ?? {},
          phone: profileScopes.phone,
          address: profileScopes.address,
        },
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

  // --- Sessions and connected apps ---

  /** The session `ctx.params.uid` of the user, as listed now; 404 when there is none. */
  const loadSession = async (ctx: ConsoleContext, user: UserAdminView): Promise<SessionView> => {
    const uid = sessionUidSchema.safeParse(ctx.params.uid);
    const session = uid.success ? (await access.listSessions(user.id)).find((s) => s.uid === uid.data) : undefined;
    if (!session) throw new AppError('user.session_not_found');
    return session;
  };

  /** The app `ctx.params.clientId` the user granted access to; 404 when there is none. */
  const loadApp = async (ctx: ConsoleContext, user: UserAdminView): Promise<ConnectedApp> => {
    const clientId = clientIdSchema.safeParse(ctx.params.clientId);
    const app = clientId.success ? (await access.listApps(user.id)).find((a) => a.clientId === clientId.data) : undefined;
    if (!app) throw new AppError('user.app_not_found');
    return app;
  };

  const renderAccessConfirm = async (
    ctx: ConsoleContext,
    user: UserAdminView,
    action: { label: string; question: string; consequence: string },
    facts: { term: string; value: string }[],
    postHref: string,
    ownSession: boolean,
  ) => {
    await kit.render(ctx, 'admin/users/confirm', 'users', {
      title: action.question,
      user: userModel(user),
      isSelf: user.id === ctx.state.admin.account.id,
      ownSession,
      action: { ...action, danger: true },
      facts,
      postHref,
      cancelHref: userHref(user.id),
    });
  };

  const sessionFacts = (session: SessionView) => [
    { term: 'Device', value: session.device },
    { term: 'IP address', value: session.ip ?? 'Unknown' },
    { term: 'Apps', value: session.apps.map((app) => app.name).join(', ') || 'None' },
  ];

  router.get('/users/:id/sessions/end-all', kit.requireAdmin, async function confirmEndAllSessions(ctx) {
    const user = await loadUser(ctx);
    const sessions = await access.listSessions(user.id);
    const self = user.id === ctx.state.admin.account.id;
    await renderAccessConfirm(
      ctx,
      user,
      {
        label: 'End all sessions',
        question: 'End all of this person’s sessions?',
        consequence: `Signs the person out in every browser (${sessions.length} ${sessions.length === 1 ? 'session' : 'sessions'} now). Apps that signed in through these sessions lose the access they were given there, unless the person allowed offline access; the account itself is not changed and the person can sign in again.`,
      },
      [],
      `${userHref(user.id)}/sessions/end-all`,
      self,
    );
  });

  router.post('/users/:id/sessions/end-all', ...kit.post, async function endAllSessions(ctx) {
    const user = await loadUser(ctx);
    const before = await access.listSessions(user.id);
    const ended = await access.endOtherSessions(user.id, undefined);
    if (ended === 0) {
      kit.redirect(ctx, `${userHref(user.id)}?notice=no-sessions`);
      return;
    }
    await audit.record({
      action: 'session.revoked',
      outcome: 'success',
      actor: kit.actor(ctx),
      target: { type: 'account', id: user.id, label: user.email },
      details: { all: true, ended, sessionUids: before.map((s) => s.uid) },
    });
    kit.redirect(ctx, `${userHref(user.id)}?notice=sessions-ended`);
  });

  router.get('/users/:id/sessions/:uid/end', kit.requireAdmin, async function confirmEndSession(ctx) {
    const user = await loadUser(ctx);
    const session = await loadSession(ctx, user);
    const own = user.id === ctx.state.admin.account.id && session.uid === ctx.state.admin.sessionUid;
    await renderAccessConfirm(
      ctx,
      user,
      {
        label: 'End session',
        question: 'End this session?',
        consequence:
          'Signs the person out in this browser. Apps that signed in through it lose the access they were given there, unless the person allowed offline access. Their other sessions stay.',
      },
      sessionFacts(session),
      `${userHref(user.id)}/sessions/${encodeURIComponent(session.uid)}/end`,
      own,
    );
  });

  router.post('/users/:id/sessions/:uid/end', ...kit.post, async function endSession(ctx) {
    const user = await loadUser(ctx);
    const uid = sessionUidSchema.safeParse(ctx.params.uid);
    if (!uid.success || !(await access.endSession(user.id, uid.data))) throw new AppError('user.session_not_found');
    await audit.record({
      action: 'session.revoked',
      outcome: 'success',
      actor: kit.actor(ctx),
      target: { type: 'account', id: user.id, label: user.email },
      details: { sessionUid: uid.data },
    });
    kit.redirect(ctx, `${userHref(user.id)}?notice=session-ended`);
  });

  router.get('/users/:id/apps/:clientId/revoke', kit.requireAdmin, async function confirmRevokeApp(ctx) {
    const user = await loadUser(ctx);
    const app = await loadApp(ctx, user);
    await renderAccessConfirm(
      ctx,
      user,
      {
        label: 'Revoke access',
        question: `Revoke ${app.name}’s access?`,
        consequence:
          'Deletes the person’s consent for this app, with every token issued under it (refresh tokens too): the app can no longer act for the person, and must ask for consent at the next sign-in.',
      },
      [
        { term: 'App', value: app.name },
        { term: 'Client ID', value: app.clientId },
        { term: 'Scopes', value: app.scopes.join(' ') || 'None' },
      ],
      `${userHref(user.id)}/apps/${encodeURIComponent(app.clientId)}/revoke`,
      false,
    );
  });

  router.post('/users/:id/apps/:clientId/revoke', ...kit.post, async function revokeApp(ctx) {
    const user = await loadUser(ctx);
    // Only an app the page lists (the built-in pages' own consent is not the admin's to take).
    const app = await loadApp(ctx, user);
    if (!(await access.revokeApp(user.id, app.clientId))) throw new AppError('user.app_not_found');
    await audit.record({
      action: 'grant.revoked',
      outcome: 'success',
      actor: kit.actor(ctx),
      target: { type: 'account', id: user.id, label: user.email },
      clientId: app.clientId,
      details: { clientId: app.clientId },
    });
    kit.redirect(ctx, `${userHref(user.id)}?notice=app-revoked`);
  });

  // The name and the standard claims (OIDC Core §5.1). NOTE: registered before `/users/:id/:action`.
  router.post('/users/:id/profile', ...kit.post, async function saveUserProfile(ctx) {
    const user = await loadUser(ctx);
    const form = ctx.state.form;
    const text = (key: string) => form[key] ?? '';
    const profile: Record<string, unknown> = Object.fromEntries(PROFILE_TEXT_FIELDS.map((key) => [key, text(key)]));
    if (profileScopes.phone) {
      profile.phoneNumber = text('phoneNumber');
      profile.phoneNumberVerified = form.phoneNumberVerified !== undefined;
    }
    if (profileScopes.address) profile.address = Object.fromEntries(ADDRESS_TEXT_FIELDS.map((key) => [key, text(`address.${key}`)]));
    try {
      await userAdmin.update(user.id, { name: text('name'), profile }, authority(ctx));
    } catch (err) {
      if (!(err instanceof UserValidationError || err instanceof ProfileValidationError)) throw err;
      const errors = Object.fromEntries(Object.entries(err.fields).map(([key, message]) => [key.replace(/^profile\./, ''), message]));
      const values = Object.fromEntries(Object.entries(form).filter(([, v]) => typeof v === 'string').map(([k, v]) => [k, (v as string).slice(0, 2000)]));
      await renderDetail(ctx, user, { error: 'The profile was not saved: correct the fields marked below.', profile: { values, errors } }, 400);
      return;
    }
    kit.redirect(ctx, `${userHref(user.id)}?notice=profile-saved`);
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
