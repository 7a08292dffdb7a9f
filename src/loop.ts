import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { constants } from 'node:os';

import { IappError, iappError } from './errors.js';
import { Listener } from './listener.js';
import { Messenger, type BroadcastResult, type InboxOptions, type CallOptions, type MessageHandler, type PostHandle, type ThreadId } from './messaging.js';
import { native as addon, ReadMode, Rec, type NativeLoop } from './native.js';
import { Socket, type SocketToken } from './socket.js';
import { ChildWatch, type SpawnedChild, type SpawnOptions } from './child.js';
import { Dialer, dialSpec, type DialOptions } from './dialer.js';
import { copyFile, File, FileRequests, type CopyOptions, type OpenOptions } from './file.js';
import { Pipes, proxy, type PipeResult, type ProxyResult } from './pipe.js';
import { Timer, TimerTable, type ClockName, type TimerCallback, type TimerOptions } from './timer.js';
import { UdpSocket } from './udp.js';

/** How a socket reads: deliver to JS (`data`), discard natively (`sink`) or not at all yet (`paused`). */
export type ReadModeName = 'data' | 'sink' | 'paused';

export interface SocketOptions {
  /** Read mode a new socket starts in. Default `'data'`. */
  mode?: ReadModeName;
  /** TCP_NODELAY. Default true. */
  noDelay?: boolean;
  /**
   * Keep the write side open after the peer half-closes. Default false: end() automatically, right
   * after the onEnd handler (replies to the data that came before the FIN go out first).
   */
  allowHalfOpen?: boolean;
  /** Write queue size at which write() returns false. Default 256 KiB. */
  highWaterMark?: number;
  /**
   * Receive low-water mark (SO_RCVLOWAT): the loop is woken for this socket only once this many
   * bytes are queued, at end of stream, or when the peer would otherwise stall. Fewer wakes cost
   * the sender less on loopback (a single stream into a sink: 1.3 → 5.7 GB/s with 256 KiB), but
   * smaller amounts are read (and counted) only when more arrive or the peer closes: for sinks
   * and bulk transfers, not request/response. Default: the kernel's (1 byte).
   */
  lowWaterMark?: number;
  /**
   * Dispatch priority of this socket's events (and a listener's accepts) within one drained
   * batch: -128 to 127, higher first. Default 0.
   */
  priority?: number;
  /**
   * Milliseconds with no byte either way after which the socket is closed with ETIMEDOUT
   * (syscall `'idle'`); exact to a quarter of the timeout. Default 0: never. Watched natively:
   * a native sink's sockets time out too, with no JavaScript.
   */
  idleTimeout?: number;
  /** TCP keepalive probes (SO_KEEPALIVE). Default false. */
  keepAlive?: boolean;
  /** With keepAlive: milliseconds of silence before the first probe (whole seconds; default: the system's). */
  keepAliveInitialDelay?: number;
}

/** The native socket options of a spec (native/binding.cc SockOpts), with their defaults. */
function nativeSocketOptions(o: SocketOptions) {
  return {
    noDelay: o.noDelay ?? true,
    allowHalfOpen: o.allowHalfOpen ?? false,
    highWaterMark: o.highWaterMark ?? 256 * 1024,
    ...(o.lowWaterMark !== undefined ? { lowWaterMark: o.lowWaterMark } : {}),
    priority: o.priority ?? 0,
    idleTimeout: o.idleTimeout ?? 0,
    keepAlive: o.keepAlive ?? false,
    keepAliveIdleS: Math.ceil((o.keepAliveInitialDelay ?? 0) / 1000),
  };
}

