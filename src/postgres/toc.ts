/**
 * Selection of single tables from a pg_dump archive, with what belongs to
 * them: the table, its data, constraints, indexes, triggers, defaults, owned
 * sequences, grants and comments, and its schema. pg_restore's own `--table`
 * restores only the table and its data, without indexes or constraints.
 *
 * The archive's table of contents (`pg_restore --list`) names each entry;
 * the schema-only script (`pg_restore --schema-only`) shows which index or
 * sequence belongs to which table. The result is a list for `--use-list`.
 */
import { NotFoundError, UsageError } from '../errors.js';
import { runProcess } from '../util/process.js';
import type { PgTool } from './tools.js';

export interface TableName {
  schema?: string;
  name: string;
}

interface ScriptEntry {
  name: string;
  type: string;
  schema: string;
  body: string;
}

/** Entry descriptions of more than one word, longest first, as pg_restore --list prints them. */
const MULTI_WORD_DESCS = ['MATERIALIZED VIEW DATA', 'SEQUENCE OWNED BY', 'MATERIALIZED VIEW', 'FK CONSTRAINT', 'SEQUENCE SET', 'TABLE DATA', 'DEFAULT ACL', 'LARGE OBJECT', 'BLOB METADATA'];

/** Returns the `--use-list` content that restores `tables` and their dependent objects. */
export async function selectTables(tool: PgTool, archive: string, tables: TableName[], signal?: AbortSignal): Promise<string> {
  const [listing, script] = await Promise.all([
    runProcess(tool.path, ['--list', archive], { operation: 'pg_restore --list', signal }),
    runProcess(tool.path, ['--schema-only', '--file=-', archive], { operation: 'pg_restore --schema-only', signal }),
  ]);
  const entries = parseScript(script);
  const selected = resolveTables(entries, tables);
  const keys = selectEntries(entries, selected);
  return listing
    .split('\n')
    .filter((line) => {
      const entry = parseListLine(line);
      return entry !== undefined && keys.has(key(entry.desc, entry.schema, entry.tag));
    })
    .join('\n');
}

function parseScript(script: string): ScriptEntry[] {
  const header = /^-- Name: (.*); Type: (.*); Schema: (.*); Owner: .*$/gm;
  const entries: ScriptEntry[] = [];
  const matches = [...script.matchAll(header)];
  matches.forEach((match, index) => {
    const end = matches[index + 1]?.index ?? script.length;
    entries.push({ name: match[1]!, type: match[2]!, schema: match[3]!, body: script.slice(match.index! + match[0].length, end) });
  });
  return entries;
}

function resolveTables(entries: ScriptEntry[], tables: TableName[]): Set<string> {
  const selected = new Set<string>();
  for (const table of tables) {
    const matches = entries.filter((e) => e.type === 'TABLE' && e.name === table.name && (table.schema === undefined || e.schema === table.schema));
    const qualifiedName = table.schema ? `${table.schema}.${table.name}` : table.name;
    if (matches.length === 0) {
      throw new NotFoundError(`table ${qualifiedName} is not in the backup`, { code: 'restore.table', object: qualifiedName, hint: 'Check the name; use schema.name for tables outside the search path.' });
    }
    if (matches.length > 1) {
      throw new UsageError(`table name ${qualifiedName} exists in several schemas: ${matches.map((m) => m.schema).join(', ')}`, {
        code: 'usage.table',
        hint: `Write it as schema.name, for example ${matches[0]!.schema}.${table.name}.`,
      });
    }
    selected.add(`${matches[0]!.schema}.${matches[0]!.name}`);
  }
  return selected;
}

function selectEntries(entries: ScriptEntry[], tables: Set<string>): Set<string> {
  const keys = new Set<string>();
  const schemas = new Set([...tables].map((t) => t.slice(0, t.indexOf('.'))));
  const references = [...tables].map((t) => qualified(t));
  const ownedSequences = new Set<string>();
  for (const entry of entries) {
    const firstWord = entry.name.split(' ')[0]!;
    const onTable = tables.has(`${entry.schema}.${firstWord}`);
    let include = false;
    switch (entry.type) {
      case 'TABLE':
        include = tables.has(`${entry.schema}.${entry.name}`);
        break;
      case 'SCHEMA':
        include = schemas.has(entry.name) && entry.name !== 'public';
        break;
      case 'CONSTRAINT':
      case 'TRIGGER':
      case 'DEFAULT':
      case 'POLICY':
      case 'RULE':
        include = onTable;
        break;
      case 'FK CONSTRAINT':
        // A foreign key to a table that is not restored would fail.
        include = onTable && references.some((r) => entry.body.includes(`REFERENCES ${r}(`));
        break;
      case 'INDEX':
        include = references.some((r) => new RegExp(` ON (ONLY )?${escapeRegExp(r)} `).test(entry.body));
        break;
      case 'SEQUENCE OWNED BY':
        include = references.some((r) => entry.body.includes(` OWNED BY ${r}.`));
        if (include) ownedSequences.add(`${entry.schema}.${entry.name}`);
        break;
      case 'ACL':
      case 'COMMENT':
        include = /^(TABLE|COLUMN) /.test(entry.name) && tables.has(`${entry.schema}.${entry.name.split(' ')[1]!.split('.')[0]!}`);
        break;
    }
    if (include) keys.add(key(entry.type, entry.schema, entry.name));
  }
  for (const table of tables) keys.add(key('TABLE DATA', ...splitQualified(table)));
  for (const sequence of ownedSequences) {
    keys.add(key('SEQUENCE', ...splitQualified(sequence)));
    keys.add(key('SEQUENCE SET', ...splitQualified(sequence)));
  }
  return keys;
}

function parseListLine(line: string): { desc: string; schema: string; tag: string } | undefined {
  const match = /^\d+; \d+ \d+ (.*)$/.exec(line);
  if (!match) return undefined;
  const rest = match[1]!;
  const desc = MULTI_WORD_DESCS.find((d) => rest.startsWith(`${d} `)) ?? rest.split(' ')[0]!;
  const words = rest.slice(desc.length + 1).split(' ');
  // The owner is the last word; the tag (which may contain spaces) sits between schema and owner.
  return { desc, schema: words[0]!, tag: words.slice(1, -1).join(' ') };
}

function key(desc: string, schema: string, tag: string): string {
  return `${desc}\u0000${schema}\u0000${tag}`;
}

function splitQualified(value: string): [string, string] {
  const dot = value.indexOf('.');
  return [value.slice(0, dot), value.slice(dot + 1)];
}

/** Formats `schema.table` the way pg_dump writes it in DDL: quoted only when needed. */
function qualified(table: string): string {
  const [schema, name] = splitQualified(table);
  return `${quoteIfNeeded(schema)}.${quoteIfNeeded(name)}`;
}

function quoteIfNeeded(identifier: string): string {
  // NOTE: pg_dump also quotes reserved keywords (a table named "order"); such
  // tables still restore, but their indexes are not found by this match.
  return /^[a-z_][a-z0-9_$]*$/.test(identifier) ? identifier : `"${identifier.replace(/"/g, '""')}"`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
