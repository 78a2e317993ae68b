import { createHash, randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';
import { z } from 'zod';

import { emailSchema } from '../accounts/account.service.js';
import type { AuditActor, AuditService } from '../audit/audit.service.js';
import type { AdminAuthority } from '../clients/admin-authority.js';
import { NO_AUTHORITY } from '../clients/admin-authority.js';
import { randomAlphanumeric } from '../crypto/identifiers.js';
import { insertClaim } from '../db/claims.js';
import { AppError } from '../http/app-error.js';
import type { Logger } from '../logging/logger.js';
import type { Mailer } from '../mail/mailer.js';

/**
 * Invitations to sign up (SIGN_UP=invite), issued by admins.
 *
 * An invitation is a link carrying a random token (256 bits, base64url). Only the token's
 * SHA-256 is stored: it is a high-entropy secret, so a keyed or slow hash would add nothing, and
 * the database alone never yields a working link. The admin sees the link once, when it is made;
 * afterwards it is known by an id of its own, unrelated to the token.
 *
 * An invitation is bound to one address (only that address may sign up with it, compared
 * lower-cased) or open (anyone with the link), expires, and allows N sign-ups. Each sign-up
 * claims a use slot `<invitationId>:<n>` (n < maxUses) in `invitation_uses` with a unique
 * insert. NOTE: FerretDB 1.x applies conditional updates and `$inc` non-atomically, so counting
 * uses on the invitation record would let concurrent sign-ups overrun it; a unique `_id` insert
 * is atomic everywhere, so N slots admit exactly N sign-ups however many race.
 *
 * The person with the link gets one answer for every way an invitation can be unusable
 * (unknown, expired, revoked, used up, for another address): "not valid". The admin sees the
 * real state in the list and the audit log.
 */

export const INVITATIONS_COLLECTION = 'invitations';
export const INVITATION_USES_COLLECTION = 'invitation_uses';

export const DEFAULT_INVITATION_DAYS = 7;
export const MAX_INVITATION_DAYS = 90;
/** Each redemption may try every free slot (claimUse), so the slots are bounded. */
export const MAX_INVITATION_USES = 1000;
/** Ended invitations (expired or revoked) stay listed this long, then the sweep removes them. */
const ENDED_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Where an invitation link leads: the sign-up page, with the token in the query. The sign-up page
 * reads `?invitation=` (INVITATION_QUERY_PARAMETER).
 * NOTE: the link carries a secret in the URL; pages answer with `Referrer-Policy: no-referrer`,
 * and the token is never logged here.
 */
export const INVITATION_LINK_PATH = '/sign-up';
export const INVITATION_QUERY_PARAMETER = 'invitation';

/** Invitation ids: 22 letters and digits (never a leading `-`, which a command line reads as an option). */
export const INVITATION_ID_PATTERN = /^[A-Za-z0-9]{22}$/;
/** 32 random bytes, base64url. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export type InvitationState = 'pending' | 'used' | 'expired' | 'revoked';

export interface InvitationView {
  id: string;
  /** Absent: an open invitation (anyone with the link). */
  email?: string;
  createdAt: Date;
  expiresAt: Date;
  maxUses: number;
  usesCount: number;
  revokedAt?: Date;
  createdBy?: AuditActor;
  /** revoked, else used (no uses left), else expired, else pending. */
  state: InvitationState;
}

export interface CreatedInvitation {
  /** The link to hand over: shown once, never stored. */
  link: string;
  /** The token inside the link (for surfaces that build links of their own). */
  token: string;
  view: InvitationView;
  /** Whether the link was mailed to the bound address (asked for with `sendEmail`, and the mail was handed to the SMTP server). */
  mailed: boolean;
}

export interface CreateInvitationInput {
  /** Bind the invitation to this address; omit for an open invitation. */
  email?: string | undefined;
  /** Default 1. */
  maxUses?: number | undefined;
  /** Default DEFAULT_INVITATION_DAYS, at most MAX_INVITATION_DAYS. */
  expiresInDays?: number | undefined;
  /** Mail the link to the bound address (email-bound invitations only). */
  sendEmail?: boolean | undefined;
}

/** What the sign-up page is told: usable or not, never why not. */
export type InvitationCheck =
  | {
      valid: true;
      invitationId: string;
      /** The address an email-bound invitation is for (the page may prefill it). */
      boundEmail?: string;
      expiresAt: Date;
    }
  | { valid: false; reason: 'invalid' };

/** A use claimed by redeem(); give it back with release() when the sign-up does not go through. */
export interface InvitationRedemption {
  invitationId: string;
  /** The slot claimed (0-based). */
  use: number;
}

