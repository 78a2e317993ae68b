/**
 * Notice mails: what happened to an account, told to its owner through the mail outbox.
 *
 * Each says what happened, when, from where (approximate device and IP of the request that did
 * it), and what to do if it was not them. NOTE: none carries a code, a token or a link that acts
 * by itself: the "was it not you?" links lead to pages that ask for proof (password reset, sign-in).
 *
 * Callers pass the account as it was when the thing happened (for `emailChanged`, the old
 * address receives the notice). `from` defaults to the current request (src/http/request-context.ts),
 * field by field; the time is shown in UTC. With `byAdmin`, the mail says an administrator did it
 * and shows neither the administrator's device nor their IP.
 * Sending never fails the caller: the outbox queues the mail (one insert; the worker sends it
 * moments later), and a queueing failure is logged. Implemented in account-notices.service.ts.
 */
import type { AccountView } from './account.service.js';

export interface NoticeOrigin {
  at?: Date;
  ip?: string | undefined;
  userAgent?: string | undefined;
}

export type NoticeAccount = Pick<AccountView, 'id' | 'email' | 'name'>;

export type SecondFactorKind = 'totp' | 'recovery_codes';

export interface AccountNotices {
  /** The password was changed or set (account centre, reset). */
  passwordChanged(account: NoticeAccount, options?: { set?: boolean; from?: NoticeOrigin }): Promise<void>;
  /** The email changed: the notice goes to `oldEmail`, with a way to report it. */
  emailChanged(account: NoticeAccount, oldEmail: string, options?: { from?: NoticeOrigin }): Promise<void>;
  /** A second factor was added (authenticator app turned on, new recovery codes made). */
  secondFactorAdded(account: NoticeAccount, kind: SecondFactorKind, options?: { from?: NoticeOrigin }): Promise<void>;
  /** A second factor was removed (authenticator app turned off, by the person or an admin). */
  secondFactorRemoved(account: NoticeAccount, kind: SecondFactorKind, options?: { from?: NoticeOrigin; byAdmin?: boolean }): Promise<void>;
  /** A recovery code was used to sign in; `left` is how many remain. */
  recoveryCodeUsed(account: NoticeAccount, left: number, options?: { from?: NoticeOrigin }): Promise<void>;
  /** A sign-in from a browser not seen on this account before (only when the deployment turns it on). */
  newSignIn(account: NoticeAccount, options?: { clientName?: string; from?: NoticeOrigin }): Promise<void>;
  /** The account was deleted (the address is all that is left to write to). */
  accountDeleted(account: NoticeAccount, options?: { from?: NoticeOrigin; byAdmin?: boolean }): Promise<void>;
}
