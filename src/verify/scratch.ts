/**
 * The server for test restores: the plan's `verify.url` when given, else a
 * throwaway local cluster of the backup's major version, started here and
 * removed afterwards.
 */
import { findPostgresBinDir, startThrowawayCluster } from '../postgres/cluster.js';

export interface ScratchServer {
  /** A libpq URI of the server (its database part is replaced by callers). */
  url: string;
  /** For records and messages: which server, without credentials. */
  description: string;
  dispose(): Promise<void>;
}

export async function openScratchServer(verifyUrl: string | undefined, major: number, signal?: AbortSignal): Promise<ScratchServer> {
  if (verifyUrl) {
    const url = new URL(verifyUrl);
    return { url: verifyUrl, description: `verify server ${url.hostname}:${url.port || '5432'}`, dispose: async () => undefined };
  }
  const cluster = await startThrowawayCluster({ binDir: await findPostgresBinDir(major), signal });
  return { url: cluster.url(), description: `throwaway PostgreSQL ${major} cluster`, dispose: () => cluster.stop() };
}
