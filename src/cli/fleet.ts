// A set of loop threads spread over one or more processes, driven as one: the programs (srv, clt)
// run the same code whatever --procs is. With procs = 1 the threads live in this process; with
// more, each child process (child.ts) runs a Runtime with its share of the threads and answers
// over the IPC channel. Processes exist to go past one process's fd limit (RLIMIT_NOFILE).
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';

import { CLOSE_TIMEOUT_MS } from '../defaults.js';
import { connectionCounts, reclaimConnectionCounts, shareConnectionCounts, type ConnectionCounts } from '../conns.js';
import { Gather } from '../gather.js';
import { threadsOf } from './spread.js';
import { createRuntime, type CloseSummary, type FileLimits, type Runtime, type ThreadStats } from '../runtime.js';

/** What the per-process `data` function is told. */
export interface ProcContext {
  /** Process index, 0-based. */
  proc: number;
  /** Global index of this process's first loop thread. */
  firstThread: number;
  /** Loop threads in this process. */
  threads: number;
  /** The fds of `inheritFds` as numbered in that process. */
  fds: number[];
  /** Setup results of process 0's threads (undefined while starting process 0). */
  first: unknown[] | undefined;
}

export interface FleetOptions {
  /** The loop module every thread runs (exports `setup(loop, info)`). */
  module: string | URL;
  /** Loop threads in all processes together. */
  threads: number;
  /** Processes; 1 runs the threads in this process. At most `threads`. */
  procs: number;
  /** Each process's `info.data` (structured-cloned). Process 0 starts first; the others see its results. */
  data: (ctx: ProcContext) => unknown;
  /** Open fds of this process that every process gets (socket activation, a shared Unix listener). */
  inheritFds?: number[];
  startTimeoutMs?: number;
}

/** One loop thread's counters, with its process. `thread` is the global index. */
export interface FleetThreadStats extends ThreadStats {
  proc: number;
}

/** Events: `'exit'` `{ proc, thread?, error?, exitCode }` when a thread or a child process ends
 * by itself; `'handler-error'` and `'accept-error'` as the Runtime's, with `proc`. */
export interface Fleet extends EventEmitter {
  readonly threads: number;
  readonly procs: number;
  /** Setup results by global thread index. */
  readonly results: unknown[];
  /** RLIMIT_NOFILE of each process after raising. */
  readonly limits: FileLimits[];
  stats(): Promise<FleetThreadStats[]>;
  /**
   * Established connections of every thread of every process, open now and most at once: exact,
   * counted natively into one block the processes share.
   */
  connections(): ConnectionCounts;
  /** Graceful close of every thread; `stats` are the final counters, after the drain. */
  close(options?: { timeoutMs?: number }): Promise<FleetCloseSummary>;
}

export interface FleetCloseSummary extends CloseSummary {
  stats: FleetThreadStats[];
}


/** Messages between the fleet and a child process. */
export type ToChild =
  | { type: 'start'; module: string; threads: number; data: unknown; startTimeoutMs?: number; connsFd: number; connsSlot: number }
  | { type: 'stats'; seq: number }
  | { type: 'close'; timeoutMs: number };
export type FromChild =
  | { type: 'ready'; results: unknown[]; limits: FileLimits }
  | { type: 'failed'; error: { message: string; code?: string } }
  | { type: 'stats'; seq: number; stats: ThreadStats[] }
  | { type: 'closed'; summary: CloseSummary }
  | { type: 'event'; name: 'exit' | 'handler-error' | 'accept-error'; payload: Record<string, unknown> };

const childUrl = new URL('./child.js', import.meta.url);
const href = (m: string | URL): string => (m instanceof URL ? m.href : m);

