// The proxy scenario: a TCP proxy between a C client and a C sink, on loopback: how fast, and at
// what CPU cost, the proxy moves the bytes.
//
//   node bench/proxy.mjs [--quick] [--duration S] [--runs N] [--only-conns 1,64] [--size B]
//                        [--systems iapp-proxy,net-proxy,direct] [--noise-floor] [--pin]
//                        [--json] [--out FILE]
//
//   client (C push) --N conns--> proxy (the system) --N conns--> sink (C, recv MSG_TRUNC)
//
// Systems (proxy processes; each prints `READY <port>` and, on SIGTERM, its counters):
//   iapp-proxy  bench/servers/iapp-proxy.mjs: a runtime with 1 loop thread; per accepted socket
//               `b = await loop.connect(target)`, then `loop.proxy(a, b)` (splice both ways
//               through a kernel pipe, no JS per chunk); both sockets start paused
//   net-proxy   bench/peers/net-proxy.mjs: node:net, `c.pipe(u); u.pipe(c)` per connection
//   net-proxy-2 with --noise-floor: a second net-proxy, whose ratio to net-proxy is the A/A floor
//   direct      no proxy: the client connects straight to the sink, once per case after the
//               rounds: what the client and the sink alone reach on this machine (the ceiling)
// Load (the same for every system, restarted every run): bench/reference/push.c (N connections,
// one S-byte write per socket per level-triggered writable wake, for --duration seconds, then
// close) into the proxy, which connects to bench/reference/sink.c --mode trunc (recv(MSG_TRUNC):
// the cheapest sink there is).
// Not pinned by default: three busy processes on a 2-core machine. With --pin (the proxy on CPU 0,
// client and sink together on CPU 1) the client+sink core is the bottleneck: push -> sink alone on
// one core moved 2.0 GB/s with 1 connection and 0.95 GB/s with 16-64 (unpinned: 4.8 and 9 GB/s),
// about what iapp's proxy reached pinned, while node:net's proxy is confined to one core.
//
// One run: start the sink, then the proxy pointed at it; sample the proxy's CPU (/proc, all its
// threads); run the client; wait until every byte has gone through: nothing queued toward the
// proxy or the sink (/proc/net/tcp) and every sink-side connection past ESTABLISHED (the proxy
// passes the client's end on only after the last byte); sample the CPU again; stop both and
// reconcile: sink rxBytes == client txBytes.
//   throughput = sink rxBytes / (client start -> last byte through the proxy)   GB = 1e9 bytes
//   CPU-s/GB   = proxy user+sys CPU seconds (all threads) over the same span / GB received
// Systems are interleaved (A B A B ...), 3 rounds (2 with --quick); ratios are medians of
// per-round ratios, oriented so that > 1 means iapp is better (iapp/peer for GB/s, peer/iapp for
// CPU-s/GB). Target: >= 1.5x node's throughput at <= half its CPU per GB.
// The script also records what a syscall and a page fault cost on the machine (bench/lib/vmprobe.mjs):
// on VMs where both are slow, the side making more syscalls or touching more fresh memory per byte
// (Node's streams) loses more than on bare metal, and the script prints a note saying so.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenOverflows, now, pinningPlan, procCpuSeconds, runClient, startServer } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { treeCpuSeconds } from './lib/procs.mjs';
import { vmProbe } from './lib/vmprobe.mjs';
import { caseJsonLines, f, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, pct, ratioCells, ratioColumns, referencesOrExit, rng, runnableSystems, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const INDEX = join(root, 'dist', 'src', 'index.js');
const IAPP = 'iapp-proxy';
const PEER = 'net-proxy';
const NOISE = 'net-proxy-2';
const DONE_TIMEOUT_S = 15; // the client's sockets can hold several MB each; a slow proxy needs time
const MAX_RETRIES_SHARE = 0.15;
const DIRECT = 'direct';
const TARGET = { throughput: 1.5, cpu: 2 }; // >= 1.5x node's GB/s, <= 1/2 its CPU-s/GB

const USAGE = `usage: node bench/proxy.mjs [options]
  --quick              conns 1,16; 2 rounds of 1.5 s runs (about 30 s)
  --duration S         seconds of load per run (default 3; 1.5 with --quick)
  --runs N             rounds, each system once per round (default 3; 2 with --quick)
  --only-conns LIST    connection counts (default 1,64; 1,16 with --quick)
  --size B             bytes per client write (default 65536)
  --systems LIST       ${IAPP},${PEER},${DIRECT} (default all; ${NOISE} with --noise-floor);
                       ${DIRECT} (no proxy, the load pair's ceiling) runs once per case
  --noise-floor        add a second ${PEER} ("${NOISE}"): its ratio to ${PEER} is the A/A floor
  --pin                pin the proxy to CPU 0 and client+sink to CPU 1 (default: not pinned)
  --json               one JSON line per case, system and metric on stdout
  --out FILE           results file (default bench/results/proxy.json)`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    runs: { type: 'string' },
    'only-conns': { type: 'string' },
    size: { type: 'string', default: '65536' },
    systems: { type: 'string' },
    'noise-floor': { type: 'boolean', default: false },
    pin: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
  USAGE,
);
const connsList = (opts['only-conns'] ?? (opts.quick ? '1,16' : '1,64')).split(',').map((s) => Number(s.trim()));
const size = Number(opts.size);
const duration = Number(opts.duration ?? (opts.quick ? 1.5 : 3));
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
if (connsList.some((n) => !Number.isInteger(n) || n < 1 || n > 4096) || !Number.isInteger(size) || size < 1 || size > 16 << 20) {
  console.error(`--only-conns: integers 1..4096; --size: 1..16 MiB\n${USAGE}`);
  process.exit(2);
}
if (!(duration > 0 && duration <= 60) || !Number.isInteger(runs) || runs < 1 || runs > 50) {
  console.error(`--duration: (0, 60] seconds; --runs: 1..50\n${USAGE}`);
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'proxy.json');
const ref = referencesOrExit('proxy');

