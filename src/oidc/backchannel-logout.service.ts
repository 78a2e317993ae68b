import { randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';
import type { AdapterPayload } from 'oidc-provider';

import type { AuditService } from '../audit/audit.service.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { createOutcomeListeners, createWorkerLoop, shuffleDue } from '../core/worker-loop.js';
import type { AttemptClaimRecord, AttemptRecord } from '../db/claims.js';
import { createAttemptClaims } from '../db/claims.js';
import type { Logger } from '../logging/logger.js';

/**
 * OpenID Connect Back-Channel Logout 1.0: when an SSO session ends, every client that signed in
 * through it and registered a `backchannel_logout_uri` is sent a signed logout token.
 *
 * Durable, as the mail outbox is: a session's end stores one delivery record per client (in the
 * same request that ended it, before anything is sent), and a worker on every node delivers what
 * is due, retrying with exponential back-off up to MAX_ATTEMPTS and MAX_AGE, after which the
 * record is dead. Every outcome is audited (`logout.backchannel_delivered`,
 * `logout.backchannel_failed`).
 *
 * Exactly one node makes each attempt. NOTE: FerretDB 1.x runs conditional updates as a separate
 * read and write, so a "claim" by updateOne({ state: 'queued' }) would let every racer win. An
 * attempt n of record r belongs to whoever inserts `backchannel_logout_claims` `{ _id: "r:n" }`
 * first; the winner re-reads the record (still queued, nothing past n recorded), sends, and alone
 * writes the outcome. A claim's lease (far above the request timeout) lets another node take
 * attempt n+1 when the sender died; a crash between the receiver's 200 and the write therefore
 * means a second delivery of the same logout (same `jti`), which the spec asks receivers to
 * tolerate, rather than a lost one.
 *
 * What is stored: the client, the account id (`sub`) and the session's `sid` for that client;
 * never a token. The token is signed at each attempt with the provider's current key (the
 * provider's own IdToken machinery, `use: 'logout'`: `typ: logout+jwt`, a two-minute `exp`), so
 * a retry an hour later still carries a fresh, verifiable token; the record's id is the `jti`, the
 * same on every attempt (OIDC Back-Channel Logout §2.4), so a receiver can tell a retry from a new
 * logout.
 */

export const BACKCHANNEL_COLLECTION = 'backchannel_logouts';
export const BACKCHANNEL_CLAIMS_COLLECTION = 'backchannel_logout_claims';

export interface BackchannelSettings {
  /** Attempts before a record is dead. */
  maxAttempts: number;
  /** A record older than this is dead instead of retried. */
  maxAgeMs: number;
  /** The first retry waits this long; each further one twice as long, up to retryMaxDelayMs. */
  retryBaseMs: number;
  retryMaxDelayMs: number;
  /** How long one POST may take (connect and answer). */
  timeoutMs: number;
  /** A claim's lease: far above timeoutMs, so a live sender always writes its outcome first. */
  leaseMs: number;
  /** The worker's poll interval. */
  pollIntervalMs: number;
  /** Delivered and dead records are removed after this. */
  retentionMs: number;
}

/**
 * Logout notices matter right after the logout: an hour of retries (ten attempts: 5 s, 10 s, 20 s
 * … capped at ten minutes between them) covers a receiver's restart or deploy, not a week-long
 * outage, after which the RP's own session lifetime has long done the job.
 */
export const BACKCHANNEL_DEFAULTS: BackchannelSettings = {
  maxAttempts: 10,
  maxAgeMs: 3600_000,
  retryBaseMs: 5_000,
  retryMaxDelayMs: 600_000,
  timeoutMs: 5_000,
  leaseMs: 60_000,
  pollIntervalMs: 5_000,
  retentionMs: 7 * 86_400_000,
};

/** Records taken per worker pass. */
const BATCH = 25;
/** Claims are only needed while an attempt can still be contended. */
const CLAIM_RETENTION_MS = 24 * 3600_000;

export type BackchannelState = 'queued' | 'delivered' | 'dead';
export type BackchannelDeadReason = 'max_attempts' | 'max_age' | 'client_gone';

interface BackchannelRecord extends AttemptRecord {
  /** Also the logout token's `jti`. */
  _id: string;
  state: BackchannelState;
  clientId: string;
  /** The account whose session ended. */
  sub: string;
  /** The session's `sid` for this client, when it had one. */
  sid?: string | undefined;
  createdAt: Date;
  /** The last failure: an HTTP status (`status_500`) or a network error's code, never a body. */
  lastError?: string | undefined;
  deliveredAt?: Date | undefined;
  deadAt?: Date | undefined;
  deadReason?: BackchannelDeadReason | undefined;
}

interface ClaimRecord extends AttemptClaimRecord {
  logoutId: string;
}

/** One logout to tell one client about. */
export interface LogoutNotice {
  clientId: string;
  sub: string;
  sid?: string | undefined;
}

/** What a session's end tells this service: whose it was and the apps it signed in to. */
export interface EndedSession {
  accountId?: string | undefined;
  /** The provider's Session `authorizations`: client id → `{ sid, grantId, … }`. */
  authorizations?: Record<string, { sid?: string | undefined }> | undefined;
}

/** A signed logout token and where it goes; undefined when the client is gone or has no URI now. */
export type LogoutTokenSigner = (notice: LogoutNotice & { jti: string }) => Promise<{ uri: string; token: string } | undefined>;

export type BackchannelOutcome = { result: 'delivered' } | { result: 'failed' } | { result: 'dead'; reason: BackchannelDeadReason };

export interface BackchannelLogoutService {
  /**
   * Stores one delivery for each client of the ended sessions that registered a
   * `backchannel_logout_uri`. Never throws: a session's end must not fail for its notices (the
   * failure is logged). Returns how many were stored.
   */
  sessionsEnded(sessions: readonly EndedSession[]): Promise<number>;
  /** Stores deliveries for clients already known to have a `backchannel_logout_uri` (the provider's logout). */
  enqueue(notices: readonly LogoutNotice[]): Promise<void>;
  /** The server's provider signs the tokens; a node without it (the CLI) only enqueues. */
  useSigner(signer: LogoutTokenSigner): void;
  /** One worker pass: delivers what is due. Returns how many were delivered. */
  deliverDue(): Promise<number>;
  /** Starts polling every pollIntervalMs (and a pass right away). Needs a signer. */
  start(): void;
  /** Stops polling and waits for the sends in flight. */
  stop(): Promise<void>;
  ensureIndexes(): Promise<void>;
  /** Removes delivered and dead records past retention, and old claims. */
  sweep(): Promise<number>;
  /** Calls `listener` with the outcome of every attempt this node makes (a throwing listener is ignored). */
  onDelivery(listener: (outcome: BackchannelOutcome) => void): void;
}

export interface BackchannelLogoutDeps {
  db: mongo.Db;
  /** Reads a client's metadata (the server's from memory). */
  clients: { find(clientId: string): Promise<AdapterPayload | undefined> };
  audit: AuditService;
  logger: Logger;
  clock?: Clock;
  settings?: Partial<BackchannelSettings>;
}

/** A network error's code (ECONNREFUSED, the timeout's name), for the record and the audit: never a message. */
function failureCode(err: unknown): string {
  // NOTE: not `instanceof Error`: fetch's errors may come from another realm (a vm context).
  const cause = typeof err === 'object' && err !== null && (err as { cause?: unknown }).cause ? (err as { cause: unknown }).cause : err;
  if (cause && typeof cause === 'object') {
    const { code, name } = cause as { code?: unknown; name?: unknown };
    if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
    if (name === 'TimeoutError' || name === 'AbortError') return 'timeout';
  }
  return 'network_error';
}

export function createBackchannelLogoutService(deps: BackchannelLogoutDeps): BackchannelLogoutService {
  const { db, clients, audit, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const settings: BackchannelSettings = { ...BACKCHANNEL_DEFAULTS, ...deps.settings };
  const now = () => clock.nowMs();
  const records = db.collection<BackchannelRecord>(BACKCHANNEL_COLLECTION);
  const claims = db.collection<ClaimRecord>(BACKCHANNEL_CLAIMS_COLLECTION);
  // Names this worker in its claims, for whoever investigates a stuck delivery.
  const node = randomBytes(6).toString('hex');
  const listeners = createOutcomeListeners<BackchannelOutcome>();
  const notify = listeners.notify;
  const attempts = createAttemptClaims({ records, claims, node, leaseMs: settings.leaseMs, now, owner: (id) => ({ logoutId: id }) });
  let signer: LogoutTokenSigner | undefined;

  const recordOutcome = (record: BackchannelRecord, attempt: number, outcome: 'success' | 'failure', details: Record<string, string | number>) =>
    audit.record({
      action: outcome === 'success' ? 'logout.backchannel_delivered' : 'logout.backchannel_failed',
      outcome,
      actor: { type: 'system' },
      target: { type: 'account', id: record.sub },
      clientId: record.clientId,
      ...(outcome === 'failure' && typeof details.error === 'string' ? { reason: details.error } : {}),
      details: { logoutId: record._id, attempts: attempt + 1, ...details },
    });

  const deadLetter = async (record: BackchannelRecord, attempt: number, reason: BackchannelDeadReason, lastError?: string) => {
    await records.updateOne(
      { _id: record._id },
      { $set: { state: 'dead', deadAt: new Date(now()), deadReason: reason, attempts: attempt + 1, ...(lastError ? { lastError } : {}) } },
    );
    notify({ result: 'dead', reason });
    logger.warn('back-channel logout given up', { logoutId: record._id, clientId: record.clientId, reason, attempts: attempt + 1 });
    await recordOutcome(record, attempt, 'failure', { error: lastError ?? reason, next: 'dead', deadReason: reason });
  };

  /** POSTs the token (OIDC Back-Channel Logout §2.5); the failure's code, or undefined when delivered. */
  const post = async (uri: string, token: string): Promise<string | undefined> => {
    try {
      const response = await fetch(uri, {
        method: 'POST',
        // §2.8 does not ask receivers to redirect, and following one would send the token elsewhere.
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: token }).toString(),
        signal: AbortSignal.timeout(settings.timeoutMs),
      });
      // The body is never read (nor logged): only the status counts.
      await response.body?.cancel().catch(() => undefined);
      return response.status === 200 || response.status === 204 ? undefined : `status_${response.status}`;
    } catch (err) {
      return failureCode(err);
    }
  };

  /** Sends one claimed attempt and writes its outcome (only the claim's winner gets here). */
  const attemptSend = async (record: BackchannelRecord, attempt: number, sign: LogoutTokenSigner): Promise<boolean> => {
    let signed: { uri: string; token: string } | undefined;
    let error: string | undefined;
    try {
      signed = await sign({ clientId: record.clientId, sub: record.sub, sid: record.sid, jti: record._id });
    } catch (err) {
      // A client whose metadata no longer loads, a key store in trouble: a failed attempt like any
      // other (never a stuck record), and the reason in the log without the client's data.
      logger.warn('logout token not signed', { logoutId: record._id, clientId: record.clientId, reason: err instanceof Error ? err.name : 'unknown' });
      error = 'signing_failed';
    }
    if (!signed && error === undefined) {
      await deadLetter(record, attempt, 'client_gone');
      return false;
    }
    if (signed) error = await post(signed.uri, signed.token);
    if (error === undefined) {
      notify({ result: 'delivered' });
      await records.updateOne({ _id: record._id }, { $set: { state: 'delivered', deliveredAt: new Date(now()), attempts: attempt + 1 }, $unset: { lastError: '' } });
      logger.debug('back-channel logout delivered', { logoutId: record._id, clientId: record.clientId, attempt });
      await recordOutcome(record, attempt, 'success', {});
      return true;
    }
    const delay = Math.min(settings.retryBaseMs * 2 ** Math.min(attempt, 30), settings.retryMaxDelayMs);
    // Up to a fifth less, so receivers that failed together are not all retried together.
    const next = now() + Math.round(delay * (1 - Math.random() * 0.2));
    if (attempt + 1 >= settings.maxAttempts) await deadLetter(record, attempt, 'max_attempts', error);
    else if (next > record.createdAt.getTime() + settings.maxAgeMs) await deadLetter(record, attempt, 'max_age', error);
    else {
      notify({ result: 'failed' });
      await records.updateOne({ _id: record._id }, { $set: { attempts: attempt + 1, nextAttemptAt: new Date(next), lastError: error } });
      logger.info('back-channel logout failed; will retry', { logoutId: record._id, clientId: record.clientId, error, attempts: attempt + 1 });
      await recordOutcome(record, attempt, 'failure', { error, next: 'retry' });
    }
    return false;
  };

  /** The worker's path for one due record: claim, re-read, send. */
  const deliverOne = async (seen: BackchannelRecord, sign: LogoutTokenSigner): Promise<boolean> => {
    const taken = await attempts.take(seen);
    if (!taken) return false;
    return attemptSend(taken.record, taken.attempt, sign);
  };

  const deliverDue = async (): Promise<number> => {
    const sign = signer;
    if (!sign) return 0;
    const due = shuffleDue(await records.find({ state: 'queued', nextAttemptAt: { $lte: new Date(now()) } }).sort({ nextAttemptAt: 1 }).limit(BATCH).toArray());
    // In parallel: one slow receiver must not hold up the others' logouts.
    const results = await Promise.allSettled(due.map((record) => (worker.stopped ? false : deliverOne(record, sign))));
    for (const result of results) {
      // A database error mid-attempt: the record waits for its lease, then the next attempt.
      if (result.status === 'rejected') logger.warn('back-channel logout attempt failed', { reason: result.reason instanceof Error ? result.reason.message : String(result.reason) });
    }
    return results.filter((result) => result.status === 'fulfilled' && result.value).length;
  };

  // Kicked by enqueue so a notice goes out at once on a node whose worker runs.
  const worker = createWorkerLoop({ pass: deliverDue, intervalMs: settings.pollIntervalMs, logger, failureMessage: 'back-channel logout pass failed' });

  const enqueue = async (notices: readonly LogoutNotice[]): Promise<void> => {
    if (notices.length === 0) return;
    const at = new Date(now());
    await records.insertMany(
      notices.map((notice): BackchannelRecord => ({
        _id: randomBytes(16).toString('base64url'),
        state: 'queued',
        clientId: notice.clientId,
        sub: notice.sub,
        ...(notice.sid ? { sid: notice.sid } : {}),
        createdAt: at,
        nextAttemptAt: at,
        attempts: 0,
      })),
    );
    worker.kick();
  };

  return {
    async sessionsEnded(sessions) {
      try {
        const notices: LogoutNotice[] = [];
        const uris = new Map<string, boolean>();
        for (const session of sessions) {
          if (!session.accountId) continue;
          for (const [clientId, authorization] of Object.entries(session.authorizations ?? {})) {
            if (!uris.has(clientId)) {
              const metadata = await clients.find(clientId);
              uris.set(clientId, typeof metadata?.backchannel_logout_uri === 'string' && metadata.backchannel_logout_uri !== '');
            }
            if (uris.get(clientId)) notices.push({ clientId, sub: session.accountId, sid: authorization.sid });
          }
        }
        await enqueue(notices);
        return notices.length;
      } catch (err) {
        logger.warn('back-channel logout notices not stored', { reason: err instanceof Error ? err.message : String(err) });
        return 0;
      }
    },

    enqueue,

    useSigner(next) {
      signer = next;
    },

    deliverDue,

    start: worker.start,

    stop: worker.stop,

    async ensureIndexes() {
      await records.createIndex({ state: 1, nextAttemptAt: 1 });
      await records.createIndex({ state: 1, deliveredAt: 1 });
      await records.createIndex({ state: 1, deadAt: 1 });
      await claims.createIndex({ at: 1 });
    },

    async sweep() {
      const at = now();
      const before = new Date(at - settings.retentionMs);
      const delivered = await records.deleteMany({ state: 'delivered', deliveredAt: { $lt: before } });
      const dead = await records.deleteMany({ state: 'dead', deadAt: { $lt: before } });
      const old = await claims.deleteMany({ at: { $lt: new Date(at - Math.max(CLAIM_RETENTION_MS, settings.leaseMs * 2)) } });
      return delivered.deletedCount + dead.deletedCount + old.deletedCount;
    },

    onDelivery: listeners.add,
  };
}
