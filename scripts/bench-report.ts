/**
 * The benchmark's results: their shape, the targets they are judged against,
 * and the text report (tables for a person, then one JSON line for tools).
 */
import type { ProgramUsage, TreeUsage } from './bench-sampler.js';
import type { GeneratedDatabase } from './bench-data.js';

export interface MachineFacts {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  postgres: string;
  zstd: string;
  platform: string;
}

/** One timed child process. */
export interface StepResult {
  label: string;
  durationMs: number;
  /** Size of what the step wrote (dump file or stored backup), in bytes. */
  outputBytes?: number;
  /** Memory and CPU of the process and its descendants. */
  usage: TreeUsage;
  /** CPU seconds of the whole PostgreSQL server (all backends) during the step. */
  serverCpuSeconds: number;
  /**
   * CPU seconds that the rest of the machine used during the step: busy time
   * of all CPUs minus the step's processes and the server. It includes the
   * benchmark's own sampling. A large value means other work competed for
   * the CPUs, which makes the timings less reliable.
   */
  otherCpuSeconds: number;
  /** Log messages of the process with their time since it started. drplan logs one at each phase. */
  logEvents: LogEvent[];
}

export interface LogEvent {
  message: string;
  atMs: number;
}

export interface BreakdownEntry {
  label: string;
  durationMs: number;
  detail?: string;
}

export interface TargetResult {
  name: string;
  measured: number;
  unit: 'ratio' | 'MB';
  comparison: '<=' | '<';
  limit: number;
  pass: boolean;
}

export interface BenchResult {
  machine: MachineFacts;
  serverSettings: Record<string, string>;
  databases: { main: GeneratedDatabase & { targetBytes: number }; small: GeneratedDatabase & { targetBytes: number } };
  pgDump: StepResult;
  drplanBackup: StepResult & { rawBytes: number; internalDurationMs: number };
  drplanBackupSmall: StepResult & { rawBytes: number; internalDurationMs: number };
  pgRestore: StepResult;
  drplanRestore: StepResult & { internalDurationMs: number };
  ratios: { backupTime: number; backupSize: number; restoreTime: number };
  targets: TargetResult[];
  breakdown?: BreakdownEntry[];
}

const MB = 1_000_000;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Judges the measured values against the project's performance targets. */
export function evaluateTargets(result: Omit<BenchResult, 'targets'>): TargetResult[] {
  const target = (name: string, measured: number, unit: TargetResult['unit'], comparison: TargetResult['comparison'], limit: number): TargetResult => ({
    name,
    measured,
    unit,
    comparison,
    limit,
    pass: comparison === '<=' ? measured <= limit : measured < limit,
  });
  // The memory limit is 150 MB in decimal megabytes (150,000,000 bytes), the
  // stricter reading of "150 MB".
  return [
    target('backup time, drplan / pg_dump -Fc', result.ratios.backupTime, 'ratio', '<=', 0.5),
    target('backup size, drplan / pg_dump -Fc', result.ratios.backupSize, 'ratio', '<=', 1.05),
    target('drplan backup peak RSS', result.drplanBackup.usage.root.peakRssBytes / MB, 'MB', '<', 150),
    target('drplan restore peak RSS', result.drplanRestore.usage.root.peakRssBytes / MB, 'MB', '<', 150),
    target('restore time, drplan --jobs 2 / pg_restore', result.ratios.restoreTime, 'ratio', '<=', 1.0),
  ];
}

