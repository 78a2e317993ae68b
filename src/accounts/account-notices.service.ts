import type { Clock } from '../core/clock.js';
import { currentRequest } from '../http/request-context.js';
import { describeUserAgent } from '../http/user-agent-label.js';
import type { Logger } from '../logging/logger.js';
import type { MailTemplate } from '../mail/mailer.js';
import type { EnqueueOptions, EnqueueResult } from '../mail/outbox.service.js';
import type { AccountNotices, NoticeAccount, NoticeOrigin } from './account-notices.js';
import { selfServiceLinks } from './self-service-links.js';

export interface AccountNoticesDeps {
  /** The mail outbox (src/mail/outbox.service.ts). */
  outbox: { enqueueTemplate(to: string, template: MailTemplate, locals: Record<string, unknown>, options?: EnqueueOptions): Promise<EnqueueResult> };
  issuer: string;
  logger: Logger;
  clock: Clock;
}

// "2 December 2026 at 22:40 UTC": one zone for everyone, said so, since a notice cannot know the
// reader's; no seconds (nothing in a notice should look like a code).
const WHEN = new Intl.DateTimeFormat('en-GB', { dateStyle: 'long', timeStyle: 'short', timeZone: 'UTC' });

/** What stands in for the device and IP of an administrator's action (see `origin`). */
const BY_ADMIN = { device: 'An administrator', ip: 'Not shown for an administrator’s action' };

/**
 * The notice mails of src/accounts/account-notices.ts, through the mail outbox.
 *
 * NOTE: queued without `urgent`: nobody waits on a page for a notice, so the request pays one
 * insert and never an SMTP round trip; the node's worker is woken at once and sends it within
 * moments, and retries with back-off while SMTP is down, as for every mail.
 */
export function createAccountNotices({ outbox, issuer, logger, clock }: AccountNoticesDeps): AccountNotices {
  const links = selfServiceLinks(issuer);
  const securityUrl = `${issuer.replace(/\/+$/, '')}/account/security`;

  /**
   * When and from where: what the caller says, else the current request. NOTE: an
   * administrator's own device and IP are theirs, not the account owner's business: the mail
   * says an administrator did it instead.
   */
  const origin = (from: NoticeOrigin | undefined, byAdmin: boolean) => {
    const request = currentRequest();
    const when = `${WHEN.format(from?.at ?? clock.now())} UTC`;
    if (byAdmin) return { when, ...BY_ADMIN };
    const userAgent = from?.userAgent ?? request?.userAgent;
    const ip = from?.ip ?? request?.ip;
    return { when, device: describeUserAgent(userAgent), ip: ip ? ip.slice(0, 64) : 'Unknown' };
  };

  /** Never fails the caller: the change it reports has happened already. */
  const send = async (account: NoticeAccount, to: string, template: MailTemplate, locals: Record<string, unknown>, from: NoticeOrigin | undefined, byAdmin = false) => {
    try {
      await outbox.enqueueTemplate(to, template, { email: to, ...origin(from, byAdmin), ...locals });
      logger.debug('notice queued', { template, accountId: account.id });
    } catch (err) {
      // The template's name and the account, never the mail.
      logger.warn('notice not queued', { template, accountId: account.id, error: (err as Error).name, reason: (err as Error).message });
    }
  };

  return {
    passwordChanged: (account, options = {}) =>
      send(account, account.email, 'password-changed', { set: options.set ?? false, resetUrl: links.passwordReset }, options.from),
    // The old address: the new one belongs to whoever made the change.
    emailChanged: (account, oldEmail, options = {}) => send(account, oldEmail, 'email-changed', { resetUrl: links.passwordReset }, options.from),
    secondFactorAdded: (account, kind, options = {}) =>
      send(account, account.email, 'second-factor-added', { kind, resetUrl: links.passwordReset, securityUrl }, options.from),
    secondFactorRemoved: (account, kind, options = {}) =>
      send(account, account.email, 'second-factor-removed', { kind, byAdmin: options.byAdmin ?? false, resetUrl: links.passwordReset, securityUrl }, options.from, options.byAdmin),
    recoveryCodeUsed: (account, left, options = {}) =>
      send(account, account.email, 'recovery-code-used', { left: Math.max(0, Math.trunc(left)), resetUrl: links.passwordReset, securityUrl }, options.from),
    newSignIn: (account, options = {}) =>
      send(account, account.email, 'new-sign-in', { ...(options.clientName ? { clientName: options.clientName.slice(0, 200) } : {}), resetUrl: links.passwordReset }, options.from),
    accountDeleted: (account, options = {}) => send(account, account.email, 'account-deleted', { byAdmin: options.byAdmin ?? false }, options.from, options.byAdmin),
  };
}
