#!/usr/bin/env node
// iapp-clt: opens many connections at a steady rate and pushes data through them (or runs echo
// request/response and measures latency), reporting progress, throughput and a final summary
// whose byte counts are exact, so they can be reconciled with iapp-srv's.
import { formatEndpoint } from '../src/cli/args.js';
import type { Fleet, FleetThreadStats } from '../src/cli/fleet.js';
import { Output, formatBytes, formatCount, formatErrors, formatRate } from '../src/cli/report.js';
import { Latency, type LatencySummary } from './latency.js';
import type { LoopData, ThreadCounts, ThreadReport } from './loop.js';
import { fdsNeeded, preflight, readMachine } from './preflight.js';
import { HELP, parse, type Config } from './config.js';
import { runCli } from '../src/cli/run.js';
import { addCounters, appStats } from '../src/cli/totals.js';
import type { Member } from '../src/cli/bus.js';
import { shardText } from './shard.js';

const CONNECT_TIMEOUT_MS = 10_000;
/** With no connection at all after this long and failures seen, the target is taken as down. */
const NOTHING_CONNECTS_MS = 1_000;

/** Live figures summed over all threads. */
interface Totals extends Omit<ThreadCounts, 'thread' | 'firstError'> {
  /** Threads that have had all their connections open. */
  ramped: number;
  txBytes: number;
  rxBytes: number;
  datagramsOut: number;
  firstError: ThreadCounts['firstError'];
}

const noTotals = (): Totals => ({ ramped: 0, established: 0, failed: 0, dropped: 0, cycled: 0, open: 0, peak: 0, errors: {}, responses: 0, txBytes: 0, rxBytes: 0, datagramsOut: 0, firstError: undefined });

/** Adds one thread's connection counts into `t`. */
function addCounts(t: Totals, a: ThreadCounts): void {
  const { established, failed, dropped, cycled, open, peak, responses, errors } = a;
  addCounters(t, { established, failed, dropped, cycled, open, peak, responses, errors });
  // The run's ramp ends when its slowest thread has all its connections open.
  if (a.rampMs !== undefined) t.rampMs = Math.max(t.rampMs ?? 0, a.rampMs);
  t.ramped += a.rampMs !== undefined ? 1 : 0;
  t.firstError ??= a.firstError;
}

function sum(stats: FleetThreadStats[], udp: boolean): Totals {
  const t = noTotals();
  for (const s of stats) {
    // UDP send errors (ECONNREFUSED after an ICMP port-unreachable) are counted natively only.
    addCounters(t, { txBytes: s.bytesOut, rxBytes: s.bytesIn, datagramsOut: s.datagramsOut, ...(udp ? { errors: s.errors } : {}) });
    const a = appStats<ThreadCounts>(s);
    if (a) addCounts(t, a);
  }
  return t;
}

function describe(c: Config): string {
  const total = c.threads * c.conns;
  const where = c.targets.map(formatEndpoint).join(', ');
  const what = c.udp
    ? `UDP datagrams of ${formatCount(c.size)} B`
    : { echo: `echo requests of ${formatCount(c.size)} B`, push: `push, ${formatCount(c.size)} B writes`, hold: 'held idle', connect: 'each ended once established' }[c.mode];
  const procs = c.procs > 1 ? ` in ${c.procs} processes` : '';
  const shard = c.shard.count > 1 ? `, shard ${shardText(c.shard)} of ${c.shard.totalThreads} threads` : '';
  const count = `${formatCount(total)} ${c.udp ? 'UDP socket' : 'connection'}${total === 1 ? '' : 's'}${c.mode === 'connect' ? ' at once' : ''}`;
  return `iapp-clt: ${count} (${c.threads} thread${c.threads === 1 ? '' : 's'}${procs} × ${formatCount(c.conns)}${shard}) to ${where}, ${what}, ${formatCount(c.rate)}/s per thread${c.durationS ? `, ${c.durationS} s` : ''}`;
}

