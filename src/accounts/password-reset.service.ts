import { createHash, randomBytes } from 'node:crypto';
import type { SessionsEndedListener } from '../oidc/mongo-adapter.js';

import type { mongo } from 'mongoose';
import { z } from 'zod';

import type { AuditService } from '../audit/audit.service.js';
import type { AdminAuthority } from '../clients/admin-authority.js';
import { NO_AUTHORITY } from '../clients/admin-authority.js';
import type { Config } from '../config/config.js';
import { insertClaim } from '../db/claims.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';
import { AppError } from '../http/app-error.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import { revokeAccountAccess } from '../oidc/account-revocation.js';
import type { AccountNotices } from './account-notices.js';
import type { AccountService, AccountView } from './account.service.js';
import { emailSchema, passwordSchema } from './account.service.js';
import type { BackgroundMail } from './background-mail.js';
import type { EmailCodeService } from './email-code.service.js';
import type { SelfServiceLinks } from './self-service-links.js';
import type { PasswordPolicy } from './sign-up.service.js';

/**
 * Self-service password reset: proof of the mailbox, then a new password.
 *
 * `request` answers `{ ok: true, flowId, email, expiresAt }` for every address, after the same
 * writes (one code record, one token record); mail leaves in the background. A known, enabled
 * account gets `password-reset`: a 6-digit code for the flow's page and a link with a single-use
 * token (256 random bits, base64url), both valid PASSWORD_RESET ttl. An unknown address gets
 * `password-reset-no-account` (PASSWORD_RESET_NO_ACCOUNT_MAIL, on by default: the person asking
 * has usually forgotten which address they used, and only that inbox learns it); a disabled
 * account gets nothing. Their code and token are recorded all the same and can never be redeemed.
 *
 * Each request is its own flow: a new request never cancels the code or link of another (another
 * browser's may be the owner's). Proving the code or the link gives a reset grant (another 256-bit
 * token, valid `grantTtlSeconds`), which `complete` spends once: the policy, argon2id, the
 * address counted as verified, every session, grant and token of the account revoked, every other
 * outstanding reset code and link of the account killed, a `password-changed` notice. Second
 * factors stay: a reset proves the mailbox, not the authenticator app, so the next sign-in still
 * asks for them.
 *
 * Tokens and grants are stored as SHA-256 only: they carry 256 random bits, so a plain hash
 * cannot be reversed, and whoever reads the collection holds nothing usable.
 */

