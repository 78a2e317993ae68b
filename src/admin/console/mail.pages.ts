import { z } from 'zod';

import { AppError } from '../../http/app-error.js';
import type { DeadLetterView, RetryOutcome } from '../../mail/outbox.service.js';
import { MAIL_ID_PATTERN } from '../../mail/outbox.service.js';
import type { ConsolePages } from './console.routes.js';

/**
 * Dead-lettered mail (deps.outbox): what could not be delivered within MAIL_MAX_ATTEMPTS or
 * MAIL_RETRY_MAX_AGE, with a retry per mail. Admins see the recipient's address (they can see it
 * on the user's page anyway), the template's name and why it failed; never the subject or body,
 * which may carry a sign-in code (the outbox keeps them sealed).
 */

const BASE = '/admin/mail';

const idSchema = z.string().regex(MAIL_ID_PATTERN);

const NOTICES: Record<Exclude<RetryOutcome, 'not_found'>, string> = {
  queued: 'The mail was queued again: it is sent as soon as the mail server takes it.',
  already_retried: 'This mail had already been queued again (by another click or another admin).',
  not_dead: 'This mail is no longer dead-lettered: it was queued again or sent already.',
  not_retryable: 'This mail cannot be sent again: what it carried has expired. Ask the person to request a new one.',
};

const noticeKey = z.enum(['queued', 'already_retried', 'not_dead', 'not_retryable']);

const REASONS: Record<string, string> = {
  max_attempts: 'Too many failed attempts',
  max_age: 'Retried for too long',
  expired: 'Expired before it could be sent',
  unreadable: 'Could not be opened (encryption key removed?)',
};

function mailModel(mail: DeadLetterView) {
  return {
    id: mail.id,
    to: mail.to,
    template: mail.template ?? 'custom',
    createdAt: mail.createdAt,
    deadAt: mail.deadAt,
    attempts: mail.attempts,
    reason: (mail.reason && REASONS[mail.reason]) ?? 'Unknown',
    lastError: mail.lastError ?? '',
    retryHref: mail.retryable ? `${BASE}/${encodeURIComponent(mail.id)}/retry` : undefined,
  };
}

export const registerMailPages: ConsolePages = (router, deps, kit) => {
  const { outbox } = deps;

  router.get('/mail', kit.requireAdmin, async function deadLetters(ctx) {
    const notice = noticeKey.safeParse(ctx.query.notice);
    const [mails, counts] = await Promise.all([outbox.deadLetters(100), outbox.counts()]);
    await kit.render(ctx, 'admin/mail/list', 'mail', {
      title: 'Mail',
      mails: mails.map(mailModel),
      queued: counts.queued,
      dead: counts.dead,
      notice: notice.success ? NOTICES[notice.data] : undefined,
    });
  });

  // NOTE: the outbox makes this once-only (a claim per dead-letter round): a double click or a
  // second admin gets a notice, never a second send.
  router.post('/mail/:id/retry', ...kit.post, async function retryMail(ctx) {
    const id = idSchema.safeParse(ctx.params.id);
    const outcome = id.success ? await outbox.retry(id.data, kit.actor(ctx)) : 'not_found';
    if (outcome === 'not_found') throw new AppError(404, 'mail.not_found', 'No mail with this id. It may have been removed.');
    kit.redirect(ctx, `${BASE}?notice=${outcome}`);
  });
};
