import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { loadConfig } from '../../src/config/config.js';
import type { Config, DevSecrets, Env } from '../../src/config/config.js';
import { createLogger } from '../../src/logging/logger.js';
import type { Logger } from '../../src/logging/logger.js';
import { MailDeliveryError, createMailer } from '../../src/mail/mailer.js';
import { codeFrom, startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';

const DEV_SECRETS: DevSecrets = {
  cookieKeys: ['dev-cookie-key-0123456789abcdefghijklmnop'],
  encryptionKeys: [{ id: 'dev1', key: Buffer.alloc(32, 1) }],
};
// An ampersand shows whether each part escapes the way its format needs.
const PRODUCT = 'Acme & Co ID';
const IGNORE_LINE = 'If you did not try to sign in, you can ignore this email.';

function configFor(env: Env): Config {
  return loadConfig({ PRODUCT_NAME: PRODUCT, MAIL_FROM: 'Acme ID <no-reply@acme.test>', ...env }, DEV_SECRETS);
}

function collectingLogger(format: 'json' | 'pretty' = 'json'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'debug', format, write: (line) => lines.push(line) }), lines };
}

describe('mailer over SMTP', () => {
  let smtp: MailServer;
  let lines: string[];
  let mailer: ReturnType<typeof createMailer>;

  beforeAll(async () => {
    smtp = await startMailServer();
    const collected = collectingLogger();
    lines = collected.lines;
    mailer = createMailer({ config: configFor({ NODE_ENV: 'test', SMTP_URL: smtp.url }), logger: collected.logger });
  });

  afterAll(async () => {
    mailer.close();
    await smtp.close();
  });

  it('sends the sign-in code with a text and an HTML part, and keeps it out of the subject', async () => {
    await mailer.sendTemplate('Person@Example.com', 'sign-in-code', {
      code: '048213',
      productName: PRODUCT,
      expiresInMinutes: 10,
      email: 'person@example.com',
    });

    const mail = await smtp.waitForMail('person@example.com');
    expect(mail.to).toEqual(['person@example.com']);
    expect(mail.from).toBe('"Acme ID" <no-reply@acme.test>');
    // Subjects show in lock-screen previews: the code is only in the body.
    expect(mail.subject).toBe(`Your ${PRODUCT} sign-in code`);
    expect(mail.subject).not.toMatch(/\d/);
    expect(mail.raw.slice(0, mail.raw.indexOf('\r\n\r\n'))).not.toContain('048213');
    expect(mail.raw).toMatch(/multipart\/alternative/i);
    expect(mail.raw).toMatch(/text\/plain/i);
    expect(mail.raw).toMatch(/text\/html/i);

    expect(codeFrom(mail)).toBe('048213');
    expect(mail.text).toContain(`Your ${PRODUCT} sign-in code`);
    expect(mail.text).toContain('expires in 10 minutes');
    expect(mail.text).toContain(IGNORE_LINE);
    expect(mail.text).not.toMatch(/<[a-z]|&amp;/i);

    expect(mail.html).toContain('Acme &amp; Co ID');
    expect(mail.html).toMatch(/>048213</);
    expect(mail.html).toContain(IGNORE_LINE);
    expect(mail.html).toContain('lang="en"');
    // The code is typed on the sign-in page: the mail never carries a link that signs in.
    expect(mail.html).not.toMatch(/<a\s/i);
    expect(lines).toEqual([]);
  });

  it('sends the no-account notice, with the product name from the config by default', async () => {
    await mailer.sendTemplate('stranger@example.com', 'no-account', { email: 'stranger@example.com' });

    const mail = await smtp.waitForMail('stranger@example.com');
    expect(mail.subject).toBe(`${PRODUCT}: sign-in attempt`);
    expect(mail.text).toContain(
      `Someone asked to sign in to ${PRODUCT} with this email address (stranger@example.com), but there is no account for it.`,
    );
    expect(mail.text).toContain("If it wasn't you, you can ignore this email.");
    expect(mail.html).toContain('Acme &amp; Co ID');
    expect(mail.html).not.toMatch(/<a\s/i);
    expect(() => codeFrom(mail)).toThrow(/expected one code line/);
  });

  it('waits for the next mail to an address, not an earlier one', async () => {
    const to = 'again@example.com';
    const send = (code: string) =>
      mailer.sendTemplate(to, 'sign-in-code', { code, expiresInMinutes: 10, email: to });
    await send('111111');
    await smtp.waitForMail(to);

    const before = smtp.countFor(to);
    const next = smtp.waitForMail(to, { after: before });
    await send('222222');
    expect(codeFrom(await next)).toBe('222222');
    expect(smtp.countFor(to)).toBe(2);
  });

  it('also connects with SMTP_HOST and SMTP_PORT instead of a URL', async () => {
    const { logger } = collectingLogger();
    const byHost = createMailer({
      config: configFor({ NODE_ENV: 'test', SMTP_HOST: '127.0.0.1', SMTP_PORT: String(smtp.port) }),
      logger,
    });
    try {
      await byHost.send({ to: 'host@example.com', subject: 'Plain', text: 'Plain text', html: '<p>Plain</p>' });
    } finally {
      byHost.close();
    }
    const mail = await smtp.waitForMail('host@example.com');
    expect(mail).toMatchObject({ subject: 'Plain', text: 'Plain text', html: '<p>Plain</p>' });
  });

  it('refuses locals that do not fit the template, before anything is sent', async () => {
    const count = smtp.messages.length;
    await expect(
      mailer.sendTemplate('person@example.com', 'sign-in-code', { code: 'abc', email: 'person@example.com' }),
    ).rejects.toThrow(/sign-in-code: invalid locals \(code, expiresInMinutes\)/);
    expect(smtp.messages).toHaveLength(count);
  });
});

