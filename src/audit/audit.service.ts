import { randomBytes } from 'node:crypto';

import { mongo } from 'mongoose';

import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { ensureExpiryIndex } from '../db/expiry-index.js';
import { AppError } from '../http/app-error.js';
import { currentRequest } from '../http/request-context.js';
import type { Logger } from '../logging/logger.js';
import type { AuditAction } from './audit-actions.js';

/**
 * The audit log: who did what, to what, from where, and whether it worked. Written by the
 * sign-in pages and the account page where they decide, and by provider event listeners
 * (src/oidc/events.ts) for tokens, sign-out and client registration; read by admins through
 * the console and the management API.
 *
 * NOTE: an event never carries a secret, password, code or token. Callers pass identifiers and
 * reason codes, never credentials; `details` takes only short scalars, and drops keys named like
 * credentials and values shaped like JWTs as a second line of defence (sanitiseDetails).
 */

export type AuditOutcome = 'success' | 'failure';

export interface AuditActor {
  type: 'account' | 'client' | 'anonymous' | 'system';
  /** Account id (sub) or client id. */
  id?: string | undefined;
  /** A human label: the account's email or the client's name. */
  label?: string | undefined;
}

export interface AuditTarget {
  type: 'account' | 'client' | 'registration_token' | 'invitation' | 'grant' | 'token' | 'session' | 'signing_key' | 'api_resource';
  id: string;
  label?: string | undefined;
}

export type AuditDetails = Record<string, string | number | boolean | string[]>;

export interface AuditEvent {
  id: string;
  at: Date;
  /** Namespaced verb, e.g. `sign_in.password`, `client.created`, `token.issued` (an AuditAction when written; older events may carry others). */
  action: string;
  outcome: AuditOutcome;
  actor: AuditActor;
  target?: AuditTarget | undefined;
  /** The OAuth client the event happened through, when there is one. */
  clientId?: string | undefined;
  ip?: string | undefined;
  userAgent?: string | undefined;
  /** Why it failed (a reason code, not a message with user input). */
  reason?: string | undefined;
  details?: AuditDetails | undefined;
}

/** `ip` and `userAgent` default to the current request's (src/http/request-context.ts). */
export type AuditInput = Omit<AuditEvent, 'id' | 'at' | 'action'> & { action: AuditAction; at?: Date };

/**
 * An event whose action is a plain string: the sign-in pages still pass theirs so until they
 * are rebuilt on AuditAction, and the store's own tests record made-up actions.
 */
export type UntypedAuditInput = Omit<AuditInput, 'action'> & { action: string };

export interface AuditFilter {
  /** Actor id or label (exact). */
  actor?: string | undefined;
  /** Exact action, or a prefix ending in `.` (e.g. `client.`). */
  action?: string | undefined;
  /** Target id (exact). */
  target?: string | undefined;
  outcome?: AuditOutcome | undefined;
  clientId?: string | undefined;
  /** Inclusive, to the millisecond. */
  from?: Date | undefined;
  /** Inclusive, to the millisecond. */
  to?: Date | undefined;
}

export interface AuditPage {
  events: AuditEvent[];
  /** Pass back as `cursor` for the next (older) page; absent on the last page. */
  nextCursor?: string | undefined;
}

