// iapp-srv on the run bus (--bus, --run; docs/bus.md): the server's side of the protocol in
// src/cli/bus.ts. A server serves from the moment it listens and does not wait for the start; on
// the bus it announces itself, publishes its cumulative counts every interval, and answers the
// controller's summary requests with its counts at that moment (the controller takes them before
// the start and after every client is done: the difference is what the run sent it). It ignores
// stop and end: a server outlives runs, and its own --duration, --idle-exit or a signal end it.
import type { BusConfig } from '../src/cli/bus.js';
import { Member } from '../src/cli/bus.js';

/** Joins run `bus.run` as a server; throws UsageError when the bus cannot be reached. */
export function joinAsServer(bus: BusConfig, statsS: number, info: Record<string, unknown>): Promise<Member> {
  return Member.join(bus, 'srv', statsS, info);
}

/** Serving: counts come from `counts` (fresh at each call), for the stats messages and the summary requests. */
export function serveOnBus(m: Member, counts: () => Promise<Record<string, number>>): void {
  m.onNote = (text) => void process.stderr.write(`iapp-srv: bus: ${text}\n`);
  let last: Record<string, number> = {};
  const fresh = async (): Promise<Record<string, number>> => (last = await counts().catch(() => last));
  m.counts(fresh);
  m.reply(fresh);
  m.running();
}

/** The counts a server publishes: cumulative since it started. */
export function serverCounts(t: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['rxBytes', 'txBytes', 'accepted', 'closed', 'connections', 'datagramsIn', 'requests']) if (typeof t[k] === 'number') out[k] = t[k] as number;
  return out;
}