describe('mailer without SMTP', () => {
  it('writes development mail to the log, code readable, and sends nothing', async () => {
    const smtp = await startMailServer();
    try {
      const { logger, lines } = collectingLogger('pretty');
      const mailer = createMailer({ config: configFor({ NODE_ENV: 'development' }), logger });
      await mailer.sendTemplate('dev@example.com', 'sign-in-code', {
        code: '735190',
        expiresInMinutes: 10,
        email: 'dev@example.com',
      });
      mailer.close();

      expect(lines).toHaveLength(1);
      const [line] = lines;
      expect(line).toContain('INFO');
      expect(line).toContain('mail not sent (no SMTP configured): development mail');
      expect(line).toContain('dev@example.com');
      expect(line).toContain(`Your ${PRODUCT} sign-in code`);
      expect(line).toContain('    735190');
      expect(line).not.toContain('[redacted]');
      expect(smtp.messages).toHaveLength(0);
    } finally {
      await smtp.close();
    }
  });

  it('cannot be created in production', () => {
    const production = loadConfig({
      NODE_ENV: 'production',
      ISSUER: 'https://id.example.com',
      SMTP_URL: 'smtp://mail.example.com:587',
      MAIL_FROM: 'Identity <no-reply@example.com>',
      COOKIE_KEYS: 'c'.repeat(32),
      ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 3).toString('base64url')}`,
    });
    // loadConfig refuses this already; the mailer checks again for a Config built any other way.
    const withoutSmtp: Config = { ...production, mail: { ...production.mail, smtp: undefined } };
    const { logger } = collectingLogger();
    expect(() => createMailer({ config: withoutSmtp, logger })).toThrow(/SMTP_URL/);
  });
});

describe('mailer when the SMTP server is down', () => {
  it('rejects quickly with MailDeliveryError and logs no code and no body', async () => {
    const smtp = await startMailServer();
    const deadUrl = smtp.url;
    await smtp.close();
    const { logger, lines } = collectingLogger();
    const mailer = createMailer({ config: configFor({ NODE_ENV: 'test', SMTP_URL: deadUrl }), logger });

    const started = Date.now();
    const sending = mailer.sendTemplate('victim@example.org', 'sign-in-code', {
      code: '582044',
      expiresInMinutes: 10,
      email: 'victim@example.org',
    });
    await expect(sending).rejects.toBeInstanceOf(MailDeliveryError);
    await expect(sending).rejects.toThrow(/^mail could not be handed to the SMTP server \(\w+\)$/);
    expect(Date.now() - started).toBeLessThan(5000);
    mailer.close();

    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 'warn', msg: 'mail delivery failed', recipientDomain: 'example.org', template: 'sign-in-code' });
    expect(entry.errorCode).toEqual(expect.any(String));
    const logged = lines.join('\n');
    expect(logged).not.toContain('582044');
    expect(logged).not.toContain('victim@');
    expect(logged).not.toContain('ignore this email');
    expect(logged).not.toContain('sign-in code:');
  });
});
