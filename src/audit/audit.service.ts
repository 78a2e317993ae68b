import { randomBytes } from 'node:crypto';

import type { mongo } from 'mongoose';

import type { Logger } from '../logging/logger.js';
import { currentRequest } from '../http/request-context.js';

/**
 * The audit log: who did what, to what, from where, and whether it worked. Written by services
 * (admin changes, sign-in steps) and by provider event listeners (tokens); read by admins through
 * the console and the management API.
 *
 * NOTE: an event never carries a secret, password, code or token. `details` takes only short
 * scalar values, and callers pass identifiers and reasons, never credentials.
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
  type: 'account' | 'client' | 'registration_token' | 'grant' | 'token' | 'session';
  id: string;
  label?: string | undefined;
}

export type AuditDetails = Record<string, string | number | boolean | string[]>;

export interface AuditEvent {
  id: string;
  at: Date;
  /** Namespaced verb, e.g. `sign_in.password`, `client.created`, `token.issued`. */
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

export type AuditInput = Omit<AuditEvent, 'id' | 'at'> & { at?: Date };

export interface AuditFilter {
  /** Actor id or label (exact). */
  actor?: string | undefined;
  /** Exact action, or a prefix ending in `.` (e.g. `client.`). */
  action?: string | undefined;
  /** Target id (exact). */
  target?: string | undefined;
  outcome?: AuditOutcome | undefined;
  clientId?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
}

export interface AuditPage {
  events: AuditEvent[];
  /** Pass back as `cursor` for the next (older) page; absent on the last page. */
  nextCursor?: string | undefined;
}

export interface AuditService {
  /** Records an event. Never throws: an audit write failing must not fail the action (it is logged). */
  record(input: AuditInput): Promise<void>;
  /** Newest first. */
  list(filter: AuditFilter, page: { limit: number; cursor?: string | undefined }): Promise<AuditPage>;
  /** Every matching event, newest first, as JSON lines. */
  exportJsonl(filter: AuditFilter): AsyncIterable<string>;
  ensureIndexes(): Promise<void>;
  /** Deletes events past retention (servers without TTL indexes). */
  sweep(now?: Date): Promise<number>;
}

interface AuditRecord {
  /** Sortable: `<ms since epoch, 13 digits>-<random>`, so `_id` order is time order. */
  _id: string;
  at: Date;
  expiresAt: Date;
  action: string;
  outcome: AuditOutcome;
  actor: AuditActor;
  target?: AuditTarget | undefined;
  clientId?: string | undefined;
  ip?: string | undefined;
  userAgent?: string | undefined;
  reason?: string | undefined;
  details?: AuditDetails | undefined;
}

export const AUDIT_COLLECTION = 'audit_events';

function newId(at: Date): string {
  return `${String(at.getTime()).padStart(13, '0')}-${randomBytes(6).toString('hex')}`;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Keeps details to short scalars: nothing large, nothing nested. */
function cleanDetails(details: AuditDetails | undefined): AuditDetails | undefined {
  if (!details) return undefined;
  const out: AuditDetails = {};
  for (const [key, value] of Object.entries(details)) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,40}$/.test(key)) continue;
    if (typeof value === 'string') out[key] = value.slice(0, 200);
    else if (Array.isArray(value)) out[key] = value.slice(0, 20).map((v) => String(v).slice(0, 200));
    else out[key] = value;
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

export function createAuditService(deps: { db: mongo.Db; logger: Logger; retentionDays: number; now?: () => number }): AuditService {
  const { db, logger, retentionDays, now = Date.now } = deps;
  const collection = db.collection<AuditRecord>(AUDIT_COLLECTION);

  const query = (filter: AuditFilter): mongo.Filter<AuditRecord> => {
    const q: mongo.Filter<AuditRecord> = {};
    const and: mongo.Filter<AuditRecord>[] = [];
    if (filter.actor) and.push({ $or: [{ 'actor.id': filter.actor }, { 'actor.label': filter.actor.toLowerCase() }, { 'actor.label': filter.actor }] });
    if (filter.action) {
      if (filter.action.endsWith('.')) and.push({ action: { $regex: `^${escapeRegex(filter.action)}` } });
      else and.push({ action: filter.action });
    }
    if (filter.target) and.push({ 'target.id': filter.target });
    if (filter.outcome) and.push({ outcome: filter.outcome });
    if (filter.clientId) and.push({ clientId: filter.clientId });
    if (filter.from || filter.to) {
      // `_id` starts with the time, so a range on `_id` is a range on time (and uses the _id index).
      const range: { $gte?: string; $lt?: string } = {};
      if (filter.from) range.$gte = String(filter.from.getTime()).padStart(13, '0');
      if (filter.to) range.$lt = `${String(filter.to.getTime()).padStart(13, '0')}~`;
      and.push({ _id: range });
    }
    if (and.length > 0) q.$and = and;
    return q;
  };

  return {
    async record(input) {
      const at = input.at ?? new Date(now());
      const request = currentRequest();
      const record: AuditRecord = {
        _id: newId(at),
        at,
        expiresAt: new Date(at.getTime() + retentionDays * 24 * 60 * 60 * 1000),
        action: input.action,
        outcome: input.outcome,
        actor: { type: input.actor.type, ...(input.actor.id ? { id: input.actor.id } : {}), ...(input.actor.label ? { label: input.actor.label } : {}) },
      };
      if (input.target) record.target = input.target;
      if (input.clientId) record.clientId = input.clientId;
      const ip = input.ip ?? request?.ip;
      const userAgent = input.userAgent ?? request?.userAgent;
      if (ip) record.ip = ip;
      if (userAgent) record.userAgent = userAgent.slice(0, 300);
      if (input.reason) record.reason = input.reason.slice(0, 100);
      const details = cleanDetails(input.details);
      if (details) record.details = details;
      try {
        await collection.insertOne(record);
      } catch (err) {
        logger.warn('audit event not recorded', { action: input.action, reason: (err as Error).message });
      }
    },

    async list(filter, page) {
      const limit = Math.min(Math.max(page.limit, 1), 500);
      const q = query(filter);
      if (page.cursor) q.$and = [...(q.$and ?? []), { _id: { $lt: page.cursor } }];
      const records = await collection.find(q).sort({ _id: -1 }).limit(limit + 1).toArray();
      const events = records.slice(0, limit).map(toEvent);
      const last = events.at(-1);
      return records.length > limit && last ? { events, nextCursor: last.id } : { events };
    },

    async *exportJsonl(filter) {
      let cursor: string | undefined;
      for (;;) {
        const page = await this.list(filter, { limit: 500, cursor });
        for (const event of page.events) yield `${JSON.stringify(event)}\n`;
        if (!page.nextCursor) return;
        cursor = page.nextCursor;
      }
    },

    async ensureIndexes() {
      try {
        await collection.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'expiresAt_ttl' });
      } catch {
        // No TTL indexes (FerretDB 1.x): the periodic sweep applies the retention.
        await collection.createIndex({ expiresAt: 1 }, { name: 'expiresAt_1' });
      }
      await collection.createIndex({ 'actor.id': 1, _id: -1 });
      await collection.createIndex({ 'target.id': 1, _id: -1 });
      await collection.createIndex({ action: 1, _id: -1 });
    },

    async sweep(at = new Date(now())) {
      const result = await collection.deleteMany({ expiresAt: { $lte: at } });
      return result.deletedCount;
    },
  };
}
