/**
 * The recovery settings as PostgreSQL reads them: `postgres -C NAME` parses
 * the configuration files of a directory and prints one setting's value, so
 * quoting and the order of the target settings are checked by the server's
 * own parser.
 */
import { chown, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findPostgresBinDir, serverOwner, type ServerOwner } from '../../src/postgres/cluster.js';
import { parseRecoveryTarget, type RecoveryTarget } from '../../src/restore/pitr-target.js';
import { renderRecoveryBlock, restoreCommandFor, writeRecoveryConfig, type RecoveryConfig } from '../../src/restore/recovery-config.js';
import { shellQuote } from '../../src/util/shell.js';
import { runProcess } from '../../src/util/process.js';
import { DRPLAN_BIN } from '../../src/util/self-command.js';
import { repoRoot } from '../helpers/cli.js';

let binDir: string;
let owner: ServerOwner;
const dirs: string[] = [];

beforeAll(async () => {
  binDir = await findPostgresBinDir();
  owner = await serverOwner();
});

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function configDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'drplan-recovery-config-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  return dir;
}

/** Prints one setting as the server reads it from `dir`. */
async function serverSetting(dir: string, name: string): Promise<string> {
  if (owner.uid !== undefined) {
    for (const entry of ['', ...(await readdir(dir))]) await chown(path.join(dir, entry), owner.uid, owner.gid!);
  }
  const output = await runProcess(path.join(binDir, 'postgres'), ['-D', dir, '-C', name], { operation: 'postgres -C', ...owner });
  return output.trimEnd();
}

function config(target: RecoveryTarget, overrides: Partial<RecoveryConfig> = {}): RecoveryConfig {
  return { restoreCommand: 'fetch %f %p', target, socketDir: '/tmp/sockets here', archive: true, timeline: 2, ...overrides };
}

describe('restoreCommandFor', () => {
  it('calls this drplan with absolute paths', () => {
    expect(DRPLAN_BIN).toBe(path.join(repoRoot, 'bin', 'drplan.js'));
    expect(restoreCommandFor('/etc/drplan/plan.yaml', 'app', '/usr/bin/node', '/opt/drplan/bin/drplan.js')).toBe(
      '/usr/bin/node /opt/drplan/bin/drplan.js --config /etc/drplan/plan.yaml wal fetch --abort-on-error --database app %f %p',
    );
  });

  it('quotes for the shell and doubles %', () => {
    const command = restoreCommandFor("/srv/it's 100%/plan.yaml", 'app', '/usr/bin/node', '/opt/dr plan/drplan.js');
    expect(command).toBe("/usr/bin/node '/opt/dr plan/drplan.js' --config '/srv/it'\\''s 100%%/plan.yaml' wal fetch --abort-on-error --database app %f %p");
    expect(shellQuote('')).toBe("''");
  });
});

