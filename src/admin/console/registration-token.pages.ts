import { z } from 'zod';

import { fullAuthority } from '../../clients/admin-authority.js';
import type { RegistrationTokenView } from '../../clients/registration-token.service.js';
import { MAX_TOKEN_LIFETIME_SECONDS, MAX_TOKEN_USES, REGISTRATION_TOKEN_ID_PATTERN } from '../../clients/registration-token.service.js';
import { AppError } from '../../http/app-error.js';
import type { ConsoleContext } from './console-kit.js';
import type { ConsolePages } from './console.routes.js';

/**
 * Initial access tokens for dynamic client registration (RFC 7591 §3), through
 * deps.registrationTokens: list, create (the token is shown once, on the result page, and is
 * never stored or logged by us in a form that could be shown again), revoke after a confirmation.
 */

const BASE = '/admin/registration-tokens';
const MAX_HOURS = MAX_TOKEN_LIFETIME_SECONDS / 3600;

const idSchema = z.string().regex(REGISTRATION_TOKEN_ID_PATTERN);

const NOTICES = {
  revoked: 'The registration token was revoked: it can no longer register clients.',
  'already-revoked': 'This registration token had already been revoked.',
} as const;

function noticeFrom(value: unknown): string | undefined {
  return typeof value === 'string' && Object.hasOwn(NOTICES, value) ? NOTICES[value as keyof typeof NOTICES] : undefined;
}

