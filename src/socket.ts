import { IappError, iappError } from './errors.js';
import { checkSize, type File } from './file.js';
import { ReadMode, type NativeAddress, type NativeLoop } from './native.js';

// A stream socket's native methods.
declare module './native.js' {
  interface NativeLoop {
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
    detach(socketId: number): number;
    adopt(token: number, mode: number): number;
    /** length -1: to the end of the file. */
    sendFile(socket: number, file: number, offset: number, length: number, req: number): void;
    /** Throws what sendFile would for the socket's write state (closed, ended, pushing, piped into). */
    checkSendFile(socket: number): void;
  }
}

/** How a socket ended. */
export interface CloseInfo {
  /** Set when the socket closed because of an error (ECONNRESET, EPIPE, …). */
  error?: IappError;
  /** Bytes accepted by `write()` that were never sent. 0 after a clean close. */
  unsent: number;
  bytesRead: number;
  bytesWritten: number;
  /** Set when the socket left this loop with `detach()` (it lives on where it was adopted). */
  detached?: boolean;
}

/**
 * A socket on its way between loops (from `socket.detach()` to `loop.adopt()`): a plain,
 * structured-cloneable object, so it can be the payload of a post or a call. Adopt it once.
 */
export interface SocketToken {
  readonly iappSocket: number;
  /** Bytes read before any handler took them: the adopting side delivers them first. */
  readonly pending?: Uint8Array;
}

/** A failed `sendFile`: the error, and how much of the range did reach the socket. */
export type SendFileError = IappError & { bytesSent: number };

/** @internal What a loop gives its sockets: the native loop and a way to report handler errors. */
export interface SocketHost {
  readonly native: NativeLoop;
  handlerError(error: unknown, socket?: Socket): void;
}

const counters = new Float64Array(3);
const PENDING_LIMIT = 1 << 20;

/**
 * A connected TCP or Unix stream socket, owned by the loop that accepted or connected it and
 * usable only on that loop's thread.
 *
 * Reading: `onData(fn)` delivers Buffers (one call into JS per loop wake carries every socket's
 * data); `sink()` discards natively and only counts; `pause()`/`resume()`. Data that arrives
 * before a handler is set is kept (up to 1 MiB, then reading pauses) and handed to the first one.
 * The Buffers are slices of a shared 256 KiB arena: copy (`Buffer.from(chunk)`) what you keep
 * for long, or it keeps the whole arena alive. With `onData(fn, { borrow: true })` they are
 * slices of one arena the loop reads into again after the handlers return: no new memory per
 * read, at the price of copying whatever outlives the call.
 *
 * Writing: `write()` sends at once when it can and queues the rest natively; it returns false once
 * the queue reaches the high-water mark, and `onDrain` fires when the queue has emptied.
 */
export class Socket {
  /** The socket's handle id on its loop (unique for the loop's lifetime). */
  readonly id: number;
  #host: SocketHost;
  #mode: ReadMode;
  #state: 'connecting' | 'open' | 'closed';
  #ended = false;
  #needDrain = false;
  #pending: Buffer[] | undefined;
  /** The peer ended while data waited for a handler: end once it has been delivered. */
  #endAfterPending = false;
  #pendingBytes = 0;
  #onData: ((chunk: Buffer) => void) | undefined;
  #onEnd: (() => void) | undefined;
  #onDrain: (() => void) | undefined;
  #onClose: ((info: CloseInfo) => void) | undefined;
  #closeInfo: CloseInfo | undefined;
  #closed: Promise<CloseInfo> | undefined;
  #resolveClosed: ((info: CloseInfo) => void) | undefined;
  #detaching: ((t: SocketToken) => void) | undefined;
  #token = 0;
  #detachCounts: [number, number] = [0, 0];
  #local: NativeAddress | undefined;
  #remote: NativeAddress | undefined;
  #sendFiles: Map<number, { resolve: (n: number) => void; reject: (e: Error) => void; path: string }> | undefined;
  #nextSendFile = 1;
  /** @internal connect() settles through this. */
  _connecting:
    | { resolve: (s: Socket) => void; reject: (e: Error) => void; target: string; timer?: NodeJS.Timeout }
    | undefined;

