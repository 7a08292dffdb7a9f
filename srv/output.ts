// What iapp-srv prints: the per-thread totals, the lines and "listening" record that say what it
// serves, a live line (and "stats" record) per interval, and the human summary at the end.
import type { FleetThreadStats } from '../src/cli/fleet.js';
import { formatEndpoint } from '../src/cli/args.js';
import { Output, formatBytes, formatCount, formatErrors, formatRate } from '../src/cli/report.js';
import { appStats, totals } from '../src/cli/totals.js';
import type { ConnectionCounts } from '../src/conns.js';
import { confinement } from '../src/file.js';
import type { FileLimits } from '../src/runtime.js';
import type { Config } from './config.js';
import type { BoundAddress, SrvAppStats, SrvLoopResult } from './loop.js';

/** iapp-srv's counters summed over its threads. */
export interface Totals {
  connections: number;
  accepted: number;
  closed: number;
  rxBytes: number;
  txBytes: number;
  datagramsIn: number;
  requests: number;
  jsBytes: number;
  httpErrors: number;
  /** Passed connections (inetd, Accept=yes) still open. */
  passedOpen: number;
  errors: Record<string, number>;
}

/** A count that may be absent (a thread that has not reported it): 0 then. */
export const num = (v: unknown): number => (typeof v === 'number' ? v : 0);

/** Connections refused by the bounds, from the counts every process shares. */
export const refusedOf = (c: ConnectionCounts): { maxConns: number; perAddress: number } => ({ maxConns: c.refusedMaxConnections, perAddress: c.refusedPerAddress });

const noTotals = (): Totals => ({ connections: 0, accepted: 0, closed: 0, rxBytes: 0, txBytes: 0, datagramsIn: 0, requests: 0, jsBytes: 0, httpErrors: 0, passedOpen: 0, errors: {} });

export function totalsOf(stats: FleetThreadStats[]): Totals {
  return totals(stats, noTotals, (s) => {
    const app = appStats<SrvAppStats>(s);
    const { connections, accepted, closed, datagramsIn, errors } = s;
    return { connections, accepted, closed, rxBytes: s.bytesIn, txBytes: s.bytesOut, datagramsIn, errors, requests: app?.requests, jsBytes: app?.jsBytes, httpErrors: app?.httpErrors, passedOpen: app?.passedOpen };
  });
}

/** An address as iapp-srv shows it. */
export function addressText(a: BoundAddress): string {
  if (a.proto === 'unix') return `unix:${a.address}`;
  const hp = formatEndpoint({ host: a.address, port: a.port ?? 0 });
  return a.proto === 'udp' ? `udp ${hp}` : hp;
}

