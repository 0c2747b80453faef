/**
 * Recreates roles from a backup's `pg_dumpall --globals-only` output on the
 * target server, so that owners and grants in the archive can be restored.
 *
 * Roles that already exist are left exactly as they are: running the dump's
 * ALTER ROLE lines would, for example, reset the target's superuser password
 * to the source server's.
 */
import type pg from 'pg';
import type { Logger } from '../logging.js';

/** Applies the statements for missing roles; returns the roles created. */
export async function applyGlobals(client: pg.Client, sql: string, log: Logger): Promise<string[]> {
  const existing = new Set((await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles')).rows.map((r) => r.rolname));
  const created: string[] = [];
  for (const statement of statementsOf(sql)) {
    const role = roleOf(statement);
    if (role !== undefined && existing.has(role) && !created.includes(role)) continue;
    try {
      await client.query(statement);
      if (role !== undefined && /^CREATE ROLE /.test(statement)) created.push(role);
    } catch (err) {
      // Tablespace locations and memberships granted by roles missing here
      // can differ between servers; the restore itself reports what then fails.
      log.warn({ err, statement: statement.replace(/PASSWORD '[^']*'/g, "PASSWORD '***'").slice(0, 120) }, 'globals statement failed; continuing');
    }
  }
  return created;
}

/** pg_dumpall writes one statement per line; comments, psql meta-commands and SETs are skipped. */
function statementsOf(sql: string): string[] {
  return sql
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('--') && !line.startsWith('\\') && !/^SET /.test(line));
}

/** Returns the role that a CREATE ROLE, ALTER ROLE or GRANT ... TO statement changes. */
function roleOf(statement: string): string | undefined {
  const match = /^(?:CREATE|ALTER) ROLE ("(?:[^"]|"")+"|[^\s;]+)/.exec(statement) ?? /^GRANT .* TO ("(?:[^"]|"")+"|[^\s;]+)/.exec(statement);
  if (!match) return undefined;
  const name = match[1]!;
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name;
}
