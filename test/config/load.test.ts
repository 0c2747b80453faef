/**
 * Loading drplan.yaml the way the CLI does: plan files on disk, with the
 * environment passed in explicitly.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPlan, resolveConfigPath } from '../../src/config/load.js';
import { REFERENCE_PLAN } from '../../src/config/reference-plan.js';
import { ConfigError } from '../../src/errors.js';

/** A minimal valid plan. Tests append or replace lines to break one field at a time. */
const MINIMAL_PLAN = `databases:
  - name: shop
    url: postgres://shop@127.0.0.1:5432/shop
repositories:
  - name: local
    url: file:///var/backups/shop
`;

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drplan-config-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writePlan(text: string, name = 'drplan.yaml'): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

async function loadError(file: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  const error = await loadPlan(file, env).then(
    () => {
      throw new Error(`expected loadPlan(${file}) to reject`);
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).exitCode).toBe(2);
  return error as ConfigError;
}

describe('loadPlan reference plan', () => {
  it('reference plan validates', async () => {
    const file = await writePlan(REFERENCE_PLAN);

    const plan = await loadPlan(file, { SHOP_DB_PASSWORD: 'correct-horse' });

    expect(plan.version).toBe(1);
    expect(plan.service).toBe('shop');
    expect(plan.databases).toHaveLength(1);
    expect(plan.databases[0]!.name).toBe('shop');
    expect(plan.databases[0]!.url).toBe('postgres://shop:correct-horse@127.0.0.1:5432/shop');
    expect(plan.databases[0]!.objectives).toEqual({ rpo: '24h', rto: '2h' });
    expect(plan.repositories.map((repository) => repository.name)).toEqual(['local', 'offsite']);
    expect(plan.repositories[0]!.url).toBe('file:///var/backups/shop');
    expect(plan.repositories[1]!.url).toBe('s3://shop-backups/drplan');
    expect(plan.repositories[1]!.region).toBe('eu-central-1');
    expect(plan.repositories[1]!.endpoint).toBeUndefined();
    expect(plan.repositories[1]!.retention).toEqual({ keepDays: 90, maxAgeDays: 90, partialGrace: '24h' });
    expect(plan.backup).toEqual({ compression: 'zstd', compressionLevel: 3, lockTimeout: '0s', archiveTimeout: '60s' });
    expect(plan.wal).toEqual({ async: false, maxQueue: 64 });
    expect(plan.jobs).toHaveLength(6);
    expect(plan.scenarios?.map((scenario) => scenario.name)).toEqual(['database-corruption', 'complete-system-failure', 'data-breach', 'accidental-deletion']);
  });

  it('reference plan needs password variable', async () => {
    const file = await writePlan(REFERENCE_PLAN);

    const error = await loadError(file, {});

    expect(error.code).toBe('config.variable');
    expect(error.object).toBe('databases[0].url');
    expect(error.message).toBe(`${file}: databases[0].url uses \${SHOP_DB_PASSWORD}, but the environment variable SHOP_DB_PASSWORD is not set`);
    expect(error.hint).toBe('Set SHOP_DB_PASSWORD in the environment of drplan.');
  });

  it('empty variable is substituted', async () => {
    const file = await writePlan(REFERENCE_PLAN);

    const plan = await loadPlan(file, { SHOP_DB_PASSWORD: '' });

    expect(plan.databases[0]!.url).toBe('postgres://shop:@127.0.0.1:5432/shop');
  });
});