/** A whole number in [min, max], or '' for "no limit" (undefined). */
const limitField = (min: number, max: number, what: string) =>
  z
    .string()
    .max(20, `${what} must be a whole number, or empty`)
    .default('')
    .transform((raw, ctx) => {
      const text = raw.trim();
      if (text === '') return undefined;
      const value = /^[0-9]{1,9}$/.test(text) ? Number(text) : NaN;
      const message = Number.isNaN(value)
        ? `${what} must be a whole number, or empty`
        : value < min
          ? `${what} must be at least ${min}`
          : value > max
            ? `${what} must be at most ${max}`
            : undefined;
      if (message) {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
      return value;
    });

const createForm = z.object({
  expiresInHours: limitField(1, MAX_HOURS, 'Hours'),
  uses: limitField(1, MAX_TOKEN_USES, 'Uses'),
});

type FormValues = { expiresInHours: string; uses: string };
type FormErrors = Partial<Record<keyof FormValues, string>>;

function status(token: RegistrationTokenView, now: number): { label: string; warn: boolean } {
  if (token.revoked) return { label: 'Revoked', warn: true };
  if (token.expiresAt && token.expiresAt.getTime() <= now) return { label: 'Expired', warn: true };
  if (token.usesAllowed !== undefined && token.usesCount >= token.usesAllowed) return { label: 'Used up', warn: true };
  return { label: 'Active', warn: false };
}

function tokenModel(token: RegistrationTokenView, now: number) {
  const state = status(token, now);
  return {
    id: token.id,
    createdAt: token.createdAt,
    expiresAt: token.expiresAt,
    uses: `${token.usesCount} / ${token.usesAllowed ?? 'unlimited'}`,
    status: state.label,
    warn: state.warn,
    createdBy: token.createdBy ? (token.createdBy.label ?? token.createdBy.id ?? token.createdBy.type) : '',
    revokeHref: token.revoked ? undefined : `${BASE}/${encodeURIComponent(token.id)}/revoke`,
  };
}

export const registerRegistrationTokenPages: ConsolePages = (router, deps, kit) => {
  const { registrationTokens, config, clock } = deps;
  // An administrator in the console holds every management API scope: kit.requireAdmin checked
  // the admin role (and a second factor) on this request. So the console acts with full authority.
  const authority = (ctx: ConsoleContext) => fullAuthority(kit.actor(ctx));
  const registrationEndpoint = `${config.issuer}/reg`;

  const renderList = async (ctx: ConsoleContext, values: FormValues, errors: FormErrors, extra: { notice?: string | undefined }, statusCode = 200) => {
    const now = clock.nowMs();
    const tokens = await registrationTokens.list();
    await kit.render(
      ctx,
      'admin/registration-tokens/list',
      'registration-tokens',
      {
        title: 'Registration tokens',
        tokens: tokens.map((t) => tokenModel(t, now)),
        values,
        errors,
        hasErrors: Object.keys(errors).length > 0,
        maxHours: MAX_HOURS,
        maxUses: MAX_TOKEN_USES,
        dynamicRegistration: config.dynamicRegistration,
        registrationEndpoint,
        notice: extra.notice,
      },
      statusCode,
    );
  };

  const loadToken = async (ctx: ConsoleContext): Promise<RegistrationTokenView> => {
    const id = idSchema.safeParse(ctx.params.id);
    const token = id.success ? (await registrationTokens.list()).find((t) => t.id === id.data) : undefined;
    if (!token) throw new AppError('registration_token.not_found');
    return token;
  };

  router.get('/registration-tokens', kit.requireAdmin, async function listRegistrationTokens(ctx) {
    await renderList(ctx, { expiresInHours: '24', uses: '1' }, {}, { notice: noticeFrom(ctx.query.notice) });
  });

  router.post('/registration-tokens', ...kit.post, async function createRegistrationToken(ctx) {
    const values: FormValues = {
      expiresInHours: (ctx.state.form.expiresInHours ?? '').slice(0, 20),
      uses: (ctx.state.form.uses ?? '').slice(0, 20),
    };
    const parsed = createForm.safeParse(ctx.state.form);
    if (!parsed.success) {
      const errors: FormErrors = {};
      for (const issue of parsed.error.issues) {
        const field = issue.path[0];
        if (field === 'expiresInHours' || field === 'uses') errors[field] ??= issue.message;
      }
      await renderList(ctx, values, errors, {}, 400);
      return;
    }
    const { expiresInHours, uses } = parsed.data;
    const created = await registrationTokens.create(
      { ...(expiresInHours !== undefined ? { expiresInSeconds: expiresInHours * 3600 } : {}), ...(uses !== undefined ? { uses } : {}) },
      authority(ctx),
    );
    // Shown once, rendered directly (no redirect): pages.render sets Cache-Control: no-store.
    await kit.render(
      ctx,
      'admin/registration-tokens/created',
      'registration-tokens',
      {
        title: 'Registration token created',
        token: created.token,
        view: tokenModel(created.view, clock.nowMs()),
        usesAllowed: created.view.usesAllowed,
        expiresAt: created.view.expiresAt,
        registrationEndpoint,
        dynamicRegistration: config.dynamicRegistration,
        curlExample: [
          `curl -X POST ${registrationEndpoint} \\`,
          `  -H "Authorization: Bearer ${created.token}" \\`,
          '  -H "Content-Type: application/json" \\',
          `  -d '{"client_name":"My app","redirect_uris":["https://app.example.com/callback"]}'`,
        ].join('\n'),
      },
    );
  });

  router.get('/registration-tokens/:id/revoke', kit.requireAdmin, async function confirmRevokeRegistrationToken(ctx) {
    const token = await loadToken(ctx);
    await kit.render(ctx, 'admin/registration-tokens/revoke', 'registration-tokens', {
      title: 'Revoke registration token?',
      token: tokenModel(token, clock.nowMs()),
      postHref: `${BASE}/${encodeURIComponent(token.id)}/revoke`,
      cancelHref: BASE,
    });
  });

  router.post('/registration-tokens/:id/revoke', ...kit.post, async function revokeRegistrationToken(ctx) {
    const token = await loadToken(ctx);
    const revoked = await registrationTokens.revoke(token.id, authority(ctx));
    kit.redirect(ctx, `${BASE}?notice=${revoked ? 'revoked' : 'already-revoked'}`);
  });
};