/** Formats the whole report; the last line is the result as one JSON object. */
export function formatReport(result: BenchResult): string {
  const lines: string[] = [];
  const { machine, databases } = result;
  lines.push('drplan benchmark');
  lines.push('');
  lines.push(`machine:   ${machine.cpus} CPUs (${machine.cpuModel}), ${formatGib(machine.memoryBytes)} memory, ${machine.platform}`);
  lines.push(`software:  Node.js ${machine.node}, ${machine.postgres}, zstd ${machine.zstd}`);
  lines.push(`server:    ${Object.entries(result.serverSettings).map(([name, value]) => `${name}=${value}`).join(' ')}`);
  lines.push('');
  lines.push(
    formatTable(
      ['database', 'target size', 'pg_database_size', 'generated in', 'rows'],
      [databases.main, databases.small].map((db) => [
        db.name,
        formatGib(db.targetBytes),
        `${formatGib(db.sizeBytes)} (${db.sizeBytes} bytes)`,
        formatSeconds(db.durationMs),
        Object.entries(db.rows).map(([table, rows]) => `${table}=${rows}`).join(' '),
      ]),
    ),
  );
  lines.push('');

  const steps = [result.pgDump, result.drplanBackup, result.drplanBackupSmall, result.pgRestore, result.drplanRestore];
  lines.push(
    formatTable(
      ['step', 'wall time', 'output size', 'peak RSS (VmHWM)', 'CPU s: process', 'CPU s: children', 'CPU s: server', 'CPU s: rest of machine'],
      steps.map((step) => [
        step.label,
        formatSeconds(step.durationMs),
        step.outputBytes === undefined ? '-' : `${formatMib(step.outputBytes)} (${step.outputBytes} bytes)`,
        formatMb(step.usage.root.peakRssBytes),
        step.usage.root.cpuSeconds.toFixed(1),
        sumCpu(step.usage.descendants).toFixed(1),
        step.serverCpuSeconds.toFixed(1),
        step.otherCpuSeconds.toFixed(1),
      ]),
    ),
  );
  lines.push('');
  lines.push('child processes of each step (peak RSS is the largest VmHWM of any one process; CPU is summed):');
  for (const step of steps) {
    const children = step.usage.descendants;
    const text = children.length === 0 ? '(none)' : children.map((c) => `${c.program} x${c.processes}: ${formatMb(c.peakRssBytes)}, ${c.cpuSeconds.toFixed(1)} s CPU`).join('; ');
    lines.push(`  ${step.label}: ${text}`);
  }
  lines.push('');
  lines.push("drplan's log messages, at seconds since the process started:");
  for (const step of steps.filter((s) => s.logEvents.length > 0)) {
    lines.push(`  ${step.label}: ${step.logEvents.map((event) => `${(event.atMs / 1000).toFixed(1)} ${event.message}`).join(', ')}, ${(step.durationMs / 1000).toFixed(1)} exit`);
  }
  lines.push('');
  lines.push(
    `drplan backup: ${formatMib(result.drplanBackup.rawBytes)} uncompressed dump, stored ${formatMib(result.drplanBackup.outputBytes ?? 0)}; ` +
      `drplan's own duration ${formatSeconds(result.drplanBackup.internalDurationMs)}; drplan restore's own duration ${formatSeconds(result.drplanRestore.internalDurationMs)}`,
  );
  lines.push(
    `memory vs size: drplan backup peak RSS ${formatMb(result.drplanBackup.usage.root.peakRssBytes)} for ${formatGib(databases.main.sizeBytes)}, ` +
      `${formatMb(result.drplanBackupSmall.usage.root.peakRssBytes)} for ${formatGib(databases.small.sizeBytes)}`,
  );
  lines.push('');
  lines.push(
    formatTable(
      ['target', 'measured', 'limit', 'result'],
      result.targets.map((t) => [
        t.name,
        t.unit === 'MB' ? `${t.measured.toFixed(1)} MB` : t.measured.toFixed(3),
        `${t.comparison} ${t.unit === 'MB' ? `${t.limit} MB` : t.limit.toFixed(2)}`,
        t.pass ? 'PASS' : 'FAIL',
      ]),
    ),
  );
  if (result.breakdown) {
    lines.push('');
    lines.push('breakdown (each part run alone, one after the other, on the main database):');
    lines.push(formatTable(['part', 'wall time', 'detail'], result.breakdown.map((b) => [b.label, formatSeconds(b.durationMs), b.detail ?? ''])));
  }
  lines.push('');
  lines.push(JSON.stringify(result));
  return `${lines.join('\n')}\n`;
}

export function sumCpu(children: ProgramUsage[]): number {
  return children.reduce((total, child) => total + child.cpuSeconds, 0);
}

export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => row[column]!.length)));
  return all.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n');
}

export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function formatMb(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

export function formatMib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

export function formatGib(bytes: number): string {
  return `${(bytes / GIB).toFixed(2)} GiB`;
}
