import { IappError, iappError } from './errors.js';
import { native as addon, Rec, type NativeLoop } from './native.js';
import type { RecordTable } from './records.js';
import type { Socket } from './socket.js';

// Pipes between two sockets of a loop.
declare module './native.js' {
  interface NativeLoop {
    pipe(src: number, dst: number, id: number, halfOpen: boolean): void;
    pipeGo(src: number, id: number): void;
  }
}

/** How a pipe ended. */
export interface PipeResult {
  /** Bytes delivered to the destination. */
  bytes: number;
}

/** A failed pipe: the error, the bytes delivered, and those read from the source but lost. */
export type PipeError = IappError & { bytes: number; lost: number };

/** How a proxy ended: the bytes each way. */
export interface ProxyResult {
  aToB: number;
  bToA: number;
}

/** A failed proxy: the first error, and the bytes each way until then. */
export type ProxyError = IappError & { aToB: number; bToA: number };

/** A loop's pipes, settled by kRecPipe records. @internal */
export class Pipes {
  #native: NativeLoop;
  #next = 1;
  #pending = new Map<number, { resolve: (r: PipeResult) => void; reject: (e: Error) => void; src: Socket; dst: Socket; early: number }>();

  constructor(native: NativeLoop) {
    this.#native = native;
  }

  pipe(src: Socket, dst: Socket, halfOpen: boolean): Promise<PipeResult> {
    for (const s of [src, dst])
      if (s.readyState !== 'open') return Promise.reject(iappError('ERR_SOCKET_CLOSED', `pipe: socket ${s.id} is ${s.readyState}, not open`));
    const id = this.#next++;
    try {
      // Held natively from here: src is no longer read, and its data already on the way to JS
      // (in this batch, or the next) is kept until the held record says it has all arrived.
      this.#native.pipe(src.id, dst.id, id, halfOpen);
    } catch (e) {
      return Promise.reject(e);
    }
    src._hold(true);
    dst._pipedInto(true);
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject, src, dst, early: 0 }));
  }

  /** Takes the Pipe and PipeHeld records of its loop. */
  register(t: RecordTable): void {
    t.on(Rec.PipeHeld, (id) => this.held(id));
    t.on(Rec.Pipe, (id, r, o) => this.complete(id, r[o + 2]!, r[o + 3]!, r[o + 4]!, r[o + 5]!));
  }

  /** A kRecPipeHeld record: what src delivered before the pipe goes to dst first, then it moves. */
  held(id: number): void {
    const p = this.#pending.get(id);
    if (!p) return;
    p.src._hold(false);
    const early = p.src._takePending();
    p.dst._pipedInto(false);
    try {
      if (early)
        for (const b of early) {
          p.dst.write(b);
          p.early += b.length;
        }
    } catch {
      // dst closed meanwhile: the pipe's own record (next) says so
    }
    p.dst._pipedInto(true);
    this.#native.pipeGo(p.src.id, id);
  }

  /** A kRecPipe record. */
  complete(id: number, bytes: number, errno: number, syscall: number, lost: number): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    p.src._hold(false);
    p.dst._pipedInto(false);
    bytes += p.early; // written ahead of the pipe: delivered, or counted unsent in dst's close
    if (errno === 0) return p.resolve({ bytes });
    const e = IappError.fromErrno(errno, addon.syscallNames[syscall] ?? '', 'pipe') as PipeError;
    e.bytes = bytes;
    e.lost = lost;
    p.reject(e);
  }
}

/**
 * Both directions between `a` and `b`; resolves when both have ended (each end is passed on as
 * a half-close, so a request/response protocol whose client half-closes still gets its answer).
 * On the first error both sockets are destroyed and the promise rejects with the counts.
 * @internal (users call `loop.proxy()`)
 */
export function proxy(pipes: Pipes, a: Socket, b: Socket): Promise<ProxyResult> {
  const counts: ProxyResult = { aToB: 0, bToA: 0 };
  const ab = pipes.pipe(a, b, true);
  const ba = pipes.pipe(b, a, true);
  const one = (p: Promise<PipeResult>, key: keyof ProxyResult): Promise<void> =>
    p.then(
      (r) => {
        counts[key] = r.bytes;
      },
      (e: PipeError) => {
        counts[key] = e.bytes ?? 0;
        a.destroy();
        b.destroy();
        throw e;
      },
    );
  return Promise.all([one(ab, 'aToB'), one(ba, 'bToA')]).then(
    () => counts,
    async (e: IappError) => {
      // The other direction ends when the sockets close: wait for its count too.
      await Promise.allSettled([ab, ba]);
      throw Object.assign(e, counts) as ProxyError;
    },
  );
}
