import type { mongo } from 'mongoose';

import { CACHE_STAMPS_COLLECTION } from '../../src/clients/client-cache.js';
import type { TestServer } from './test-server.js';

/**
 * Counts the database commands a server sends, for budget tests ("a client_credentials token
 * costs at most 1 command"). The server must be started with `monitorCommands: true`.
 *
 * Counts are machine-independent: they say how many round trips a request costs, never how long
 * they took. Commands the driver sends on its own (handshakes, heartbeats, `endSessions`) are
 * not counted.
 */

export interface SeenCommand {
  /** `find`, `insert`, `update`, `delete`, `aggregate`, `count`, `findAndModify`, … */
  name: string;
  collection: string;
  /**
   * For reads and writes that name one record: `<collection>:<_id>` (find with `filter._id`, an
   * update or delete whose first statement selects one `_id`); otherwise undefined.
   */
  record?: string;
  /** The command's filter (find, count, delete and update's first statement), for messages. */
  filter?: unknown;
}

export interface CommandCounter {
  /** Commands seen since the last reset, oldest first. */
  readonly commands: readonly SeenCommand[];
  count(): number;
  /** How many of the seen commands touched each collection, e.g. `{ oidc_session: 2 }`. */
  byCollection(): Record<string, number>;
  /** Records read (found by `_id`) more than once since the last reset, with how many times. */
  repeatedReads(): Record<string, number>;
  /** One line per command, for a failed expectation's message. */
  describe(): string;
  reset(): void;
  /** Runs `work` on a fresh count and returns what it sent alongside its result. */
  measure<T>(work: () => Promise<T>): Promise<{ result: T; commands: SeenCommand[] }>;
  stop(): void;
}

const IGNORED = new Set(['hello', 'isMaster', 'ismaster', 'ping', 'endSessions', 'buildInfo', 'saslStart', 'saslContinue', 'getMore', 'killCursors']);

function idOf(filter: unknown): string | undefined {
  if (!filter || typeof filter !== 'object') return undefined;
  const id = (filter as { _id?: unknown })._id;
  if (typeof id === 'string' || typeof id === 'number') return String(id);
  if (id && typeof id === 'object' && 'toHexString' in id && typeof (id as { toHexString: unknown }).toHexString === 'function') {
    return (id as { toHexString(): string }).toHexString();
  }
  return undefined;
}

function describeCommand(event: mongo.CommandStartedEvent): SeenCommand | undefined {
  const name = event.commandName;
  if (IGNORED.has(name)) return undefined;
  const command = event.command as Record<string, unknown>;
  const target = command[name];
  const collection = typeof target === 'string' ? target : '';
  let filter: unknown;
  if (name === 'find' || name === 'count' || name === 'findAndModify') filter = command.filter ?? command.query;
  else if (name === 'update') filter = (command.updates as { q?: unknown }[] | undefined)?.[0]?.q;
  else if (name === 'delete') filter = (command.deletes as { q?: unknown }[] | undefined)?.[0]?.q;
  const id = idOf(filter);
  return { name, collection, ...(id !== undefined ? { record: `${collection}:${id}` } : {}), ...(filter !== undefined ? { filter } : {}) };
}

export function countCommands(server: TestServer): CommandCounter {
  const client = server.connection.getClient();
  let commands: SeenCommand[] = [];
  const listener = (event: mongo.CommandStartedEvent): void => {
    const seen = describeCommand(event);
    if (seen) commands.push(seen);
  };
  client.on('commandStarted', listener);

  const counter: CommandCounter = {
    get commands() {
      return commands;
    },
    count: () => commands.length,
    byCollection() {
      const out: Record<string, number> = {};
      for (const c of commands) out[c.collection] = (out[c.collection] ?? 0) + 1;
      return out;
    },
    repeatedReads() {
      const reads: Record<string, number> = {};
      for (const c of commands) if (c.name === 'find' && c.record) reads[c.record] = (reads[c.record] ?? 0) + 1;
      return Object.fromEntries(Object.entries(reads).filter(([, n]) => n > 1));
    },
    describe: () => commands.map((c) => `${c.name} ${c.collection}${c.filter !== undefined ? ` ${JSON.stringify(c.filter)}` : ''}`).join('\n'),
    reset() {
      commands = [];
    },
    async measure(work) {
      commands = [];
      const result = await work();
      const seen = commands;
      commands = [];
      return { result, commands: seen };
    },
    stop() {
      client.off('commandStarted', listener);
    },
  };
  return counter;
}

/**
 * Resolves when the client cache's next stamp poll (one started after this call) has been
 * answered. Budget tests wait for it: after creating clients (that poll sees their new stamp and
 * drops the cache once), and before a measured request (so that the node trusts its cache).
 * `name` picks another stamped cache's poll (`api_resources`, the API resources' cache).
 */
export function nextStampPoll(server: TestServer, name = 'clients'): Promise<void> {
  return new Promise<void>((resolve) => {
    const client = server.connection.getClient();
    const polls = new Set<number>();
    const started = (event: mongo.CommandStartedEvent): void => {
      // That cache's stamp only: the key ring polls its own stamp in the same collection.
      const filter = event.command.filter as { _id?: unknown } | undefined;
      if (event.commandName === 'find' && event.command.find === CACHE_STAMPS_COLLECTION && filter?._id === name) polls.add(event.requestId);
    };
    const succeeded = (event: mongo.CommandSucceededEvent): void => {
      if (!polls.has(event.requestId)) return;
      client.off('commandStarted', started);
      client.off('commandSucceeded', succeeded);
      resolve();
    };
    client.on('commandStarted', started);
    client.on('commandSucceeded', succeeded);
  });
}
