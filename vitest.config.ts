import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Kernel-touching suites make their own uniquely named namespaces, so files may run in parallel.
    fileParallelism: true,
    reporters: ['default'],
  },
});
