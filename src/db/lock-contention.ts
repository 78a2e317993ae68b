import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * FerretDB on SQLite answers a write that meets another write's lock with an error ("database is
 * locked", SQLITE_BUSY) instead of waiting for it. Under a burst of concurrent requests this is
 * momentary contention, not a fault: an idempotent operation can simply be run again.
 * NOTE: MongoDB never answers this way; there the retry never runs.
 */
const LOCK_CONTENTION = /database is locked|SQLITE_BUSY/i;

export function isLockContention(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; depth += 1) {
    if (LOCK_CONTENTION.test(e.message)) return true;
    e = (e as Error & { cause?: unknown }).cause;
  }
  return false;
}

const TRIES = 6;
const BASE_DELAY_MS = 5;

/**
 * Runs `operation` again (up to 6 times in all, with growing random pauses: 0–5, 0–10, … 0–80 ms)
 * while it fails with lock contention. Only for operations that are safe to repeat: reads,
 * deletes, and updates that set fixed values.
 */
export async function retryOnLockContention<T>(operation: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await operation();
    } catch (err) {
      if (attempt >= TRIES || !isLockContention(err)) throw err;
      await sleep(randomInt(0, BASE_DELAY_MS * 2 ** (attempt - 1) + 1));
    }
  }
}