describe('loadPlan substitution', () => {
  it('double dollar stays literal', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}service: "costs $\${X} per $\${HOME}"\n`);

    const plan = await loadPlan(file, { X: 'substituted', HOME: '/root' });

    expect(plan.service).toBe('costs ${X} per ${HOME}');
  });

  it('literal next to variable', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}service: "$\${A}\${B}"\n`);

    const plan = await loadPlan(file, { B: 'shop' });

    expect(plan.service).toBe('${A}shop');
  });

  it('variable in nested list', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}files:\n  - name: uploads\n    paths: [/srv/a, "\${UPLOAD_DIR}"]\n`);

    const error = await loadError(file, {});

    expect(error.code).toBe('config.variable');
    expect(error.object).toBe('files[0].paths[1]');
    expect(error.message).toBe(`${file}: files[0].paths[1] uses \${UPLOAD_DIR}, but the environment variable UPLOAD_DIR is not set`);
  });
});

describe('loadPlan validation', () => {
  it('unknown repository field', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}    bukket: shop-backups\n`);

    const error = await loadError(file);

    expect(error.code).toBe('config.invalid');
    expect(error.object).toBe(file);
    expect(error.message).toBe(`invalid plan ${file}:\n  repositories[0]: unknown field bukket; allowed fields here: name, url, endpoint, region, forcePathStyle, retention`);
  });

  it('unknown top-level field', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}retention: { keepDays: 7 }\n`);

    const error = await loadError(file);

    expect(error.code).toBe('config.invalid');
    expect(error.message).toBe(`invalid plan ${file}:\n  (top level): unknown field retention; allowed fields here: version, service, objectives, databases, repositories, backup, wal, files, jobs, verify, scenarios, incidents, compliance`);
  });

  it('bad repository url', async () => {
    const file = await writePlan(MINIMAL_PLAN.replace('file:///var/backups/shop', 'ftp://x'));

    const error = await loadError(file);

    expect(error.code).toBe('config.invalid');
    expect(error.message).toBe(
      `invalid plan ${file}:\n  repositories[0].url: "ftp://x" is invalid; expected file:///absolute/path or s3://bucket/prefix (bucket of 3-63 lowercase letters, digits, "." or "-")`,
    );
    expect(error.hint).toBe('Correct the fields listed above; `drplan init` writes a commented example.');
  });

  it('every invalid field listed', async () => {
    const text = MINIMAL_PLAN.replace('file:///var/backups/shop', 'ftp://x').replace('name: shop', 'name: "-shop"');
    const file = await writePlan(`${text}backup: { compression: lz4 }\n`);

    const error = await loadError(file);

    expect(error.message.split('\n')).toEqual([
      `invalid plan ${file}:`,
      '  databases[0].name: "-shop" is invalid; expected a name of letters, digits, "_", "." or "-" (at most 63 characters)',
      '  repositories[0].url: "ftp://x" is invalid; expected file:///absolute/path or s3://bucket/prefix (bucket of 3-63 lowercase letters, digits, "." or "-")',
      '  backup.compression: "lz4" is invalid; expected one of "zstd", "gzip", "none"',
    ]);
  });

  it('missing required field', async () => {
    const file = await writePlan(MINIMAL_PLAN.replace('    url: postgres://shop@127.0.0.1:5432/shop\n', ''));

    const error = await loadError(file);

    expect(error.code).toBe('config.invalid');
    expect(error.message).toBe(`invalid plan ${file}:\n  databases[0].url: missing; this field is required`);
  });

  it('database password not shown', async () => {
    const file = await writePlan(MINIMAL_PLAN.replace('postgres://shop@127.0.0.1:5432/shop', 'mysql://shop:hunter2@127.0.0.1:5432/shop'));

    const error = await loadError(file);

    expect(error.code).toBe('config.invalid');
    expect(error.message).not.toContain('hunter2');
    expect(error.message).toBe(
      `invalid plan ${file}:\n  databases[0].url: "mysql://shop:***@127.0.0.1:5432/shop" is invalid; expected a libpq connection URI starting with postgres:// or postgresql://`,
    );
  });

  it('substituted password not shown', async () => {
    const file = await writePlan(MINIMAL_PLAN.replace('postgres://shop@127.0.0.1:5432/shop', 'postgress://shop:${SHOP_DB_PASSWORD}@127.0.0.1:5432/shop'));

    const error = await loadError(file, { SHOP_DB_PASSWORD: 'hunter2' });

    expect(error.message).not.toContain('hunter2');
    expect(error.message).toBe(
      `invalid plan ${file}:\n  databases[0].url: "postgress://shop:***@127.0.0.1:5432/shop" is invalid; expected a libpq connection URI starting with postgres:// or postgresql://`,
    );
  });

  it('password in mapping not shown', async () => {
    // Without the list dash, `databases` is a mapping, and the message shows the whole value.
    const file = await writePlan(MINIMAL_PLAN.replace('  - name: shop\n    url:', '  name: shop\n  url:').replace('shop@127.0.0.1', 'shop:hunter2@127.0.0.1'));

    const error = await loadError(file);

    expect(error.code).toBe('config.invalid');
    expect(error.message).not.toContain('hunter2');
    expect(error.message).toBe(
      `invalid plan ${file}:\n  databases: {"name":"shop","url":"postgres://shop:***@127.0.0.1:5432/shop"} is invalid; expected a value of type array`,
    );
  });

  it('duplicate repository names', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}  - name: local\n    url: s3://shop-backups/drplan\n`);

    const error = await loadError(file);

    expect(error.code).toBe('config.duplicate');
    expect(error.object).toBe('repositories[1].name');
    expect(error.message).toBe(`invalid plan ${file}: repositories[1].name "local" is used twice`);
    expect(error.hint).toBe('Give every entry of repositories its own name.');
  });

  it('duplicate database names', async () => {
    const file = await writePlan(MINIMAL_PLAN.replace('repositories:', '  - name: shop\n    url: postgres://127.0.0.1/other\nrepositories:'));

    const error = await loadError(file);

    expect(error.code).toBe('config.duplicate');
    expect(error.object).toBe('databases[1].name');
    expect(error.message).toBe(`invalid plan ${file}: databases[1].name "shop" is used twice`);
  });

  it('empty file is invalid', async () => {
    const file = await writePlan('');

    const error = await loadError(file);

    expect(error.code).toBe('config.invalid');
    expect(error.message).toBe(
      `invalid plan ${file}:\n  databases: missing; this field is required\n  repositories: missing; this field is required`,
    );
  });

  it('defaults are applied', async () => {
    const file = await writePlan(MINIMAL_PLAN);

    const plan = await loadPlan(file, {});

    expect(plan.version).toBe(1);
    expect(plan.backup).toEqual({ compression: 'zstd', lockTimeout: '0s', archiveTimeout: '60s' });
  });
});

