/**
 * FerretDB on SQLite refuses a write that meets another write's lock ("database is locked")
 * instead of waiting: the limiter's idempotent steps run again rather than failing the request.
 */
import { describe, expect, it } from '@jest/globals';

import { isLockContention, retryOnLockContention } from '../../src/db/lock-contention.js';

/** The error FerretDB's SQLite handler sends, as the driver raises it. */
function lockedError(): Error {
  return Object.assign(new Error('database is locked (5) (SQLITE_BUSY)'), { name: 'MongoServerError', code: 1 });
}

describe('lock contention', () => {
  it('recognises the SQLite lock error, also as a cause, and nothing else', () => {
    expect(isLockContention(lockedError())).toBe(true);
    expect(isLockContention(new Error('bulk write failed', { cause: lockedError() }))).toBe(true);
    expect(isLockContention(new Error('E11000 duplicate key error'))).toBe(false);
    expect(isLockContention('database is locked')).toBe(false);
    expect(isLockContention(undefined)).toBe(false);
  });

  it('runs the operation again while the database is locked, and returns its result', async () => {
    let calls = 0;
    const result = await retryOnLockContention(async () => {
      calls += 1;
      if (calls < 3) throw lockedError();
      return 'done';
    });
    expect(result).toBe('done');
    expect(calls).toBe(3);
  });

  it('gives up after six tries with the lock error itself', async () => {
    let calls = 0;
    await expect(
      retryOnLockContention(async () => {
        calls += 1;
        throw lockedError();
      }),
    ).rejects.toThrow(/database is locked/);
    expect(calls).toBe(6);
  });

  it('never repeats an operation that failed for another reason', async () => {
    let calls = 0;
    await expect(
      retryOnLockContention(async () => {
        calls += 1;
        throw new Error('E11000 duplicate key error');
      }),
    ).rejects.toThrow(/E11000/);
    expect(calls).toBe(1);
  });
});
