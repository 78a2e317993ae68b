import type { mongo } from 'mongoose';
import type { SessionsEndedListener } from '../oidc/mongo-adapter.js';

import type { AuditActor, AuditService } from '../audit/audit.service.js';
import { AUDIT_COLLECTION } from '../audit/audit.service.js';
import type { AttemptRecord } from '../limits/attempt-limiter.js';
import { LIMIT_ATTEMPTS_COLLECTION } from '../limits/attempt-limiter.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import { OUTBOX_CLAIMS_COLLECTION, OUTBOX_COLLECTION } from '../mail/outbox.service.js';
import { revokeAccountRecords } from '../oidc/mongo-adapter.js';
import type { AccountNotices } from './account-notices.js';
import type { AccountService, AccountView } from './account.service.js';
import { EMAIL_CODES_COLLECTION } from './email-code.service.js';
import { RESET_GRANTS_COLLECTION, RESET_TOKENS_COLLECTION } from './password-reset.service.js';
import { SIGN_UP_CLAIMS_COLLECTION, SIGN_UP_FLOWS_COLLECTION } from './sign-up.service.js';
import { RECOVERY_CODE_USES_COLLECTION, TOTP_USED_STEPS_COLLECTION } from './totp.service.js';

/**
 * Deleting an account, the one way: the person's own deletion (account centre) and an
 * administrator's (console, management API, CLI through user-admin.service.ts) both come here.
 *
 * In this order:
 *  1. the account document: from here on nothing can sign in as it (a password or code sign-in
 *     finds no account, exactly as for an address nobody has), and findAccount refuses its
 *     sessions and tokens;
 *  2. everything issued to it: SSO sessions, grants, refresh and access tokens, codes (the
 *     provider checks opaque tokens against its store on every use, so they stop working now);
 *  3. the person's working data: email codes (to the account or the address), authenticator and
 *     recovery-code claims, sign-up flows and claims, password-reset links and grants, the
 *     limiter's records of the account and of its address's failed proofs, and the mail outbox's
 *     records for the address (their bodies are sealed, the recipient is not);
 *  4. the audit log keeps its events, but without the person: the account's earlier events lose
 *     the email labels, and the IP and browser of what the person (or an anonymous visitor
 *     naming the account) did; ids stay, so the history still reads as one account's;
 *  5. one `user.deleted` event naming the account by id only (an administrator actor keeps their
 *     own label, IP and browser; the person deleting themselves leaves neither);
 *  6. a notice to the address (the last thing written to it), when notices are given.
 *
 * NOTE: no transaction (FerretDB has none): a crash in the middle leaves the account gone (step 1
 * first) with some working data left; each of those records expires by itself.
 */

export interface AccountDeletionService {
  /**
   * Deletes the account and everything of it; false when there was no such account (nothing
   * done). `actor`: who deletes (the account itself, or an administrator).
   */
  delete(account: AccountView, options: { actor: AuditActor; notices?: Pick<AccountNotices, 'accountDeleted'> | undefined }): Promise<boolean>;
}

export interface AccountDeletionDeps {
  db: mongo.Db;
  accounts: Pick<AccountService, 'delete'>;
  limits: SignInLimits;
  audit: AuditService;
  logger: Logger;
  /** Told which sessions ended, for back-channel logout (backchannel-logout.service.ts). */
  loggedOut?: SessionsEndedListener | undefined;
}

/** Detail keys under which an event may carry an address. */
const EMAIL_DETAIL_KEYS = ['email', 'previousEmail', 'newEmail'];

export function createAccountDeletionService({ db, accounts, limits, audit, logger, loggedOut }: AccountDeletionDeps): AccountDeletionService {
  /** The limiter's keys that name the account or its address's failed proofs (send windows expire within the hour). */
  const limitKeys = (account: AccountView) => [
    ...limits.accountKeys(account.id),
    limits.password(account.email).key,
    limits.emailCode(account.email).key,
    limits.signUpCode(account.email).key,
    limits.resetCode(account.email).key,
  ];

  async function forgetWorkingData(account: AccountView): Promise<void> {
    const { id, email } = account;
    await db.collection<{ accountId: string | null; email: string }>(EMAIL_CODES_COLLECTION).deleteMany({ $or: [{ accountId: id }, { email }] });
    for (const name of [TOTP_USED_STEPS_COLLECTION, RECOVERY_CODE_USES_COLLECTION, RESET_GRANTS_COLLECTION]) {
      await db.collection<{ accountId: string }>(name).deleteMany({ accountId: id });
    }
    for (const name of [SIGN_UP_FLOWS_COLLECTION, RESET_TOKENS_COLLECTION]) {
      await db.collection<{ accountId: string | null; email: string }>(name).deleteMany({ $or: [{ accountId: id }, { email }] });
    }
    await db.collection<{ _id: string }>(SIGN_UP_CLAIMS_COLLECTION).deleteOne({ _id: `verified:${id}` });
    await db.collection<AttemptRecord>(LIMIT_ATTEMPTS_COLLECTION).deleteMany({ key: { $in: limitKeys(account) } });
    const outbox = db.collection<{ _id: string; to: string }>(OUTBOX_COLLECTION);
    const mails = await outbox.find({ to: email }, { projection: { _id: 1 } }).toArray();
    if (mails.length > 0) {
      await db.collection<{ mailId: string }>(OUTBOX_CLAIMS_COLLECTION).deleteMany({ mailId: { $in: mails.map((m) => m._id) } });
      await outbox.deleteMany({ _id: { $in: mails.map((m) => m._id) } });
    }
  }

  /** Step 4: the account's earlier events keep their ids, not the person. */
  async function scrubAudit(accountId: string): Promise<void> {
    const events = db.collection(AUDIT_COLLECTION);
    const emailDetails = Object.fromEntries(EMAIL_DETAIL_KEYS.map((key) => [`details.${key}`, '']));
    // What the person did: their label, where from.
    await events.updateMany({ 'actor.id': accountId }, { $unset: { 'actor.label': '', ip: '', userAgent: '', ...emailDetails } });
    // What was done to the account by nobody in particular (a sign-in attempt, a sign-up): the
    // visitor was most likely the person.
    await events.updateMany({ 'target.id': accountId, 'actor.type': { $in: ['anonymous', 'system'] } }, { $unset: { 'target.label': '', ip: '', userAgent: '', ...emailDetails } });
    // By someone else (an administrator, a client): their own IP and browser stay.
    await events.updateMany({ 'target.id': accountId }, { $unset: { 'target.label': '', ...emailDetails } });
  }

  return {
    async delete(account, { actor, notices }) {
      if (!(await accounts.delete(account.id))) return false;
      const revokedRecords = await revokeAccountRecords(db, account.id, undefined, loggedOut);
      await forgetWorkingData(account);
      await scrubAudit(account.id);
      const self = actor.type === 'account' && actor.id === account.id;
      await audit.record({
        action: 'user.deleted',
        outcome: 'success',
        actor: self ? { type: 'account', id: account.id } : actor,
        target: { type: 'account', id: account.id },
        // NOTE: '' rather than undefined: undefined means "the request's", which is the person's.
        ...(self ? { ip: '', userAgent: '' } : {}),
        details: { revokedRecords, by: self ? 'self' : 'admin' },
      });
      logger.debug('account deleted; sessions and tokens revoked', { accountId: account.id, by: self ? 'self' : 'admin', revokedRecords });
      if (notices) await notices.accountDeleted({ id: account.id, email: account.email, name: account.name }, { byAdmin: !self });
      return true;
    },
  };
}
