/**
 * The settings that turn an extracted base backup into a server that
 * recovers to a target: a drplan block at the end of postgresql.auto.conf
 * (read last, so it wins over the backup's own settings) and recovery.signal.
 */
import { access, chown, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ServerOwner } from '../postgres/cluster.js';
import { renderSetting } from '../postgres/config-file.js';
import { DRPLAN_BIN } from '../util/self-command.js';
import { formatCommand } from '../util/shell.js';
import { formatLsn, formatTargetTime, type RecoveryTarget } from './pitr-target.js';

const BLOCK_START = '# BEGIN drplan recovery settings';
const BLOCK_END = '# END drplan recovery settings';
const AUTO_CONF = 'postgresql.auto.conf';


export interface RecoveryConfig {
  /** The full restore_command, as built by `restoreCommandFor`. */
  restoreCommand: string;
  target: RecoveryTarget;
  port?: number;
  /** Directory for the server's Unix socket; the server then listens on 127.0.0.1 only. */
  socketDir: string;
  /** False turns WAL archiving off, so a scratch or test copy never writes into the archive. */
  archive: boolean;
  /**
   * The timeline to follow, chosen by drplan from the archived history files.
   * PostgreSQL's own `latest` would follow any newer timeline in the archive,
   * even one forked from an older backup that this backup cannot reach.
   */
  timeline: number;
}

/**
 * Returns the restore_command that fetches WAL with this drplan: absolute
 * paths to node and drplan and the plan, so it works from the server's
 * working directory and environment. The server runs the command with
 * /bin/sh after replacing %f and %p, so each word is quoted for the shell
 * and a literal % is doubled.
 */
export function restoreCommandFor(planPath: string, database: string, execPath: string = process.execPath, drplanBin: string = DRPLAN_BIN): string {
  const words = [execPath, drplanBin, '--config', path.resolve(planPath), 'wal', 'fetch', '--abort-on-error', '--database', database];
  return `${formatCommand(words).replace(/%/g, '%%')} %f %p`;
}

/**
 * Returns the settings in the order they must be written. Every recovery
 * target setting is cleared first, because PostgreSQL rejects a second target
 * (one left in the backup's configuration, say) and checks that as each value
 * is assigned in file order: the chosen target therefore comes last.
 */
export function recoverySettings(config: RecoveryConfig): [string, string][] {
  const settings: [string, string][] = [
    ['restore_command', config.restoreCommand],
    ['recovery_target', ''],
    ['recovery_target_name', ''],
    ['recovery_target_time', ''],
    ['recovery_target_xid', ''],
    ['recovery_target_lsn', ''],
    ['recovery_target_timeline', String(config.timeline)],
    ['recovery_target_action', 'promote'],
    ['listen_addresses', '127.0.0.1'],
    ['unix_socket_directories', config.socketDir],
  ];
  if (config.port !== undefined) settings.push(['port', String(config.port)]);
  if (!config.archive) settings.push(['archive_mode', 'off']);
  const target = config.target;
  if (target.kind !== 'latest') settings.push(['recovery_target_inclusive', target.inclusive ? 'on' : 'off']);
  if (target.kind === 'time') settings.push(['recovery_target_time', formatTargetTime(target.time)]);
  if (target.kind === 'lsn') settings.push(['recovery_target_lsn', formatLsn(target.lsn)]);
  if (target.kind === 'xid') settings.push(['recovery_target_xid', String(target.xid)]);
  return settings;
}

/** Renders the drplan block of postgresql.auto.conf. */
export function renderRecoveryBlock(config: RecoveryConfig): string {
  const lines = recoverySettings(config).map(([name, value]) => renderSetting(name, value));
  return [
    BLOCK_START,
    '# Written by drplan restore --pitr. PostgreSQL removes recovery.signal when recovery ends;',
    '# these lines can then be removed too (listen_addresses and port stay in force until then).',
    ...lines,
    BLOCK_END,
    '',
  ].join('\n');
}

/**
 * Writes the recovery settings into `dataDir`: replaces an earlier drplan
 * block of postgresql.auto.conf, creates recovery.signal and removes
 * standby.signal (with it the server would stay a standby and never promote).
 * A backup of a server that kept its configuration outside the data
 * directory (Debian keeps it in /etc/postgresql) gets minimal files, without
 * which the server does not start. Files written are given to `owner`, the
 * user the server runs as.
 */
export async function writeRecoveryConfig(dataDir: string, config: RecoveryConfig, owner: ServerOwner = {}): Promise<void> {
  const autoConf = path.join(dataDir, AUTO_CONF);
  const existing = await readFile(autoConf, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const kept = withoutBlock(existing);
  const separator = kept === '' || kept.endsWith('\n') ? '' : '\n';
  const written = [autoConf, path.join(dataDir, 'recovery.signal')];
  await writeFile(autoConf, `${kept}${separator}${renderRecoveryBlock(config)}`, { mode: 0o600 });
  await writeFile(written[1]!, '', { mode: 0o600 });
  await rm(path.join(dataDir, 'standby.signal'), { force: true });
  written.push(...(await writeMissingConfigFiles(dataDir)));
  if (owner.uid === undefined || owner.gid === undefined) return;
  for (const file of written) await chown(file, owner.uid, owner.gid);
}

function withoutBlock(text: string): string {
  const start = text.indexOf(BLOCK_START);
  if (start < 0) return text;
  const end = text.indexOf(BLOCK_END, start);
  const after = end < 0 ? '' : text.slice(end + BLOCK_END.length).replace(/^\n/, '');
  return text.slice(0, start) + after;
}

const MINIMAL_FILES: Record<string, string> = {
  'postgresql.conf': [
    '# Written by drplan: the backup has no postgresql.conf because the server kept it outside',
    '# its data directory. Server defaults apply; copy settings over from the original server.',
    '',
  ].join('\n'),
  'pg_hba.conf': [
    '# Written by drplan: the backup has no pg_hba.conf because the server kept it outside',
    '# its data directory. Local connections only, with passwords over TCP.',
    'local all all peer',
    'host all all 127.0.0.1/32 scram-sha-256',
    'host all all ::1/128 scram-sha-256',
    '',
  ].join('\n'),
  'pg_ident.conf': '# Written by drplan: the backup has no pg_ident.conf.\n',
};

/** Writes each missing configuration file and returns the paths written. */
async function writeMissingConfigFiles(dataDir: string): Promise<string[]> {
  const written: string[] = [];
  for (const [name, content] of Object.entries(MINIMAL_FILES)) {
    const file = path.join(dataDir, name);
    const exists = await access(file).then(
      () => true,
      () => false,
    );
    if (exists) continue;
    await writeFile(file, content, { mode: 0o600 });
    written.push(file);
  }
  return written;
}
