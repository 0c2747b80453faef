/** drplan's own version, read from package.json. */
import { existsSync, readFileSync } from 'node:fs';

/**
 * Reads the version from package.json, which is two directories up from the
 * built module (dist/src/) and one up from the source that tests load (src/).
 */
function readVersion(): string {
  for (const relative of ['../../package.json', '../package.json']) {
    const url = new URL(relative, import.meta.url);
    if (!existsSync(url)) continue;
    const packageJson = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version: string };
    if (packageJson.name === 'drplan') return packageJson.version;
  }
  throw new Error(`package.json of drplan not found above ${import.meta.url}`);
}

export const DRPLAN_VERSION: string = readVersion();
