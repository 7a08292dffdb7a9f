// Dialers: many connections opened, kept and cycled natively (native/dialer.cc), for load
// generators. No JavaScript runs per connection; the dialer's counters say what happened.
import { DIAL_TIMEOUT_MS } from './defaults.js';
import type { NativeLoop } from './native.js';

/** What `loop.dial()` takes. */
export interface DialOptions {
  /**
   * Where to connect: numeric IPv4/IPv6 addresses with ports, or Unix socket paths. Connections
   * go round-robin over them (with `sources`: over every source and target pair). No name
   * lookups: resolve names once, before.
   */
  targets: readonly ({ host: string; port: number } | { path: string })[];
  /** Local addresses to bind, round-robin (each gives its own ephemeral ports per target). */
  sources?: readonly string[];
  /** Connections to keep open (`hold`, `push`), or open at once at most (`end`). */
  count: number;
  /**
   * New connections per second: a token bucket holding up to a second's worth, so a thread held
   * back catches up. Default: no limit (as fast as they open).
   */
  rate?: number;
  /**
   * What an established connection does: `'hold'` (default) stays open and idle, `'push'` sends
   * `chunk` again and again (as `socket.push`), `'end'` half-closes at once, and once the server
   * has closed it its place goes to the next: connects per second. In every mode a connection
   * that closes is replaced, at `rate`.
   */
  then?: 'hold' | 'push' | 'end';
  /** `'push'`: the bytes sent again and again (1 byte to 1 GiB). */
  chunk?: Uint8Array;
  /** Milliseconds a connect may take before it fails with ETIMEDOUT. Default 10000; 0 waits for the kernel. */
  timeoutMs?: number;
  /**
   * Where this dialer's connections fall in a (source, target) sequence that several dialers
   * (one per loop) share: connection i uses pair `first + i * stride`, the pair k being target
   * `k % targets` and source `floor(k / targets) % sources`. Default `{ first: 0, stride: 1 }`.
   */
  sequence?: { first: number; stride: number };
  /** TCP_NODELAY on the connections (set at their first write). Default true. */
  noDelay?: boolean;
}

/** A dialer's counters since it started (exact: counted natively where things happen). */
export interface DialerStats {
  /** Connections whose connect completed. */
  established: number;
  /** Connect attempts that failed (`errors` says why). */
  failed: number;
  /** Established connections that closed before the dialer ended them (the server closed or reset them). */
  dropped: number;
  /** `'end'`: connections ended and then closed by the server, each a full cycle. */
  cycled: number;
  /** Connections established and open now, connecting now, and most open at once. */
  open: number;
  connecting: number;
  peak: number;
  /** Milliseconds from the start until `count` connections were open at once; null until then (and for `'end'`). */
  rampMs: number | null;
  /** Bytes received (discarded natively) and sent. */
  bytesIn: number;
  bytesOut: number;
  /** Failures by errno code: connects that failed, and errors of established connections. */
  errors: Record<string, number>;
}

/** The native spec of `dial()` (see native/napi/dialer.cc). */
export interface NativeDialSpec {
  targets: ({ host: string; port: number } | { path: string })[];
  sources: string[];
  first: number;
  stride: number;
  count: number;
  rate: number;
  then: number;
  chunk?: Uint8Array;
  timeoutMs: number;
  noDelay: boolean;
  mode: number;
}

/** What the native dialerStats() returns: errors by errno number. */
export type NativeDialerStats = Omit<DialerStats, 'rampMs' | 'errors'> & { rampNs: number; errors: Record<string, number> };

declare module './native.js' {
  interface NativeLoop {
    dial(spec: NativeDialSpec): number;
    /** undefined once the loop is closed. */
    dialerStats(id: number): NativeDialerStats | undefined;
    dialerStop(id: number): void;
    dialerClose(id: number): void;
  }
}

const THEN = { hold: 0, push: 1, end: 2 } as const;
const none = (): DialerStats => ({ established: 0, failed: 0, dropped: 0, cycled: 0, open: 0, connecting: 0, peak: 0, rampMs: null, bytesIn: 0, bytesOut: 0, errors: {} });

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${String(v)}`);
  if (v < min || v > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${v}`);
}

