// Runs around every test file (vitest setupFiles): whatever a file started — runtimes, sockets,
// files, pipes, threads — must be gone when it ends. Each file runs in its own process (pool
// 'forks'), so what is new at the end was opened by the file. Only what is new counts (see
// snapshot.ts): Node releases differ in the threads and fds they keep, and one that ends its own
// during a file must not fail it.
import { stat } from 'node:fs/promises';
import { afterAll, beforeAll, expect } from 'vitest';

import { liveHandles, type LiveHandles } from '../../dist/src/index.js';
import { opened, snapshot, type ProcessSnapshot } from './snapshot.js';

let before: { process: ProcessSnapshot; live: LiveHandles } | undefined;

beforeAll(async () => {
  // libuv's thread pool starts all its threads on first use and keeps them: start it now, so
  // that a test's first fs call is not counted as a thread leak.
  await stat('.');
  before = { process: snapshot(), live: liveHandles() };
});

afterAll(async () => {
  const b = before!;
  // A closed runtime's threads are joined just after its close resolves: give them a moment,
  // by polling, bounded.
  const deadline = Date.now() + 5000;
  for (;;) {
    const live = liveHandles();
    const left = opened(b.process, snapshot());
    // Disk pool threads are started on demand and parked when idle, by design, until exit; they
    // have no name of their own, so they are taken off by number.
    const diskStarted = live.diskThreads - b.live.diskThreads;
    const now = {
      fds: left.fds,
      threads: left.threads.length > diskStarted ? left.threads : [],
      live: { ...live, diskThreads: b.live.diskThreads },
    };
    const clean = now.fds.length === 0 && now.threads.length === 0 && JSON.stringify(now.live) === JSON.stringify(b.live);
    if (clean || Date.now() > deadline) {
      expect(now, `fds, threads and native handles left behind by this test file (${diskStarted} disk pool threads started, allowed)`).toEqual({
        fds: [],
        threads: [],
        live: b.live,
      });
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}, 10_000);
