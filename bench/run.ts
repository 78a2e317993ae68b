/**
 * The benchmark: every hot endpoint and both sign-in flows of this server, beside bare
 * oidc-provider 9 (in-memory adapter) in the same run, as the ceiling.
 *
 *   npm run bench                         8 s per scenario, 32 connections, flows with 16 workers
 *   npm run bench -- --quick              under a minute: short runs, fewer connections
 *   npm run bench -- --only discovery,refresh --target ours --duration 5 --connections 16
 *
 * Flags: --quick, --duration <s>, --warm-up <s>, --connections <n>, --workers <n> (flow workers),
 * --only <scenario,...>, --target ours|bare|both, --database embedded|external|both (external is
 * MONGODB_URI; default: both when it is set, else embedded), --out <file.json> (default
 * bench/results/latest.json; the markdown table goes beside it, .md).
 *
 * Each server runs in a child process; for each scenario the bench reads that process's CPU time,
 * peak RSS and database commands (driver command monitoring) before and after, over IPC. Our
 * server runs with NODE_ENV=production on a scratch database that is dropped at the end (on the
 * database the bench starts itself, in a temporary folder it removes, unless --database external).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import autocannon from 'autocannon';

import { provisionDatabase } from '../src/db/provision.js';
import type { ProvisionedDatabase } from '../src/db/provision.js';
import { codeFrom, startMailServer } from '../test/support/mail-server.js';
import type { MailServer } from '../test/support/mail-server.js';
import type { BenchClient, Endpoints } from './browser-agent.js';
import { BrowserAgent, discover } from './browser-agent.js';
import type { ProbeSample } from './protocol.js';
import { markdown } from './report.js';
import type { BenchReport, ResultRow } from './report.js';
import type { FlowScenario, FlowWorker, MailReader, RequestScenario, Scenario, ScenarioContext, ScenarioName } from './scenarios.js';
import { SCENARIO_NAMES, passwordSignIn, scenarios } from './scenarios.js';
import { startTarget } from './target.js';
import type { Target, TargetSpec } from './target.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const MiB = 1024 * 1024;

/**
 * What our server needs in the bench beyond production's required settings. Every flow worker
 * signs in as an account of its own, but all of them come from 127.0.0.1 and each asks for a new
 * code for its address in every flow.
 */
const BENCH_ONLY_SETTINGS: Record<string, string> = {
  // One code per address per minute by default: a worker asks for one every flow.
  EMAIL_CODE_RESEND_INTERVAL: '0',
  // 20 codes per IP per window, and 20 (5 from one IP) per address per hour by default.
  IP_CODE_SEND_LIMIT: '1000000',
  EMAIL_CODE_ADDRESS_LIMIT: '10000',
  EMAIL_CODE_ADDRESS_IP_LIMIT: '10000',
};

interface Options {
  quick: boolean;
  duration: number;
  warmUp: number;
  connections: number;
  workers: number;
  only: ScenarioName[];
  target: 'ours' | 'bare' | 'both';
  database: 'embedded' | 'external' | 'both';
  out: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      'warm-up': { type: 'string' },
      connections: { type: 'string' },
      workers: { type: 'string' },
      only: { type: 'string' },
      target: { type: 'string', default: 'both' },
      database: { type: 'string' },
      out: { type: 'string', default: path.join(here, 'results', 'latest.json') },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench -- [--quick] [--duration s] [--warm-up s] [--connections n] [--workers n] [--only a,b] [--target ours|bare|both] [--database embedded|external|both] [--out file.json]\n' +
        `scenarios: ${SCENARIO_NAMES.join(', ')}\n`,
    );
    process.exit(0);
  }
  const positive = (raw: string | undefined, fallback: number, name: string): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const quick = values.quick ?? false;
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : [...SCENARIO_NAMES];
  const unknown = only.filter((s) => !(SCENARIO_NAMES as readonly string[]).includes(s));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')} (known: ${SCENARIO_NAMES.join(', ')})`);
  const target = values.target ?? 'both';
  if (target !== 'ours' && target !== 'bare' && target !== 'both') throw new Error('--target must be ours, bare or both');
  const external = Boolean(process.env.MONGODB_URI?.trim());
  const database = values.database ?? (external ? 'both' : 'embedded');
  if (database !== 'embedded' && database !== 'external' && database !== 'both') throw new Error('--database must be embedded, external or both');
  if (database !== 'embedded' && !external) throw new Error(`--database ${database} needs MONGODB_URI`);
  const connections = Math.round(positive(values.connections, quick ? 8 : 32, 'connections'));
  const duration = positive(values.duration, quick ? 1 : 8, 'duration');
  return {
    quick,
    duration,
    warmUp: positive(values['warm-up'], quick ? 0.3 : 2, 'warm-up'),
    connections,
    workers: Math.round(positive(values.workers, quick ? 4 : Math.max(1, Math.round(connections / 2)), 'workers')),
    only: only as ScenarioName[],
    target,
    database,
    out: path.resolve(values.out ?? path.join(here, 'results', 'latest.json')),
  };
}