// ---- systems -----------------------------------------------------------------------------------
const iappScript = join(benchDir, 'servers', 'iapp-proxy.mjs');
const peerScript = join(benchDir, 'peers', 'net-proxy.mjs');
let systems = [
  { name: IAPP, kind: 'iapp', script: iappScript, extra: ['--threads', '1'], what: 'runtime with 1 loop thread, loop.proxy(a, b) per connection (splice)' },
  { name: PEER, kind: 'peer', script: peerScript, extra: [], what: 'node:net, c.pipe(u); u.pipe(c) per connection, 1 process' },
  { name: DIRECT, kind: 'ceiling', direct: true, what: 'no proxy: the client straight into the sink, once per case (the load pair\'s ceiling)' },
];
if (opts['noise-floor']) systems.splice(2, 0, { ...systems[1], name: NOISE, kind: 'noise' });
systems = runnableSystems(selectSystems(systems, opts.systems), INDEX);
const pin = pinningPlan({ disabled: !opts.pin });
const pinning = pin.pinned
  ? 'proxy pinned to CPU 0, client and sink to CPU 1 (taskset); harness unpinned and mostly asleep'
  : opts.pin
    ? pin.note
    : `not pinned (the default: client, proxy and sink share the machine's ${os.availableParallelism?.() ?? os.cpus().length} CPUs; --pin confines the client and the sink to one core, which then limits iapp's proxy)`;
const rounded = systems.filter((s) => !s.direct);
const ceiling = systems.filter((s) => s.direct);
const client = `bench/reference/push.c (C, one epoll thread, one ${size}-byte write per socket per writable wake) -> proxy -> bench/reference/sink.c --mode trunc (C, recv(MSG_TRUNC))`;

// ---- when is every byte through? -----------------------------------------------------------------
/**
 * IPv4 loopback TCP sockets of `proxyPort` (client <-> proxy) and `sinkPort` (proxy <-> sink),
 * from /proc/net/tcp: bytes still queued (unread at the proxy or the sink, unacknowledged at the
 * client or the proxy's upstream sockets; a pending FIN counts 1, so <= 1 is empty) and the
 * sink-side sockets still ESTABLISHED (the proxy half-closes toward the sink only after the last
 * byte of that connection, so a socket past ESTABLISHED with nothing queued is through).
 */
