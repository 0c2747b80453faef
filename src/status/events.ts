/**
 * Failure events: a small record written to the repositories when a backup
 * fails, so that `drplan status` on any machine can show the last failure.
 *
 *   events/<database>/<YYYYMMDDTHHMMSSmmmZ>.json
 *   events/files/<fileset>/<YYYYMMDDTHHMMSSmmmZ>.json   for a file set
 */
import { text } from 'node:stream/consumers';
import type { Logger } from '../logging.js';
import type { Storage } from '../storage/storage.js';
import { keyStamp } from '../util/duration.js';

export interface FailureEvent {
  kind: 'backup' | 'verify';
  /** The database, or for a file-set backup the file set's name. */
  database: string;
  /** Set for a file-set backup, whose events live apart from any database of the same name. */
  fileset?: boolean;
  backupId?: string;
  at: string;
  message: string;
}

/** Writes the event to every storage that accepts it; failures are logged, not thrown. */
export async function recordFailure(storages: Storage[], event: FailureEvent, log: Logger): Promise<void> {
  const subject = event.fileset ? `files/${event.database}` : event.database;
  const key = `events/${subject}/${keyStamp(new Date(event.at))}.json`;
  const body = Buffer.from(`${JSON.stringify(event, null, 2)}\n`);
  await Promise.all(storages.map((s) => s.put(key, body).catch((err) => log.debug({ err, repository: s.name }, 'could not record the failure event'))));
}

/** Reads the newest failure event of `database` from any of the storages. */
export async function lastFailureEvent(storages: Storage[], database: string): Promise<FailureEvent | undefined> {
  let newest: { key: string; storage: Storage } | undefined;
  for (const storage of storages) {
    try {
      const prefix = `events/${database}/`;
      for await (const object of storage.list(prefix)) {
        // For a database named "files", the prefix also lists the events of every file set.
        if (object.key.slice(prefix.length).includes('/')) continue;
        if (!newest || object.key > newest.key) newest = { key: object.key, storage };
      }
    } catch {
      // An unreachable repository is reported in the repository section of the status.
    }
  }
  if (!newest) return undefined;
  try {
    return JSON.parse(await text(await newest.storage.get(newest.key))) as FailureEvent;
  } catch {
    return undefined;
  }
}