  /** @internal Sockets are made by Loop.listen() and Loop.connect(). */
  constructor(host: SocketHost, id: number, mode: ReadMode, connecting: boolean) {
    this.#host = host;
    this.id = id;
    this.#mode = mode;
    this.#state = connecting ? 'connecting' : 'open';
  }

  /**
   * Delivers received data to `fn` (and any data that arrived before). Starts reading.
   *
   * With `{ borrow: true }` each chunk is lent: a view of one buffer per loop that is read into
   * again as soon as this batch of handlers has returned. Use or copy it inside `fn`
   * (`write()` copies what it cannot send at once, so echoing a borrowed chunk is safe); a kept
   * view will show later bytes. It spares a fresh buffer per read, whose first touch and cache
   * misses cost the default mode about a third of its CPU per byte (docs/api/socket.md).
   */
  onData(fn: (chunk: Buffer) => void, options?: { borrow?: boolean }): this {
    const mode = options?.borrow === true ? ReadMode.Lent : ReadMode.Data;
    if (options?.borrow !== undefined && typeof options.borrow !== 'boolean') throw new TypeError(`onData: borrow must be a boolean, got ${String(options.borrow)}`);
    this.#onData = fn;
    const pending = this.#pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    if (pending) for (const b of pending) fn(b);
    if (this.#endAfterPending) {
      this.#endAfterPending = false;
      this.end();
    }
    if (this.#mode !== mode) this.#setMode(mode);
    return this;
  }

  /** Called once when the peer has half-closed (no more data will arrive). */
  onEnd(fn: () => void): this {
    this.#onEnd = fn;
    return this;
  }

  /** Called when the write queue has emptied after `write()` returned false. */
  onDrain(fn: () => void): this {
    this.#onDrain = fn;
    return this;
  }

  /** Called once when the socket is closed, with the reason and the byte counts. */
  onClose(fn: (info: CloseInfo) => void): this {
    this.#onClose = fn;
    return this;
  }

  /** Resolves when the socket is closed (never rejects: the reason is in `info.error`). */
  get closed(): Promise<CloseInfo> {
    if (!this.#closed) {
      this.#closed = this.#closeInfo
        ? Promise.resolve(this.#closeInfo)
        : new Promise((resolve) => (this.#resolveClosed = resolve));
    }
    return this.#closed;
  }

  /** Discards everything received, natively, without entering JS per read; counts bytes only. */
  sink(): this {
    this.#pending = undefined;
    this.#pendingBytes = 0;
    this.#onData = undefined;
    this.#setMode(ReadMode.Sink);
    if (this.#endAfterPending) {
      this.#endAfterPending = false;
      this.end();
    }
    return this;
  }

  /** Stops reading: the kernel buffers, then the peer's sends block (TCP flow control). */
  pause(): this {
    this.#setMode(ReadMode.Paused);
    return this;
  }

  /** Resumes reading in data mode (or sink mode if `sink()` was chosen before). */
  resume(): this {
    if (this.#mode === ReadMode.Paused) this.#setMode(this.#lastActive);
    return this;
  }

  #lastActive: ReadMode = ReadMode.Data;
  #setMode(mode: ReadMode): void {
    if (mode !== ReadMode.Paused) this.#lastActive = mode;
    this.#mode = mode;
    if (this.#state !== 'closed' && !this.#detaching) this.#host.native.setReadMode(this.id, mode);
  }

  /**
   * Sends `data` (a string is sent as UTF-8). Returns false when the queue has reached the
   * high-water mark: wait for `onDrain` before writing more. Throws ERR_SOCKET_CLOSED after
   * `end()`/`destroy()` or once the socket has closed. If the connection fails, what was not
   * sent is counted in the close info's `unsent`.
   */
  write(data: Uint8Array | readonly Uint8Array[] | string): boolean {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    const n = this.#host.native;
    let ok: boolean;
    try {
      ok = ArrayBuffer.isView(chunk) ? n.write(this.id, chunk, this.#feed) : n.writev(this.id, chunk, this.#feed);
    } catch (e) {
      throw this.#refused(e, 'write');
    }
    if (!ok) this.#needDrain = true;
    return ok;
  }

  /** False while the queue is at or over the high-water mark, and after end/close. */
  get writable(): boolean {
    return !this.#needDrain && this.#open;
  }

  /** Not ended, closed or leaving: what JS knows; native decides whether a write goes in. */
  get #open(): boolean {
    return !this.#ended && this.#state !== 'closed' && !this.#detaching;
  }

  /**
   * Load generation: sends `chunk` again and again, natively, whenever the socket can take more
   * (after anything already queued), with no call into JS per write, until `end()` (which stops
   * pushing and half-closes) or `destroy()`. `bytesWritten` counts exactly what the kernel
   * accepted; a partial send resumes mid-chunk, so the stream is `chunk` repeated. The chunk is
   * copied once per loop and shared by every socket pushing the same bytes.
   */
  push(chunk: Uint8Array): this {
    if (!ArrayBuffer.isView(chunk) || chunk.byteLength === 0) throw new TypeError('push needs a non-empty Uint8Array');
    try {
      this.#host.native.push(this.id, chunk);
    } catch (e) {
      throw this.#refused(e, 'push');
    }
    return this;
  }

  /**
   * Sends `length` bytes of `file` from `offset` (default: from 0 to the end of the file) with
   * sendfile(2): the bytes go from the page cache to the socket without passing through JS or
   * user space. Ordered with writes: it starts after everything written before it and writes
   * made after it wait for it. Resolves with the bytes sent. Rejects (a `SendFileError` with
   * `bytesSent`) if the socket fails or is destroyed first, and with ENODATA if the file ends
   * before the range does (truncated meanwhile) — the socket is then closed, since its peer
   * would wait for bytes that cannot come. The file may be closed once the call has returned.
   */
  sendFile(file: File, options: { offset?: number; length?: number } = {}): Promise<number> {
    try {
      this.#host.native.checkSendFile(this.id);
    } catch (e) {
      return Promise.reject(this.#refused(e, 'sendFile'));
    }
    let offset: number, length: number;
    try {
      offset = checkSize('offset', options.offset ?? 0);
      length = options.length === undefined ? -1 : checkSize('length', options.length);
      if (file.closed) throw iappError('ERR_FILE_CLOSED', `sendFile: ${file.path} is closed`, file.path);
    } catch (e) {
      return Promise.reject(e);
    }
    if (length === 0) return Promise.resolve(0);
    const req = this.#nextSendFile++;
    try {
      this.#host.native.sendFile(this.id, file.id, offset, length, req);
    } catch (e) {
      return Promise.reject(this.#refused(e, 'sendFile'));
    }
    return new Promise((resolve, reject) => (this.#sendFiles ??= new Map()).set(req, { resolve, reject, path: file.path }));
  }

  /** @internal A sendFile finished (errno 0) or failed. */
  _sendFileDone(req: number, bytes: number, errno: number, syscall: string): void {
    const p = this.#sendFiles?.get(req);
    if (!p) return;
    this.#sendFiles!.delete(req);
    if (errno === 0) return p.resolve(bytes);
    const e = IappError.fromErrno(errno, syscall, p.path) as SendFileError;
    e.bytesSent = bytes;
    p.reject(e);
  }

  #holding = false;
  /** @internal While a pipe starts, data is kept for it (not given to the handler). */
  _hold(on: boolean): void {
    this.#holding = on;
  }

  #feed = false;
  /**
   * @internal A pipe writes into this socket (native refuses writes then). Off while src/pipe.ts
   * writes the bytes a held pipe's source had delivered to JS: those writes are the pipe's own.
   */
  _pipedInto(on: boolean): void {
    this.#feed = !on;
  }

  /** @internal For a pipe: data JS holds that arrived before any handler took it. */
  _takePending(): Buffer[] | undefined {
    const p = this.#pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    if (this.#endAfterPending) {
      // The pipe delivers them; this side ends after anything piped into it (native waits).
      this.#endAfterPending = false;
      this.end();
    }
    return p;
  }

  /** Writes `data` if given, then half-closes once everything queued has been sent. */
  end(data?: Uint8Array | readonly Uint8Array[] | string): void {
    if (!this.#open) return;
    if (data !== undefined) this.write(data);
    this.#ended = true;
    this.#host.native.end(this.id);
  }

  /**
   * Closes now. Returns how many queued bytes were not sent (also reported in the close info).
   * With `reset`, the peer sees a reset (RST) instead of an orderly close.
   */
  destroy(options: { reset?: boolean } = {}): number {
    if (this.#state === 'closed' || this.#detaching) return 0;
    return this.#host.native.destroy(this.id, options.reset === true);
  }

  /**
   * Takes the socket off this loop, for another loop of the runtime to `adopt()` (post the token
   * to it). Reading stops at once; bytes this loop had already read still arrive here first: to
   * `onData` if one is set, else they travel in the token and the adopting side gets them before
   * anything else. Queued unsent bytes and the byte counters move with the socket. Resolves once
   * nothing more of the socket can arrive here; from the call on, write/end/push throw and
   * `closed` resolves with `detached: true`. A token nobody adopts is closed when the runtime
   * closes. Throws for a socket that is connecting (ENOTCONN), pushing (EBUSY) or closed (EBADF).
   */
  detach(): Promise<SocketToken> {
    if (this.#detaching || this.#state === 'closed') return Promise.reject(this.#closedError('detach'));
    this.#host.native.socketCounters(this.id, counters);
    this.#detachCounts = [counters[0]!, counters[1]!];
    this.#token = this.#host.native.detach(this.id);
    return new Promise((resolve) => (this.#detaching = resolve));
  }

  /** Sets TCP_NODELAY (on by default: small writes go out at once). */
  setNoDelay(on = true): this {
    if (this.#state !== 'closed') this.#host.native.setNoDelay(this.id, on);
    return this;
  }

  /**
   * Closes the socket with ETIMEDOUT (syscall `'idle'`) once no byte has moved either way for
   * `ms` milliseconds (exact to a quarter of it); 0 stops it. A new timeout counts from now.
   * Throws ENOSYS where loop timers are not available.
   */
  setIdleTimeout(ms: number): this {
    if (!Number.isSafeInteger(ms) || ms < 0 || ms > 2 ** 31 - 1) throw new RangeError(`idle timeout must be whole milliseconds from 0 to 2^31-1, got ${ms}`);
    if (this.#state !== 'closed') this.#host.native.setIdleTimeout(this.id, ms);
    return this;
  }

  /**
   * TCP keepalive: the kernel probes a silent peer and the socket fails (ETIMEDOUT) when it
   * stops answering. `initialDelay`: milliseconds of silence before the first probe (whole
   * seconds; 0: the system's). Throws EOPNOTSUPP on a Unix socket.
   */
  setKeepAlive(enable = true, initialDelay = 0): this {
    if (!Number.isSafeInteger(initialDelay) || initialDelay < 0) throw new RangeError(`initialDelay must be whole milliseconds >= 0, got ${initialDelay}`);
    if (this.#state !== 'closed') this.#host.native.setKeepAlive(this.id, enable, Math.ceil(initialDelay / 1000), 0, 0);
    return this;
  }

  /** Sets the write queue's high-water mark in bytes (default 256 KiB). */
  setHighWaterMark(bytes: number): this {
    if (!Number.isSafeInteger(bytes) || bytes < 1) throw new RangeError(`highWaterMark must be a positive integer, got ${bytes}`);
    if (this.#state !== 'closed') this.#host.native.setHighWaterMark(this.id, bytes);
    return this;
  }

  get readyState(): 'connecting' | 'open' | 'closed' {
    return this.#state;
  }
  get bytesRead(): number {
    return this.#counter(0);
  }
  get bytesWritten(): number {
    return this.#counter(1);
  }
  /** Bytes queued natively and not yet accepted by the kernel. */
  get bufferedAmount(): number {
    return this.#counter(2);
  }
  get localAddress(): string | undefined {
    return this.#addresses().local?.address;
  }
  get localPort(): number | undefined {
    return this.#addresses().local?.port;
  }
  get remoteAddress(): string | undefined {
    return this.#addresses().remote?.address;
  }
  get remotePort(): number | undefined {
    return this.#addresses().remote?.port;
  }
  get remoteFamily(): string | undefined {
    return this.#addresses().remote?.family;
  }

  #counterNow(i: 0 | 1): number {
    return this.#detachCounts[i];
  }

  #counter(i: number): number {
    if (this.#detaching && !this.#closeInfo) return i < 2 ? this.#detachCounts[i]! : 0;
    if (this.#closeInfo) return i === 0 ? this.#closeInfo.bytesRead : i === 1 ? this.#closeInfo.bytesWritten : 0;
    return this.#host.native.socketCounters(this.id, counters) ? counters[i]! : 0;
  }

  #addresses(): { local?: NativeAddress; remote?: NativeAddress } {
    if (!this.#local && this.#state === 'open') {
      const a = this.#host.native.addresses(this.id);
      this.#local = a.local;
      this.#remote = a.remote;
    }
    return { local: this.#local, remote: this.#remote };
  }

  /**
   * The one mapping of native's write refusals (Socket::WriteState) to errors: closed (EBADF)
   * and ended (EPIPE) become ERR_SOCKET_CLOSED; the rest (EBUSY: piped into) pass as they are.
   */
  #refused(e: unknown, op: string): unknown {
    const code = (e as IappError).code;
    return code === 'EBADF' || code === 'EPIPE' ? this.#closedError(op) : e;
  }

  #closedError(op: string): IappError {
    return iappError(
      'ERR_SOCKET_CLOSED',
      `${op} after the socket was ${this.#ended ? 'ended' : 'closed'} (with allowHalfOpen: false, the default, a socket ends itself when the peer ends)`,
    );
  }

  // ---- events from the loop (records of one batch, in order) ----

  /** @internal */
  _connected(): void {
    this.#state = 'open';
    const c = this._connecting;
    this._connecting = undefined;
    if (c) {
      clearTimeout(c.timer);
      c.resolve(this);
    }
  }

  /** @internal `lent`: a view of the loop's lent arena, valid until this batch's handlers return. */
  _data(chunk: Buffer, lent = false): void {
    const fn = this.#onData;
    if (fn && !this.#holding) return fn(chunk);
    // Kept for a handler to come, or for a pipe about to start: a lent chunk would change under it.
    if (lent) chunk = Buffer.from(chunk);
    (this.#pending ??= []).push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes >= PENDING_LIMIT && (this.#mode === ReadMode.Data || this.#mode === ReadMode.Lent)) this.pause();
  }

  /**
   * @internal The peer half-closed. Without allowHalfOpen the socket is ended here, after the end
   * handler — and after the data that came with the FIN has reached a data handler, so that
   * replies to it go out before this side's FIN.
   */
  _end(autoEnd: boolean): void {
    this.#onEnd?.();
    if (!autoEnd) return;
    if (this.#pending && !this.#detaching) this.#endAfterPending = true;
    else this.end();
  }

  /** @internal */
  _drain(): void {
    this.#needDrain = false;
    this.#onDrain?.();
  }

  /** @internal Every record read before detach() has been delivered. */
  _detached(): void {
    const info: CloseInfo = { unsent: 0, bytesRead: this.#counterNow(0), bytesWritten: this.#counterNow(1), detached: true };
    const pending = this.#pending;
    this.#pending = undefined;
    this.#state = 'closed';
    this.#closeInfo = info;
    const token: SocketToken = pending ? { iappSocket: this.#token, pending: Buffer.concat(pending) } : { iappSocket: this.#token };
    this.#detaching?.(token);
    this.#resolveClosed?.(info);
    this.#onClose?.(info);
  }

  /** @internal */
  _closed(errno: number, syscall: string, unsent: number, bytesRead: number, bytesWritten: number): void {
    const wasConnecting = this.#state === 'connecting';
    this.#state = 'closed';
    const info: CloseInfo = { unsent, bytesRead, bytesWritten };
    if (errno !== 0) info.error = IappError.fromErrno(errno, syscall);
    this.#closeInfo = info;
    const c = this._connecting;
    if (wasConnecting && c) {
      this._connecting = undefined;
      clearTimeout(c.timer);
      c.reject(
        errno !== 0
          ? IappError.fromErrno(errno, syscall, c.target)
          : iappError('ERR_SOCKET_CLOSED', 'the socket was destroyed while connecting', c.target),
      );
    }
    this.#resolveClosed?.(info);
    this.#onClose?.(info);
  }
}
