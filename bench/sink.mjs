// The sink scenario: how fast, and at what CPU cost, a server discards what many clients push.
//
//   node bench/sink.mjs [--quick] [--duration S] [--runs N] [--only-conns 1,64,1024,4096]
//                       [--only-sizes 1024,16384,65536] [--systems a,b,...] [--noise-floor]
//                       [--no-pin] [--json] [--out FILE]
//
// Every system but iperf3 is a server process speaking one protocol: print `READY <port>` when
// listening; on SIGTERM print {"rxBytes":N,"accepted":A} and exit. The load always comes from the
// same C client (bench/reference/push.c: N connections, one S-byte write per socket per writable
// wake, level-triggered epoll), so servers are compared under identical write scheduling.
//
// One run: start the server, wait for READY, sample its CPU time (whole process tree), run the
// client for D seconds, wait until the kernel holds no more bytes for the server (/proc/net/tcp
// queues, at most DRAIN_TIMEOUT_S), sample its CPU time again, SIGTERM it and read its byte count.
//   throughput = server rxBytes / (client start -> all bytes read)          GB = 1e9 bytes
//   CPU-s/GB   = server user+sys CPU seconds (all threads and processes) / GB received
// Systems are interleaved (A B C A B C ...); ratios are medians of per-run ratios, where a run's
// ratio compares runs of the same round, next to each other in time.
//
// iperf3 (when installed) is the loopback ceiling: its own client and server (one stream per
// connection with -P, -l = the case's write size), pinned like the others; it applies to the cases
// with at most IPERF_MAX_STREAMS connections. Its figures come from its own JSON report.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { busyBetween, cpuTimes, lineReader, listenOverflows, now, pinningPlan, runClient, startServer, track, waitDrained } from './lib/harness.mjs';
import { addonOption, addonUsage, withAddons } from './lib/addon.mjs';
import { treeCpuSeconds, treeKernelEvents } from './lib/procs.mjs';
import { FOREIGN_MAX, caseJsonLines, f, flagNotes, interleavedOptions, interleavedRunner, log, logResultsFile, logTable, newResults, parseOptions, pct, ratioCells, ratioColumns, referencesOrExit, rng, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const DRAIN_TIMEOUT_S = 10; // 1024 sockets can hold >1.5 GB at the client's end; a slow sink needs seconds
// Other work on the machine (another build or test run) distorts both sides. Before each run the
// harness waits (up to 5 s, 30 s in all) for the CPUs to be nearly idle; a run during which more
// than FOREIGN_MAX of a core went to other processes is repeated once (at most MAX_RETRIES_SHARE
// of all runs are repeated, to bound the time). See interleavedRunner in bench/lib/report.mjs.
const MAX_RETRIES_SHARE = 0.1;
const PEER = 'net-sink'; // the node:net baseline
const REF = 'c-trunc'; // the cheapest possible sink
const IPERF_MAX_STREAMS = 128; // iperf3 -P accepts at most 128
const NCPU = os.availableParallelism?.() ?? os.cpus().length; // the harness is not pinned: the machine's CPUs

// Run plan. The headline cases (64 and 1024 connections x 64 KiB) get 3 runs of 2 s per system;
// every other cell 1 run of 1 s (a first look, no spread). At these rates 1-2 s carry 1-10 GB and
// the drain wait ends every run, so a run's figure covers all bytes sent. --runs / --duration
// override the plan for every case.
const HEADLINE = (c) => (c.conns === 64 || c.conns === 1024) && c.size === 65536;
const plan = (c) => (HEADLINE(c) ? { runs: 3, duration: 2 } : { runs: 1, duration: 1 });
const QUICK_PLAN = { runs: 2, duration: 1 };
const QUICK_SYSTEMS = ['iapp-sink', 'iapp-data', 'net-sink', 'c-trunc', 'iperf3'];

const USAGE = `usage: node bench/sink.mjs [options]
  --quick              conns 64,1024 x size 65536; iapp-sink, iapp-data, net-sink, c-trunc (and
                       iperf3); 2 runs of 1 s (about 40 s)
  --duration S         seconds of load per run, every case (default: 2 s for the headline cases
                       64 and 1024 conns x 64 KiB, 1 s for the others)
  --runs N             runs per system per case, interleaved, every case (default: 3 for the
                       headline cases, 1 for the others)
  --only-conns LIST    connection counts (default 1,64,1024,4096)
  --only-sizes LIST    write sizes in bytes (default 1024,16384,65536); --sizes is the old name
  --systems LIST       only these systems (net-sink,net-cluster,iapp-sink,iapp-data,iapp-data-borrow,c-read,c-read-ring,c-trunc,iperf3)
  --noise-floor        add a second net-sink ("net-sink-2"): its ratio to net-sink is the A/A floor
  --no-pin             do not pin server/client to CPUs 0/1 with taskset
  --json               print one JSON line per case, system and metric on stdout
  --out FILE           results file (default bench/results/sink.json)
${addonUsage}`;

const opts = parseOptions(
  {
    ...interleavedOptions,
    ...addonOption,
    'only-sizes': { type: 'string' },
    sizes: { type: 'string' },
  },
  USAGE,
);

function numList(s, name) {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (!xs.length || xs.some((x) => !Number.isInteger(x) || x <= 0)) {
    console.error(`${name}: expected a comma-separated list of positive integers, got '${s}'`);
    process.exit(2);
  }
  return xs;
}
const sizesOpt = opts['only-sizes'] ?? opts.sizes;
const connsList = opts['only-conns'] ? numList(opts['only-conns'], '--only-conns') : opts.quick ? [64, 1024] : [1, 64, 1024, 4096];
const sizes = sizesOpt ? numList(sizesOpt, '--only-sizes') : opts.quick ? [65536] : [1024, 16384, 65536];
const durationOpt = opts.duration === undefined ? undefined : Number(opts.duration);
const runsOpt = opts.runs === undefined ? undefined : Number(opts.runs);
if (durationOpt !== undefined && !(durationOpt > 0 && durationOpt <= 600)) {
  console.error('--duration must be between 0 and 600 seconds');
  process.exit(2);
}
if (runsOpt !== undefined && !(Number.isInteger(runsOpt) && runsOpt >= 1 && runsOpt <= 100)) {
  console.error('--runs must be an integer from 1 to 100 (a median with a range wants 3 or more)');
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'sink.json');

// ---- systems -------------------------------------------------------------------------------
// procs: the threads or processes that do the server's work, for the "more than its cores" note.
const ref = referencesOrExit('sink');
const node = process.execPath;
const iappScript = join(benchDir, 'servers', 'iapp-sink.mjs');
const iperf3 = spawnSync('iperf3', ['--version'], { stdio: 'ignore', timeout: 5000 }).status === 0 ? 'iperf3' : null;
const iapp = (mode, lowat) => ({
  name: `iapp-${mode}${lowat ? '-lowat' : ''}`,
  kind: 'iapp',
  cmd: node,
  args: [iappScript, '--mode', mode, '--threads', '1', '--port', '0', ...(lowat ? ['--lowat', String(lowat)] : [])],
  procs: 1,
  what: `1 loop thread (the main JS thread idles)${lowat ? `; SO_RCVLOWAT ${lowat} (lowWaterMark)` : ''}`,
  // Only when named in --systems: the default matrix measures the default settings.
  optIn: Boolean(lowat),
});
let systems = [
  { name: 'net-sink', kind: 'peer', cmd: node, args: [join(benchDir, 'peers', 'net-sink.mjs'), '--port', '0'], procs: 1, what: '1 process' },
  {
    name: 'net-cluster',
    kind: 'peer',
    cmd: node,
    args: [join(benchDir, 'peers', 'net-cluster.mjs'), '--workers', String(NCPU), '--port', '0'],
    procs: NCPU + 1,
    what: `node:cluster, primary + ${NCPU} workers (one per CPU of the machine); Node 20 has no reusePort: the primary accepts every connection and hands it to a worker (round-robin)`,
  },
  iapp('sink'),
  iapp('data'),
  {
    ...iapp('data'),
    name: 'iapp-data-borrow',
    args: [...iapp('data').args, '--borrow'],
    what: '1 loop thread; onData(fn, { borrow: true }): chunks lent from one arena the loop reads into again after each batch',
  },
  iapp('sink', 256 * 1024),
  { name: 'c-read', kind: 'reference', cmd: ref.sink, args: ['--mode', 'read', '--port', '0'], procs: 1, what: '1 thread, read() into a buffer' },
  // What reads into fresh memory cost without JS: a collected program's chunks live until the next
  // scavenge (~28 MiB apart at 2.4 GB/s here), so every read writes memory the caches have lost.
  {
    name: 'c-read-ring',
    kind: 'reference',
    cmd: ref.sink,
    args: ['--mode', 'read', '--ring-mb', '32', '--port', '0'],
    procs: 1,
    what: '1 thread, read() into successive places of a 32 MiB ring (cold memory, as fresh arenas are); 64 KiB cases only',
    appliesTo: (c) => c.size === 65536 && (c.conns === 64 || c.conns === 1024),
  },
  { name: 'c-trunc', kind: 'reference', cmd: ref.sink, args: ['--mode', 'trunc', '--port', '0'], procs: 1, what: '1 thread, recv(MSG_TRUNC)' },
  {
    name: 'iperf3',
    kind: 'ceiling',
    cmd: 'iperf3',
    args: ['-s'],
    procs: 1,
    what: `iperf3 server and client (single-threaded), -P <conns> -l <size>; cases with <= ${IPERF_MAX_STREAMS} connections`,
    appliesTo: (c) => c.conns <= IPERF_MAX_STREAMS,
    runOnce: (sys, c) => runIperf(c),
  },
];
if (opts['noise-floor']) systems.splice(1, 0, { ...systems[0], name: 'net-sink-2', kind: 'noise' });
systems = selectSystems(systems, opts.systems ?? (opts.quick ? QUICK_SYSTEMS : systems.filter((s) => !s.optIn).map((s) => s.name)).join(','));
if (systems.some((s) => s.kind === 'iapp') && !existsSync(iappScript)) {
  log(`NOTE: ${relative(root, iappScript)} not found: skipping ${systems.filter((s) => s.kind === 'iapp').map((s) => s.name).join(', ')}`);
  systems = systems.filter((s) => s.kind !== 'iapp');
}
systems = withAddons(systems, opts.addon);
if (!iperf3 && systems.some((s) => s.name === 'iperf3')) {
  log('NOTE: iperf3 is not installed: no loopback ceiling row (apt-get install iperf3 to add it)');
  systems = systems.filter((s) => s.name !== 'iperf3');
}
if (!systems.length) {
  console.error('no systems to run');
  process.exit(2);
}
for (const s of systems) s.cwd = root;

const pin = pinningPlan({ disabled: opts['no-pin'] });
const coresGiven = pin.pinned ? 1 : NCPU;
const oversubscribed = (s) => (s.procs > coresGiven ? `${s.procs} procs on ${coresGiven} core${coresGiven > 1 ? 's' : ''}` : null);
const cases = [];
for (const conns of connsList)
  for (const size of sizes) {
    const c = { conns, size, label: `conns=${conns},size=${size}` };
    const p = opts.quick ? QUICK_PLAN : plan(c);
    c.runs = runsOpt ?? p.runs;
    c.duration = durationOpt ?? p.duration;
    c.systems = systems.filter((s) => !s.appliesTo || s.appliesTo(c));
    cases.push(c);
  }
const perRunOverheadS = 1; // quiet check, start, connect, drain, stop: measured ~0.5-1 s
const estimate = cases.reduce((a, c) => a + c.systems.length * c.runs * (c.duration + perRunOverheadS), 0);
const client = 'bench/reference/push.c (C, one epoll thread, one write of <size> bytes per socket per level-triggered writable wake)';
log(`sink bench: ${cases.length} case(s) x ${systems.length} system(s); about ${Math.ceil(estimate / 60)} min`);
for (const c of cases) log(`  ${c.label}: ${c.runs} run(s) x ${c.duration} s of ${c.systems.map((s) => s.name).join(', ')}`);
log(`systems:`);
for (const s of systems) log(`  ${s.name}: ${s.what}`);
log(`client: ${client}`);
log(`pinning: ${pin.note}`);
for (const s of systems.filter(oversubscribed))
  log(`NOTE: ${s.name} runs ${s.procs} processes on the ${coresGiven} core(s) a server is given${pin.pinned ? ' (all pinned to CPU 0, the same budget as every other server; a cluster cannot use fewer cores than workers, so this is its cost of scheduling them on one)' : ''}`);
if (!pin.pinned) log('WARNING: client and server share the CPUs unpinned; expect more noise');

// ---- one run ---------------------------------------------------------------------------------
async function runServer(sys, c) {
  const ovf0 = listenOverflows();
  const srv = await startServer(sys, { prefix: pin.server });
  try {
    const cpu0 = treeCpuSeconds(srv.pid);
    const ev0 = treeKernelEvents(srv.pid);
    const cores0 = cpuTimes();
    const t0 = now();
    const cl = await runClient(
      {
        name: 'push',
        cmd: ref.push,
        args: ['--host', '127.0.0.1', '--port', String(srv.port), '--conns', String(c.conns), '--size', String(c.size), '--duration', String(c.duration)],
      },
      { prefix: pin.client, timeoutS: c.duration + 60 },
    );
    const tClient = now();
    const coresC = cpuTimes();
    const cpuC = treeCpuSeconds(srv.pid);
    const dr = await waitDrained(srv.port, { since: tClient, timeoutS: DRAIN_TIMEOUT_S });
    const t1 = dr.endS;
    const cpu1 = treeCpuSeconds(srv.pid);
    const ev1 = treeKernelEvents(srv.pid);
    const cores1 = cpuTimes();
    const res = await srv.stop();
    const ovf1 = listenOverflows();
    const wallS = t1 - t0;
    const srvCpuS = cpu1 - cpu0;
    // CPU used while the client ran by anything but the server and the client (other processes;
    // also softirq work done on an otherwise idle core). Only the client phase: during the drain
    // the kernel keeps sending for the closed client sockets, charged to no process. /proc/stat
    // counts in ticks while process times are exact: undisturbed runs read about -20% to +15%.
    const foreign = (busyBetween(cores0, coresC) - (cpuC - cpu0) - cl.cpuS) / (tClient - t0);
    const gb = res.rxBytes / 1e9;
    // Flags: name -> magnitude, for the per-run log line and the per-case summary.
    const flags = {};
    if (res.rxBytes !== cl.txBytes) flags['rx!=tx'] = res.rxBytes - cl.txBytes;
    if (dr.drained === false) flags[`not drained in ${DRAIN_TIMEOUT_S} s`] = dr.queued;
    if (cl.connected !== c.conns) flags['not all connected'] = c.conns - cl.connected;
    if (cl.broken) flags.broken = cl.broken;
    if (res.accepted !== c.conns) flags['accepted!=conns'] = res.accepted - c.conns;
    if (ovf1 - ovf0 > 0) flags.ListenOverflows = ovf1 - ovf0;
    if (foreign > FOREIGN_MAX) flags['other load (% of a core)'] = Math.round(foreign * 100);
    const notes = flagNotes(flags);
    return {
      rxBytes: res.rxBytes,
      txBytes: cl.txBytes,
      accepted: res.accepted,
      connected: cl.connected,
      failed: cl.failed,
      broken: cl.broken,
      wallS,
      clientS: cl.durationS,
      drainS: t1 - tClient,
      srvCpuS,
      cltCpuS: cl.cpuS,
      gbps: gb / wallS,
      cpuPerGB: gb > 0 ? srvCpuS / gb : NaN,
      faultsPerGB: gb > 0 ? (ev1.faults - ev0.faults) / gb : NaN,
      sleepsPerGB: gb > 0 ? (ev1.sleeps - ev0.sleeps) / gb : NaN,
      srvUtil: srvCpuS / wallS,
      cltUtil: cl.cpuS / cl.durationS,
      listenOverflows: ovf1 - ovf0,
      foreign,
      // Whole-core view (includes softirq work done while a core would otherwise idle, and
      // anything else scheduled there): busy and softirq seconds per CPU during the run.
      cores: cores0 && cores1 ? cores1.map((c, i) => ({ busyS: c.busy - cores0[i].busy, softirqS: c.softirq - cores0[i].softirq })) : null,
      flags,
      notes,
    };
  } catch (err) {
    await srv.kill();
    throw err;
  }
}

/** A free TCP port on 127.0.0.1 (for iperf3, which cannot report a port the kernel chose). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * One iperf3 run: `iperf3 -s` pinned like the servers, `iperf3 -c -P <conns> -l <size> -t <d> -J`
 * pinned like the client. Throughput is its receiver's bytes / seconds; CPU-s/GB the server's CPU
 * (process, from /proc) over the whole test (setup included) per GB received.
 */
async function runIperf(c) {
  const port = await freePort();
  const [cmd, ...pre] = [...pin.server, 'iperf3'];
  const child = track(spawn(cmd, [...pre, '-s', '--forceflush', '-B', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  try {
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('iperf3 -s: not listening within 10 s')), 10_000);
      lineReader(child.stdout, (l) => l.includes('Server listening') && (clearTimeout(t), resolve()));
      child.once('exit', (code) => (clearTimeout(t), reject(new Error(`iperf3 -s exited (code ${code})`))));
    });
    const cpu0 = treeCpuSeconds(child.pid);
    const cores0 = cpuTimes();
    const t0 = now();
    const [ccmd, ...cpre] = [...pin.client, 'iperf3'];
    const args = [...cpre, '-c', '127.0.0.1', '-p', String(port), '-P', String(c.conns), '-l', String(c.size), '-t', String(c.duration), '-i', '0', '-J'];
    const { stdout } = await promisify(execFile)(ccmd, args, { timeout: (c.duration + 30) * 1000, maxBuffer: 64 << 20 });
    const t1 = now();
    const cpu1 = treeCpuSeconds(child.pid);
    const cores1 = cpuTimes();
    const j = JSON.parse(stdout);
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    const rx = j.end.sum_received;
    const gb = rx.bytes / 1e9;
    const srvCpuS = cpu1 - cpu0;
    const cltUtil = j.end.cpu_utilization_percent.host_total / 100;
    const foreign = (busyBetween(cores0, cores1) - srvCpuS - cltUtil * rx.seconds) / (t1 - t0);
    const flags = {}; // (its sender's count includes bytes in flight at the end: rx < tx is normal)
    if (foreign > FOREIGN_MAX) flags['other load (% of a core)'] = Math.round(foreign * 100);
    return {
      rxBytes: rx.bytes,
      txBytes: j.end.sum_sent.bytes,
      wallS: t1 - t0,
      clientS: rx.seconds,
      drainS: 0,
      srvCpuS,
      gbps: gb / rx.seconds,
      cpuPerGB: gb > 0 ? srvCpuS / gb : NaN,
      srvUtil: srvCpuS / (t1 - t0),
      cltUtil,
      foreign,
      flags,
      notes: flagNotes(flags),
    };
  } finally {
    child.kill('SIGKILL');
  }
}

