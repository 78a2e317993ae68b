/**
 * Provisions the MongoDB-wire database that development and tests run on when
 * MONGODB_URI is not set: a `mongod` on PATH, else FerretDB (built once from
 * source into a cache folder) on an embedded PostgreSQL or on SQLite (EMBEDDED_DB),
 * else mongodb-memory-server, else a clear error.
 *
 * NOTE: this module must stay loadable as CommonJS too: jest's globalSetup
 * requires it through @swc/jest's CommonJS transform, so no `import.meta` here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import {
  access,
  chmod,
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { homedir, hostname, tmpdir } from 'node:os';
import { basename, delimiter, join, resolve as resolvePath } from 'node:path';
import type * as MemoryServerLib from 'mongodb-memory-server-core';
import mongoose from 'mongoose';

import { defaults } from '../../config/defaults.js';
import { prepareEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';

export type DatabaseKind = 'external' | 'mongod' | 'ferretdb' | 'memory-server';

/** Where FerretDB keeps the data: an embedded PostgreSQL cluster, or SQLite files. */
export type EmbeddedBackend = 'postgres' | 'sqlite';
export const embeddedBackends: readonly EmbeddedBackend[] = ['postgres', 'sqlite'];

export interface ProvisionedDatabase {
  /** mongodb:// URI WITHOUT a database name path, e.g. mongodb://127.0.0.1:41234/ */
  uri: string;
  kind: DatabaseKind;
  /** for kind `ferretdb`: what it stores its data in */
  backend?: EmbeddedBackend;
  /** stop the server process (no-op for external) and wait for exit */
  stop(): Promise<void>;
  /** start it again on the same port and data directory (for "database down then back" tests); throws for external */
  start(): Promise<void>;
}

export interface ProvisionOptions {
  /** server data lives here (created if missing); for `npm start` it is .data/db, for tests a temp dir */
  dataDir: string;
  /** default: a free loopback port */
  port?: number;
  /** progress lines such as "building FerretDB v1.24.2 (once)…" */
  log?: (message: string) => void;
  /**
   * If given: the child's pid is written there, and on start a stale child recorded
   * there is killed (only if it is ferretdb or mongod) — protects against orphans
   * after a crash of the parent. Beside it, `runningDatabaseFile(pidFile)` records
   * `{ pid, uri }` so that another process (the CLI) can find and share the server
   * (findRunningDatabase) instead of starting a second one on the same files.
   */
  pidFile?: string;
  /**
   * FerretDB's storage (default: EMBEDDED_DB's default). If PostgreSQL cannot run here,
   * FerretDB falls back to SQLite with a log line.
   */
  backend?: EmbeddedBackend;
}

/** EMBEDDED_DB for processes that do not load the configuration (jest's globalSetup). */
export function parseEmbeddedBackend(value: string | undefined): EmbeddedBackend {
  const given = value?.trim();
  if (!given) return defaults.embeddedDb;
  const known = embeddedBackends.find((backend) => backend === given);
  if (!known) throw new Error(`EMBEDDED_DB must be one of ${embeddedBackends.join(', ')} (got ${JSON.stringify(given)})`);
  return known;
}

const FERRETDB_MODULE = 'github.com/FerretDB/FerretDB';
const FERRETDB_VERSION = 'v1.24.2';
/** Used only when the machine's own Go cannot build FerretDB; fetched through the Go module proxy. */
const FALLBACK_GO_TOOLCHAIN = 'go1.24.3';

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const GO_STEP_TIMEOUT_MS = 15 * 60_000;
/** A build holding the lock longer than this is taken to be dead. */
const BUILD_LOCK_STALE_MS = 30 * 60_000;
const BUILD_LOCK_WAIT_MS = 20 * 60_000;
const OUTPUT_LINES_KEPT = 40;

/** MONGODB_URI first, otherwise provisionDatabase */
export async function resolveDatabase(
  env: { MONGODB_URI?: string | undefined },
  options: ProvisionOptions,
): Promise<ProvisionedDatabase> {
  const uri = env.MONGODB_URI?.trim();
  if (uri) return createExternalDatabase(uri);
  return provisionDatabase(options);
}

