/**
 * The physical benchmark's results, the targets they are judged against,
 * and the text report: every run, the ratios, a plain summary block, then
 * one JSON line for tools.
 */
import type { GeneratedDatabase } from './bench-data.js';
import { formatGib, formatMb, formatMib, formatSeconds, formatTable, sumCpu, type MachineFacts } from './bench-report.js';
import type { PgBackRestBackupInfo } from './bench-pgbackrest.js';
import { PGBACKREST_OPTIONS } from './bench-pgbackrest.js';
import type { DrplanFeatures } from './bench-physical-setup.js';
import type { RestoreCheck, Tool, ToolRun } from './bench-physical-steps.js';
import type { WalPushResult } from './bench-physical-wal.js';

export interface PhysicalResult {
  machine: MachineFacts & { pgBackRest: string };
  serverSettings: Record<string, string>;
  database: GeneratedDatabase;
  /** Sum of pg_database_size over every database of the cluster, in bytes. */
  clusterBytes: number;
  rounds: number;
  features: DrplanFeatures;
  backups: ToolRun[];
  restores: ToolRun[];
  checks: RestoreCheck[];
  walPush: WalPushResult;
  pgBackRestSizes: PgBackRestBackupInfo[];
}

/** A ratio drplan / pgBackRest over all rounds, and per round. */
interface Ratio {
  name: string;
  /** Sum of drplan's values over sum of pgBackRest's: the ratio of the means. */
  overall?: number;
  perRound: (number | undefined)[];
  limit?: number;
}


function valuesOf(runs: ToolRun[], tool: Tool, value: (run: ToolRun) => number | undefined): Map<number, number> {
  const byRound = new Map<number, number>();
  for (const run of runs.filter((r) => r.tool === tool)) {
    const v = value(run);
    if (v !== undefined) byRound.set(run.round, v);
  }
  return byRound;
}

function ratio(name: string, runs: ToolRun[], rounds: number, value: (run: ToolRun) => number | undefined, limit?: number): Ratio {
  const drplan = valuesOf(runs, 'drplan', value);
  const pgBackRest = valuesOf(runs, 'pgBackRest', value);
  const perRound = Array.from({ length: rounds }, (_, index) => {
    const d = drplan.get(index + 1);
    const p = pgBackRest.get(index + 1);
    return d !== undefined && p !== undefined ? d / p : undefined;
  });
  const sum = (values: Map<number, number>) => [...values.values()].reduce((total, v) => total + v, 0);
  const overall = drplan.size > 0 && drplan.size === pgBackRest.size ? sum(drplan) / sum(pgBackRest) : undefined;
  return { name, overall, perRound, limit };
}

export function physicalRatios(result: PhysicalResult): Ratio[] {
  return [
    ratio('backup time', result.backups, result.rounds, (run) => run.step.durationMs, 1.0),
    ratio('restore time', result.restores, result.rounds, (run) => run.step.durationMs, 1.2),
    ratio('stored size', result.backups, result.rounds, (run) => run.storedBytes),
  ];
}

function formatRatio(value: number | undefined): string {
  return value === undefined ? '-' : value.toFixed(3);
}

function verdict(r: Ratio): string {
  if (r.limit === undefined) return '';
  if (r.overall === undefined) return 'not measured';
  return r.overall <= r.limit ? 'PASS' : 'FAIL';
}

function stepRows(runs: ToolRun[]): string[][] {
  return runs.map((run) => [
    run.step.label,
    formatSeconds(run.step.durationMs),
    run.storedBytes === undefined ? '-' : `${formatMib(run.storedBytes)} (${run.storedBytes} bytes)`,
    formatMb(run.step.usage.root.peakRssBytes),
    run.step.usage.root.cpuSeconds.toFixed(1),
    sumCpu(run.step.usage.descendants).toFixed(1),
    run.step.serverCpuSeconds.toFixed(1),
    run.step.otherCpuSeconds.toFixed(1),
  ]);
}

