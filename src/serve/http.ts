/**
 * The HTTP API of `drplan serve` (fastify): health, readiness, Prometheus
 * metrics, status, backups and jobs. With `server.token` set, /api and
 * /metrics require `Authorization: Bearer <token>`; /health stays open for
 * liveness probes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { readCatalog } from '../backup/catalog.js';
import { backupRows } from '../backup/listing.js';
import { jobDatabase } from '../config/jobs.js';
import type { PlanContext } from '../context.js';
import type { ServeMetrics } from './metrics.js';
import type { StatusMonitor } from './monitor.js';
import type { JobRunner } from './runner.js';
import type { Scheduler } from './scheduler.js';
import type { JobState } from './state.js';

export interface ApiOptions {
  context: PlanContext;
  runner: JobRunner;
  scheduler: Scheduler;
  monitor: StatusMonitor;
  metrics: ServeMetrics;
  state: JobState;
  token?: string;
}

/** Builds the fastify app; the caller listens and closes it. */
export function buildApi(options: ApiOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  if (options.token !== undefined) app.addHook('onRequest', requireToken(options.token));

  app.get('/health', async () => ({ ok: true }));
  app.get('/ready', async (_request, reply) => ready(options, reply));
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });
  app.get('/api/status', async () => options.monitor.refresh());
  app.get('/api/backups', async (request: FastifyRequest<{ Querystring: { database?: string } }>) => {
    return backupRows(await readCatalog(options.context, request.query.database));
  });
  app.get('/api/jobs', async () => listJobs(options));
  app.post('/api/jobs/:name/run', async (request: FastifyRequest<{ Params: { name: string } }>, reply) => runJob(options, request.params.name, reply));
  return app;
}

/** Rejects requests to /api and /metrics without the bearer token, comparing digests in constant time. */
function requireToken(token: string) {
  const expected = digest(token);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    if (path !== '/metrics' && path !== '/api' && !path.startsWith('/api/')) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    // Digests have the same length whatever was sent, so the comparison time reveals nothing about the token.
    if (match && timingSafeEqual(digest(match[1]!), expected)) return;
    reply.header('www-authenticate', 'Bearer realm="drplan"');
    // Returning the sent reply ends the request here, so the route handler never runs.
    return reply.code(401).send({ error: 'missing or invalid bearer token', hint: 'Send the header "Authorization: Bearer <server.token>".' });
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Replies 200 once the plan is loaded and every repository was reachable at the last status read, else 503. */
async function ready(options: ApiOptions, reply: FastifyReply) {
  const report = options.monitor.report;
  if (!report) return reply.code(503).send({ ready: false, reason: 'the first status read has not finished' });
  const unreachable = report.repositories.filter((r) => !r.reachable).map((r) => ({ repository: r.repository, error: r.error ?? 'could not list it' }));
  if (unreachable.length > 0) return reply.code(503).send({ ready: false, reason: 'repository unreachable', unreachable, checkedAt: report.at });
  return reply.code(200).send({ ready: true, checkedAt: report.at });
}

function listJobs(options: ApiOptions) {
  return (options.context.plan.jobs ?? []).map((job) => ({
    name: job.name,
    type: job.type,
    database: jobDatabase(options.context.plan, job) ?? null,
    fileset: job.fileset ?? null,
    cron: job.cron,
    timezone: job.timezone ?? 'UTC',
    nextRun: options.scheduler.nextRun(job.name)?.toISOString() ?? null,
    lastRun: options.state.lastRun(job.name) ?? null,
    running: options.runner.runningRun(job.name) ?? null,
    pending: options.runner.pendingRun(job.name) ?? null,
  }));
}

/**
 * Starts a job now (202, state "running"), or queues it behind the running
 * job of its database (202, state "queued"), like a scheduled run. A job that
 * is already running or pending gets 409.
 */
async function runJob(options: ApiOptions, name: string, reply: FastifyReply) {
  const start = options.runner.start(name, 'api');
  if (start.started) return reply.code(202).send({ state: 'running', runId: start.run.runId, job: name, startedAt: start.run.startedAt });
  if (start.queued) return reply.code(202).send({ state: 'queued', job: name, dueAt: start.pending.dueAt, waitingFor: start.pending.waitingFor });
  if (start.reason === 'unknown job') {
    const known = (options.context.plan.jobs ?? []).map((j) => j.name);
    return reply.code(404).send({ error: `job ${JSON.stringify(name)} is not in the plan`, known });
  }
  if (start.reason === 'already running') {
    return reply.code(409).send({ error: `job ${name} is already running`, running: start.conflict });
  }
  if (start.reason === 'already pending') {
    return reply.code(409).send({ error: `job ${name} is already queued`, pending: options.runner.pendingRun(name) });
  }
  return reply.code(503).send({ error: 'drplan serve is shutting down and starts no new jobs' });
}
