/**
 * Writes one stream to several repositories at once and removes what was
 * written when anything fails, so a failed backup leaves no objects behind.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../logging.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { Tee } from '../util/streams.js';

/**
 * Streams `source` into `key` on every storage in parallel. Resolves when
 * every storage has the complete object. On any failure it aborts the other
 * writes, deletes completed copies and rejects with the first error.
 */
export async function writeToAll(storages: Storage[], key: string, source: Readable, signal: AbortSignal, log: Logger): Promise<ObjectInfo[]> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const tee = new Tee(storages.length);
  const puts = storages.map((storage, index) => storage.put(key, tee.branches[index]!, { signal: controller.signal }));
  try {
    const [, ...infos] = await Promise.all([
      pipeline(source, tee),
      ...puts.map((put) =>
        put.catch((err) => {
          controller.abort(err);
          tee.destroy(err as Error);
          throw err;
        }),
      ),
    ]);
    return infos as ObjectInfo[];
  } catch (err) {
    controller.abort(err);
    await Promise.allSettled(puts);
    await deleteEverywhere(storages, [key], log);
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Writes a small object to every storage and waits until every write has
 * settled, so that a cleanup after a failure never races a write still in flight.
 */
export async function putOnAll(storages: Storage[], key: string, body: Buffer, signal?: AbortSignal): Promise<void> {
  const results = await Promise.allSettled(storages.map((storage) => storage.put(key, body, { signal })));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/**
 * Deletes `keys` on every storage, in the order given, logging (not throwing)
 * failures. Callers list the metadata first, so a backup stops being
 * committed before its data goes.
 */
export async function deleteEverywhere(storages: Storage[], keys: string[], log: Logger): Promise<void> {
  await Promise.all(
    storages.map(async (storage) => {
      for (const key of keys) {
        await storage.delete(key).catch((err) => log.warn({ repository: storage.name, key, err }, 'could not remove a partial object; `drplan repo check` will list it'));
      }
    }),
  );
}
