import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import nodemailer from 'nodemailer';
import type { SMTPTransportOptions } from 'nodemailer';
import { z } from 'zod';

import { ConfigError } from '../config/config.js';
import type { Config, SmtpSettings } from '../config/config.js';
import type { Logger } from '../logging/logger.js';

/**
 * Outgoing mail: sign-in codes and notices, rendered from pug templates
 * under views/mail/ and sent over SMTP, or written to the log in development and tests.
 */

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export type MailTemplate =
  | 'sign-in-code'
  | 'no-account'
  | 'sign-up-code'
  | 'sign-up-existing'
  | 'email-change-code'
  | 'password-reset'
  | 'password-reset-no-account'
  | 'password-changed'
  | 'email-changed'
  | 'second-factor-added'
  | 'second-factor-removed'
  | 'recovery-code-used'
  | 'new-sign-in'
  | 'account-deleted'
  | 'invitation';

export interface Mailer {
  /** `template` only names the mail in the failure log line. */
  send(message: MailMessage, template?: MailTemplate): Promise<void>;
  /** Renders and sends at once (no outbox): throws MailDeliveryError when SMTP refuses or is down. */
  sendTemplate(to: string, template: MailTemplate, locals: Record<string, unknown>): Promise<void>;
  /** Renders a template into a message without sending it (the outbox stores it, sealed). */
  render(to: string, template: MailTemplate, locals: Record<string, unknown>): MailMessage;
  close(): void;
}

/** The mail could not be handed to the SMTP server. The message names the cause, never the mail. */
export class MailDeliveryError extends Error {
  override name = 'MailDeliveryError';
}

// A person is waiting on a page for this mail: fail within seconds rather than nodemailer's
// defaults (2 minutes to connect, 10 minutes of socket inactivity).
const SMTP_TIMEOUTS = {
  dnsTimeout: 10_000,
  connectionTimeout: 10_000,
  greetingTimeout: 10_000,
  socketTimeout: 10_000,
} as const;

const productName = z.string().min(1);
const email = z.string().min(3);
/** What every notice says: when (UTC, formatted), from which device (a guess) and IP. */
const noticeLocals = z.object({
  productName,
  email,
  when: z.string().min(1).max(100),
  device: z.string().min(1).max(100),
  ip: z.string().min(1).max(64),
});
const secondFactorKind = z.enum(['totp', 'recovery_codes']);

