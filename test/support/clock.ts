import type { Clock, ManualClock } from '../../src/core/clock.js';
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

function isManual(clock: Clock): clock is ManualClock {
  return typeof (clock as Partial<ManualClock>).advance === 'function';
}

/**
 * Lets `ms` pass on `clock`: a test clock is moved at once; the system's clock (a server built
 * without a test clock) can only be waited for.
 */
export async function passTime(clock: Clock, ms: number): Promise<void> {
  if (ms <= 0) return;
  if (isManual(clock)) clock.advance(ms);
  else await new Promise<void>((resolve) => setTimeout(resolve, ms));
}
