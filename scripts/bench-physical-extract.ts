/**
 * Restores drplan's latest physical backup of a database into an empty data
 * directory with the library calls that `drplan restore --pitr` makes before
 * it starts a server. It extracts the base backup (checking its SHA-256),
 * then writes restore_command and recovery.signal for recovery to the end of
 * the archived WAL. The physical benchmark times this program on builds
 * whose CLI has no `restore --pitr` yet.
 *
 * Usage: node dist/scripts/bench-physical-extract.js PLAN DATABASE DATA_DIR
 */
import { findBackup, readCatalog } from '../src/backup/catalog.js';
import { extractPhysicalBackup } from '../src/backup/physical-restore.js';
import { loadPlan } from '../src/config/load.js';
import { createContext } from '../src/context.js';
import { createLogger } from '../src/logging.js';
import { restoreCommandFor, writeRecoveryConfig } from '../src/restore/recovery-config.js';

async function main(argv: string[]): Promise<void> {
  const [planFile, database, dataDir] = argv;
  if (!planFile || !database || !dataDir) throw new Error('usage: bench-physical-extract.js PLAN DATABASE DATA_DIR');
  const context = await createContext(await loadPlan(planFile), createLogger());
  const catalog = await readCatalog(context, database);
  const physical = { ...catalog, entries: catalog.entries.filter((entry) => entry.meta.kind === 'physical') };
  const entry = findBackup(physical, 'latest', database);
  const extracted = await extractPhysicalBackup(context, entry, dataDir);
  await writeRecoveryConfig(dataDir, { restoreCommand: restoreCommandFor(planFile, database), target: { kind: 'latest' }, socketDir: dataDir, archive: false });
  process.stdout.write(`${JSON.stringify({ backup: entry.id, repository: extracted.repository })}\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