export interface AuditService {
  /**
   * Records an event; resolves once it is stored (with whatever else is waiting: one insert for
   * all). Never throws: an audit write failing must not fail the action (it is logged). Past
   * the buffer's cap it first waits for the write in progress (back-pressure).
   */
  record(input: AuditInput): Promise<void>;
  /** @deprecated an action outside AuditAction; for the sign-in pages until they are migrated, and the store's tests. */
  record(input: UntypedAuditInput): Promise<void>;
  /**
   * Records an event nobody waits for (the provider's event listeners: the token endpoint's hot
   * path): buffered, and written with the next batch, within AUDIT_FLUSH_INTERVAL_MS.
   */
  recordInBackground(input: AuditInput): void;
  /**
   * Undefined while the buffer is below its cap; else a promise that resolves when it is again.
   * Requests to the provider wait on it (app.ts): its listeners cannot wait for recordInBackground.
   */
  backPressure(): Promise<void> | undefined;
  /** Events waiting in the buffer, being written, and held back by the cap. */
  stats(): { buffered: number; inFlight: number; held: number };
  /**
   * Newest first, at most `limit` (1–500) per page. Throws AppError 400 `audit.invalid_cursor`
   * for a cursor that is not one this service handed out.
   */
  list(filter: AuditFilter, page: { limit: number; cursor?: string | undefined }): Promise<AuditPage>;
  /** Every matching event, newest first, one JSON object per line (each ending in `\n`). */
  exportJsonl(filter: AuditFilter): AsyncIterable<string>;
  /**
   * Writes every event recorded before the call (and waits for it). Provider event listeners
   * cannot await (the provider emits synchronously), so shutdown uses this, and list() does
   * it first, so that a node reads its own writes.
   */
  flush(): Promise<void>;
  ensureIndexes(): Promise<void>;
  /** Deletes events past retention (servers without TTL indexes). */
  sweep(now?: Date): Promise<number>;
  /**
   * Calls `listener` with every event as it is recorded (before it is written), synchronously:
   * the metrics count sign-ins, second factors and throttle refusals here (src/metrics), once,
   * instead of in every sign-in strategy. A listener that throws is ignored.
   */
  onRecorded(listener: (event: Readonly<Omit<AuditEvent, 'id'>>) => void): void;
}

interface AuditRecord extends Omit<AuditEvent, 'id'> {
  /** Sortable: `<ms since epoch, 13 digits>-<sequence><random>`, so `_id` order is time order. */
  _id: string;
  /** `at` + AUDIT_RETENTION_DAYS: a TTL index (MongoDB) or the sweep removes the event then. */
  expiresAt: Date;
}

export const AUDIT_COLLECTION = 'audit_events';

export const AUDIT_ID_PATTERN = /^\d{13}-[0-9a-f]{4,40}$/;
const DETAIL_KEY = /^[A-Za-z][A-Za-z0-9_]{0,40}$/;
/**
 * Detail keys that name a credential: dropped whatever their value. Covers OAuth parameter
 * names (`access_token`, `client_secret`, `code`, `code_verifier`) in case a caller passes
 * request parameters through, and our own field names (`password`, `otp`).
 */
const CREDENTIAL_KEY = /pass(word|wd|phrase)?|secret|cookie|authorization|credential|verifier|assertion|^(code|otp|totp|token|jti|hash|key|value)$|_(token|code|key)$/i;
/** A compact JWS/JWE (an ID token, a JWT access token): never worth keeping in a detail. */
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\./;
// eslint-disable-next-line no-control-regex -- the point is to drop control characters
const CONTROL = /[\u0000-\u001f\u007f]/g;

const pad13 = (ms: number) => String(Math.max(0, ms)).padStart(13, '0');

function text(value: string, max: number): string {
  return value.replace(CONTROL, '').slice(0, max);
}

/**
 * Keeps details to short scalars (strings cut to 200 characters, at most 50 array items), with
 * no nesting, no credential-named keys and no JWT-shaped strings.
 */
