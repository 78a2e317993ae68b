/**
 * Time as a dependency: every service that reads the time for its own records (expiry of codes,
 * limits, tokens, secret grace periods, audit timestamps) asks the clock it was given, so tests
 * move time instead of sleeping. NOTE: oidc-provider reads the system time itself (token and
 * session lifetimes, auth_time); those never follow this clock.
 */
export interface Clock {
  now(): Date;
  /** Milliseconds since the epoch, as Date.now(). */
  nowMs(): number;
}

export const systemClock: Clock = {
  now: () => new Date(),
  nowMs: () => Date.now(),
};

/** A clock that stands still until it is moved: for tests, and for replaying time in one place. */
export interface ManualClock extends Clock {
  /** Moves the clock forward (or back, with a negative value). */
  advance(ms: number): void;
  set(ms: number | Date): void;
}

export function createManualClock(start: number | Date = Date.now()): ManualClock {
  let current = typeof start === 'number' ? start : start.getTime();
  return {
    now: () => new Date(current),
    nowMs: () => current,
    advance(ms) {
      current += ms;
    },
    set(ms) {
      current = typeof ms === 'number' ? ms : ms.getTime();
    },
  };
}
