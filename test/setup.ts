import { afterAll } from 'vitest';
import { removeTempDirs } from './helpers/plan.js';

// Plan files and file repositories live in temp directories; remove them once each test file is done.
afterAll(removeTempDirs);
