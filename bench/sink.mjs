// The sink scenario: how fast, and at what CPU cost, a server discards what many clients push.
//
//   node bench/sink.mjs [--quick] [--duration S] [--runs N] [--only-conns 1,64,1024]
//                       [--sizes 16384,65536] [--systems a,b,...] [--noise-floor] [--no-pin]
//                       [--json] [--out FILE]
//
// Every system is a server process speaking one protocol: print `READY <port>` when listening;
// on SIGTERM print {"rxBytes":N,"accepted":A} and exit. The load always comes from the same C
// client (bench/reference/push.c: N connections, one S-byte write per socket per writable wake,
// level-triggered epoll), so servers are compared under identical write scheduling.
//
// One run: start the server, wait for READY, sample its CPU time, run the client for S seconds,
// wait until the kernel holds no more bytes for the server (/proc/net/tcp queues, at most
// DRAIN_TIMEOUT_S), sample its CPU time again, SIGTERM it and read its byte count.
//   throughput = server rxBytes / (client start -> all bytes read)          GB = 1e9 bytes
//   CPU-s/GB   = server user+sys CPU seconds (all threads) / GB received
// Systems are interleaved (A B C A B C ...); ratios are medians of per-run ratios, where a run's
// ratio compares runs of the same round, next to each other in time.
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyBetween, cpuTimes, listenOverflows, now, pinningPlan, procCpuSeconds, runClient, startServer, waitDrained } from './lib/harness.mjs';
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

const USAGE = `usage: node bench/sink.mjs [options]
  --quick              conns 1,1024 x size 65536, 2 s runs (about 1.5 min)
  --duration S         seconds of load per run (default 5; 2 with --quick)
  --runs N             runs per system per case, interleaved (default 3, minimum 3)
  --only-conns LIST    connection counts, e.g. 1024 or 1,64 (default 1,64,1024)
  --sizes LIST         write sizes in bytes (default 16384,65536)
  --systems LIST       only these systems (net-sink,c-read,c-trunc,iapp-sink,iapp-data)
  --noise-floor        add a second net-sink ("net-sink-2"): its ratio to net-sink is the A/A floor
  --no-pin             do not pin server/client to CPUs 0/1 with taskset
  --json               print one JSON line per case, system and metric on stdout
  --out FILE           results file (default bench/results/sink.json)`;

