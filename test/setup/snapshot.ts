// What a process holds, by identity rather than by count: its fds (number and what each refers
// to) and its threads (id and name). The leak check (leaks.ts) compares two of these and reports
// only what is new at the end, i.e. what the test file itself opened and left open. Counts alone
// failed on Node 24, which ends a thread and an fd of its own during some files: a total one
// lower than at the start is not a leak of ours, and a total that hides a leak of ours behind one
// of Node's that went away is still a leak.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ProcessSnapshot {
  /** fd number → what /proc says it refers to (`socket:[123]`, `pipe:[45]`, a path, `anon_inode:[eventpoll]`). */
  fds: Map<number, string>;
  /** thread id → its name (`node`, `libuv-worker`, `V8Worker`…). */
  threads: Map<number, string>;
}

function read(fn: () => string): string | undefined {
  try {
    return fn();
  } catch {
    // Gone between the listing and the read: the listing's own directory fd, or a thread that
    // has just exited. Neither is held.
    return undefined;
  }
}

export function snapshot(): ProcessSnapshot {
  const fds = new Map<number, string>();
  for (const n of readdirSync('/proc/self/fd')) {
    const target = read(() => readlinkSync(`/proc/self/fd/${n}`));
    if (target !== undefined) fds.set(Number(n), target);
  }
  const threads = new Map<number, string>();
  for (const t of readdirSync('/proc/self/task')) {
    const name = read(() => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim());
    if (name !== undefined) threads.set(Number(t), name);
  }
  return { fds, threads };
}

/**
 * What `after` holds that `before` did not: fds whose number is new or now refers to something
 * else (a number Node freed and we reused), and threads whose id is new (the kernel does not hand
 * a thread id out again until the id space wraps). Anonymous inodes of one kind (two epoll fds)
 * read the same, so one of ours reusing the number of one of Node's of the same kind is not seen
 * here; the native handle counts (`liveHandles()`) catch our loops, timers and inboxes anyway.
 */
export function opened(before: ProcessSnapshot, after: ProcessSnapshot): { fds: string[]; threads: string[] } {
  const fds = [...after.fds].filter(([n, target]) => before.fds.get(n) !== target).map(([n, target]) => `fd ${n} → ${target}`);
  const threads = [...after.threads].filter(([tid]) => !before.threads.has(tid)).map(([tid, name]) => `thread ${tid} (${name})`);
  return { fds, threads };
}
