// Established connections of every loop of the process, counted natively where each starts and
// ends (native/conns.cc), so the peak is exact, not sampled.
import { native } from './native.js';

/** Established TCP and Unix stream connections: open now, and most open at once. */
export interface ConnectionCounts {
  open: number;
  peak: number;
}

/**
 * Connections of every loop of this process (every runtime), open now and at most at once since
 * the process started: exact, counted where each connection is accepted, connected, detached,
 * adopted and closed. Per loop, `loop.stats()` has `connections` and `peakConnections`. Cannot
 * fail.
 */
export function connectionCounts(): ConnectionCounts {
  return native.connections();
}

/**
 * @internal Several processes of one program count into one block, so their peak is exact too:
 * without `fd`, makes the block (this process counts into it from now on) and returns the fd to
 * pass to the others; with `fd` (inherited), counts into that block. Only before any connection
 * of this process is open (EBUSY otherwise).
 */
export function shareConnectionCounts(fd?: number): number {
  return native.shareConnections(fd);
}
