import type { Logger } from '../logging/logger.js';
import type { Mailer, MailTemplate } from '../mail/mailer.js';

/**
 * Mail that leaves after the answer: the self-service services (sign-up, password reset) never
 * wait for SMTP, so whether a mail went out, and which one, cannot show in how long a request
 * took (no enumeration by timing). A failed delivery is logged (the mailer names the cause, never
 * the mail) and nothing else: the page has already answered the same way for every address.
 */
export interface BackgroundMail {
  send(to: string, template: MailTemplate, locals: Record<string, unknown>): void;
  /** Resolves when every mail handed over so far has been delivered or has failed (tests, shutdown). */
  idle(): Promise<void>;
}

export function createBackgroundMail(mailer: Mailer, logger: Logger): BackgroundMail {
  const inFlight = new Set<Promise<void>>();
  return {
    send(to, template, locals) {
      const delivery = mailer.sendTemplate(to, template, locals).catch((err: unknown) => {
        logger.warn('self-service mail not delivered', { template, reason: (err as Error).message });
      });
      inFlight.add(delivery);
      void delivery.finally(() => inFlight.delete(delivery));
    },
    async idle() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}