/** Formats the whole report; the last line is the result as one JSON object. */
export function formatPhysicalReport(result: PhysicalResult): string {
  const { machine } = result;
  const lines: string[] = ['drplan physical benchmark', ''];
  lines.push(`machine:    ${machine.cpus} CPUs (${machine.cpuModel}), ${formatGib(machine.memoryBytes)} memory, ${machine.platform}`);
  lines.push(`software:   Node.js ${machine.node}, ${machine.postgres}, ${machine.pgBackRest}, zstd ${machine.zstd}`);
  lines.push(`server:     ${Object.entries(result.serverSettings).map(([name, value]) => `${name}=${value}`).join(' ')} (archive_command then set to the script pushing to both tools)`);
  lines.push(`pgBackRest: ${Object.entries(PGBACKREST_OPTIONS).map(([name, value]) => `${name}=${value}`).join(' ')}, repository on local disk`);
  lines.push(`drplan:     plan defaults (zstd level 3), file:// repository on local disk`);
  lines.push(`database:   ${result.database.name} ${formatGib(result.database.sizeBytes)} (${Object.entries(result.database.rows).map(([t, n]) => `${t}=${n}`).join(' ')}); whole cluster ${formatGib(result.clusterBytes)}`);
  lines.push('');

  const header = ['step', 'wall time', 'stored size', 'peak RSS (VmHWM)', 'CPU s: process', 'CPU s: children', 'CPU s: server', 'CPU s: rest of machine'];
  lines.push(formatTable(header, stepRows([...result.backups, ...result.restores])));
  lines.push('');
  lines.push('child processes of each step (peak RSS is the largest VmHWM of any one process; CPU is summed):');
  for (const run of [...result.backups, ...result.restores]) {
    const children = run.step.usage.descendants;
    const text = children.length === 0 ? '(none)' : children.map((c) => `${c.program} x${c.processes}: ${formatMb(c.peakRssBytes)}, ${c.cpuSeconds.toFixed(1)} s CPU`).join('; ');
    lines.push(`  ${run.step.label}: ${text}`);
  }
  const logged = [...result.backups, ...result.restores].filter((run) => run.step.logEvents.length > 0);
  if (logged.length > 0) {
    lines.push('');
    lines.push("drplan's log messages, at seconds since the process started:");
    for (const run of logged) {
      lines.push(`  ${run.step.label}: ${run.step.logEvents.map((e) => `${(e.atMs / 1000).toFixed(1)} ${e.message}`).join(', ')}, ${(run.step.durationMs / 1000).toFixed(1)} exit`);
    }
  }
  lines.push('');
  lines.push('restored copies, started on a new port until recovery ended:');
  for (const check of result.checks) lines.push(`  ${check.tool}: recovery finished ${check.recoverySeconds.toFixed(1)} s after start, row counts equal to the source`);
  lines.push('');
  lines.push(`WAL push, ${formatMib(result.walPush.segmentBytes)} segments, one program run per segment:`);
  lines.push(
    formatTable(
      ['tool', 'mode', 'round', 'segments', 'wall time until stored', 'segments/s', 'last push returned after'],
      result.walPush.runs.map((r) => [r.tool, r.mode, String(r.round), String(r.segments), formatSeconds(r.durationMs), r.segmentsPerSecond.toFixed(2), r.acceptedMs === undefined ? '-' : formatSeconds(r.acceptedMs)]),
    ),
  );
  for (const note of result.walPush.notes) lines.push(`  note: ${note}`);
  lines.push('');
  lines.push(...formatSummary(result));
  lines.push('');
  lines.push(JSON.stringify(result));
  return `${lines.join('\n')}\n`;
}

function perTool(runs: ToolRun[], tool: Tool, value: (run: ToolRun) => string): string {
  const mine = runs.filter((run) => run.tool === tool);
  return mine.length === 0 ? 'not measured' : mine.map(value).join(' / ');
}

function formatSummary(result: PhysicalResult): string[] {
  const { machine } = result;
  const ratios = physicalRatios(result);
  const seconds = (run: ToolRun) => formatSeconds(run.step.durationMs);
  const size = (run: ToolRun) => (run.storedBytes === undefined ? '-' : formatMib(run.storedBytes));
  const rss = (run: ToolRun) => formatMb(run.step.usage.root.peakRssBytes);
  const walRate = (tool: Tool, mode: 'sync' | 'async') => {
    const runs = result.walPush.runs.filter((r) => r.tool === tool && r.mode === mode);
    return runs.length === 0 ? 'not measured' : `${runs.map((r) => r.segmentsPerSecond.toFixed(2)).join(' / ')} segments/s`;
  };
  const lines = [
    `summary (rounds separated by "/"; round 1 ran pgBackRest first, round 2 drplan first)`,
    `  machine:           ${machine.cpus} CPUs, ${formatGib(machine.memoryBytes)} memory`,
    `  versions:          ${machine.postgres}, ${machine.pgBackRest}, zstd ${machine.zstd}, Node.js ${machine.node}`,
    `  cluster size:      ${formatGib(result.clusterBytes)}`,
    `  backup time:       drplan ${perTool(result.backups, 'drplan', seconds)}; pgBackRest ${perTool(result.backups, 'pgBackRest', seconds)}`,
    `  restore time:      drplan ${perTool(result.restores, 'drplan', seconds)}; pgBackRest ${perTool(result.restores, 'pgBackRest', seconds)}`,
    `  stored size:       drplan ${perTool(result.backups, 'drplan', size)}; pgBackRest ${perTool(result.backups, 'pgBackRest', size)}`,
    `  drplan peak RSS:   backup ${perTool(result.backups, 'drplan', rss)}; restore ${perTool(result.restores, 'drplan', rss)} (the drplan process; zstd and pg_basebackup are separate)`,
    `  WAL push (sync):   drplan ${walRate('drplan', 'sync')}; pgBackRest ${walRate('pgBackRest', 'sync')}`,
    `  WAL push (async):  drplan ${walRate('drplan', 'async')} (until stored); pgBackRest not measured`,
  ];
  for (const r of ratios) {
    const limit = r.limit === undefined ? '' : `, target <= ${r.limit.toFixed(1)}: ${verdict(r)}`;
    lines.push(`  ratio ${`${r.name}:`.padEnd(13)} ${formatRatio(r.overall)} over all rounds (per round ${r.perRound.map(formatRatio).join(' / ')})${limit}`);
  }
  return lines;
}

