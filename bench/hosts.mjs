// The hosts scenario: the libiapp run (32,768 connections: 8 client threads × 4,096) spread over
// hosts and coordinated on the run bus, across network namespaces (scripts/hosts.mjs: a bus
// host, a srv host, 2 client hosts on veth pairs to a bridge) against the same fleet on this
// machine's loopback. srv runs 2 processes; each client host runs its shard (--shard i/2, 4
// threads) in 2 processes; the controller starts them together and reconciles.
//
//   node bench/hosts.mjs [--quick] [--conns N] [--duration S] [--systems namespaces,loopback]
//                        [--json] [--out FILE]
//
// Figures per system: open rate (all connections over the slowest shard's ramp, summed over the
// shards), throughput (the clients' bytes over the run), and whether the bytes reconciled
// exactly (1 = yes). Needs root (namespaces) and nats-server; not part of `npm run bench`.
// --quick: 512 connections per thread (4,096 in all), 3 s.
import { fileURLToPath } from 'node:url';

import { flagNotes, log, logTable, parseOptions, writeJsonLines, writeResults } from './lib/report.mjs';
import { runFleet } from '../scripts/hosts.mjs';

const USAGE = 'node bench/hosts.mjs [--quick] [--conns N] [--duration S] [--systems namespaces,loopback] [--json] [--out FILE]';
const opts = parseOptions(
  { quick: { type: 'boolean', default: false }, conns: { type: 'string' }, duration: { type: 'string' }, systems: { type: 'string', default: 'namespaces,loopback' }, json: { type: 'boolean', default: false }, out: { type: 'string' } },
  USAGE,
);
const conns = Number(opts.conns ?? (opts.quick ? 512 : 4096));
const duration = Number(opts.duration ?? (opts.quick ? 3 : 10));
const out = opts.out ?? fileURLToPath(new URL('./results/hosts.json', import.meta.url));
const started = performance.now();
const flags = { threads: 8, conns, rate: 128, duration, 'srv-procs': 2, 'clt-hosts': 2, 'clt-procs': 2 };
log(`hosts: ${8 * conns} connections (8 threads × ${conns}, 128/s per thread) over 2 client hosts × 2 processes to srv (2 processes), ${duration} s after the ramp-up`);

const rows = [];
for (const system of opts.systems.split(',')) {
  // The run must outlast the ramp (conns / rate seconds) by --duration.
  const runS = Math.ceil(conns / 128) + duration;
  const r = await runFleet({
    loopback: system === 'loopback',
    cltHosts: 2,
    srvThreads: 2,
    srvProcs: 2,
    threads: 8,
    procs: 2,
    conns,
    rate: 128,
    size: 65536,
    duration: runS,
    stats: 1,
    timeoutS: runS + 120,
    prefix: `iappb${process.pid}`,
    // On loopback both client "hosts" share one port range per (source, target): two sources.
    extraClt: system === 'loopback' ? ['--source', '127.0.0.1', '--source', '127.0.0.2'] : [],
  });
  const openPerS = r.clients.reduce((a, c) => a + c.openPerS, 0);
  // Throughput once every connection is open: from the first fleet line with all of them to the
  // last one with both shards still running (else over the whole run, ramp included).
  const all = r.fleet.find((f) => f.connections === 8 * conns);
  const last = r.fleet.filter((f) => f.clients.running === 2).at(-1);
  const gbps = all && last && last.t > all.t ? ((last.txBytes - all.txBytes) * 8) / (last.t - all.t) / 1e9 : (r.control.txBytes * 8) / r.control.durationS / 1e9;
  const base = { scenario: 'hosts', case: `${8 * conns} conns`, system };
  rows.push(
    { ...base, metric: 'open rate', value: openPerS, unit: 'conns/s' },
    { ...base, metric: 'throughput', value: Math.round(gbps * 100) / 100, unit: 'Gbit/s' },
    { ...base, metric: 'reconciled', value: r.control.reconciled ? 1 : 0, unit: 'bool', txBytes: r.control.txBytes, srvRxBytes: r.control.srvRxBytes, connected: r.control.connected, failed: r.control.failed },
  );
}
logTable(
  [['system', 12], ['metric', 12], ['value', 0]],
  rows.map((r) => [r.system, r.metric, `${r.value} ${r.unit}`]),
);
writeResults(out, { scenario: 'hosts', flags: flagNotes(flags), rows, elapsedS: (performance.now() - started) / 1000 });
if (opts.json) writeJsonLines(rows);