describe('writeRecoveryConfig', () => {
  it('writes settings the server reads back', async () => {
    const dir = await configDir({ 'postgresql.conf': "port = 5432\nrecovery_target_name = 'before-the-accident'\n" });
    const restoreCommand = restoreCommandFor("/srv/it's \\ 100%/plan.yaml", 'app', '/usr/bin/node', '/opt/drplan/bin/drplan.js');
    const target = parseRecoveryTarget({ targetTime: '2026-12-04 14:30:00.000250+01:00' });
    await writeRecoveryConfig(dir, config(target, { restoreCommand, port: 6543 }));

    expect(await serverSetting(dir, 'restore_command')).toBe(restoreCommand);
    expect(await serverSetting(dir, 'recovery_target_time')).toBe('2026-12-04 13:30:00.000250+00:00');
    expect(await serverSetting(dir, 'recovery_target_name')).toBe('');
    expect(await serverSetting(dir, 'recovery_target_timeline')).toBe('2');
    expect(await serverSetting(dir, 'recovery_target_action')).toBe('promote');
    expect(await serverSetting(dir, 'recovery_target_inclusive')).toBe('on');
    expect(await serverSetting(dir, 'port')).toBe('6543');
    expect(await serverSetting(dir, 'listen_addresses')).toBe('127.0.0.1');
    expect(await serverSetting(dir, 'unix_socket_directories')).toBe('/tmp/sockets here');
    expect(await readFile(path.join(dir, 'recovery.signal'), 'utf8')).toBe('');
  });

  it('writes LSN, xid and latest targets', async () => {
    const lsn = await configDir({ 'postgresql.conf': '' });
    await writeRecoveryConfig(lsn, config(parseRecoveryTarget({ targetLsn: '0/3000028', exclusive: true })));
    expect(await serverSetting(lsn, 'recovery_target_lsn')).toBe('0/3000028');
    expect(await serverSetting(lsn, 'recovery_target_inclusive')).toBe('off');

    const xid = await configDir({ 'postgresql.conf': '' });
    await writeRecoveryConfig(xid, config(parseRecoveryTarget({ targetXid: '748' })));
    expect(await serverSetting(xid, 'recovery_target_xid')).toBe('748');

    const latest = await configDir({ 'postgresql.conf': '' });
    await writeRecoveryConfig(latest, config(parseRecoveryTarget({ target: 'latest' })));
    const block = await readFile(path.join(latest, 'postgresql.auto.conf'), 'utf8');
    expect(block).not.toMatch(/recovery_target_(time|lsn|xid) = '.+'/);
    expect(block).not.toContain('recovery_target_inclusive');
  });

  it('turns archiving off when asked', async () => {
    const dir = await configDir({ 'postgresql.conf': "archive_mode = on\narchive_command = 'false'\n" });
    await writeRecoveryConfig(dir, config(parseRecoveryTarget({ target: 'latest' }), { archive: false }));
    expect(await serverSetting(dir, 'archive_mode')).toBe('off');
  });

  it('keeps archiving by default', async () => {
    const dir = await configDir({ 'postgresql.conf': 'archive_mode = on\n' });
    await writeRecoveryConfig(dir, config(parseRecoveryTarget({ target: 'latest' })));
    expect(await serverSetting(dir, 'archive_mode')).toBe('on');
  });

  it('replaces its own block', async () => {
    const dir = await configDir({ 'postgresql.conf': '', 'postgresql.auto.conf': "# Do not edit this file manually!\nwork_mem = '8MB'" });
    await writeRecoveryConfig(dir, config(parseRecoveryTarget({ targetXid: '900' })));
    await writeRecoveryConfig(dir, config(parseRecoveryTarget({ targetLsn: '0/5000000' })));
    const text = await readFile(path.join(dir, 'postgresql.auto.conf'), 'utf8');
    expect(text.startsWith("# Do not edit this file manually!\nwork_mem = '8MB'\n# BEGIN drplan recovery settings\n")).toBe(true);
    expect(text.match(/BEGIN drplan/g)).toHaveLength(1);
    expect(text).not.toContain("'900'");
    expect(await serverSetting(dir, 'work_mem')).toBe('8192');
    expect(await serverSetting(dir, 'recovery_target_lsn')).toBe('0/5000000');
  });

  it('removes standby.signal', async () => {
    const dir = await configDir({ 'postgresql.conf': '', 'standby.signal': '' });
    await writeRecoveryConfig(dir, config(parseRecoveryTarget({ target: 'latest' })));
    expect((await readdir(dir)).sort()).toEqual(['pg_hba.conf', 'pg_ident.conf', 'postgresql.auto.conf', 'postgresql.conf', 'recovery.signal']);
  });

  it('adds configuration files a backup lacks', async () => {
    const dir = await configDir({});
    await writeRecoveryConfig(dir, config(parseRecoveryTarget({ target: 'latest' })));
    expect(await readFile(path.join(dir, 'pg_hba.conf'), 'utf8')).toContain('host all all 127.0.0.1/32 scram-sha-256');
    expect(await serverSetting(dir, 'restore_command')).toBe('fetch %f %p');
  });

  it('renders a commented block', () => {
    const block = renderRecoveryBlock(config(parseRecoveryTarget({ targetXid: '748' }), { port: 5499 }));
    expect(block.split('\n').filter((line) => !line.startsWith('#'))).toEqual([
      "restore_command = 'fetch %f %p'",
      "recovery_target = ''",
      "recovery_target_name = ''",
      "recovery_target_time = ''",
      "recovery_target_xid = ''",
      "recovery_target_lsn = ''",
      "recovery_target_timeline = '2'",
      "recovery_target_action = 'promote'",
      "listen_addresses = '127.0.0.1'",
      "unix_socket_directories = '/tmp/sockets here'",
      "port = '5499'",
      "recovery_target_inclusive = 'on'",
      "recovery_target_xid = '748'",
      '',
    ]);
  });
});
