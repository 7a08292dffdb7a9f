import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { CLOSE_TIMEOUT_MS, INBOX_BYTES, INBOX_MESSAGES, START_TIMEOUT_MS, TURN_BUDGET_US } from './defaults.js';
import { fromWire, IappError, iappError, type WireError } from './errors.js';
import { faultAt } from './faults.js';
import { Gather } from './gather.js';
import { IdleTracker } from './idle.js';
import type { LoopCloseSummary } from './loop.js';
import type { LoopStats } from './loop-stats.js';
import { Messenger, type BroadcastResult, type CallOptions, type InboxOptions, type MessageHandler, type PostHandle, type ThreadId } from './messaging.js';
import { native, type NativeLoop } from './native.js';
import { Records } from './records.js';

export interface RuntimeOptions {
  /** Module (path or file URL) every loop thread loads; it exports `setup(loop, info)`. */
  module: string | URL;
  /** Number of loop threads. Default: the number of CPUs. */
  threads?: number;
  /** Passed (structured-cloned) to every `setup` as `info.data`. */
  data?: unknown;
  /** Milliseconds to wait for the threads' `setup` to finish. Default 30000. */
  startTimeoutMs?: number;
  /** Bounds of every thread's inbox (loops and main): past them, `post` reports ERR_INBOX_FULL. */
  inbox?: InboxOptions;
  /** Threads of the shared offload pool (`loop.offload`). Default: piscina's (based on CPUs). */
  offloadThreads?: number;
  /**
   * After a loop takes messages, it keeps polling its inbox for this many microseconds before
   * its thread sleeps, so a quick answer does not pay a thread wake-up (a call's round trip
   * between two loops: about 30 µs → 10 µs here). Costs CPU while polling: for latency-bound
   * request/response between loops on a machine with cores to spare. Default 0 (never).
   */
  busyPollUs?: number;
  /**
   * Microseconds of native work (sends, reads, splices, accepts) one turn of a loop may do before
   * it returns to libuv, so that the loop's own timers, messages, connects and handlers run even
   * while its sockets are always ready (pushing, sinking, piping). Ready sockets go on in the next
   * turn, first in line; nothing is lost. Default 500 (Seastar's task quota): timers and calls
   * on a fully loaded loop answer within about a millisecond, at about 1% of push throughput.
   * Lower trades more throughput for sooner answers; 0 removes the limit (a loop pushing 512 B
   * writes on 64 sockets then fired a 10 ms timer 0.4 s late). Per loop: `loop.setTurnBudget()`.
   */
  turnBudgetUs?: number;
  /**
   * Most threads of the native disk pool that runs file work (`loop.open()` and its files,
   * `copyFile`) for every loop of the process; they start as work arrives. Default 4.
   */
  diskThreads?: number;
  /**
   * What runs file reads, writes and syncs: `'auto'` (default) uses io_uring where the kernel
   * allows it (one ring per loop, submitted once per loop turn) and the disk pool elsewhere;
   * `'pool'` always the pool; `'io_uring'` fails a loop's first file operation where there is no
   * ring. Opens, stats, truncates, closes and copies always run on the pool.
   */
  diskEngine?: 'auto' | 'io_uring' | 'pool';
}

/** The file-descriptor limit (RLIMIT_NOFILE) the runtime found and what it raised it to. */
export interface FileLimits {
  before: number;
  soft: number;
  hard: number;
}

export interface ThreadExit {
  thread: number;
  /** Why the thread died, if it did not end through close(). */
  error?: Error;
  exitCode: number;
}

export interface CloseSummary extends LoopCloseSummary {
  /** Threads that had to be terminated because they did not end by themselves after closing. */
  terminated: number;
  /**
   * Each thread's final counters, taken after its drain (bytes read while closing included);
   * threads that were already dead are left out.
   */
  stats: ThreadStats[];
  /** Sockets detached and never adopted: closed now. */
  unadopted?: number;
}

export interface ThreadStats extends LoopStats {
  thread: number;
}

/** @internal Messages between the runtime and its threads. */
export type ControlRequest = { type: 'stats'; seq: number } | { type: 'close'; timeoutMs: number } | { type: 'force' };
/** @internal */
export type SerializedError = WireError;
/** @internal */
export type ThreadMessage =
  | { type: 'ready'; result: unknown }
  | { type: 'stats'; seq: number; stats: LoopStats }
  | { type: 'closed'; summary: LoopCloseSummary; stats: LoopStats }
  | { type: 'handler-error'; error: SerializedError }
  | { type: 'accept-error'; error: SerializedError; shed: number; resumeInMs: number };
