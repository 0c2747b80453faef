/**
 * Checks that the server's user can reach a data directory that drplan,
 * running as root, is about to fill. PostgreSQL started as `postgres` fails
 * late, after the whole extraction, when a parent directory is closed to it
 * (a mkdtemp directory under /tmp has mode 0700, for example).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../errors.js';
import type { ServerOwner } from '../postgres/cluster.js';

/**
 * Rejects `dataDir` when an existing parent directory is not searchable by
 * `owner`: owned by it without u+x, or in its primary group without g+x, or
 * else without o+x. Supplementary groups are not considered. Parents that do
 * not exist yet are created later with mode 0755. Without an owner (drplan
 * not running as root) the server runs as this user, so nothing is checked.
 */
export async function assertServerCanReach(dataDir: string, owner: ServerOwner): Promise<void> {
  if (owner.uid === undefined || owner.gid === undefined) return;
  for (const dir of parentsOf(path.resolve(dataDir))) {
    const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (info === undefined || searchable(info, owner.uid, owner.gid)) continue;
    throw new UsageError(`the postgres user cannot reach --data-dir ${dataDir}: directory ${dir} (mode ${(info.mode & 0o777).toString(8).padStart(3, '0')}) is not searchable by it`, {
      code: 'pitr.data_dir_access',
      object: dir,
      hint: `The restored server runs as postgres. Allow it through with \`chmod o+x ${dir}\`, or choose a --data-dir in a location postgres can reach, such as under /var/lib/postgresql.`,
    });
  }
}

function searchable(info: { uid: number; gid: number; mode: number }, uid: number, gid: number): boolean {
  if (info.uid === uid) return (info.mode & 0o100) !== 0;
  if (info.gid === gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}

/** Returns the parent directories of `dir`, from the root down. */
function parentsOf(dir: string): string[] {
  const parents: string[] = [];
  for (let parent = path.dirname(dir); ; parent = path.dirname(parent)) {
    parents.unshift(parent);
    if (parent === path.dirname(parent)) return parents;
  }
}
