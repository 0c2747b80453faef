import { defineConfig } from 'vitest/config';

// Integration tests start real PostgreSQL clusters and S3 servers, so files run
// two at a time (the CI machine has two cores) with generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    fileParallelism: true,
  },
});
