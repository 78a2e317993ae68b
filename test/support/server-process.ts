/**
 * The server as `npm start` runs it (src/main.ts through tsx), in a child process of its own:
 * nothing it keeps in memory is shared with the test or with another node, as between two
 * machines.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { baseEnv } from './cli.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from './test-server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * tsx's loader (what `node --import tsx` loads), not its command line: `tsx file` runs the file in
 * a second process and only relays signals to it, so a SIGKILL would end the wrapper and leave the
 * server running. With the loader, the process signalled is the server.
 */
const TSX_LOADER = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
const MAIN = path.join(ROOT, 'src/main.ts');

/** How a process ended: its exit code, or the signal that ended it. */
export interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  name: string;
  port: number;
  /** The node itself, bypassing whatever stands in front of it. */
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Whether the process is still running. */
  running(): boolean;
  /** Resolves when the process has ended. */
  ended: Promise<Ended>;
  /** Sends `signal` (default SIGTERM) unless it has ended already, and waits for the end. */
  stop(signal?: NodeJS.Signals): Promise<Ended>;
}

export interface ServerProcessOptions {
  name: string;
  /** The port to listen on: fixed, so that a restarted node takes its predecessor's place. */
  port: number;
  /** The server's settings (ISSUER, MONGODB_URI, DATA_DIR …); NODE_ENV=test and the test keys unless given. */
  env: NodeJS.ProcessEnv;
  /** The working directory (no .env may lie there). */
  cwd: string;
  /** How long the node may take to answer /readyz. Default 60 s (two cold starts on a loaded machine). */
  readyTimeoutMs?: number;
}

/** A port nobody listens on right now (another process could still take it first; fine for tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a node and waits until its /readyz answers 200 (it reaches the database). If it exits or
 * does not get ready in time, it is killed and the error carries its output.
 */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(),
    NODE_ENV: 'test',
    COOKIE_KEYS: TEST_COOKIE_KEY,
    ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
    LOG_LEVEL: 'warn',
    ...options.env,
    PORT: String(options.port),
  };
  const child: ChildProcess = spawn(process.execPath, ['--import', TSX_LOADER, MAIN], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const running = () => child.exitCode === null && child.signalCode === null;
  // Last resort, should the test process end without its afterAll (a crash, a forced exit).
  const killOnExit = () => {
    if (running()) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const ended = new Promise<Ended>((resolve) =>
    child.once('exit', (code, signal) => {
      process.off('exit', killOnExit);
      resolve({ code, signal });
    }),
  );
  const url = `http://127.0.0.1:${options.port}`;

  const node: ServerProcess = {
    name: options.name,
    port: options.port,
    url,
    output: () => output,
    running,
    ended,
    async stop(signal = 'SIGTERM') {
      if (running()) child.kill(signal);
      return ended;
    },
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (!running()) throw new Error(`node ${options.name} exited before it was ready:\n${output}`);
    const status = await fetch(`${url}/readyz`).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200) return node;
    if (Date.now() > deadline) {
      await node.stop('SIGKILL');
      throw new Error(`node ${options.name} not ready within ${options.readyTimeoutMs ?? 60_000} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
