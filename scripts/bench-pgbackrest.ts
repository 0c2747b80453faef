/**
 * The pgBackRest side of the physical benchmark: a stanza for the throwaway
 * cluster with its own configuration file and a repository on local disk.
 * The benchmark times its full backup and restore, and uses archive-push in
 * the archive_command and archive-get in the restored server's
 * restore_command.
 *
 * Every pgBackRest command runs as the server's owner, as pgBackRest expects:
 * it reads the data directory and writes files that the server reads.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ToolError } from '../src/errors.js';
import type { ThrowawayCluster } from '../src/postgres/cluster.js';
import { runProcess } from '../src/util/process.js';

export const STANZA = 'bench';
const PROGRAM = 'pgbackrest';

/**
 * Options of the comparison. Compression is zstd (pgBackRest calls it `zst`)
 * at level 3, pgBackRest's default for zstd and drplan's default too. Two
 * processes compress and transfer, the backup starts with a fast checkpoint,
 * and it succeeds only once the WAL that makes it consistent is archived.
 */
export const PGBACKREST_OPTIONS: Record<string, string> = {
  'compress-type': 'zst',
  'compress-level': '3',
  'process-max': '2',
  'start-fast': 'y',
  'archive-check': 'y',
};

/** Paths of one stanza's files, and the user and environment to run pgBackRest with. */
export interface PgBackRestSetup {
  configFile: string;
  repositoryDir: string;
  /** Environment for every pgBackRest command: PGPASSFILE, so the password is never in argv or in the configuration. */
  env: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
}

/**
 * Returns pgBackRest's version line, such as "pgBackRest 2.45", or throws an
 * error that explains how to install it.
 */
export async function pgBackRestVersion(signal: AbortSignal): Promise<string> {
  try {
    return (await runProcess(PROGRAM, ['version'], { operation: 'read the pgBackRest version', signal, timeoutMs: 30_000 })).trim();
  } catch (error) {
    if (error instanceof ToolError && error.code === 'process.start') {
      throw new Error(
        'pgBackRest is not installed, and the physical benchmark compares drplan with it. ' +
          'Install it (on Debian or Ubuntu: apt-get install -y pgbackrest) and run `npm run bench:physical` again.',
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Writes the configuration file and the password file into `dir` (which the
 * server's owner must be able to write) and returns how to run pgBackRest.
 * The socket directory of the throwaway cluster is the parent of its data
 * directory.
 */
export async function writePgBackRestConfig(dir: string, cluster: ThrowawayCluster, owner: { uid?: number; gid?: number }): Promise<PgBackRestSetup> {
  const configFile = join(dir, 'pgbackrest.conf');
  const repositoryDir = join(dir, 'repository');
  const passFile = join(dir, 'pgpass');
  const global: Record<string, string> = {
    'repo1-path': repositoryDir,
    // Each backup is kept: expiring one during the benchmark would time the
    // expire command too and remove what a later restore needs.
    'repo1-retention-full': '100',
    'log-path': join(dir, 'log'),
    'lock-path': join(dir, 'lock'),
    'spool-path': join(dir, 'spool'),
    'log-level-console': 'warn',
    'log-level-file': 'info',
    ...PGBACKREST_OPTIONS,
  };
  const stanza: Record<string, string> = {
    'pg1-path': cluster.dataDir,
    'pg1-port': String(cluster.port),
    'pg1-socket-path': join(cluster.dataDir, '..'),
    'pg1-user': cluster.superuser,
  };
  const section = (name: string, options: Record<string, string>) => [`[${name}]`, ...Object.entries(options).map(([key, value]) => `${key}=${value}`), ''];
  await writeFile(configFile, [...section('global', global), ...section(STANZA, stanza)].join('\n'), { mode: 0o600 });
  await writeFile(passFile, `*:*:*:${cluster.superuser}:${cluster.password}\n`, { mode: 0o600 });
  return { configFile, repositoryDir, env: { PGPASSFILE: passFile }, uid: owner.uid, gid: owner.gid };
}

/** Returns the arguments that select the configuration file and the stanza, before the command name. */
export function pgBackRestArgs(setup: PgBackRestSetup, command: string, extra: string[] = []): string[] {
  return [`--config=${setup.configFile}`, `--stanza=${STANZA}`, ...extra, command];
}

/** Runs one pgBackRest command as the server's owner, untimed. */
export async function runPgBackRest(setup: PgBackRestSetup, command: string, extra: string[], signal: AbortSignal): Promise<string> {
  return runProcess(PROGRAM, pgBackRestArgs(setup, command, extra), {
    env: setup.env,
    uid: setup.uid,
    gid: setup.gid,
    signal,
    operation: `pgbackrest ${command}`,
  });
}

/** A backup as `pgbackrest info` describes it. */
export interface PgBackRestBackupInfo {
  label: string;
  type: string;
  /** Bytes of the cluster's files that the backup contains. */
  databaseBytes: number;
  /** Bytes that the backup takes in the repository, compressed. */
  repositoryBytes: number;
}

interface InfoJson {
  name: string;
  backup: { label: string; type: string; info: { size: number; repository: { size: number } } }[];
}

/** Lists the stanza's backups, oldest first. */
export async function listPgBackRestBackups(setup: PgBackRestSetup, signal: AbortSignal): Promise<PgBackRestBackupInfo[]> {
  const output = await runPgBackRest(setup, 'info', ['--output=json'], signal);
  const stanzas = JSON.parse(output) as InfoJson[];
  const stanza = stanzas.find((entry) => entry.name === STANZA);
  if (!stanza) throw new Error(`pgbackrest info does not list stanza ${STANZA}: ${output.slice(0, 500)}`);
  return stanza.backup.map((backup) => ({
    label: backup.label,
    type: backup.type,
    databaseBytes: backup.info.size,
    repositoryBytes: backup.info.repository.size,
  }));
}
