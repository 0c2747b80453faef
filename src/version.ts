/** drplan's own version, read from package.json. */
import { readFileSync } from 'node:fs';

/**
 * Reads drplan's package.json. The built code runs from dist/src/ and the
 * tests import the sources from src/, so the file is one or two levels up.
 * The name check skips a package.json of an enclosing project.
 */
function readPackageJson(): { name: string; version: string } {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const parsed = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name: string; version: string };
      if (parsed.name === 'drplan') return parsed;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  throw new Error(`drplan's package.json not found above ${new URL('.', import.meta.url).pathname}`);
}

export const DRPLAN_VERSION: string = readPackageJson().version;
