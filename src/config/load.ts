/**
 * Loads `drplan.yaml`: finds the file, parses YAML, substitutes `${VAR}` from
 * the environment and validates the result. Every failure is a ConfigError
 * that names the file, the field path, the bad value and what is expected.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { ZodError } from 'zod';
import { ConfigError } from '../errors.js';
import { checkJobs } from './jobs.js';
import { checkNotificationReferences, checkNotificationSecrets } from './notification-checks.js';
import { planSchema, type Plan } from './schema.js';

/** Returns the plan file path: `--config`, else `DRPLAN_CONFIG`, else `./drplan.yaml`. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(flag ?? env.DRPLAN_CONFIG ?? 'drplan.yaml');
}

export interface LoadOptions {
  /**
   * Leave `${VAR}` as written in `databases[].url` when VAR is not set. This
   * is for commands that read only the repositories (list, verify, status,
   * prune), so they work on a machine without the database password. A
   * command that connects with such a URL fails and names the variable.
   */
  deferDatabaseVariables?: boolean;
}

/** Reads, substitutes and validates the plan at `file`. */
export async function loadPlan(file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Promise<Plan> {
  const text = await readPlanFile(file);
  const raw = parseYaml(text, file);
  checkNotificationSecrets(raw, file);
  const substituted = substituteEnv(raw, env, file, [], options.deferDatabaseVariables ?? false);
  return validatePlan(substituted, file);
}

async function readPlanFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read plan file ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, {
      code: 'config.unreadable',
      object: file,
      hint: 'Pass --config FILE, set DRPLAN_CONFIG, or run `drplan init` to write an example plan.',
      cause: err,
    });
  }
}

function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new ConfigError(`invalid YAML in ${file}: ${first.message}`, { code: 'config.yaml', object: file, hint: 'Fix the YAML syntax at the line shown.' });
  }
  return doc.toJS();
}

const VARIABLE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replaces `${VAR}` in every string value; `$${` stands for a literal `${`. */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, file: string, fieldPath: (string | number)[], deferDatabaseVariables = false): unknown {
  if (typeof value === 'string') {
    const deferrable = deferDatabaseVariables && fieldPath[0] === 'databases' && fieldPath[2] === 'url';
    return value.replace(VARIABLE, (match, variable: string | undefined) => {
      if (variable === undefined) return '${';
      const replacement = env[variable];
      if (replacement !== undefined) return replacement;
      if (deferrable) return match;
      throw new ConfigError(`${file}: ${formatPath(fieldPath)} uses \${${variable}}, but the environment variable ${variable} is not set`, {
        code: 'config.variable',
        object: formatPath(fieldPath),
        hint: `Set ${variable} in the environment of drplan.`,
      });
    });
  }
  const recurse = (item: unknown, key: string | number) => substituteEnv(item, env, file, [...fieldPath, key], deferDatabaseVariables);
  if (Array.isArray(value)) return value.map((item, index) => recurse(item, index));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, recurse(item, key)]));
  }
  return value;
}

function validatePlan(raw: unknown, file: string): Plan {
  const result = planSchema.safeParse(raw ?? {});
  if (!result.success) throw configErrorFromZod(result.error, raw, file);
  checkUniqueNames(result.data, file);
  checkNotificationReferences(result.data, file);
  rejectUnsupported(result.data, file);
  checkObjectiveTables(result.data, file);
  checkJobs(result.data, file);
  return result.data;
}

function configErrorFromZod(error: ZodError, raw: unknown, file: string): ConfigError {
  const lines = error.issues.map((issue) => {
    const where = formatPath(issue.path as (string | number)[]);
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeysAt(issue.path as (string | number)[], raw);
      return issue.keys.map((key) => `${where || '(top level)'}: unknown field ${key}; ${suggestion(key, allowed)}`).join('\n  ');
    }
    const value = valueAt(raw, issue.path as (string | number)[]);
    if (value === undefined) return `${where || '(top level)'}: missing; this field is required`;
    if (isSecretField(issue.path as (string | number)[])) return `${where}: invalid; expected ${expectation(issue)}`;
    const quotedValue = JSON.stringify(redactIfUrl(value));
    return `${where || '(top level)'}: ${quotedValue} is invalid; expected ${expectation(issue)}`;
  });
  return new ConfigError(`invalid plan ${file}:\n  ${lines.join('\n  ')}`, {
    code: 'config.invalid',
    object: file,
    hint: 'Correct the fields listed above; `drplan init` writes a commented example.',
  });
}

/** Describes what the schema expects, in words, because zod's own messages start with "Invalid ...". */
function expectation(issue: ZodError['issues'][number]): string {
  if (issue.code === 'invalid_union' && 'options' in issue && Array.isArray(issue.options)) return `one of ${issue.options.map((v: unknown) => JSON.stringify(v)).join(', ')}`;
  // A record key (such as an HTTP header name) that fails its own check carries that check's message inside.
  if (issue.code === 'invalid_key' && issue.issues[0] !== undefined) return issue.issues[0].message;
  if (issue.code === 'invalid_value') return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  if (issue.code === 'invalid_type') return `a value of type ${issue.expected}`;
  if (issue.code === 'too_small' && issue.origin === 'number') return `a number ${issue.inclusive ? '>=' : '>'} ${issue.minimum}`;
  if (issue.code === 'too_big' && issue.origin === 'number') return `a number ${issue.inclusive ? '<=' : '<'} ${issue.maximum}`;
  return issue.message;
}