class LocalFleet extends EventEmitter implements Fleet {
  readonly procs = 1;
  readonly threads: number;
  readonly results: unknown[];
  readonly limits: FileLimits[];
  #rt: Runtime;
  constructor(rt: Runtime) {
    super();
    this.#rt = rt;
    this.threads = rt.threads;
    this.results = rt.results;
    this.limits = [rt.limits];
    for (const name of ['exit', 'handler-error', 'accept-error'] as const)
      rt.on(name, (e: Record<string, unknown>) => this.emit(name, { proc: 0, ...e }));
  }
  async stats(): Promise<FleetThreadStats[]> {
    return (await this.#rt.stats()).map((s) => ({ ...s, proc: 0 }));
  }
  connections(): ConnectionCounts {
    return connectionCounts();
  }
  async close(options?: { timeoutMs?: number }): Promise<FleetCloseSummary> {
    const s = await this.#rt.close(options);
    return { ...s, stats: s.stats.map((t) => ({ ...t, proc: 0 })) };
  }
}

interface Child {
  proc: number;
  firstThread: number;
  threads: number;
  cp: ChildProcess;
  alive: boolean;
  exited: Promise<void>;
  closing: boolean;
  closed?: (s: CloseSummary) => void;
}

/** Whether `p` settled within `ms`. */
async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), ms)))]);
  clearTimeout(timer);
  return r;
}

/**
 * Sends to a child that may be going away: one that failed its start disconnects and exits on its
 * own. A send it can no longer take is dropped rather than thrown as an 'error' event (which
 * killed the parent, leaving its Unix socket files); its 'exit' settles whatever waits on it.
 */
function post(c: Child, m: ToChild): void {
  if (c.cp.connected) c.cp.send(m, () => {});
}

class ProcessFleet extends EventEmitter implements Fleet {
  readonly threads: number;
  readonly procs: number;
  readonly results: unknown[] = [];
  readonly limits: FileLimits[] = [];
  #children: Child[] = [];
  #stats = new Gather<Child, FleetThreadStats>();
  #closing: Promise<FleetCloseSummary> | undefined;

  constructor(threads: number, procs: number) {
    super();
    this.threads = threads;
    this.procs = procs;
  }