/** @internal */
export interface ThreadData {
  index: number;
  threads: number;
  module: string;
  data: unknown;
  group: string;
  messaging: { group: number; inbox: Required<InboxOptions>; busyPollUs: number; turnBudgetUs: number };
}

const revive = fromWire;

const workerUrl = new URL('./worker.js', import.meta.url);

interface Thread {
  index: number;
  worker: Worker;
  alive: boolean;
  error?: Error;
  exited: Promise<void>;
  closed?: (s: LoopCloseSummary, stats?: LoopStats) => void;
}

/**
 * The main-thread side: starts the loop threads, reports their fate, closes them gracefully.
 *
 * Events:
 * - `'exit'` `(e: ThreadExit)`: a loop thread ended. `e.error` is set when it died (its setup or a
 *   timer threw, it ran out of memory…); the other threads keep serving.
 * - `'handler-error'` `({ thread, error })`: a socket handler threw; that socket was closed.
 *   Without a listener it is printed as a process warning.
 * - `'accept-error'` `({ thread, error, shed, resumeInMs })`: a listener could not get an fd
 *   (EMFILE…) and pauses accepting for `resumeInMs`.
 * - `'signal'` `({ signal, forced? })` and `'closed'` `(summary)`: see closeOnSignals().
 * - `'idle'` `({ idleMs })`: nothing happened for the time given to `setIdleTimeout()`.
 */
export class Runtime extends EventEmitter {
  /** Number of loop threads. */
  readonly threads: number;
  /** RLIMIT_NOFILE before and after the runtime raised the soft limit to the hard one. */
  readonly limits: FileLimits;
  /** What each thread's `setup` returned, by thread index. */
  readonly results: unknown[] = [];
  #threads: Thread[] = [];
  #stats = new Gather<Thread, ThreadStats>();
  #closing: Promise<CloseSummary> | undefined;
  #messageGroup = 0;
  #native: NativeLoop | undefined;
  #messenger: Messenger | undefined;
  #pool: Promise<{ run(task: unknown, o: { filename: string }): Promise<unknown>; destroy(): Promise<void> }> | undefined;
  #offloadThreads: number | undefined;
  #inbox: Required<InboxOptions> = { messages: INBOX_MESSAGES, bytes: INBOX_BYTES };
  #busyPollUs = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #turnBudgetUs = TURN_BUDGET_US;

  /** @internal Use createRuntime(). */
  constructor(threads: number, limits: FileLimits) {
    super();
    this.threads = threads;
    this.limits = limits;
  }