/** always starts a local server (mongod, else FerretDB, else memory server), ignoring MONGODB_URI */
export async function provisionDatabase(given: ProvisionOptions): Promise<ProvisionedDatabase> {
  // NOTE: absolute paths: the server processes run with their data folder as cwd, so a relative
  // path would be resolved a second time from inside it.
  const options: ProvisionOptions = {
    ...given,
    dataDir: resolvePath(given.dataDir),
    ...(given.pidFile ? { pidFile: resolvePath(given.pidFile) } : {}),
  };
  await mkdir(options.dataDir, { recursive: true });
  const port = options.port ?? (await findFreePort());
  // Each kind keeps its own subfolder: their on-disk formats differ, and a dataDir
  // first used by FerretDB must not be handed to a mongod installed later.
  const failures: string[] = [];

  const mongod = await findExecutable('mongod');
  if (mongod) {
    try {
      return await startProcessDatabase(
        {
          kind: 'mongod',
          label: 'mongod',
          command: mongod,
          args: (dir) => ['--dbpath', dir, '--port', String(port), '--bind_ip', '127.0.0.1', '--nounixsocket'],
        },
        join(options.dataDir, 'mongod'),
        port,
        options,
      );
    } catch (error) {
      failures.push(`mongod (${mongod}): ${messageOf(error)}`);
      options.log?.(`mongod could not be started, trying FerretDB: ${messageOf(error)}`);
    }
  } else {
    failures.push('mongod: not found on PATH');
  }

  try {
    const ferretdb = await ensureFerretDb(options.log);
    const backend = options.backend ?? defaults.embeddedDb;
    if (backend === 'postgres') {
      try {
        return await startFerretDbOnPostgres(ferretdb, port, options);
      } catch (error) {
        failures.push(`FerretDB on PostgreSQL: ${messageOf(error)}`);
        options.log?.(`FerretDB on PostgreSQL could not be started, using SQLite: ${messageOf(error)}`);
      }
    }
    return await startProcessDatabase(
      {
        kind: 'ferretdb',
        backend: 'sqlite',
        label: `FerretDB ${FERRETDB_VERSION} on SQLite`,
        command: ferretdb,
        args: (dir) => [
          '--handler=sqlite',
          // NOTE: FerretDB wants a directory URL here, and the trailing slash is what makes it one.
          `--sqlite-url=file:${dir}/`,
          ...commonFerretDbArgs(dir, port),
        ],
      },
      join(options.dataDir, 'ferretdb'),
      port,
      options,
    );
  } catch (error) {
    failures.push(`FerretDB: ${messageOf(error)}`);
    options.log?.(`FerretDB is not available, trying mongodb-memory-server: ${messageOf(error)}`);
  }

  try {
    return await startMemoryServer(join(options.dataDir, 'memory-server'), port, options);
  } catch (error) {
    failures.push(`mongodb-memory-server: ${messageOf(error)}`);
  }

  throw new Error(
    [
      'No MongoDB server is available. Provide one of:',
      '  - MONGODB_URI=mongodb://host:port/ pointing at a running MongoDB (7 or 8) or FerretDB;',
      '  - a `mongod` binary on PATH;',
      `  - Go (https://go.dev/dl/, on PATH or in /usr/local/go/bin) so that FerretDB ${FERRETDB_VERSION} can be built once into ${ferretDbCacheDir()}.`,
      'What was tried:',
      ...failures.map((failure) => `  - ${failure}`),
    ].join('\n'),
  );
}

/** builds FerretDB into the cache if missing; returns the binary path */
export async function ensureFerretDb(log?: (m: string) => void): Promise<string> {
  const cacheDir = ferretDbCacheDir();
  const binary = join(cacheDir, 'ferretdb');
  if (await isUsableFerretDb(binary)) return binary;

  const go = await findGo();
  if (!go) {
    throw new Error(`FerretDB ${FERRETDB_VERSION} is not built in ${cacheDir} and Go is not installed to build it`);
  }

  await mkdir(cacheDir, { recursive: true });
  const release = await acquireBuildLock(join(cacheDir, 'build.lock'), log);
  try {
    // Another process may have built it while this one waited for the lock.
    if (await isUsableFerretDb(binary)) return binary;
    log?.(`building FerretDB ${FERRETDB_VERSION} (once) into ${cacheDir}…`);
    const startedAt = Date.now();
    await buildFerretDb(go, binary, log);
    log?.(`built FerretDB ${FERRETDB_VERSION} in ${Math.round((Date.now() - startedAt) / 1000)} s`);
    return binary;
  } finally {
    await release();
  }
}