  async start(o: FleetOptions): Promise<void> {
    // One block of connection counts for every process: the children count into it, this
    // process reads it. Passed after the program's own fds.
    const connsFd = shareConnectionCounts();
    const inherit = [...(o.inheritFds ?? []), connsFd];
    const fds = inherit.slice(0, -1).map((_, i) => 3 + i);
    let firstThread = 0;
    const specs = Array.from({ length: o.procs }, (_, proc) => {
      const threads = threadsOf(o.threads, o.procs, proc);
      const s = { proc, firstThread, threads };
      firstThread += threads;
      return s;
    });
    const startOne = async (s: (typeof specs)[number], first: unknown[] | undefined): Promise<void> => {
      const cp = fork(childUrl, [], { stdio: ['ignore', 'ignore', 'inherit', ...inherit, 'ipc'], serialization: 'advanced' });
      const child: Child = {
        ...s,
        cp,
        alive: true,
        closing: false,
        // 'close', not 'exit': 'exit' can come while the child's last messages (its closing
        // summary) are still unread in the IPC pipe; 'close' also waits for the channel's end.
        exited: new Promise((r) => cp.once('close', () => r())),
      };
      this.#children.push(child);
      const ready = new Promise<void>((resolve, reject) => {
        cp.on('message', (m: FromChild) => {
          switch (m.type) {
            case 'ready':
              m.results.forEach((r, i) => (this.results[s.firstThread + i] = r));
              this.limits[s.proc] = m.limits;
              resolve();
              break;
            case 'failed':
              reject(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}));
              break;
            case 'stats':
              this.#stats.answer(m.seq, child, m.stats.map((t) => ({ ...t, thread: t.thread + s.firstThread, proc: s.proc })));
              break;
            case 'closed':
              child.closed?.(m.summary);
              break;
            case 'event': {
              const p: Record<string, unknown> = { ...m.payload, proc: s.proc };
              if (typeof p.thread === 'number') p.thread += s.firstThread;
              this.emit(m.name, p);
              break;
            }
          }
        });
        cp.once('close', (code, signal) => {
          child.alive = false;
          // Its sockets died with it; the places they held under the connection bounds did not.
          reclaimConnectionCounts(s.proc + 1);
          this.#stats.gone(child);
          child.closed?.({ sockets: 0, reset: 0, unsent: 0, terminated: 0, stats: [] });
          const error = new Error(`process ${s.proc} exited ${signal ? `on ${signal}` : `with code ${code}`}`);
          reject(error);
          if (!child.closing) this.emit('exit', { proc: s.proc, error, exitCode: code ?? 1 });
        });
      });
      cp.send({ type: 'start', module: href(o.module), threads: s.threads, data: o.data({ ...s, fds, first }), startTimeoutMs: o.startTimeoutMs, connsFd: 3 + fds.length, connsSlot: s.proc + 1 } satisfies ToChild);
      await ready;
    };
    try {
      await startOne(specs[0]!, undefined);
      const first = this.results.slice(0, specs[0]!.threads);
      await Promise.all(specs.slice(1).map((s) => startOne(s, first)));
    } catch (e) {
      await this.close({ timeoutMs: 0 });
      throw e;
    } finally {
      // Every child has its copy and this process keeps its mapping: the fd itself is done with
      // (kept, it leaked one fd per fleet in a process that outlives it, such as a test).
      closeSync(connsFd);
    }
  }

  connections(): ConnectionCounts {
    return connectionCounts();
  }

  async stats(): Promise<FleetThreadStats[]> {
    const live = this.#children.filter((c) => c.alive);
    const out = await this.#stats.ask(live, (c, seq) => post(c, { type: 'stats', seq }));
    return out.sort((a, b) => a.thread - b.thread);
  }

  close(options: { timeoutMs?: number } = {}): Promise<FleetCloseSummary> {
    this.#closing ??= this.#close(options.timeoutMs ?? CLOSE_TIMEOUT_MS);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<FleetCloseSummary> {
    const total: FleetCloseSummary = { sockets: 0, reset: 0, unsent: 0, terminated: 0, stats: [] };
    await Promise.all(
      this.#children.map(async (c) => {
        c.closing = true;
        if (c.alive) {
          const s = await new Promise<CloseSummary>((res) => {
            c.closed = res;
            post(c, { type: 'close', timeoutMs });
          });
          total.sockets += s.sockets;
          total.reset += s.reset;
          total.unsent += s.unsent;
          total.terminated += s.terminated;
          for (const t of s.stats) total.stats.push({ ...t, thread: t.thread + c.firstThread, proc: c.proc });
        }
        if (!(await within(c.exited, 2000))) {
          total.terminated++;
          c.cp.kill('SIGKILL');
          // Bounded too: 'close' also waits for the IPC channel, which a stray holder could keep open.
          await within(c.exited, 2000);
        }
      }),
    );
    total.stats.sort((a, b) => a.thread - b.thread);
    return total;
  }
}

/**
 * Starts `threads` loop threads over `procs` processes. Rejects, after stopping what started,
 * when a setup fails or a process cannot start.
 */
export async function startFleet(o: FleetOptions): Promise<Fleet> {
  if (!Number.isInteger(o.procs) || o.procs < 1 || o.procs > o.threads)
    throw new RangeError(`procs must be from 1 to the number of threads (${o.threads}), got ${o.procs}`);
  if (o.procs === 1) {
    const fds = o.inheritFds ?? [];
    const rt = await createRuntime({
      module: o.module,
      threads: o.threads,
      data: o.data({ proc: 0, firstThread: 0, threads: o.threads, fds, first: undefined }),
      ...(o.startTimeoutMs !== undefined ? { startTimeoutMs: o.startTimeoutMs } : {}),
    });
    return new LocalFleet(rt);
  }
  const f = new ProcessFleet(o.threads, o.procs);
  await f.start(o);
  return f;
}
