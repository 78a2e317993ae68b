import mongoose from 'mongoose';
import type { Connection } from 'mongoose';

import type { Logger } from '../logging/logger.js';

/**
 * One Mongoose connection per process, created in main.ts and passed down (no global
 * `mongoose.connect`). The driver reconnects by itself after an outage.
 */
export async function connectDatabase(
  uri: string,
  logger: Logger,
  options: {
    dbName?: string;
    /**
     * Emit the driver's command events: the metrics time commands with them (main.ts turns this on
     * with metrics), tests count commands per request. NOTE: not free: for each command the driver
     * copies the command and deserialises the whole reply once more for the event.
     */
    monitorCommands?: boolean;
  } = {},
): Promise<Connection> {
  const connection = mongoose.createConnection(uri, {
    ...(options.dbName ? { dbName: options.dbName } : {}),
    ...(options.monitorCommands ? { monitorCommands: true } : {}),
    // Fail fast while the database is down, so requests get a 503 within seconds instead
    // of hanging for the driver's default 30 s.
    serverSelectionTimeoutMS: 3000,
    // NOTE: without this, Mongoose queues operations while disconnected and answers after
    // its own buffering timeout; we prefer an immediate, honest 503.
    bufferCommands: false,
    autoIndex: false,
    autoCreate: false,
  });
  connection.on('disconnected', () => logger.warn('database disconnected'));
  connection.on('reconnected', () => logger.info('database reconnected'));
  await connection.asPromise();
  return connection;
}

/** The database name for log lines, without credentials. */
export function describeUri(uri: string): string {
  try {
    const url = new URL(uri);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return 'mongodb';
  }
}