function commonFerretDbArgs(stateDir: string, port: number): string[] {
  return [`--listen-addr=127.0.0.1:${port}`, `--state-dir=${stateDir}`, '--debug-addr=-', '--telemetry=disable'];
}

/**
 * FerretDB on a PostgreSQL cluster of its own (data in dataDir/postgres, FerretDB's state in
 * dataDir/ferretdb-postgres). PostgreSQL starts before FerretDB and stops after it.
 */
async function startFerretDbOnPostgres(
  ferretdb: string,
  port: number,
  options: ProvisionOptions,
): Promise<ProvisionedDatabase> {
  const postgres: EmbeddedPostgres = await prepareEmbeddedPostgres({
    dir: join(options.dataDir, 'postgres'),
    port: await findFreePort(),
    log: options.log,
    track: trackChild,
    untrack: untrackChild,
  });
  return startProcessDatabase(
    {
      kind: 'ferretdb',
      backend: 'postgres',
      label: `FerretDB ${FERRETDB_VERSION} on PostgreSQL`,
      command: ferretdb,
      args: (dir) => ['--handler=postgresql', ...commonFerretDbArgs(dir, port)],
      // NOTE: in the environment, not on the command line: any local user can read a command
      // line (ps), and the URL carries the cluster's password.
      env: { FERRETDB_POSTGRESQL_URL: postgres.url },
      before: () => postgres.start(),
      after: () => postgres.stop(),
    },
    join(options.dataDir, 'ferretdb-postgres'),
    port,
    options,
  );
}

// ---------------------------------------------------------------------------
// External database

function createExternalDatabase(uri: string): ProvisionedDatabase {
  return {
    uri,
    kind: 'external',
    async stop() {
      // Not ours to stop.
    },
    async start() {
      throw new Error('an external database (MONGODB_URI) cannot be started from here');
    },
  };
}

// ---------------------------------------------------------------------------
// mongod / FerretDB child processes

interface ServerProcessSpec {
  kind: 'mongod' | 'ferretdb';
  backend?: EmbeddedBackend;
  label: string;
  command: string;
  args: (dataDir: string) => string[];
  /** added to the child's environment */
  env?: Record<string, string>;
  /** a process the server needs, started before it (FerretDB's PostgreSQL) */
  before?: () => Promise<void>;
  /** and stopped after it */
  after?: () => Promise<void>;
}

interface RunningChild {
  child: ChildProcess;
  exited: Promise<void>;
  exit?: { code: number | null; signal: NodeJS.Signals | null; error?: Error };
  stopping: boolean;
}

