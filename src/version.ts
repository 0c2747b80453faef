/** drplan's own version, read from package.json. */
import { existsSync, readFileSync } from 'node:fs';

// Built code runs from dist/src/, tests import src/ directly; package.json is two or one levels up.
const packageFile = [new URL('../../package.json', import.meta.url), new URL('../package.json', import.meta.url)].find((url) => existsSync(url))!;
const packageJson = JSON.parse(readFileSync(packageFile, 'utf8')) as { version: string };

export const DRPLAN_VERSION: string = packageJson.version;
