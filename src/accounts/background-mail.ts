import type { Logger } from '../logging/logger.js';
import type { MailTemplate } from '../mail/mailer.js';

/** What hands a mail over: the outbox in the server (src/core/core.ts), or a mailer. */
export interface MailSender {
  sendTemplate(to: string, template: MailTemplate, locals: Record<string, unknown>, options?: { expiresAt?: Date | undefined }): Promise<unknown>;
}

/**
 * Mail that leaves after the answer: the self-service services (sign-up, password reset) never
 * wait for SMTP, so whether a mail went out, and which one, cannot show in how long a request
 * took (no enumeration by timing). In the server the sender is the outbox, which retries until the
 * mail is delivered; a mail that could not be handed over at all is logged (never the mail) and
 * nothing else: the page has already answered the same way for every address.
 */
export interface BackgroundMail {
  /** `expiresAt`: a code's expiry; the mail is never sent after it. */
  send(to: string, template: MailTemplate, locals: Record<string, unknown>, options?: { expiresAt?: Date | undefined }): void;
  /** Resolves when every mail handed over so far has been delivered or has failed (tests, shutdown). */
  idle(): Promise<void>;
}

export function createBackgroundMail(sender: MailSender, logger: Logger): BackgroundMail {
  const inFlight = new Set<Promise<void>>();
  return {
    send(to, template, locals, options) {
      const delivery = sender.sendTemplate(to, template, locals, options).then(
        () => undefined,
        (err: unknown) => {
          logger.warn('self-service mail not delivered', { template, reason: (err as Error).message });
        },
      );
      inFlight.add(delivery);
      void delivery.finally(() => inFlight.delete(delivery));
    },
    async idle() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}
