// Established connections of every loop of the process, counted natively where each starts and
// ends (native/conns.cc), so the peak is exact, not sampled.
import { native } from './native.js';

declare module './native.js' {
  interface Addon {
    /** Without an fd: makes a block to share and returns its fd; with one: counts into it as process slot `slot`. */
    shareConnections(fd?: number, slot?: number): number;
    setConnectionLimits(total: number, perAddress: number): void;
    reclaimConnections(slot: number): void;
  }
}

/** Established TCP and Unix stream connections: open now, and most open at once. */
export interface ConnectionCounts {
  open: number;
  peak: number;
  /** The bounds in force (`setConnectionLimits()`), 0 for none. */
  maxConnections: number;
  maxPerAddress: number;
  /** Connections accepted and reset at once because a bound was reached, since the start. */
  refusedMaxConnections: number;
  refusedPerAddress: number;
}

/** Bounds on the connections listeners accept: see `setConnectionLimits()`. */
export interface ConnectionLimits {
  /** Accepted connections open at once, over every loop (and process sharing the counts). 0 or absent: no bound. */
  total?: number;
  /**
   * Accepted connections open at once from one source address: IPv4 addresses one by one (an
   * IPv4 client of a dual-stack socket too), IPv6 addresses by /64 prefix. Unix sockets have no
   * source address: only `total` bounds them. 0 or absent: no bound.
   */
  perAddress?: number;
}

declare module './native.js' {
  interface Addon {
    connections(): ConnectionCounts;
  }
}

/**
 * Connections of every loop of this process (every runtime), open now and at most at once since
 * the process started: exact, counted where each connection is accepted, connected, detached,
 * adopted and closed; with the bounds in force and how many connections they refused. Per loop,
 * `loop.stats()` has `connections`, `peakConnections` and the refusals. Cannot fail.
 */
export function connectionCounts(): ConnectionCounts {
  return native.connections();
}

const checkBound = (name: string, v: unknown): number => {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`setConnectionLimits: ${name} must be a whole number ≥ 0 (0: no bound), not ${String(v)}`);
  return v;
};

/**
 * Bounds the connections that listeners accept, over every loop of every runtime of this process
 * (and of the processes sharing its counts: an iapp-srv fleet). At most `total` open at once and
 * at most `perAddress` from one source address; a connection over a bound is accepted and reset
 * at once (its client sees ECONNRESET), before any Socket exists or any JS runs, and counted
 * (`connectionCounts()`, `loop.stats()`). Connections this process opens itself (`connect`,
 * dialers) are not bounded.
 *
 * Exact, not sampled: each connection takes its place under a lock in memory every loop and
 * process shares, right after accept(2), and gives it back when it closes (or is handed to
 * another loop with it). Process-wide; call it on the main thread before any connection is open
 * (it throws `EBUSY` otherwise: the counts would miss those). `{}` removes the bounds.
 */
export function setConnectionLimits(limits: ConnectionLimits): void {
  if (typeof limits !== 'object' || limits === null) throw new TypeError('setConnectionLimits: limits must be an object { total?, perAddress? }');
  native.setConnectionLimits(checkBound('total', limits.total), checkBound('perAddress', limits.perAddress));
}

/**
 * @internal Several processes of one program count into one block, so their peak is exact too,
 * and so are the bounds of `setConnectionLimits()`: without `fd`, makes the block (this process
 * counts into it from now on; the bounds set so far carry over) and returns the fd to pass to the
 * others; with `fd` (inherited), counts into that block as process `slot` (1 + its index: what
 * `reclaimConnectionCounts(slot)` gives back if it dies). Only before any connection of this
 * process is open (EBUSY otherwise).
 */
export function shareConnectionCounts(fd?: number, slot?: number): number {
  return fd === undefined ? native.shareConnections() : native.shareConnections(fd, slot ?? 1);
}

/**
 * @internal The parent of processes sharing a block, once process `slot` has exited: the places
 * it held under the bounds are given back (a process that crashes cannot close its sockets
 * itself; the kernel did, but the shared counts would still hold them). Cannot fail.
 */
export function reclaimConnectionCounts(slot: number): void {
  native.reclaimConnections(slot);
}
