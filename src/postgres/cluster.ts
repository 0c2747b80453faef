/**
 * Throwaway PostgreSQL clusters: a private data directory in a temp folder,
 * a server on 127.0.0.1 with password login, and one call that stops the
 * server and deletes everything. The demo, the tests and restore verification
 * use them so that nothing touches a real server.
 */
import { randomBytes } from 'node:crypto';
import { access, chown, constants, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortedError, ToolError } from '../errors.js';
import { runProcess } from '../util/process.js';
import { renderSetting } from './config-file.js';

const POSTGRES_ROOT = '/usr/lib/postgresql';
const HOST = '127.0.0.1';
const SUPERUSER = 'postgres';
const START_ATTEMPTS = 3;
const LOG_TAIL_LINES = 20;
const INSTALL_HINT = 'Install the PostgreSQL server binaries (on Debian: apt-get install postgresql-15) or pass binDir.';

export interface ThrowawayCluster {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Directory of the PostgreSQL programs that run this cluster (psql, pg_dump and pg_restore of the same version are there too). */
  readonly binDir: string;
  readonly superuser: string;
  readonly password: string;
  /** Returns a libpq URI that includes the superuser's password. The database defaults to `postgres`. */
  url(database?: string): string;
  /** Stops the server (fast shutdown) and removes the whole temp directory. Safe to call more than once. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Directory containing initdb and pg_ctl; defaults to the newest /usr/lib/postgresql/N/bin. */
  binDir?: string;
  /** Superuser password. A random one is generated when omitted. */
  password?: string;
  /** Extra server settings such as `{ fsync: 'off' }`. They cannot override port, listen_addresses or unix_socket_directories. */
  settings?: Record<string, string>;
  signal?: AbortSignal;
}

/** User and group for initdb and the server: `postgres` when drplan runs as root, because PostgreSQL does not run as root. */
export interface ServerOwner {
  uid?: number;
  gid?: number;
}

/** Finds the newest /usr/lib/postgresql/N/bin that contains initdb, or the one for `major` when given. */
export async function findPostgresBinDir(major?: number): Promise<string> {
  const entries = await readdir(POSTGRES_ROOT).catch(() => [] as string[]);
  const majors = entries
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((version) => major === undefined || version === major)
    .sort((a, b) => b - a);
  for (const version of majors) {
    const binDir = join(POSTGRES_ROOT, String(version), 'bin');
    if (await isExecutable(join(binDir, 'initdb'))) return binDir;
  }
  const missing = major === undefined ? 'PostgreSQL server binaries' : `PostgreSQL ${major} server binaries`;
  throw new ToolError(`${missing} not found: no ${POSTGRES_ROOT}/${major ?? 'N'}/bin/initdb`, {
    code: 'postgres.binaries_missing',
    operation: 'start throwaway cluster',
    object: POSTGRES_ROOT,
    hint: INSTALL_HINT,
  });
}

