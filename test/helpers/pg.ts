/**
 * PostgreSQL helpers for tests: short-lived connections, loading SQL scripts
 * with psql, and per-table fingerprints for comparing a source database with
 * its restored copy.
 */
import { join } from 'node:path';
import pg from 'pg';
import type { ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runProcess } from '../../src/util/process.js';

/** Connects to `url`, runs `fn`, and closes the connection whatever `fn` does. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs one statement on a new connection and returns its rows. */
export async function query<Row extends pg.QueryResultRow = Record<string, unknown>>(
  url: string,
  sql: string,
  params?: unknown[],
): Promise<Row[]> {
  return withClient(url, async (client) => (await client.query<Row>(sql, params)).rows);
}

/**
 * Runs an SQL script with the cluster's psql, stopping at the first error.
 * Scripts that create their own database and `\c` into it (such as chinook.sql)
 * are loaded while connected to `postgres`, the default.
 */
export async function loadSqlFile(cluster: ThrowawayCluster, file: string, database = 'postgres'): Promise<void> {
  // The password goes through the environment so that it never appears in argv.
  const uri = new URL(cluster.url(database));
  uri.password = '';
  await runProcess(join(cluster.binDir, 'psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', uri.toString(), '-f', file], {
    operation: `load ${file}`,
    env: { PGPASSWORD: cluster.password },
    timeoutMs: 300_000,
  });
}

export interface TableFingerprint {
  rows: number;
  md5: string;
}

interface TableColumns {
  schema: string;
  table: string;
  /** Primary key columns in key order. `collatable` marks columns that take a COLLATE clause. */
  key: { name: string; collatable: boolean }[];
}

/**
 * Lists ordinary tables and partition leaves outside the system schemas,
 * with their primary key columns. Partitioned parents (relkind 'p') store no
 * rows themselves, so they are left out to avoid counting rows twice.
 */
const LIST_TABLES = `
SELECT n.nspname AS schema,
       c.relname AS table,
       coalesce((
         SELECT json_agg(json_build_object('name', a.attname, 'collatable', a.attcollation <> 0) ORDER BY k.position)
         FROM pg_index i
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary
       ), '[]'::json) AS key
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2`;

/**
 * Returns, for every user table of the database at `url` keyed by
 * `schema.table`, its row count and the md5 of its rows' text form, one row
 * a line in primary key order. Tables without a primary key are ordered by the
 * row text itself. Text keys sort with the "C" collation and values print with
 * fixed session settings, so two clusters with different defaults produce the
 * same fingerprint for the same data.
 */
export async function tableFingerprints(url: string): Promise<Record<string, TableFingerprint>> {
  return withClient(url, async (client) => {
    await client.query(
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'",
    );
    const tables = (await client.query<TableColumns>(LIST_TABLES)).rows;
    const fingerprints: Record<string, TableFingerprint> = {};
    for (const table of tables) {
      const order = table.key.length
        ? table.key.map((column) => `t.${quoteIdent(column.name)}${column.collatable ? ' COLLATE "C"' : ''}`).join(', ')
        : 't::text COLLATE "C"';
      const sql = `SELECT count(*)::int8 AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY ${order}), '')) AS md5
        FROM ${quoteIdent(table.schema)}.${quoteIdent(table.table)} t`;
      const row = (await client.query<{ rows: string; md5: string }>(sql)).rows[0]!;
      fingerprints[`${table.schema}.${table.table}`] = { rows: Number(row.rows), md5: row.md5 };
    }
    return fingerprints;
  });
}

/** Quotes an SQL identifier, doubling embedded double quotes. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