const startedAt = performance.now();
const log = (line: string) => process.stderr.write(`[${((performance.now() - startedAt) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

interface Measured {
  ops: number;
  errors: number;
  firstError?: string;
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
}

async function runRequests(scenario: RequestScenario, context: ScenarioContext, seconds: number, connections: number): Promise<Measured> {
  const spec = scenario.request(context);
  const result = await autocannon({
    url: spec.url,
    method: spec.method,
    headers: spec.headers,
    ...(spec.body !== undefined ? { body: spec.body } : {}),
    connections,
    duration: seconds,
    // Its run ends at the first sample after the duration: every 100 ms, not every second, so
    // that short runs (the warm-up, --quick) last what they say.
    sampleInt: 100,
    timeout: 30,
  });
  const errors = result.non2xx + result.errors + result.timeouts;
  const statuses = Object.entries(result.statusCodeStats ?? {})
    .filter(([status]) => !status.startsWith('2'))
    .map(([status, s]) => `${s.count}× ${status}`);
  return {
    ops: result['2xx'],
    errors,
    ...(errors > 0 ? { firstError: `${statuses.join(', ') || `${result.errors} connection errors, ${result.timeouts} timeouts`}` } : {}),
    requests: result.latency.totalCount,
    seconds: result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}

async function runFlows(
  scenario: FlowScenario,
  context: ScenarioContext,
  workers: FlowWorker[],
  seconds: number,
  mail: MailReader,
): Promise<Measured> {
  const latencies: number[] = [];
  let errors = 0;
  let requests = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    workers.map(async (worker) => {
      while (performance.now() < deadline) {
        const agent = new BrowserAgent(context.endpoints);
        const t0 = performance.now();
        try {
          await scenario.run(agent, context, worker, mail);
          latencies.push(performance.now() - t0);
        } catch (err) {
          errors += 1;
          firstError ??= err instanceof Error ? err.message : String(err);
          // A failing flow must not spin: it would measure nothing but its own failure.
          await sleep(100);
        }
        requests += agent.requests;
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length,
    errors,
    ...(firstError ? { firstError } : {}),
    requests,
    // Flows that started before the deadline finish after it: count the time until the last one did.
    seconds: (performance.now() - started) / 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

function perOp(before: ProbeSample, after: ProbeSample, ops: number): Pick<ResultRow, 'cpuMsPerOp' | 'dbCommandsPerOp' | 'dbCommandsPerOpByName' | 'rssPeakMiB'> {
  const n = Math.max(ops, 1);
  const byName: Record<string, number> = {};
  for (const [name, count] of Object.entries(after.commandsByName)) {
    const delta = count - (before.commandsByName[name] ?? 0);
    if (delta > 0) byName[name] = Math.round((delta / n) * 1000) / 1000;
  }
  return {
    cpuMsPerOp: (after.cpuMicros - before.cpuMicros) / 1000 / n,
    dbCommandsPerOp: (after.commands - before.commands) / n,
    dbCommandsPerOpByName: byName,
    rssPeakMiB: after.rssPeak / MiB,
  };
}

interface RunningTarget {
  target: Target;
  context: ScenarioContext;
  hasDatabase: boolean;
}

async function measure(scenario: Scenario, running: RunningTarget, options: Options, workers: FlowWorker[], mail: MailReader): Promise<ResultRow> {
  const { target, context } = running;
  if (scenario.kind === 'request' && scenario.needsTokens) {
    // Fresh tokens for each such scenario: bare oidc-provider's memory adapter is an LRU of 1000
    // records, which the token-minting scenarios before would otherwise have emptied of them.
    const [first] = workers;
    if (!first) throw new Error('no account');
    context.tokens = await passwordSignIn(new BrowserAgent(context.endpoints), context, first, { prompt: 'consent' }, 'openid email profile offline_access');
  }
  const run = (seconds: number) =>
    scenario.kind === 'request' ? runRequests(scenario, context, seconds, options.connections) : runFlows(scenario, context, workers, seconds, mail);
  await run(options.warmUp);
  const before = await target.sample();
  const dbBefore = target.databaseCpuMs();
  const benchBefore = process.cpuUsage();
  const measured = await run(options.duration);
  const benchCpu = process.cpuUsage(benchBefore);
  const after = await target.sample();
  const dbAfter = target.databaseCpuMs();
  // Flows count per flow; request scenarios per request the server received (errors included:
  // they cost too; and those still in flight when the load generator stopped, which it never
  // saw answered, but whose work the server did).
  const ops = scenario.kind === 'flow' ? measured.ops : after.requests - before.requests;
  const costs = perOp(before, after, ops);
  return {
    scenario: scenario.name,
    target: target.spec.id,
    kind: scenario.kind,
    opsPerSecond: measured.ops / measured.seconds,
    ops: measured.ops,
    errors: measured.errors,
    ...(measured.firstError ? { firstError: measured.firstError } : {}),
    latencyMs: { p50: measured.p50, p99: measured.p99 },
    requestsPerOp: scenario.kind === 'flow' ? measured.requests / Math.max(measured.ops + measured.errors, 1) : 1,
    ...costs,
    dbCommandsPerOp: running.hasDatabase ? costs.dbCommandsPerOp : null,
    dbCommandsPerOpByName: running.hasDatabase ? costs.dbCommandsPerOpByName : null,
    dbCpuMsPerOp: dbBefore !== undefined && dbAfter !== undefined ? (dbAfter - dbBefore) / Math.max(ops, 1) : null,
    loadGeneratorCpuShare: (benchCpu.user + benchCpu.system) / 1e6 / measured.seconds,
    durationSeconds: measured.seconds,
  };
}

function mailReader(smtp: MailServer): MailReader {
  return {
    countFor: (to) => smtp.countFor(to),
    codeFor: async (to, after) => codeFrom(await smtp.waitForMail(to, { after, timeoutMs: 15_000 })),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const loadAverageAtStart = os.loadavg();
  const selected = scenarios.filter((s) => options.only.includes(s.name));
  const wantsOurs = options.target !== 'bare';
  const password = `bench password ${randomBytes(6).toString('hex')}`;
  const runId = randomBytes(4).toString('hex');
  const workers: FlowWorker[] = Array.from({ length: options.workers }, (_, i) => ({ email: `bench-pw-${i}-${runId}@example.com`, password }));
  const codeWorkers: FlowWorker[] = Array.from({ length: options.workers }, (_, i) => ({ email: `bench-code-${i}-${runId}@example.com`, password: '' }));

  const cleanups: (() => Promise<void>)[] = [];
  // Once, whoever asks first (the end of the run, or Ctrl-C): the others wait for the same.
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const step of [...cleanups].reverse()) await step().catch((err: unknown) => log(`clean-up: ${(err as Error).message}`));
    })());
  // NOTE: `on`, not `once`: Ctrl-C reaches this process twice (from the terminal, and relayed by
  // tsx's launcher), and a second one without a handler would end it half-way through the clean-up.
  process.on('SIGINT', () => {
    if (cleaning) return;
    log('interrupted: stopping the servers and removing what the bench made…');
    void cleanUp().finally(() => process.exit(130));
  });

  try {
    const specs: TargetSpec[] = [];
    let smtp: MailServer | undefined;
    if (wantsOurs) {
      smtp = await startMailServer();
      const mailServer = smtp;
      cleanups.push(() => mailServer.close());
      const common = {
        COOKIE_KEYS: randomBytes(32).toString('base64url'),
        ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64url')}`,
        SMTP_URL: mailServer.url,
        MAIL_FROM: 'Bench <bench@example.com>',
        LOG_LEVEL: 'info',
        ...BENCH_ONLY_SETTINGS,
      };
      const scratch = () => `bench_${runId}_${randomBytes(2).toString('hex')}`;
      const tmp = await mkdtemp(path.join(os.tmpdir(), 'oidc-bench-'));
      // Enterable (not listable) by others: run as root, the embedded PostgreSQL runs as the user postgres.
      await chmod(tmp, 0o711);
      cleanups.push(() => rm(tmp, { recursive: true, force: true }));
      if (options.database !== 'external') {
        const dataDir = path.join(tmp, 'db');
        log('starting the embedded database…');
        const database: ProvisionedDatabase = await provisionDatabase({ dataDir, log: (line) => log(`[database] ${line}`) });
        cleanups.push(() => database.stop());
        specs.push({
          id: 'ours',
          kind: 'ours',
          label: `this server, NODE_ENV=production, embedded database (${database.kind})`,
          env: { ...common, MONGODB_URI: database.uri, BENCH_DB_NAME: scratch(), BENCH_LOG_FILE: path.join(tmp, 'ours.log') },
          databaseDir: dataDir,
        });
      }
      if (options.database !== 'embedded') {
        specs.push({
          id: 'ours-mongodb',
          kind: 'ours',
          label: 'this server, NODE_ENV=production, MONGODB_URI',
          env: { ...common, MONGODB_URI: process.env.MONGODB_URI?.trim() ?? '', BENCH_DB_NAME: scratch(), BENCH_LOG_FILE: path.join(tmp, 'ours-mongodb.log') },
        });
      }
    }
    if (options.target !== 'ours') {
      specs.push({ id: 'bare', kind: 'bare', label: 'bare oidc-provider 9, memory adapter, minimal sign-in handler (plain-text password check)', env: {} });
    }

    const idleRss = new Map<string, number>();
    // Started side by side (they wait on different things: the database, the compiler).
    const running: RunningTarget[] = await Promise.all(
      specs.map(async (spec): Promise<RunningTarget> => {
        log(`starting ${spec.id}…`);
        // The issuer is only known once the port is: the target is started with ISSUER on its port.
        const target = await startTarget(withIssuer(spec), log);
        cleanups.push(() => target.stop());
        const client = await target.setup({
          passwordAccounts: workers.map(({ email, password: pw }) => ({ email, password: pw })),
          codeAccounts: codeWorkers.map((w) => w.email),
          redirectUri: REDIRECT_URI,
        });
        const endpoints: Endpoints = await discover(`http://127.0.0.1:${target.port}`);
        idleRss.set(spec.id, (await target.sample()).rss / MiB);
        const benchClient: BenchClient = { ...client, redirectUri: REDIRECT_URI };
        return { target, context: { endpoints, client: benchClient }, hasDatabase: spec.kind === 'ours' };
      }),
    );

    const mail = smtp ? mailReader(smtp) : { countFor: () => 0, codeFor: () => Promise.reject(new Error('no mail server')) };
    const results: ResultRow[] = [];
    // Scenario by scenario, each target in turn: drift on a shared machine hits every target alike.
    for (const scenario of selected) {
      for (const r of running) {
        if (scenario.kind === 'flow' && scenario.oursOnly && r.target.spec.kind === 'bare') continue;
        log(`${scenario.name} on ${r.target.spec.id}…`);
        const flowWorkers = scenario.name === 'email_code_flow' ? codeWorkers : workers;
        const row = await measure(scenario, r, options, flowWorkers, mail);
        results.push(row);
        log(`  ${row.opsPerSecond.toFixed(1)}/s, p50 ${row.latencyMs.p50.toFixed(1)} ms, CPU ${row.cpuMsPerOp.toFixed(2)} ms/op, ${row.dbCommandsPerOp?.toFixed(1) ?? '–'} db cmds/op, ${row.errors} errors`);
      }
    }

    const report: BenchReport = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.release()}`, loadAverageAtStart },
      settings: {
        quick: options.quick,
        durationSeconds: options.duration,
        warmUpSeconds: options.warmUp,
        connections: options.connections,
        flowWorkers: options.workers,
        scenarios: selected.map((s) => s.name),
      },
      targets: specs.map((s) => ({ id: s.id, label: s.label, idleRssMiB: idleRss.get(s.id) ?? 0 })),
      benchOnlySettings: wantsOurs ? BENCH_ONLY_SETTINGS : {},
      notes: [
        'ops/s: successful requests per second (flows per second for flows); p50/p99: latency of one request (of a whole flow for flows).',
        "CPU ms/op: the server process's user+system CPU time (all threads) per request or flow; DB CPU ms/op: the embedded database's processes, when the bench started them.",
        'DB cmds/op: database commands the server sent per request or flow (driver command monitoring), batched audit writes included.',
        'Our server publishes an https issuer and listens on plain http on loopback, as behind a TLS-terminating proxy (Secure cookies are sent back by the bench); TLS is not measured for either target.',
        'Each flow is a new browser (empty cookie jar): a full sign-in with its consent page; each worker signs in as an account of its own.',
        'bench cores: CPU the bench itself used during the run (load generator, flow browsers, mail server), in cores; near 1 the generator may be the limit (autocannon is single-threaded).',
        'The load generator runs on the same machine as the servers: on a machine with few cores, absolute numbers are low and noisy; compare targets within a run.',
      ],
      scenarios: Object.fromEntries(selected.map((s) => [s.name, s.description])),
      results,
    };
    await mkdir(path.dirname(options.out), { recursive: true });
    await writeFile(options.out, `${JSON.stringify(report, null, 2)}\n`);
    const table = markdown(report);
    await writeFile(options.out.replace(/\.json$/, '') + '.md', table);
    process.stdout.write(table);
    log(`results: ${options.out}`);
  } finally {
    await cleanUp();
  }
}

/** Our server's ISSUER names its own port: https on loopback (see the notes), set once the port is known. */
function withIssuer(spec: TargetSpec): TargetSpec {
  if (spec.kind !== 'ours') return spec;
  return { ...spec, env: { ...spec.env, ISSUER: 'https://127.0.0.1:{PORT}' } };
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
