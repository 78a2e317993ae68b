import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';

import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/**
 * A real SMTP server on loopback that keeps every message it receives, so tests read sign-in
 * codes from the mail a person would get, never from the database or a log.
 */

export interface ReceivedMail {
  /** The envelope recipients (RCPT TO), lower-cased: where the mail really went. */
  to: string[];
  /** The From header, as mailparser formats it: `"Display Name" <address>`. */
  from: string;
  subject: string;
  /** The text/plain part ('' when the message has none). */
  text: string;
  /** The text/html part ('' when the message has none). */
  html: string;
  /** The whole message as received, for checks on headers and MIME structure. */
  raw: string;
}

export interface WaitForMailOptions {
  /** Default 5000. */
  timeoutMs?: number;
  /**
   * Skip the first `after` mails to this address (default 0). Take it from countFor(to) before
   * the action that sends, so an earlier mail (and its older code) cannot answer the wait.
   */
  after?: number;
}

export interface MailServer {
  port: number;
  /** smtp://127.0.0.1:PORT, for SMTP_URL. */
  url: string;
  /** Every message received, oldest first. */
  messages: ReceivedMail[];
  /** The first mail to `to` beyond the first `options.after`; waits for it to arrive. */
  waitForMail(to: string, options?: WaitForMailOptions): Promise<ReceivedMail>;
  /** How many mails to `to` have arrived so far. */
  countFor(to: string): number;
  close(): Promise<void>;
}

export async function startMailServer(): Promise<MailServer> {
  const messages: ReceivedMail[] = [];
  const arrivals = new EventEmitter();

  const server = new SMTPServer({
    // NOTE: smtp-server would offer STARTTLS with its built-in self-signed certificate, which
    // nodemailer then fails to verify; without it nodemailer stays in plaintext on loopback.
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (err) => callback(err));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        simpleParser(raw).then(
          (parsed) => {
            messages.push({
              to: session.envelope.rcptTo.map((rcpt) => rcpt.address.toLowerCase()),
              from: parsed.from?.text ?? '',
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              raw: raw.toString('utf8'),
            });
            arrivals.emit('mail');
            callback();
          },
          (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
        );
      });
    },
  });

  const listener = await new Promise<ReturnType<SMTPServer['listen']>>((resolve, reject) => {
    server.once('error', reject);
    const net = server.listen(0, '127.0.0.1', () => resolve(net));
  });
  const { port } = listener.address() as AddressInfo;

  const mailsTo = (to: string) => {
    const address = to.toLowerCase();
    return messages.filter((mail) => mail.to.includes(address));
  };

  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    countFor: (to) => mailsTo(to).length,

    waitForMail(to, { timeoutMs = 5000, after = 0 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const mail = mailsTo(to)[after];
          if (!mail) return;
          stop();
          resolve(mail);
        };
        const timer = setTimeout(() => {
          stop();
          const seen = messages.map((m) => `${m.to.join(',')}: ${m.subject}`).join('; ') || 'none';
          reject(new Error(`no mail #${after + 1} to ${to} within ${timeoutMs} ms (received: ${seen})`));
        }, timeoutMs);
        function stop() {
          clearTimeout(timer);
          arrivals.off('mail', check);
        }
        arrivals.on('mail', check);
        check();
      });
    },

    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The one-time code of a sign-in code mail: the 6 digits standing alone on a line of the text part. */
export function codeFrom(mail: ReceivedMail): string {
  const codes = [...mail.text.matchAll(/^\s*(\d{6})\s*$/gm)].map((match) => match[1]);
  const [code] = codes;
  if (!code || codes.length > 1) {
    throw new Error(`expected one code line in the mail "${mail.subject}", found ${codes.length}`);
  }
  return code;
}

/**
 * The next mail to `to` that carries a code (after the first `after` mails to that address) and
 * its code. Notice mails carry no code and go through the outbox in the background, so one (say,
 * "two-step verification was changed") may arrive after the count was taken and before the code:
 * it is passed over.
 */
export async function waitForCodeMail(smtp: MailServer, to: string, options: { after?: number; timeoutMs?: number } = {}): Promise<{ mail: ReceivedMail; code: string }> {
  for (let index = options.after ?? 0; ; index += 1) {
    const mail = await smtp.waitForMail(to, { after: index, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
    if (/^\s*\d{6}\s*$/m.test(mail.text)) return { mail, code: codeFrom(mail) };
  }
}