function proxyQueues(proxyPort, sinkPort) {
  let text;
  try {
    text = readFileSync('/proc/net/tcp', 'latin1');
  } catch {
    return null;
  }
  const hex = (p) => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  const hp = hex(proxyPort);
  const hs = hex(sinkPort);
  let queued = 0;
  let sinkOpen = 0;
  for (const line of text.split('\n').slice(1)) {
    if (!line.includes(hp) && !line.includes(hs)) continue;
    const fl = line.trim().split(/\s+/);
    if (fl.length < 5 || fl[3] === '0A') continue; // LISTEN
    const [txq, rxq] = fl[4].split(':').map((h) => parseInt(h, 16));
    const local = fl[1];
    const remote = fl[2];
    if (local.endsWith(hp) || local.endsWith(hs)) {
      if (rxq > 1) queued += rxq;
      if (local.endsWith(hs) && fl[3] === '01') sinkOpen++;
    } else if (remote.endsWith(hp) || remote.endsWith(hs)) {
      if (txq > 1) queued += txq;
    }
  }
  return { queued, sinkOpen };
}

/**
 * Polls proxyQueues until nothing is queued and no sink-side socket is ESTABLISHED; bounded by
 * `timeoutS`. The end is taken midway between the last poll that saw bytes in flight (or `since`)
 * and the first that saw none. Resolves { done: true|false|null, queued, sinkOpen, endS }.
 */
async function waitThrough(proxyPort, sinkPort, { since, timeoutS }) {
  let lastBusy = since;
  for (;;) {
    const a = now();
    const q = proxyQueues(proxyPort, sinkPort);
    const b = now();
    if (q === null) {
      await sleep(1000); // cannot observe: a fixed grace period instead
      return { done: null, queued: NaN, sinkOpen: NaN, endS: now() };
    }
    const at = (a + b) / 2;
    if (q.queued === 0 && q.sinkOpen === 0) return { done: true, ...q, endS: (lastBusy + at) / 2 };
    lastBusy = at;
    if (b - since >= timeoutS) return { done: false, ...q, endS: b };
    await sleep(Math.max(5, 3 * (b - a) * 1000));
  }
}

// ---- one run -----------------------------------------------------------------------------------
async function runOnce(sys, conns) {
  const ovf0 = listenOverflows();
  const sink = await startServer({ name: 'c-sink', cmd: ref.sink, args: ['--mode', 'trunc', '--host', '127.0.0.1', '--port', '0'], cwd: root }, { prefix: pin.client });
  let proxy = null;
  try {
    if (!sys.direct) proxy = await startServer({ name: sys.name, cmd: node, args: [sys.script, '--target', `127.0.0.1:${sink.port}`, '--port', '0', ...sys.extra], cwd: root }, { prefix: pin.server });
    // The direct system has no proxy: the client goes to the sink, and the proxy's figures are NaN.
    const target = proxy ?? sink;
    const proxyCpu = () => (proxy ? treeCpuSeconds(proxy.pid) : 0);
    const cpu0 = proxyCpu();
    const sink0 = procCpuSeconds(sink.pid);
    return await measureRun(
      async (window) => {
        const cl = await runClient(
          { name: 'push', cmd: ref.push, args: ['--host', '127.0.0.1', '--port', String(target.port), '--conns', String(conns), '--size', String(size), '--duration', String(duration)] },
          { prefix: pin.client, timeoutS: duration + 60 },
        );
        const clientS = window.close();
        const tClient = window.t0 + clientS;
        const cpuC = proxyCpu();
        const sinkC = procCpuSeconds(sink.pid);
        const th = await waitThrough(target.port, sink.port, { since: tClient, timeoutS: DONE_TIMEOUT_S });
        const cpu1 = proxyCpu();
        const sink1 = procCpuSeconds(sink.pid);
        const wallS = th.endS - window.t0;
        const pres = proxy ? await proxy.stop() : { accepted: conns, failed: 0, aToB: NaN, proxied: NaN };
        proxy = null;
        const sres = await sink.stop();
        const proxyCpuS = sys.direct ? NaN : cpu1 - cpu0;
        const gb = sres.rxBytes / 1e9;
        const flags = {};
        if (sres.rxBytes !== cl.txBytes) flags['rx!=tx'] = sres.rxBytes - cl.txBytes;
        if (cl.connected !== conns) flags['not all connected'] = conns - cl.connected;
        if (cl.broken) flags.broken = cl.broken;
        if (pres.accepted !== conns) flags['proxy accepted!=conns'] = pres.accepted - conns;
        if (sres.accepted !== conns) flags['sink accepted!=conns'] = sres.accepted - conns;
        if (pres.failed) flags[`proxy failures ${JSON.stringify(pres.errors)}`] = pres.failed;
        if (th.done === false) flags[`not through in ${DONE_TIMEOUT_S} s (queued, sink conns open)`] = `${th.queued}/${th.sinkOpen}`;
        if (!(gb > 0)) throw new Error(`${sys.name}: the sink received nothing (client sent ${cl.txBytes})`);
        return {
          // Not other load while the client ran: the proxy, the sink and the client (/proc/stat
          // ticks against exact process times, so undisturbed runs read about -20% to +15%; an
          // unpinned run's softirq work lands on whichever core is idle and counts as other load).
          ownCpuS: cpuC - cpu0 + (sinkC - sink0) + cl.cpuS,
          flags,
          rxBytes: sres.rxBytes,
          txBytes: cl.txBytes,
          proxyAToB: pres.aToB,
          proxied: pres.proxied,
          wallS,
          clientS: cl.durationS,
          throughS: th.endS - tClient,
          proxyCpuS,
          gbps: gb / wallS,
          cpuPerGB: proxyCpuS / gb,
          proxyUtil: proxyCpuS / wallS,
          cltUtil: cl.cpuS / clientS,
          sinkUtil: (sink1 - sink0) / wallS,
        };
      },
      { overflowsSince: ovf0 },
    );
  } catch (err) {
    if (proxy) await proxy.kill();
    await sink.kill();
    throw err;
  }
}