describe('loadPlan file errors', () => {
  it('missing file is unreadable', async () => {
    const file = join(dir, 'absent.yaml');

    const error = await loadError(file);

    expect(error.code).toBe('config.unreadable');
    expect(error.object).toBe(file);
    expect(error.message).toBe(`cannot read plan file ${file}: no such file`);
    expect(error.hint).toBe('Pass --config FILE, set DRPLAN_CONFIG, or run `drplan init` to write an example plan.');
  });

  it('broken YAML is config.yaml', async () => {
    const file = await writePlan('databases:\n  - name: shop\n   url: postgres://127.0.0.1/shop\n');

    const error = await loadError(file);

    expect(error.code).toBe('config.yaml');
    expect(error.object).toBe(file);
    expect(error.message).toBe(`invalid YAML in ${file}: Sequence item without - indicator at line 3, column 1:\n\n  - name: shop\n   url: postgres://127.0.0.1/shop\n^\n`);
    expect(error.hint).toBe('Fix the YAML syntax at the line shown.');
  });

  it('unclosed flow list is config.yaml', async () => {
    const file = await writePlan('databases: [\n');

    const error = await loadError(file);

    expect(error.code).toBe('config.yaml');
    expect(error.message).toBe(`invalid YAML in ${file}: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1:\n\ndatabases: [\n\n^\n`);
  });
});

describe('resolveConfigPath', () => {
  it('flag wins over environment', () => {
    expect(resolveConfigPath('/etc/drplan/flag.yaml', { DRPLAN_CONFIG: '/etc/drplan/env.yaml' })).toBe('/etc/drplan/flag.yaml');
  });

  it('environment wins over default', () => {
    expect(resolveConfigPath(undefined, { DRPLAN_CONFIG: '/etc/drplan/env.yaml' })).toBe('/etc/drplan/env.yaml');
  });

  it('default is ./drplan.yaml', () => {
    expect(resolveConfigPath(undefined, {})).toBe(join(process.cwd(), 'drplan.yaml'));
  });

  it('relative paths resolve against cwd', () => {
    expect(resolveConfigPath('plans/shop.yaml', {})).toBe(resolve('plans/shop.yaml'));
    expect(resolveConfigPath(undefined, { DRPLAN_CONFIG: 'plans/env.yaml' })).toBe(join(process.cwd(), 'plans', 'env.yaml'));
  });
});

describe('loadPlan suggestions', () => {
  it('suggests the closest field', async () => {
    const file = await writePlan(MINIMAL_PLAN.replace('url: file:///var/backups/shop', 'url: file:///var/backups/shop\n    forcePathStlye: true'));
    const error = await loadError(file);
    expect(error.message).toContain('repositories[0]: unknown field forcePathStlye; did you mean forcePathStyle? allowed fields here:');
  });

  it('rejects encryption it cannot provide', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}compliance: { encryption: true }\n`);
    const error = await loadError(file);
    expect(error.code).toBe('config.unsupported');
    expect(error.message).toContain('compliance.encryption: true is not supported yet; drplan does not encrypt backups');
  });
});

describe('loadPlan objectives and promises', () => {
  it('rejects a misspelt objective table', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}objectives:\n  rpo: { databse: 1h }\n`);
    const error = await loadError(file);
    expect(error.code).toBe('config.objectives');
    expect(error.message).toContain('objectives.rpo has no entry "database" and none for shop; found databse');
  });

  it('rejects an audit trail it cannot keep', async () => {
    const file = await writePlan(`${MINIMAL_PLAN}compliance: { auditTrail: true }\n`);
    const error = await loadError(file);
    expect(error.code).toBe('config.unsupported');
    expect(error.message).toContain('compliance.auditTrail: true is not supported yet');
  });

  it('explains a number below its minimum', async () => {
    const file = await writePlan(MINIMAL_PLAN.replace('url: file:///var/backups/shop', 'url: file:///var/backups/shop\n    retention: { keepLast: -1 }'));
    const error = await loadError(file);
    expect(error.message).toContain('repositories[0].retention.keepLast: -1 is invalid; expected a number > 0');
  });
});
