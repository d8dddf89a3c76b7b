import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // One file at a time, whatever CPU count the machine reports: several files
    // assert answers within the contract's 2 seconds, and the concurrency and
    // expiry files load the machine on purpose.
    fileParallelism: false,
  },
});
