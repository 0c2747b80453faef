/**
 * The command that runs this drplan, for settings that make another program
 * call drplan back (PostgreSQL's restore_command).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const moduleDir = path.dirname(fileURLToPath(import.meta.url));
// Built, this module is dist/src/util/; under the test runner it is src/util/.
const srcDir = path.resolve(moduleDir, '..');
const packageRoot = path.basename(path.dirname(srcDir)) === 'dist' ? path.resolve(srcDir, '../..') : path.dirname(srcDir);

/** The absolute path of bin/drplan.js in this package. */
export const DRPLAN_BIN = path.join(packageRoot, 'bin', 'drplan.js');
