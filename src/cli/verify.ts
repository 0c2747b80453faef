/** `drplan verify`: check every copy of a backup against its metadata. */
import type { Command } from 'commander';
import { findBackup, readCatalog } from '../backup/catalog.js';
import { IntegrityError } from '../errors.js';
import { verifyBackup } from '../verify/verify-backup.js';
import { interruptSignal, loadContext, printJson, type GlobalOptions } from './common.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check size, SHA-256 and archive readability of a backup on every repository')
    .argument('[backup]', 'backup id, or "latest"', 'latest')
    .option('--database <name>', 'database the backup belongs to')
    .option('--json', 'print the result as JSON')
    .action(async (backup: string, options: { database?: string; json?: boolean }, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>());
      const entry = findBackup(await readCatalog(context, options.database), backup, options.database);
      const result = await verifyBackup(entry, context.log.child({ component: 'verify' }), interruptSignal());
      if (options.json) printJson(result);
      else {
        for (const copy of result.copies) {
          process.stdout.write(`${copy.ok ? 'ok  ' : 'FAIL'} ${copy.repository} ${copy.object}\n`);
          for (const check of copy.checks) process.stdout.write(`     ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}\n`);
        }
      }
      if (!result.ok) {
        const failed = result.copies.flatMap((c) => c.checks.filter((k) => !k.ok).map((k) => k.detail));
        throw new IntegrityError(`backup ${entry.id} failed verification:\n  ${failed.join('\n  ')}`, { code: 'verify.failed', object: entry.id });
      }
    });
}