/** The lines (and the "listening" record) that say what the server serves, once it does. */
export function announce(out: Output, cfg: Config, lim: FileLimits[], first: SrvLoopResult, addresses: BoundAddress[]): void {
  // Before anything else: how many connections this can hold.
  const limitText = lim.every((l) => l.soft === lim[0]!.soft)
    ? `fd limit ${formatCount(lim[0]!.soft)} per process${lim[0]!.before !== lim[0]!.soft ? ` (raised from ${formatCount(lim[0]!.before)})` : ''}` +
      `${lim[0]!.soft < lim[0]!.hard ? `, hard ${formatCount(lim[0]!.hard)}` : ''}, ${cfg.procs} process${cfg.procs > 1 ? 'es' : ''}`
    : `fd limits ${lim.map((l) => formatCount(l.soft)).join(', ')} (per process)`;
  out.line(limitText);
  if (cfg.mode === 'file')
    out.line(`serving ${cfg.root} (paths opened beneath it: ${confinement()}; dotfiles: ${cfg.dotfiles})`);
  out.line(
    `iapp-srv: ${cfg.mode} mode, ${cfg.threads} thread${cfg.threads > 1 ? 's' : ''}` +
      `${cfg.procs > 1 ? ` in ${cfg.procs} processes` : ''}` +
      (cfg.tcp.some((e) => e.path === undefined) ? `, accept ${cfg.accept}` : ''),
  );
  for (const a of first.activated)
    out.line(
      `serving ${a.connection ? 'a connection from ' : ''}${addressText(a)} ` +
        (cfg.inetd && a.fd === 0 ? '(inetd: fd 0)' : `(socket activation: fd ${a.fd}, name ${a.name})`),
    );
  for (const a of addresses.slice(first.activated.length)) out.line(`listening on ${addressText(a)}`);
  out.record({
    type: 'listening',
    addresses: addresses.map((a) => ({ ...a, text: addressText(a) })),
    mode: cfg.mode,
    threads: cfg.threads,
    procs: cfg.procs,
    accept: cfg.accept,
    activated: first.activated.length > 0,
    fdLimit: lim.map((l) => l.soft),
    ...(cfg.mode === 'file' ? { root: cfg.root, confinement: confinement(), dotfiles: cfg.dotfiles } : {}),
    ...(cfg.maxConns > 0 || cfg.maxConnsPerAddr > 0 ? { limits: { maxConns: cfg.maxConns, maxConnsPerAddr: cfg.maxConnsPerAddr } } : {}),
  });

  if (cfg.maxConns > 0 || cfg.maxConnsPerAddr > 0)
    out.line(
      `connections bounded: ${cfg.maxConns > 0 ? `${formatCount(cfg.maxConns)} at once` : 'no total bound'}, ` +
        `${cfg.maxConnsPerAddr > 0 ? `${formatCount(cfg.maxConnsPerAddr)} per source address` : 'no bound per address'} (exact over every process)`,
    );
}

/** The human summary at the end: a table per thread, then totals. */
export function printSummary(
  out: Output,
  cfg: Config,
  r: {
    perThread: FleetThreadStats[];
    tot: Totals;
    durationS: number;
    first: SrvLoopResult;
    passed: number;
    peak: number;
    bounded: boolean;
    refused: { maxConns: number; perAddress: number };
    reset: number;
    overflows: number | undefined;
  },
): void {
  const { perThread, tot, durationS, first, peak, bounded, refused, overflows } = r;
  const errors = tot.errors;
  out.line('');
  out.table(
    perThread.map((s) => ({
      thread: s.thread,
      ...(cfg.procs > 1 ? { proc: s.proc } : {}),
      accepted: s.accepted,
      closed: s.closed,
      'RX bytes': s.bytesIn,
      'RX avg': formatRate(s.bytesIn / (durationS || 1)),
      ...(cfg.udp.length > 0 || first.activated.some((a) => a.proto === 'udp')
        ? { datagrams: num(s.datagramsIn) }
        : {}),
      ...(cfg.mode === 'echo' || cfg.mode === 'file' ? { 'TX bytes': s.bytesOut } : {}),
      ...((cfg.mode === 'http' || cfg.mode === 'file') ? { requests: num((s.app as SrvAppStats | undefined)?.requests) } : {}),
      errors: formatErrors(s.errors),
    })),
  );
  out.line('');
  out.line(
    `total: ${formatBytes(tot.rxBytes)} received (${formatCount(tot.rxBytes)} bytes) in ${durationS.toFixed(2)} s, ` +
      `${formatRate(tot.rxBytes / (durationS || 1))} average`,
  );
  out.line(
    `connections: ${formatCount(tot.accepted)} accepted, ${r.passed > 0 ? `${formatCount(r.passed)} passed, ` : ''}` +
      `${formatCount(tot.closed)} closed, peak ${formatCount(peak)} open` +
      (tot.datagramsIn > 0 || cfg.udp.length > 0 ? `; datagrams: ${formatCount(tot.datagramsIn)}` : ''),
  );
  if (cfg.mode === 'file') out.line(`file: ${formatCount(tot.requests)} requests answered, ${formatCount(tot.httpErrors)} refused or not found`);
  if (cfg.mode === 'http') out.line(`http: ${formatCount(tot.requests)} requests answered, ${formatCount(tot.httpErrors)} refused`);
  if (cfg.mode === 'echo') out.line(`echo: ${formatBytes(tot.txBytes)} sent back (${formatCount(tot.txBytes)} bytes)`);
  if (bounded || refused.maxConns + refused.perAddress > 0)
    out.line(`refused: ${formatCount(refused.maxConns)} over --max-conns, ${formatCount(refused.perAddress)} over --max-conns-per-addr (reset at once)`);
  out.line(`errors: ${formatErrors(errors)}`);
  if (r.reset > 0) out.line(`drain: ${formatCount(r.reset)} connections reset at the deadline`);
  if (overflows)
    out.line(
      `ListenOverflows: +${formatCount(overflows)} (kernel-wide): accept queues overflowed, clients stalled ~1 s per retry; ` +
        'add threads or processes',
    );
}