const runOnce = (sys, c) => (sys.runOnce ? sys.runOnce(sys, c) : runServer(sys, c));

// ---- summaries -------------------------------------------------------------------------------
const summarizeCase = (c, rows) =>
  summarizeSystems(rows, c.systems, {
    metrics: { throughput: 'gbps', cpuPerGB: 'cpuPerGB', faultsPerGB: 'faultsPerGB', sleepsPerGB: 'sleepsPerGB', srvUtil: 'srvUtil', cltUtil: 'cltUtil', drainS: 'drainS' },
    peers: [PEER, REF],
    flagMax: true, // "flag in k/n runs (max v)", over the runs that count
  });

function printTable(c, summary) {
  log('');
  log(`== sink ${c.label}: ${c.runs} run(s) x ${c.duration} s per system, interleaved`);
  const cols = [
    ['system', 11],
    ['GB/s (min-max)', 19],
    ['CPU-s/GB (min-max)', 20],
    ['srvCPU', 7],
    ['cltCPU', 7],
    ['faults/GB', 10],
    ['sleeps/GB', 10],
    ...ratioColumns([PEER, REF], 19),
    ['notes', 0],
  ];
  const rows = summary.map((s) => {
    const notes = [...s.notes];
    const over = oversubscribed(systems.find((x) => x.name === s.system));
    if (over) notes.push(over);
    if (s.cltUtil.n && s.cltUtil.min >= 0.95 && s.srvUtil.median < 0.9) notes.push('client-bound');
    if (s.srvUtil.n && s.srvUtil.min >= 0.95) notes.push('server saturated');
    if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s)`);
    return [
      s.system,
      rng(s.throughput),
      rng(s.cpuPerGB, 3),
      pct(s.srvUtil),
      pct(s.cltUtil),
      s.faultsPerGB?.n ? f(s.faultsPerGB.median, 0) : '-',
      s.sleepsPerGB?.n ? f(s.sleepsPerGB.median, 0) : '-',
      ...ratioCells(s, [PEER, REF]),
      notes.join('; '),
    ];
  });
  logTable(cols, rows);
}

/** One table over all cases: each system's median GB/s and CPU-s/GB, and iapp's ratios to node:net. */
function printOverview() {
  const names = systems.map((s) => s.name);
  const cell = (sum, name, metric, d) => {
    const s = sum.systems.find((x) => x.system === name);
    return s?.runs ? f(s[metric].median, d) : '-';
  };
  const ratio = (sum, name, metric) => {
    const r = sum.systems.find((x) => x.system === name)?.vs[PEER]?.[metric];
    return r?.n ? f(r.median) : '-';
  };
  const iappNames = systems.filter((s) => s.kind === 'iapp').map((s) => s.name);
  log('');
  log(`== sink summary: median GB/s per case (runs x seconds per case above)`);
  const cols = [['case', 24], ...names.map((n) => [n, Math.max(9, n.length + 1)]), ...iappNames.map((n) => [`${n}÷net`, n.length + 6]), ['', 0]];
  logTable(cols, results.summary.map((sum) => [sum.case, ...names.map((n) => cell(sum, n, 'throughput', 2)), ...iappNames.map((n) => ratio(sum, n, 'throughput')), '']));
  log('');
  log(`== sink summary: median server CPU-s per GB (lower is better; iapp÷net < 1 means iapp uses less)`);
  logTable(cols, results.summary.map((sum) => [sum.case, ...names.map((n) => cell(sum, n, 'cpuPerGB', 3)), ...iappNames.map((n) => ratio(sum, n, 'cpuPerGB')), '']));
}

// ---- main ------------------------------------------------------------------------------------
const results = newResults('sink', {
  cases: cases.map((c) => ({ case: c.label, runs: c.runs, duration: c.duration, systems: c.systems.map((s) => s.name) })),
  systems: systems.map(({ name, kind, cmd, args, procs, what, backend }) => ({
    name,
    kind,
    ...(backend ? { addon: backend } : {}),
    cmd: relative(root, cmd) || cmd,
    args: args.map((a) => (a.startsWith(root) ? relative(root, a) : a)),
    procs,
    what,
    oversubscribed: oversubscribed({ procs }),
  })),
  coresPerServer: coresGiven,
  client,
  pinning: pin.note,
  drainTimeoutS: DRAIN_TIMEOUT_S,
  definitions: {
    throughput: 'server rxBytes / (client start -> kernel queues toward the server empty), GB = 1e9 bytes',
    cpuPerGB: 'server user+system CPU seconds, all threads and processes of its tree (/proc/<pid>/stat), per GB received',
    faultsPerGB: "server minor page faults (first touches of fresh memory: read buffers the allocator gave back to the kernel, new heap), all threads of its tree, per GB received; not for iperf3",
    sleepsPerGB: 'server voluntary context switches (a thread blocked, in epoll_wait mostly: each is a wake-up), all threads of its tree, per GB received; GB / sleeps = bytes read per wake; not for iperf3',
    ratio: 'median over rounds of system/peer, both measured in the same round (lower is better for cpuPerGB)',
  },
});
const save = () => writeResults(outFile, results);

const runner = interleavedRunner({
  results,
  plannedRuns: cases.reduce((a, c) => a + c.systems.length * c.runs, 0),
  maxRetriesShare: MAX_RETRIES_SHARE,
  recordBusy: true,
  progress: true,
});
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(11)} ${f(row.gbps)} GB/s  ${f(row.cpuPerGB, 3)} CPU-s/GB  ` +
      `srv ${Math.round(row.srvUtil * 100)}%  clt ${Math.round(row.cltUtil * 100)}%  drain ${Math.round(row.drainS * 1000)} ms` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
for (const c of cases) {
  const rows = await runner.runCase({ label: c.label, base: { conns: c.conns, size: c.size }, systems: c.systems, runs: c.runs, runOnce: (sys) => runOnce(sys, c), logRow: logRun });
  const summary = summarizeCase(c, rows);
  results.summary.push({ case: c.label, conns: c.conns, size: c.size, systems: summary });
  printTable(c, summary);
  if (opts.json) writeJsonLines(caseJsonLines('sink', c.label, summary, { peer: PEER, ref: REF, peerKinds: ['iapp', 'noise'] }));
  save();
}
runner.finish({ quietWait: true });
save();
printOverview();
log('');
log(`GB = 1e9 bytes. throughput = server rxBytes / (client start -> all bytes read); CPU-s/GB = server user+sys CPU`);
log(`(all threads and processes) per GB received; srvCPU/cltCPU = CPU-seconds per wall-second (100% = one core saturated).`);
log(`faults/GB: the server's minor page faults per GB (fresh memory touched); sleeps/GB: its threads' voluntary context`);
log(`switches per GB (each a block in epoll_wait or a lock, so a wake-up): 1e9 / sleeps/GB = bytes per wake.`);
log(`Ratios: median (min-max) over rounds of system/peer in the same round; for CPU/GB lower is better.`);
log(`client-bound: the client used >=95% of its core while the server idled part of the time; its GB/s then says`);
log(`how well the server lets this client go (wake-ups, window updates), and CPU-s/GB is the figure to compare.`);
log(`Client: ${client}. Pinning: ${pin.note}.`);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