/** @internal Checks `loop.dial()`'s options and turns them into the native spec. */
export function dialSpec(o: DialOptions, isIP: (host: string) => number): NativeDialSpec {
  if (o === null || typeof o !== 'object') throw new TypeError('dial needs an options object');
  if (!Array.isArray(o.targets) || o.targets.length === 0) throw new TypeError('dial needs targets: [{ host, port } | { path }, ...]');
  const targets = o.targets.map((t, i) => {
    if (t !== null && typeof t === 'object' && 'path' in t && typeof t.path === 'string' && t.path !== '') return { path: t.path };
    const h = t as { host?: unknown; port?: unknown };
    if (typeof h.host !== 'string' || isIP(h.host) === 0) throw new TypeError(`targets[${i}].host must be a numeric IP address (resolve names first), got ${String(h.host)}`);
    checkInt(`targets[${i}].port`, h.port, 1, 65535);
    return { host: h.host, port: h.port as number };
  });
  const sources = [...(o.sources ?? [])];
  for (const [i, s] of sources.entries()) if (typeof s !== 'string' || isIP(s) === 0) throw new TypeError(`sources[${i}] must be a numeric IP address, got ${String(s)}`);
  checkInt('count', o.count, 1, 10_000_000);
  if (o.rate !== undefined && (typeof o.rate !== 'number' || !(o.rate > 0) || !Number.isFinite(o.rate))) throw new RangeError(`rate must be a positive number of connections per second, got ${String(o.rate)}`);
  const then = o.then ?? 'hold';
  if (!(then in THEN)) throw new TypeError(`then must be 'hold', 'push' or 'end', got ${String(then)}`);
  if (then === 'push' && !(o.chunk instanceof Uint8Array && o.chunk.byteLength >= 1 && o.chunk.byteLength <= 2 ** 30))
    throw new TypeError("then: 'push' needs a chunk: a Uint8Array of 1 byte to 1 GiB");
  if (o.timeoutMs !== undefined) checkInt('timeoutMs', o.timeoutMs, 0, 2 ** 31 - 1);
  const seq = o.sequence ?? { first: 0, stride: 1 };
  checkInt('sequence.first', seq.first, 0, 2 ** 40);
  checkInt('sequence.stride', seq.stride, 1, 2 ** 20);
  return {
    targets,
    sources,
    first: seq.first,
    stride: seq.stride,
    count: o.count,
    rate: o.rate ?? 0,
    then: THEN[then],
    ...(then === 'push' ? { chunk: o.chunk } : {}),
    timeoutMs: o.timeoutMs ?? DIAL_TIMEOUT_MS,
    noDelay: o.noDelay ?? true,
    mode: 2, // ReadMode.Sink: what the server sends is discarded natively
  };
}

/**
 * Many connections opened, kept and cycled natively by one loop (see `loop.dial()`). Lives on
 * its loop's thread; the loop's close ends its connections like the loop's own.
 */
export class Dialer {
  /** @internal */
  readonly id: number;
  #native: NativeLoop;
  #errnoName: (n: number) => string;
  #final: DialerStats | undefined;
  #closing: Promise<DialerStats> | undefined;
  #done: (() => void) | undefined;

  /** @internal Made by `loop.dial()`. */
  constructor(native: NativeLoop, id: number, errnoName: (n: number) => string) {
    this.#native = native;
    this.id = id;
    this.#errnoName = errnoName;
  }

  /** The counters now (after the loop closed: their final values). Cannot fail. */
  stats(): DialerStats {
    if (this.#final) return this.#final;
    const raw = this.#native.dialerStats(this.id);
    if (raw === undefined) return none();
    const errors: Record<string, number> = {};
    for (const [errno, n] of Object.entries(raw.errors)) {
      const code = this.#errnoName(Number(errno));
      errors[code] = (errors[code] ?? 0) + n;
    }
    const { rampNs, ...counts } = raw;
    return { ...counts, rampMs: rampNs < 0 ? null : rampNs / 1e6, errors };
  }

  /**
   * Opens no more connections and ends those it has (those still connecting are closed).
   * Resolves with the final counters once the last has closed (the servers close them after
   * reading what was in flight). Cannot fail.
   */
  close(): Promise<DialerStats> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#done = resolve;
      this.#native.dialerClose(this.id);
    }).then(() => (this.#final = this.stats()));
    return this.#closing;
  }

  /** @internal The loop is closing: open nothing more (the loop ends the connections). */
  _stop(): void {
    this.#native.dialerStop(this.id);
  }

  /** @internal The last connection after close() has closed. */
  _done(): void {
    this.#final ??= this.stats();
    this.#done?.();
  }

  /** @internal The native loop is about to close: keep the final counters. */
  _freeze(): void {
    this.#final ??= this.stats();
    this.#done?.();
  }
}