async function run(c: Config, member?: Member): Promise<number> {
  const out = new Output(c.json);
  const verdict = preflight(c, readMachine());
  for (const w of verdict.warnings) process.stderr.write(`iapp-clt: warning: ${w}\n`);
  if (verdict.error) {
    for (const line of verdict.error.split('\n')) process.stderr.write(`iapp-clt: ${line}\n`);
    return 2;
  }

  const total = c.threads * c.conns;
  const bus = member && (await import('./bus.js'));
  if (member && !(await bus!.awaitStart(member, out, c.bus!.run))) return 1;
  let fleet: Fleet;
  try {
    // Loaded only now: the fleet loads the native addon, which --help and flag errors do not need.
    const { startFleet } = await import('../src/cli/fleet.js');
    fleet = await startFleet({
      module: new URL('./loop.js', import.meta.url),
      threads: c.threads,
      procs: c.procs,
      data: (ctx): LoopData => ({
        targets: c.targets,
        sources: c.sources,
        mode: c.mode,
        udp: c.udp,
        size: c.size,
        rate: c.rate,
        conns: c.conns,
        firstThread: c.shard.firstThread + ctx.firstThread,
        totalThreads: c.shard.totalThreads,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
      }),
    });
  } catch (e) {
    process.stderr.write(`iapp-clt: could not start: ${(e as Error).message}\n`);
    return 1;
  }
  const startedAt = performance.now();

  // Where /proc could not tell the limit beforehand, the runtime's raised limit says it now.
  for (let p = 0; p < c.procs; p++) {
    const hard = fleet.limits[p]?.hard;
    if (hard !== undefined && fdsNeeded(c, p) > hard) {
      await fleet.close({ timeoutMs: 0 });
      process.stderr.write(`iapp-clt: process ${p} needs ${formatCount(fdsNeeded(c, p))} open files but may have ${formatCount(hard)}; use more --procs\n`);
      return 2;
    }
  }

  fleet.on('exit', (e: { proc: number; thread?: number; error?: Error }) => {
    if (e.error) process.stderr.write(`iapp-clt: ${e.thread !== undefined ? `thread ${e.thread}` : `process ${e.proc}`} died: ${e.error.message}\n`);
  });
  fleet.on('handler-error', (e: { thread: number; error: Error }) => {
    if (c.verbose) process.stderr.write(`iapp-clt: thread ${e.thread}: ${e.error.message}\n`);
  });

  out.line(describe(c));

  let lastTxRate = 0;
  let lastOpenRate = 0;
  let lastPrintAt = startedAt;
  let printed: Totals | undefined;
  // Connect mode has no ramp: connections come and go all along.
  let rampDone = c.mode === 'connect';
  const perThread = (n: number): string => `${formatCount(Math.round(n))}/s, ${formatCount(Math.round(n / c.threads))}/s per thread`;
  let sampling = false;
  let stopping: Promise<number> | undefined;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const rampEvery = Math.min(250, c.statsS * 1000);
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);

  const cannotConnect = (t: Totals): string => {
    const f = t.firstError!;
    const hint = f.code === 'ECONNREFUSED' || f.code === 'ENOENT' ? ' Is iapp-srv running?' : '';
    // The library's message reads "connect CODE TARGET: why: what to do"; keep the why.
    const why = /^\S+ \S+ \S+: ([^:]+)/.exec(f.message)?.[1];
    return `cannot connect to ${f.target}: ${f.code}${why ? ` (${why})` : ''}; ${formatCount(t.failed)} attempts, none succeeded.${hint}`;
  };

  const sample = async (): Promise<void> => {
    if (sampling || stopping) return;
    sampling = true;
    const t = sum(await fleet.stats(), c.udp);
    member?.counts(() => bus!.clientCounts({ ...t }));
    sampling = false;
    if (stopping) return;
    const now = performance.now();
    if (t.established === 0 && t.failed > 0 && now - startedAt >= NOTHING_CONNECTS_MS) {
      void stop(cannotConnect(t));
      return;
    }
    const printedNow = now - lastPrintAt >= c.statsS * 1000 - 1;
    if (printedNow) {
      const pdt = (now - lastPrintAt) / 1000;
      const prev = printed ?? { txBytes: 0, rxBytes: 0, responses: 0, established: 0 };
      const txRate = (t.txBytes - prev.txBytes) / pdt;
      const rxRate = (t.rxBytes - prev.rxBytes) / pdt;
      const rps = (t.responses - prev.responses) / pdt;
      const openRate = (t.established - prev.established) / pdt;
      out.record({
        type: 'stats',
        t: Math.round((now - startedAt) / 100) / 10,
        connections: t.open,
        established: t.established,
        failed: t.failed,
        dropped: t.dropped,
        newPerS: Math.round(openRate),
        txBytes: t.txBytes,
        rxBytes: t.rxBytes,
        txBytesPerS: Math.round(txRate),
        rxBytesPerS: Math.round(rxRate),
        ...(c.mode === 'echo' ? { responses: t.responses, responsesPerS: Math.round(rps) } : {}),
        ...(c.udp ? { datagramsOut: t.datagramsOut } : {}),
        errors: t.errors,
      });
      if (rampDone) {
        const echo = c.mode === 'echo' ? `  ${formatCount(Math.round(rps))} req/s` : '';
        const traffic = c.mode === 'connect' ? `  connects ${perThread(openRate)}` : `  tx ${formatRate(txRate)}  rx ${formatRate(rxRate)}${echo}`;
        out.line(`${seconds(now - startedAt).padStart(6)} s  conns ${formatCount(t.open)}${traffic}  failed ${formatCount(t.failed)}`);
      }
      printed = t;
      lastPrintAt = now;
      lastTxRate = txRate;
      lastOpenRate = openRate;
    }
    if (!rampDone) {
      if (t.ramped === c.threads) {
        rampDone = true;
        // Timed by each thread itself: the moment its last connection opened.
        const rampS = (t.rampMs ?? 0) / 1000;
        out.line(`all ${formatCount(total)} ${c.udp ? 'sockets' : 'connections'} open after ${rampS.toFixed(1)} s (${perThread(total / rampS)})${t.failed ? `, ${formatCount(t.failed)} attempts failed: ${formatErrors(t.errors)}` : ''}`);
      } else if (out.json === false && (process.stdout.isTTY || printedNow)) {
        out.status(`connecting: ${formatCount(t.open)} / ${formatCount(total)} open, ${perThread(lastOpenRate)}, ${formatCount(t.failed)} failed${c.mode === 'push' || c.udp ? `, tx ${formatRate(lastTxRate)}` : ''}`);
      }
    }
  };
  const poller = setInterval(() => void sample(), rampEvery);

  const stop = (fatal?: string): Promise<number> => {
    stopping ??= (async () => {
      clearInterval(poller);
      clearTimeout(durationTimer);
      const stopAt = performance.now();
      if (!fatal) out.status(c.udp ? 'stopping: closing the UDP sockets' : `stopping: ending every connection and waiting for it to close (up to ${c.closeTimeoutS} s)`);
      const close = await fleet.close({ timeoutMs: fatal ? 0 : c.closeTimeoutS * 1000 });
      const endAt = performance.now();
      // Each thread's final report, taken after its close; a thread that died or was terminated
      // has none, and the summary says it is incomplete.
      const reports = close.stats.map((s) => s.app as ThreadReport | undefined).filter((r): r is ThreadReport => r?.latency !== undefined);
      const latency = new Latency();
      const t = noTotals();
      for (const r of reports) {
        addCounts(t, r);
        t.txBytes += r.txBytes;
        t.rxBytes += r.rxBytes;
        t.datagramsOut += r.datagramsOut;
        latency.addEncoded(r.latency);
      }
      if (!fatal && t.established === 0 && t.failed > 0) fatal = cannotConnect(t);
      if (fatal) {
        process.stderr.write(`iapp-clt: ${fatal}\n`);
        out.record({ type: 'error', message: fatal, errors: t.errors });
        return 1;
      }
      const complete = reports.length === c.threads;
      if (!complete) process.stderr.write(`iapp-clt: ${c.threads - reports.length} thread(s) did not report: counts are partial\n`);
      if (close.reset > 0) process.stderr.write(`iapp-clt: ${formatCount(close.reset)} connections did not close within ${c.closeTimeoutS} s and were reset (raise --close-timeout)\n`);
      const durationS = (endAt - startedAt) / 1000;
      // Exact, from the counts every loop of every process keeps natively (UDP sockets are not
      // connections: their count is clt's own).
      if (!c.udp) t.peak = fleet.connections().peak;
      printSummary(out, c, t, latency.summary(), { durationS, runS: (stopAt - startedAt) / 1000, complete, reset: close.reset, rampS: t.ramped === c.threads ? (t.rampMs ?? 0) / 1000 : undefined });
      return 0;
    })().then(
      (code) => (finish(code), code),
      (e: Error) => (process.stderr.write(`iapp-clt: ${e.stack ?? e.message}\n`), finish(1), 1),
    );
    return stopping;
  };

  const durationTimer = c.durationS !== undefined ? setTimeout(() => void stop(), c.durationS * 1000) : undefined;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals > 1) {
      process.stderr.write(`iapp-clt: ${sig} again: exiting without a summary\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    void stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (member) bus!.busRunning(member, out, () => void stop());
  void sample();
  return finished;
}

function printSummary(
  out: Output,
  c: Config,
  t: Totals,
  lat: LatencySummary | undefined,
  r: { durationS: number; runS: number; complete: boolean; reset: number; rampS: number | undefined },
): void {
  const txRate = t.txBytes / r.durationS;
  const rxRate = t.rxBytes / r.durationS;
  // How fast connections opened: all of them over the ramp when every thread had its share open,
  // else what opened over the run (connect mode: every connect of the run).
  const openS = r.rampS ?? r.runS;
  const openRate = openS > 0 ? (r.rampS !== undefined ? c.threads * c.conns : t.established) / openS : 0;
  out.record({
    type: 'summary',
    mode: c.udp ? 'udp' : c.mode,
    targets: c.targets.map(formatEndpoint),
    threads: c.threads,
    ...(c.shard.count > 1 ? { shard: shardText(c.shard), totalThreads: c.shard.totalThreads } : {}),
    procs: c.procs,
    durationS: Math.round(r.durationS * 1000) / 1000,
    connected: t.established,
    failed: t.failed,
    dropped: t.dropped,
    ...(c.mode === 'connect' ? { cycled: t.cycled } : {}),
    peakConnections: t.peak,
    rampS: r.rampS === undefined ? null : Math.round(r.rampS * 1000) / 1000,
    openPerS: Math.round(openRate),
    openPerSPerThread: Math.round(openRate / c.threads),
    reset: r.reset,
    txBytes: t.txBytes,
    rxBytes: t.rxBytes,
    txBytesPerS: Math.round(txRate),
    rxBytesPerS: Math.round(rxRate),
    errors: t.errors,
    ...(c.udp ? { datagramsOut: t.datagramsOut } : {}),
    ...(c.mode === 'echo' ? { responses: t.responses, latencyUs: lat ? { p50: lat.p50, p90: lat.p90, p99: lat.p99, p999: lat.p999, max: lat.max } : null } : {}),
    complete: r.complete,
  });
  const rows: Record<string, string>[] = c.udp
    ? [
        { '': 'UDP sockets', value: formatCount(t.established), detail: '' },
        { '': 'errors', value: formatCount(Object.values(t.errors).reduce((a, b) => a + b, 0)), detail: formatErrors(t.errors) },
      ]
    : [
        { '': 'established', value: formatCount(t.established), detail: `peak ${formatCount(t.peak)} open at once` },
        {
          '': c.mode === 'connect' ? 'connects' : 'open rate',
          value: `${formatCount(Math.round(openRate))}/s`,
          detail: `${formatCount(Math.round(openRate / c.threads))}/s per thread, ${r.rampS !== undefined ? `all open after ${r.rampS.toFixed(1)} s` : `over ${openS.toFixed(1)} s`}`,
        },
        { '': 'failed', value: formatCount(t.failed), detail: formatErrors(t.errors) },
        { '': 'dropped', value: formatCount(t.dropped), detail: 'closed by the server during the run' },
      ];
  rows.push(
    { '': 'sent', value: formatBytes(t.txBytes), detail: `${formatCount(t.txBytes)} bytes, ${formatRate(txRate)}${c.udp ? `, ${formatCount(t.datagramsOut)} datagrams` : ''}` },
    { '': 'received', value: formatBytes(t.rxBytes), detail: `${formatCount(t.rxBytes)} bytes, ${formatRate(rxRate)}` },
    { '': 'duration', value: `${r.durationS.toFixed(2)} s`, detail: `${r.runS.toFixed(2)} s running, then closing` },
  );
  if (c.mode === 'echo') {
    rows.push({ '': 'responses', value: formatCount(t.responses), detail: `${formatCount(Math.round(t.responses / r.durationS))} per second` });
    if (lat) for (const [k, v] of [['p50', lat.p50], ['p90', lat.p90], ['p99', lat.p99], ['p99.9', lat.p999], ['max', lat.max]] as const) rows.push({ '': `latency ${k}`, value: `${formatCount(v)} µs`, detail: '' });
  }
  out.line('');
  out.table(rows);
}

async function main(argv: string[]): Promise<number> {
  const c = parse(argv);
  if (c === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (c.expect !== undefined) {
    const { control } = await import('./control.js');
    return control({ bus: c.bus!, expect: c.expect, statsS: c.statsS, durationS: c.durationS, json: c.json });
  }
  const member = c.bus && (await (await import('./bus.js')).joinAsClient(c.bus, c.statsS, { threads: c.threads, shard: shardText(c.shard), procs: c.procs, conns: c.conns }));
  const code = await run(c, member);
  if (member) await (await import('./bus.js')).leaveBus(member, c.statsS);
  return code;
}

await runCli('iapp-clt', main, { exit: 'now' });
