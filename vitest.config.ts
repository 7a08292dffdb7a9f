import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The addon runs in every test process: a native crash then kills one fork, not the runner.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
