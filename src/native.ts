// The only module that loads the addon. Everything native is typed here.
import { createRequire } from 'node:module';

import { IappError } from './errors.js';
import type { LoopStats } from './loop.js';

export interface NativeListenSpec {
  host?: string;
  port?: number;
  path?: string;
  permissions?: number;
  backlog?: number;
  shared?: boolean;
  ipv6Only?: boolean;
  shed?: boolean;
  group?: string;
  fd?: number;
  mode?: number;
  noDelay?: boolean;
  allowHalfOpen?: boolean;
  highWaterMark?: number;
  quiet?: boolean;
  lowWaterMark?: number;
  priority?: number;
}

export interface NativeConnectSpec {
  host?: string;
  port?: number;
  path?: string;
  localAddress?: string;
  localPort?: number;
  mode?: number;
  noDelay?: boolean;
  allowHalfOpen?: boolean;
  highWaterMark?: number;
  lowWaterMark?: number;
  priority?: number;
}

export interface NativeUdpSpec {
  host?: string;
  port?: number;
  fd?: number;
  group?: string;
  peerHost?: string;
  peerPort?: number;
  /** 0 paused, 1 native sink, 2 datagrams to JS. */
  read?: number;
  highWaterMark?: number;
}

export interface NativeAddress {
  address?: string;
  port?: number;
  family?: 'IPv4' | 'IPv6' | 'unix';
}

/** What the native loop counts; the public LoopStats adds what only JS knows. */
export type NativeLoopStats = Omit<LoopStats, 'sockets' | 'listeners' | 'errors' | 'app'> & {
  handles: number;
  quietSockets: number;
  /** By errno number (positive), as a string key. */
  errors: Record<string, number>;
};

