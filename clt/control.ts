// iapp-clt --control: the controller of a run spread over hosts (docs/bus.md). It waits on the
// bus for --expect instances (clt and srv together) to announce themselves, takes each server's
// counts, starts the run, prints one live line for the whole fleet from the newest cumulative
// counts of each instance, fails the run when an instance is silent for 3 of its intervals,
// collects every client's summary by request/reply once it is done, and reconciles the clients'
// bytes sent with what the servers received over the run, exactly.
import type { Msg } from 'nats';

import { UsageError, parseInteger } from '../src/cli/args.js';
import {
  connectBus,
  decode,
  encode,
  subjects,
  type BusConfig,
  type EndMsg,
  type FleetMsg,
  type MemberState,
  type ReadyMsg,
  type StartMsg,
  type StatsMsg,
  type StopMsg,
} from '../src/cli/bus.js';
import { Output, formatBytes, formatCount, formatRate } from '../src/cli/report.js';

export interface ControlOptions {
  bus: BusConfig;
  /** Instances (clt and srv together) to wait for. */
  expect: number;
  statsS: number;
  /** Stop the clients after this long (else they keep to their own --duration, or a signal). */
  durationS: number | undefined;
  json: boolean;
}

/** Checks the controller's flags: --control needs --bus, --run and --expect. */
export function parseControl(v: { control?: boolean; expect?: string }, bus: BusConfig | undefined): number | undefined {
  if (!v.control) {
    if (v.expect !== undefined) throw new UsageError('--expect is for the controller: iapp-clt --control --expect N --bus URL --run ID');
    return undefined;
  }
  if (bus === undefined) throw new UsageError('--control needs --bus nats://HOST:PORT and --run ID: the bus and the run the instances joined');
  if (v.expect === undefined) throw new UsageError('--control needs --expect N: how many instances (clt and srv together) the run has');
  return parseInteger('expect', v.expect, 1, 100_000);
}

/** How many answers to wait for a summary request, each this long. */
const REQUEST_TRIES = 3;
const REQUEST_TIMEOUT_MS = 5000;
/** Silent for this many of its intervals: the instance is taken as gone. */
const SILENT_INTERVALS = 3;

interface Instance {
  ready: ReadyMsg;
  lastSeen: number;
  seq: number;
  state: MemberState;
  counts: Record<string, number>;
}

const n = (o: Record<string, unknown> | undefined, k: string): number => (typeof o?.[k] === 'number' ? (o[k] as number) : 0);

