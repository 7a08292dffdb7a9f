// Messages between the threads of one runtime: posts, calls, broadcasts and membership, over the
// native inboxes of native/inbox.cc. One Messenger per endpoint (each loop, and the runtime on the
// main thread); Loop and Runtime expose its methods.
import { serialize } from 'node:v8';

import { CALL_TIMEOUT_MS } from './defaults.js';
import { fromWire, IappError, iappError, toWire, type WireError } from './errors.js';
import { native as addon, Rec, type NativeLoop } from './native.js';
import { bytesOf, decode, DIRECT_BYTES, Enc, encode, type Encoded, EXITED, FULL, HEADER, isText, LE, Msg, NO_MEMORY, readText, STAGE_BYTES, writeText } from './wire.js';
import type { RecordTable } from './records.js';

/** A loop thread by index, or the runtime's main thread. */
export type ThreadId = number | 'main';

/** Receives a posted or called message: the payload (a Buffer for bytes) and who sent it. */
export type MessageHandler = (payload: any, from: ThreadId) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What `post` returns. */
export interface PostHandle {
  /** Where the message went. */
  readonly thread: ThreadId;
  /**
   * Removes the message if the target has not taken it from its inbox yet: true if it will not
   * run. False if it was taken (it may be running, have run, or be about to run: the target takes
   * its whole inbox at once and runs the batch) or its thread exited.
   */
  cancel(): boolean;
}

export interface CallOptions {
  /** Milliseconds before the call rejects with ERR_CALL_TIMEOUT. Default 30000; 0: no limit. */
  timeoutMs?: number;
}

/** What `broadcast` did. */
export interface BroadcastResult {
  /** Subscribed threads the message was queued for. */
  reached: number;
  /** Subscribed threads whose inbox was full: they did not get it. */
  skipped: ThreadId[];
}

/** An event of the membership topic (`MEMBERSHIP`). */
export interface MembershipEvent {
  event: 'started' | 'exited' | 'subscribed' | 'unsubscribed';
  thread: ThreadId;
  /** For subscribed/unsubscribed: the topic. */
  topic?: string;
  /** For exited: messages that were in its inbox and never handled. */
  dropped?: number;
}

/** Subscribe to this topic to hear of threads starting and exiting and subscriptions changing. */
export const MEMBERSHIP = 'iapp:membership';

/** Inbox bounds (per receiving thread, all senders together). */
export interface InboxOptions {
  /** Messages queued and not yet taken. Default 65536. */
  messages?: number;
  /** Bytes of queued payloads and headers. Default 64 MiB. */
  bytes?: number;
}

interface Staging {
  buf: Buffer;
  view: DataView;
  len: number;
  count: number;
}

interface PendingCall {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** performance.now() past which the call times out; Infinity for none. */
  deadline: number;
  timeoutMs: number;
  name: string;
  target: number;
}

type Held = [from: number, type: number, seq: number, name: number, payload: Buffer | string | undefined, flags: number];

class Handle implements PostHandle {
  constructor(
    readonly thread: ThreadId,
    private readonly m: Messenger,
    private readonly target: number,
    private readonly seq: number,
  ) {}
  cancel(): boolean {
    return this.m._cancel(this.target, this.seq);
  }
}

