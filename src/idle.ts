// Idle detection for a set of loops (one runtime, or a fleet of processes): how long it has been
// since anything happened, from the loops' counters, so a service can exit when nobody uses it
// (socket activation starts it again on the next connection).
import type { LoopStats } from './loop-stats.js';

type Activity = Pick<LoopStats, 'connections' | 'accepted' | 'connected' | 'datagramsIn'>;

/**
 * Feeds on samples of the loops' stats. Activity is an open connection, a new connection (either
 * way: accepted or connected), or a datagram that arrived, since the previous sample.
 */
export class IdleTracker {
  #seen: { accepted: number; connected: number; datagramsIn: number } | undefined;
  #since: number;

  constructor(nowMs: number) {
    this.#since = nowMs;
  }

  /** Takes a sample; returns the milliseconds since the last activity (0 when there is some now). */
  sample(stats: readonly Activity[], nowMs: number): number {
    const t = { accepted: 0, connected: 0, datagramsIn: 0 };
    let open = 0;
    for (const s of stats) {
      open += s.connections;
      t.accepted += s.accepted;
      t.connected += s.connected;
      t.datagramsIn += s.datagramsIn;
    }
    const p = this.#seen;
    if (open > 0 || !p || t.accepted !== p.accepted || t.connected !== p.connected || t.datagramsIn !== p.datagramsIn) this.#since = nowMs;
    this.#seen = t;
    return nowMs - this.#since;
  }
}
