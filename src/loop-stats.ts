// What a loop counts (loop.stats(), runtime.stats()): the public counters and the native part
// they are built from.

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

/** What the native loop counts; the public LoopStats adds what only JS knows. */
export type NativeLoopStats = Omit<LoopStats, 'sockets' | 'listeners' | 'errors' | 'app'> & {
  handles: number;
  quietSockets: number;
  /** By errno number (positive), as a string key. */
  errors: Record<string, number>;
};

declare module './native.js' {
  interface NativeLoop {
    stats(): NativeLoopStats;
  }
}