// The subject is built here rather than in the templates, so that a template cannot forget it.
// NOTE: a subject is made from the product name only, never from the other locals: subjects
// show in notification previews on a locked phone and in mail lists, so a sign-in code there
// would be readable by anyone holding the phone. The code is only in the body.
const templates = {
  'sign-in-code': defineTemplate({
    locals: z.object({
      code: z.string().regex(/^\d{6}$/, 'must be 6 digits'),
      productName,
      expiresInMinutes: z.number().int().positive(),
      email,
    }),
    subject: (name) => `Your ${name} sign-in code`,
  }),
  'no-account': defineTemplate({
    locals: z.object({ productName, email }),
    subject: (name) => `${name}: sign-in attempt`,
  }),
  invitation: defineTemplate({
    locals: z.object({ productName, email, link: z.url({ protocol: /^https?$/ }), expiresAt: z.date() }),
    // NOTE: the link (a secret) is only in the body.
    subject: (name) => `You are invited to ${name}`,
  }),
  'sign-up-code': defineTemplate({
    locals: z.object({ code: z.string().regex(/^\d{6}$/, 'must be 6 digits'), productName, expiresInMinutes: z.number().int().positive(), email }),
    subject: (name) => `Confirm your ${name} email address`,
  }),
  'sign-up-existing': defineTemplate({
    locals: z.object({ productName, email, signInUrl: z.url(), resetUrl: z.url() }),
    subject: (name) => `${name}: you already have an account`,
  }),
  'email-change-code': defineTemplate({
    locals: z.object({ code: z.string().regex(/^\d{6}$/, 'must be 6 digits'), productName, expiresInMinutes: z.number().int().positive(), email }),
    subject: (name) => `Confirm your new ${name} email address`,
  }),
  'password-reset': defineTemplate({
    locals: z.object({
      // Left out when an administrator sent the mail: no page holds a flow to type it into.
      code: z.string().regex(/^\d{6}$/, 'must be 6 digits').optional(),
      link: z.url(),
      productName,
      expiresInMinutes: z.number().int().positive(),
      email,
    }),
    subject: (name) => `Reset your ${name} password`,
  }),
  'password-reset-no-account': defineTemplate({
    locals: z.object({ productName, email }),
    subject: (name) => `${name}: password reset`,
  }),
  // Notice mails (src/accounts/account-notices.service.ts): what happened, when (UTC), from where,
  // what to do if it was not the owner. NOTE: no code and no token in any of them; the links are
  // fixed pages that ask for proof themselves.
  'password-changed': defineTemplate({
    locals: noticeLocals.extend({ set: z.boolean().default(false), resetUrl: z.url() }),
    subject: (name) => `Your ${name} password was changed`,
  }),
  'email-changed': defineTemplate({
    locals: noticeLocals.extend({ resetUrl: z.url() }),
    subject: (name) => `Your ${name} email address was changed`,
  }),
  'second-factor-added': defineTemplate({
    locals: noticeLocals.extend({ kind: secondFactorKind, resetUrl: z.url(), securityUrl: z.url() }),
    subject: (name) => `Two-step verification was changed on your ${name} account`,
  }),
  'second-factor-removed': defineTemplate({
    locals: noticeLocals.extend({ kind: secondFactorKind, byAdmin: z.boolean().default(false), resetUrl: z.url(), securityUrl: z.url() }),
    subject: (name) => `Two-step verification was removed from your ${name} account`,
  }),
  'recovery-code-used': defineTemplate({
    locals: noticeLocals.extend({ left: z.number().int().min(0), resetUrl: z.url(), securityUrl: z.url() }),
    subject: (name) => `A recovery code was used on your ${name} account`,
  }),
  'new-sign-in': defineTemplate({
    locals: noticeLocals.extend({ clientName: z.string().min(1).max(200).optional(), resetUrl: z.url() }),
    subject: (name) => `New sign-in to your ${name} account`,
  }),
  'account-deleted': defineTemplate({
    locals: noticeLocals.extend({ byAdmin: z.boolean().default(false) }),
    subject: (name) => `Your ${name} account was deleted`,
  }),
} satisfies Record<MailTemplate, unknown>;

interface TemplateSpec<Locals extends z.ZodType> {
  locals: Locals;
  /** From the product name alone (see the NOTE above). */
  subject(productName: string): string;
}

function defineTemplate<Locals extends z.ZodType>(spec: TemplateSpec<Locals>): TemplateSpec<Locals> {
  return spec;
}

export function createMailer(deps: { config: Config; logger: Logger }): Mailer {
  const { config, logger } = deps;
  const transport = config.mail.smtp
    ? createSmtpTransport(config.mail.smtp, config.mail.from)
    : createLogTransport(config, logger);
  // Compiled once, at start: a broken template fails the boot, not the first sign-in.
  const renderers = compileTemplates();

  async function deliver(message: MailMessage, template?: MailTemplate): Promise<void> {
    try {
      await transport.deliver(message);
    } catch (err) {
      const reason = errorCode(err);
      // Only what helps the operator: never the body, which carries the code, nor the subject.
      logger.warn('mail delivery failed', {
        recipientDomain: recipientDomain(message.to),
        template,
        errorCode: reason,
        error: err instanceof Error ? err.message : String(err),
      });
      throw new MailDeliveryError(`mail could not be handed to the SMTP server (${reason})`, { cause: err });
    }
  }

  const render = (to: string, template: MailTemplate, locals: Record<string, unknown>): MailMessage => {
    const spec = templates[template] as TemplateSpec<z.ZodType<Record<string, unknown>>>;
    const parsed = spec.locals.safeParse({ productName: config.productName, ...locals });
    if (!parsed.success) {
      // A programming error in the caller; the issues name fields, not their values.
      const fields = parsed.error.issues.map((issue) => issue.path.join('.')).join(', ');
      throw new TypeError(`mail template ${template}: invalid locals (${fields})`);
    }
    const { html, text } = renderers[template];
    return { to, subject: spec.subject(String(parsed.data.productName)), html: html(parsed.data), text: text(parsed.data) };
  };

  return {
    send: (message, template) => deliver(message, template),
    render,
    async sendTemplate(to, template, locals) {
      await deliver(render(to, template, locals), template);
    },

    close: () => transport.close(),
  };
}

interface MailTransport {
  deliver(message: MailMessage): Promise<void>;
  close(): void;
}

