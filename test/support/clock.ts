import type { ManualClock } from '../../src/core/clock.js';
import { createManualClock } from '../../src/core/clock.js';

export type TestClock = ManualClock;

/**
 * A clock that moves only when the test moves it. Default start: a UTC midnight about a year
 * ahead of the real clock, not a fixed date, so nothing stored by a test ever looks expired to
 * a later run, and day arithmetic stays exact.
 */
export function createTestClock(start?: number | Date): TestClock {
  const DAY_MS = 24 * 60 * 60 * 1000;
  return createManualClock(start ?? (Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS);
}