export interface NativeLoop {
  listen(spec: NativeListenSpec): NativeAddress & { id: number };
  connect(spec: NativeConnectSpec): number;
  /**
   * Throws when the socket takes no more bytes (native decides: EBADF closed, EPIPE ended, EBUSY
   * piped into). `feed`: the bytes a held pipe's source had delivered to JS (src/pipe.ts).
   */
  write(id: number, chunk: Uint8Array, feed?: boolean): boolean;
  writev(id: number, chunks: readonly Uint8Array[], feed?: boolean): boolean;
  end(id: number): void;
  destroy(id: number, reset: boolean): number;
  setReadMode(id: number, mode: number): void;
  setNoDelay(id: number, on: boolean): void;
  setIdleTimeout(id: number, ms: number): void;
  setKeepAlive(id: number, on: boolean, idleS: number, intervalS: number, count: number): void;
  setHighWaterMark(id: number, bytes: number): void;
  socketCounters(id: number, out: Float64Array): boolean;
  addresses(id: number): { local?: NativeAddress; remote?: NativeAddress };
  push(id: number, chunk: Uint8Array): void;
  setAnnounce(listenerId: number, on: boolean): void;
  endQuiet(): number;
  destroyQuiet(): { count: number; unsent: number };
  udp(spec: NativeUdpSpec): NativeAddress & { id: number };
  /** 0 paused, 1 native sink, 2 datagrams to JS. */
  udpRead(id: number, mode: number): void;
  /** 1 under the high-water mark, 0 at it (a UdpDrain record follows). */
  udpSendBatch(id: number, staging: Uint8Array, length: number, count: number): number;
  udpPackAddress(host: string): Uint8Array | null;
  udpPush(id: number, chunk: Uint8Array | null): void;
  udpCounters(id: number, out: Float64Array): boolean;
  udpClose(id: number): void;
  pauseListener(id: number): void;
  resumeListener(id: number): void;
  closeListener(id: number): void;
  stats(): NativeLoopStats;
  /** `heldMessages`: messages JS took and will not run, counted as dropped in the exit notice. */
  close(heldMessages?: number): void;
  attach(group: number, self: number): void;
  announce(): void;
  /** Microseconds of inbox polling after activity before sleeping (0: never). */
  setBusyPoll(us: number): void;
  /** Microseconds of native work per loop turn before returning to libuv (0: no limit). */
  setTurnBudget(us: number): void;
  dial(spec: import('./dialer.js').NativeDialSpec): number;
  /** undefined once the loop is closed. */
  dialerStats(id: number): import('./dialer.js').NativeDialerStats | undefined;
  dialerStop(id: number): void;
  dialerClose(id: number): void;
  setRef(on: boolean): void;
  timerViews(rel: Float64Array, abs: BigInt64Array, period: Float64Array, ctl: Int32Array, dirty: Int32Array, flags: Uint8Array, order: Float64Array): void;
  timerAlloc(clock: number, priority: number): number;
  timerFree(slot: number): void;
  now(clock: number): bigint;
  testClockJump(ns: bigint): void;
  setInboxPriority(priority: number): void;
  childReserve(priority: number): number;
  childAttach(id: number, pid: number): boolean;
  childClose(id: number): void;
  /** A PostResult. */
  post(target: number, type: number, name: number, seq: number, flags: number, payload: Uint8Array | undefined, bounded: boolean): number;
  cancel(target: number, seq: number): boolean;
  /** A PostResult. */
  postBatch(target: number, staging: Uint8Array, length: number, count: number): number;
  gauges(): ArrayBuffer;
  subscribe(topic: number, on: boolean): void;
  broadcast(topic: number, seq: number, flags: number, payload: Uint8Array | undefined, reached: Float64Array, bounded: boolean): number[];
  members(): number[];
  detach(socketId: number): number;
  adoptFd(fd: number, spec: { mode: number; noDelay: boolean; allowHalfOpen: boolean; highWaterMark: number; lowWaterMark?: number; priority: number }): number;
  adopt(token: number, mode: number): number;
  /** beneath: 0, or the id of an open directory the path must resolve beneath. */
  fileOpen(req: number, path: string, flags: number, mode: number, beneath: number): void;
  fileClose(req: number, file: number): void;
  fileStat(req: number, file: number): void;
  fileTruncate(req: number, file: number, length: number): void;
  fileRead(req: number, file: number, buffers: readonly Uint8Array[], offset: number): void;
  fileWrite(req: number, file: number, buffers: readonly Uint8Array[], offset: number): void;
  fileSync(req: number, file: number, dataOnly: boolean): void;
  /** length -1: to the end of src. */
  fileCopy(req: number, src: number, dst: number, srcOffset: number, dstOffset: number, length: number): void;
  /** length -1: to the end of the file. */
  sendFile(socket: number, file: number, offset: number, length: number, req: number): void;
  /** Throws what sendFile would for the socket's write state (closed, ended, pushing, piped into). */
  checkSendFile(socket: number): void;
  pipe(src: number, dst: number, id: number, halfOpen: boolean): void;
  pipeGo(src: number, id: number): void;
  diskEngine(): 'io_uring' | 'pool';
}

