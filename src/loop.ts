// One loop thread's event loop as the application sees it: what it opens, its messages, stats
// and close. What options mean is src/socket-options.ts's; records reach objects via src/records.ts.
import { isIP } from 'node:net';
import { constants } from 'node:os';

import { CLOSE_TIMEOUT_MS, TURN_BUDGET_US } from './defaults.js';
import { IappError, iappError } from './errors.js';
import { Listener } from './listener.js';
import type { LoopStats } from './loop-stats.js';
import { Messenger, type BroadcastResult, type InboxOptions, type CallOptions, type MessageHandler, type PostHandle, type ThreadId } from './messaging.js';
import { native as addon, Rec, type NativeLoop } from './native.js';
import { Records } from './records.js';
import type { Socket, SocketToken } from './socket.js';
import { SocketTable } from './socket-table.js';
import { checkInt } from './check.js';
import { checkConnect, checkSocketOptions, connectSpec, listenSpec, modeOf, nativeSocketOptions, resolveHost, udpSpec } from './socket-options.js';
import type { ConnectOptions, ListenOptions, ReadModeName, SocketOptions, UdpOptions } from './socket-options.js';
import { checkSpawn, ChildWatch, startChild, type SpawnedChild, type SpawnOptions } from './child.js';
import { Dialer, dialSpec, type DialOptions } from './dialer.js';
import { copyFile, File, FileRequests, type CopyOptions, type OpenOptions } from './file.js';
import { Pipes, proxy, type PipeResult, type ProxyResult } from './pipe.js';
import { newTimer, TimerTable, type ClockName, type Timer, type TimerCallback, type TimerOptions } from './timer.js';
import { UdpSocket } from './udp.js';

/** What the loop reports to the runtime (handler errors, accept pauses). */
export type LoopReport =
  | { type: 'handler-error'; error: Error }
  | { type: 'accept-error'; error: IappError; shed: number; resumeInMs: number };

const ETIMEDOUT = constants.errno.ETIMEDOUT;
const errnoName = (n: number): string => IappError.fromErrno(n, '').code;

/**
 * One loop thread's event loop: every socket and listener it creates lives here for life and is
 * touched only from this thread. Loops are made by the runtime and handed to the module's
 * `setup(loop, info)`.
 */
export class Loop {
  /** This loop's index in its runtime, 0-based. */
  readonly index: number;
  /** The runtime's number of loop threads. */
  readonly threads: number;
  /** @internal */
  readonly native: NativeLoop;
  #records: Records<Socket>;
  #table = new SocketTable(this);
  #sockets = this.#table.sockets;
  #listeners = this.#table.listeners;
  #udps = this.#table.udps;
  #dialers = this.#table.dialers;
  #shares = new Map<string, number>();
  #group: string;
  #report: (r: LoopReport) => void;
  #closing: Promise<LoopCloseSummary> | undefined;
  #onClose: (() => void)[] = [];
  #appStats: (() => unknown) | undefined;
  #quietDone: (() => void) | undefined;
  #messenger: Messenger;
  #timers: TimerTable | undefined;
  #children = new Map<number, ChildWatch>();
  #force: (() => void) | undefined;
  #forced = false;
  #files: FileRequests;
  #pipes: Pipes;
  #turnBudgetUs = TURN_BUDGET_US;

