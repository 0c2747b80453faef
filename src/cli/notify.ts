/** `drplan notify test`: sends a test alert through the plan's notification channels and reports each one. */
import type { Command } from 'commander';
import { loadPlan, resolveConfigPath } from '../config/load.js';
import { ConnectionError } from '../errors.js';
import { sendTestAlerts, type ChannelTestResult } from '../notify/test-alert.js';
import { formatDuration, printJson, type GlobalOptions } from './common.js';

export function registerNotify(program: Command): void {
  const notify = program.command('notify').description('notification channels (webhook, Slack, e-mail, PagerDuty)');
  notify
    .command('test')
    .description('send a test alert through each channel and report delivered or failed; exits 3 when any channel failed')
    .option('--channel <name>', 'test only this channel')
    .option('--json', 'print the results as JSON')
    .action(async (options: { channel?: string; json?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      // Database passwords are not needed to send alerts, so an unset variable in a database URL does not stop the test.
      const plan = await loadPlan(resolveConfigPath(globals.config), process.env, { deferDatabaseVariables: true });
      const results = await sendTestAlerts(plan, options.channel);
      if (options.json) printJson(results);
      else printResults(results);

      const failed = results.filter((result) => !result.delivered);
      if (failed.length > 0) {
        throw new ConnectionError(`test alert failed on ${failed.length} of ${results.length} channels: ${failed.map((result) => result.channel).join(', ')}`, {
          code: 'notify.test-failed',
          operation: 'notify test',
          hint: 'Check the URL, host, port and credentials of each failed channel; the reason is shown next to it.',
        });
      }
    });
}

function printResults(results: ChannelTestResult[]): void {
  for (const result of results) {
    const outcome = result.delivered ? 'delivered' : `FAILED: ${result.reason}`;
    process.stdout.write(`${result.channel} (${result.type}): ${outcome} (${formatDuration(result.durationMs)})\n`);
  }
}