async function startProcessDatabase(
  spec: ServerProcessSpec,
  dataDir: string,
  port: number,
  options: ProvisionOptions,
): Promise<ProvisionedDatabase> {
  const uri = `mongodb://127.0.0.1:${port}/`;
  const output = createOutputTail(OUTPUT_LINES_KEPT);
  let running: RunningChild | undefined;

  async function stop(): Promise<void> {
    const current = running;
    if (!current) {
      await spec.after?.();
      return;
    }
    if (!current.exit) {
      current.stopping = true;
      current.child.kill('SIGTERM');
      // A ref'd timer also keeps the event loop alive until the child is gone.
      const escalate = setTimeout(() => current.child.kill('SIGKILL'), STOP_GRACE_MS);
      await current.exited;
      clearTimeout(escalate);
    }
    if (running === current) running = undefined;
    if (options.pidFile && current.child.pid !== undefined) {
      await removePidFile(options.pidFile, current.child.pid);
    }
    await spec.after?.();
  }

  async function start(): Promise<void> {
    if (running && !running.exit) return;
    running = undefined;
    await mkdir(dataDir, { recursive: true });
    if (options.pidFile) await killStaleChild(options.pidFile, options.log);
    await spec.before?.();

    options.log?.(`starting ${spec.label} on 127.0.0.1:${port} (data in ${dataDir})`);
    const child = spawn(spec.command, spec.args(dataDir), {
      cwd: dataDir,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const current: RunningChild = { child, exited: Promise.resolve(), stopping: false };
    current.exited = new Promise<void>((resolve) => {
      child.once('error', (error) => {
        // Spawn failures (ENOENT, EACCES) emit 'error' and never 'exit'.
        current.exit ??= { code: null, signal: null, error };
        untrackChild(child);
        resolve();
      });
      child.once('exit', (code, signal) => {
        current.exit ??= { code, signal };
        untrackChild(child);
        if (!current.stopping && running === current) {
          options.log?.(`${spec.label} on port ${port} exited unexpectedly (${describeExit(current.exit)})`);
        }
        resolve();
      });
    });
    output.follow(child);
    // The database must never keep the parent alive on its own; the exit hooks kill it.
    child.unref();
    running = current;
    trackChild(child);
    if (options.pidFile && child.pid !== undefined) {
      await recordChild(options.pidFile, child.pid, uri);
    }

    try {
      await waitUntilReady(uri, current);
    } catch (error) {
      await stop();
      throw new Error(`${spec.label} did not start: ${messageOf(error)}\n${output.text() || '(no output)'}`, {
        cause: error,
      });
    }
  }

  await start();
  return { uri, kind: spec.kind, ...(spec.backend ? { backend: spec.backend } : {}), stop, start };
}

async function waitUntilReady(uri: string, current: RunningChild): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (current.exit) throw new Error(`the process ended early (${describeExit(current.exit)})`);
    if (await pingOnce(uri)) return;
    await Promise.race([delay(200), current.exited]);
  }
  throw new Error(`no answer on ${uri} within ${READY_TIMEOUT_MS / 1000} s`);
}

async function pingOnce(uri: string): Promise<boolean> {
  // mongoose re-exports the driver it was built with; no second driver needed.
  const client = new mongoose.mongo.MongoClient(uri, {
    directConnection: true,
    serverSelectionTimeoutMS: 1_000,
    connectTimeoutMS: 1_000,
  });
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
    return true;
  } catch {
    return false;
  } finally {
    await client.close().catch(() => undefined);
  }
}

function describeExit(exit: NonNullable<RunningChild['exit']>): string {
  if (exit.error) return exit.error.message;
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** Keeps the last lines a child printed, for error messages, without echoing them. */
function createOutputTail(limit: number): { follow(child: ChildProcess): void; text(): string } {
  const lines: string[] = [];
  const push = (line: string): void => {
    if (!line.trim()) return;
    lines.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
    if (lines.length > limit) lines.shift();
  };
  const follow = (child: ChildProcess): void => {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        parts.forEach(push);
      });
      stream.on('end', () => push(partial));
      // Unref'd pipes, so that reading the child's output does not keep the parent alive.
      if ('unref' in stream && typeof stream.unref === 'function') stream.unref();
    }
  };
  return { follow, text: () => lines.join('\n') };
}

// ---------------------------------------------------------------------------
// Children must not outlive the parent

// NOTE: a module-level set on purpose: it mirrors process-wide state (the
// process's own children and its exit hooks), which exists once per process
// however many databases are provisioned.
const liveChildren = new Map<ChildProcess, NodeJS.Signals>();
let exitHooksInstalled = false;

/** `stopSignal`: what ends the child cleanly (PostgreSQL's fast shutdown is SIGINT). */
function trackChild(child: ChildProcess, stopSignal: NodeJS.Signals = 'SIGTERM'): void {
  installExitHooks();
  liveChildren.set(child, stopSignal);
}

function untrackChild(child: ChildProcess): void {
  liveChildren.delete(child);
}

