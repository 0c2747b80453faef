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
import { planSchema, type Plan } from './schema.js';

/** The plan file path: `--config`, else `DRPLAN_CONFIG`, else `./drplan.yaml`. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(flag ?? env.DRPLAN_CONFIG ?? 'drplan.yaml');
}

/** Reads, substitutes and validates the plan at `file`. */
export async function loadPlan(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Plan> {
  const text = await readPlanFile(file);
  const raw = parseYaml(text, file);
  const substituted = substituteEnv(raw, env, file, []);
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
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, file: string, fieldPath: (string | number)[]): unknown {
  if (typeof value === 'string') {
    return value.replace(VARIABLE, (match, variable: string | undefined) => {
      if (variable === undefined) return '${';
      const replacement = env[variable];
      if (replacement === undefined) {
        throw new ConfigError(`${file}: ${formatPath(fieldPath)} uses \${${variable}}, but the environment variable ${variable} is not set`, {
          code: 'config.variable',
          object: formatPath(fieldPath),
          hint: `Set ${variable} in the environment of drplan, or write the value into the plan.`,
        });
      }
      return replacement;
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => substituteEnv(item, env, file, [...fieldPath, index]));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substituteEnv(item, env, file, [...fieldPath, key])]));
  }
  return value;
}

function validatePlan(raw: unknown, file: string): Plan {
  const result = planSchema.safeParse(raw ?? {});
  if (!result.success) throw configErrorFromZod(result.error, raw, file);
  checkUniqueNames(result.data, file);
  return result.data;
}

function configErrorFromZod(error: ZodError, raw: unknown, file: string): ConfigError {
  const lines = error.issues.map((issue) => {
    const where = formatPath(issue.path as (string | number)[]);
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.join(', ');
      return `${where || '(top level)'}: unknown field ${keys}; expected one of the documented fields`;
    }
    const value = valueAt(raw, issue.path as (string | number)[]);
    const shown = value === undefined ? 'missing' : JSON.stringify(redactIfUrl(value));
    return `${where || '(top level)'}: ${shown} is invalid; expected ${issue.message}`;
  });
  return new ConfigError(`invalid plan ${file}:\n  ${lines.join('\n  ')}`, {
    code: 'config.invalid',
    object: file,
    hint: 'Correct the fields listed above; `drplan init` writes a commented example.',
  });
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
  return fieldPath.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? part : `.${part}`)).join('');
}