export type InvitationRedeemResult = ({ ok: true } & InvitationRedemption) | { ok: false; reason: 'invalid' };

export interface InvitationService {
  /**
   * Issues an invitation. Throws AppError 400 `invitation.invalid` for bad input (nothing stored).
   * `by` names the admin for the audit log; an invitation lets people create plain accounts (no
   * roles), which is what managing users allows anyway, so it needs no scope beyond the surface's.
   */
  create(input: CreateInvitationInput, by?: AdminAuthority): Promise<CreatedInvitation>;
  /** Newest first, ended ones too (until the sweep removes them). */
  list(): Promise<InvitationView[]>;
  get(id: string): Promise<InvitationView | undefined>;
  /** false when there is no such invitation or it was already revoked. */
  revoke(id: string, by?: AdminAuthority): Promise<boolean>;
  /**
   * Whether `token` may be used (by `email`, when given). Reads only: for showing the sign-up
   * page. The same `{ valid: false, reason: 'invalid' }` for every refusal.
   */
  check(token: string, email?: string): Promise<InvitationCheck>;
  /**
   * Consumes one use for `email`, atomically (exactly maxUses of any number of concurrent
   * redemptions succeed). Audited. Call it before creating the account, and release() the use
   * if the account is then not created.
   */
  redeem(token: string, email: string): Promise<InvitationRedeemResult>;
  /** Gives back a use whose sign-up did not go through (the account was not created). */
  release(redemption: InvitationRedemption): Promise<void>;
  ensureIndexes(): Promise<void>;
  /** Removes invitations (and their uses) that ended over 30 days ago. */
  sweep(now?: Date): Promise<number>;
}

interface InvitationRecord {
  _id: string;
  tokenHash: string;
  email: string | null;
  createdAt: Date;
  expiresAt: Date;
  maxUses: number;
  createdBy: AuditActor | null;
  revokedAt: Date | null;
}

interface UseRecord {
  /** `<invitationId>:<n>`: the unique _id is what makes a slot single-use. */
  _id: string;
  invitationId: string;
  email: string;
  at: Date;
}

/** SHA-256 of the token, with a label so the digest means nothing elsewhere. */
export function invitationTokenHash(token: string): string {
  return createHash('sha256').update(`invitation:${token}`).digest('base64url');
}

export function invitationLink(issuer: string, token: string): string {
  const url = new URL(INVITATION_LINK_PATH, `${issuer.replace(/\/+$/, '')}/`);
  url.searchParams.set(INVITATION_QUERY_PARAMETER, token);
  return url.toString();
}

const createSchema = z.strictObject({
  email: emailSchema.optional(),
  maxUses: z
    .number()
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(MAX_INVITATION_USES, `must be at most ${MAX_INVITATION_USES}`)
    .default(1),
  expiresInDays: z
    .number()
    .int('must be a whole number of days')
    .min(1, 'must be at least 1 day')
    .max(MAX_INVITATION_DAYS, `must be at most ${MAX_INVITATION_DAYS} days`)
    .default(DEFAULT_INVITATION_DAYS),
  sendEmail: z.boolean().default(false),
});

export class InvitationValidationError extends AppError {
  override name = 'InvitationValidationError';
  readonly fields: Record<string, string>;

  constructor(fields: Record<string, string>) {
    super(400, 'invitation.invalid', Object.entries(fields).map(([field, message]) => `${field}: ${message}`).join('; ') || 'invalid input');
    this.fields = fields;
  }
}

function stateOf(record: InvitationRecord, usesCount: number, now: number): InvitationState {
  if (record.revokedAt) return 'revoked';
  if (usesCount >= record.maxUses) return 'used';
  if (record.expiresAt.getTime() <= now) return 'expired';
  return 'pending';
}

function toView(record: InvitationRecord, usesCount: number, now: number): InvitationView {
  return {
    id: record._id,
    ...(record.email ? { email: record.email } : {}),
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    maxUses: record.maxUses,
    usesCount,
    ...(record.revokedAt ? { revokedAt: record.revokedAt } : {}),
    ...(record.createdBy ? { createdBy: record.createdBy } : {}),
    state: stateOf(record, usesCount, now),
  };
}

const target = (record: Pick<InvitationRecord, '_id' | 'email'>) => ({
  type: 'invitation' as const,
  id: record._id,
  ...(record.email ? { label: record.email } : {}),
});

const INVALID = { valid: false, reason: 'invalid' } as const;