interface Addon {
  NativeLoop: new (
    onBatch: (count: number, arenas: Buffer[] | undefined) => void,
    records: Float64Array,
  ) => NativeLoop;
  raiseFileLimit(): { before: number; soft: number; hard: number };
  listenSocket(spec: { host?: string; port?: number; path?: string; permissions?: number; backlog?: number; ipv6Only?: boolean }): NativeAddress & { fd: number };
  closeFd(fd: number): void;
  /** The most threads the process-wide disk pool may start; returns the value in force. */
  setDiskThreads(n: number): number;
  /** 0 auto, 1 pool, 2 io_uring: for loops whose files are set up from now on (process-wide). */
  setDiskEngine(engine: number): void;
  createGroup(size: number, maxMessages: number, maxBytes: number): number;
  spawn(file: string, args: readonly string[], env: string[] | undefined, cwd: string | undefined, stdio: number): number;
  releaseGroup(id: number): number;
  intern(name: string): number;
  internedName(id: number): string;
  setErrorFactory(f: (errno: number, syscall: string, context: string) => Error): void;
  /** [site, errno, rate, max, after] per rule; false if there are too many. */
  setFaults(entries: number[][]): boolean;
  faultCounts(): number[];
  fault(site: number): number;
  faultSites: string[];
  liveHandles(): import('./live.js').LiveHandles;
  /** true: opens beneath a directory use the portable walk; false: the kernel's primitive. */
  setConfinement(walk: boolean): void;
  confinement(): import('./file.js').Confinement;
  connections(): import('./conns.js').ConnectionCounts;
  socketKind(fd: number): { kind: 'listening' | 'connected' | 'stream' | 'datagram' | 'other'; family: 'IPv4' | 'IPv6' | 'unix' | 'other' };
  /** Without an fd: makes a block to share and returns its fd; with one: counts into it as process slot `slot`. */
  shareConnections(fd?: number, slot?: number): number;
  setConnectionLimits(total: number, perAddress: number): void;
  reclaimConnections(slot: number): void;
  syscallNames: string[];
  /** Record kinds by name (native/loop.h); `Rec` below is pinned to them by a test. */
  recordKinds: Readonly<Record<string, number>>;
  /** What post() and postBatch() return, by name (native/inbox.h); `PostResult` is pinned to them. */
  postResults: Readonly<Record<'ok' | 'full' | 'exited' | 'noEndpoint' | 'noMemory', number>>;
  /** Socket read modes by name (native/socket.h); `ReadMode` is pinned to them. */
  readModes: Readonly<Record<'Paused' | 'Data' | 'Sink', number>>;
  constants: { recordStride: number; recordCapacity: number; defaultTurnBudgetUs: number };
  build: import('./build.js').BuildInfo;
}

const require = createRequire(import.meta.url);

function load(): Addon {
  // Another build of the addon (the sanitizer build of `npm run test:asan`), by absolute path.
  const chosen = process.env.IAPP_ADDON;
  if (chosen) return require(chosen) as Addon;
  const tried: string[] = [];
  for (const p of ['../../build/Release/iapp.node', '../../build/Debug/iapp.node']) {
    try {
      return require(p) as Addon;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code !== 'MODULE_NOT_FOUND') throw e;
      tried.push(p);
    }
  }
  throw new Error(
    `iapp: the native addon is not built (looked for ${tried.join(', ')} beside dist/). ` +
      'Run `npm install` (or `npm run build`) in the iapp package.',
  );
}

export const native: Addon = load();
// Per thread (each has its own instance of the addon): syscall failures become IappErrors here
// too, on the main thread (listenSocket, the runtime's own inbox), not only on loop threads.
native.setErrorFactory((errno, syscall, context) => IappError.fromErrno(errno, syscall, context));

/**
 * Event record kinds. A const enum, so the dispatcher's switch compiles to literals; the addon's
 * `recordKinds` is the definition (native/loop.h) and test/native-constants.test.ts pins this
 * copy to it.
 */
export const enum Rec {
  Accept = 1,
  Connect = 2,
  Data = 3,
  End = 4,
  Drain = 5,
  Close = 6,
  ListenPaused = 7,
  Arena = 8,
  QuietDone = 9,
  Message = 10,
  MsgArena = 11,
  Detached = 12,
  Timer = 13,
  Child = 14,
  File = 15,
  SendFile = 16,
  Pipe = 17,
  PipeHeld = 18,
  Dialer = 19,
  Blob = 20,
  Datagram = 21,
  UdpDrain = 22,
}

/** What post() and postBatch() return; pinned to the addon's `postResults` by a test. */
export const enum PostResult {
  Ok = 0,
  Full = -1,
  /** The target exited, or this endpoint is closed or not attached. */
  Exited = -2,
  NoEndpoint = -3,
  NoMemory = -4,
}

/** Read modes; the addon's `readModes` (native/socket.h), pinned by a test. */
export const enum ReadMode {
  Paused = 0,
  Data = 1,
  Sink = 2,
}
