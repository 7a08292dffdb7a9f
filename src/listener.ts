import { IappError } from './errors.js';
import type { NativeLoop } from './native.js';
import type { Socket } from './socket.js';

// A listener's native methods.
declare module './native.js' {
  interface NativeLoop {
    setAnnounce(listenerId: number, on: boolean): void;
    pauseListener(id: number): void;
    resumeListener(id: number): void;
    closeListener(id: number): void;
  }
}

/** Backoff after the kernel refuses to give us an fd for a new connection (EMFILE and friends). */
const BACKOFF_MIN_MS = 20;
const BACKOFF_MAX_MS = 1000;

/** @internal What a loop gives its listeners. */
export interface ListenerHost {
  readonly native: NativeLoop;
  handlerError(error: unknown, socket?: Socket): void;
  acceptError(listener: Listener, error: IappError, shed: number, resumeInMs: number): void;
  listenerClosed(listener: Listener): void;
}

/**
 * A listening socket on one loop. Connections it accepts belong to this loop. With the default
 * `accept: 'reuseport'` every loop has its own listener on the same address and the kernel
 * spreads connections among them; with `accept: 'shared'` all loops wait on one socket and the
 * kernel wakes one of them per connection (EPOLLEXCLUSIVE).
 */
export class Listener {
  readonly id: number;
  /** The bound address (the path for Unix sockets). */
  readonly address: string;
  /** The bound port (the real one when 0 was asked for); undefined for Unix sockets. */
  readonly port: number | undefined;
  readonly family: 'IPv4' | 'IPv6' | 'unix';
  /** Connections accepted so far. */
  accepted = 0;
  /** Times accepting was paused because no fd could be had (EMFILE, ENFILE, ENOBUFS, ENOMEM). */
  pausedCount = 0;
  #host: ListenerHost;
  #onConnection: ((socket: Socket) => void) | undefined;
  #backoff = BACKOFF_MIN_MS;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #userPaused = false;

  /** @internal Made by Loop.listen(). */
  constructor(
    host: ListenerHost,
    info: { id: number; address?: string; port?: number; family?: 'IPv4' | 'IPv6' | 'unix' },
    onConnection: ((socket: Socket) => void) | undefined,
  ) {
    this.#host = host;
    this.id = info.id;
    this.address = info.address ?? '';
    this.family = info.family ?? 'unix';
    this.port = this.family === 'unix' ? undefined : info.port;
    this.#onConnection = onConnection;
  }

  /** Sets the handler for new connections (replaces the one given to listen()). */
  onConnection(fn: (socket: Socket) => void): this {
    this.#onConnection = fn;
    // A sink listener made without a handler keeps its sockets native; from now on they are announced.
    if (!this.#closed) this.#host.native.setAnnounce(this.id, true);
    return this;
  }

  /** Stops accepting; new connections wait in the kernel's backlog. */
  pause(): void {
    this.#userPaused = true;
    if (!this.#closed) this.#host.native.pauseListener(this.id);
  }

  resume(): void {
    this.#userPaused = false;
    if (!this.#closed && !this.#timer) this.#host.native.resumeListener(this.id);
  }

  /** Stops listening. Sockets already accepted are not affected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#host.native.closeListener(this.id);
    this.#host.listenerClosed(this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  _accepted(socket: Socket): void {
    this.accepted++;
    this.#backoff = BACKOFF_MIN_MS;
    this.#onConnection?.(socket);
  }

  /** @internal Accepting paused natively: resume after a backoff that doubles while it recurs. */
  _paused(errno: number, shed: number): void {
    this.pausedCount++;
    const wait = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
    this.#host.acceptError(this, IappError.fromErrno(errno, 'accept', this.address), shed, wait);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed && !this.#userPaused) this.#host.native.resumeListener(this.id);
    }, wait);
  }
}