export async function control(o: ControlOptions): Promise<number> {
  const out = new Output(o.json);
  const nc = await connectBus(o.bus, 'iapp-ctl');
  const s = subjects(o.bus.run);
  const say = (text: string): void => void process.stderr.write(`iapp-clt --control: ${text}\n`);
  const seen = new Map<string, Instance>();
  let members: Map<string, Instance> | undefined;
  const late = new Set<string>();
  let wake: () => void = () => {};

  nc.subscribe(s.ready, {
    callback: (err, m: Msg) => {
      const r = err ? undefined : decode<ReadyMsg>(m);
      if (!r || typeof r.id !== 'string' || (r.role !== 'clt' && r.role !== 'srv') || !(r.statsS > 0)) return;
      if (members) {
        if (!members.has(r.id) && !late.has(r.id)) {
          late.add(r.id);
          say(`${r.id} (${r.role} on ${r.host}) announced itself after the start: not part of this run`);
        }
        return;
      }
      const i = seen.get(r.id);
      if (i) i.lastSeen = performance.now();
      else seen.set(r.id, { ready: r, lastSeen: performance.now(), seq: 0, state: 'ready', counts: {} });
      wake();
    },
  });
  nc.subscribe(s.stats, {
    callback: (err, m: Msg) => {
      const st = err ? undefined : decode<StatsMsg>(m);
      if (!st || typeof st.id !== 'string' || typeof st.seq !== 'number') return;
      const i = (members ?? seen).get(st.id);
      // Cumulative counts: only a newer message replaces what is kept; a repeated or late one is dropped.
      if (!i || st.seq <= i.seq) return;
      i.seq = st.seq;
      i.state = st.state;
      i.counts = st.counts ?? {};
      i.lastSeen = performance.now();
      wake();
    },
  });

  let interrupted = 0;
  let stopSent = false;
  const sendStop = (reason: string): void => {
    if (stopSent) return;
    stopSent = true;
    const m: StopMsg = { reason };
    nc.publish(s.stop, encode(m));
  };
  const finish = async (ok: boolean, reason: string): Promise<void> => {
    const m: EndMsg = { ok, reason };
    nc.publish(s.end, encode(m));
    await nc.drain().catch(() => {});
  };
  const onSignal = (): void => {
    interrupted++;
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let busLost = false;
  void nc.closed().then(() => {
    busLost = true;
    wake();
  });
  const tick = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => (clearTimeout(t), resolve());
    });
  const silentS = (i: Instance, now: number): number => (now - i.lastSeen) / 1000;

  // 1. Wait for --expect instances. One that announced itself and went silent before the start
  // is forgotten (it is not part of a run yet).
  let shown = '';
  while (true) {
    if (busLost) return (say(`lost the bus ${o.bus.url} while waiting for instances`), 1);
    if (interrupted) return (say('interrupted while waiting for instances; the run was not started'), await finish(false, 'interrupted before the start'), 1);
    const now = performance.now();
    for (const [id, i] of seen) if (silentS(i, now) > SILENT_INTERVALS * i.ready.statsS) seen.delete(id);
    if (seen.size >= o.expect) break;
    const roles = [...seen.values()].map((i) => i.ready.role);
    const text = `waiting for instances on ${o.bus.url}, run ${o.bus.run}: ${seen.size} of ${o.expect} ready (${roles.filter((r) => r === 'clt').length} clt, ${roles.filter((r) => r === 'srv').length} srv)`;
    if (text !== shown) {
      out.status(text);
      out.record({ type: 'waiting', ready: seen.size, expect: o.expect });
      shown = text;
    }
    await tick(250);
  }
  members = new Map([...seen].slice(0, o.expect));
  const all = [...members.values()];
  const clts = all.filter((i) => i.ready.role === 'clt');
  const srvs = all.filter((i) => i.ready.role === 'srv');

  const ask = async (i: Instance): Promise<Record<string, unknown> | undefined> => {
    for (let k = 0; k < REQUEST_TRIES; k++) {
      try {
        const r = await nc.request(s.summary(i.ready.id), encode({}), { timeout: REQUEST_TIMEOUT_MS });
        const body = decode<Record<string, unknown>>(r);
        if (body) return body;
      } catch {
        // no answer in time (or no responder yet): ask again
      }
    }
    return undefined;
  };

  // 2. Each server's counts before the start: what it received in the run is the difference.
  const baseline = new Map<string, Record<string, unknown>>();
  for (const i of srvs) {
    const b = await ask(i);
    if (!b) return (say(`${i.ready.id} (srv on ${i.ready.host}) did not answer for its counts; the run was not started`), await finish(false, 'a server did not answer'), 1);
    baseline.set(i.ready.id, b);
  }
  const start: StartMsg = { instances: all.map((i) => i.ready.id), at: Date.now(), statsS: o.statsS };
  const startedAt = performance.now();
  for (const i of all) i.lastSeen = startedAt; // silence counts from the start
  nc.publish(s.start, encode(start));
  out.line(`iapp-clt --control: run ${o.bus.run} started with ${clts.length} clt and ${srvs.length} srv: ${all.map((i) => i.ready.id).join(', ')}`);
  out.record({ type: 'start', run: o.bus.run, instances: all.map((i) => ({ id: i.ready.id, role: i.ready.role, host: i.ready.host, ...i.ready.info })) });

  // 3. The live line, from the newest cumulative counts of each instance.
  const sums = () => {
    const srvRx = srvs.reduce((a, i) => a + n(i.counts, 'rxBytes') - n(baseline.get(i.ready.id), 'rxBytes'), 0);
    return {
      txBytes: clts.reduce((a, i) => a + n(i.counts, 'txBytes'), 0),
      rxBytes: clts.reduce((a, i) => a + n(i.counts, 'rxBytes'), 0),
      connections: clts.reduce((a, i) => a + n(i.counts, 'open'), 0),
      established: clts.reduce((a, i) => a + n(i.counts, 'established'), 0),
      failed: clts.reduce((a, i) => a + n(i.counts, 'failed'), 0),
      srvRxBytes: srvs.length ? srvRx : undefined,
      srvConnections: srvs.length ? srvs.reduce((a, i) => a + n(i.counts, 'connections'), 0) : undefined,
    };
  };
  let prev = { t: startedAt, ...sums() };
  let fleetSeq = 0;
  const line = (): void => {
    const now = performance.now();
    const cur = sums();
    const dt = (now - prev.t) / 1000 || 1;
    const tx = (cur.txBytes - prev.txBytes) / dt;
    const srvRx = cur.srvRxBytes !== undefined ? (cur.srvRxBytes - (prev.srvRxBytes ?? 0)) / dt : undefined;
    const states = { running: clts.filter((i) => i.state === 'running').length, done: clts.filter((i) => i.state === 'done').length };
    const fleet: FleetMsg = {
      seq: ++fleetSeq,
      statsS: o.statsS,
      t: Math.round((now - startedAt) / 100) / 10,
      clients: states,
      ...cur,
      txBytesPerS: Math.round(tx),
      ...(srvRx !== undefined ? { srvRxBytesPerS: Math.round(srvRx) } : {}),
    };
    nc.publish(s.fleet, encode(fleet));
    out.record({ type: 'fleet', ...fleet });
    out.line(
      `${((now - startedAt) / 1000).toFixed(1).padStart(6)} s  clt ${states.running} running ${states.done} done  conns ${formatCount(cur.connections)}` +
        `  tx ${formatRate(tx)}${srvRx !== undefined ? `  srv rx ${formatRate(srvRx)}` : ''}  failed ${formatCount(cur.failed)}`,
    );
    prev = { t: now, ...cur };
  };
  const liveTimer = setInterval(line, o.statsS * 1000);
  const durationTimer = o.durationS !== undefined ? setTimeout(() => (sendStop(`${o.durationS} s elapsed`), wake()), o.durationS * 1000) : undefined;
  const fail = async (why: string): Promise<number> => {
    clearInterval(liveTimer);
    clearTimeout(durationTimer);
    say(`${why}: the run failed`);
    out.record({ type: 'error', message: why });
    sendStop(why);
    await finish(false, why);
    return 1;
  };

  let handled = 0;
  while (!clts.every((i) => i.state === 'done')) {
    if (busLost) return fail(`lost the bus ${o.bus.url}`);
    if (interrupted > handled) {
      handled = interrupted;
      if (interrupted > 1) return fail('interrupted twice');
      say('interrupted: stopping the clients (again to give up)');
      sendStop('interrupted at the controller');
    }
    const now = performance.now();
    for (const i of all) {
      const silent = silentS(i, now);
      if (silent > SILENT_INTERVALS * i.ready.statsS)
        return fail(`${i.ready.id} (${i.ready.role} on ${i.ready.host}) has been silent for ${silent.toFixed(1)} s, ${SILENT_INTERVALS} of its ${i.ready.statsS} s intervals`);
    }
    await tick(250);
  }
  clearInterval(liveTimer);
  clearTimeout(durationTimer);
  line();

  // 4. Every client is done: collect the summaries, then the servers' counts, and reconcile.
  const summaries = await Promise.all(clts.map(ask));
  const missing = clts.filter((_, k) => summaries[k] === undefined || summaries[k]!.type !== 'summary');
  if (missing.length) return fail(`no summary from ${missing.map((i) => i.ready.id).join(', ')}`);
  const finals = await Promise.all(srvs.map(ask));
  const mute = srvs.filter((_, k) => finals[k] === undefined);
  if (mute.length) return fail(`no counts from ${mute.map((i) => i.ready.id).join(', ')}`);
  const sum = (k: string): number => summaries.reduce((a, x) => a + n(x, k), 0);
  const txBytes = sum('txBytes');
  const srvRxBytes = srvs.length ? srvs.reduce((a, i, k) => a + n(finals[k], 'rxBytes') - n(baseline.get(i.ready.id), 'rxBytes'), 0) : undefined;
  const complete = summaries.every((x) => x!.complete === true);
  const reconciled = srvRxBytes === undefined ? null : txBytes === srvRxBytes;
  const durationS = (performance.now() - startedAt) / 1000;
  const result = {
    type: 'summary',
    run: o.bus.run,
    clients: clts.length,
    servers: srvs.length,
    durationS: Math.round(durationS * 1000) / 1000,
    connected: sum('connected'),
    failed: sum('failed'),
    dropped: sum('dropped'),
    reset: sum('reset'),
    peakConnections: sum('peakConnections'),
    txBytes,
    rxBytes: sum('rxBytes'),
    ...(srvRxBytes !== undefined ? { srvRxBytes } : {}),
    reconciled,
    complete,
    instances: [
      ...clts.map((i, k) => ({ id: i.ready.id, role: 'clt', host: i.ready.host, ...pick(summaries[k]!, ['shard', 'threads', 'procs', 'connected', 'failed', 'txBytes', 'rxBytes', 'reset']) })),
      ...srvs.map((i, k) => ({ id: i.ready.id, role: 'srv', host: i.ready.host, rxBytes: n(finals[k], 'rxBytes') - n(baseline.get(i.ready.id), 'rxBytes'), accepted: n(finals[k], 'accepted') - n(baseline.get(i.ready.id), 'accepted') })),
    ],
  };
  out.record(result);
  out.line('');
  out.table([
    { '': 'instances', value: `${clts.length} clt, ${srvs.length} srv`, detail: `run ${o.bus.run}` },
    { '': 'established', value: formatCount(result.connected), detail: `peak ${formatCount(result.peakConnections)} open at once (sum of the clients' peaks)` },
    { '': 'failed', value: formatCount(result.failed), detail: '' },
    { '': 'sent', value: formatBytes(txBytes), detail: `${formatCount(txBytes)} bytes by the clients, ${formatRate(txBytes / durationS)}` },
    ...(srvRxBytes !== undefined
      ? [{ '': 'received', value: formatBytes(srvRxBytes), detail: `${formatCount(srvRxBytes)} bytes by the servers: ${reconciled ? 'equal to what was sent' : `${formatCount(txBytes - srvRxBytes)} bytes NOT accounted for`}` }]
      : []),
    { '': 'duration', value: `${durationS.toFixed(2)} s`, detail: 'from the start to the last summary' },
  ]);
  if (!complete) say('a client reports partial counts (a thread did not report)');
  const ok = reconciled !== false && complete;
  if (reconciled === false) say(`the clients sent ${formatCount(txBytes)} bytes but the servers received ${formatCount(srvRxBytes!)} over the run`);
  await finish(ok, ok ? 'collected' : reconciled === false ? 'bytes do not reconcile' : 'partial counts');
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return ok ? 0 : 1;
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]));
}
