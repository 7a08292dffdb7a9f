// iapp-clt on the run bus (--bus, --run; docs/bus.md): the client's side of the protocol in
// src/cli/bus.ts. It announces itself, starts its fleet only when the controller starts the run,
// publishes its cumulative counts, stops when told (or when the controller goes silent),
// answers the summary request with its own summary record, and leaves after the controller's end.
import type { BusConfig } from '../src/cli/bus.js';
import { Member } from '../src/cli/bus.js';
import type { Output } from '../src/cli/report.js';

const note = (text: string): void => void process.stderr.write(`iapp-clt: bus: ${text}\n`);

/** Joins run `bus.run` as a client; throws UsageError when the bus cannot be reached. */
export function joinAsClient(bus: BusConfig, statsS: number, info: Record<string, unknown>): Promise<Member> {
  return Member.join(bus, 'clt', statsS, info);
}

/** Waits for the controller's start; false (with a message) if the run started without this instance. */
export async function awaitStart(m: Member, out: Output, run: string): Promise<boolean> {
  m.onNote = note;
  out.status(`waiting for the controller to start run ${run} (this instance is ${m.id})`);
  out.record({ type: 'waiting', run, id: m.id });
  if (await m.started()) return true;
  note(`run ${run} started without this instance (it came late, or more instances came than the controller's --expect)`);
  return false;
}

/** The fleet is running: hands the bus's stop to `stop`, and keeps the summary record for the controller. */
export function busRunning(m: Member, out: Output, stop: () => void): void {
  m.onStop = (reason) => (note(`stop from the controller (${reason})`), stop());
  m.onControllerLost = (s) => (note(`the controller has been silent for ${s.toFixed(1)} s: stopping`), stop());
  let result: Record<string, unknown> | undefined;
  const record = out.record.bind(out);
  out.record = (o) => {
    if (o.type === 'summary' || o.type === 'error') result = o;
    record(o);
  };
  m.reply(() => result ?? { state: m.state });
  m.running();
}

/** The counts a client publishes each interval: cumulative, from its live totals. */
export function clientCounts(t: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['txBytes', 'rxBytes', 'established', 'failed', 'dropped', 'open', 'responses', 'datagramsOut']) if (typeof t[k] === 'number') out[k] = t[k] as number;
  return out;
}

/** The run is over here: says so, waits (bounded) for the controller to collect and end, leaves. */
export async function leaveBus(m: Member, statsS: number): Promise<void> {
  if (m.state === 'ready') {
    // Never ran (left out of the run, or the fleet could not start): nothing to hand in.
    await m.close();
    return;
  }
  m.done();
  if (m.controllerLost) {
    note('leaving without the controller (its summary request and end never came)');
    await m.close();
    return;
  }
  const waitS = Math.max(10, 3 * statsS);
  const end = await m.ended(waitS * 1000);
  if (!end) note(`the controller did not end the run within ${waitS} s of this instance's summary; leaving`);
  await m.close();
}
