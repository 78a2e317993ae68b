/**
 * The measuring side of a benchmark target, inside the server's own process: it answers the
 * bench over IPC with this process's CPU time (every thread, argon2's pool included), its peak
 * resident memory since the last sample, and the database commands its driver sent.
 *
 * The bench asks for a sample before and after each scenario; the differences are that
 * scenario's cost. Nothing here runs on a request's path except one counter increment per
 * database command.
 */
import type { Server } from 'node:http';

import type { mongo } from 'mongoose';

import type { ProbeSample, ToChild, FromChild } from './protocol.js';

/** What the driver sends on its own (handshakes, heartbeats, session ends): not the workload's. */
const IGNORED_COMMANDS = new Set(['hello', 'isMaster', 'ismaster', 'ping', 'endSessions', 'buildInfo', 'saslStart', 'saslContinue']);

const RSS_SAMPLE_MS = 50;

export interface ProbeHooks {
  /** Creates what the scenarios need (clients, accounts); its answer goes back to the bench. */
  setup(input: unknown): Promise<unknown>;
  /** Lets deferred work land before a sample (batched audit writes), so it counts where it belongs. */
  settle?(): Promise<void>;
  /** Stops the server and whatever it holds; the process exits after. */
  stop(): Promise<void>;
}

export interface Probe {
  /** Counts the commands this client sends from now on. */
  watch(client: mongo.MongoClient): void;
  /** Counts the requests this server receives, and tells the bench it listens: from then on the bench may send requests. */
  ready(server: Server, port: number): void;
}

function send(message: FromChild): void {
  process.send?.(message);
}

export function startProbe(hooks: ProbeHooks): Probe {
  if (!process.send) throw new Error('a benchmark target runs as a child of the bench (an IPC channel is needed)');
  const commands = new Map<string, number>();
  let total = 0;
  let requests = 0;
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, RSS_SAMPLE_MS);
  sampler.unref();

  const sample = async (): Promise<ProbeSample> => {
    await hooks.settle?.();
    const cpu = process.cpuUsage();
    const rss = process.memoryUsage.rss();
    const result: ProbeSample = {
      cpuMicros: cpu.user + cpu.system,
      rss,
      rssPeak: Math.max(peak, rss),
      requests,
      commands: total,
      commandsByName: Object.fromEntries(commands),
    };
    // The next scenario's peak starts from what is resident now.
    peak = rss;
    return result;
  };

  process.on('message', (raw: unknown) => {
    const message = raw as ToChild;
    const answer = async (): Promise<unknown> => {
      switch (message.type) {
        case 'sample':
          return sample();
        case 'setup':
          return hooks.setup(message.input);
        case 'stop':
          clearInterval(sampler);
          await hooks.stop();
          return null;
        default:
          throw new Error(`unknown request ${(message as { type: string }).type}`);
      }
    };
    answer().then(
      (value) => {
        send({ type: 'result', id: message.id, value });
        if (message.type === 'stop') setTimeout(() => process.exit(0), 50);
      },
      (err: unknown) => send({ type: 'error', id: message.id, message: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    );
  });
  // Ctrl-C reaches the whole process group: the bench stops its targets itself (dropping the
  // scratch database on the way), so this process waits for its word.
  process.on('SIGINT', () => undefined);
  // The bench gone (crashed or killed): the server must not outlive it.
  process.on('disconnect', () => {
    void hooks.stop().finally(() => process.exit(0));
  });

  return {
    watch(client) {
      client.on('commandStarted', (event: mongo.CommandStartedEvent) => {
        if (IGNORED_COMMANDS.has(event.commandName)) return;
        const target = (event.command as Record<string, unknown>)[event.commandName];
        const key = typeof target === 'string' ? `${event.commandName} ${target}` : event.commandName;
        commands.set(key, (commands.get(key) ?? 0) + 1);
        total += 1;
      });
    },
    ready(server, port) {
      server.on('request', () => {
        requests += 1;
      });
      send({ type: 'ready', port });
    },
  };
}
