import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The addon runs in every test process: a native crash then kills one fork, not the runner.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    // Checks that each test file leaves no fd, thread or native handle behind.
    setupFiles: ['test/setup/leaks.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
