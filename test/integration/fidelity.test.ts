/**
 * Objects that plain dump scripts often lose: an advanced sequence, a large
 * object, a materialized view, ownership and grants of a non-default role, a
 * mixed-case quoted name, a non-public schema and a partitioned table. The
 * backup is restored onto a second, fresh cluster that has none of the roles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runCli } from '../helpers/cli.js';
import { query, tableFingerprints } from '../helpers/pg.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

const SETUP = `
CREATE ROLE app_owner LOGIN PASSWORD 'owner-secret';
CREATE ROLE app_reader NOLOGIN;
CREATE SCHEMA billing AUTHORIZATION app_owner;
CREATE TABLE billing.invoice (id bigserial PRIMARY KEY, customer text NOT NULL, total numeric(12,2), doc jsonb);
ALTER TABLE billing.invoice OWNER TO app_owner;
GRANT SELECT ON billing.invoice TO app_reader;
INSERT INTO billing.invoice (customer, total, doc)
  SELECT 'customer ' || g, g * 1.5, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', md5(g::text)))
  FROM generate_series(1, 500) g;
SELECT setval('billing.invoice_id_seq', 10000);
CREATE TABLE public."MixedCase Table" ("Id" int PRIMARY KEY, "Label" text);
INSERT INTO public."MixedCase Table" VALUES (1, 'één'), (2, 'two'), (3, NULL);
CREATE TABLE public.events (id int, happened date NOT NULL, payload text) PARTITION BY RANGE (happened);
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO public.events SELECT g, DATE '2025-06-01' + (g % 400), md5(g::text) FROM generate_series(1, 1000) g;
CREATE MATERIALIZED VIEW public.customer_totals AS SELECT customer, sum(total) AS total FROM billing.invoice GROUP BY customer;
CREATE TABLE public.documents (id int PRIMARY KEY, body oid);
INSERT INTO public.documents VALUES (1, lo_from_bytea(0, convert_to('large object payload ' || repeat('x', 5000), 'UTF8')));
`;

describe('restore fidelity on a fresh cluster', () => {
  let source: ThrowawayCluster;
  let target: ThrowawayCluster;
  let planFile: string;
  let env: Record<string, string>;
  let restore: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    [source, target] = await Promise.all([startThrowawayCluster(), startThrowawayCluster()]);
    await query(source.url(), 'CREATE DATABASE shop');
    await query(source.url('shop'), SETUP);
    const repo = await fileRepository('local');
    planFile = await writePlan({
      databases: [{ name: 'shop', url: source.url('shop').replace(source.password, '${SOURCE_PASSWORD}') }],
      repositories: [repo],
    });
    env = { SOURCE_PASSWORD: source.password, TARGET_PASSWORD: target.password };
    const backup = await runCli(['--config', planFile, 'backup'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    restore = await runCli(['--config', planFile, 'restore', 'latest', '--target-database', 'shop_copy', '--target-url', target.url(), '--jobs', '2'], { env });
  });

  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('restore succeeds', () => {
    expect(restore.code, restore.stderr).toBe(0);
  });

  it('tables are identical', async () => {
    expect(await tableFingerprints(target.url('shop_copy'))).toEqual(await tableFingerprints(source.url('shop')));
  });

  it('sequence keeps its advanced value', async () => {
    const [row] = await query<{ last_value: string }>(target.url('shop_copy'), 'SELECT last_value FROM billing.invoice_id_seq');
    expect(row!.last_value).toBe('10000');
  });

  it('large object comes back', async () => {
    const [row] = await query<{ body: string }>(target.url('shop_copy'), "SELECT convert_from(lo_get(body), 'UTF8') AS body FROM public.documents WHERE id = 1");
    expect(row!.body).toBe(`large object payload ${'x'.repeat(5000)}`);
  });

  it('materialized view is populated', async () => {
    const [row] = await query<{ n: string; total: string }>(target.url('shop_copy'), 'SELECT count(*) AS n, sum(total) AS total FROM public.customer_totals');
    expect(row!.n).toBe('500');
    expect(row!.total).toBe('187875.00');
  });

  it('roles are recreated with login', async () => {
    const rows = await query<{ rolname: string; rolcanlogin: boolean }>(target.url(), "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'app_%' ORDER BY 1");
    expect(rows).toEqual([
      { rolname: 'app_owner', rolcanlogin: true },
      { rolname: 'app_reader', rolcanlogin: false },
    ]);
  });

  it('ownership and grants are kept', async () => {
    const [row] = await query<{ owner: string; reader: boolean; schema_owner: string }>(
      target.url('shop_copy'),
      `SELECT tableowner AS owner, has_table_privilege('app_reader', 'billing.invoice', 'SELECT') AS reader,
              (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'billing') AS schema_owner
         FROM pg_tables WHERE schemaname = 'billing' AND tablename = 'invoice'`,
    );
    expect(row).toEqual({ owner: 'app_owner', reader: true, schema_owner: 'app_owner' });
  });

  it('partitions are attached', async () => {
    const rows = await query<{ child: string }>(
      target.url('shop_copy'),
      "SELECT inhrelid::regclass::text AS child FROM pg_inherits WHERE inhparent = 'public.events'::regclass ORDER BY 1",
    );
    expect(rows.map((r) => r.child)).toEqual(['events_2025', 'events_2026']);
  });

  it('role password hash carries over', async () => {
    const url = new URL(target.url('shop_copy'));
    url.username = 'app_owner';
    url.password = 'owner-secret';
    const [row] = await query<{ user: string }>(url.toString(), 'SELECT current_user AS user');
    expect(row!.user).toBe('app_owner');
  });

  it('superuser password is untouched', async () => {
    const [row] = await query<{ one: number }>(target.url(), 'SELECT 1 AS one');
    expect(row!.one).toBe(1);
  });
});
