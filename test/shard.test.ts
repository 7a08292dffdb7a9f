// --shard I/N (clt/shard.ts): each instance computes its part of a run from its own flags.
//
// What it proves: for every thread count up to 64 and every N up to it, the N shards' thread
// ranges are disjoint, in order and cover the run's threads exactly (so the shards' connections
// add up to the one-instance run's whatever N is), and each shard's count is what a fleet of N
// processes gives its process; bad values are flag errors naming --shard and the fix, and clt
// exits 2 with them as with its other bad flags; two shards of a run against one srv make the
// run's connections together, with their bytes reconciled exactly.
import { afterEach, describe, expect, it } from 'vitest';

import { parseShard, shardOf } from '../dist/clt/shard.js';
import { threadsOf } from '../dist/src/cli/spread.js';
import { UsageError } from '../dist/src/cli/args.js';
import { killAll, run } from './proc.js';

afterEach(killAll);

describe('shardOf', () => {
  it('splits any run into disjoint, ordered shards that cover its threads exactly, as the process fleet does', () => {
    let checked = 0;
    for (let threads = 1; threads <= 64; threads++) {
      for (let n = 1; n <= threads; n++) {
        let next = 0;
        for (let i = 0; i < n; i++) {
          const s = shardOf(threads, i, n);
          expect(s.firstThread).toBe(next);
          expect(s.threads).toBe(threadsOf(threads, n, i));
          expect(s.threads).toBeGreaterThanOrEqual(1);
          expect(s.totalThreads).toBe(threads);
          next += s.threads;
          checked++;
        }
        expect(next).toBe(threads);
      }
    }
    expect(checked).toBe((64 * 65 * 66) / 6); // Σ_t Σ_{n≤t} n
  });

  it('no shard has more than one thread more than another', () => {
    const sizes = Array.from({ length: 5 }, (_, i) => shardOf(23, i, 5).threads);
    expect(sizes).toEqual([5, 5, 5, 4, 4]);
  });
});

describe('parseShard', () => {
  it('without --shard, the whole run', () => {
    expect(parseShard(undefined, 8)).toEqual({ index: 0, count: 1, firstThread: 0, threads: 8, totalThreads: 8 });
  });

  it('I/N from 0', () => {
    expect(parseShard('1/2', 8)).toEqual({ index: 1, count: 2, firstThread: 4, threads: 4, totalThreads: 8 });
    expect(parseShard('2/3', 8)).toEqual({ index: 2, count: 3, firstThread: 6, threads: 2, totalThreads: 8 });
  });

  it.each([
    ['3/2', /--shard 3\/2: the index counts from 0, so it must be less than N \(here 0 to 1\)/],
    ['2/2', /must be less than N/],
    ['0/0', /--shard 0\/0: N must be at least 1/],
    ['0/9', /--shard 0\/9: 9 shards but --threads 8; .*raise --threads to at least 9 or use fewer shards/],
    ['1', /--shard 1: expected I\/N/],
    ['-1/2', /expected I\/N/],
    ['a/b', /expected I\/N/],
    ['1/2/3', /expected I\/N/],
  ])('%s is a flag error', (value, message) => {
    expect(() => parseShard(value, 8)).toThrow(UsageError);
    expect(() => parseShard(value, 8)).toThrow(message);
  });
});

describe('iapp-clt --shard', () => {
  it.each([
    [['--shard', '3/2'], /--shard 3\/2: the index counts from 0/],
    [['--shard', '0/5', '--threads', '4'], /--shard 0\/5: 5 shards but --threads 4/],
    [['--shard', '0/2', '--threads', '4', '--procs', '3'], /--procs 3: at most this shard's threads \(2 of --threads 4\)/],
  ])('%j: one line on stderr, exit 2', async (args, message) => {
    const p = run('dist/clt/main.js', args);
    const { code } = await p.exited;
    expect(p.stderr()).toMatch(message);
    expect(p.stderr().trim().split('\n')).toHaveLength(1);
    expect(code).toBe(2);
  });

  it('two shards of a 3-thread run make its 3 × conns connections together, and their bytes reconcile with srv exactly', async () => {
    const srv = run('dist/srv/main.js', ['--json', '--listen', '127.0.0.1:0', '--threads', '1']);
    const target = ((await srv.json('listening')).addresses as { text: string }[])[0]!.text;
    const common = ['--json', '--duration', '1', '--rate', '1000', '--threads', '3', '--conns', '4', '--target', target];
    const a = run('dist/clt/main.js', [...common, '--shard', '0/2']);
    const b = run('dist/clt/main.js', [...common, '--shard', '1/2']);
    const [sa, sb] = await Promise.all([a.json('summary'), b.json('summary')]);
    expect((await a.exited).code, a.stderr()).toBe(0);
    expect((await b.exited).code, b.stderr()).toBe(0);
    expect([sa.shard, sa.threads, sa.totalThreads]).toEqual(['0/2', 2, 3]);
    expect([sb.shard, sb.threads, sb.totalThreads]).toEqual(['1/2', 1, 3]);
    expect(sa.connected).toBe(8);
    expect(sb.connected).toBe(4);
    srv.child.kill('SIGTERM');
    const received = await srv.json('summary');
    expect(received.accepted).toBe(12);
    expect(received.rxBytes).toBe(sa.txBytes + sb.txBytes);
  }, 30_000);
});