export type ResetRequestResult =
  | { ok: true; flowId: string; email: string; expiresAt: Date }
  | { ok: false; reason: 'invalid'; fields: Record<string, string> }
  | { ok: false; reason: 'disabled' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export type ResetVerifyResult =
  | { ok: true; grant: string; expiresAt: Date }
  | { ok: false; reason: 'invalid' | 'expired' | 'exhausted' | 'missing' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export type ResetCompleteResult =
  | { ok: true; account: AccountView; revokedRecords: number }
  | { ok: false; reason: 'invalid_grant' }
  | { ok: false; reason: 'invalid'; fields: Record<string, string> }
  | { ok: false; reason: 'weak_password'; message: string };

export interface PasswordResetService {
  request(input: { email: string; ip: string }): Promise<ResetRequestResult>;
  /** The code from the mail, typed into the flow that asked for it. */
  verifyCode(input: { flowId: string; code: string; ip: string }): Promise<ResetVerifyResult>;
  /** The token of the mail's link. */
  verifyToken(input: { token: string; ip: string }): Promise<ResetVerifyResult>;
  complete(input: { grant: string; newPassword: string }): Promise<ResetCompleteResult>;
  /** For the code page: which address. */
  pending(flowId: string): Promise<{ email: string; expiresAt: Date } | undefined>;
  /**
   * An administrator sends the account a reset mail (the link only). 404 `user.not_found`,
   * 409 `user.disabled`, 429 `password_reset.throttled` (the address's mail limit).
   */
  sendByAdmin(accountId: string, by?: AdminAuthority): Promise<{ email: string; expiresAt: Date }>;
  ensureIndexes(): Promise<void>;
  sweep(now?: Date): Promise<number>;
}

export interface ResetTokenRecord {
  /** SHA-256 of the token, base64url. */
  _id: string;
  flowId: string;
  /** null: unknown address or disabled account; never redeemable. */
  accountId: string | null;
  email: string;
  createdAt: Date;
  expiresAt: Date;
}

export interface ResetGrantRecord {
  /** SHA-256 of the grant, base64url. */
  _id: string;
  accountId: string;
  flowId: string;
  expiresAt: Date;
}

export const RESET_TOKENS_COLLECTION = 'password_reset_tokens';
export const RESET_GRANTS_COLLECTION = 'password_reset_grants';
/** `token:<hash>` and `grant:<hash>`: each spent once, also under concurrent requests. */
export const RESET_CLAIMS_COLLECTION = 'password_reset_claims';

const CLAIM_GRACE_MS = 5 * 60 * 1000;

const secretSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
const flowIdSchema = z.string().regex(/^[A-Za-z0-9_-]{22}$/);
const codeSchema = z.string().max(32);

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');
const newSecret = () => randomBytes(32).toString('base64url');

export interface PasswordResetServiceDeps {
  config: Pick<Config, 'passwordReset'>;
  accounts: AccountService;
  db: mongo.Db;
  emailCodes: EmailCodeService;
  limits: SignInLimits;
  passwordPolicy: PasswordPolicy;
  mail: BackgroundMail;
  links: SelfServiceLinks;
  audit: AuditService;
  logger: Logger;
  /** The `password-changed` notice after a reset. */
  notices: Pick<AccountNotices, 'passwordChanged'>;
  now?: () => number;
  /** Told which sessions ended, for back-channel logout (backchannel-logout.service.ts). */
  loggedOut?: SessionsEndedListener | undefined;
}

export function createPasswordResetService(deps: PasswordResetServiceDeps): PasswordResetService {
  const { config, accounts, db, emailCodes, limits, passwordPolicy, mail, links, audit, logger, notices } = deps;
  const now = deps.now ?? Date.now;
  const tokens = db.collection<ResetTokenRecord>(RESET_TOKENS_COLLECTION);
  const grants = db.collection<ResetGrantRecord>(RESET_GRANTS_COLLECTION);
  const claims = db.collection<{ _id: string; expiresAt: Date }>(RESET_CLAIMS_COLLECTION);
  const ttlMs = config.passwordReset.ttlSeconds * 1000;
  const expiresInMinutes = Math.round(config.passwordReset.ttlSeconds / 60);

  const accountTarget = (account: Pick<AccountView, 'id' | 'email'>) => ({ type: 'account' as const, id: account.id, label: account.email });

  /** One flow: a code bound to it and a token, both recorded whether or not anyone can redeem them. */
  async function openFlow(email: string, usable: AccountView | undefined) {
    const flowId = randomBytes(16).toString('base64url');
    const token = newSecret();
    const issued = await emailCodes.issue({ email, accountId: usable?.id ?? null, binding: flowId, purpose: 'password-reset' });
    if (!issued.ok) throw new Error('a fresh reset flow was throttled');
    const at = now();
    await tokens.insertOne({ _id: sha256(token), flowId, accountId: usable?.id ?? null, email, createdAt: new Date(at), expiresAt: new Date(at + ttlMs) });
    return { flowId, token, code: issued.code, expiresAt: issued.expiresAt };
  }

  async function issueGrant(accountId: string, flowId: string): Promise<{ grant: string; expiresAt: Date }> {
    const grant = newSecret();
    const expiresAt = new Date(now() + config.passwordReset.grantTtlSeconds * 1000);
    await grants.insertOne({ _id: sha256(grant), accountId, flowId, expiresAt });
    return { grant, expiresAt };
  }

  /** Spends the flow's link (the code was used): claimed, so a request that read it a moment ago loses. */
  async function killTokens(filter: mongo.Filter<ResetTokenRecord>): Promise<void> {
    const found = await tokens.find(filter, { projection: { _id: 1, expiresAt: 1 } }).toArray();
    for (const record of found) await insertClaim(claims, { _id: `token:${record._id}`, expiresAt: new Date(record.expiresAt.getTime() + CLAIM_GRACE_MS) });
    if (found.length > 0) await tokens.deleteMany({ _id: { $in: found.map((r) => r._id) } });
  }

  const failure = (action: string, reason: string, account?: Pick<AccountView, 'id' | 'email'>) =>
    audit.record({ action, outcome: 'failure', actor: { type: 'anonymous' }, ...(account ? { target: accountTarget(account) } : {}), reason });

  return {
    async request(input) {
      if (!config.passwordReset.enabled) return { ok: false, reason: 'disabled' };
      const parsed = z.object({ email: emailSchema, ip: z.string().max(100) }).safeParse(input);
      if (!parsed.success) return { ok: false, reason: 'invalid', fields: { email: parsed.error.issues[0]?.message ?? 'invalid' } };
      const { email, ip } = parsed.data;
      const gate = await limits.limiter.begin([
        limits.resetRequestsFromIp(ip),
        limits.resetRequestsForAddress(email),
        limits.codesToAddress(email),
        limits.codesToAddressFromIp(email, ip),
      ]);
      if (!gate.allowed) {
        await failure('account.password_reset_requested', 'throttled');
        return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      }
      try {
        const account = await accounts.findByEmail(email);
        const usable = account && !account.disabled ? account : undefined;
        const flow = await openFlow(email, usable);
        await gate.attempt.failed();
        if (usable) {
          mail.send(usable.email, 'password-reset', { code: flow.code, link: links.resetLink(flow.token), expiresInMinutes, email: usable.email });
        } else if (!account && config.passwordReset.noAccountMail) {
          mail.send(email, 'password-reset-no-account', { email });
        }
        if (account) {
          await audit.record({
            action: 'account.password_reset_requested',
            outcome: usable ? 'success' : 'failure',
            actor: { type: 'anonymous' },
            target: accountTarget(account),
            ...(usable ? {} : { reason: 'account_disabled' }),
          });
        } else {
          await failure('account.password_reset_requested', 'unknown_account');
        }
        return { ok: true, flowId: flow.flowId, email, expiresAt: flow.expiresAt };
      } catch (err) {
        await gate.attempt.released();
        throw err;
      }
    },

    async verifyCode({ flowId, code, ip }) {
      const id = flowIdSchema.safeParse(flowId);
      const waiting = id.success ? await emailCodes.pending({ binding: id.data, purpose: 'password-reset' }) : undefined;
      if (!id.success || !waiting) return { ok: false, reason: 'missing' };
      const gate = await limits.limiter.begin([limits.resetCode(waiting.email), limits.signInFromIp(ip)]);
      if (!gate.allowed) {
        await failure('account.password_reset_verified', 'throttled');
        return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      }
      const typed = codeSchema.safeParse(code);
      const result = typed.success ? await emailCodes.verify({ binding: id.data, purpose: 'password-reset', code: typed.data }) : ({ ok: false, reason: 'invalid' } as const);
      if (!result.ok || !result.accountId) {
        await gate.attempt.failed();
        await failure('account.password_reset_verified', `code_${result.ok ? 'invalid' : result.reason}`);
        return { ok: false, reason: result.ok ? 'invalid' : result.reason };
      }
      await gate.attempt.succeeded();
      // The code and the link of one request are one proof: the link dies with the code.
      await killTokens({ flowId: id.data });
      const account = await accounts.findById(result.accountId);
      if (!account || account.disabled) {
        await failure('account.password_reset_verified', 'account_unusable');
        return { ok: false, reason: 'missing' };
      }
      await audit.record({ action: 'account.password_reset_verified', outcome: 'success', actor: accountTarget(account), target: accountTarget(account), details: { method: 'code' } });
      return { ok: true, ...(await issueGrant(account.id, id.data)) };
    },

    async verifyToken({ token, ip }) {
      const typed = secretSchema.safeParse(token);
      const hash = typed.success ? sha256(typed.data) : undefined;
      const record = hash ? await tokens.findOne({ _id: hash }) : null;
      // A known token counts at its address too; an unknown one only at the IP (it names none).
      const gate = await limits.limiter.begin(record ? [limits.resetCode(record.email), limits.signInFromIp(ip)] : [limits.signInFromIp(ip)]);
      if (!gate.allowed) {
        await failure('account.password_reset_verified', 'throttled');
        return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      }
      const expired = record !== null && record.expiresAt.getTime() <= now();
      if (!record || !hash || expired || !record.accountId) {
        await gate.attempt.failed();
        await failure('account.password_reset_verified', expired ? 'link_expired' : 'link_invalid');
        return { ok: false, reason: expired ? 'expired' : 'invalid' };
      }
      // Spent once: the first to insert the claim wins (a conditional update is not atomic on FerretDB).
      const won = await insertClaim(claims, { _id: `token:${hash}`, expiresAt: new Date(record.expiresAt.getTime() + CLAIM_GRACE_MS) });
      if (!won) {
        await gate.attempt.failed();
        await failure('account.password_reset_verified', 'link_used');
        return { ok: false, reason: 'invalid' };
      }
      await gate.attempt.succeeded();
      await tokens.deleteOne({ _id: hash });
      await emailCodes.discard({ binding: record.flowId, purpose: 'password-reset' });
      const account = await accounts.findById(record.accountId);
      if (!account || account.disabled) {
        await failure('account.password_reset_verified', 'account_unusable');
        return { ok: false, reason: 'invalid' };
      }
      await audit.record({ action: 'account.password_reset_verified', outcome: 'success', actor: accountTarget(account), target: accountTarget(account), details: { method: 'link' } });
      return { ok: true, ...(await issueGrant(account.id, record.flowId)) };
    },

    async complete({ grant, newPassword }) {
      const typed = secretSchema.safeParse(grant);
      const hash = typed.success ? sha256(typed.data) : undefined;
      const record = hash ? await grants.findOne({ _id: hash }) : null;
      if (!hash || !record || record.expiresAt.getTime() <= now()) return { ok: false, reason: 'invalid_grant' };
      const account = await accounts.findById(record.accountId);
      if (!account || account.disabled) return { ok: false, reason: 'invalid_grant' };
      // Checked before the grant is spent: a refused password leaves it usable for another try.
      const parsed = passwordSchema.safeParse(newPassword);
      if (!parsed.success) return { ok: false, reason: 'invalid', fields: { newPassword: parsed.error.issues[0]?.message ?? 'invalid' } };
      const verdict = await passwordPolicy.check(parsed.data, { email: account.email, ...(account.name ? { name: account.name } : {}) });
      if (!verdict.ok) return { ok: false, reason: 'weak_password', message: verdict.message };

      if (!(await insertClaim(claims, { _id: `grant:${hash}`, expiresAt: new Date(record.expiresAt.getTime() + CLAIM_GRACE_MS) }))) {
        return { ok: false, reason: 'invalid_grant' };
      }
      await grants.deleteOne({ _id: hash });
      // Sets argon2id and clears an administrator's "new password at next sign-in".
      const updated = await accounts.changePassword(account.id, parsed.data);
      // The mailbox is proven: a pending sign-up becomes a normal account.
      await accounts.markEmailVerified(account.id);
      // Whoever held the old password (or a session or token won with it) loses access now.
      const revokedRecords = await revokeAccountAccess(db, account.id, deps.loggedOut);
      // Every other outstanding reset of this account dies too: the password they would reset is gone.
      await grants.deleteMany({ accountId: account.id });
      await killTokens({ accountId: account.id });
      await emailCodes.discardForAccount({ accountId: account.id, purpose: 'password-reset' });
      // When and from where: the request that set the password (the reset page, or the sign-in's).
      await notices.passwordChanged(account);
      logger.info('password reset', { accountId: account.id, revokedRecords });
      await audit.record({ action: 'account.password_reset', outcome: 'success', actor: accountTarget(account), target: accountTarget(account), details: { revokedRecords } });
      return { ok: true, account: { ...updated, emailVerified: true }, revokedRecords };
    },

    async pending(flowId) {
      const id = flowIdSchema.safeParse(flowId);
      const waiting = id.success ? await emailCodes.pending({ binding: id.data, purpose: 'password-reset' }) : undefined;
      return waiting ? { email: waiting.email, expiresAt: waiting.expiresAt } : undefined;
    },

    async sendByAdmin(accountId, by = NO_AUTHORITY) {
      const account = typeof accountId === 'string' && accountId ? await accounts.findById(accountId) : undefined;
      if (!account) throw new AppError(404, 'user.not_found', 'No user with this id.');
      const refuse = async (reason: string, error: AppError) => {
        await audit.record({ action: 'user.password_reset_mail_sent', outcome: 'failure', actor: by.actor, target: accountTarget(account), reason });
        throw error;
      };
      if (account.disabled) return refuse('account_disabled', new AppError(409, 'user.disabled', 'The account is disabled; enable it before sending a password reset.'));
      // The address's mail allowance applies to administrators too: a leaked API token cannot flood an inbox.
      const gate = await limits.limiter.begin([limits.codesToAddress(account.email)]);
      if (!gate.allowed) {
        return refuse('throttled', new AppError(429, 'password_reset.throttled', `Too many mails to this address; try again in ${gate.retryAfterSeconds} seconds.`));
      }
      const flow = await openFlow(account.email, account);
      await gate.attempt.failed();
      // The link only: the code belongs to a page's flow, and nobody's page holds this one.
      mail.send(account.email, 'password-reset', { link: links.resetLink(flow.token), expiresInMinutes, email: account.email });
      await audit.record({ action: 'user.password_reset_mail_sent', outcome: 'success', actor: by.actor, target: accountTarget(account) });
      return { email: account.email, expiresAt: flow.expiresAt };
    },

    async ensureIndexes() {
      await tokens.createIndex({ flowId: 1 }, { name: 'flowId_1' });
      await tokens.createIndex({ accountId: 1 }, { name: 'accountId_1', sparse: true });
      await grants.createIndex({ accountId: 1 }, { name: 'accountId_1' });
      for (const collection of [tokens, grants, claims] as unknown as mongo.Collection[]) await ensureExpiryIndex(collection);
    },

    async sweep(at = new Date(now())) {
      let removed = 0;
      for (const collection of [tokens, grants, claims] as unknown as mongo.Collection[]) removed += (await collection.deleteMany({ expiresAt: { $lte: at } })).deletedCount;
      return removed;
    },
  };
}