  /** @internal Made by the runtime's thread entry. */
  constructor(
    index: number,
    threads: number,
    group: string,
    messaging: { group: number; inbox: Required<InboxOptions>; busyPollUs: number; turnBudgetUs: number },
    report: (r: LoopReport) => void,
  ) {
    this.index = index;
    this.threads = threads;
    this.#group = group;
    this.#report = report;
    const records = (this.#records = new Records<Socket>((e, socket) => this.handlerError(e, socket)));
    this.native = new addon.NativeLoop((count, arenas) => records.dispatch(count, arenas), records.view);
    this.#messenger = new Messenger(this.native, messaging.group, index, threads, messaging.inbox, (e) => this.handlerError(e));
    if (messaging.busyPollUs > 0) this.native.setBusyPoll(messaging.busyPollUs);
    this.#files = new FileRequests(this.native);
    this.#pipes = new Pipes(this.native);
    this.#messenger.register(records);
    this.#files.register(records);
    this.#pipes.register(records);
    this.#registerRecords();
    if (messaging.turnBudgetUs !== TURN_BUDGET_US) this.setTurnBudget(messaging.turnBudgetUs);
  }

  /**
   * How much native work (sends, reads, splices, accepts for ready sockets) one turn of this loop
   * may do before it returns to libuv, which then runs timers, messages and handlers; ready
   * sockets go on in the next turn, first in line. Microseconds; 0 for no limit. Starts at the
   * runtime's `turnBudgetUs` (default 500). Lower: timers and messages answer sooner under load,
   * at a little throughput (one more pass through libuv per turn). `RangeError` outside 0–1e6.
   */
  setTurnBudget(us: number): this {
    if (typeof us !== 'number' || !(us >= 0 && us <= 1_000_000)) throw new RangeError(`turn budget must be from 0 to 1000000 µs, got ${String(us)}`);
    this.native.setTurnBudget(us);
    this.#turnBudgetUs = us;
    return this;
  }

  /** The native work one turn may do, in microseconds (0: no limit). See `setTurnBudget`. */
  get turnBudgetUs(): number {
    return this.#turnBudgetUs;
  }

  // ---- files and copies (see src/file.ts, src/pipe.ts) ----

  /** What runs this loop's file reads, writes and syncs (see the runtime's `diskEngine`). */
  get diskEngine(): 'io_uring' | 'pool' {
    return this.native.diskEngine();
  }

  /**
   * Opens a file for this loop. Its reads, writes and syncs run on the native disk pool and
   * resolve here; a closed loop closes its files. Rejects with ENOENT, EACCES, EISDIR, … naming
   * the path. With `{ beneath: dir }` (a directory opened here), `path` is relative to `dir` and
   * can never resolve outside it: `EXDEV` for every way out (see `OpenOptions.beneath`).
   */
  open(path: string, options: OpenOptions = {}): Promise<File> {
    try {
      this.#checkOpen();
      return this.#files.open(path, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Copies a file, or a range of it, into another on the disk pool (copy_file_range: no bytes
   * through user space). Paths are opened and closed around the copy, the destination created
   * or truncated; open Files are used as they are. Resolves with the bytes copied.
   */
  copyFile(src: File | string, dst: File | string, options: CopyOptions = {}): Promise<number> {
    try {
      this.#checkOpen();
    } catch (e) {
      return Promise.reject(e);
    }
    return copyFile(this.#files, src, dst, options);
  }

  /**
   * Moves everything `src` receives into `dst`, natively (splice through a kernel pipe on Linux:
   * no JS and no copy per chunk), until `src` ends; then half-closes `dst`. Backpressure: `src`
   * is read only as fast as `dst` takes it, with at most 256 KiB between them. Both sockets must
   * be open and on this loop; `dst` takes no `write()` meanwhile (EBUSY). Resolves with the
   * bytes moved; rejects with a `PipeError` if either socket fails or is destroyed first.
   */
  pipe(src: Socket, dst: Socket): Promise<PipeResult> {
    return this.#pipes.pipe(src, dst, false);
  }

  /**
   * A TCP proxy's core: `pipe` in both directions between `a` and `b`, ends passed on as
   * half-closes. Resolves with the bytes each way once both directions have ended (the sockets
   * then close). On any error both sockets are destroyed and it rejects with the counts.
   */
  proxy(a: Socket, b: Socket): Promise<ProxyResult> {
    return proxy(this.#pipes, a, b);
  }

  /** @internal Setup has finished: run the messages that waited for it. */
  _ready(): void {
    this.#messenger.ready();
  }

  // ---- timers and clocks (see src/timer.ts) ----

  /**
   * Allocates a timer on this loop: the only step that can fail (ENOMEM; ENOSYS where timers
   * are not available). Arm it with `arm()`/`armInterval()`, which cannot fail; `fn` runs on this
   * loop's thread. `close()` the timer (or the loop) to release it.
   */
  timer(options: TimerOptions, fn: TimerCallback): Timer;
  timer(fn: TimerCallback): Timer;
  timer(a: TimerOptions | TimerCallback, b?: TimerCallback): Timer {
    this.#checkOpen();
    this.#timers ??= new TimerTable(this.native, (e) => this.handlerError(e));
    return newTimer(this.#timers, a, b);
  }

  /** Now on `clock` (default monotonic), in integer nanoseconds. */
  now(clock: ClockName = 'monotonic'): bigint {
    return this.native.now(clock === 'realtime' ? 1 : 0);
  }

  /**
   * Dispatch priority of messages to this loop within one drained batch (-128 to 127, higher
   * first; default 0): with a high one, a control message is handled before the socket reads
   * that were ready at the same moment.
   */
  setMessagePriority(priority: number): this {
    checkInt('priority', priority, -128, 127);
    this.native.setInboxPriority(priority);
    return this;
  }

  // ---- child processes (see src/child.ts) ----

  /**
   * Reserves a watch for a child process that does not exist yet: the only step that can fail
   * (EMFILE, ENOMEM: its timer is made and registered here). `watch.attach(pid)` cannot.
   */
  reserveChildWatch(options: { priority?: number } = {}): ChildWatch {
    this.#checkOpen();
    checkInt('priority', options.priority, -128, 127);
    const id = this.native.childReserve(options.priority ?? 0);
    const w = new ChildWatch(this.native, id, (x) => this.#children.delete(x.id), (e) => this.handlerError(e));
    this.#children.set(id, w);
    return w;
  }

  /**
   * Starts `file` (looked up in PATH) with `args`, watched from before it exists: reserves the
   * watch, spawns (posix_spawn, signals reset to their defaults), attaches. Throws if the watch
   * cannot be reserved (nothing is started then) or the spawn fails (ENOENT, EACCES…).
   */
  spawn(file: string, args: readonly string[] = [], options: SpawnOptions = {}): SpawnedChild {
    checkSpawn(file, args, options);
    return startChild(this.reserveChildWatch({ priority: options.priority }), file, args, options);
  }

  /** @internal Test hook: moves this loop's view of the realtime clock, as a clock change would. */
  _testClockJump(ns: bigint): void {
    this.native.testClockJump(ns);
  }

  // ---- messages between threads (see src/messaging.ts) ----

  /**
   * Registers the handler that `post` and `call` reach under `name` on this loop (`undefined`
   * removes it). A call gets the handler's return value, awaited if it is a promise; a throw or
   * rejection rejects the caller with the error's name, message and code. Messages that arrive
   * before setup has finished wait for it.
   */
  handle(name: string, fn: MessageHandler | undefined): this {
    this.#messenger.handle(name, fn);
    return this;
  }

  /**
   * Runs the handler `name` on `thread` (a loop index or `'main'`) with `payload`: bytes
   * (Uint8Array, copied; the handler gets a Buffer), any structured-cloneable value, or nothing.
   * Messages from one thread to another run in the order they were posted. Throws ERR_INBOX_FULL
   * when the target's inbox is at its bound (see `tryPost`, `space`) and ERR_THREAD_EXITED when
   * the target is gone. Nothing is dropped silently: a target that exits with messages unhandled
   * reports how many in its membership `exited` event.
   */
  post(thread: ThreadId, name: string, payload?: unknown): PostHandle {
    return this.#messenger.post(thread, name, payload);
  }

  /** Like `post`, but returns undefined instead of throwing when the target's inbox is full. */
  tryPost(thread: ThreadId, name: string, payload?: unknown): PostHandle | undefined {
    return this.#messenger.tryPost(thread, name, payload);
  }

  /** Resolves once `thread` has emptied its inbox after refusing a message from this thread (at once if none was refused). */
  space(thread: ThreadId): Promise<void> {
    return this.#messenger.space(thread);
  }

  /**
   * Runs the handler `name` on `thread` and resolves with what it returned. Rejects with the
   * handler's error, ERR_CALL_TIMEOUT (`timeoutMs`, default 30 s), ERR_NO_HANDLER,
   * ERR_INBOX_FULL, or ERR_THREAD_EXITED if the thread exits before answering.
   */
  call(thread: ThreadId, name: string, payload?: unknown, options?: CallOptions): Promise<unknown> {
    return this.#messenger.call(thread, name, payload, options);
  }

  /**
   * Calls `fn(payload, from)` for every broadcast on `topic`; returns the function that
   * unsubscribes. The topic `MEMBERSHIP` ('iapp:membership') carries MembershipEvents.
   */
  subscribe(topic: string, fn: MessageHandler): () => void {
    return this.#messenger.subscribe(topic, fn);
  }

  /** Queues `payload` once for every thread subscribed to `topic` (this one too, if it is). */
  broadcast(topic: string, payload?: unknown): BroadcastResult {
    return this.#messenger.broadcast(topic, payload);
  }

  /** Threads that take messages now (loops past their start, and 'main'). */
  members(): ThreadId[] {
    return this.#messenger.members();
  }

  /**
   * Runs `task` on the runtime's shared worker pool (piscina): `file` is a module whose default
   * export is the task function. Resolves on this loop with its result. For CPU-heavy work
   * (hashing, compression, parsing big documents) that would otherwise stall every socket of
   * this loop; not for I/O, which the loop does itself, nor for work under ~0.1 ms, where the
   * copies and thread hops cost more than they save.
   */
  offload(file: string | URL, task?: unknown): Promise<unknown> {
    const f = file instanceof URL ? file.href : file;
    return this.#messenger.call('main', 'iapp:offload', { file: f, task }, { timeoutMs: 0 });
  }

  /**
   * Adopts a socket another loop detached (`socket.detach()`), with its queued unsent bytes and
   * counters; bytes it carried in the token are delivered first. Throws ENOENT for a token that
   * was adopted already or whose runtime has closed.
   */
  adopt(token: SocketToken, options?: { mode?: ReadModeName }): Socket;
  /**
   * Adopts a connected stream socket (TCP or Unix) that another process accepted: inetd (fd 0),
   * systemd's `Accept=yes` or `systemd-socket-activate --accept` (fd 3, see `listenFds()`), or a
   * parent that passed one. The fd is the socket's from now on and is closed with it (so the
   * peer sees the end); on failure it is left as it was. Throws IappError: ENOTSOCK, ENOTCONN
   * (a stream socket with no peer), EINVAL (a listening or datagram socket: listen on it or open
   * it with `udp({ fd })` instead).
   */
  adopt(inherited: { fd: number } & SocketOptions): Socket;
  adopt(token: SocketToken | ({ fd: number } & SocketOptions), options: { mode?: ReadModeName } = {}): Socket {
    this.#checkOpen();
    if (token !== null && typeof token === 'object' && 'fd' in token && typeof token.fd === 'number') {
      const o = token as { fd: number } & SocketOptions;
      checkInt('fd', o.fd, 0, 2 ** 31 - 1);
      checkSocketOptions(o);
      const mode = modeOf(o.mode);
      return this.#table.add(this.native.adoptFd(o.fd, { mode, ...nativeSocketOptions(o) }), mode, false);
    }
    const t = token as SocketToken;
    if (t === null || typeof t !== 'object' || typeof t.iappSocket !== 'number')
      throw new TypeError('adopt needs the token socket.detach() resolved with, or { fd } of a connected socket');
    const mode = modeOf(options.mode);
    const id = this.native.adopt(t.iappSocket, mode);
    const socket = this.#table.add(id, mode, false);
    if (t.pending && t.pending.byteLength > 0) socket._data(Buffer.from(t.pending.buffer, t.pending.byteOffset, t.pending.byteLength));
    return socket;
  }

  /**
   * Listens on TCP (IPv4/IPv6) or a Unix path. Every loop that should take connections calls it
   * with the same options. Throws IappError (EADDRINUSE, EACCES, …) synchronously.
   */
  listen(options: ListenOptions, onConnection?: (socket: Socket) => void): Listener {
    this.#checkOpen();
    const spec = listenSpec(options, onConnection !== undefined, (host) => this.#shareGroup('tcp', host, options));
    const mode = spec.mode;
    let info;
    try {
      info = this.native.listen(spec);
    } catch (e) {
      // '::' where IPv6 is off: fall back to IPv4 like Node does.
      if (options.host === undefined && (e as IappError).code === 'EAFNOSUPPORT')
        info = this.native.listen({ ...spec, host: '0.0.0.0' });
      else throw e;
    }
    const l = new Listener(this, info, onConnection);
    this.#table.addListener(l, mode);
    return l;
  }

  /** Connects (non-blocking). Rejects with IappError: ECONNREFUSED, ETIMEDOUT, ENOENT, … */
  async connect(options: ConnectOptions): Promise<Socket> {
    this.#checkOpen();
    checkConnect(options);
    const host = await resolveHost(options);
    this.#checkOpen(); // the loop may have begun closing while the name was being resolved
    const target = options.path ?? `${host}:${options.port}`;
    const { timeout, ...spec } = connectSpec(options, host);
    const mode = spec.mode;
    const id = this.native.connect(spec);
    const socket = this.#table.add(id, mode, true);
    return new Promise<Socket>((resolve, reject) => {
      socket._connecting = { resolve, reject, target };
      if (timeout > 0) {
        socket._connecting.timer = setTimeout(() => {
          socket._connecting = undefined;
          this.native.destroy(id, false);
          reject(IappError.fromErrno(ETIMEDOUT, 'connect', target));
        }, timeout);
      }
    });
  }

  /**
   * Opens and keeps many connections natively, for load generators: `count` connections to
   * `targets` at `rate` per second, each one, once established, held idle, pushing `chunk` again
   * and again, or ended at once (connects per second); a connection that closes is replaced. No
   * JavaScript runs per connection; `dialer.stats()` counts what happened (exact). Throws
   * TypeError/RangeError for bad options, IappError for an address the kernel refuses (EINVAL)
   * or ENOSYS where loop timers are not available yet (kqueue builds).
   */
  dial(options: DialOptions): Dialer {
    this.#checkOpen();
    const id = this.native.dial(dialSpec(options, isIP));
    const d = new Dialer(this.native, id, errnoName);
    this.#dialers.set(id, d);
    return d;
  }

  /**
   * Opens a UDP socket: bound to `host`/`port` (SO_REUSEPORT, so every loop can bind the same
   * address and the kernel spreads datagrams by sender; port 0 gives one port shared by the
   * runtime's loops), or adopting an inherited datagram socket (`fd`), and connected to `peer`
   * when given. `mode: 'sink'` drains it natively with recvmmsg, counting only.
   * Throws IappError (EADDRINUSE, EACCES, EPROTOTYPE for an fd that is not UDP, …).
   */
  udp(options: UdpOptions = {}): UdpSocket {
    this.#checkOpen();
    const spec = udpSpec(options, (host) => this.#shareGroup('udp', host, options));
    const info = this.native.udp(spec);
    const u = new UdpSocket(this.native, info, () => this.#udps.delete(info.id), (e) => this.handlerError(e), spec.highWaterMark);
    this.#udps.set(u.id, u);
    return u;
  }

  /** Counters since the loop started. */
  stats(): LoopStats {
    const { handles: _handles, quietSockets, errors: byErrno, ...counts } = this.native.stats();
    const errors: Record<string, number> = {};
    for (const [errno, n] of Object.entries(byErrno)) errors[errnoName(Number(errno))] = n;
    const out: LoopStats = { ...counts, sockets: this.#sockets.size + quietSockets, listeners: this.#listeners.size, errors };
    out.timers -= this.#timers?.spares ?? 0; // slots kept for the next timers are not timers
    if (this.#appStats) out.app = this.#appStats();
    return out;
  }

  /**
   * Adds the application's own counters to this loop's stats (`stats().app`, and so
   * `runtime.stats()`): `fn` is called on every stats request and must return a
   * structured-cloneable value.
   */
  onStats(fn: () => unknown): this {
    this.#appStats = fn;
    return this;
  }

  /**
   * Runs `fn` once the loop has closed (after runtime.close()): release what setup made (timers,
   * channels, files) so the thread can end by itself.
   */
  onClose(fn: () => void): this {
    this.#onClose.push(fn);
    return this;
  }

  /** True once `close()` has begun (runtime.close() or a direct call): sockets closing from then on were closed by us. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /** Open sockets of this loop. */
  get sockets(): ReadonlyMap<number, Socket> {
    return this.#sockets;
  }

  /**
   * Graceful close: stop listening, end every socket (queued writes are flushed first), wait for
   * the peers to close until `timeoutMs`, then reset what is left. Resolves with what was cut.
   */
  close(options: { timeoutMs?: number } = {}): Promise<LoopCloseSummary> {
    this.#closing ??= this.#close(options.timeoutMs ?? CLOSE_TIMEOUT_MS);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<LoopCloseSummary> {
    // Dialers open nothing more; their connections are native-only and end with the others.
    for (const d of this.#dialers.values()) d._stop();
    for (const l of [...this.#listeners.values()]) l.close();
    for (const u of [...this.#udps.values()]) u.close();
    const open = [...this.#sockets.values()];
    for (const s of open) {
      if (s.readyState === 'connecting') s.destroy();
      else s.end();
    }
    // Sockets accepted into a native sink without a JS object end natively; one record says when
    // the last of them has closed.
    const quiet = this.native.endQuiet();
    const quietDone = quiet > 0 ? new Promise<void>((r) => (this.#quietDone = r)) : undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...open.map((s) => s.closed), quietDone]),
      new Promise((r) => (timer = setTimeout(r, timeoutMs))),
      new Promise<void>((r) => (this.#force = r)),
    ]);
    clearTimeout(timer);
    // Disk jobs in flight finish (their results are not lost); the native close would wait for
    // them anyway.
    if (this.#files.pending > 0) await this.#files.idle();
    const left = [...this.#sockets.values()];
    let unsent = 0;
    for (const s of left) unsent += s.destroy({ reset: true });
    const cut = this.native.destroyQuiet();
    unsent += cut.unsent;
    await Promise.all(left.map((s) => s.closed));
    this.#messenger._flush();
    for (const d of this.#dialers.values()) d._freeze();
    for (const w of [...this.#children.values()]) w._abandoned();
    this.#children.clear();
    this.native.close(this.#messenger._heldCount());
    this.#messenger._closed();
    for (const fn of this.#onClose) {
      try {
        fn();
      } catch (e) {
        this.handlerError(e);
      }
    }
    const summary: LoopCloseSummary = { sockets: open.length + quiet, reset: left.length + cut.count, unsent };
    if (this.#forced) summary.forced = true;
    return summary;
  }

  /**
   * Cuts a graceful close short: what is still open is reset now instead of at the deadline.
   * Does nothing before close() has begun.
   */
  forceClose(): void {
    if (!this.#closing) return;
    this.#forced = true;
    this.#force?.();
  }

  /**
   * Calls `fn(signal)` on this loop when the process receives `signal` (signals arrive on the
   * main thread, as always in Node; the runtime forwards them to every loop that asked). Resolves
   * once the main thread listens for it, so no signal is missed (or left to its default action)
   * after that. Returns the function that stops listening.
   */
  async onSignal(signal: NodeJS.Signals, fn: (signal: NodeJS.Signals) => void): Promise<() => void> {
    if (typeof signal !== 'string' || !/^SIG[A-Z0-9]+$/.test(signal)) throw new TypeError(`not a signal name: ${String(signal)}`);
    if (typeof fn !== 'function') throw new TypeError('onSignal needs a function');
    const off = this.#messenger.subscribe(`iapp:signal:${signal}`, (sig) => fn(sig as NodeJS.Signals));
    await this.#messenger.call('main', 'iapp:signal', signal, { timeoutMs: 0 });
    return off;
  }

  // The k-th listen (udp) with the same host and name on each loop share a port chosen with 0
  // (native/listener.cc BindGroupPort), not every one of a loop: two listeners of one loop that
  // shared a port would split its connections between them.
  #shareGroup(proto: string, host: string, o: { name?: string; path?: string; fd?: number }): string {
    const base = `${this.#group}|${o.name ?? ''}`;
    const key = `${proto}|${o.path ?? o.fd ?? host}|${o.name ?? ''}`;
    const n = this.#shares.get(key) ?? 0;
    this.#shares.set(key, n + 1);
    return n === 0 ? base : `${base}#${n}`;
  }

  #checkOpen(): void {
    if (this.#closing) throw iappError('ERR_LOOP_CLOSED', `loop ${this.index} is closing`);
  }

  /** @internal */
  handlerError(error: unknown, socket?: Socket): void {
    if (socket && socket.readyState !== 'closed') socket.destroy();
    this.#report({ type: 'handler-error', error: error instanceof Error ? error : new Error(String(error)) });
  }

  /** @internal */
  acceptError(_l: Listener, error: IappError, shed: number, resumeInMs: number): void {
    this.#report({ type: 'accept-error', error, shed, resumeInMs });
  }

  /** @internal */
  listenerClosed(l: Listener): void {
    this.#table.deleteListener(l);
  }

  // The records of what this loop holds itself (its sockets' are the socket table's).
  #registerRecords(): void {
    const t = this.#records;
    this.#table.register(t);
    t.on(Rec.QuietDone, () => this.#quietDone?.());
    t.on(Rec.Child, (id, r, o) => this.#children.get(id)?._exited(r[o + 2]!, r[o + 3]!, r[o + 4]!));
    t.on(Rec.Timer, (id, r, o) => this.#timers?.fire(id, r[o + 2]!, r[o + 3]!));
  }
}

/** What a graceful close had to cut short. */
export interface LoopCloseSummary {
  /** Sockets open when the close began. */
  sockets: number;
  /** Sockets reset at the deadline because their peers had not closed. */
  reset: number;
  /** Queued bytes those resets dropped. */
  unsent: number;
  /** True when forceClose() (a second signal) cut the grace period short. */
  forced?: boolean;
}

/** What `setup` receives besides the loop. */
export interface LoopInfo {
  index: number;
  threads: number;
  /** The runtime's `data` option, structured-cloned. */
  data: unknown;
}