/** Returns the field names the schema allows at `fieldPath`, for suggestions. */
function allowedKeysAt(fieldPath: (string | number)[], raw: unknown): string[] {
  let schema: unknown = planSchema;
  for (const [index, part] of fieldPath.entries()) {
    schema = unwrapUnion(unwrap(schema), valueAt(raw, fieldPath.slice(0, index)));
    const def = (schema as { def?: { type?: string; element?: unknown; shape?: Record<string, unknown> } }).def;
    if (def?.type === 'array' && typeof part === 'number') schema = def.element;
    else if (def?.type === 'object' && typeof part === 'string') schema = def.shape?.[part];
    else return [];
  }
  const shape = (unwrapUnion(unwrap(schema), valueAt(raw, fieldPath)) as { def?: { shape?: Record<string, unknown> } }).def?.shape;
  return shape ? Object.keys(shape) : [];
}

/** Picks the member of a discriminated union (such as a channel by its `type`) that `value` selects. */
function unwrapUnion(schema: unknown, value: unknown): unknown {
  const def = (schema as { def?: { type?: string; discriminator?: string; options?: { def?: { shape?: Record<string, { def?: { values?: unknown[] } }> } }[] } }).def;
  if (def?.type !== 'union' || def.discriminator === undefined || value === null || typeof value !== 'object') return schema;
  const selected = (value as Record<string, unknown>)[def.discriminator];
  return def.options?.find((option) => option.def?.shape?.[def.discriminator!]?.def?.values?.includes(selected)) ?? schema;
}

/** Fields whose value is a secret, or may contain one, and so never appears in a message. */
function isSecretField(fieldPath: (string | number)[]): boolean {
  const last = fieldPath[fieldPath.length - 1];
  return last === 'password' || last === 'routingKey' || fieldPath.includes('headers');
}

function unwrap(schema: unknown): unknown {
  let current = schema as { def?: { type?: string; innerType?: unknown } };
  while (current?.def && ['optional', 'default', 'prefault', 'nullable'].includes(current.def.type ?? '')) current = current.def.innerType as typeof current;
  return current;
}

/** Suggests the closest allowed field, and lists them all. */
function suggestion(key: string, allowed: string[]): string {
  if (allowed.length === 0) return 'remove it';
  const closest = allowed.map((name) => ({ name, distance: editDistance(key.toLowerCase(), name.toLowerCase()) })).sort((a, b) => a.distance - b.distance)[0]!;
  const hint = closest.distance <= 3 ? `did you mean ${closest.name}? ` : '';
  return `${hint}allowed fields here: ${allowed.join(', ')}`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/**
 * Checks that a table of objectives (`rpo: { database: 24h, ... }`) names the
 * `database` category or every database without its own objective, because a
 * misspelt key would otherwise switch the objective off without a word.
 */
function checkObjectiveTables(plan: Plan, file: string): void {
  for (const kind of ['rpo', 'rto'] as const) {
    const table = plan.objectives?.[kind];
    if (table === undefined || typeof table === 'string' || 'database' in table) continue;
    const uncovered = plan.databases.filter((d) => d.objectives?.[kind] === undefined && !(d.name in table));
    if (uncovered.length === 0) continue;
    throw new ConfigError(`invalid plan ${file}: objectives.${kind} has no entry "database" and none for ${uncovered.map((d) => d.name).join(', ')}; found ${Object.keys(table).join(', ')}`, {
      code: 'config.objectives',
      object: `objectives.${kind}`,
      hint: `Add a "database" entry (it applies to every database), or one per database name, or set databases[].objectives.${kind}.`,
    });
  }
}

/** Rejects settings that promise protection drplan does not provide yet. */
function rejectUnsupported(plan: Plan, file: string): void {
  if (plan.compliance?.auditTrail === true) {
    throw new ConfigError(`invalid plan ${file}: compliance.auditTrail: true is not supported yet; drplan keeps no audit trail of restores`, {
      code: 'config.unsupported',
      object: 'compliance.auditTrail',
      hint: 'Set it to false; until drplan records restores, keep the output of each restore run (stdout and the JSON logs on stderr).',
    });
  }
  if (plan.compliance?.encryption === true) {
    throw new ConfigError(`invalid plan ${file}: compliance.encryption: true is not supported yet; drplan does not encrypt backups`, {
      code: 'config.unsupported',
      object: 'compliance.encryption',
      hint: 'Set it to false and encrypt where the backups are stored (S3 server-side encryption, an encrypted disk).',
    });
  }
}

function checkUniqueNames(plan: Plan, file: string): void {
  for (const list of ['databases', 'repositories'] as const) {
    const seen = new Set<string>();
    plan[list].forEach((entry, index) => {
      if (seen.has(entry.name)) {
        throw new ConfigError(`invalid plan ${file}: ${list}[${index}].name "${entry.name}" is used twice`, {
          code: 'config.duplicate',
          object: `${list}[${index}].name`,
          hint: `Give every entry of ${list} its own name.`,
        });
      }
      seen.add(entry.name);
    });
  }
}

function valueAt(root: unknown, fieldPath: (string | number)[]): unknown {
  let current: unknown = root;
  for (const part of fieldPath) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[part];
  }
  return current;
}

/** Hides the password of every connection URI in a value, also inside lists and mappings, before it goes into a message. */
function redactIfUrl(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(/^([a-z0-9+.-]+:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
  if (Array.isArray(value)) return value.map(redactIfUrl);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactIfUrl(item)]));
  return value;
}

function formatPath(fieldPath: (string | number)[]): string {
  let formatted = '';
  for (const part of fieldPath) {
    if (typeof part === 'number') formatted += `[${part}]`;
    else formatted += formatted === '' ? part : `.${part}`;
  }
  return formatted;
}