export interface ListenOptions extends SocketOptions {
  /** Numeric IPv4/IPv6 address or `localhost`. Default `'::'` (all addresses, IPv4 too). */
  host?: string;
  /** TCP port; 0 picks one, shared by every loop of the runtime that listens with the same host and `name`. */
  port?: number;
  /** Unix socket path (instead of host/port). Removed when the last loop closes it. */
  path?: string;
  /**
   * Unix paths: the socket file's permission bits (e.g. `0o660`: owner and group may connect),
   * set between bind and listen, so no client can connect while the file has the umask's mode.
   * Default: what the umask leaves of 0o777.
   */
  permissions?: number;
  /** Kernel accept queue length (capped by net.core.somaxconn). Default 4096: bursts of thousands of connects otherwise overflow it and clients stall ~1 s per retry. */
  backlog?: number;
  /**
   * `'reuseport'` (default for TCP on Linux and FreeBSD): one socket per loop with SO_REUSEPORT
   * (SO_REUSEPORT_LB on FreeBSD), the kernel spreads connections by hash. `'shared'` (default for Unix paths): one socket, every loop waits on it,
   * the kernel wakes one loop per connection (EPOLLEXCLUSIVE).
   */
  accept?: 'reuseport' | 'shared';
  ipv6Only?: boolean;
  /**
   * When no fd can be had for a new connection (EMFILE, ENFILE): `'wait'` (default) pauses
   * accepting with a backoff and leaves clients in the backlog; `'shed'` also takes the oldest
   * pending connection and resets it, using an fd kept in reserve, so its client fails fast.
   */
  onFdExhaustion?: 'wait' | 'shed';
  /**
   * Loops listening on port 0 with the same host and name share one port: the first such call on
   * each loop with the second loop's first, the second with its second, and so on (so two
   * listeners of one loop get two ports). Default `''`.
   */
  name?: string;
  /**
   * Adopt this inherited listening socket (TCP or Unix) instead of binding: socket activation
   * (see `listenFds()`), or a socket a parent process made. Every loop passing the same fd
   * works on its own dup of it, and the kernel wakes one loop per connection. The fd itself is
   * left open, and a Unix path is never removed.
   */
  fd?: number;
}

export interface ConnectOptions extends SocketOptions {
  /** Host name or address. Default `'127.0.0.1'`. Names are resolved with dns.lookup. */
  host?: string;
  port?: number;
  /** Unix socket path (instead of host/port). */
  path?: string;
  /** Local address to bind before connecting (port chosen at connect time where supported). */
  localAddress?: string;
  localPort?: number;
  /** Milliseconds before the attempt fails with ETIMEDOUT. Default 30000; 0 waits for the kernel. */
  timeout?: number;
}

export interface UdpOptions {
  /** Numeric address to bind. Default `'0.0.0.0'` (`'::'` when `peer` is IPv6). */
  host?: string;
  /** Port to bind; 0 (default) picks one, shared by the runtime's loops binding the same host and `name`. */
  port?: number;
  /** Adopt this inherited datagram socket instead of binding. */
  fd?: number;
  /** Connect to this peer: `push`/`send` go there and only its datagrams are received. */
  peer?: { host: string; port: number };
  /**
   * `'sink'`: drain natively with recvmmsg, counting only. Default `'paused'` (not reading until
   * `onMessage()` or `sink()`).
   */
  mode?: 'sink' | 'paused';
  /** Queued send bytes at which `send`/`sendTo` return false. Default 1 MiB. */
  highWaterMark?: number;
  /** Loops binding port 0 with the same host and name share one port (as `listen`'s: the k-th on each loop). Default `''`. */
  name?: string;
}

/** Counters of one loop since it started. */
export interface LoopStats {
  bytesIn: number;
  bytesOut: number;
  accepted: number;
  connected: number;
  closed: number;
  /** Times a listener paused because no fd could be had. */
  acceptPaused: number;
  /** Pending connections reset under `onFdExhaustion: 'shed'`. */
  acceptShed: number;
  /**
   * Connections accepted and reset at once by this loop because `setConnectionLimits()`'s total
   * bound was reached, and because the bound per source address was.
   */
  refusedMaxConnections: number;
  refusedPerAddress: number;
  /** Wakes of the loop, and calls into JS (at most one per wake carries all events). */
  wakeups: number;
  jsCalls: number;
  sockets: number;
  listeners: number;
  /** UDP datagrams received and sent (their bytes count in bytesIn and bytesOut). */
  datagramsIn: number;
  datagramsOut: number;
  /** Messages this loop took from its inbox, and queued into other threads' inboxes. */
  messagesIn: number;
  messagesOut: number;
  /** Sockets handed to other loops (detach) and taken from them (adopt). */
  detached: number;
  adopted: number;
  /**
   * Turns that spent their budget (`turnBudgetUs`) and left ready sockets for the next turn, so
   * that timers, messages and handlers ran in between. Climbs steadily under native load that is
   * always ready (pushing, sinking, piping).
   */
  turnsCut: number;
  /**
   * `sendFile` ranges the disk pool read ahead because they were not in the page cache: on
   * FreeBSD, where sendfile(2) says so (SF_NODISKIO) rather than make the loop wait for the disk.
   * Always 0 on Linux and macOS, whose sendfile reads what it needs itself.
   */
  readAheads: number;
  /** Established connections of this loop open now, and most at once (exact, counted natively). */
  connections: number;
  peakConnections: number;
  /** Timers allocated on this loop, and armed now. */
  timers: number;
  timersArmed: number;
  /** Files open on this loop, and disk operations started and not yet completed. */
  filesOpen: number;
  diskPending: number;
  /** Failures by errno code: `{ ECONNRESET: 3 }`. */
  errors: Record<string, number>;
  /** What the application's `loop.onStats` function returned, if it set one. */
  app?: unknown;
}

