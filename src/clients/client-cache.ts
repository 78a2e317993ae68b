import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

import type { mongo } from 'mongoose';

import { isDuplicateKey } from '../db/claims.js';
import type { Logger } from '../logging/logger.js';

/**
 * A per-node memory cache that stays correct across nodes without change streams (FerretDB has
 * none, and a standalone MongoDB neither): every write to the cached collection sets a random
 * stamp in one small document AFTER the write itself, and every serving node reads that document
 * every `pollIntervalMs` (one command per interval per node, never per request) and drops its
 * whole cache when the stamp moved.
 *
 * Why a change is honoured on every node within about one poll interval: a write completed at W
 * sets the stamp after W; any poll sent after that sees the new stamp and clears. An entry is
 * served only while a poll sent at most `trustMs` ago confirmed the stamp (a stalled event loop,
 * a slow or failed poll, or a process that does not poll at all, like the command line, reads the
 * database instead), and a load that was already in flight when the cache was cleared is not
 * stored (generations). Each entry also has a maximum age, a safety net should a stamp write be
 * lost after its change was stored.
 *
 * NOTE: the stamp is a random value set with `$set`, never a counter: FerretDB 1.x applies `$inc`
 * as a separate read and write, so two racing increments could leave the value unchanged.
 * Negative lookups are not cached: a client created on one node must be usable on the next at once.
 */

export const CACHE_STAMPS_COLLECTION = 'cache_stamps';

/** How often a node reads the stamp; a change reaches every node in about this time. */
export const CACHE_POLL_INTERVAL_MS = 400;
/** An entry is served only while the stamp was confirmed this recently. */
export const CACHE_TRUST_MS = 900;
/** The safety net: no entry lives longer, stamp or not. */
export const CACHE_MAX_AGE_MS = 60_000;

interface StampDocument {
  _id: string;
  stamp: string;
  at: Date;
}

export interface StampedCacheOptions {
  /** The database (a getter: the client service finds it lazily). */
  db: () => mongo.Db;
  /** The stamp document's `_id`, e.g. `clients`. */
  name: string;
  logger?: Logger | undefined;
  pollIntervalMs?: number;
  trustMs?: number;
  maxAgeMs?: number;
}

export interface StampedCache<T> {
  /** The cached value while it is trustworthy, else `load()` (stored when it found something). */
  get(key: string, load: () => Promise<T | undefined>): Promise<T | undefined>;
  /** The cached value while it is trustworthy, without loading. */
  peek(key: string): T | undefined;
  /**
   * After a write (awaited, AFTER the write itself): drops this node's cache at once and sets a
   * new stamp for the others. Never throws: a lost stamp is logged, and the maximum age bounds it.
   */
  changed(): Promise<void>;
  /** Reads the stamp once (the poller calls this; tests may too). */
  poll(): Promise<void>;
  /** Polls in the background until stop(); the timer never keeps the process alive. */
  start(): void;
  stop(): void;
}

interface Entry<T> {
  value: T;
  loadedAt: number;
}

export function createStampedCache<T>(options: StampedCacheOptions): StampedCache<T> {
  const { name, logger } = options;
  const pollIntervalMs = options.pollIntervalMs ?? CACHE_POLL_INTERVAL_MS;
  const trustMs = options.trustMs ?? CACHE_TRUST_MS;
  const maxAgeMs = options.maxAgeMs ?? CACHE_MAX_AGE_MS;
  // Monotonic: the services' clock may be a test clock that stands still or jumps.
  const now = () => performance.now();
  const stamps = () => options.db().collection<StampDocument>(CACHE_STAMPS_COLLECTION);

  const entries = new Map<string, Entry<T>>();
  const loading = new Map<string, Promise<T | undefined>>();
  let generation = 0;
  /** The stamp last seen; undefined before the first poll (then any stamp counts as a change). */
  let seen: string | null | undefined;
  /** When the last poll that confirmed the stamp was sent; -Infinity: never. */
  let confirmedAt = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let polling: Promise<void> | undefined;
  let failing = false;

  const clear = () => {
    generation += 1;
    entries.clear();
    loading.clear();
  };

  const trusted = () => now() - confirmedAt <= trustMs;

  const fresh = (key: string): Entry<T> | undefined => {
    if (!trusted()) return undefined;
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (now() - entry.loadedAt > maxAgeMs) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };

  const readStamp = async () => {
    const sentAt = now();
    const doc = await stamps().findOne({ _id: name }, { projection: { stamp: 1 } });
    const stamp = doc?.stamp ?? null;
    if (stamp !== seen) {
      clear();
      seen = stamp;
    }
    // Only a poll sent after the last clear may vouch for entries loaded since.
    confirmedAt = Math.max(confirmedAt, sentAt);
    if (failing) logger?.info('cache stamp readable again', { cache: name });
    failing = false;
  };

  const poll = (): Promise<void> => {
    polling ??= readStamp()
      .catch((err: unknown) => {
        // Not trusted until a poll works again (entries age out of trust within trustMs).
        if (!failing && running) logger?.warn('cache stamp unreadable; reading from the database until it is', { cache: name, reason: (err as Error).message });
        failing = true;
      })
      .finally(() => {
        polling = undefined;
      });
    return polling;
  };

  const schedule = () => {
    if (!running) return;
    timer = setTimeout(() => {
      void poll().finally(schedule);
    }, pollIntervalMs);
    timer.unref();
  };

  const writeStamp = async (doc: StampDocument) => {
    try {
      await stamps().updateOne({ _id: doc._id }, { $set: { stamp: doc.stamp, at: doc.at } }, { upsert: true });
    } catch (err) {
      // Two first writers racing to create the document: the loser's update then finds it.
      if (!isDuplicateKey(err)) throw err;
      await stamps().updateOne({ _id: doc._id }, { $set: { stamp: doc.stamp, at: doc.at } });
    }
  };

  return {
    async get(key, load) {
      const entry = fresh(key);
      if (entry) return entry.value;
      const inFlight = loading.get(key);
      if (inFlight) return inFlight;
      const startedIn = generation;
      const promise = load().then((value) => {
        // A clear while this load was in flight may have been about what it read: not stored.
        if (startedIn === generation) {
          loading.delete(key);
          if (value !== undefined) entries.set(key, { value, loadedAt: now() });
        }
        return value;
      });
      loading.set(key, promise);
      promise.catch(() => {
        if (loading.get(key) === promise) loading.delete(key);
      });
      return promise;
    },

    peek(key) {
      return fresh(key)?.value;
    },

    async changed() {
      clear();
      try {
        // NOTE: never set `seen` to this stamp: a change another node stamped just before this
        // one would then go unnoticed here; the next poll clears once more instead.
        await writeStamp({ _id: name, stamp: randomBytes(12).toString('base64url'), at: new Date() });
      } catch (err) {
        logger?.warn('cache stamp not written; other nodes see the change when their entries age out', {
          cache: name,
          maxAgeMs,
          reason: (err as Error).message,
        });
      }
    },

    poll,

    start() {
      if (running) return;
      running = true;
      void poll().finally(schedule);
    },

    stop() {
      running = false;
      clearTimeout(timer);
      timer = undefined;
      confirmedAt = Number.NEGATIVE_INFINITY;
      clear();
    },
  };
}
