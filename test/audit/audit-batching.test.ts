/**
 * The audit log's writes off the request path: batched inserts, nothing lost on a clean
 * shutdown, a hard cap on what waits in memory, failed batches retried a few times.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mongo } from 'mongoose';
import type { Connection } from 'mongoose';

import type { AuditService, UntypedAuditInput } from '../../src/audit/audit.service.js';
import { AUDIT_COLLECTION, createAuditService } from '../../src/audit/audit.service.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';
import { startTestServer } from '../support/test-server.js';

const quiet = createLogger({ level: 'error', format: 'json', write: () => {} });

const event = (action: string): UntypedAuditInput => ({ action, outcome: 'success', actor: { type: 'system' } });

describe('audit batching', () => {
  let connection: Connection;
  let db: mongo.Db;
  /** Insert commands the driver sent to the audit collection since the last reset. */
  let inserts = 0;

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('audit_batching'), quiet, { monitorCommands: true });
    db = connection.db!;
    connection.getClient().on('commandStarted', (e: mongo.CommandStartedEvent) => {
      if (e.commandName === 'insert' && (e.command as { insert?: unknown }).insert === AUDIT_COLLECTION) inserts += 1;
    });
  });

  afterAll(async () => {
    await db?.dropDatabase();
    await connection?.close();
  });

  const stored = (prefix: string) => db.collection(AUDIT_COLLECTION).countDocuments({ action: { $regex: `^${prefix}` } });

  it('batches: 1,000 background events are a handful of inserts, and are all stored', async () => {
    const audit = createAuditService({ db, logger: quiet, retentionDays: 30 });
    inserts = 0;
    for (let i = 0; i < 1000; i += 1) audit.recordInBackground(event(`bg.e${i}`) as never);
    await audit.flush();
    expect(await stored('bg.')).toBe(1000);
    // 200 per batch: 5 full ones (a timer flush may split one).
    expect(inserts).toBeGreaterThanOrEqual(5);
    expect(inserts).toBeLessThanOrEqual(7);
  });

  it('100 awaited records at once share their inserts (group commit), each resolving once stored', async () => {
    const audit = createAuditService({ db, logger: quiet, retentionDays: 30 });
    inserts = 0;
    await Promise.all(Array.from({ length: 100 }, (_, i) => audit.record(event(`together.e${i}`))));
    expect(await stored('together.')).toBe(100);
    expect(inserts).toBeLessThanOrEqual(3);
  });

  it('background events wait for the flush interval (not written per event), and list() writes them first', async () => {
    const audit = createAuditService({ db, logger: quiet, retentionDays: 30, batching: { flushIntervalMs: 60_000 } });
    inserts = 0;
    for (let i = 0; i < 5; i += 1) audit.recordInBackground(event(`later.e${i}`) as never);
    await new Promise((resolve) => setImmediate(resolve));
    expect(inserts).toBe(0);
    expect(audit.stats()).toEqual({ buffered: 5, inFlight: 0, held: 0 });
    const { events } = await audit.list({ action: 'later.' }, { limit: 10 });
    expect(events).toHaveLength(5);
    expect(inserts).toBe(1);
  });

  it('the cap holds: past it, record() waits for the batch in flight (nothing dropped, the buffer never larger)', async () => {
    const audit: AuditService = createAuditService({ db, logger: quiet, retentionDays: 30, batching: { maxBuffered: 20, batchSize: 5, flushIntervalMs: 60_000 } });
    let largest = 0;
    const watch = setInterval(() => (largest = Math.max(largest, audit.stats().buffered)), 1);
    try {
      const written = Array.from({ length: 200 }, (_, i) => audit.record(event(`capped.e${i}`)));
      // Synchronously: 5 went out in the first batch (at most), 20 wait, the rest is held back.
      const stats = audit.stats();
      expect(stats.buffered).toBe(20);
      expect(stats.held).toBeGreaterThanOrEqual(175);
      expect(audit.backPressure()).toBeInstanceOf(Promise);
      await Promise.all(written);
    } finally {
      clearInterval(watch);
    }
    expect(largest).toBeLessThanOrEqual(20);
    expect(audit.stats()).toEqual({ buffered: 0, inFlight: 0, held: 0 });
    expect(audit.backPressure()).toBeUndefined();
    expect(await stored('capped.')).toBe(200);
  });

  it('a failed batch is retried a limited number of times, then logged once per event (never thrown)', async () => {
    const warnings: string[] = [];
    const logger = createLogger({ level: 'warn', format: 'json', write: (line) => warnings.push(line) });
    // A real driver against a port nothing listens on: every attempt fails.
    const unreachable = new mongo.MongoClient('mongodb://127.0.0.1:1/audit_down', { serverSelectionTimeoutMS: 100 });
    try {
      const audit = createAuditService({ db: unreachable.db(), logger, retentionDays: 30, batching: { maxAttempts: 3, flushIntervalMs: 10 } });
      await expect(Promise.all([audit.record(event('refused.one')), audit.record(event('refused.two'))])).resolves.toEqual([undefined, undefined]);
      await audit.flush();
      expect(audit.stats()).toEqual({ buffered: 0, inFlight: 0, held: 0 });
    } finally {
      await unreachable.close();
    }
    expect(warnings.map((w) => JSON.parse(w) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ msg: 'audit event not recorded', action: 'refused.one', attempts: 3, error: 'MongoServerSelectionError' }),
      expect.objectContaining({ msg: 'audit event not recorded', action: 'refused.two', attempts: 3, error: expect.any(String) }),
    ]);
  });

  it('a clean shutdown loses nothing: events recorded in the background right before close() are read back by a fresh service', async () => {
    const server = await startTestServer('audit_batching_shutdown');
    const mongoUri = server.mongoUri;
    for (let i = 0; i < 750; i += 1) server.deps.audit.recordInBackground(event(`shutdown.e${i}`) as never);
    void server.deps.audit.record(event('shutdown.last'));
    await server.close();

    const again = await connectDatabase(mongoUri, quiet);
    try {
      const fresh = createAuditService({ db: again.db!, logger: quiet, retentionDays: 30 });
      let count = 0;
      for await (const line of fresh.exportJsonl({ action: 'shutdown.' })) if (line) count += 1;
      expect(count).toBe(751);
    } finally {
      await again.db!.dropDatabase();
      await again.close();
    }
  });
});
