import { randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';
import { z } from 'zod';

import type { AuditService } from '../audit/audit.service.js';
import type { Config } from '../config/config.js';
import { insertClaim, isDuplicateKey } from '../db/claims.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';
import { fieldMessagesFrom } from '../http/field-problems.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import type { AccountModel, AccountRecord } from './account.model.js';
import type { AccountService, AccountView } from './account.service.js';
import { emailSchema, passwordSchema, safeText } from './account.service.js';
import type { BackgroundMail } from './background-mail.js';
import type { EmailCodeService } from './email-code.service.js';
import { hashPassword } from './password.js';
import type { SelfServiceLinks } from './self-service-links.js';

/**
 * Self-service sign-up with email verification.
 *
 * `start` answers the same for every address: `{ ok: true, flowId, email, expiresAt }`, after
 * the same work (argon2id of the password, one account read, one account insert, which for a
 * taken address fails on the unique index and writes nothing, one flow record, one code record;
 * mail leaves in the background). What differs is only what reaches the
 * address's inbox:
 *  - free address: an account is created UNVERIFIED and PENDING (`emailVerified: false`,
 *    `signUpPendingUntil`), holding only the address; the password hash and name wait in the
 *    flow record; a 6-digit code is mailed (`sign-up-code`);
 *  - address of a pending account (somebody signed up and never verified): the same as a free
 *    address. The pending account is shared, not replaced; each flow has its own password and
 *    code, and the first flow verified with the code from the inbox sets the password and name.
 *    So a stranger who signs up first with someone's address blocks nothing: their code goes to
 *    the owner's inbox, and the owner's own sign-up goes ahead as if the address were free;
 *  - address of any other account: nothing is written to the account; the owner is mailed
 *    `sign-up-existing` ("sign in, or reset your password"), and the flow gets a code nobody
 *    can redeem, so a later `verify` answers like a wrong code.
 *
 * The unverified-account rule: a pending account has no password, so a password sign-in fails
 * exactly as for an unknown address (account.service.ts authenticate). It becomes a normal
 * account when the inbox is proven: by `verify` (the password and name of that flow apply), by
 * a sign-in with a code by email (it then has no password; a reset gives it one), or by a
 * password reset. The sign-in steps resume an unfinished sign-up by starting a new one for the
 * address (its code then goes to the inbox again). A pending account nobody verifies is deleted by
 * `sweep` PENDING_DAYS after it was created, once no sign-up flow for it is live.
 */

/** The password policy, injected (the real one weighs the password against lists and the person's own data). */
export interface PasswordPolicy {
  check(password: string, context: { email?: string; name?: string }): Promise<{ ok: true } | { ok: false; reason: string; message: string }>;
}

/** Invitations (SIGN_UP=invite): whether this invitation lets this address sign up. */
export interface InvitationCheck {
  accept(invitation: string, email: string): Promise<boolean>;
}

export type SignUpStartResult =
  | { ok: true; flowId: string; email: string; expiresAt: Date }
  | { ok: false; reason: 'invalid'; fields: Record<string, string> }
  | { ok: false; reason: 'closed' | 'invitation_required' }
  | { ok: false; reason: 'weak_password'; message: string }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export type SignUpVerifyResult =
  | { ok: true; account: AccountView }
  /** `already_verified`: the right code, but the address was proven another way first (sign in instead). */
  | { ok: false; reason: 'invalid' | 'expired' | 'exhausted' | 'missing' | 'already_verified' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export type SignUpResendResult =
  | { ok: true; expiresAt: Date }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export interface SignUpService {
  start(input: { email: string; name?: string | undefined; password: string; ip: string; invitation?: string | undefined }): Promise<SignUpStartResult>;
  /** The code from the mail, typed into the flow that asked for it. */
  verify(input: { flowId: string; code: string; ip: string }): Promise<SignUpVerifyResult>;
  /** A new code for the flow (the previous one stops working); throttled per flow and per address. */
  resend(input: { flowId: string; ip: string }): Promise<SignUpResendResult>;
  /** For the code page: which address, when a resend is allowed. */
  pending(flowId: string): Promise<{ email: string; expiresAt: Date; resendAfterSeconds: number } | undefined>;
  ensureIndexes(): Promise<void>;
  /** Removes expired flows and claims, and pending accounts nobody verified in time. */
  sweep(now?: Date): Promise<number>;
}

/** One per `start`: what the verification applies, and to which account. */
export interface SignUpFlowRecord {
  /** 128 random bits, base64url: the flow's handle, kept server-side by the page (in its interaction). */
  _id: string;
  email: string;
  /** The pending account; null when the address belongs to another account (nothing to verify). */
  accountId: string | null;
  /** argon2id of the chosen password; null with accountId null. */
  passwordHash: string | null;
  name: string | null;
  createdAt: Date;
  expiresAt: Date;
}

export const SIGN_UP_FLOWS_COLLECTION = 'sign_up_flows';
/** `{ _id: "verified:<accountId>", expiresAt }`: of concurrent verifications of one account, one wins. */
export const SIGN_UP_CLAIMS_COLLECTION = 'sign_up_claims';

/** A flow can be resumed (codes resent) for this long. */
const FLOW_TTL_MS = 60 * 60 * 1000;
/** A pending account is deleted this long after its latest sign-up, unless verified. */
export const PENDING_DAYS = 1;
const PENDING_MS = PENDING_DAYS * 24 * 60 * 60 * 1000;

const flowIdSchema = z.string().regex(/^[A-Za-z0-9_-]{22}$/);
const codeSchema = z.string().max(32);

const startSchema = z.object({
  email: emailSchema,
  name: safeText(200)
    .transform((s) => s.trim())
    .optional(),
  password: passwordSchema,
  ip: z.string().max(100),
  invitation: z.string().max(512).optional(),
});

const isPending = (doc: Pick<AccountRecord, 'emailVerified' | 'signUpPendingUntil'>) => !doc.emailVerified && doc.signUpPendingUntil instanceof Date;

export interface SignUpServiceDeps {
  config: Pick<Config, 'signUp' | 'productName'>;
  Account: AccountModel;
  accounts: AccountService;
  db: mongo.Db;
  emailCodes: EmailCodeService;
  limits: SignInLimits;
  passwordPolicy: PasswordPolicy;
  invitations?: InvitationCheck | undefined;
  mail: BackgroundMail;
  links: SelfServiceLinks;
  audit: AuditService;
  logger: Logger;
  now?: () => number;
}

export function createSignUpService(deps: SignUpServiceDeps): SignUpService {
  const { config, Account, accounts, db, emailCodes, limits, passwordPolicy, invitations, mail, links, audit, logger } = deps;
  const now = deps.now ?? Date.now;
  const flows = db.collection<SignUpFlowRecord>(SIGN_UP_FLOWS_COLLECTION);
  const claims = db.collection<{ _id: string; expiresAt: Date }>(SIGN_UP_CLAIMS_COLLECTION);
  const expiresInMinutes = Math.round(config.signUp.codeTtlSeconds / 60);

  const anonymousFailure = (action: string, reason: string) => audit.record({ action, outcome: 'failure', actor: { type: 'anonymous' }, reason });

  /**
   * One account read and one account insert, whichever branch: the insert creates the pending
   * account for a free address, and for a taken one fails on the unique email index, writing
   * nothing, after the same round trip. NOTE: a pending account is never updated here (a hundred
   * sign-ups for one address would all write one document; FerretDB on SQLite then refuses with
   * "database is locked"): the sweep keeps it while any flow for it is live.
   */
  async function claimAddress(email: string, pendingUntil: Date): Promise<{ kind: 'pending'; accountId: string } | { kind: 'taken'; account: AccountRecord | null }> {
    const existing = await Account.findOne({ email }).lean();
    try {
      const created = await Account.create({ email, emailVerified: false, roles: [], signUpPendingUntil: pendingUntil });
      return { kind: 'pending', accountId: created._id };
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    // Taken, or created by a concurrent sign-up a moment ago: share it while it is pending.
    const current = existing ?? (await Account.findOne({ email }).lean());
    return current && isPending(current) ? { kind: 'pending', accountId: current._id } : { kind: 'taken', account: current };
  }

  /** Issues the flow's code (unredeemable when the flow has no account) and mails what the address should get. */
  async function sendCode(flow: SignUpFlowRecord): Promise<{ ok: true; expiresAt: Date } | { ok: false; retryAfterSeconds: number }> {
    let accountId = flow.accountId;
    let owner: AccountRecord | null = null;
    if (accountId) {
      // A resend after the address was proven another way: nothing left to verify.
      const doc = await Account.findById(accountId).lean();
      if (!doc || !isPending(doc)) {
        owner = doc;
        accountId = null;
      }
    } else {
      owner = await Account.findOne({ email: flow.email }).lean();
    }
    const issued = await emailCodes.issue({ email: flow.email, accountId, binding: flow._id, purpose: 'sign-up' });
    if (!issued.ok) return { ok: false, retryAfterSeconds: issued.retryAfterSeconds };
    if (accountId) {
      mail.send(flow.email, 'sign-up-code', { code: issued.code, expiresInMinutes, email: flow.email });
    } else if (owner && !owner.disabledAt) {
      // Only the owner's inbox learns that the address has an account. A disabled account gets nothing.
      mail.send(owner.email, 'sign-up-existing', { email: owner.email, signInUrl: links.signIn, resetUrl: links.passwordReset });
    }
    return { ok: true, expiresAt: issued.expiresAt };
  }

  async function openFlow(flowId: unknown): Promise<SignUpFlowRecord | null> {
    const id = flowIdSchema.safeParse(flowId);
    if (!id.success) return null;
    const flow = await flows.findOne({ _id: id.data });
    return flow && flow.expiresAt.getTime() > now() ? flow : null;
  }

  return {
    async start(input) {
      const parsed = startSchema.safeParse(input);
      if (!parsed.success) {
        await anonymousFailure('account.sign_up', 'invalid_input');
        return { ok: false, reason: 'invalid', fields: fieldMessagesFrom(parsed.error, 'first') };
      }
      const { email, name, password, ip, invitation } = parsed.data;
      if (config.signUp.mode === 'closed') {
        await anonymousFailure('account.sign_up', 'closed');
        return { ok: false, reason: 'closed' };
      }
      // The policy sees only what the person typed, never whether the address has an account.
      const verdict = await passwordPolicy.check(password, { email, ...(name ? { name } : {}) });
      if (!verdict.ok) {
        await anonymousFailure('account.sign_up', 'weak_password');
        return { ok: false, reason: 'weak_password', message: verdict.message };
      }

      // Counted before anything is written: per IP, per address, and as a mail to the address.
      const gate = await limits.limiter.begin([
        limits.signUpsFromIp(ip),
        limits.signUpsForAddress(email),
        limits.codesToAddress(email),
        limits.codesToAddressFromIp(email, ip),
      ]);
      if (!gate.allowed) {
        await anonymousFailure('account.sign_up', 'throttled');
        return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      }
      // NOTE: the invitation's use is spent last, once the password and the limits let the sign-up
      // go ahead: a refused password or a throttled attempt must not use up a one-time invitation.
      if (config.signUp.mode === 'invite' && !(invitation && invitations && (await invitations.accept(invitation, email)))) {
        await gate.attempt.released();
        await anonymousFailure('account.sign_up', 'invitation_required');
        return { ok: false, reason: 'invitation_required' };
      }
      try {
        // NOTE: hashed in every branch, before the address is looked at, so an existing address
        // costs the same argon2id as a free one.
        const passwordHash = await hashPassword(password);
        const at = now();
        const claimed = await claimAddress(email, new Date(at + PENDING_MS));
        const flow: SignUpFlowRecord = {
          _id: randomBytes(16).toString('base64url'),
          email,
          accountId: claimed.kind === 'pending' ? claimed.accountId : null,
          passwordHash: claimed.kind === 'pending' ? passwordHash : null,
          name: claimed.kind === 'pending' ? (name ?? null) : null,
          createdAt: new Date(at),
          expiresAt: new Date(at + FLOW_TTL_MS),
        };
        await flows.insertOne(flow);
        const sent = await sendCode(flow);
        await gate.attempt.failed();
        if (!sent.ok) throw new Error('a fresh sign-up flow was throttled');
        if (claimed.kind === 'pending') {
          await audit.record({ action: 'account.sign_up', outcome: 'success', actor: { type: 'anonymous' }, target: { type: 'account', id: claimed.accountId, label: email } });
        } else if (claimed.account) {
          // For admins only: the person on the page saw the same answer as for a new address.
          await audit.record({
            action: 'account.sign_up_existing',
            outcome: 'failure',
            actor: { type: 'anonymous' },
            target: { type: 'account', id: claimed.account._id, label: claimed.account.email },
            reason: 'email_taken',
          });
        }
        return { ok: true, flowId: flow._id, email, expiresAt: sent.expiresAt };
      } catch (err) {
        // The attempt stays counted if it got that far; otherwise it counts nowhere.
        await gate.attempt.released();
        throw err;
      }
    },

    async verify({ flowId, code, ip }) {
      const flow = await openFlow(flowId);
      if (!flow) return { ok: false, reason: 'missing' };
      const gate = await limits.limiter.begin([limits.signUpCode(flow.email), limits.signInFromIp(ip)]);
      if (!gate.allowed) {
        await anonymousFailure('account.email_verified', 'throttled');
        return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      }
      const typed = codeSchema.safeParse(code);
      const result = typed.success ? await emailCodes.verify({ binding: flow._id, purpose: 'sign-up', code: typed.data }) : ({ ok: false, reason: 'invalid' } as const);
      const target = flow.accountId ? { type: 'account' as const, id: flow.accountId, label: flow.email } : undefined;
      if (!result.ok || !flow.accountId || result.accountId !== flow.accountId) {
        await gate.attempt.failed();
        const reason = result.ok ? 'invalid' : result.reason;
        await audit.record({ action: 'account.email_verified', outcome: 'failure', actor: { type: 'anonymous' }, target, reason: `code_${reason}` });
        return { ok: false, reason };
      }
      // The inbox is proven; the code is used up whatever follows.
      await gate.attempt.succeeded();
      const accountId = flow.accountId;
      const doc = await Account.findById(accountId).lean();
      if (!doc || !isPending(doc)) {
        await audit.record({ action: 'account.email_verified', outcome: 'failure', actor: { type: 'anonymous' }, target, reason: doc ? 'already_verified' : 'account_gone' });
        return { ok: false, reason: doc ? 'already_verified' : 'expired' };
      }
      // NOTE: a unique insert, not a conditional update (not atomic on FerretDB): of two flows of
      // one account verified at once, exactly one sets the password.
      const won = await insertClaim(claims, { _id: `verified:${accountId}`, expiresAt: new Date((doc.signUpPendingUntil?.getTime() ?? now()) + PENDING_MS) });
      if (!won) {
        await audit.record({ action: 'account.email_verified', outcome: 'failure', actor: { type: 'anonymous' }, target, reason: 'already_verified' });
        return { ok: false, reason: 'already_verified' };
      }
      await Account.updateOne(
        { _id: accountId },
        {
          $set: { emailVerified: true, ...(flow.passwordHash ? { passwordHash: flow.passwordHash } : {}), ...(flow.name ? { name: flow.name } : {}) },
          $unset: { signUpPendingUntil: '' },
        },
      );
      // Every flow of the account ends here: the other passwords waiting in them go too.
      await flows.deleteMany({ accountId });
      const account = await accounts.findById(accountId);
      if (!account) throw new Error('verified account vanished');
      logger.info('sign-up verified', { accountId });
      await audit.record({ action: 'account.email_verified', outcome: 'success', actor: { type: 'account', id: accountId, label: account.email }, target: { type: 'account', id: accountId, label: account.email } });
      return { ok: true, account };
    },

    async resend({ flowId, ip }) {
      const flow = await openFlow(flowId);
      if (!flow) return { ok: false, reason: 'missing' };
      const gate = await limits.limiter.begin([limits.codesToAddress(flow.email), limits.codesToAddressFromIp(flow.email, ip), limits.signUpsFromIp(ip)]);
      if (!gate.allowed) {
        await anonymousFailure('account.sign_up_code_resent', 'throttled');
        return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      }
      const sent = await sendCode(flow);
      if (!sent.ok) {
        await gate.attempt.released();
        return { ok: false, reason: 'throttled', retryAfterSeconds: sent.retryAfterSeconds };
      }
      await gate.attempt.failed();
      await audit.record({
        action: 'account.sign_up_code_resent',
        outcome: 'success',
        actor: { type: 'anonymous' },
        ...(flow.accountId ? { target: { type: 'account' as const, id: flow.accountId, label: flow.email } } : {}),
      });
      return { ok: true, expiresAt: sent.expiresAt };
    },

    async pending(flowId) {
      const flow = await openFlow(flowId);
      return flow ? emailCodes.pending({ binding: flow._id, purpose: 'sign-up' }) : undefined;
    },

    async ensureIndexes() {
      await flows.createIndex({ accountId: 1 }, { name: 'accountId_1', sparse: true });
      await ensureExpiryIndex(flows);
      await ensureExpiryIndex(claims);
    },

    async sweep(at = new Date(now())) {
      let removed = (await flows.deleteMany({ expiresAt: { $lte: at } })).deletedCount;
      removed += (await claims.deleteMany({ expiresAt: { $lte: at } })).deletedCount;
      // Pending accounts nobody verified (only ever ones without a password, a session or a
      // token), unless a sign-up for them is still under way.
      const stale = await Account.find({ emailVerified: false, signUpPendingUntil: { $lte: at } }, { _id: 1 }).lean();
      for (const { _id } of stale) {
        if (await flows.countDocuments({ accountId: _id, expiresAt: { $gt: at } }, { limit: 1 })) continue;
        removed += (await Account.deleteOne({ _id, emailVerified: false, signUpPendingUntil: { $lte: at } })).deletedCount;
      }
      return removed;
    },
  };
}
