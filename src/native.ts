// The only module that loads the addon. It types the loop's own native methods and the loader's;
// each primitive types its own beside its code (see NativeLoop).
import { createRequire } from 'node:module';

import { IappError } from './errors.js';

export interface NativeAddress {
  address?: string;
  port?: number;
  family?: 'IPv4' | 'IPv6' | 'unix';
}

/**
 * One native loop's methods, composed per primitive: here those of the loop itself; each
 * primitive declares its own beside its code (`declare module './native.js'`), as native/
 * defines them per primitive: src/socket-options.ts (listen, connect, udp, adoptFd),
 * socket.ts, listener.ts, udp.ts, dialer.ts, file.ts, pipe.ts, timer.ts, child.ts, wire.ts
 * (messaging), loop-stats.ts. So this file imports no other module of src/ but errors.ts, and no
 * import cycle runs through it.
 */
export interface NativeLoop {
  endQuiet(): number;
  destroyQuiet(): { count: number; unsent: number };
  /** `heldMessages`: messages JS took and will not run, counted as dropped in the exit notice. */
  close(heldMessages?: number): void;
  /** Microseconds of native work per loop turn before returning to libuv (0: no limit). */
  setTurnBudget(us: number): void;
  setRef(on: boolean): void;
}

/**
 * The addon's process-wide functions: here the loader's; each primitive declares its own as it
 * does its NativeLoop methods (file.ts, child.ts, wire.ts, faults.ts, listen-socket.ts,
 * activation.ts, conns.ts, live.ts, build.ts).
 */
export interface Addon {
  NativeLoop: new (
    onBatch: (count: number, arenas: Buffer[] | undefined) => void,
    records: Float64Array,
  ) => NativeLoop;
  raiseFileLimit(): { before: number; soft: number; hard: number };
  setErrorFactory(f: (errno: number, syscall: string, context: string) => Error): void;
  syscallNames: string[];
  /** Record kinds by name (native/loop.h); `Rec` below is pinned to them by a test. */
  recordKinds: Readonly<Record<string, number>>;
  /** What post() and postBatch() return, by name (native/inbox.h); `PostResult` is pinned to them. */
  postResults: Readonly<Record<'ok' | 'full' | 'exited' | 'noEndpoint' | 'noMemory', number>>;
  /** Socket read modes by name (native/socket.h); `ReadMode` is pinned to them. */
  readModes: Readonly<Record<'Paused' | 'Data' | 'Sink', number>>;
  constants: { recordStride: number; recordCapacity: number; defaultTurnBudgetUs: number };
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
  LentArena = 23,
  LentData = 24,
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

/** Read modes; the addon's `readModes` (native/socket.h), pinned by a test. Lent: as Data, into the loop's lent arena (`onData(fn, { borrow: true })`). */
export const enum ReadMode {
  Paused = 0,
  Data = 1,
  Sink = 2,
  Lent = 3,
}
