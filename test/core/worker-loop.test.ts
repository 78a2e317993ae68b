/**
 * The polling loop the mail outbox and the back-channel logout share: one pass at a time, a kick
 * during a pass runs exactly one more, nothing runs before start() or after stop(), and stop()
 * waits for the work in flight.
 */
import { describe, expect, it } from '@jest/globals';

import { createOutcomeListeners, createWorkerLoop, shuffleDue } from '../../src/core/worker-loop.js';
import { createLogger } from '../../src/logging/logger.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function loggedLines(): { lines: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { lines, logger };
}

describe('createWorkerLoop', () => {
  it('runs nothing before start(), a pass at once on start(), and one more pass for any number of kicks during one', async () => {
    const { logger } = loggedLines();
    const gates: ReturnType<typeof deferred>[] = [];
    let running = 0;
    let overlapped = false;
    const loop = createWorkerLoop({
      pass: async () => {
        running += 1;
        if (running > 1) overlapped = true;
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
        running -= 1;
      },
      intervalMs: 60_000,
      logger,
      failureMessage: 'pass failed',
    });

    loop.kick();
    await settle();
    expect(gates).toHaveLength(0);

    loop.start();
    expect(gates).toHaveLength(1);
    loop.kick();
    loop.kick();
    loop.kick();
    expect(gates).toHaveLength(1);
    gates[0]?.resolve();
    await settle();
    // The three kicks during the first pass ran one pass after it, not three, and not alongside it.
    expect(gates).toHaveLength(2);
    gates[1]?.resolve();
    await settle();
    expect(gates).toHaveLength(2);
    expect(overlapped).toBe(false);
    await loop.stop();
  });

  it('logs a failed pass and goes on with the next kick', async () => {
    const { lines, logger } = loggedLines();
    let passes = 0;
    const loop = createWorkerLoop({
      pass: async () => {
        passes += 1;
        if (passes === 1) throw new Error('database away');
      },
      intervalMs: 60_000,
      logger,
      failureMessage: 'the pass failed',
    });
    loop.start();
    await settle();
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', msg: 'the pass failed', reason: 'database away' })]);
    loop.kick();
    await settle();
    expect(passes).toBe(2);
    await loop.stop();
  });

  it('stop() waits for the pass and the tracked work in flight, and nothing runs after it', async () => {
    const { logger } = loggedLines();
    const gate = deferred();
    const tracked = deferred();
    let passes = 0;
    const loop = createWorkerLoop({
      pass: async () => {
        passes += 1;
        await gate.promise;
      },
      intervalMs: 60_000,
      logger,
      failureMessage: 'pass failed',
    });
    loop.start();
    void loop.track(tracked.promise);
    expect(loop.stopped).toBe(false);
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    expect(loop.stopped).toBe(true);
    await settle();
    expect(stopped).toBe(false);
    gate.resolve();
    await settle();
    expect(stopped).toBe(false);
    tracked.resolve();
    await stopping;
    expect(stopped).toBe(true);

    loop.kick();
    loop.start();
    await settle();
    expect(passes).toBe(1);
  });
});

describe('shuffleDue', () => {
  it('keeps every item, in place', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const same = shuffleDue(items);
    expect(same).toBe(items);
    expect([...items].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});

describe('createOutcomeListeners', () => {
  it('tells every listener, even after one throws', () => {
    const listeners = createOutcomeListeners<string>();
    const heard: string[] = [];
    listeners.add(() => {
      throw new Error('broken observer');
    });
    listeners.add((outcome) => heard.push(outcome));
    expect(() => listeners.notify('sent')).not.toThrow();
    expect(heard).toEqual(['sent']);
  });
});
