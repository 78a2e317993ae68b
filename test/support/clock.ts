import { jest } from '@jest/globals';

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

/**
 * A clock that runs with the system's, plus however far the test moved it: for suites that need
 * the services' time to pass (a grace period, the next TOTP step) while everything else keeps
 * running in real time (a browser, oidc-provider's sessions).
 */
export function createRunningTestClock(): TestClock {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    nowMs: () => Date.now() + offset,
    advance(ms) {
      offset += ms;
    },
    set(ms) {
      offset = (typeof ms === 'number' ? ms : ms.getTime()) - Date.now();
    },
  };
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

/** The system date of this test file, moved forward on demand (see useMovableSystemDate). */
export interface MovableSystemDate {
  /** Moves `Date` forward by `ms` for everything this test file runs. */
  advance(ms: number): void;
  /** Back to the real `Date` (afterAll). */
  restore(): void;
}

/**
 * oidc-provider takes its time from `Date.now()` itself (it has no clock option): auth_time,
 * max_age, session and token lifetimes. To let that time pass without sleeping, a suite fakes
 * `Date` only, in its own test context: the provider, the services' system clock and
 * openid-client on the relying party's side all run in that context and see the same moved date,
 * which otherwise runs on with real time. Timers, `performance` and the database keep real time.
 *
 * NOTE: only for suites whose time-dependent checks all happen in this process (a browser keeps
 * its own time), and whose server runs on the system clock (a test clock does not follow `Date`).
 */
export function useMovableSystemDate(): MovableSystemDate {
  jest.useFakeTimers({
    // Date alone: timers, microtasks and performance stay real, so the server and the driver run as ever.
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'requestAnimationFrame',
      'cancelAnimationFrame',
      'requestIdleCallback',
      'cancelIdleCallback',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
    ],
    // The faked date keeps running with real time (in 20 ms ticks).
    advanceTimers: true,
    now: Date.now(),
  });
  return {
    advance(ms) {
      jest.setSystemTime(Date.now() + ms);
    },
    restore() {
      jest.useRealTimers();
    },
  };
}