/** @internal One endpoint's side of messaging; Loop and Runtime delegate to it. */
export class Messenger {
  readonly #native: NativeLoop;
  readonly #self: number;
  readonly #main: number;
  readonly #report: (e: Error) => void;
  #seq = 0;
  #ids = new Map<string, number>();
  #names = new Map<number, string>();
  #handlers = new Map<number, MessageHandler>();
  #topics = new Map<number, Set<MessageHandler>>();
  #calls = new Map<number, PendingCall>();
  #refused = new Set<number>();
  #space = new Map<number, { resolve: () => void; reject: (e: Error) => void }[]>();
  #exited = new Set<number>();
  #arena: Buffer | undefined;
  // Posts, calls and broadcasts wait here until the endpoint is ready (a loop's setup finished):
  // handlers are registered by then. Replies are never held, so setup can await calls.
  #held: Held[] | undefined = [];
  #closed = false;
  #out: (Staging | undefined)[] = [];
  #dirty: number[] = [];
  #scheduled = false;
  readonly #gauges: Int32Array;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #flushAll = (): void => {
    this.#scheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const t of dirty) this.#flush(t);
  };

  constructor(native: NativeLoop, group: number, self: number, threads: number, bounds: Required<InboxOptions>, report: (e: Error) => void) {
    this.#native = native;
    this.#self = self;
    this.#main = threads;
    this.#report = report;
    this.#maxMessages = bounds.messages;
    this.#maxBytes = bounds.bytes;
    native.attach(group, self);
    this.#gauges = new Int32Array(native.gauges());
  }

  /** @internal Hands everything staged to the inboxes now (before the endpoint closes). */
  _flush(): void {
    this.#flushAll();
  }

  // 0, FULL or EXITED.
  #send(t: number, type: Msg, name: number, seq: number, flags: Enc, payload: Encoded, bounded: boolean): number {
    if (this.#closed || Atomics.load(this.#gauges, 2 * t) < 0) return EXITED;
    // Text is written below straight into the staging buffer; until then it is sized by its
    // bound (3 bytes a UTF-16 unit), which spares measuring it first.
    const text = typeof payload === 'string';
    let plen = payload === undefined ? 0 : text ? 3 * payload.length : payload.byteLength;
    if (text && plen > DIRECT_BYTES) plen = Buffer.byteLength(payload);
    let need = HEADER + ((plen + 7) & ~7);
    let st = this.#out[t];
    if (bounded) {
      const g = this.#gauges;
      const sc = st === undefined ? 0 : st.count;
      const sb = st === undefined ? 0 : st.len;
      if (Atomics.load(g, 2 * t) + sc + 1 > this.#maxMessages || Atomics.load(g, 2 * t + 1) + sb + need > this.#maxBytes) {
        // At the bound, or near it: let the inbox decide (and note us for a space notice).
        if (this.#flush(t) !== 0) return EXITED;
        return this.#native.post(t, type, name, seq, flags, bytesOf(payload), true);
      }
    }
    if (need > DIRECT_BYTES) {
      if (this.#flush(t) !== 0) return EXITED;
      return this.#native.post(t, type, name, seq, flags, bytesOf(payload), false);
    }
    if (st === undefined) {
      const buf = Buffer.allocUnsafeSlow(STAGE_BYTES);
      st = this.#out[t] = { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength), len: 0, count: 0 };
    } else if (st.len + need > STAGE_BYTES && this.#flush(t) !== 0) {
      return EXITED;
    }
    const o = st.len;
    if (text) {
      plen = writeText(st.buf, payload, o + HEADER, plen);
      need = HEADER + ((plen + 7) & ~7);
    } else if (plen > 0) {
      st.buf.set(payload!, o + HEADER);
    }
    const v = st.view;
    v.setUint32(o, plen, LE);
    v.setUint8(o + 4, type);
    v.setUint8(o + 5, flags);
    v.setInt32(o + 8, this.#self, LE);
    v.setUint32(o + 12, name, LE);
    v.setFloat64(o + 16, seq, LE);
    st.len = o + need;
    if (st.count++ === 0) this.#dirty.push(t);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flushAll);
    }
    return 0;
  }

  #flush(t: number): number {
    const st = this.#out[t];
    if (st === undefined || st.count === 0) return 0;
    const n = st.count;
    const r = this.#native.postBatch(t, st.buf, st.len, n);
    st.len = 0;
    st.count = 0;
    if (r === NO_MEMORY) this.#report(new IappError(`${n} message(s) to thread ${String(this.#threadId(t))} were not delivered: no memory to queue them`, 'ENOMEM', -12, 'post'));
    else if (r !== 0)
      this.#report(iappError('ERR_THREAD_EXITED', `${n} message(s) to thread ${String(this.#threadId(t))} were not delivered: it exited (calls among them reject)`));
    return r;
  }

  #cancelStaged(t: number, seq: number): boolean {
    const st = this.#out[t];
    if (st === undefined) return false;
    const v = st.view;
    for (let o = 0; o < st.len; o += HEADER + ((v.getUint32(o, LE) + 7) & ~7)) {
      if (v.getFloat64(o + 16, LE) === seq && v.getUint8(o + 4) === Msg.Post) {
        v.setUint8(o + 4, 0);
        return true;
      }
    }
    return false;
  }

  /** Starts running handlers (after setup) and tells the membership topic. */
  ready(): void {
    const held = this.#held;
    this.#held = undefined;
    this.#native.announce();
    for (const h of held ?? []) this.#dispatch(...h);
  }

  handle(name: string, fn: MessageHandler | undefined): void {
    if (typeof name !== 'string' || name === '') throw new TypeError('a handler name must be a non-empty string');
    if (fn !== undefined && typeof fn !== 'function') throw new TypeError('a handler must be a function');
    const id = this.#id(name);
    if (fn) this.#handlers.set(id, fn);
    else this.#handlers.delete(id);
  }

  post(thread: ThreadId, name: string, payload: unknown): PostHandle {
    const h = this.tryPost(thread, name, payload);
    if (h === undefined)
      throw Object.assign(
        iappError('ERR_INBOX_FULL', `the inbox of thread ${String(thread)} is full (its bound of messages or bytes)`, String(thread)),
        { thread },
      );
    return h;
  }

  tryPost(thread: ThreadId, name: string, payload: unknown): PostHandle | undefined {
    const t = this.#target(thread);
    if (this.#exited.has(t) || Atomics.load(this.#gauges, 2 * t) < 0) throw this.#exitedError(thread);
    const seq = ++this.#seq;
    const [flags, bytes] = encode(payload);
    const r = this.#send(t, Msg.Post, this.#id(name), seq, flags, bytes, true);
    if (r === FULL) {
      this.#refused.add(t);
      return undefined;
    }
    if (r === NO_MEMORY) throw new IappError(`no memory to queue a message for thread ${String(thread)}`, 'ENOMEM', -12, 'post');
    if (r !== 0) throw this.#exitedError(thread);
    return new Handle(thread, this, t, seq);
  }

  space(thread: ThreadId): Promise<void> {
    const t = this.#target(thread);
    if (!this.#refused.has(t)) return Promise.resolve();
    if (this.#exited.has(t) || Atomics.load(this.#gauges, 2 * t) < 0) return Promise.reject(this.#exitedError(thread));
    return new Promise((resolve, reject) => {
      let list = this.#space.get(t);
      if (!list) this.#space.set(t, (list = []));
      list.push({ resolve, reject });
    });
  }

  call(thread: ThreadId, name: string, payload: unknown, options: CallOptions = {}): Promise<unknown> {
    let t: number;
    try {
      t = this.#target(thread);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const timeoutMs = options.timeoutMs ?? CALL_TIMEOUT_MS;
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0))
      return Promise.reject(new TypeError(`timeoutMs must be a number >= 0, got ${String(options.timeoutMs)}`));
    if (this.#exited.has(t) || Atomics.load(this.#gauges, 2 * t) < 0) return Promise.reject(this.#exitedError(thread));
    const seq = ++this.#seq;
    let enc: [Enc, Encoded];
    try {
      enc = encode(payload);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const r = this.#send(t, Msg.Call, this.#id(name), seq, enc[0], enc[1], true);
    if (r === FULL) {
      this.#refused.add(t);
      return Promise.reject(
        Object.assign(iappError('ERR_INBOX_FULL', `the inbox of thread ${String(thread)} is full; await space(${JSON.stringify(thread)}) and call again`), { thread }),
      );
    }
    if (r === NO_MEMORY) return Promise.reject(new IappError(`no memory to queue a call for thread ${String(thread)}`, 'ENOMEM', -12, 'post'));
    if (r !== 0) return Promise.reject(this.#exitedError(thread));
    return new Promise((resolve, reject) => {
      const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : Infinity;
      this.#calls.set(seq, { resolve, reject, deadline, timeoutMs, name, target: t });
      if (deadline < this.#timerAt) this.#armTimer(deadline);
    });
  }

  // One timer for every pending call (a timer per call would cost more than the call itself),
  // set for the earliest deadline; it does not keep the thread alive by itself.
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  #armTimer(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, Math.min(at - performance.now() + 1, 2 ** 31 - 1)));
    this.#timer.unref();
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [seq, c] of this.#calls) {
      if (c.deadline <= now) {
        this.#calls.delete(seq);
        c.reject(
          iappError('ERR_CALL_TIMEOUT', `call '${c.name}' to thread ${String(this.#threadId(c.target))} got no answer within ${c.timeoutMs} ms`, c.name),
        );
      } else if (c.deadline < next) {
        next = c.deadline;
      }
    }
    if (next < Infinity) this.#armTimer(next);
  }

  subscribe(topic: string, fn: MessageHandler): () => void {
    if (typeof topic !== 'string' || topic === '') throw new TypeError('a topic must be a non-empty string');
    if (typeof fn !== 'function') throw new TypeError('a subscriber must be a function');
    const id = this.#id(topic);
    let set = this.#topics.get(id);
    if (!set) {
      this.#topics.set(id, (set = new Set()));
      this.#native.subscribe(id, true);
    }
    set.add(fn);
    return () => {
      const s = this.#topics.get(id);
      if (!s?.delete(fn) || s.size > 0) return;
      this.#topics.delete(id);
      if (!this.#closed) this.#native.subscribe(id, false);
    };
  }

  broadcast(topic: string, payload: unknown, bounded = true): BroadcastResult {
    if (typeof topic !== 'string' || topic === '') throw new TypeError('a topic must be a non-empty string');
    if (this.#closed) throw iappError('ERR_LOOP_CLOSED', 'this thread has stopped messaging');
    const [flags, bytes] = encode(payload);
    this.#flushAll(); // a broadcast comes after this thread's earlier posts, to every target
    const out = new Float64Array(1);
    const skipped = this.#native.broadcast(this.#id(topic), ++this.#seq, flags, bytesOf(bytes), out, bounded);
    return { reached: out[0]!, skipped: skipped.map((s) => this.#threadId(s)) };
  }

  members(): ThreadId[] {
    return this.#native.members().map((m) => this.#threadId(m));
  }

  /** @internal */
  _cancel(target: number, seq: number): boolean {
    return this.#cancelStaged(target, seq) || this.#native.cancel(target, seq);
  }

  /** @internal Takes the Message and MsgArena records of its loop. */
  register(t: RecordTable): void {
    t.on(Rec.Message, (from, r, o) => this._message(from, r[o + 2]!, r[o + 3]!, r[o + 4]!, r[o + 5]!, r[o + 6]!, r[o + 7]!));
    t.on(Rec.MsgArena, () => this._arena(t.takeArena()));
  }

  /** @internal The next message records' payloads are in this arena. */
  _arena(b: Buffer): void {
    this.#arena = b;
  }

  /** @internal One message record. */
  _message(from: number, type: number, seq: number, name: number, off: number, len: number, flags: number): void {
    // Text is decoded from the arena in place (a Buffer view of it first would cost as much).
    const payload = isText(flags)
      ? len > 0
        ? readText(this.#arena!, off, off + len)
        : ''
      : len > 0
        ? this.#arena!.subarray(off, off + len)
        : flags === Enc.Bytes
          ? Buffer.alloc(0)
          : undefined;
    if (this.#held !== undefined && (type === Msg.Post || type === Msg.Call || type === Msg.Broadcast)) {
      this.#held.push([from, type, seq, name, payload, flags]);
      return;
    }
    this.#dispatch(from, type, seq, name, payload, flags);
  }

  /** @internal Messages held for the end of setup, which will not run if the loop closes now. */
  _heldCount(): number {
    return this.#held?.length ?? 0;
  }

  /** @internal The endpoint has closed: nothing more will arrive. */
  _closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const [seq, c] of this.#calls) {
      this.#calls.delete(seq);
      c.reject(iappError('ERR_LOOP_CLOSED', `this thread closed before thread ${String(this.#threadId(c.target))} answered`));
    }
    for (const [, list] of this.#space)
      for (const w of list) w.reject(iappError('ERR_LOOP_CLOSED', 'this thread closed while waiting for inbox space'));
    this.#space.clear();
  }

  #dispatch(from: number, type: number, seq: number, name: number, payload: Buffer | string | undefined, flags: number): void {
    const sender = this.#threadId(from);
    switch (type) {
      case Msg.Post: {
        const fn = this.#handlers.get(name);
        if (!fn) {
          this.#report(iappError('ERR_NO_HANDLER', `a message '${this.#name(name)}' from thread ${String(sender)} has no handler here (loop.handle('${this.#name(name)}', fn))`));
          return;
        }
        try {
          const r = fn(decode(flags, payload), sender);
          if (r instanceof Promise) r.catch((e: unknown) => this.#report(asErr(e)));
        } catch (e) {
          this.#report(asErr(e));
        }
        return;
      }
      case Msg.Call: {
        const fn = this.#handlers.get(name);
        if (!fn) {
          this.#replyError(from, seq, iappError('ERR_NO_HANDLER', `thread ${String(this.#threadId(this.#self))} has no handler '${this.#name(name)}'`));
          return;
        }
        let r: unknown;
        try {
          r = fn(decode(flags, payload), sender);
        } catch (e) {
          this.#replyError(from, seq, asErr(e));
          return;
        }
        if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function')
          (r as PromiseLike<unknown>).then((v) => this.#reply(from, seq, v), (e: unknown) => this.#replyError(from, seq, asErr(e)));
        else this.#reply(from, seq, r);
        return;
      }
      case Msg.Reply:
      case Msg.ReplyError: {
        const c = this.#calls.get(seq);
        if (!c) return; // timed out already
        this.#calls.delete(seq);
        let v: unknown;
        try {
          v = decode(flags, payload);
        } catch (e) {
          c.reject(asErr(e));
          return;
        }
        if (type === Msg.Reply) c.resolve(v);
        else c.reject(revive(v as WireError, sender));
        return;
      }
      case Msg.Broadcast: {
        const subs = this.#topics.get(name);
        if (!subs) return; // unsubscribed while it was on its way
        const value = decode(flags, payload);
        for (const fn of subs) {
          try {
            fn(value, sender);
          } catch (e) {
            this.#report(asErr(e));
          }
        }
        return;
      }
      case Msg.Space: {
        this.#refused.delete(from);
        const list = this.#space.get(from);
        this.#space.delete(from);
        for (const w of list ?? []) w.resolve();
        return;
      }
      case Msg.Exited: {
        this.#exited.add(from);
        for (const [s, c] of this.#calls) {
          if (c.target !== from) continue;
          this.#calls.delete(s);
          c.reject(this.#exitedError(sender));
        }
        const list = this.#space.get(from);
        this.#space.delete(from);
        for (const w of list ?? []) w.reject(this.#exitedError(sender));
        this.#membership({ event: 'exited', thread: sender, dropped: seq });
        return;
      }
      case Msg.Started:
        this.#exited.delete(from);
        this.#membership({ event: 'started', thread: sender });
        return;
      case Msg.Subscribed:
      case Msg.Unsubscribed:
        this.#membership({ event: type === Msg.Subscribed ? 'subscribed' : 'unsubscribed', thread: sender, topic: this.#name(name) });
        return;
    }
  }

  #membership(ev: MembershipEvent): void {
    const subs = this.#topics.get(this.#id(MEMBERSHIP));
    for (const fn of subs ?? []) {
      try {
        fn(ev, ev.thread);
      } catch (e) {
        this.#report(asErr(e));
      }
    }
  }

  #reply(to: number, seq: number, value: unknown): void {
    let enc: [Enc, Encoded];
    try {
      enc = encode(value);
    } catch (e) {
      this.#replyError(to, seq, asErr(e));
      return;
    }
    // Replies are not bounded (the caller asked for them) and a caller that exited is told
    // nothing: it has no one left to tell.
    this.#send(to, Msg.Reply, 0, seq, enc[0], enc[1], false);
  }

  #replyError(to: number, seq: number, e: Error): void {
    // No stack: the caller's own is the useful one, and it keeps replies small.
    this.#send(to, Msg.ReplyError, 0, seq, Enc.Clone, serialize(toWire(e, false)), false);
  }

  #id(name: string): number {
    let id = this.#ids.get(name);
    if (id === undefined) {
      id = addon.intern(name);
      this.#ids.set(name, id);
      this.#names.set(id, name);
    }
    return id;
  }

  #name(id: number): string {
    let n = this.#names.get(id);
    if (n === undefined) {
      n = addon.internedName(id);
      this.#names.set(id, n);
    }
    return n;
  }

  #target(thread: ThreadId): number {
    if (thread === 'main') return this.#main;
    if (typeof thread !== 'number' || !Number.isInteger(thread) || thread < 0 || thread >= this.#main)
      throw Object.assign(
        iappError('ERR_NO_SUCH_THREAD', `no thread ${String(thread)}: loops are numbered 0 to ${this.#main - 1}, and 'main' is the main thread`),
        { thread },
      );
    return thread;
  }

  #threadId(i: number): ThreadId {
    return i === this.#main ? 'main' : i;
  }

  #exitedError(thread: ThreadId): IappError {
    return Object.assign(iappError('ERR_THREAD_EXITED', `thread ${String(thread)} has exited`), { thread });
  }
}

function asErr(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function revive(e: WireError, from: ThreadId): Error {
  return Object.assign(fromWire(e), { thread: from });
}