// ---- summaries -----------------------------------------------------------------------------------
const summarizeCase = (rows) =>
  summarizeSystems(rows, systems, {
    metrics: { throughput: 'gbps', cpuPerGB: 'cpuPerGB', proxyUtil: 'proxyUtil', cltUtil: 'cltUtil', sinkUtil: 'sinkUtil', throughS: 'throughS' },
    peers: [PEER, DIRECT],
    errors: true,
    flagMax: true,
  });

function printTable(label, summary) {
  log('');
  log(`== proxy ${label}: ${runs} rounds x ${duration} s of load per system, interleaved`);
  const cols = [
    ['system', 12],
    ['GB/s (min-max)', 19],
    ['CPU-s/GB (min-max)', 21],
    ['proxy', 6],
    ['clt', 5],
    ['sink', 5],
    ['tail ms', 8],
    ...ratioColumns([PEER], 19),
    [`GB/s ÷${DIRECT}`, 17],
    ['notes', 0],
  ];
  logTable(
    cols,
    summary.map((s) => {
      const notes = [...s.notes];
      if (s.proxyUtil.n && s.proxyUtil.min >= 0.95) notes.push('proxy saturated');
      if (pin.pinned && s.cltUtil.n && s.cltUtil.median + s.sinkUtil.median >= 0.9) notes.push('client+sink core busy (>= 90%)');
      if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s): ${[...new Set(s.errors)].join(' / ').slice(0, 300)}`);
      const vsDirect = s.vs[DIRECT]?.throughput.n ? rng(s.vs[DIRECT].throughput) : s.system === DIRECT ? '1' : '-';
      const vsPeer = s.system === DIRECT ? ['-', '-'] : ratioCells(s, [PEER]);
      return [s.system, rng(s.throughput), rng(s.cpuPerGB, 3), pct(s.proxyUtil), pct(s.cltUtil), pct(s.sinkUtil), f(s.throughS.median * 1000, 0), ...vsPeer, vsDirect, notes.join('; ')];
    }),
  );
}

// ---- main --------------------------------------------------------------------------------------
const results = newResults('proxy', {
  runs,
  duration,
  size,
  conns: connsList,
  systems: systems.map((s) => ({ name: s.name, kind: s.kind, script: s.script ? relative(root, s.script) : null, extra: s.extra ?? [], what: s.what, procs: s.direct ? 0 : 1 })),
  client,
  pinning,
  doneTimeoutS: DONE_TIMEOUT_S,
  definitions: {
    throughput: 'sink rxBytes / (client start -> every byte through: nothing queued toward the proxy or the sink in /proc/net/tcp and no sink-side connection ESTABLISHED), GB = 1e9 bytes',
    cpuPerGB: 'proxy user+system CPU seconds, all threads (/proc/<pid>/stat), over the same span, per GB the sink received',
    proxyUtil: 'proxy CPU-seconds per wall-second of the run (100% = one core)',
    tail: 'ms from the client\'s exit to the last byte through (what the proxy still held or had queued)',
    ratio: `median over rounds of the per-round ratio, > 1 = iapp better in the JSON lines: iapp/${PEER} for GB/s, ${PEER}/iapp for CPU-s/GB (the printed "÷${PEER}" columns keep system/peer)`,
  },
});
const save = () => writeResults(outFile, results);
const vm = vmProbe(); // syscall and page-fault cost here: context for the ratios (bench/lib/vmprobe.mjs)
results.config.vm = vm;
if (vm.slow) log(`NOTE: ${vm.slow}.`);
const estimate = connsList.length * (rounded.length * runs + ceiling.length) * (duration + 1.5);
log(`proxy bench: conns ${connsList.join(', ')} x ${rounded.map((s) => s.name).join(', ')} x ${runs} rounds x ${duration} s${ceiling.length ? `, then ${DIRECT} once per case` : ''}; about ${Math.ceil(estimate)} s`);
for (const s of systems) log(`  ${s.name}: ${s.what}`);
log(`load: ${client}`);
log(`pinning: ${pinning}`);
if (!pin.pinned) log('WARNING: client, proxy and sink share the CPUs unpinned; expect more noise');

const runner = interleavedRunner({ results, plannedRuns: connsList.length * (rounded.length * runs + ceiling.length), maxRetriesShare: MAX_RETRIES_SHARE, recordBusy: true, progress: true, failIndent: '  ' });
const pc = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : '-');
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(12)} ${f(row.gbps)} GB/s  ${f(row.cpuPerGB, 3)} CPU-s/GB  proxy ${pc(row.proxyUtil)}  clt ${pc(row.cltUtil)}  sink ${pc(row.sinkUtil)}  tail ${Math.round(row.throughS * 1000)} ms` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
const targetLines = [];
for (const conns of connsList) {
  const label = `conns=${conns},size=${size}`;
  const rows = await runner.runCase({ label, base: { conns, size }, systems: rounded, runs, runOnce: (sys) => runOnce(sys, conns), logRow: logRun });
  // The ceiling once, after the rounds (labelled round 1, so that round 1's proxies get a ratio to it).
  if (ceiling.length) rows.push(...(await runner.runCase({ label, base: { conns, size }, systems: ceiling, runs: 1, runOnce: (sys) => runOnce(sys, conns), logRow: logRun })));
  const summary = summarizeCase(rows);
  results.summary.push({ case: label, conns, size, systems: summary, ...(vm.slow && !results.summary.length ? { note: vm.slow } : {}) });
  printTable(label, summary);
  const iapp = summary.find((s) => s.system === IAPP);
  if (iapp?.vs[PEER]?.throughput.n) {
    const t = iapp.vs[PEER].throughput;
    const c = invertedRatio(iapp.vs[PEER].cpuPerGB);
    const met = t.median >= TARGET.throughput && c.median >= TARGET.cpu;
    targetLines.push(
      `target ${label}: >= ${TARGET.throughput}x ${PEER}'s GB/s at <= 1/${TARGET.cpu} its CPU-s/GB: ${met ? 'met' : 'NOT met'} ` +
        `(GB/s ${f(t.median)}x, rounds ${f(t.min)}-${f(t.max)}; CPU-s/GB ${PEER}/iapp ${f(c.median)}x, rounds ${f(c.min)}-${f(c.max)})`,
    );
  }
  if (opts.json) writeJsonLines(caseJsonLines('proxy', label, summary, { peer: PEER, peerKinds: ['iapp', 'noise'], refKinds: [] }).filter((l) => Number.isFinite(l.value)).map((l) => ({ ...l, conns, pinned: pin.pinned })));
  save();
}
runner.finish({ quietWait: true });
results.targets = targetLines;
save();
log('');
log(`GB = 1e9 bytes. GB/s = sink rxBytes / (client start -> last byte through the proxy); CPU-s/GB = proxy user+sys CPU`);
log(`(all threads) over the same span per GB; proxy/clt/sink = CPU-seconds per wall-second (100% = one core).`);
log(`tail: from the client's exit to the last byte through. "÷${PEER}": median (min-max) over rounds of system/peer in the`);
log(`same round (for CPU/GB lower is better; the JSON lines' ratio is ${PEER}/iapp there, > 1 = iapp better).`);
log(`Load: ${client}. Pinning: ${pinning}.`);
for (const t of targetLines) log(t);
if (vm.slow) log(`NOTE: ${vm.slow}.`);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
const complete = results.summary.every((c) => c.systems.every((s) => s.runs > 0));
if (!complete) log('Some system measured nothing in some case (see the failures above): exit 1.');
process.exit(complete ? 0 : 1);
