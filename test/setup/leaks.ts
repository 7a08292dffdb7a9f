// Runs around every test file (vitest setupFiles): whatever a file started — runtimes, sockets,
// files, pipes, threads — must be gone when it ends. Each file runs in its own process (pool
// 'forks'), so the counts are the file's alone.
import { readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { afterAll, beforeAll, expect } from 'vitest';

import { liveHandles, type LiveHandles } from '../../dist/src/index.js';

const count = (dir: string): number => readdirSync(dir).length;
let before: { fds: number; threads: number; live: LiveHandles } | undefined;

beforeAll(async () => {
  // libuv's thread pool starts all its threads on first use and keeps them: start it now, so
  // that a test's first fs call is not counted as a thread leak.
  await stat('.');
  before = { fds: count('/proc/self/fd'), threads: count('/proc/self/task'), live: liveHandles() };
});

afterAll(async () => {
  const b = before!;
  // A closed runtime's threads are joined just after its close resolves: give them a moment,
  // by polling, bounded.
  const deadline = Date.now() + 5000;
  for (;;) {
    const live = liveHandles();
    // Disk pool threads are started on demand and parked when idle, by design, until exit.
    const started = live.diskThreads - b.live.diskThreads;
    const now = { fds: count('/proc/self/fd'), threads: count('/proc/self/task') - started, live: { ...live, diskThreads: b.live.diskThreads } };
    if (Date.now() > deadline || (now.fds === b.fds && now.threads === b.threads && JSON.stringify(now.live) === JSON.stringify(b.live))) {
      expect(now, 'fds, threads and native handles left behind by this test file').toEqual(b);
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}, 10_000);
