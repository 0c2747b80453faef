/**
 * Writes drplan plan files for tests: databases from throwaway clusters and
 * repositories on a temp directory or the local S3 server.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { S3TestServer } from './s3.js';

export interface TestRepository {
  name: string;
  url: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  retention?: Record<string, unknown>;
}

const createdDirs: string[] = [];

/** Creates a temp directory that `removeTempDirs` deletes after the test file. */
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  createdDirs.push(dir);
  return dir;
}

/** Deletes every directory made by this module; run after each test file (test/setup.ts). */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(createdDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

/** Describes a repository on the local S3 server. */
export function s3Repository(name: string, s3: S3TestServer, bucket: string, prefix = 'drplan'): TestRepository {
  return { name, url: `s3://${bucket}/${prefix}`, endpoint: s3.endpoint, region: s3.region, forcePathStyle: true };
}

/** Creates a repository in a new temp directory. */
export async function fileRepository(name: string): Promise<TestRepository & { dir: string }> {
  const dir = await tempDir(`drplan-repo-${name}-`);
  return { name, url: `file://${dir}`, dir };
}

/** Environment for drplan processes that talk to the local S3 server. */
export function s3Env(s3: S3TestServer): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region };
}

/** Writes a plan file into a new temp directory and returns its path. */
export async function writePlan(plan: { databases: { name: string; url: string }[]; repositories: TestRepository[]; [key: string]: unknown }): Promise<string> {
  const dir = await tempDir('drplan-plan-');
  const file = path.join(dir, 'drplan.yaml');
  const repositories = plan.repositories.map(({ name, url, endpoint, region, forcePathStyle, retention }) => ({ name, url, endpoint, region, forcePathStyle, retention }));
  await writeFile(file, stringify({ ...plan, repositories }));
  return file;
}
