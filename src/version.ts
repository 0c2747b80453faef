/** drplan's own version, read from package.json. */
import { existsSync, readFileSync } from 'node:fs';

/**
 * The built module sits in dist/src/, the source in src/ (as tests load it),
 * so package.json is two or one directory up; its name confirms the match.
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
