// The per-file leak check (test/setup/leaks.ts) itself, with real fds and a real thread: it
// reports what a test opened and left open, also when the fd number is one Node had freed, and it
// does not report what Node (or anything open before the test) closed meanwhile. Counting alone
// got the second case wrong on Node 24.
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { afterAll, describe, expect, it } from 'vitest';

import { opened, snapshot } from './setup/snapshot.js';

const dir = mkdtempSync(join(tmpdir(), 'iapp-leaks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the leak check', () => {
  it('reports an fd a test left open, by number and path, and nothing once it is closed', () => {
    const before = snapshot();
    const fd = openSync(join(dir, 'left-open'), 'w');
    try {
      expect(opened(before, snapshot()).fds).toEqual([`fd ${fd} → ${join(dir, 'left-open')}`]);
    } finally {
      closeSync(fd);
    }
    expect(opened(before, snapshot())).toEqual({ fds: [], threads: [] });
  });

  it('does not report an fd that was open before and closed meanwhile (Node ending one of its own)', () => {
    const earlier = openSync(join(dir, 'earlier'), 'w');
    const before = snapshot();
    closeSync(earlier);
    const after = snapshot();
    expect(after.fds.size).toBe(before.fds.size - 1); // what the count-based check failed on
    expect(opened(before, after)).toEqual({ fds: [], threads: [] });
  });

  it('reports an fd of ours that reuses a number freed meanwhile', () => {
    const earlier = openSync(join(dir, 'earlier'), 'w');
    const before = snapshot();
    closeSync(earlier);
    const ours = openSync(join(dir, 'ours'), 'w'); // the lowest free number: the one just freed
    try {
      expect(ours).toBe(earlier);
      expect(before.fds.size).toBe(snapshot().fds.size); // equal counts, yet a leak
      expect(opened(before, snapshot()).fds).toEqual([`fd ${ours} → ${join(dir, 'ours')}`]);
    } finally {
      closeSync(ours);
    }
  });

  it('reports a thread a test left running, and nothing once it has ended', async () => {
    const before = snapshot();
    const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
    await new Promise((r) => worker.once('online', r));
    const left = opened(before, snapshot()).threads;
    expect(left.length).toBeGreaterThanOrEqual(1); // the worker's thread (and, on some Node lines, helpers of its own)
    await worker.terminate();
    // The thread is joined right after 'exit': poll for it, bounded.
    const deadline = Date.now() + 5000;
    while (opened(before, snapshot()).threads.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(opened(before, snapshot()).threads).toEqual([]);
  });
});