export function sanitiseDetails(details: unknown): AuditDetails | undefined {
  if (!details || typeof details !== 'object' || Array.isArray(details)) return undefined;
  const out: AuditDetails = {};
  for (const [key, value] of Object.entries(details as Record<string, unknown>)) {
    if (!DETAIL_KEY.test(key) || CREDENTIAL_KEY.test(key)) continue;
    if (typeof value === 'string') {
      if (!JWT_SHAPE.test(value)) out[key] = text(value, 200);
    } else if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) {
      out[key] = value;
    } else if (Array.isArray(value)) {
      out[key] = value
        .filter((v): v is string | number | boolean => ['string', 'number', 'boolean'].includes(typeof v))
        .map((v) => text(String(v), 200))
        .filter((v) => !JWT_SHAPE.test(v))
        .slice(0, 50);
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function toEvent(record: AuditRecord): AuditEvent {
  const event: AuditEvent = { id: record._id, at: record.at, action: record.action, outcome: record.outcome, actor: record.actor };
  if (record.target) event.target = record.target;
  if (record.clientId) event.clientId = record.clientId;
  if (record.ip) event.ip = record.ip;
  if (record.userAgent) event.userAgent = record.userAgent;
  if (record.reason) event.reason = record.reason;
  if (record.details) event.details = record.details;
  return event;
}

/**
 * How events reach the database: in batches (one `insertMany`, unordered) off the request path.
 * A batch goes when AUDIT_FLUSH_INTERVAL_MS passed since the first event waiting, when
 * AUDIT_BATCH_SIZE events wait, or at once when a caller awaits `record()` (then it carries
 * everything else waiting too). One batch is in flight at a time.
 *
 * What a crash can lose: events not yet written, i.e. at most one flush interval of background
 * events plus the batch in flight while the database keeps up, and never more than
 * AUDIT_MAX_BUFFERED + AUDIT_BATCH_SIZE events (awaited `record()` calls had not returned yet,
 * so their actions were not confirmed either). A clean shutdown loses nothing (close() flushes).
 */
export interface AuditBatching {
  flushIntervalMs: number;
  batchSize: number;
  /** The hard cap on events waiting: past it, `record()` waits for the batch in flight. */
  maxBuffered: number;
  /** Attempts per event before it is given up (and logged). */
  maxAttempts: number;
}

export const AUDIT_BATCHING: AuditBatching = { flushIntervalMs: 250, batchSize: 200, maxBuffered: 10_000, maxAttempts: 3 };

interface Waiting {
  record: AuditRecord;
  seq: number;
  attempts: number;
  /** The first failure: the cause (later attempts may fail for its consequences, a closed topology say). */
  error?: Error;
  /** Set when a caller awaits the write. */
  settle?: () => void;
}

export function createAuditService(deps: {
  db: mongo.Db;
  logger: Logger;
  retentionDays: number;
  clock?: Clock;
  batching?: Partial<AuditBatching>;
}): AuditService {
  const { db, logger, retentionDays, clock = systemClock } = deps;
  const batching = { ...AUDIT_BATCHING, ...deps.batching };
  const now = () => clock.nowMs();
  const collection = db.collection<AuditRecord>(AUDIT_COLLECTION);

  // A sequence within the millisecond, so events this process records in the same millisecond
  // list in the order they happened; the random part, drawn once per service (the time and the
  // sequence tell this node's events apart), keeps ids of different nodes apart.
  const nodePart = randomBytes(5).toString('hex');
  let lastMs = -1;
  let sequence = 0;
  const newId = (at: Date): string => {
    const ms = at.getTime();
    sequence = ms === lastMs ? (sequence + 1) % 0x10000 : 0;
    lastMs = ms;
    return `${pad13(ms)}-${sequence.toString(16).padStart(4, '0')}${nodePart}`;
  };

  const buildRecord = (input: AuditInput | UntypedAuditInput): AuditRecord => {
    const at = input.at ?? new Date(now());
    const request = currentRequest();
    const record: AuditRecord = {
      _id: newId(at),
      at,
      expiresAt: new Date(at.getTime() + retentionDays * 24 * 60 * 60 * 1000),
      action: text(input.action, 100),
      outcome: input.outcome === 'success' ? 'success' : 'failure',
      actor: {
        type: input.actor.type,
        ...(input.actor.id ? { id: text(input.actor.id, 200) } : {}),
        ...(input.actor.label ? { label: text(input.actor.label, 254) } : {}),
      },
    };
    if (input.target) {
      record.target = {
        type: input.target.type,
        id: text(input.target.id, 200),
        ...(input.target.label ? { label: text(input.target.label, 254) } : {}),
      };
    }
    if (input.clientId) record.clientId = text(input.clientId, 200);
    const ip = input.ip ?? request?.ip;
    const userAgent = input.userAgent ?? request?.userAgent;
    if (ip) record.ip = text(ip, 64);
    if (userAgent) record.userAgent = text(userAgent, 300);
    if (input.reason) record.reason = text(input.reason, 100);
    const details = sanitiseDetails(input.details);
    if (details) record.details = details;
    return record;
  };

  // The batcher. `buffer` is what waits; `inFlight` the batch being written; `admitting` the
  // events held back by the cap; `seq` orders them all (flush() writes up to a mark).
  const buffer: Waiting[] = [];
  let inFlight: Waiting[] = [];
  const admitting = new Set<Waiting>();
  let writing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let seq = 0;

  /**
   * Indexes of the events an unordered insertMany did not store: those its write errors name
   * (but a duplicate _id, stored by an earlier attempt), or all of them when the error names
   * none (the insert as a whole failed; a retry of what did land is then a duplicate).
   */
  const failedIndexes = (err: unknown, size: number): number[] => {
    const writeErrors = err instanceof mongo.MongoBulkWriteError ? (err as { writeErrors?: unknown }).writeErrors : undefined;
    const list = (Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : []) as { index: number; code?: number }[];
    if (list.length === 0) return [...Array(size).keys()];
    return list.filter((e) => e.code !== 11000).map((e) => e.index);
  };

  const writeBatch = async (batch: Waiting[]): Promise<void> => {
    let failed: number[] = [];
    let error: Error | undefined;
    try {
      await collection.insertMany(
        batch.map((w) => w.record),
        { ordered: false },
      );
    } catch (err) {
      error = err as Error;
      failed = failedIndexes(err, batch.length);
    }
    const retry: Waiting[] = [];
    const failedSet = new Set(failed);
    batch.forEach((waiting, index) => {
      if (failedSet.has(index)) {
        waiting.attempts += 1;
        waiting.error ??= error;
        if (waiting.attempts < batching.maxAttempts) {
          retry.push(waiting);
          return;
        }
        const cause = waiting.error;
        logger.warn('audit event not recorded', { action: waiting.record.action, error: cause?.name, reason: cause?.message, attempts: waiting.attempts });
      }
      waiting.settle?.();
    });
    // Retried first, in their order: they are the oldest.
    buffer.unshift(...retry);
  };

  const schedule = () => {
    if (timer || writing || buffer.length === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      void next();
    }, batching.flushIntervalMs);
    // Never what keeps the process alive: shutdown flushes.
    timer.unref();
  };

  /** Starts the next batch unless one is in flight; resolves when the batch in flight is done. */
  const next = (): Promise<void> => {
    if (writing) return writing;
    clearTimeout(timer);
    timer = undefined;
    if (buffer.length === 0) return Promise.resolve();
    inFlight = buffer.splice(0, batching.batchSize);
    const hadFailures = () => buffer.length > 0 && buffer[0]!.attempts > 0;
    writing = writeBatch(inFlight).finally(() => {
      writing = undefined;
      inFlight = [];
      // At once for a full batch or an awaiting caller (but a retry waits an interval).
      if (!hadFailures() && (buffer.length >= batching.batchSize || buffer.some((w) => w.settle))) void next();
      else schedule();
    });
    return writing;
  };

  const enqueue = (waiting: Waiting) => {
    buffer.push(waiting);
    if (buffer.length >= batching.batchSize || waiting.settle) void next();
    else schedule();
  };

  /** Waits (back-pressure) while the buffer is at its cap, then enqueues. */
  const admit = async (waiting: Waiting) => {
    admitting.add(waiting);
    try {
      while (buffer.length >= batching.maxBuffered) await next();
    } finally {
      admitting.delete(waiting);
    }
    enqueue(waiting);
  };

  const listeners: ((event: Readonly<Omit<AuditEvent, 'id'>>) => void)[] = [];

  const accept = (input: AuditInput | UntypedAuditInput, awaited: boolean): Promise<void> | undefined => {
    // Built now: the request context (IP, user agent) is this call's.
    const waiting: Waiting = { record: buildRecord(input), seq: (seq += 1), attempts: 0 };
    for (const listener of listeners) {
      try {
        listener(waiting.record);
      } catch {
        // An observer (metrics) must never fail the action being audited.
      }
    }
    const written = awaited ? new Promise<void>((resolve) => (waiting.settle = resolve)) : undefined;
    if (buffer.length < batching.maxBuffered) enqueue(waiting);
    else void admit(waiting);
    return written;
  };

  const flush = async () => {
    const mark = seq;
    const before = (w: Waiting) => w.seq <= mark;
    while (buffer.some(before) || inFlight.some(before) || [...admitting].some(before)) {
      if (admitting.size > 0 && !writing && buffer.length === 0) await Promise.resolve();
      await next();
    }
  };

  const query = (filter: AuditFilter): mongo.Filter<AuditRecord> => {
    const and: mongo.Filter<AuditRecord>[] = [];
    if (filter.actor) and.push({ $or: [{ 'actor.id': filter.actor }, { 'actor.label': filter.actor.toLowerCase() }, { 'actor.label': filter.actor }] });
    if (filter.action) {
      if (filter.action.endsWith('.')) and.push({ action: { $regex: `^${filter.action.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}` } });
      else and.push({ action: filter.action });
    }
    if (filter.target) and.push({ 'target.id': filter.target });
    if (filter.outcome) and.push({ outcome: filter.outcome });
    if (filter.clientId) and.push({ clientId: filter.clientId });
    if (filter.from || filter.to) {
      // `_id` starts with the time, so a range on `_id` is a range on time (and uses the _id index).
      // '~' sorts after every character of the id's tail: `$lt "<to>~"` keeps all of that millisecond.
      const range: { $gte?: string; $lt?: string } = {};
      if (filter.from) range.$gte = pad13(filter.from.getTime());
      if (filter.to) range.$lt = `${pad13(filter.to.getTime())}~`;
      and.push({ _id: range });
    }
    return and.length > 0 ? { $and: and } : {};
  };

  const list: AuditService['list'] = async (filter, page) => {
    // A node reads its own writes: what it recorded before is stored first.
    await flush();
    const limit = Number.isFinite(page.limit) ? Math.min(Math.max(Math.trunc(page.limit), 1), 500) : 50;
    const q = query(filter);
    if (page.cursor !== undefined) {
      if (typeof page.cursor !== 'string' || !AUDIT_ID_PATTERN.test(page.cursor)) {
        throw new AppError('audit.invalid_cursor');
      }
      // Strictly older than the last event of the previous page: no repeats, and (ids being
      // unique and totally ordered) no gaps, even when events arrive between the two pages.
      q.$and = [...(q.$and ?? []), { _id: { $lt: page.cursor } }];
    }
    const records = await collection.find(q).sort({ _id: -1 }).limit(limit + 1).toArray();
    const events = records.slice(0, limit).map(toEvent);
    const last = events.at(-1);
    return records.length > limit && last ? { events, nextCursor: last.id } : { events };
  };

  return {
    record(input) {
      // NOTE: not an async function, so the event is buffered before record() returns:
      // flush() called right after sees it.
      return accept(input, true) ?? Promise.resolve();
    },

    recordInBackground(input) {
      accept(input, false);
    },

    backPressure() {
      if (buffer.length < batching.maxBuffered) return undefined;
      return (async () => {
        while (buffer.length >= batching.maxBuffered) await next();
      })();
    },

    stats: () => ({ buffered: buffer.length, inFlight: inFlight.length, held: admitting.size }),

    list,

    async *exportJsonl(filter) {
      let cursor: string | undefined;
      for (;;) {
        const page = await list(filter, { limit: 500, cursor });
        for (const event of page.events) yield `${JSON.stringify(event)}\n`;
        if (!page.nextCursor) return;
        cursor = page.nextCursor;
      }
    },

    flush,

    async ensureIndexes() {
      // Without TTL indexes, the periodic sweep applies the retention.
      await ensureExpiryIndex(collection);
      await collection.createIndex({ 'actor.id': 1, _id: -1 });
      await collection.createIndex({ 'target.id': 1, _id: -1 });
      await collection.createIndex({ action: 1, _id: -1 });
      await collection.createIndex({ clientId: 1, _id: -1 });
    },

    async sweep(at = new Date(now())) {
      const result = await collection.deleteMany({ expiresAt: { $lte: at } });
      return result.deletedCount;
    },

    onRecorded(listener) {
      listeners.push(listener);
    },
  };
}

/** An account as actor or target: its id and, as the label, its email. */
export function accountActor(account: { id: string; email: string }): { type: 'account'; id: string; label: string } {
  return { type: 'account', id: account.id, label: account.email };
}
