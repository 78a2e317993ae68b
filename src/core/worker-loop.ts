import type { Logger } from '../logging/logger.js';

/**
 * A polling worker that runs one pass at a time (the mail outbox's and the back-channel logout's
 * delivery workers). A pass starts on the timer, or when a caller that has just stored work kicks
 * the loop; a kick during a pass runs one more pass after it, so work stored mid-pass is never left
 * for the next tick and two passes never overlap. Only a started loop runs passes: an instance that
 * only stores work (a CLI, say) leaves delivery to the nodes whose workers run.
 */
export interface WorkerLoop {
  /** Runs a pass unless one is running (then one more runs after it); nothing before start(). */
  kick(): void;
  /** Starts polling every intervalMs, and a pass right away. */
  start(): void;
  /** Stops polling and waits for the passes and the tracked work in flight. */
  stop(): Promise<void>;
  /** Work outside a pass that stop() must wait for (an urgent send, say). */
  track<T>(promise: Promise<T>): Promise<T>;
  /** True once stop() is called: a pass under way takes no further work. */
  readonly stopped: boolean;
}

export function createWorkerLoop(options: {
  /** One pass over the due work. */
  pass: () => Promise<unknown>;
  intervalMs: number;
  logger: Logger;
  /** Logged (with the error's message) when a pass throws; the loop goes on. */
  failureMessage: string;
}): WorkerLoop {
  const { pass, intervalMs, logger, failureMessage } = options;
  const inFlight = new Set<Promise<unknown>>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let again = false;
  let stopped = false;

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise)).catch(() => undefined);
    return promise;
  };

  const kick = () => {
    if (stopped || !timer) return;
    if (running) {
      again = true;
      return;
    }
    running = track(pass())
      .catch((err: unknown) => {
        logger.warn(failureMessage, { reason: err instanceof Error ? err.message : String(err) });
        return 0;
      })
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          kick();
        }
      });
  };

  return {
    kick,
    track,
    get stopped() {
      return stopped;
    },
    start() {
      if (timer || stopped) return;
      timer = setInterval(kick, intervalMs);
      timer.unref();
      kick();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * Shuffles the due items in place (Fisher–Yates) and returns them: nodes polling together would
 * otherwise all race for the same first item.
 */
export function shuffleDue<T>(due: T[]): T[] {
  for (let i = due.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [due[i], due[j]] = [due[j] as T, due[i] as T];
  }
  return due;
}

/** Observers of a worker's outcomes (the metrics): one that throws never breaks the work. */
export interface OutcomeListeners<T> {
  add(listener: (outcome: T) => void): void;
  notify(outcome: T): void;
}

export function createOutcomeListeners<T>(): OutcomeListeners<T> {
  const listeners: ((outcome: T) => void)[] = [];
  return {
    add(listener) {
      listeners.push(listener);
    },
    notify(outcome) {
      for (const listener of listeners) {
        try {
          listener(outcome);
        } catch {
          // An observer (metrics) must never break delivery.
        }
      }
    },
  };
}
