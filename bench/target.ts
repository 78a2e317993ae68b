/**
 * A benchmark target: a server in a child process (so that the load generator's CPU is never
 * counted as the server's), with the request/answer channel to its probe (child-probe.ts), and
 * the CPU time of the database processes it uses when the bench started them itself.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { FromChild, ProbeSample, SetupInput, SetupOutput, ToChild } from './protocol.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const START_TIMEOUT_MS = 120_000;

export type TargetKind = 'ours' | 'bare';

export interface TargetSpec {
  /** Short id used in the results: `ours`, `ours-mongodb`, `bare`. */
  id: string;
  kind: TargetKind;
  /** What the table says about it. */
  label: string;
  /** Environment for the child, besides PORT (and NODE_ENV, always production); `{PORT}` in a value is replaced by the port. */
  env: Record<string, string>;
  /** A folder whose processes (and their children) are the database this target uses, to read their CPU time. */
  databaseDir?: string;
}

export interface Target {
  spec: TargetSpec;
  port: number;
  pid: number;
  setup(input: SetupInput): Promise<SetupOutput>;
  sample(): Promise<ProbeSample>;
  /** CPU ms of the database processes so far (undefined when the database is not ours to watch). */
  databaseCpuMs(): number | undefined;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startTarget(spec: TargetSpec, log: (line: string) => void): Promise<Target> {
  const port = await freePort();
  const script = path.join(here, spec.kind === 'ours' ? 'server-process.ts' : 'bare-provider-process.ts');
  const child: ChildProcess = fork(script, [], {
    cwd: root,
    execArgv: ['--import', 'tsx'],
    // `{PORT}` in a value (ISSUER) is the port chosen here.
    env: { ...process.env, ...Object.fromEntries(Object.entries(spec.env).map(([k, v]) => [k, v.replaceAll('{PORT}', String(port))])), NODE_ENV: 'production', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim()) log(`[${spec.id}] ${line}`);
    });
  }

  let nextId = 1;
  const pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>();
  let exited = false;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${spec.id} did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    child.on('message', (raw: unknown) => {
      const message = raw as FromChild;
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve();
        return;
      }
      const waiting = pending.get(message.id);
      if (!waiting) return;
      pending.delete(message.id);
      if (message.type === 'result') waiting.resolve(message.value);
      else waiting.reject(new Error(`${spec.id}: ${message.message}`));
    });
    child.once('exit', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      const err = new Error(`${spec.id} exited (${signal ?? `code ${code}`})`);
      reject(err);
      for (const waiting of pending.values()) waiting.reject(err);
      pending.clear();
    });
  });
  await ready;

  const call = <T>(message: Omit<ToChild, 'id'> & Partial<Pick<ToChild, 'id'>>): Promise<T> => {
    if (exited) return Promise.reject(new Error(`${spec.id} is not running`));
    const id = nextId;
    nextId += 1;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: (v) => resolve(v as T), reject });
      child.send({ ...message, id });
    });
  };

  return {
    spec,
    port,
    pid: child.pid ?? 0,
    setup: (input) => call<SetupOutput>({ type: 'setup', input } as ToChild),
    sample: () => call<ProbeSample>({ type: 'sample' } as ToChild),
    databaseCpuMs: () => (spec.databaseDir ? processTreeCpuMs(spec.databaseDir) : undefined),
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      await call({ type: 'stop' } as ToChild).catch(() => undefined);
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(kill);
    },
  };
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime (own threads), in ticks. */
  own: number;
  /** cutime + cstime (children that exited and were waited for), in ticks. */
  reaped: number;
}

function readStat(pid: string): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: fields are counted after its closing paren.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const num = (i: number) => Number(fields[i - 3]);
    return { pid: Number(pid), ppid: num(4), own: num(14) + num(15), reaped: num(16) + num(17) };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (ms) of the processes whose command line names `dir`, and of their live descendants
 * (PostgreSQL's backends), plus what their exited children left in their accounts. Linux only.
 */
function processTreeCpuMs(dir: string): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return undefined;
  }
  const stats = new Map<number, ProcStat>();
  const roots = new Set<number>();
  for (const pid of entries) {
    const stat = readStat(pid);
    if (!stat) continue;
    stats.set(stat.pid, stat);
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) roots.add(stat.pid);
    } catch {
      // gone meanwhile
    }
  }
  if (roots.size === 0) return undefined;
  let ticks = 0;
  for (const stat of stats.values()) {
    let ancestor: number | undefined = stat.pid;
    for (let depth = 0; ancestor !== undefined && depth < 5; depth += 1) {
      if (roots.has(ancestor)) {
        ticks += stat.own + (ancestor === stat.pid ? stat.reaped : 0);
        break;
      }
      ancestor = stats.get(ancestor)?.ppid;
    }
  }
  return (ticks * 1000) / ticksPerSecond();
}
