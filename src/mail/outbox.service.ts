import { randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';

import type { AuditActor, AuditService } from '../audit/audit.service.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { createOutcomeListeners, createWorkerLoop, shuffleDue } from '../core/worker-loop.js';
import type { AttemptClaimRecord, AttemptRecord } from '../db/claims.js';
import { createAttemptClaims, insertClaim } from '../db/claims.js';
import type { Logger } from '../logging/logger.js';
import type { MailMessage, MailTemplate, Mailer } from './mailer.js';
import { errorCode, recipientDomain } from './mailer.js';

/**
 * The mail outbox: every mail is stored before it is sent, and a worker on every node delivers
 * what is due, retrying with exponential back-off while SMTP is down, up to a bounded number of
 * attempts and a bounded age, after which the mail is dead-lettered for an admin to retry.
 *
 * Exactly one node sends each attempt. NOTE: FerretDB 1.x runs conditional updates as a separate
 * read and write, so "updateOne({ _id, state: 'queued' })" cannot pick a sender: every racer would
 * win. Instead an attempt is claimed by inserting `mail_claims` `{ _id: "<mailId>:<attemptNo>" }`
 * (a unique insert is atomic everywhere), and after winning the claimer re-reads the mail and goes
 * on only if it is still queued at or before that attempt number. Only the claim's winner writes
 * the attempt's outcome, which moves `attempts` past the claimed number, so a node that read the
 * mail before that (a stale read) fails the re-read.
 *
 * A claim holds a lease (LEASE_MS). A node that dies between its claim and the outcome leaves the
 * mail queued with a claim nobody renews; once the lease has passed, the next worker that finds
 * the mail due takes the next attempt number and sends it again. The lease is far longer than the
 * mailer's SMTP timeouts, so a live sender always writes its outcome before anyone else may take
 * over.
 *
 * Crash between "SMTP accepted" and "marked sent": the mail is sent again after the lease
 * (at-least-once). Chosen on purpose, sign-in codes included: the window is one database write
 * wide, a duplicate carries the same code to the same address (nothing more is disclosed and the
 * code stays single-use), while a lost code costs the person their sign-in. A mail given an
 * `expiresAt` (a code's own expiry) is never sent after it: it is dead-lettered as `expired` and
 * its body dropped, since a late code is only confusing.
 *
 * Bodies at rest: subject, text and HTML are sealed with the SecretBox (AES-256-GCM, bound to the
 * mail's id) while the mail waits, and the sealed body is removed as soon as the mail is sent (or
 * dead-lettered as expired). Only the recipient, the template's name and the bookkeeping stay in
 * the clear; sent mails are removed by sweep() after MAIL_SENT_RETENTION_DAYS.
 */

export const OUTBOX_COLLECTION = 'mail_outbox';
export const OUTBOX_CLAIMS_COLLECTION = 'mail_claims';
export const MAIL_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** Far above the mailer's SMTP timeouts (10 s per phase): a live sender finishes well within it. */
const LEASE_MS = 120_000;
/** The first retry waits this long; each further one twice as long, up to retryMaxDelayMs. */
const RETRY_BASE_MS = 5_000;
/** Mails taken per worker pass. */
const BATCH = 25;
/** Claims are only needed while an attempt can still be contended; older ones are swept. */
const CLAIM_RETENTION_MS = 24 * 3600_000;

export type OutboxState = 'queued' | 'sent' | 'dead';
export type DeadReason = 'max_attempts' | 'max_age' | 'expired' | 'unreadable';

interface OutboxRecord extends AttemptRecord {
  state: OutboxState;
  to: string;
  /** The template's name, for admins and logs (never the locals). */
  template?: string | undefined;
  /** SecretBox-sealed `{ subject, text, html }`; removed once sent. */
  sealed?: string | undefined;
  createdAt: Date;
  /** 0, and one more per admin retry. */
  round: number;
  /** `attempts` when this round began (back-off and MAIL_MAX_ATTEMPTS count within a round). */
  roundStartAttempt: number;
  /** Dead-lettered rather than retried after this (MAIL_RETRY_MAX_AGE from the round's start). */
  retryUntil: Date;
  /** Never sent after this (a code's own expiry). */
  expiresAt?: Date | undefined;
  /** nodemailer's error code of the last failed attempt (never a message with the mail in it). */
  lastError?: string | undefined;
  sentAt?: Date | undefined;
  deadAt?: Date | undefined;
  deadReason?: DeadReason | undefined;
}

interface ClaimRecord extends AttemptClaimRecord {
  mailId: string;
}

export interface OutboxSettings {
  /** How long one round retries before dead-letter (MAIL_RETRY_MAX_AGE). */
  retryMaxAgeMs: number;
  /** Attempts per round before dead-letter (MAIL_MAX_ATTEMPTS). */
  maxAttempts: number;
  /** Cap of the exponential back-off (MAIL_RETRY_MAX_DELAY). */
  retryMaxDelayMs: number;
  /** The worker's poll interval (MAIL_WORKER_INTERVAL). */
  pollIntervalMs: number;
  /** Sent and dead-lettered mails are removed after this (MAIL_SENT_RETENTION_DAYS). */
  retentionMs: number;
  /** First retry delay; default 5 s (tests make it small). */
  retryBaseMs?: number;
  /** The claim lease; default 2 minutes (tests make it small). */
  leaseMs?: number;
  /** How long an urgent enqueue waits for SMTP before answering "queued"; default 5 s. */
  urgentWaitMs?: number;
}

export interface EnqueueOptions {
  /**
   * Someone is waiting for this mail (a sign-in code): claim and send it within the call. When
   * the send fails or takes longer than the urgent wait, the mail stays queued for the worker.
   */
  urgent?: boolean;
  /** Do not send after this time (a code's expiry). */
  expiresAt?: Date;
}

export interface EnqueueResult {
  id: string;
  /** True when the mail was handed to SMTP within the call (urgent only). */
  sent: boolean;
}

export interface DeadLetterView {
  id: string;
  to: string;
  template: string | undefined;
  createdAt: Date;
  deadAt: Date | undefined;
  reason: DeadReason | undefined;
  attempts: number;
  lastError: string | undefined;
  /** False for expired or unreadable mails: there is nothing worth sending. */
  retryable: boolean;
}

export type RetryOutcome = 'queued' | 'not_found' | 'not_dead' | 'already_retried' | 'not_retryable';

/** What became of one delivery attempt (or of a mail), for observers (the metrics). */
export type DeliveryOutcome = { result: 'sent' } | { result: 'failed' } | { result: 'dead'; reason: DeadReason };

export interface MailOutbox {
  enqueue(message: MailMessage, options?: EnqueueOptions & { template?: MailTemplate }): Promise<EnqueueResult>;
  /** Renders the template (as Mailer.sendTemplate does) and enqueues it. */
  enqueueTemplate(to: string, template: MailTemplate, locals: Record<string, unknown>, options?: EnqueueOptions): Promise<EnqueueResult>;
  /** One worker pass: delivers the mails that are due. Returns how many were sent. */
  deliverDue(): Promise<number>;
  /** Starts polling every pollIntervalMs (and a pass right away). */
  start(): void;
  /** Stops polling and waits for the sends in flight. */
  stop(): Promise<void>;
  deadLetters(limit?: number): Promise<DeadLetterView[]>;
  counts(): Promise<{ queued: number; dead: number }>;
  /**
   * Puts a dead-lettered mail back in the queue, once: a double click or a second admin gets
   * `already_retried` (a unique-insert claim per dead-letter round). Audited.
   */
  retry(id: string, actor: AuditActor): Promise<RetryOutcome>;
  ensureIndexes(): Promise<void>;
  /** Removes sent and dead mails past retention and old claims. */
  sweep(now?: Date): Promise<number>;
  /** Calls `listener` with the outcome of every attempt this node makes (a throwing listener is ignored). */
  onDelivery(listener: (outcome: DeliveryOutcome) => void): void;
}

export function outboxSettingsFrom(outbox: {
  retryMaxAgeSeconds: number;
  maxAttempts: number;
  retryMaxDelaySeconds: number;
  workerIntervalSeconds: number;
  sentRetentionDays: number;
}): OutboxSettings {
  return {
    retryMaxAgeMs: outbox.retryMaxAgeSeconds * 1000,
    maxAttempts: outbox.maxAttempts,
    retryMaxDelayMs: outbox.retryMaxDelaySeconds * 1000,
    pollIntervalMs: outbox.workerIntervalSeconds * 1000,
    retentionMs: outbox.sentRetentionDays * 86_400_000,
  };
}

interface SealedBody {
  subject: string;
  text: string;
  html: string;
}

export function createMailOutbox(deps: {
  db: mongo.Db;
  mailer: Mailer;
  secretBox: SecretBox;
  audit: AuditService;
  logger: Logger;
  settings: OutboxSettings;
  /** Epoch milliseconds. */
  now?: () => number;
}): MailOutbox {
  const { db, mailer, secretBox, audit, logger, settings, now = Date.now } = deps;
  const mails = db.collection<OutboxRecord>(OUTBOX_COLLECTION);
  const claims = db.collection<ClaimRecord>(OUTBOX_CLAIMS_COLLECTION);
  const leaseMs = settings.leaseMs ?? LEASE_MS;
  const retryBaseMs = settings.retryBaseMs ?? RETRY_BASE_MS;
  const urgentWaitMs = settings.urgentWaitMs ?? 5_000;
  // Names this worker in its claims, for whoever investigates a stuck mail.
  const node = randomBytes(6).toString('hex');
  const context = (id: string) => `${OUTBOX_COLLECTION}:${id}`;
  const listeners = createOutcomeListeners<DeliveryOutcome>();
  const notify = listeners.notify;
  const attempts = createAttemptClaims({ records: mails, claims, node, leaseMs, now, owner: (id) => ({ mailId: id }) });

  const deadLetter = async (mail: Pick<OutboxRecord, '_id' | 'template' | 'to'>, attempt: number, reason: DeadReason, lastError?: string) => {
    const dropBody = reason === 'expired' || reason === 'unreadable';
    await mails.updateOne(
      { _id: mail._id },
      {
        $set: { state: 'dead', deadAt: new Date(now()), deadReason: reason, attempts: attempt + 1, ...(lastError ? { lastError } : {}) },
        ...(dropBody ? { $unset: { sealed: '' } } : {}),
      },
    );
    notify({ result: 'dead', reason });
    logger.warn('mail dead-lettered', { mailId: mail._id, template: mail.template, reason, recipientDomain: recipientDomain(mail.to) });
  };

  /** Sends one claimed attempt and writes its outcome (only the claim's winner gets here). */
  const attemptSend = async (mail: OutboxRecord, attempt: number, message: MailMessage): Promise<boolean> => {
    if (mail.expiresAt && mail.expiresAt.getTime() <= now()) {
      await deadLetter(mail, attempt, 'expired');
      return false;
    }
    try {
      // The mailer logs the failure (recipient's domain and error code, never the body).
      await mailer.send(message, mail.template as MailTemplate | undefined);
    } catch (err) {
      const code = errorCode(err instanceof Error && err.cause ? err.cause : err);
      notify({ result: 'failed' });
      const inRound = attempt + 1 - mail.roundStartAttempt;
      const delay = Math.min(retryBaseMs * 2 ** Math.min(inRound - 1, 30), settings.retryMaxDelayMs);
      // Up to a fifth less, so nodes that failed together do not all come back together.
      const next = now() + Math.round(delay * (1 - Math.random() * 0.2));
      if (inRound >= settings.maxAttempts) await deadLetter(mail, attempt, 'max_attempts', code);
      else if (next > mail.retryUntil.getTime()) await deadLetter(mail, attempt, 'max_age', code);
      else await mails.updateOne({ _id: mail._id }, { $set: { attempts: attempt + 1, nextAttemptAt: new Date(next), lastError: code } });
      return false;
    }
    notify({ result: 'sent' });
    try {
      await mails.updateOne(
        { _id: mail._id },
        { $set: { state: 'sent', sentAt: new Date(now()), attempts: attempt + 1 }, $unset: { sealed: '', lastError: '' } },
      );
    } catch (err) {
      // Sent all the same: the caller hears so. Unmarked, it is sent again after the lease (the
      // at-least-once window of the header).
      logger.warn('mail sent but not marked sent', { mailId: mail._id, template: mail.template, reason: err instanceof Error ? err.message : String(err) });
      return true;
    }
    logger.debug('mail sent', { mailId: mail._id, template: mail.template, attempt });
    return true;
  };

  const open = (mail: OutboxRecord): MailMessage | undefined => {
    if (!mail.sealed) return undefined;
    try {
      const body = JSON.parse(secretBox.open(mail.sealed, context(mail._id))) as SealedBody;
      return { to: mail.to, subject: body.subject, text: body.text, html: body.html };
    } catch {
      return undefined;
    }
  };

  /** The worker's path for one due mail: claim, re-read (see the header), send. */
  const deliverOne = async (seen: OutboxRecord): Promise<boolean> => {
    const taken = await attempts.take(seen);
    if (!taken) return false;
    const { record: mail, attempt } = taken;
    const message = open(mail);
    if (!message) {
      await deadLetter(mail, attempt, 'unreadable');
      return false;
    }
    return attemptSend(mail, attempt, message);
  };

  const deliverDue = async (): Promise<number> => {
    const due = shuffleDue(
      await mails
        .find({ state: 'queued', nextAttemptAt: { $lte: new Date(now()) } })
        .sort({ nextAttemptAt: 1 })
        .limit(BATCH)
        .toArray(),
    );
    let sent = 0;
    for (const mail of due) {
      if (worker.stopped) break;
      if (await deliverOne(mail)) sent += 1;
    }
    return sent;
  };

  // Kicked by enqueue and retry so a mail goes out at once on a node whose worker runs.
  const worker = createWorkerLoop({ pass: deliverDue, intervalMs: settings.pollIntervalMs, logger, failureMessage: 'mail outbox pass failed' });
  const kick = worker.kick;

  const enqueue: MailOutbox['enqueue'] = async (message, options = {}) => {
    const id = randomBytes(16).toString('base64url');
    const at = now();
    const body: SealedBody = { subject: message.subject, text: message.text, html: message.html };
    const mail: OutboxRecord = {
      _id: id,
      state: 'queued',
      to: message.to,
      template: options.template,
      sealed: secretBox.seal(JSON.stringify(body), context(id)),
      createdAt: new Date(at),
      // Urgent: this call sends it, so the workers leave it alone for a lease unless this node dies.
      nextAttemptAt: new Date(options.urgent ? at + leaseMs : at),
      attempts: 0,
      round: 0,
      roundStartAttempt: 0,
      retryUntil: new Date(at + settings.retryMaxAgeMs),
      expiresAt: options.expiresAt,
    };
    if (!mail.template) delete mail.template;
    if (!mail.expiresAt) delete mail.expiresAt;
    await mails.insertOne(mail);
    if (!options.urgent) {
      kick();
      return { id, sent: false };
    }
    const won = await attempts.claim(id, 0);
    if (!won) return { id, sent: false };
    const sending = worker.track(attemptSend(mail, won.attempt, message));
    let timeout: NodeJS.Timeout | undefined;
    const waited = new Promise<'waiting'>((resolve) => {
      timeout = setTimeout(() => resolve('waiting'), urgentWaitMs);
    });
    try {
      // SMTP slower than the wait: answer "queued" now; the send goes on and records its outcome.
      const outcome = await Promise.race([sending, waited]);
      return { id, sent: outcome === true };
    } finally {
      clearTimeout(timeout);
    }
  };

  return {
    enqueue,

    async enqueueTemplate(to, template, locals, options = {}) {
      return enqueue(mailer.render(to, template, locals), { ...options, template });
    },

    deliverDue,

    start: worker.start,

    stop: worker.stop,

    async deadLetters(limit = 100) {
      const dead = await mails.find({ state: 'dead' }).sort({ deadAt: -1 }).limit(limit).toArray();
      const at = now();
      return dead.map((mail) => ({
        id: mail._id,
        to: mail.to,
        template: mail.template,
        createdAt: mail.createdAt,
        deadAt: mail.deadAt,
        reason: mail.deadReason,
        attempts: mail.attempts,
        lastError: mail.lastError,
        retryable: Boolean(mail.sealed) && !(mail.expiresAt && mail.expiresAt.getTime() <= at),
      }));
    },

    async counts() {
      const [queued, dead] = await Promise.all([mails.countDocuments({ state: 'queued' }), mails.countDocuments({ state: 'dead' })]);
      return { queued, dead };
    },

    async retry(id, actor) {
      const record = (outcome: 'success' | 'failure', details: Record<string, string>, reason?: string) =>
        audit.record({ action: 'mail.retried', outcome, actor, reason, details: { mailId: id, ...details } });
      const mail = MAIL_ID_PATTERN.test(id) ? await mails.findOne({ _id: id }) : null;
      if (!mail) return 'not_found';
      const details = { template: mail.template ?? '', recipientDomain: recipientDomain(mail.to) };
      if (mail.state !== 'dead') {
        await record('failure', details, 'not_dead');
        return 'not_dead';
      }
      if (!mail.sealed || (mail.expiresAt && mail.expiresAt.getTime() <= now())) {
        await record('failure', details, 'not_retryable');
        return 'not_retryable';
      }
      // One retry per dead-letter round, whoever clicks: the unique insert decides.
      const at = new Date(now());
      if (!(await insertClaim(claims, { _id: `${id}:retry:${mail.round}`, mailId: id, node, at, leaseUntil: at }))) {
        await record('failure', details, 'already_retried');
        return 'already_retried';
      }
      await mails.updateOne(
        { _id: id },
        {
          $set: {
            state: 'queued',
            round: mail.round + 1,
            roundStartAttempt: mail.attempts,
            retryUntil: new Date(at.getTime() + settings.retryMaxAgeMs),
            nextAttemptAt: at,
          },
          $unset: { deadAt: '', deadReason: '' },
        },
      );
      await record('success', details);
      logger.info('dead-lettered mail queued again', { mailId: id, template: mail.template });
      kick();
      return 'queued';
    },

    async ensureIndexes() {
      await mails.createIndex({ state: 1, nextAttemptAt: 1 });
      await mails.createIndex({ state: 1, sentAt: 1 });
      await mails.createIndex({ state: 1, deadAt: -1 });
      await claims.createIndex({ at: 1 });
    },

    async sweep(at = new Date(now())) {
      const before = new Date(at.getTime() - settings.retentionMs);
      const sent = await mails.deleteMany({ state: 'sent', sentAt: { $lt: before } });
      const dead = await mails.deleteMany({ state: 'dead', deadAt: { $lt: before } });
      // A dead mail past its own expiry can never be retried: its sealed body goes now.
      await mails.updateMany({ state: 'dead', expiresAt: { $lt: at }, sealed: { $exists: true } }, { $unset: { sealed: '' } });
      const old = await claims.deleteMany({ at: { $lt: new Date(at.getTime() - Math.max(CLAIM_RETENTION_MS, leaseMs * 2)) } });
      return sent.deletedCount + dead.deletedCount + old.deletedCount;
    },

    onDelivery: listeners.add,
  };
}
