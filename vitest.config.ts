import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // test/unit (no Redis), test/engine (engine + Lua on Redis), test/contract (the service over HTTP),
    // test/system (processes, topologies, failures); test/support is the shared harness. Every
    // *.test.ts under test/ runs, so a file put elsewhere is not silently skipped.
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