export interface InvitationServiceDeps {
  db: mongo.Db;
  audit: AuditService;
  logger: Logger;
  /** The public origin links are built on. */
  issuer: string;
  /** For mailing email-bound invitations; without it `sendEmail` is refused. */
  mailer?: Pick<Mailer, 'sendTemplate'> | undefined;
  /** Epoch milliseconds. */
  now?: () => number;
}

export function createInvitationService(deps: InvitationServiceDeps): InvitationService {
  const { db, audit, logger, issuer, mailer, now = Date.now } = deps;
  const invitations = db.collection<InvitationRecord>(INVITATIONS_COLLECTION);
  const uses = db.collection<UseRecord>(INVITATION_USES_COLLECTION);

  async function useCounts(ids: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    if (ids.length === 0) return counts;
    const rows = await uses
      .aggregate<{ _id: string; n: number }>([{ $match: { invitationId: { $in: ids } } }, { $group: { _id: '$invitationId', n: { $sum: 1 } } }])
      .toArray();
    for (const row of rows) counts.set(row._id, row.n);
    return counts;
  }

  /** The record behind a token, or undefined (malformed or unknown token). */
  async function findByToken(token: string): Promise<InvitationRecord | undefined> {
    if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) return undefined;
    return (await invitations.findOne({ tokenHash: invitationTokenHash(token) })) ?? undefined;
  }

  /** Why this invitation cannot be used by `email` now, or undefined when it can (uses aside). */
  function refusal(record: InvitationRecord, email: string | undefined): string | undefined {
    if (record.revokedAt) return 'revoked';
    if (record.expiresAt.getTime() <= now()) return 'expired';
    if (record.email && email !== undefined && record.email !== email) return 'wrong_email';
    return undefined;
  }

  const normalise = (email: string | undefined): string | undefined | null => {
    if (email === undefined) return undefined;
    const parsed = emailSchema.safeParse(email);
    return parsed.success ? parsed.data : null;
  };

  /**
   * Claims a free slot `<id>:<n>`, n < maxUses. A slot seen as taken in the first read is
   * skipped; a slot taken in between only costs a failed insert.
   */
  async function claimUse(record: InvitationRecord, email: string): Promise<number | undefined> {
    const taken = new Set((await uses.find({ invitationId: record._id }, { projection: { _id: 1 } }).toArray()).map((u) => u._id));
    for (let n = 0; n < record.maxUses; n++) {
      const _id = `${record._id}:${n}`;
      if (taken.has(_id)) continue;
      if (await insertClaim(uses, { _id, invitationId: record._id, email, at: new Date(now()) })) return n;
    }
    return undefined;
  }

  async function recordRedeem(record: InvitationRecord, email: string, outcome: 'success' | 'failure', extra: { reason?: string; use?: number }) {
    await audit.record({
      action: 'invitation.redeemed',
      outcome,
      actor: email ? { type: 'anonymous', label: email } : { type: 'anonymous' },
      target: target(record),
      reason: extra.reason,
      details: { ...(extra.use !== undefined ? { use: extra.use + 1 } : {}), maxUses: record.maxUses },
    });
  }

  return {
    async create(input, by = NO_AUTHORITY) {
      const parsed = createSchema.safeParse(input);
      if (!parsed.success) {
        const fields: Record<string, string> = {};
        for (const issue of parsed.error.issues) {
          if (issue.code === 'unrecognized_keys') for (const key of issue.keys) fields[key] ??= 'is not a field that can be set here';
          else fields[issue.path.join('.') || 'input'] ??= issue.message;
        }
        throw new InvitationValidationError(fields);
      }
      const { email, maxUses, expiresInDays, sendEmail } = parsed.data;
      if (sendEmail && !email) throw new InvitationValidationError({ sendEmail: 'only an invitation for one email address can be mailed' });
      if (sendEmail && !mailer) throw new AppError(503, 'invitation.mail_unavailable', 'Mail cannot be sent from here.');

      const token = randomBytes(32).toString('base64url');
      const createdAt = new Date(now());
      const record: InvitationRecord = {
        _id: randomAlphanumeric(22),
        tokenHash: invitationTokenHash(token),
        email: email ?? null,
        createdAt,
        expiresAt: new Date(createdAt.getTime() + expiresInDays * DAY_MS),
        maxUses,
        createdBy: by.actor,
        revokedAt: null,
      };
      await invitations.insertOne(record);
      await audit.record({
        action: 'invitation.created',
        outcome: 'success',
        actor: by.actor,
        target: target(record),
        details: { maxUses, expiresAt: record.expiresAt.toISOString(), emailBound: Boolean(email), sendEmail },
      });

      const link = invitationLink(issuer, token);
      let mailed = false;
      if (sendEmail && email && mailer) {
        try {
          await mailer.sendTemplate(email, 'invitation', { email, link, expiresAt: record.expiresAt });
          mailed = true;
        } catch (err) {
          // The invitation stands and the admin still has the link to hand over another way.
          logger.warn('invitation mail failed', { invitationId: record._id, reason: (err as Error).message });
        }
      }
      return { link, token, view: toView(record, 0, now()), mailed };
    },

    async list() {
      const records = await invitations.find().sort({ createdAt: -1, _id: 1 }).toArray();
      const counts = await useCounts(records.map((r) => r._id));
      const at = now();
      return records.map((r) => toView(r, counts.get(r._id) ?? 0, at));
    },

    async get(id) {
      if (typeof id !== 'string' || !INVITATION_ID_PATTERN.test(id)) return undefined;
      const record = await invitations.findOne({ _id: id });
      if (!record) return undefined;
      return toView(record, (await useCounts([id])).get(id) ?? 0, now());
    },

    async revoke(id, by = NO_AUTHORITY) {
      if (typeof id !== 'string' || !INVITATION_ID_PATTERN.test(id)) return false;
      const record = await invitations.findOne({ _id: id });
      if (!record || record.revokedAt) return false;
      await invitations.updateOne({ _id: id }, { $set: { revokedAt: new Date(now()) } });
      await audit.record({ action: 'invitation.revoked', outcome: 'success', actor: by.actor, target: target(record) });
      return true;
    },

    async check(token, email) {
      const address = normalise(email);
      if (address === null) return INVALID;
      const record = await findByToken(token);
      if (!record || refusal(record, address)) return INVALID;
      const used = await uses.countDocuments({ invitationId: record._id });
      if (used >= record.maxUses) return INVALID;
      return { valid: true, invitationId: record._id, ...(record.email ? { boundEmail: record.email } : {}), expiresAt: record.expiresAt };
    },

    async redeem(token, email) {
      const address = normalise(email);
      const record = await findByToken(token);
      if (!record) return INVALID_REDEEM;
      if (!address) {
        await recordRedeem(record, '', 'failure', { reason: 'invalid_email' });
        return INVALID_REDEEM;
      }
      const reason = refusal(record, address);
      if (reason) {
        await recordRedeem(record, address, 'failure', { reason });
        return INVALID_REDEEM;
      }
      const use = await claimUse(record, address);
      if (use === undefined) {
        await recordRedeem(record, address, 'failure', { reason: 'used_up' });
        return INVALID_REDEEM;
      }
      // A revocation that landed while the slot was being claimed wins: read again, and give
      // the slot back if the invitation was revoked meanwhile.
      const current = await invitations.findOne({ _id: record._id }, { projection: { revokedAt: 1 } });
      if (!current || current.revokedAt) {
        await uses.deleteOne({ _id: `${record._id}:${use}` });
        await recordRedeem(record, address, 'failure', { reason: 'revoked' });
        return INVALID_REDEEM;
      }
      await recordRedeem(record, address, 'success', { use });
      return { ok: true, invitationId: record._id, use };
    },

    async release({ invitationId, use }) {
      const result = await uses.deleteOne({ _id: `${invitationId}:${use}` });
      if (result.deletedCount === 0) return;
      const record = await invitations.findOne({ _id: invitationId });
      if (record) {
        await audit.record({
          action: 'invitation.released',
          outcome: 'success',
          actor: { type: 'system' },
          target: target(record),
          details: { use: use + 1 },
        });
      }
    },

    async ensureIndexes() {
      await invitations.createIndex({ tokenHash: 1 }, { unique: true });
      await invitations.createIndex({ createdAt: -1 });
      await uses.createIndex({ invitationId: 1 });
    },

    async sweep(at = new Date(now())) {
      const before = new Date(at.getTime() - ENDED_RETENTION_MS);
      const ended = await invitations
        .find({ $or: [{ expiresAt: { $lte: before } }, { revokedAt: { $ne: null, $lte: before } }] }, { projection: { _id: 1 } })
        .toArray();
      if (ended.length === 0) return 0;
      const ids = ended.map((r) => r._id);
      await uses.deleteMany({ invitationId: { $in: ids } });
      const result = await invitations.deleteMany({ _id: { $in: ids } });
      return result.deletedCount;
    },
  };
}

const INVALID_REDEEM = { ok: false, reason: 'invalid' } as const;
