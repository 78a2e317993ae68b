import { z } from 'zod';

import { fullAuthority } from '../../clients/admin-authority.js';
import { AppError } from '../../http/app-error.js';
import type { InvitationState, InvitationView } from '../../invitations/invitation.service.js';
import {
  DEFAULT_INVITATION_DAYS,
  INVITATION_ID_PATTERN,
  InvitationValidationError,
  MAX_INVITATION_DAYS,
  MAX_INVITATION_USES,
} from '../../invitations/invitation.service.js';
import type { ConsoleContext } from './console-kit.js';
import type { ConsolePages } from './console.routes.js';

/**
 * Invitations to sign up (SIGN_UP=invite), through deps.invitations: list with their state,
 * create (the link is shown once, on the result page, and can be mailed to a bound address),
 * revoke after a confirmation.
 */

const BASE = '/admin/invitations';

const NOTICES = {
  revoked: 'The invitation was revoked: its link no longer works.',
  'already-revoked': 'This invitation had already been revoked.',
} as const;

function noticeFrom(value: unknown): string | undefined {
  return typeof value === 'string' && Object.hasOwn(NOTICES, value) ? NOTICES[value as keyof typeof NOTICES] : undefined;
}

const wholeNumber = (min: number, max: number, what: string) =>
  z
    .string()
    .max(20, `${what} must be a whole number`)
    .default('')
    .transform((raw, ctx) => {
      const text = raw.trim();
      const value = /^[0-9]{1,9}$/.test(text) ? Number(text) : NaN;
      const message = Number.isNaN(value)
        ? `${what} must be a whole number`
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
  email: z
    .string()
    .max(254, 'Email must be at most 254 characters')
    .default('')
    .transform((s) => s.trim() || undefined),
  uses: wholeNumber(1, MAX_INVITATION_USES, 'Uses'),
  days: wholeNumber(1, MAX_INVITATION_DAYS, 'Days'),
  sendEmail: z
    .string()
    .optional()
    .transform((v) => v === 'on'),
});

type FormValues = { email: string; uses: string; days: string; sendEmail: boolean };
type FormErrors = Partial<Record<'email' | 'uses' | 'days' | 'sendEmail', string>>;

const STATE_LABELS: Record<InvitationState, { label: string; warn: boolean }> = {
  pending: { label: 'Pending', warn: false },
  used: { label: 'Used', warn: false },
  expired: { label: 'Expired', warn: true },
  revoked: { label: 'Revoked', warn: true },
};

function invitationModel(invitation: InvitationView) {
  const state = STATE_LABELS[invitation.state];
  return {
    id: invitation.id,
    email: invitation.email ?? '',
    open: invitation.email === undefined,
    createdAt: invitation.createdAt,
    expiresAt: invitation.expiresAt,
    uses: `${invitation.usesCount} / ${invitation.maxUses}`,
    state: state.label,
    warn: state.warn,
    createdBy: invitation.createdBy ? (invitation.createdBy.label ?? invitation.createdBy.id ?? invitation.createdBy.type) : '',
    revokeHref: invitation.state === 'revoked' ? undefined : `${BASE}/${encodeURIComponent(invitation.id)}/revoke`,
  };
}

export const registerInvitationPages: ConsolePages = (router, deps, kit) => {
  const { invitations } = deps;
  // kit.requireAdmin checked the admin role and the second factor on this request: full authority.
  const authority = (ctx: ConsoleContext) => fullAuthority(kit.actor(ctx));

  const renderList = async (ctx: ConsoleContext, values: FormValues, errors: FormErrors, notice: string | undefined, status = 200) => {
    const list = await invitations.list();
    await kit.render(
      ctx,
      'admin/invitations/list',
      'invitations',
      {
        title: 'Invitations',
        invitations: list.map(invitationModel),
        values,
        errors,
        hasErrors: Object.keys(errors).length > 0,
        maxDays: MAX_INVITATION_DAYS,
        maxUses: MAX_INVITATION_USES,
        notice,
      },
      status,
    );
  };

  const loadInvitation = async (ctx: ConsoleContext): Promise<InvitationView> => {
    const id = typeof ctx.params.id === 'string' && INVITATION_ID_PATTERN.test(ctx.params.id) ? ctx.params.id : undefined;
    const invitation = id ? await invitations.get(id) : undefined;
    if (!invitation) throw new AppError(404, 'invitation.not_found', 'No invitation with this id. It may have been removed.');
    return invitation;
  };

  router.get('/invitations', kit.requireAdmin, async function listInvitations(ctx) {
    await renderList(ctx, { email: '', uses: '1', days: String(DEFAULT_INVITATION_DAYS), sendEmail: true }, {}, noticeFrom(ctx.query.notice));
  });

  router.post('/invitations', ...kit.post, async function createInvitation(ctx) {
    const form = ctx.state.form;
    const values: FormValues = {
      email: (form.email ?? '').slice(0, 254),
      uses: (form.uses ?? '').slice(0, 20),
      days: (form.days ?? '').slice(0, 20),
      sendEmail: form.sendEmail === 'on',
    };
    const parsed = createForm.safeParse(form);
    const errors: FormErrors = {};
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path[0];
        if (field === 'email' || field === 'uses' || field === 'days') errors[field] ??= issue.message;
      }
      await renderList(ctx, values, errors, undefined, 400);
      return;
    }
    const { email, uses, days, sendEmail } = parsed.data;
    if (sendEmail && !email) {
      await renderList(ctx, values, { sendEmail: 'Only an invitation for one email address can be mailed: give the address, or untick the box.' }, undefined, 400);
      return;
    }
    let created;
    try {
      created = await invitations.create({ email, maxUses: uses, expiresInDays: days, sendEmail }, authority(ctx));
    } catch (err) {
      if (!(err instanceof InvitationValidationError)) throw err;
      for (const [field, message] of Object.entries(err.fields)) {
        if (field === 'email') errors.email = `Email ${message}`;
        else if (field === 'sendEmail') errors.sendEmail = message;
      }
      await renderList(ctx, values, Object.keys(errors).length > 0 ? errors : { email: err.message }, undefined, 400);
      return;
    }
    // Shown once, rendered directly (no redirect): pages.render sets Cache-Control: no-store.
    await kit.render(ctx, 'admin/invitations/created', 'invitations', {
      title: 'Invitation created',
      link: created.link,
      invitation: invitationModel(created.view),
      sendEmail,
      mailed: created.mailed,
    });
  });

  router.get('/invitations/:id/revoke', kit.requireAdmin, async function confirmRevokeInvitation(ctx) {
    const invitation = await loadInvitation(ctx);
    await kit.render(ctx, 'admin/invitations/revoke', 'invitations', {
      title: 'Revoke invitation?',
      invitation: invitationModel(invitation),
      postHref: `${BASE}/${encodeURIComponent(invitation.id)}/revoke`,
      cancelHref: BASE,
    });
  });

  router.post('/invitations/:id/revoke', ...kit.post, async function revokeInvitation(ctx) {
    const invitation = await loadInvitation(ctx);
    const revoked = await invitations.revoke(invitation.id, authority(ctx));
    kit.redirect(ctx, `${BASE}?notice=${revoked ? 'revoked' : 'already-revoked'}`);
  });
};
