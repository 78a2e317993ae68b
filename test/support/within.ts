import { performance } from 'node:perf_hooks';

/**
 * Asks `check` until it holds, for at most `deadlineMs`; returns how long it took. For changes
 * another node (or a background loop) makes on its own schedule: it never sleeps past a success.
 */
export async function within(deadlineMs: number, check: () => Promise<boolean>, intervalMs = 20): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    const elapsed = performance.now() - started;
    if (elapsed > deadlineMs) throw new Error(`not within ${deadlineMs} ms (waited ${Math.round(elapsed)} ms)`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
