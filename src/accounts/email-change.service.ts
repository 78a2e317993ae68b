import type { mongo } from 'mongoose';
import { z } from 'zod';

import { isDuplicateKey } from '../db/claims.js';
import { guardDatabase } from '../db/unavailable.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import type { EnqueueOptions, EnqueueResult } from '../mail/outbox.service.js';
import type { MailTemplate } from '../mail/mailer.js';
import type { AccountRecord } from './account.model.js';
import type { AccountService, AccountView } from './account.service.js';
import { emailSchema } from './account.service.js';
import type { EmailCodePurpose, EmailCodeService } from './email-code.service.js';
import { RESET_GRANTS_COLLECTION, RESET_TOKENS_COLLECTION } from './password-reset.service.js';

/**
 * A new email address for a signed-in account (the account centre's Email page).
 *
 * `request` mails a 6-digit code to the NEW address (email-code.service.ts: keyed-hashed, short
 * lived, single use, a few attempts, one code per interval for the page that asked), counted like
 * every code mail per address, per address and IP, and per IP (src/limits). It never looks at
 * whether another account has that address: the answer, the work and the timing are the same for
 * every address, so the page cannot be used to find out who has an account. Only once the code
 * from that inbox comes back (`verify`), i.e. the person has proved they read it, is the address
 * tried on the account; if another account has it, the unique email index refuses it and the
 * person is told so (they own that inbox: there is nothing left to hide from them).
 *
 * NOTE: the unique index decides, not a read before the write: of two accounts that verify the
 * same new address at the same moment exactly one gets it (FerretDB applies conditional updates
 * in separate steps; a unique index holds on every server).
 *
 * A code belongs to the page that asked for it: `binding` names the account and the browser's
 * session, so a code typed into another session (or for another account) finds nothing.
 *
 * After the change, what was sent to the old address stops working: pending sign-in,
 * second-factor, email-change and password-reset codes of the account, and its password-reset
 * links and grants. Ending other sessions, the notice to the old address and the audit event
 * are the caller's (it knows the request).
 */

export const EMAIL_CHANGE_PURPOSE: EmailCodePurpose = 'email-change';

/** Codes that reached an inbox the account may no longer own. */
const OLD_INBOX_PURPOSES: readonly EmailCodePurpose[] = ['sign-in', 'second-factor', 'password-reset', 'email-change'];

const codeSchema = z
  .string()
  .max(32)
  .transform((s) => s.replace(/\s+/g, ''))
  .pipe(z.string().regex(/^\d{6}$/));

export type EmailChangeRequestResult =
  | { ok: true; email: string; expiresAt: Date }
  | { ok: false; reason: 'invalid'; message: string }
  | { ok: false; reason: 'unchanged' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export type EmailChangeVerifyResult =
  | { ok: true; account: AccountView; previousEmail: string }
  /** `format`: not six digits (nothing was counted); `taken`: the proven address belongs to another account. */
  | { ok: false; reason: 'format' | 'invalid' | 'expired' | 'exhausted' | 'missing' | 'taken' | 'gone' }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number };

export interface PendingEmailChange {
  email: string;
  expiresAt: Date;
  resendAfterSeconds: number;
}

export interface EmailChangeService {
  /** Mails a code to `newEmail` (validated here) for this account and browser session. */
  request(input: { account: AccountView; newEmail: unknown; binding: string; ip: string }): Promise<EmailChangeRequestResult>;
  /** The change waiting for its code on this page, if any. */
  pending(binding: string): Promise<PendingEmailChange | undefined>;
  /** Withdraws the waiting code (the person chose to keep the address or to type another). */
  cancel(binding: string): Promise<void>;
  /** Checks the code; when right, the account's address becomes the new one, verified. */
  verify(input: { account: AccountView; code: unknown; binding: string; ip: string }): Promise<EmailChangeVerifyResult>;
}

/** Mail handed to the outbox (src/mail/outbox.service.ts). */
export interface CodeMailSender {
  enqueueTemplate(to: string, template: MailTemplate, locals: Record<string, unknown>, options?: EnqueueOptions): Promise<EnqueueResult>;
}

export interface EmailChangeServiceDeps {
  db: mongo.Db;
  accounts: AccountService;
  emailCodes: EmailCodeService;
  limits: SignInLimits;
  outbox: CodeMailSender;
  logger: Logger;
  /** Epoch milliseconds. */
  now?: () => number;
}

/** The binding of a code: one account in one browser session. */
export function emailChangeBinding(accountId: string, sessionUid: string): string {
  return `email-change:${accountId}:${sessionUid}`;
}