function killLiveChildren(): void {
  for (const [child, stopSignal] of liveChildren) {
    // Synchronous by necessity ('exit' handlers cannot wait); the stop signal lets the
    // server flush its data and exit on its own.
    child.kill(stopSignal);
  }
  liveChildren.clear();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killLiveChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      killLiveChildren();
      // NOTE: a listener replaces Node's default "terminate on signal" (and the
      // default termination skips 'exit' handlers, hence this hook). When no one
      // else listens, restore the default by re-raising the signal; when the app
      // has its own handler, that handler owns the shutdown.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

async function killStaleChild(pidFile: string, log: ProvisionOptions['log']): Promise<void> {
  const recorded = await readFile(pidFile, 'utf8').catch(() => undefined);
  const pid = recorded ? Number.parseInt(recorded.trim(), 10) : Number.NaN;
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return;
  // NOTE: pids are reused; only a process that is really a database server is
  // killed, never whatever now happens to carry the recorded pid.
  const program = await databaseProgram(pid);
  if (!program) return;

  log?.(`stopping ${program} (pid ${pid}) left running by an earlier run`);
  signalPid(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  while (isAlive(pid) && Date.now() < deadline) await delay(100);
  if (isAlive(pid)) {
    signalPid(pid, 'SIGKILL');
    while (isAlive(pid) && Date.now() < deadline + 2_000) await delay(100);
  }
}

async function removePidFile(pidFile: string, pid: number): Promise<void> {
  const recorded = await readFile(pidFile, 'utf8').catch(() => undefined);
  if (recorded?.trim() === String(pid)) {
    await rm(runningDatabaseFile(pidFile), { force: true });
    await rm(pidFile, { force: true });
  }
}

/** `db.pid` → `db.json`: where `{ pid, uri }` of the server recorded in the pid file is kept. */
export function runningDatabaseFile(pidFile: string): string {
  return `${pidFile.replace(/\.pid$/, '')}.json`;
}

async function recordChild(pidFile: string, pid: number, uri: string): Promise<void> {
  // The pid file stays a bare number (what killStaleChild and operators read).
  await writeFile(runningDatabaseFile(pidFile), `${JSON.stringify({ pid, uri })}\n`);
  await writeFile(pidFile, `${pid}\n`);
}

/**
 * The URI of the database server that another process (`npm start`) started with this pid
 * file, if it is still running; undefined otherwise. Callers that find one must use it and
 * must not provision: provisioning would kill it as "stale" (killStaleChild).
 */
export async function findRunningDatabase(pidFile: string): Promise<string | undefined> {
  const recorded = await readFile(pidFile, 'utf8').catch(() => undefined);
  const pid = recorded ? Number.parseInt(recorded.trim(), 10) : Number.NaN;
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  const info = await readFile(runningDatabaseFile(pidFile), 'utf8')
    .then((text) => JSON.parse(text) as { pid?: unknown; uri?: unknown })
    .catch(() => undefined);
  // Both files must name the same child: a pair left half-written by a crash is not trusted.
  if (info?.pid !== pid || typeof info.uri !== 'string') return undefined;
  if (!isAlive(pid) || !(await databaseProgram(pid))) return undefined;
  return info.uri;
}

/** The program name if `pid` is a ferretdb or mongod process (Linux /proc), else undefined. */
async function databaseProgram(pid: number): Promise<string | undefined> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  const program = basename(cmdline?.split('\0')[0] ?? '');
  return /^(ferretdb|mongod)/.test(program) ? program : undefined;
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---------------------------------------------------------------------------
// mongodb-memory-server (last resort; usually cannot download its binary here)

async function startMemoryServer(
  dataDir: string,
  port: number,
  options: ProvisionOptions,
): Promise<ProvisionedDatabase> {
  let lib: typeof MemoryServerLib;
  try {
    lib = await import('mongodb-memory-server-core');
  } catch {
    throw new Error('the package mongodb-memory-server-core is not installed');
  }

  const located = await lib.DryMongoBinary.locateBinary(await lib.DryMongoBinary.generateOptions());
  if (!located) {
    // NOTE: without network the library retries its download with back-off and
    // a 60 s inactivity timeout per try; a 3 s probe fails fast instead.
    const source =
      process.env.MONGOMS_DOWNLOAD_URL ?? process.env.MONGOMS_DOWNLOAD_MIRROR ?? 'https://fastdl.mongodb.org';
    await probeHost(source);
    options.log?.(`downloading a mongod binary for mongodb-memory-server from ${source}…`);
  }

  await mkdir(dataDir, { recursive: true });
  if (options.pidFile) await killStaleChild(options.pidFile, options.log);
  options.log?.(`starting mongodb-memory-server on 127.0.0.1:${port} (data in ${dataDir})`);
  // wiredTiger, because the data must survive stop() and start().
  const server = await lib.MongoMemoryServer.create({
    instance: { ip: '127.0.0.1', port, dbPath: dataDir, storageEngine: 'wiredTiger' },
  });

  const uri = `mongodb://127.0.0.1:${port}/`;
  let tracked: ChildProcess | undefined;
  const afterStart = async (): Promise<void> => {
    tracked = server.instanceInfo?.instance.mongodProcess;
    if (!tracked) return;
    trackChild(tracked);
    if (options.pidFile && tracked.pid !== undefined) await recordChild(options.pidFile, tracked.pid, uri);
  };
  await afterStart();

  return {
    uri,
    kind: 'memory-server',
    async stop() {
      const child = tracked;
      // The dbPath is ours, not a temp dir of the library: keep it for start().
      await server.stop({ doCleanup: false });
      if (child) {
        untrackChild(child);
        if (options.pidFile && child.pid !== undefined) await removePidFile(options.pidFile, child.pid);
      }
      tracked = undefined;
    },
    async start() {
      if (server.state === 'running') return;
      await server.start(true);
      await afterStart();
    },
  };
}

function probeHost(url: string): Promise<void> {
  const { hostname: host, port, protocol } = new URL(url);
  const targetPort = Number(port) || (protocol === 'http:' ? 80 : 443);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: targetPort, timeout: 3_000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no mongod binary is cached and ${host} cannot be reached to download one (timeout)`));
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(new Error(`no mongod binary is cached and ${host} cannot be reached to download one (${error.message})`));
    });
  });
}

// ---------------------------------------------------------------------------
// FerretDB build

function ferretDbCacheDir(): string {
  if (process.env.FERRETDB_CACHE_DIR) return process.env.FERRETDB_CACHE_DIR;
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cacheHome, 'oidc-server', `ferretdb-${FERRETDB_VERSION}`);
}

async function isUsableFerretDb(binary: string): Promise<boolean> {
  if (!(await isExecutableFile(binary))) return false;
  const result = await run(binary, ['--version'], { timeoutMs: 10_000 }).catch(() => undefined);
  return result?.code === 0 && result.stdout.includes(`version: ${FERRETDB_VERSION}`);
}

async function findGo(): Promise<string | undefined> {
  const onPath = await findExecutable('go');
  if (onPath) return onPath;
  // The official tarball's place, often missing from PATH in non-login shells.
  const standard = '/usr/local/go/bin/go';
  return (await isExecutableFile(standard)) ? standard : undefined;
}

async function buildFerretDb(go: string, target: string, log: ProvisionOptions['log']): Promise<void> {
  const workDir = await mkdtemp(join(tmpdir(), 'ferretdb-build-'));
  const temporaryBinary = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const env: NodeJS.ProcessEnv = { ...process.env, GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local' };
  try {
    // NOTE: `go install …/cmd/ferretdb@v1.24.2` asks the proxy for the module's
    // version list (a deprecation check), which the proxy here refuses (403).
    // Downloading the exact version does not need that list.
    const downloadDir = join(workDir, 'download');
    await mkdir(downloadDir);
    log?.(`fetching ${FERRETDB_MODULE}@${FERRETDB_VERSION} source…`);
    const download = await run(go, ['mod', 'download', '-json', `${FERRETDB_MODULE}@${FERRETDB_VERSION}`], {
      cwd: downloadDir,
      env,
      timeoutMs: GO_STEP_TIMEOUT_MS,
    });
    const moduleDir = parseDownloadedDir(download.stdout);
    if (download.code !== 0 || !moduleDir) {
      throw new Error(`go mod download failed:\n${tail(download.stdout + download.stderr)}`);
    }

    // The module cache is read-only, and the source needs one more file.
    const sourceDir = join(workDir, 'src');
    await cp(moduleDir, sourceDir, { recursive: true });
    await makeWritable(sourceDir);
    // NOTE: the module zip lacks build/version/version.txt, and a binary built
    // without it panics at start ("Invalid build/version/version.txt file content").
    await mkdir(join(sourceDir, 'build', 'version'), { recursive: true });
    await writeFile(join(sourceDir, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);

    log?.('compiling FerretDB (a minute with a warm Go cache, several when cold)…');
    const buildArgs = ['build', '-trimpath', '-o', temporaryBinary, './cmd/ferretdb'];
    let build = await run(go, buildArgs, { cwd: sourceDir, env, timeoutMs: GO_STEP_TIMEOUT_MS });
    if (build.code !== 0) {
      // A future local Go may not build this older source; the toolchain it was
      // released with comes through the module proxy.
      log?.(`the local Go could not build FerretDB, retrying with ${FALLBACK_GO_TOOLCHAIN}…`);
      const firstError = tail(build.stderr);
      build = await run(go, buildArgs, {
        cwd: sourceDir,
        env: { ...env, GOTOOLCHAIN: FALLBACK_GO_TOOLCHAIN },
        timeoutMs: GO_STEP_TIMEOUT_MS,
      });
      if (build.code !== 0) {
        throw new Error(
          `go build failed with the local toolchain:\n${firstError}\nand with ${FALLBACK_GO_TOOLCHAIN}:\n${tail(build.stderr)}`,
        );
      }
    }

    if (!(await isUsableFerretDb(temporaryBinary))) {
      throw new Error(`the built binary does not report version ${FERRETDB_VERSION}`);
    }
    // Atomic: a concurrent reader sees either no binary or a complete one.
    await rename(temporaryBinary, target);
  } finally {
    await rm(temporaryBinary, { force: true });
    await rm(workDir, { recursive: true, force: true });
  }
}

function parseDownloadedDir(stdout: string): string | undefined {
  try {
    const info = JSON.parse(stdout) as { Dir?: unknown };
    return typeof info.Dir === 'string' && info.Dir ? info.Dir : undefined;
  } catch {
    return undefined;
  }
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await makeWritable(path);
    else if (entry.isFile()) await chmod(path, 0o644);
  }
}

/**
 * A lock directory, so that two processes (parallel test runs, `npm start`
 * beside `npm test`) do not compile at once. Returns the release function.
 *
 * NOTE: the lock only saves work. Each build writes its own temporary binary
 * and renames it into place, so two builds racing after a stale-lock takeover
 * still leave one complete binary.
 */
async function acquireBuildLock(lockDir: string, log: ProvisionOptions['log']): Promise<() => Promise<void>> {
  const deadline = Date.now() + BUILD_LOCK_WAIT_MS;
  let announced = false;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(
        join(lockDir, 'owner.json'),
        JSON.stringify({ pid: process.pid, host: hostname(), startedAt: Date.now() }),
      );
      return () => rm(lockDir, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (await isStaleLock(lockDir)) {
      log?.(`removing a stale FerretDB build lock (${lockDir})`);
      await rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`gave up waiting for another FerretDB build (lock ${lockDir}); remove it if no build runs`);
    }
    if (!announced) {
      log?.('another process is building FerretDB; waiting for it…');
      announced = true;
    }
    await delay(1_000);
  }
}

async function isStaleLock(lockDir: string): Promise<boolean> {
  const info = await stat(lockDir).catch(() => undefined);
  if (!info) return false; // released meanwhile: just retry
  if (Date.now() - info.mtimeMs > BUILD_LOCK_STALE_MS) return true;
  const owner = await readFile(join(lockDir, 'owner.json'), 'utf8')
    .then((text) => JSON.parse(text) as { pid?: unknown; host?: unknown })
    .catch(() => undefined);
  // Between mkdir and writing owner.json there is a moment without an owner.
  if (!owner) return Date.now() - info.mtimeMs > 10_000;
  if (owner.host !== hostname() || typeof owner.pid !== 'number') return false;
  return !isAlive(owner.pid);
}

// ---------------------------------------------------------------------------
// Small process and file helpers

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
    });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    // Bounded: a failed Go build can print a lot, and only the end matters.
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-64_000);
    });
    child.once('error', (error) => {
      untrackChild(child);
      reject(error);
    });
    child.once('close', (code) => {
      untrackChild(child);
      resolve({ code, stdout, stderr });
    });
  });
}

function tail(text: string, lines = 30): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function findExecutable(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
