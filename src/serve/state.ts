/**
 * The daemon's state file: the last run of each job, kept across restarts so
 * that a run missed while the daemon was down is caught up once at start.
 * It lives in `server.stateDir` as `jobs.json`, written atomically (a temp
 * file renamed over the old one). Losing it is harmless: jobs then start
 * with no missed run, as on a first start.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { ServerConfig } from '../config/schema.js';
import type { Logger } from '../logging.js';

const lastRunSchema = z.object({
  runId: z.string(),
  trigger: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  result: z.enum(['succeeded', 'failed', 'aborted']),
  error: z.string().optional(),
  /**
   * When job.failed was last sent for the failure this run belongs to. It is
   * kept over failed and aborted runs until a run succeeds, so that another
   * process (`serve --once`, or the daemon after a restart) suppresses
   * repeats and sends job.recovered.
   */
  failureAlertedAt: z.string().optional(),
});

const stateSchema = z.object({ formatVersion: z.literal(1), jobs: z.record(z.string(), lastRunSchema) });

/** The outcome of a finished run of a job. */
export type LastRun = z.infer<typeof lastRunSchema>;

/** Returns the state directory: `server.stateDir`, else $STATE_DIRECTORY (set by systemd's StateDirectory=), else ~/.local/state/drplan. */
export function stateDirectory(server: ServerConfig, env: NodeJS.ProcessEnv = process.env): string {
  if (server.stateDir) return path.resolve(server.stateDir);
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  if (systemd) return systemd;
  return path.join(env.XDG_STATE_HOME ?? path.join(homedir(), '.local', 'state'), 'drplan');
}

/** Last runs by job name, loaded from and saved to one file. */
export class JobState {
  private readonly file: string;
  private jobs: Record<string, LastRun> = {};
  private writing: Promise<void> = Promise.resolve();

  constructor(
    directory: string,
    private readonly log: Logger,
  ) {
    this.file = path.join(directory, 'jobs.json');
  }

  /** Reads the file; a missing file is an empty state, an unreadable one is logged and ignored. */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file: this.file, err }, 'cannot read the job state file; starting without last runs');
      return;
    }
    const parsed = stateSchema.safeParse(safeJson(text));
    if (parsed.success) this.jobs = parsed.data.jobs;
    else this.log.warn({ file: this.file }, 'the job state file is invalid; starting without last runs');
  }

  lastRun(job: string): LastRun | undefined {
    return this.jobs[job];
  }

  /**
   * Returns when job.failed was last sent for the job's current failure, or
   * undefined when its last run succeeded. A failed run recorded without the
   * field (by an older drplan, which alerted on every failure) counts as
   * alerted when it finished.
   */
  failureAlertedAt(job: string): Date | undefined {
    const last = this.jobs[job];
    if (last === undefined || last.result === 'succeeded') return undefined;
    if (last.failureAlertedAt !== undefined) return new Date(last.failureAlertedAt);
    return last.result === 'failed' ? new Date(last.finishedAt) : undefined;
  }

  /** Records a finished run and writes the file; writes are serialized so the newest state wins. */
  async record(job: string, run: LastRun): Promise<void> {
    this.jobs[job] = run;
    const snapshot = JSON.stringify({ formatVersion: 1, jobs: this.jobs }, null, 2);
    this.writing = this.writing.then(() => this.write(snapshot));
    await this.writing;
  }

  private async write(text: string): Promise<void> {
    try {
      await mkdir(path.dirname(this.file), { recursive: true });
      const temp = `${this.file}.${process.pid}.tmp`;
      await writeFile(temp, `${text}\n`);
      await rename(temp, this.file);
    } catch (err) {
      this.log.error({ file: this.file, err }, 'cannot write the job state file; a missed run may not be caught up after a restart');
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