/** Creates, configures and starts a new cluster in a fresh temp directory. */
export async function startThrowawayCluster(options: ClusterOptions = {}): Promise<ThrowawayCluster> {
  const binDir = options.binDir ?? (await findPostgresBinDir());
  const password = options.password ?? randomBytes(18).toString('base64url');
  const signal = options.signal;
  const owner = await serverOwner(signal);
  const root = await mkdtemp(join(tmpdir(), 'drplan-cluster-'));
  const dataDir = join(root, 'data');
  try {
    await makeOwnedDir(root, owner);
    await makeOwnedDir(dataDir, owner);
    await initCluster(binDir, root, dataDir, password, owner, signal);
    const port = await startServer(binDir, root, dataDir, options.settings ?? {}, owner, signal);
    return clusterHandle(binDir, root, dataDir, port, password, owner);
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

/** Returns the user to run PostgreSQL as: `postgres` when drplan runs as root, else the current user (empty). */
export async function serverOwner(signal?: AbortSignal): Promise<ServerOwner> {
  if (process.getuid?.() !== 0) return {};
  const lookup = (flag: string) =>
    runProcess('id', [flag, SUPERUSER], { operation: 'look up the postgres system user', signal, timeoutMs: 10_000 });
  try {
    return { uid: Number((await lookup('-u')).trim()), gid: Number((await lookup('-g')).trim()) };
  } catch (error) {
    if (error instanceof AbortedError) throw error;
    throw new ToolError('PostgreSQL cannot run as root, and the `postgres` system user to run it as was not found', {
      code: 'postgres.no_server_user',
      operation: 'start throwaway cluster',
      object: SUPERUSER,
      hint: `${INSTALL_HINT} The Debian package creates the postgres user; or run drplan as a non-root user.`,
      cause: error,
    });
  }
}

async function makeOwnedDir(dir: string, owner: ServerOwner): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (owner.uid !== undefined && owner.gid !== undefined) await chown(dir, owner.uid, owner.gid);
}

async function initCluster(
  binDir: string,
  root: string,
  dataDir: string,
  password: string,
  owner: ServerOwner,
  signal?: AbortSignal,
): Promise<void> {
  // initdb reads the password from a file so that it never appears in argv.
  const pwfile = join(root, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    if (owner.uid !== undefined && owner.gid !== undefined) await chown(pwfile, owner.uid, owner.gid);
    const args = ['-D', dataDir, '--auth=scram-sha-256', `--username=${SUPERUSER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C.UTF-8'];
    await runProcess(join(binDir, 'initdb'), args, { operation: 'initialize throwaway cluster', cwd: root, signal, ...owner });
  } finally {
    await rm(pwfile, { force: true });
  }
}

/** Starts the server on a free port and returns the port, trying another port when the chosen one was taken meanwhile. */
async function startServer(
  binDir: string,
  root: string,
  dataDir: string,
  settings: Record<string, string>,
  owner: ServerOwner,
  signal?: AbortSignal,
): Promise<number> {
  const logFile = join(root, 'server.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const managed = { port: String(port), listen_addresses: HOST, unix_socket_directories: root };
    // postgresql.auto.conf is read after postgresql.conf, so these values win. Each attempt rewrites the whole file.
    await writeFile(join(dataDir, 'postgresql.auto.conf'), renderSettings({ ...settings, ...managed }));
    // pg_ctl appends to the log, so only this attempt's lines decide whether to retry.
    const logStart = await stat(logFile).then((info) => info.size, () => 0);
    try {
      const args = ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'];
      await runProcess(join(binDir, 'pg_ctl'), args, { operation: 'start throwaway cluster', cwd: root, signal, ...owner });
      return port;
    } catch (error) {
      const log = await logTail(logFile, logStart);
      // pg_ctl gives up after its timeout without stopping a server that is still starting.
      await stopServer(binDir, root, dataDir, 'immediate', owner).catch(() => undefined);
      if (error instanceof AbortedError) throw error;
      if (/Address already in use|could not create any TCP\/IP sockets/.test(log) && attempt < START_ATTEMPTS) continue;
      throw new ToolError(`start throwaway cluster failed on port ${port}; last lines of the server log:\n${log || '(empty)'}`, {
        code: 'postgres.start_failed',
        operation: 'start throwaway cluster',
        object: dataDir,
        cause: error,
      });
    }
  }
}

function clusterHandle(
  binDir: string,
  root: string,
  dataDir: string,
  port: number,
  password: string,
  owner: ServerOwner,
): ThrowawayCluster {
  let stopping: Promise<void> | undefined;
  const stop = async () => {
    let failure: unknown;
    await stopServer(binDir, root, dataDir, 'fast', owner).catch(async (error: unknown) => {
      await stopServer(binDir, root, dataDir, 'immediate', owner).catch(() => {
        failure = error;
      });
    });
    // A server that could not be stopped shuts down when it next finds its lock file gone (the postmaster
    // checks about once a minute), but the caller still learns of the failure.
    await rm(root, { recursive: true, force: true });
    if (failure !== undefined) throw failure;
  };
  return {
    host: HOST,
    port,
    dataDir,
    binDir,
    superuser: SUPERUSER,
    password,
    url: (database = 'postgres') =>
      `postgres://${encodeURIComponent(SUPERUSER)}:${encodeURIComponent(password)}@${HOST}:${port}/${encodeURIComponent(database)}`,
    stop: () => (stopping ??= stop()),
  };
}

async function stopServer(binDir: string, root: string, dataDir: string, mode: 'fast' | 'immediate', owner: ServerOwner): Promise<void> {
  if (!(await isRunning(dataDir))) return;
  const args = ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop'];
  await runProcess(join(binDir, 'pg_ctl'), args, { operation: 'stop throwaway cluster', cwd: root, ...owner });
}

/** Tells whether a server holds the data directory, judged by its lock file. */
async function isRunning(dataDir: string): Promise<boolean> {
  return access(join(dataDir, 'postmaster.pid')).then(
    () => true,
    () => false,
  );
}

/** Returns a port that was free on 127.0.0.1 a moment ago. Another process may take it before the server binds it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port assigned'))));
    });
  });
}

function renderSettings(settings: Record<string, string>): string {
  const lines = Object.entries(settings).map(([name, value]) => renderSetting(name, value));
  return `# Written by drplan for a throwaway cluster.\n${lines.join('\n')}\n`;
}

async function logTail(logFile: string, start: number): Promise<string> {
  const text = (await readFile(logFile).catch(() => Buffer.alloc(0))).subarray(start).toString('utf8');
  return text.trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
}

async function isExecutable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}