/** What the loop reports to the runtime (handler errors, accept pauses). */
export type LoopReport =
  | { type: 'handler-error'; error: Error }
  | { type: 'accept-error'; error: IappError; shed: number; resumeInMs: number };

const ETIMEDOUT = constants.errno.ETIMEDOUT;
/** Native work per loop turn by default, µs (defined once, in native/loop.h). */
export const DEFAULT_TURN_BUDGET_US = addon.constants.defaultTurnBudgetUs;
const STRIDE = addon.constants.recordStride;
const modeOf = (m: ReadModeName | undefined): ReadMode =>
  m === 'sink' ? ReadMode.Sink : m === 'paused' ? ReadMode.Paused : ReadMode.Data;
const errnoName = (n: number): string => IappError.fromErrno(n, '').code;

/**
 * Whether `host` can be a DNS or hosts-file name: dot-separated labels of 1 to 63 letters,
 * digits, '-' or '_', 253 bytes at most, a final dot allowed. Anything else is refused before a
 * lookup: the resolver would cut it at a NUL (and resolve another name) or ask a DNS server
 * about a string no server can answer.
 */
function isHostName(host: string): boolean {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return name.length >= 1 && name.length <= 253 && name.split('.').every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l));
}

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${String(v)}`);
  if (v < min || v > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${v}`);
}

