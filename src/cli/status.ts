/** `drplan status`: objectives next to measured values; exit 4 on broken archived WAL, 6 when an objective is breached. */
import type { Command } from 'commander';
import { DrplanError, ExitCode, IntegrityError, StorageError } from '../errors.js';
import { buildStatus, type ObjectiveStatus, type StatusReport } from '../status/status.js';
import { formatAge } from '../util/duration.js';
import { formatBytes, loadContext, printJson, type GlobalOptions } from './common.js';

/** Raised after printing the report, so the CLI exits 6 without a second message. */
class ObjectiveBreachedError extends DrplanError {
  override readonly exitCode = ExitCode.objectiveBreached;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('measured RPO and RTO against the objectives, last failure, repository state; exits 4 when a WAL gap breaks the newest physical backup\'s chain, 6 on a breach, 3 when a repository is unreachable')
    .option('--json', 'print the report as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
      const report = await buildStatus(context);
      if (options.json) printJson(report);
      else printReport(report);
      const unreachable = report.repositories.filter((r) => !r.reachable);
      if (report.ok && unreachable.length > 0) {
        throw new StorageError(`repository unreachable: ${unreachable.map((r) => r.repository).join(', ')}`, {
          code: 'status.unreachable',
          hint: 'The objectives hold on the other repositories; fix the unreachable ones before they are needed.',
        });
      }
      const brokenWal = report.databases.filter((d) => d.wal.broken);
      if (brokenWal.length > 0) {
        const chains = brokenWal.map((d) => `${d.database} (base backup ${d.wal.chains.at(-1)!.backupId}, first missing ${d.wal.chains.at(-1)!.gaps[0]!.first})`);
        throw new IntegrityError(`archived WAL has a gap that breaks point-in-time recovery: ${chains.join(', ')}`, {
          code: 'status.wal_broken',
          hint: "`drplan wal status` lists the gaps; push the missing segments from the server's pg_wal with `drplan wal push`, or take a new physical base backup.",
        });
      }
      if (!report.ok) {
        const breached = report.databases.flatMap((d) => [d.rpo.state === 'breached' ? `${d.database} RPO` : '', d.rto.state === 'breached' ? `${d.database} RTO` : '']).filter(Boolean);
        throw new ObjectiveBreachedError(`objective breached: ${breached.join(', ')}`, {
          code: 'status.breached',
          hint: 'Take a backup (`drplan backup`) for an RPO breach; find out why the test restore is slow for an RTO breach (`drplan verify --deep`).',
        });
      }
    });
}

function printReport(report: StatusReport): void {
  const walBroken = report.databases.some((d) => d.wal.broken);
  let summary = 'all objectives met';
  if (!report.ok) summary = walBroken ? 'ARCHIVED WAL BROKEN' : 'OBJECTIVE BREACHED';
  process.stdout.write(`status at ${report.at}: ${summary}\n`);
  for (const d of report.databases) {
    process.stdout.write(`\ndatabase ${d.database}\n`);
    const backup = d.rpo.newestGoodBackup ? ` (newest good backup ${d.rpo.newestGoodBackup.id})` : ' (no good backup)';
    process.stdout.write(`  RPO  ${objectiveLine(d.rpo)}${backup}\n`);
    const proof = d.rto.verification ? ` (test restore of ${d.rto.verification.backupId} at ${d.rto.verification.finishedAt})` : ' (no passed deep verification)';
    process.stdout.write(`  RTO  ${objectiveLine(d.rto)}${proof}\n`);
    process.stdout.write(`  WAL  ${walLine(d.wal)}\n`);
    if (d.lastFailure) process.stdout.write(`  last failure: ${d.lastFailure.kind} at ${d.lastFailure.at}: ${d.lastFailure.message.split('\n')[0]}\n`);
  }
  process.stdout.write('\nrepositories\n');
  for (const r of report.repositories) {
    const state = r.reachable ? 'reachable' : `UNREACHABLE: ${r.error ?? 'could not list'}`;
    process.stdout.write(`  ${r.repository}: ${state}, ${r.backups} ${r.backups === 1 ? 'backup' : 'backups'}, ${formatBytes(r.bytes)}\n`);
  }
}

function walLine(wal: StatusReport['databases'][number]['wal']): string {
  if (wal.files === 0) return 'nothing archived';
  const ranges = wal.timelines.map((t) => `timeline ${t.timeline} ${t.first} to ${t.last}`).join(', ');
  const gaps = wal.timelines.flatMap((t) => t.gaps.map((g) => (g.count === 1 ? g.first : `${g.first} to ${g.last}`)));
  const broken = wal.chains.filter((c) => !c.ok).map((c) => c.backupId);
  const age = wal.rpoSeconds === null ? '' : `, newest ${formatAge(wal.rpoSeconds * 1000)} ago`;
  const gapText = gaps.length > 0 ? `, gaps: ${gaps.join(', ')}` : ', no gaps';
  let chainText = '';
  if (wal.broken) chainText = `, BROKEN chain of the newest base backup ${broken.at(-1)}`;
  else if (broken.length > 0) chainText = `, broken chain of older ${broken.join(', ')}`;
  return `${ranges}${age}${gapText}${chainText}`;
}

function objectiveLine(o: ObjectiveStatus): string {
  const measured = o.measuredSeconds === null ? undefined : formatAge(o.measuredSeconds * 1000);
  if (o.state === 'no objective') return `no objective set${measured ? `, measured ${measured}` : ''}`;
  if (o.state === 'unmeasured') return `objective ${o.objective}, not measured yet`;
  if (measured === undefined) return `objective ${o.objective}, nothing to measure: BREACHED`;
  return `measured ${measured}, objective ${o.objective}: ${o.state === 'met' ? 'met' : 'BREACHED'}`;
}