const opts = parseOptions(
  {
    ...interleavedOptions,
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
const connsList = opts['only-conns'] ? numList(opts['only-conns'], '--only-conns') : opts.quick ? [1, 1024] : [1, 64, 1024];
const sizes = opts.sizes ? numList(opts.sizes, '--sizes') : opts.quick ? [65536] : [16384, 65536];
const duration = Number(opts.duration ?? (opts.quick ? 2 : 5));
const runs = Number(opts.runs ?? 3);
if (!(duration > 0 && duration <= 600)) {
  console.error('--duration must be between 0 and 600 seconds');
  process.exit(2);
}
if (!Number.isInteger(runs) || runs < 3 || runs > 100) {
  console.error('--runs must be an integer from 3 to 100 (medians of fewer runs mean little)');
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'sink.json');

// ---- systems -------------------------------------------------------------------------------
const ref = referencesOrExit('sink');
const node = process.execPath;
const iappScript = join(benchDir, 'servers', 'iapp-sink.mjs');
const iapp = (mode) => ({ name: `iapp-${mode}`, kind: 'iapp', cmd: node, args: [iappScript, '--mode', mode, '--threads', '1', '--port', '0'] });
let systems = [
  { name: 'net-sink', kind: 'peer', cmd: node, args: [join(benchDir, 'peers', 'net-sink.mjs'), '--port', '0'] },
  iapp('sink'),
  iapp('data'),
  { name: 'c-read', kind: 'reference', cmd: ref.sink, args: ['--mode', 'read', '--port', '0'] },
  { name: 'c-trunc', kind: 'reference', cmd: ref.sink, args: ['--mode', 'trunc', '--port', '0'] },
];
if (opts['noise-floor']) systems.splice(1, 0, { ...systems[0], name: 'net-sink-2', kind: 'noise' });
systems = selectSystems(systems, opts.systems);
if (systems.some((s) => s.kind === 'iapp') && !existsSync(iappScript)) {
  log(`NOTE: ${relative(root, iappScript)} not found: skipping ${systems.filter((s) => s.kind === 'iapp').map((s) => s.name).join(', ')}`);
  systems = systems.filter((s) => s.kind !== 'iapp');
}
if (!systems.length) {
  console.error('no systems to run');
  process.exit(2);
}
for (const s of systems) s.cwd = root;

const pin = pinningPlan({ disabled: opts['no-pin'] });
const cases = [];
for (const conns of connsList) for (const size of sizes) cases.push({ conns, size, label: `conns=${conns},size=${size}` });
const perRunOverheadS = 1; // quiet check, start, connect, drain, stop: measured ~0.5-1 s
const estimate = cases.length * systems.length * runs * (duration + perRunOverheadS);
const client = 'bench/reference/push.c (C, one epoll thread, one write of <size> bytes per socket per level-triggered writable wake)';
log(`sink bench: ${cases.length} case(s) x ${systems.length} system(s) x ${runs} runs x ${duration} s; about ${Math.ceil(estimate / 60)} min`);
log(`systems: ${systems.map((s) => s.name).join(', ')}`);
log(`client: ${client}`);
log(`pinning: ${pin.note}`);
if (!pin.pinned) log('WARNING: client and server share the CPUs unpinned; expect more noise');

// ---- one run ---------------------------------------------------------------------------------
async function runOnce(sys, c) {
  const ovf0 = listenOverflows();
  const srv = await startServer(sys, { prefix: pin.server });
  try {
    const cpu0 = procCpuSeconds(srv.pid);
    const cores0 = cpuTimes();
    const t0 = now();
    const cl = await runClient(
      {
        name: 'push',
        cmd: ref.push,
        args: ['--host', '127.0.0.1', '--port', String(srv.port), '--conns', String(c.conns), '--size', String(c.size), '--duration', String(duration)],
      },
      { prefix: pin.client, timeoutS: duration + 60 },
    );
    const tClient = now();
    const coresC = cpuTimes();
    const cpuC = procCpuSeconds(srv.pid);
    const dr = await waitDrained(srv.port, { since: tClient, timeoutS: DRAIN_TIMEOUT_S });
    const t1 = dr.endS;
    const cpu1 = procCpuSeconds(srv.pid);
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

// ---- summaries -------------------------------------------------------------------------------
const summarizeCase = (rows) =>
  summarizeSystems(rows, systems, {
    metrics: { throughput: 'gbps', cpuPerGB: 'cpuPerGB', srvUtil: 'srvUtil', cltUtil: 'cltUtil', drainS: 'drainS' },
    peers: [PEER, REF],
    flagMax: true, // "flag in k/n runs (max v)", over the runs that count
  });

function printTable(c, summary) {
  log('');
  log(`== sink ${c.label}: ${runs} runs x ${duration} s per system, interleaved`);
  const cols = [
    ['system', 10],
    ['GB/s (min-max)', 19],
    ['CPU-s/GB (min-max)', 20],
    ['srvCPU', 7],
    ['cltCPU', 7],
    ...ratioColumns([PEER, REF], 19),
    ['notes', 0],
  ];
  const rows = summary.map((s) => {
    const notes = [...s.notes];
    if (s.cltUtil.n && s.cltUtil.min >= 0.95 && s.srvUtil.median < 0.9) notes.push('client-bound');
    if (s.srvUtil.n && s.srvUtil.min >= 0.95) notes.push('server saturated');
    if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s)`);
    return [
      s.system,
      rng(s.throughput),
      rng(s.cpuPerGB, 3),
      pct(s.srvUtil),
      pct(s.cltUtil),
      ...ratioCells(s, [PEER, REF]),
      notes.join('; '),
    ];
  });
  logTable(cols, rows);
}

// ---- main ------------------------------------------------------------------------------------
const results = newResults('sink', {
  duration,
  runs,
  cases: cases.map((c) => c.label),
  systems: systems.map(({ name, kind, cmd, args }) => ({ name, kind, cmd: relative(root, cmd) || cmd, args: args.map((a) => (a.startsWith(root) ? relative(root, a) : a)) })),
  client,
  pinning: pin.note,
  drainTimeoutS: DRAIN_TIMEOUT_S,
  definitions: {
    throughput: 'server rxBytes / (client start -> kernel queues toward the server empty), GB = 1e9 bytes',
    cpuPerGB: 'server user+system CPU seconds, all threads (/proc/<pid>/stat), per GB received',
    ratio: 'median over rounds of system/peer, both measured in the same round (lower is better for cpuPerGB)',
  },
});
const save = () => writeResults(outFile, results);

const runner = interleavedRunner({
  results,
  plannedRuns: cases.length * systems.length * runs,
  maxRetriesShare: MAX_RETRIES_SHARE,
  recordBusy: true,
  progress: true,
});
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(10)} ${f(row.gbps)} GB/s  ${f(row.cpuPerGB, 3)} CPU-s/GB  ` +
      `srv ${Math.round(row.srvUtil * 100)}%  clt ${Math.round(row.cltUtil * 100)}%  drain ${Math.round(row.drainS * 1000)} ms` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
for (const c of cases) {
  const rows = await runner.runCase({ label: c.label, base: { conns: c.conns, size: c.size }, systems, runs, runOnce: (sys) => runOnce(sys, c), logRow: logRun });
  const summary = summarizeCase(rows);
  results.summary.push({ case: c.label, conns: c.conns, size: c.size, systems: summary });
  printTable(c, summary);
  if (opts.json) writeJsonLines(caseJsonLines('sink', c.label, summary, { peer: PEER, ref: REF, peerKinds: ['iapp', 'noise'] }));
  save();
}
runner.finish({ quietWait: true });
save();
log('');
log(`GB = 1e9 bytes. throughput = server rxBytes / (client start -> all bytes read); CPU-s/GB = server user+sys CPU`);
log(`(all threads) per GB received; srvCPU/cltCPU = CPU-seconds per wall-second (100% = one core saturated).`);
log(`Ratios: median (min-max) over rounds of system/peer in the same round; for CPU/GB lower is better.`);
log(`client-bound: the client used >=95% of its core while the server idled part of the time; its GB/s then says`);
log(`how well the server lets this client go (wake-ups, window updates), and CPU-s/GB is the figure to compare.`);
log(`Client: ${client}. Pinning: ${pin.note}.`);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
