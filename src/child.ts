// Child processes watched by a loop (native/child.cc): reserve a watch (may fail), spawn or find
// a child, attach its pid (cannot fail), get its exit on the loop's thread.
import { constants } from 'node:os';

import { IappError } from './errors.js';
import { native as addon, type NativeLoop } from './native.js';

// Child watches, and spawning.
declare module './native.js' {
  interface NativeLoop {
    childReserve(priority: number): number;
    childAttach(id: number, pid: number): boolean;
    childClose(id: number): void;
  }
  interface Addon {
    spawn(file: string, args: readonly string[], env: string[] | undefined, cwd: string | undefined, stdio: number): number;
  }
}

/** How a child ended. */
export interface ChildExit {
  /** Exit status, or null when a signal ended it (or it could not be watched). */
  code: number | null;
  /** The signal that ended it (`'SIGKILL'`), or null. */
  signal: string | null;
  /**
   * Set when the pid could not be watched: ESRCH (no such process), ECHILD (not our child, or
   * reaped elsewhere), or ERR_LOOP_CLOSED (the loop closed before the child exited).
   */
  error?: IappError;
}

const signalNames = new Map<number, string>();
for (const [name, n] of Object.entries(constants.signals)) if (!signalNames.has(n)) signalNames.set(n, name);

/**
 * A reserved watch for one child process. Made by `loop.reserveChildWatch()` before the child
 * exists; `attach(pid)` then cannot fail, so no child is ever left unwatched. Only for children
 * nothing else reaps: `loop.spawn()`'s, not `child_process`'s (libuv reaps those itself).
 */
export class ChildWatch {
  /** @internal */
  readonly id: number;
  #native: NativeLoop;
  #pid = 0;
  #exit: ChildExit | undefined;
  #resolve: ((e: ChildExit) => void) | undefined;
  #exited: Promise<ChildExit> | undefined;
  #onExit: ((e: ChildExit) => void) | undefined;
  #done: (w: ChildWatch) => void;
  #onError: (e: unknown) => void;

  /** @internal */
  constructor(native: NativeLoop, id: number, done: (w: ChildWatch) => void, onError: (e: unknown) => void) {
    this.#native = native;
    this.id = id;
    this.#done = done;
    this.#onError = onError;
  }

  /**
   * Watches `pid`. Cannot fail: a pidfd (epoll) or an `EVFILT_PROC` knote (kqueue) wakes the loop
   * when the child exits; if the kernel will not give or register one, the watch polls the child
   * every 20 ms with the timer it reserved. Returns whether the kernel watches the exit (false:
   * polling).
   */
  attach(pid: number): boolean {
    if (!Number.isInteger(pid) || pid <= 0) throw new TypeError(`pid must be a positive integer, got ${String(pid)}`);
    if (this.#pid !== 0) throw new TypeError(`the watch is already attached to ${this.#pid}`);
    this.#pid = pid;
    return this.#native.childAttach(this.id, pid);
  }

  get pid(): number {
    return this.#pid;
  }

  /** True once the child's exit has been seen (and it was reaped), or the watch gave up. */
  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  /** Resolves when the child has exited (never rejects). */
  get exited(): Promise<ChildExit> {
    this.#exited ??= this.#exit ? Promise.resolve(this.#exit) : new Promise((r) => (this.#resolve = r));
    return this.#exited;
  }

  /** Called once, on the loop's thread, when the child has exited. */
  onExit(fn: (e: ChildExit) => void): this {
    this.#onExit = fn;
    return this;
  }

  /** Stops watching (the child, if attached, is then not reaped by this watch). */
  close(): void {
    if (this.#exit) return;
    this.#native.childClose(this.id);
    this.#done(this);
  }

  /** @internal The loop closed first: the child is no longer watched (nor reaped). */
  _abandoned(): void {
    if (this.#exit) return;
    const e: ChildExit = { code: null, signal: null, error: new IappError(`the loop closed before child ${this.#pid} exited; it is no longer watched`, 'ERR_LOOP_CLOSED') };
    this.#exit = e;
    this.#resolve?.(e);
  }

  /** @internal */
  _exited(code: number, signal: number, errno: number): void {
    const e: ChildExit = { code: code >= 0 ? code : null, signal: signal > 0 ? signalNames.get(signal) ?? `SIG${signal}` : null };
    if (errno !== 0) e.error = IappError.fromErrno(errno, 'waitpid', String(this.#pid));
    this.#exit = e;
    this.#done(this);
    this.#resolve?.(e);
    try {
      this.#onExit?.(e);
    } catch (err) {
      this.#onError(err);
    }
  }
}

export interface SpawnOptions {
  /** Environment of the child (default: this process's). */
  env?: Record<string, string>;
  /** Working directory of the child (default: this process's). */
  cwd?: string;
  /** `'inherit'` (default) this process's stdin/stdout/stderr, or `'ignore'` (/dev/null). */
  stdio?: 'inherit' | 'ignore';
  /** Dispatch priority of the exit event. Default 0. */
  priority?: number;
}

/** A child started by `loop.spawn()`, watched from before it existed. */
export interface SpawnedChild {
  readonly pid: number;
  /** Resolves with how the child ended. */
  readonly exited: Promise<ChildExit>;
  /** Sends a signal (default SIGTERM); false if the child has already been reaped. */
  kill(signal?: NodeJS.Signals | number): boolean;
  readonly watch: ChildWatch;
}

/** Checks `loop.spawn()`'s arguments before anything is reserved. */
export function checkSpawn(file: string, args: readonly string[], options: SpawnOptions): void {
  if (typeof file !== 'string' || file === '') throw new TypeError('spawn needs a file to run');
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new TypeError('spawn args must be an array of strings');
  if (options.stdio !== undefined && options.stdio !== 'inherit' && options.stdio !== 'ignore')
    throw new TypeError(`stdio must be 'inherit' or 'ignore', got ${String(options.stdio)}`);
}

/** Spawns `file` under `watch`, reserved for it; a failed spawn releases the watch and throws. */
export function startChild(watch: ChildWatch, file: string, args: readonly string[], options: SpawnOptions): SpawnedChild {
  let pid: number;
  try {
    const env = options.env ? Object.entries(options.env).map(([k, v]) => `${k}=${v}`) : undefined;
    pid = addon.spawn(file, args, env, options.cwd, options.stdio === 'ignore' ? 1 : 0);
  } catch (e) {
    watch.close();
    throw e;
  }
  watch.attach(pid);
  return {
    pid,
    exited: watch.exited,
    watch,
    kill: (signal: NodeJS.Signals | number = 'SIGTERM') => {
      // Once reaped, the pid may belong to another process: never signal it then.
      if (watch.hasExited) return false;
      try {
        return process.kill(pid, signal);
      } catch {
        return false;
      }
    },
  };
}
