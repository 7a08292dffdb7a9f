// --shard I/N: one instance's part of a run spread over N instances (hosts, pods), computed by
// each instance from its own flags alone, with no coordinator. The whole run's --threads are
// spread over the shards exactly as a fleet spreads them over processes (src/cli/spread.ts), and
// each thread keeps its global index, so per-thread rate and connections, and the target and
// source each connection picks, are the same whatever N is: the N shards together are the run
// one instance would make with the same flags.
import { UsageError } from '../src/cli/args.js';
import { threadsOf } from '../src/cli/spread.js';

export interface Shard {
  /** This shard, 0-based (Kubernetes' JOB_COMPLETION_INDEX is one). */
  index: number;
  /** Shards in the run. */
  count: number;
  /** Global index of this shard's first loop thread. */
  firstThread: number;
  /** Loop threads this shard runs. */
  threads: number;
  /** Loop threads of the whole run (all shards). */
  totalThreads: number;
}

/** The part of a run of `totalThreads` threads that shard `index` of `count` runs. */
export function shardOf(totalThreads: number, index: number, count: number): Shard {
  let firstThread = 0;
  for (let j = 0; j < index; j++) firstThread += threadsOf(totalThreads, count, j);
  return { index, count, firstThread, threads: threadsOf(totalThreads, count, index), totalThreads };
}

/** The whole run as one shard. */
export const wholeRun = (totalThreads: number): Shard => shardOf(totalThreads, 0, 1);

/**
 * Parses `--shard I/N` against the run's --threads. Throws UsageError naming the flag and the fix
 * for anything that is not two integers with 0 ≤ I < N ≤ threads.
 */
export function parseShard(value: string | undefined, totalThreads: number): Shard {
  if (value === undefined) return wholeRun(totalThreads);
  const m = /^(\d{1,6})\/(\d{1,6})$/.exec(value.trim());
  if (!m) throw new UsageError(`--shard ${value}: expected I/N, this instance's index from 0 and the number of instances (e.g. --shard 0/4)`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new UsageError(`--shard ${value}: N must be at least 1`);
  if (index >= count) throw new UsageError(`--shard ${value}: the index counts from 0, so it must be less than N (here 0 to ${count - 1})`);
  if (count > totalThreads)
    throw new UsageError(`--shard ${value}: ${count} shards but --threads ${totalThreads}; every shard runs at least one thread, so raise --threads to at least ${count} or use fewer shards`);
  return shardOf(totalThreads, index, count);
}

/** "2/4", or "" for a run that is not sharded. */
export const shardText = (s: Shard): string => (s.count > 1 ? `${s.index}/${s.count}` : '');