function checkSocketOptions(o: SocketOptions): void {
  if (o.mode !== undefined && o.mode !== 'data' && o.mode !== 'sink' && o.mode !== 'paused')
    throw new TypeError(`mode must be 'data', 'sink' or 'paused', got ${String(o.mode)}`);
  checkInt('highWaterMark', o.highWaterMark, 1, 2 ** 40);
  checkInt('lowWaterMark', o.lowWaterMark, 1, 2 ** 30);
  checkInt('priority', o.priority, -128, 127);
  checkInt('idleTimeout', o.idleTimeout, 0, 2 ** 31 - 1);
  checkInt('keepAliveInitialDelay', o.keepAliveInitialDelay, 0, 2 ** 31 - 1);
  if (o.keepAlive !== undefined && typeof o.keepAlive !== 'boolean') throw new TypeError(`keepAlive must be a boolean, got ${String(o.keepAlive)}`);
}

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
  #records: Float64Array;
  #arena: Buffer | undefined;
  #sockets = new Map<number, Socket>();
  #listeners = new Map<number, Listener>();
  #listenerModes = new Map<number, ReadMode>();
  #udps = new Map<number, UdpSocket>();
  #dialers = new Map<number, Dialer>();
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
  #turnBudgetUs = DEFAULT_TURN_BUDGET_US;

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
    this.#records = new Float64Array(addon.constants.recordCapacity * STRIDE);
    this.native = new addon.NativeLoop((count, arenas) => this.#onBatch(count, arenas), this.#records);
    this.#messenger = new Messenger(this.native, messaging.group, index, threads, messaging.inbox, (e) => this.handlerError(e));
    if (messaging.busyPollUs > 0) this.native.setBusyPoll(messaging.busyPollUs);
    this.#files = new FileRequests(this.native);
    this.#pipes = new Pipes(this.native);
    if (messaging.turnBudgetUs !== DEFAULT_TURN_BUDGET_US) this.setTurnBudget(messaging.turnBudgetUs);
  }

  // ---- files and copies (see src/file.ts, src/pipe.ts) ----

  // ---- the loop turn ----

  /**
   * How much native work (sends, reads, splices, accepts for ready sockets) one turn of this loop
   * may do before it returns to libuv, which then runs timers, messages and handlers; ready
   * sockets go on in the next turn, first in line. Microseconds; 0 for no limit. Starts at the
   * runtime's `turnBudgetUs` (default 500). Lower: timers and messages answer sooner under load,
   * at a little throughput (one more pass through libuv per turn). Cannot fail.
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
    const [options, fn] = typeof a === 'function' ? [{}, a] : [a ?? {}, b];
    if (typeof fn !== 'function') throw new TypeError('timer needs a callback');
    if (options.clock !== undefined && options.clock !== 'monotonic' && options.clock !== 'realtime')
      throw new TypeError(`clock must be 'monotonic' or 'realtime', got ${String(options.clock)}`);
    checkInt('priority', options.priority, -128, 127);
    this.#timers ??= new TimerTable(this.native, (e) => this.handlerError(e));
    return new Timer(this.#timers, options, fn);
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
    if (typeof file !== 'string' || file === '') throw new TypeError('spawn needs a file to run');
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new TypeError('spawn args must be an array of strings');
    if (options.stdio !== undefined && options.stdio !== 'inherit' && options.stdio !== 'ignore')
      throw new TypeError(`stdio must be 'inherit' or 'ignore', got ${String(options.stdio)}`);
    const watch = this.reserveChildWatch({ priority: options.priority });
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
      const id = this.native.adoptFd(o.fd, {
        mode,
        ...nativeSocketOptions(o),
      });
      const socket = new Socket(this, id, mode, false);
      this.#sockets.set(id, socket);
      return socket;
    }
    if (token === null || typeof token !== 'object' || typeof (token as SocketToken).iappSocket !== 'number')
      throw new TypeError('adopt needs the token socket.detach() resolved with, or { fd } of a connected socket');
    return this.#adoptToken(token as SocketToken, options);
  }

  #adoptToken(token: SocketToken, options: { mode?: ReadModeName }): Socket {
    const mode = modeOf(options.mode);
    const id = this.native.adopt(token.iappSocket, mode);
    const socket = new Socket(this, id, mode, false);
    this.#sockets.set(id, socket);
    if (token.pending && token.pending.byteLength > 0) socket._data(Buffer.from(token.pending.buffer, token.pending.byteOffset, token.pending.byteLength));
    return socket;
  }

  /**
   * Listens on TCP (IPv4/IPv6) or a Unix path. Every loop that should take connections calls it
   * with the same options. Throws IappError (EADDRINUSE, EACCES, …) synchronously.
   */
  listen(options: ListenOptions, onConnection?: (socket: Socket) => void): Listener {
    this.#checkOpen();
    checkSocketOptions(options);
    checkInt('port', options.port, 0, 65535);
    checkInt('backlog', options.backlog, 1, 1 << 20);
    if (options.accept !== undefined && options.accept !== 'reuseport' && options.accept !== 'shared')
      throw new TypeError(`accept must be 'reuseport' or 'shared', got ${String(options.accept)}`);
    if (options.onFdExhaustion !== undefined && options.onFdExhaustion !== 'wait' && options.onFdExhaustion !== 'shed')
      throw new TypeError(`onFdExhaustion must be 'wait' or 'shed', got ${String(options.onFdExhaustion)}`);
    checkInt('fd', options.fd, 0, 2 ** 31 - 1);
    checkInt('permissions', options.permissions, 0, 0o7777);
    if (options.path === undefined && options.port === undefined && options.fd === undefined)
      throw new TypeError('listen needs a port (0 for any), a Unix path or an inherited fd');
    if (options.permissions !== undefined && options.path === undefined) throw new TypeError('permissions is for a Unix path');
    if (options.path !== undefined && options.accept === 'reuseport')
      throw new TypeError("accept: 'reuseport' is for TCP; a Unix path is one socket shared by the loops (accept: 'shared')");
    let host = options.host ?? '::';
    if (host === 'localhost') host = '127.0.0.1';
    if (options.path === undefined && options.fd === undefined && isIP(host) === 0)
      throw new TypeError(`listen host must be a numeric IP address or 'localhost', got '${host}'`);
    const mode = modeOf(options.mode);
    const spec = {
      ...(options.fd !== undefined ? { fd: options.fd }
        : options.path !== undefined ? { path: options.path, ...(options.permissions !== undefined ? { permissions: options.permissions } : {}) } : { host, port: options.port ?? 0 }),
      backlog: options.backlog ?? 4096,
      // macOS's SO_REUSEPORT does not spread connections (the last bound socket gets them all):
      // there the default is one shared socket.
      shared:
        options.accept === 'shared' ||
        (options.accept === undefined && (options.path !== undefined || process.platform === 'darwin')),
      ipv6Only: options.ipv6Only ?? false,
      shed: options.onFdExhaustion === 'shed',
      group: this.#shareGroup('tcp', host, options),
      mode,
      ...nativeSocketOptions(options),
      // A sink nobody watches needs no JS at all per connection: its sockets stay native
      // (no Socket object, no records) until someone sets onConnection.
      quiet: mode === ReadMode.Sink && onConnection === undefined,
    };
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
    this.#listeners.set(l.id, l);
    this.#listenerModes.set(l.id, mode);
    return l;
  }

  /** Connects (non-blocking). Rejects with IappError: ECONNREFUSED, ETIMEDOUT, ENOENT, … */
  async connect(options: ConnectOptions): Promise<Socket> {
    this.#checkOpen();
    checkSocketOptions(options);
    checkInt('port', options.port, 1, 65535);
    checkInt('localPort', options.localPort, 0, 65535);
    checkInt('timeout', options.timeout, 0, 2 ** 31 - 1);
    if (options.path === undefined && options.port === undefined)
      throw new TypeError('connect needs a port or a Unix path');
    let host = options.host ?? '127.0.0.1';
    if (options.path === undefined && isIP(host) === 0) {
      if (!isHostName(host))
        throw iappError('ENOTFOUND', `cannot resolve host '${host}': not a host name (letters, digits, '-', '_' and dots) nor a numeric address`, host);
      try {
        host = (await lookup(host)).address;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw iappError(err.code ?? 'ENOTFOUND', `cannot resolve host '${host}' (${err.code ?? err.message})`, host);
      }
    }
    this.#checkOpen(); // the loop may have begun closing while the name was being resolved
    const target = options.path ?? `${host}:${options.port}`;
    const mode = modeOf(options.mode);
    const id = this.native.connect({
      ...(options.path !== undefined ? { path: options.path } : { host, port: options.port }),
      ...(options.localAddress !== undefined ? { localAddress: options.localAddress, localPort: options.localPort ?? 0 } : {}),
      mode,
      ...nativeSocketOptions(options),
    });
    const socket = new Socket(this, id, mode, true);
    this.#sockets.set(id, socket);
    const timeout = options.timeout ?? 30_000;
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
    checkInt('port', options.port, 0, 65535);
    checkInt('fd', options.fd, 0, 2 ** 31 - 1);
    checkInt('highWaterMark', options.highWaterMark, 1, 2 ** 31 - 1);
    if (options.mode !== undefined && options.mode !== 'sink' && options.mode !== 'paused')
      throw new TypeError(`udp mode must be 'sink' or 'paused', got ${String(options.mode)}`);
    let host = options.host ?? (options.peer && isIP(options.peer.host) === 6 ? '::' : '0.0.0.0');
    if (host === 'localhost') host = '127.0.0.1';
    if (options.fd === undefined && isIP(host) === 0) throw new TypeError(`udp host must be a numeric IP address, got '${host}'`);
    if (options.peer) {
      checkInt('peer.port', options.peer.port, 1, 65535);
      if (isIP(options.peer.host) === 0) throw new TypeError(`udp peer host must be a numeric IP address, got '${options.peer.host}'`);
    }
    const info = this.native.udp({
      ...(options.fd !== undefined ? { fd: options.fd } : { host, port: options.port ?? 0 }),
      group: this.#shareGroup('udp', host, options),
      ...(options.peer ? { peerHost: options.peer.host, peerPort: options.peer.port } : {}),
      read: options.mode === 'sink' ? 1 : 0,
      highWaterMark: options.highWaterMark ?? 1 << 20,
    });
    const u = new UdpSocket(this.native, info, () => this.#udps.delete(info.id), (e) => this.handlerError(e), options.highWaterMark ?? 1 << 20);
    this.#udps.set(u.id, u);
    return u;
  }

  /** Counters since the loop started. */
  stats(): LoopStats {
    const { handles: _handles, quietSockets, errors: byErrno, ...counts } = this.native.stats();
    const errors: Record<string, number> = {};
    for (const [errno, n] of Object.entries(byErrno)) errors[errnoName(Number(errno))] = n;
    const out: LoopStats = { ...counts, sockets: this.#sockets.size + quietSockets, listeners: this.#listeners.size, errors };
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
    this.#closing ??= this.#close(options.timeoutMs ?? 5000);
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
    this.#listeners.delete(l.id);
    this.#listenerModes.delete(l.id);
  }

  // One call per loop wake: every event of the wake, in order. A handler that throws closes its
  // own socket and is reported; the others still run.
  #onBatch(count: number, arenas: Buffer[] | undefined): void {
    const r = this.#records;
    let nextArena = 0;
    let blob: Buffer | undefined;
    for (let i = 0, o = 0; i < count; i++, o += STRIDE) {
      const kind = r[o]!;
      const id = r[o + 1]!;
      let socket: Socket | undefined;
      try {
        switch (kind) {
          case Rec.Data:
            socket = this.#sockets.get(id);
            socket?._data(this.#arena!.subarray(r[o + 2]!, r[o + 2]! + r[o + 3]!));
            break;
          case Rec.Arena:
            this.#arena = arenas![nextArena++];
            break;
          case Rec.Accept: {
            const sid = r[o + 2]!;
            const l = this.#listeners.get(id);
            socket = new Socket(this, sid, this.#listenerModes.get(id) ?? ReadMode.Data, false);
            this.#sockets.set(sid, socket);
            if (l) l._accepted(socket);
            else socket.destroy({ reset: true }); // accepted just before its listener closed
            break;
          }
          case Rec.Connect:
            socket = this.#sockets.get(id);
            socket?._connected();
            break;
          case Rec.End:
            socket = this.#sockets.get(id);
            socket?._end(r[o + 2] === 1);
            break;
          case Rec.Drain:
            socket = this.#sockets.get(id);
            socket?._drain();
            break;
          case Rec.Close:
            socket = this.#sockets.get(id);
            this.#sockets.delete(id);
            socket?._closed(r[o + 2]!, addon.syscallNames[r[o + 3]!] ?? '', r[o + 4]!, r[o + 5]!, r[o + 6]!);
            socket = undefined;
            break;
          case Rec.Message:
            this.#messenger._message(id, r[o + 2]!, r[o + 3]!, r[o + 4]!, r[o + 5]!, r[o + 6]!, r[o + 7]!);
            break;
          case Rec.MsgArena:
            this.#messenger._arena(arenas![nextArena++]!);
            break;
          case Rec.Detached:
            socket = this.#sockets.get(id);
            this.#sockets.delete(id);
            socket?._detached();
            socket = undefined;
            break;
          case Rec.Child:
            this.#children.get(id)?._exited(r[o + 2]!, r[o + 3]!, r[o + 4]!);
            break;
          case Rec.Timer:
            this.#timers?.fire(id, r[o + 2]!, r[o + 3]!);
            break;
          case Rec.QuietDone:
            this.#quietDone?.();
            break;
          case Rec.File:
            this.#files.complete(id, r, o);
            break;
          case Rec.SendFile:
            this.#sockets.get(id)?._sendFileDone(r[o + 2]!, r[o + 3]!, r[o + 4]!, addon.syscallNames[r[o + 5]!] ?? '');
            break;
          case Rec.PipeHeld:
            this.#pipes.held(id);
            break;
          case Rec.Pipe:
            this.#pipes.complete(id, r[o + 2]!, r[o + 3]!, r[o + 4]!, r[o + 5]!);
            break;
          case Rec.Blob:
            blob = arenas![nextArena++]!;
            break;
          case Rec.Datagram:
            this.#udps.get(id)?._message(blob!, r, o);
            break;
          case Rec.UdpDrain:
            this.#udps.get(id)?._drain();
            break;
          case Rec.Dialer:
            this.#dialers.get(id)?._done();
            break;
          case Rec.ListenPaused:
            this.#listeners.get(id)?._paused(r[o + 2]!, r[o + 3]!);
            break;
        }
      } catch (e) {
        this.handlerError(e, socket);
      }
    }
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
