#!/usr/bin/env node
/**
 * A test-only stand-in for `drplan wal push`, run by a throwaway cluster's
 * archive_command as `node wal-archive-standin.mjs CONFIG %p %f`. It stores
 * the WAL file compressed under walKey() in every repository of CONFIG (a
 * JSON file with `repositories`, `database`, `compression` and `env`), the
 * layout that physical backups wait for and restores read.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const [configFile, walPath, walName] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configFile, 'utf8'));
Object.assign(process.env, config.env ?? {});
const dist = new URL('../../dist/src/', import.meta.url);
const { openStorage } = await import(new URL('storage/registry.js', dist).href);
const { walKey } = await import(new URL('wal/layout.js', dist).href);

const raw = readFileSync(walPath);
let body = raw;
if (config.compression === 'zstd') {
  const result = spawnSync('zstd', ['-q', '-c', '-3'], { input: raw, maxBuffer: 1 << 30 });
  if (result.status !== 0) throw new Error(`zstd failed: ${result.stderr}`);
  body = result.stdout;
}
for (const repository of config.repositories) {
  const storage = await openStorage(repository);
  await storage.put(walKey(config.database, walName, config.compression), body);
}
