/**
 * Facts about a PostgreSQL server and database that a backup records.
 */
import type pg from 'pg';
import { quoteIdent } from './connection.js';

export interface ServerInfo {
  version: string;
  versionNum: number;
  major: number;
}

export interface TableRowCount {
  schema: string;
  name: string;
  rows: number;
}

/** Reads the server version. */
export async function serverInfo(client: pg.Client): Promise<ServerInfo> {
  const { rows } = await client.query<{ version: string; num: string }>(
    "SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num",
  );
  const versionNum = Number(rows[0]!.num);
  return { version: rows[0]!.version.split(' ')[0]!, versionNum, major: Math.floor(versionNum / 10000) };
}

/** Reads the owner and encoding of the connected database. */
export async function databaseProperties(client: pg.Client): Promise<{ owner: string; encoding: string }> {
  const { rows } = await client.query<{ owner: string; encoding: string }>(
    `SELECT pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding
       FROM pg_database WHERE datname = current_database()`,
  );
  return rows[0]!;
}

/**
 * Counts the rows of every ordinary table (partitions included, partitioned
 * parents excluded so rows are not counted twice), outside system schemas.
 * Run inside the transaction whose snapshot pg_dump uses, the counts match
 * the dump exactly.
 */
export async function countTableRows(client: pg.Client): Promise<TableRowCount[]> {
  const { rows: tables } = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY 1, 2`,
  );
  const counts: TableRowCount[] = [];
  for (const table of tables) {
    const sql = `SELECT count(*) AS n FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
    const { rows } = await client.query<{ n: string }>(sql);
    counts.push({ ...table, rows: Number(rows[0]!.n) });
  }
  return counts;
}