/** Since the previous sample: its time, totals and threads. */
export interface Sampled {
  t: number;
  totals: Totals;
  perThread: Map<number, FleetThreadStats>;
}

/** One live line (and "stats" record): the rates since `prev`. */
export function printSample(out: Output, cfg: Config, bounded: boolean, t: number, stats: FleetThreadStats[], tot: Totals, refused: { maxConns: number; perAddress: number }, prev: Sampled): void {
  const dt = t - prev.t || 1;
  const rate = (tot.rxBytes - prev.totals.rxBytes) / dt;
  const newConns = tot.accepted - prev.totals.accepted;
  const closed = tot.closed - prev.totals.closed;
  const reqRate = (tot.requests - prev.totals.requests) / dt;
  const dgrams = tot.datagramsIn - prev.totals.datagramsIn;
  out.record({
    type: 'stats',
    t: Number(t.toFixed(3)),
    connections: tot.connections,
    new: newConns,
    closed,
    accepted: tot.accepted,
    rxBytes: tot.rxBytes,
    rxBytesPerS: Math.round(rate),
    txBytes: tot.txBytes,
    datagramsIn: tot.datagramsIn,
    ...((cfg.mode === 'http' || cfg.mode === 'file') ? { requests: tot.requests, requestsPerS: Math.round(reqRate) } : {}),
    refused,
    errors: tot.errors,
    ...(cfg.verbose
      ? {
          perThread: stats.map((s) => ({
            thread: s.thread,
            proc: s.proc,
            connections: s.connections,
            accepted: s.accepted,
            rxBytes: s.bytesIn,
            rxBytesPerS: Math.round((s.bytesIn - (prev.perThread.get(s.thread)?.bytesIn ?? 0)) / dt),
          })),
        }
      : {}),
  });
  out.line(
    `${t.toFixed(1).padStart(7)}s  conns ${formatCount(tot.connections)}  new ${formatCount(newConns)}  closed ${formatCount(closed)}` +
      `  RX ${formatRate(rate)}  total ${formatBytes(tot.rxBytes)}` +
      (cfg.udp.length > 0 || dgrams > 0 ? `  datagrams ${formatCount(dgrams)}` : '') +
      ((cfg.mode === 'http' || cfg.mode === 'file') ? `  ${formatCount(Math.round(reqRate))} req/s` : '') +
      ((cfg.mode === 'echo' || cfg.mode === 'file') ? `  TX total ${formatBytes(tot.txBytes)}` : '') +
      (bounded || refused.maxConns + refused.perAddress > 0 ? `  refused ${formatCount(refused.maxConns + refused.perAddress)}` : ''),
  );
  if (cfg.verbose) {
    for (const s of stats) {
      const r = (s.bytesIn - (prev.perThread.get(s.thread)?.bytesIn ?? 0)) / dt;
      out.line(
        `           thread ${s.thread}${cfg.procs > 1 ? ` (proc ${s.proc})` : ''}: conns ${formatCount(s.connections)}` +
          `  accepted ${formatCount(s.accepted)}  RX ${formatRate(r)}  total ${formatBytes(s.bytesIn)}`,
      );
    }
  }
}