  // The main thread is an endpoint too ('main'): loops post and call it, and it calls them.
  #openMessaging(options: RuntimeOptions): void {
    const bound = options.inbox ?? {};
    const messages = bound.messages ?? INBOX_MESSAGES;
    const bytes = bound.bytes ?? INBOX_BYTES;
    if (!Number.isSafeInteger(messages) || messages < 1) throw new RangeError(`inbox.messages must be a positive integer, got ${String(bound.messages)}`);
    if (!Number.isSafeInteger(messages) || messages > 2 ** 30) throw new RangeError(`inbox.messages must be at most 2^30, got ${String(bound.messages)}`);
    if (!Number.isSafeInteger(bytes) || bytes < 1024 || bytes > 2 ** 30) throw new RangeError(`inbox.bytes must be an integer from 1024 to 2^30, got ${String(bound.bytes)}`);
    this.#inbox = { messages, bytes };
    const busy = options.busyPollUs ?? 0;
    if (typeof busy !== 'number' || !(busy >= 0 && busy <= 1_000_000)) throw new RangeError(`busyPollUs must be from 0 to 1000000, got ${String(options.busyPollUs)}`);
    this.#busyPollUs = busy;
    const budget = options.turnBudgetUs ?? TURN_BUDGET_US;
    if (typeof budget !== 'number' || !(budget >= 0 && budget <= 1_000_000)) throw new RangeError(`turnBudgetUs must be from 0 to 1000000, got ${String(options.turnBudgetUs)}`);
    this.#turnBudgetUs = budget;
    this.#offloadThreads = options.offloadThreads;
    if (options.diskThreads !== undefined) {
      if (!Number.isSafeInteger(options.diskThreads) || options.diskThreads < 1 || options.diskThreads > 1024)
        throw new RangeError(`diskThreads must be an integer from 1 to 1024, got ${String(options.diskThreads)}`);
      native.setDiskThreads(options.diskThreads);
    }
    const engines = { auto: 0, pool: 1, io_uring: 2 } as const;
    if (options.diskEngine !== undefined) {
      const e = engines[options.diskEngine];
      if (e === undefined) throw new TypeError(`diskEngine must be 'auto', 'io_uring' or 'pool', got ${String(options.diskEngine)}`);
      native.setDiskEngine(e);
    }
    this.#messageGroup = native.createGroup(this.threads + 1, messages, bytes);
    // Only messages reach the main thread's loop; a failure in one is its handler's to report.
    const records = new Records<never>((e) => {
      throw e;
    });
    this.#native = new native.NativeLoop((count, arenas) => records.dispatch(count, arenas), records.view);
    // The loop threads keep the process alive, not the main thread's inbox.
    this.#native.setRef(false);
    this.#messenger = new Messenger(this.#native, this.#messageGroup, this.threads, this.threads, this.#inbox, (error) => {
      if (this.listenerCount('handler-error') > 0) this.emit('handler-error', { thread: 'main', error });
      else process.emitWarning(`iapp: a message handler on the main thread failed: ${error.stack ?? error.message}`);
    });
    this.#messenger.register(records);
    this.#messenger.handle('iapp:offload', (p: { file: string; task: unknown }) => this.#offload(p.file, p.task));
    this.#messenger.handle('iapp:signal', (signal: NodeJS.Signals) => this.#forwardSignal(signal));
    this.#messenger.ready();
  }

  // Signals arrive on the main thread; loops that asked (loop.onSignal) get them as a broadcast.
  #forwarded = new Map<string, () => void>();
  #forwardSignal(signal: NodeJS.Signals): void {
    if (this.#forwarded.has(signal)) return;
    const fn = (): void => {
      try {
        // Unbounded: a signal reaches a loop even when its inbox is full.
        this.#messenger?.broadcast(`iapp:signal:${signal}`, signal, false);
      } catch {
        // the runtime is closing: nobody is left to tell
      }
    };
    process.on(signal, fn);
    this.#forwarded.set(signal, fn);
  }

  /**
   * Graceful shutdown on signals: the first of `signals` (default SIGINT, SIGTERM) starts
   * `close({ timeoutMs })` (default 5000) and emits `'signal'` `{ signal }`; a second one forces it
   * (everything still open is reset at once, `summary.forced`). Emits `'closed'` with the close
   * summary. The process then ends by itself when nothing else keeps it alive: the runtime never
   * calls process.exit().
   */
  /**
   * Emits `'idle'` `({ idleMs })` once no loop has had an open connection, a new one (accepted
   * or connected) or a datagram for `ms` milliseconds: self-termination for services started on
   * demand (socket activation starts them again on the next connection). Checked from the
   * loops' counters every quarter of `ms` (at most every second), so it fires within that much
   * after; once, then not again until this is called again. 0 stops watching. Cannot fail.
   */
  setIdleTimeout(ms: number): this {
    if (!Number.isSafeInteger(ms) || ms < 0 || ms > 2 ** 31 - 1) throw new RangeError(`idle timeout must be whole milliseconds from 0 to 2^31-1, got ${ms}`);
    clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
    if (ms === 0 || this.#closing) return this;
    const tracker = new IdleTracker(performance.now());
    let sampling = false;
    this.#idleTimer = setInterval(() => {
      if (sampling) return;
      sampling = true;
      void this.stats().then(
        (stats) => {
          sampling = false;
          const idleMs = tracker.sample(stats, performance.now());
          if (idleMs < ms || this.#idleTimer === undefined) return;
          clearInterval(this.#idleTimer);
          this.#idleTimer = undefined;
          this.emit('idle', { idleMs: Math.round(idleMs) });
        },
        () => (sampling = false),
      );
    }, Math.min(1000, Math.max(10, Math.floor(ms / 4))));
    this.#idleTimer.unref(); // watching must not keep the process alive
    return this;
  }

  closeOnSignals(options: { signals?: NodeJS.Signals[]; timeoutMs?: number } = {}): this {
    const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
    let seen = 0;
    const on = (signal: NodeJS.Signals): void => {
      if (++seen === 1) {
        this.emit('signal', { signal });
        void this.close({ timeoutMs: options.timeoutMs ?? CLOSE_TIMEOUT_MS }).then((summary) => {
          for (const s of signals) process.off(s, on);
          this.emit('closed', summary);
        });
      } else {
        this.emit('signal', { signal, forced: true });
        this.#forceClose();
      }
    };
    for (const s of signals) process.on(s, on);
    return this;
  }

  #forceClose(): void {
    for (const t of this.#threads) if (t.alive) t.worker.postMessage({ type: 'force' } satisfies ControlRequest);
  }

  #offload(file: string, task: unknown): Promise<unknown> {
    this.#pool ??= import('piscina').then(({ Piscina }) => new Piscina(this.#offloadThreads ? { maxThreads: this.#offloadThreads, minThreads: 1 } : {}));
    const filename = /^file:/.test(file) ? file : pathToFileURL(isAbsolute(file) ? file : resolve(file)).href;
    return this.#pool.then((p) => p.run(task, { filename }));
  }

  #m(): Messenger {
    if (!this.#messenger) throw iappError('ERR_LOOP_CLOSED', 'the runtime is not running');
    return this.#messenger;
  }

  /** Registers a handler loops reach with `post('main', name)` / `call('main', name)`. See Loop.handle. */
  handle(name: string, fn: MessageHandler | undefined): this {
    this.#m().handle(name, fn);
    return this;
  }
  /** Posts to a loop from the main thread. See Loop.post. */
  post(thread: ThreadId, name: string, payload?: unknown): PostHandle {
    return this.#m().post(thread, name, payload);
  }
  /** See Loop.tryPost. */
  tryPost(thread: ThreadId, name: string, payload?: unknown): PostHandle | undefined {
    return this.#m().tryPost(thread, name, payload);
  }
  /** See Loop.space. */
  space(thread: ThreadId): Promise<void> {
    return this.#m().space(thread);
  }
  /** Calls a handler on a loop from the main thread. See Loop.call. */
  call(thread: ThreadId, name: string, payload?: unknown, options?: CallOptions): Promise<unknown> {
    return this.#m().call(thread, name, payload, options);
  }
  /** See Loop.subscribe. */
  subscribe(topic: string, fn: MessageHandler): () => void {
    return this.#m().subscribe(topic, fn);
  }
  /** See Loop.broadcast. */
  broadcast(topic: string, payload?: unknown): BroadcastResult {
    return this.#m().broadcast(topic, payload);
  }
  /** See Loop.members. */
  members(): ThreadId[] {
    return this.#m().members();
  }

  /** @internal */
  async _start(options: RuntimeOptions): Promise<void> {
    const module = options.module instanceof URL ? options.module.href
      : /^file:/.test(options.module) ? options.module
      : pathToFileURL(isAbsolute(options.module) ? options.module : resolve(options.module)).href;
    const group = randomUUID();
    this.#openMessaging(options);
    const ready: Promise<void>[] = [];
    for (let index = 0; index < this.threads; index++) {
      let worker: Worker;
      try {
        const injected = faultAt('thread');
        if (injected) throw IappError.fromErrno(injected, 'pthread_create', `loop thread ${index}`);
        worker = new Worker(workerUrl, {
          workerData: { index, threads: this.threads, module, data: options.data, group, messaging: { group: this.#messageGroup, inbox: this.#inbox, busyPollUs: this.#busyPollUs, turnBudgetUs: this.#turnBudgetUs } } satisfies ThreadData,
          name: `iapp-loop-${index}`,
        });
      } catch (e) {
        // The threads already started are closed below, like a failed setup.
        const err = e instanceof IappError ? e : iappError('ERR_THREAD_START', `cannot start loop thread ${index}: ${(e as Error).message}`);
        ready.push(Promise.reject(err));
        break;
      }
      let onReady!: () => void;
      let onFail!: (e: Error) => void;
      ready.push(new Promise<void>((res, rej) => ((onReady = res), (onFail = rej))));
      const t: Thread = { index, worker, alive: true, exited: new Promise((r) => worker.once('exit', () => r())) };
      this.#threads.push(t);
      worker.on('message', (m: ThreadMessage) => {
        switch (m.type) {
          case 'ready':
            this.results[index] = m.result;
            onReady();
            break;
          case 'stats':
            this.#stats.answer(m.seq, t, [{ thread: index, ...m.stats }]);
            break;
          case 'closed':
            t.closed?.(m.summary, m.stats);
            break;
          case 'handler-error': {
            const error = revive(m.error);
            if (this.listenerCount('handler-error') > 0) this.emit('handler-error', { thread: index, error });
            else process.emitWarning(`iapp: a handler on loop ${index} threw; its socket was closed: ${error.stack ?? error.message}`);
            break;
          }
          case 'accept-error':
            this.emit('accept-error', { thread: index, error: revive(m.error), shed: m.shed, resumeInMs: m.resumeInMs });
            break;
        }
      });
      worker.on('error', (e) => {
        t.error = e;
        onFail(e);
      });
      worker.on('exit', (exitCode) => {
        t.alive = false;
        onFail(t.error ?? iappError('ERR_THREAD_EXITED', `loop thread ${index} exited (code ${exitCode}) before its setup finished`));
        t.closed?.({ sockets: 0, reset: 0, unsent: 0 });
        this.#stats.gone(t);
        const e: ThreadExit = { thread: index, exitCode };
        if (t.error) e.error = t.error;
        this.emit('exit', e);
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS;
    try {
      await Promise.race([
        Promise.all(ready),
        new Promise((_, rej) => {
          timer = setTimeout(() => rej(iappError('ERR_SETUP_TIMEOUT', `the loop threads' setup did not finish within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      await this.close({ timeoutMs: 0 });
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Counters of every live loop thread. */
  async stats(): Promise<ThreadStats[]> {
    const live = this.#threads.filter((t) => t.alive);
    const out = await this.#stats.ask(live, (t, seq) => t.worker.postMessage({ type: 'stats', seq } satisfies ControlRequest));
    return out.sort((a, b) => a.thread - b.thread);
  }

  /**
   * Graceful shutdown: every loop stops accepting, ends its sockets (queued writes are flushed),
   * waits for peers to close until `timeoutMs` (default 5000), resets what is left, and the
   * threads are joined (terminated if user code keeps one alive a second past that).
   */
  close(options: { timeoutMs?: number } = {}): Promise<CloseSummary> {
    this.#closing ??= this.#close(options.timeoutMs ?? CLOSE_TIMEOUT_MS);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<CloseSummary> {
    clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
    const total: CloseSummary = { sockets: 0, reset: 0, unsent: 0, terminated: 0, stats: [] };
    await Promise.all(
      this.#threads.map(async (t) => {
        if (t.alive) {
          const summary = await new Promise<LoopCloseSummary>((res) => {
            t.closed = (s, stats) => {
              if (stats) total.stats.push({ thread: t.index, ...stats });
              res(s);
            };
            t.worker.postMessage({ type: 'close', timeoutMs } satisfies ControlRequest);
          });
          total.sockets += summary.sockets;
          total.reset += summary.reset;
          total.unsent += summary.unsent;
          if (summary.forced) total.forced = true;
        }
        let timer: NodeJS.Timeout | undefined;
        const ended = await Promise.race([
          t.exited.then(() => true),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 1000))),
        ]);
        clearTimeout(timer);
        if (!ended) {
          total.terminated++;
          await t.worker.terminate();
        }
      }),
    );
    total.stats.sort((a, b) => a.thread - b.thread);
    // Every loop has exited: the main endpoint goes last, and the group with it (closing the fds
    // of sockets handed off and never adopted).
    for (const [signal, fn] of this.#forwarded) process.off(signal, fn);
    this.#forwarded.clear();
    this.#messenger?._flush();
    this.#native?.close();
    this.#messenger?._closed();
    this.#messenger = undefined;
    if (this.#messageGroup) total.unadopted = native.releaseGroup(this.#messageGroup);
    this.#messageGroup = 0;
    const pool = this.#pool;
    this.#pool = undefined;
    if (pool) await pool.then((p) => p.destroy(), () => undefined);
    return total;
  }
}

/**
 * Starts `threads` loop threads; each loads `module` and runs its `setup(loop, info)`. Resolves
 * once every setup has finished; rejects (after stopping the others) if one fails.
 * Raises RLIMIT_NOFILE's soft limit to the hard limit first (see `runtime.limits`).
 */
export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  if (options === null || typeof options !== 'object') throw new TypeError('createRuntime(options) needs an options object');
  if (typeof options.module !== 'string' && !(options.module instanceof URL))
    throw new TypeError('options.module must be a path or file URL of a module exporting setup(loop, info)');
  const threads = options.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024)
    throw new RangeError(`options.threads must be an integer from 1 to 1024, got ${String(options.threads)}`);
  const rt = new Runtime(threads, native.raiseFileLimit());
  await rt._start(options);
  return rt;
}