function createSmtpTransport(smtp: SmtpSettings, from: string): MailTransport {
  const transporter = nodemailer.createTransport(smtpOptions(smtp), { from });
  return {
    async deliver({ to, subject, text, html }) {
      await transporter.sendMail({ to, subject, text, html });
    },
    close: () => transporter.close(),
  };
}

// NOTE: without `secure` (smtps://, port 465), nodemailer upgrades with STARTTLS when the server
// offers it and otherwise sends in plaintext, which the compose file's mail catcher and the test
// SMTP server rely on. Refusing plaintext (requireTLS) would need a setting of its own.
function smtpOptions(smtp: SmtpSettings): SMTPTransportOptions {
  if ('url' in smtp) {
    // nodemailer parses host, port, credentials and smtps:// (implicit TLS) from the URL.
    return { url: smtp.url, ...SMTP_TIMEOUTS };
  }
  return {
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    auth: smtp.user ? { user: smtp.user, pass: smtp.password } : undefined,
    ...SMTP_TIMEOUTS,
  };
}

function createLogTransport(config: Config, logger: Logger): MailTransport {
  // loadConfig already refuses production without SMTP; this keeps the log transport impossible
  // there even for a Config built some other way, because sign-in codes would end up in logs.
  if (config.env === 'production') {
    throw new ConfigError('Invalid configuration:\n  SMTP_URL (or SMTP_HOST): required when NODE_ENV=production');
  }
  return {
    async deliver({ to, subject, text }) {
      // NOTE: the logger redacts a field named `code`, so the code travels inside `text`, which
      // it leaves alone: the developer has to read the code here to sign in.
      // Acceptable because this transport only exists outside production (checked above).
      logger.info('mail not sent (no SMTP configured): development mail', { to, subject, text });
    },
    close() {},
  };
}

type RenderFn = (locals: Record<string, unknown>) => string;

// NOTE: pug ships no type declarations (and @types/pug is not a dependency), so it is loaded
// through require with the one function used here typed by hand.
const pug = createRequire(import.meta.url)('pug') as {
  compileFile(file: string, options?: { basedir?: string }): RenderFn;
};

const here = path.dirname(fileURLToPath(import.meta.url));
// src/mail/mailer.ts in development, dist/src/mail/mailer.js when compiled: views/ sits at the
// project root (the same lookup as VIEWS_DIR in src/app.ts, which the mailer must not import).
const MAIL_VIEWS_DIR =
  [path.resolve(here, '..', '..', 'views', 'mail'), path.resolve(here, '..', '..', '..', 'views', 'mail')].find(
    (dir) => existsSync(path.join(dir, 'sign-in-code.html.pug')),
  ) ?? path.resolve(here, '..', '..', 'views', 'mail');

function compileTemplates(): Record<MailTemplate, { html: RenderFn; text: RenderFn }> {
  const compile = (file: string) => pug.compileFile(path.join(MAIL_VIEWS_DIR, file), { basedir: MAIL_VIEWS_DIR });
  const both = (name: MailTemplate) => ({
    html: compile(`${name}.html.pug`),
    // NOTE: the text templates interpolate with !{...}: pug's #{...} escapes HTML, which would
    // put `&amp;` into a plain-text mail.
    text: compile(`${name}.text.pug`),
  });
  return {
    'sign-in-code': both('sign-in-code'),
    'no-account': both('no-account'),
    'sign-up-code': both('sign-up-code'),
    'sign-up-existing': both('sign-up-existing'),
    'email-change-code': both('email-change-code'),
    'password-reset': both('password-reset'),
    'password-reset-no-account': both('password-reset-no-account'),
    'password-changed': both('password-changed'),
    'email-changed': both('email-changed'),
    'second-factor-added': both('second-factor-added'),
    'second-factor-removed': both('second-factor-removed'),
    'recovery-code-used': both('recovery-code-used'),
    'new-sign-in': both('new-sign-in'),
    'account-deleted': both('account-deleted'),
    invitation: both('invitation'),
  };
}

export function recipientDomain(to: string): string {
  const match = /@([^@\s>]+)>?\s*$/.exec(to);
  return match?.[1]?.toLowerCase() ?? 'unknown';
}

/** nodemailer's error code (ECONNECTION, ETIMEDOUT, EAUTH, EENVELOPE, ...), or the error's name. */
export function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.name : 'unknown';
}
