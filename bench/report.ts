/** The bench's results: the JSON document, and the markdown table printed and written beside it. */

export interface ResultRow {
  scenario: string;
  target: string;
  kind: 'request' | 'flow';
  /** Successful requests (or flows) per second over the measured run. */
  opsPerSecond: number;
  /** Successful requests (or flows). */
  ops: number;
  errors: number;
  /** The first error seen, to say what went wrong. */
  firstError?: string;
  /** Latency of a request (or of a whole flow), milliseconds. */
  latencyMs: { p50: number; p99: number };
  /** HTTP requests per op (1 for request scenarios; the hops of a flow). */
  requestsPerOp: number;
  /** CPU time of the server's process per op (every thread), milliseconds. */
  cpuMsPerOp: number;
  /** Database commands per op (driver command monitoring in the server's process); null without a database. */
  dbCommandsPerOp: number | null;
  /** The same by `<command> <collection>`. */
  dbCommandsPerOpByName: Record<string, number> | null;
  /** CPU time of the database's processes per op, milliseconds (only a database the bench started). */
  dbCpuMsPerOp: number | null;
  /**
   * The bench's own CPU time during the run, in cores (1 = one core busy all the time): the load
   * generator, the browsers of the flows and the mail server. Near 1, the generator may be what
   * limits ops/s (autocannon runs on one thread).
   */
  loadGeneratorCpuShare: number;
  /** The server process's highest resident set size during the run, MiB. */
  rssPeakMiB: number;
  durationSeconds: number;
}

export interface BenchReport {
  date: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string; loadAverageAtStart: number[] };
  settings: { quick: boolean; durationSeconds: number; warmUpSeconds: number; connections: number; flowWorkers: number; scenarios: string[] };
  /** idleRssMiB: the server process's resident memory once started and set up, before any load. */
  targets: { id: string; label: string; idleRssMiB: number }[];
  /** Environment the bench gives our server beyond what production requires, and why. */
  benchOnlySettings: Record<string, string>;
  notes: string[];
  scenarios: Record<string, string>;
  results: ResultRow[];
}

const fixed = (value: number | null, digits: number): string => (value === null || !Number.isFinite(value) ? '–' : value.toFixed(digits));

function opsCell(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

export function markdown(report: BenchReport): string {
  const lines: string[] = [];
  const { settings } = report;
  lines.push(`## Benchmark, ${report.date.slice(0, 16).replace('T', ' ')} UTC`);
  lines.push('');
  lines.push(
    `${report.machine.cpus} × ${report.machine.cpuModel}, Node ${report.machine.node}, load average at start ${report.machine.loadAverageAtStart.map((n) => n.toFixed(2)).join(' ')}. ` +
      `${settings.durationSeconds} s per scenario after ${settings.warmUpSeconds} s of warm-up; ${settings.connections} connections; flows: ${settings.flowWorkers} workers${settings.quick ? ' (--quick)' : ''}.`,
  );
  lines.push('');
  lines.push('Targets: ' + report.targets.map((t) => `**${t.id}**: ${t.label} (${t.idleRssMiB.toFixed(0)} MiB resident before any load)`).join('; ') + '.');
  lines.push('');
  lines.push('| scenario | target | ops/s | p50 ms | p99 ms | CPU ms/op | DB cmds/op | DB CPU ms/op | peak RSS MiB | req/op | errors | bench cores | vs bare |');
  lines.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const row of report.results) {
    const bare = report.results.find((r) => r.scenario === row.scenario && r.target === 'bare');
    const versus = row.target !== 'bare' && bare && bare.opsPerSecond > 0 ? `${((row.opsPerSecond / bare.opsPerSecond) * 100).toFixed(0)} %` : '';
    lines.push(
      `| ${row.scenario}${row.kind === 'flow' ? ' (flow)' : ''} | ${row.target} | ${opsCell(row.opsPerSecond)} | ${fixed(row.latencyMs.p50, row.kind === 'flow' ? 0 : 1)} | ${fixed(row.latencyMs.p99, row.kind === 'flow' ? 0 : 1)} | ` +
        `${fixed(row.cpuMsPerOp, 2)} | ${fixed(row.dbCommandsPerOp, 1)} | ${fixed(row.dbCpuMsPerOp, 2)} | ${row.rssPeakMiB.toFixed(0)} | ${fixed(row.requestsPerOp, 1)} | ${row.errors} | ${row.loadGeneratorCpuShare.toFixed(2)} | ${versus} |`,
    );
  }
  lines.push('');
  const settingNames = Object.keys(report.benchOnlySettings);
  if (settingNames.length > 0) {
    lines.push(`Bench-only settings of our server: ${settingNames.map((k) => `\`${k}=${report.benchOnlySettings[k]}\``).join(', ')}.`);
    lines.push('');
  }
  for (const note of report.notes) lines.push(`- ${note}`);
  const withCommands = report.results.filter((r) => r.dbCommandsPerOpByName && Object.keys(r.dbCommandsPerOpByName).length > 0);
  if (withCommands.length > 0) {
    lines.push('');
    lines.push('Database commands per op, by command and collection (the background mail worker included):');
    lines.push('');
    for (const row of withCommands) {
      const parts = Object.entries(row.dbCommandsPerOpByName ?? {})
        // What rounds to nothing (the mail worker's polling) is left out here; the JSON has it.
        .filter(([, n]) => n >= 0.005)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, n]) => `${name} ${Math.round(n * 100) / 100}`);
      lines.push(`- ${row.scenario} (${row.target}): ${parts.join(', ') || 'none'}`);
    }
  }
  const failed = report.results.filter((r) => r.firstError);
  if (failed.length > 0) {
    lines.push('');
    lines.push('Errors:');
    for (const row of failed) lines.push(`- ${row.scenario} on ${row.target}: ${row.firstError}`);
  }
  return `${lines.join('\n')}\n`;
}