export function createEmailChangeService(deps: EmailChangeServiceDeps): EmailChangeService {
  const { db, accounts, emailCodes, limits, outbox, logger } = deps;
  const now = deps.now ?? Date.now;
  // NOTE: the driver's collection, not the Mongoose model: only the email fields change, and the
  // duplicate key error of the unique index is what this service acts on.
  const accountRecords = db.collection<AccountRecord>('accounts');

  /** What the old inbox received no longer works once the address changed. */
  async function forgetOldInbox(accountId: string): Promise<void> {
    for (const purpose of OLD_INBOX_PURPOSES) await emailCodes.discardForAccount({ accountId, purpose });
    await db.collection<{ accountId: string | null }>(RESET_TOKENS_COLLECTION).deleteMany({ accountId });
    await db.collection<{ accountId: string }>(RESET_GRANTS_COLLECTION).deleteMany({ accountId });
  }

  return {
    async request({ account, newEmail, binding, ip }) {
      const parsed = emailSchema.safeParse(newEmail);
      if (!parsed.success) {
        const message = parsed.error.issues.some((i) => i.code === 'too_big') ? 'An email address has at most 254 characters.' : 'Enter an email address, like name@example.com.';
        return { ok: false, reason: 'invalid', message };
      }
      const email = parsed.data;
      if (email === account.email) return { ok: false, reason: 'unchanged' };
      // Counted as a code mail like a sign-up's: per IP, per address, per address and IP.
      const gate = await limits.limiter.begin([limits.codeSendsFromIp(ip), limits.codesToAddress(email), limits.codesToAddressFromIp(email, ip)]);
      if (!gate.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      let issued;
      try {
        issued = await emailCodes.issue({ email, accountId: account.id, binding, purpose: EMAIL_CHANGE_PURPOSE });
      } catch (err) {
        await gate.attempt.released();
        throw err;
      }
      if (!issued.ok) {
        await gate.attempt.released();
        return { ok: false, reason: 'throttled', retryAfterSeconds: issued.retryAfterSeconds };
      }
      await gate.attempt.failed();
      const expiresInMinutes = Math.max(1, Math.round((issued.expiresAt.getTime() - now()) / 60_000));
      // Urgent: the person waits for it; if SMTP is down it stays queued until the code expires.
      await outbox.enqueueTemplate(email, 'email-change-code', { code: issued.code, expiresInMinutes, email }, { urgent: true, expiresAt: issued.expiresAt });
      logger.info('email change code sent', { accountId: account.id });
      return { ok: true, email, expiresAt: issued.expiresAt };
    },

    async pending(binding) {
      return emailCodes.pending({ binding, purpose: EMAIL_CHANGE_PURPOSE });
    },

    async cancel(binding) {
      await emailCodes.discard({ binding, purpose: EMAIL_CHANGE_PURPOSE });
    },

    async verify({ account, code, binding, ip }) {
      const typed = codeSchema.safeParse(code);
      if (!typed.success) return { ok: false, reason: 'format' };
      // Every guess counts against the IP too (each code allows a few attempts of its own).
      const gate = await limits.limiter.begin([limits.signInFromIp(ip)]);
      if (!gate.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
      const result = await emailCodes.verify({ binding, purpose: EMAIL_CHANGE_PURPOSE, code: typed.data });
      if (!result.ok || result.accountId !== account.id) {
        await gate.attempt.failed();
        return { ok: false, reason: result.ok ? 'invalid' : result.reason };
      }
      await gate.attempt.succeeded();
      const email = result.email;
      try {
        const updated = await guardDatabase(() =>
          accountRecords.updateOne(
            { _id: account.id },
            { $set: { email, emailVerified: true, updatedAt: new Date(now()) }, $unset: { signUpPendingUntil: '' } },
          ),
        );
        if (updated.matchedCount === 0) return { ok: false, reason: 'gone' };
      } catch (err) {
        // NOTE: FerretDB 1.x reports a unique index refusing an UPDATE not as a duplicate key
        // (11000) but as a storage error ("UNIQUE constraint failed"): whether the address is
        // held by another account is read back instead of guessed from the error.
        if (isDuplicateKey(err) || (await accountRecords.countDocuments({ email, _id: { $ne: account.id } }, { limit: 1 })) > 0) {
          logger.info('email change refused: address taken', { accountId: account.id });
          return { ok: false, reason: 'taken' };
        }
        throw err;
      }
      await forgetOldInbox(account.id);
      const changed = await accounts.findById(account.id);
      if (!changed) return { ok: false, reason: 'gone' };
      logger.info('email changed', { accountId: account.id });
      return { ok: true, account: changed, previousEmail: account.email };
    },
  };
}
