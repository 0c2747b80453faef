/**
 * Throwaway clusters that archive their WAL with the real `drplan wal push`,
 * and servers that `drplan restore --pitr --start` left running.
 *
 * archive_command and restore_command run as the server's user (`postgres`
 * when the tests run as root), so the plan file and the file repositories
 * are made readable and writable for that user.
 */
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { findPostgresBinDir, serverOwner, startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { stopRecoveryServer } from '../../src/postgres/recovery-server.js';
import { formatCommand } from '../../src/util/shell.js';
import { repoRoot } from './cli.js';
import { query } from './pg.js';

const DRPLAN = path.join(repoRoot, 'bin', 'drplan.js');

/** Opens the plan file and repository directories to the server's user. */
export async function shareWithServer(planFile: string, repositoryDirs: string[]): Promise<void> {
  await chmod(path.dirname(planFile), 0o755);
  await chmod(planFile, 0o644);
  for (const dir of repositoryDirs) await chmod(dir, 0o777);
}

/** Starts a cluster with wal_level = replica and archive_command = `drplan --config PLAN wal push --database DATABASE %p`. */
export async function startArchivingCluster(planFile: string, database: string): Promise<ThrowawayCluster> {
  const archiveCommand = `${formatCommand([process.execPath, DRPLAN, '--config', planFile, 'wal', 'push', '--database', database])} %p`;
  return startThrowawayCluster({ settings: { wal_level: 'replica', archive_mode: 'on', archive_command: archiveCommand } });
}

/** Switches to a new WAL segment and waits until the archiver has stored the old one; returns its name. */
export async function switchWalAndWait(url: string, timeoutMs = 30_000): Promise<string> {
  const [row] = await query<{ name: string }>(url, 'SELECT pg_walfile_name(pg_switch_wal()) AS name');
  const name = row!.name;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [stats] = await query<{ last: string | null; failed: string }>(url, 'SELECT last_archived_wal AS last, failed_count::text AS failed FROM pg_stat_archiver');
    // Names of one timeline sort in WAL order; a segment of a newer timeline sorts after all older ones.
    if (stats!.last !== null && stats!.last >= name) return name;
    if (Date.now() > deadline) throw new Error(`segment ${name} not archived within ${timeoutMs} ms (failed attempts: ${stats!.failed})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Stops a server that `restore --pitr --start` left running in `dataDir`; one already stopped is fine. */
export async function stopRestoredServer(dataDir: string): Promise<void> {
  const binDir = await findPostgresBinDir();
  await stopRecoveryServer({ binDir, dataDir, logFile: path.join(dataDir, 'log', 'drplan-recovery.log'), owner: await serverOwner() });
}
