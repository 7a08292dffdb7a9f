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
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildReferences } from './lib/reference.mjs';
import {
  busyBetween,
  cpuTimes,
  listenOverflows,
  machineInfo,
  now,
  pinningPlan,
  procCpuSeconds,
  runClient,
  startServer,
  summarize,
  waitDrained,
  waitQuiet,
} from './lib/harness.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const DRAIN_TIMEOUT_S = 10; // 1024 sockets can hold >1.5 GB at the client's end; a slow sink needs seconds
// Other work on the machine (another build or test run) distorts both sides. Before each run the
// harness waits (up to QUIET_WAIT_S) for the CPUs to be nearly idle; a run during which more than
// FOREIGN_MAX of a core went to other processes is repeated once (at most MAX_RETRIES_SHARE of
// all runs are repeated, to bound the time).
const QUIET_WAIT_S = 5;
const QUIET_BUDGET_S = 30; // total waiting for quiet over the whole benchmark
const FOREIGN_MAX = 0.25;
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

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      runs: { type: 'string' },
      'only-conns': { type: 'string' },
      sizes: { type: 'string' },
      systems: { type: 'string' },
      'noise-floor': { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.error(USAGE);
  process.exit(0);
}

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
const log = (s = '') => process.stderr.write(`${s}\n`);

// ---- systems -------------------------------------------------------------------------------
let ref;
try {
  ref = buildReferences({ log });
} catch (err) {
  console.error(`sink bench: ${err.message}`);
  process.exit(1);
}
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
if (opts.systems) {
  const want = opts.systems.split(',').map((s) => s.trim());
  const unknown = want.filter((w) => !systems.some((s) => s.name === w));
  if (unknown.length) {
    console.error(`--systems: unknown ${unknown.join(', ')} (known: ${systems.map((s) => s.name).join(', ')})`);
    process.exit(2);
  }
  systems = systems.filter((s) => want.includes(s.name));
}
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
    const notes = Object.entries(flags).map(([k, v]) => `${k} ${v}`);
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
function pairedRatios(rows, sys, peer, key) {
  const out = [];
  for (const r of rows.filter((x) => x.system === sys && x.ok)) {
    const p = rows.find((x) => x.system === peer && x.run === r.run && x.ok);
    if (p && p[key] > 0) out.push(r[key] / p[key]);
  }
  return summarize(out);
}

function summarizeCase(c, rows) {
  const names = systems.map((s) => s.name);
  return names.map((name) => {
    const mine = rows.filter((r) => r.system === name && r.ok);
    const sum = {
      system: name,
      kind: systems.find((s) => s.name === name).kind,
      runs: mine.length,
      failedRuns: rows.filter((r) => r.system === name && !r.ok).length,
      throughput: summarize(mine.map((r) => r.gbps)),
      cpuPerGB: summarize(mine.map((r) => r.cpuPerGB)),
      srvUtil: summarize(mine.map((r) => r.srvUtil)),
      cltUtil: summarize(mine.map((r) => r.cltUtil)),
      drainS: summarize(mine.map((r) => r.drainS)),
      // "flag in k/n runs (max v)", over the runs that count
      notes: [...new Set(mine.flatMap((r) => Object.keys(r.flags)))].map((k) => {
        const vs = mine.filter((r) => k in r.flags).map((r) => r.flags[k]);
        const big = vs.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a));
        return `${k} in ${vs.length}/${mine.length} (max ${big})`;
      }),
      vs: {},
    };
    for (const peer of [PEER, REF]) {
      if (peer === name || !names.includes(peer)) continue;
      sum.vs[peer] = { throughput: pairedRatios(rows, name, peer, 'gbps'), cpuPerGB: pairedRatios(rows, name, peer, 'cpuPerGB') };
    }
    return sum;
  });
}

const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const rng = (s, d = 2) => (s.n ? `${f(s.median, d)} (${f(s.min, d)}-${f(s.max, d)})` : '-');
const pct = (s) => (s.n ? `${Math.round(s.median * 100)}%` : '-');

function printTable(c, summary) {
  log('');
  log(`== sink ${c.label}: ${runs} runs x ${duration} s per system, interleaved`);
  const cols = [
    ['system', 10],
    ['GB/s (min-max)', 19],
    ['CPU-s/GB (min-max)', 20],
    ['srvCPU', 7],
    ['cltCPU', 7],
    [`GB/s ÷${PEER}`, 19],
    [`GB/s ÷${REF}`, 19],
    [`CPU/GB ÷${PEER}`, 19],
    [`CPU/GB ÷${REF}`, 19],
    ['notes', 0],
  ];
  log(cols.map(([h, w]) => h.padEnd(w)).join(' '));
  for (const s of summary) {
    const cell = (peer, m) => (s.vs[peer] ? rng(s.vs[peer][m]) : s.system === peer ? '1' : '-');
    const notes = [...s.notes];
    if (s.cltUtil.n && s.cltUtil.min >= 0.95 && s.srvUtil.median < 0.9) notes.push('client-bound');
    if (s.srvUtil.n && s.srvUtil.min >= 0.95) notes.push('server saturated');
    if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s)`);
    const vals = [
      s.system,
      rng(s.throughput),
      rng(s.cpuPerGB, 3),
      pct(s.srvUtil),
      pct(s.cltUtil),
      cell(PEER, 'throughput'),
      cell(REF, 'throughput'),
      cell(PEER, 'cpuPerGB'),
      cell(REF, 'cpuPerGB'),
      notes.join('; '),
    ];
    log(vals.map((v, i) => String(v).padEnd(cols[i][1])).join(' '));
  }
}

function jsonLines(c, summary) {
  const lines = [];
  for (const s of summary) {
    if (!s.runs) continue;
    for (const [metric, unit] of [
      ['throughput', 'GB/s'],
      ['cpuPerGB', 'CPU-s/GB'],
    ]) {
      const st = s[metric];
      const o = { scenario: 'sink', case: c.label, system: s.system, metric, value: st.median, unit, min: st.min, max: st.max, runs: st.n };
      if ((s.kind === 'iapp' || s.kind === 'noise') && s.vs[PEER]) {
        const r = s.vs[PEER][metric];
        Object.assign(o, { peer: PEER, ratio: r.median, ratioMin: r.min, ratioMax: r.max });
      }
      if (s.kind === 'iapp' && s.vs[REF]) {
        const r = s.vs[REF][metric];
        Object.assign(o, { refPeer: REF, refRatio: r.median, refRatioMin: r.min, refRatioMax: r.max });
      }
      lines.push(o);
    }
  }
  return lines;
}

// ---- main ------------------------------------------------------------------------------------
const results = {
  scenario: 'sink',
  started: new Date().toISOString(),
  machine: machineInfo(),
  config: {
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
  },
  runs: [],
  summary: [],
};

function save() {
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 1)}\n`);
}

const failures = new Map(); // consecutive failures per system
const tStart = now();
const plannedRuns = cases.length * systems.length * runs;
let retries = 0;
let disturbed = 0;
let quietWaitedS = 0;
for (const c of cases) {
  const rows = [];
  for (let run = 1; run <= runs; run++) {
    for (const sys of systems) {
      if ((failures.get(sys.name) ?? 0) >= 2) continue;
      let row;
      for (let attempt = 0; ; attempt++) {
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${c.label} run ${run}/${runs} ${sys.name}...`);
        const q = await waitQuiet({ timeoutS: Math.min(QUIET_WAIT_S, Math.max(0, QUIET_BUDGET_S - quietWaitedS)) });
        quietWaitedS += Math.max(0, q.waitedS - 0.2);
        const base = { case: c.label, conns: c.conns, size: c.size, system: sys.name, run, attempt, busyBefore: q.busyCores };
        try {
          row = { ...base, ok: true, ...(await runOnce(sys, c)) };
          if (!q.quiet && q.quiet !== null) {
            row.flags['busy before (cores)'] = Number(f(q.busyCores));
            row.notes.push(`busy before ${f(q.busyCores)} cores`);
          }
          failures.set(sys.name, 0);
        } catch (err) {
          row = { ...base, ok: false, error: err.message, flags: {}, notes: [] };
          const n = (failures.get(sys.name) ?? 0) + 1;
          failures.set(sys.name, n);
          if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
          log(`${sys.name} ${c.label} run ${run} failed: ${err.message}${n >= 2 ? ` (skipping ${sys.name} from now on)` : ''}`);
          break;
        }
        if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
        log(
          `  ${c.label} run ${run} ${sys.name.padEnd(10)} ${f(row.gbps)} GB/s  ${f(row.cpuPerGB, 3)} CPU-s/GB  ` +
            `srv ${Math.round(row.srvUtil * 100)}%  clt ${Math.round(row.cltUtil * 100)}%  drain ${Math.round(row.drainS * 1000)} ms` +
            (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
        );
        if (!(row.foreign > FOREIGN_MAX)) break;
        disturbed++;
        if (attempt >= 1 || retries >= MAX_RETRIES_SHARE * plannedRuns) break;
        retries++;
        row.replaced = true;
        results.runs.push(row);
        log(`  (other processes used ${Math.round(row.foreign * 100)}% of a core during that run: repeating it)`);
      }
      rows.push(row);
      results.runs.push(row);
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const summary = summarizeCase(c, rows);
  results.summary.push({ case: c.label, conns: c.conns, size: c.size, systems: summary });
  printTable(c, summary);
  if (opts.json) for (const o of jsonLines(c, summary)) process.stdout.write(`${JSON.stringify(o)}\n`);
  save();
}
results.finished = new Date().toISOString();
results.elapsedS = now() - tStart;
results.disturbedRuns = disturbed;
results.repeatedRuns = retries;
results.quietWaitS = quietWaitedS;
save();
log('');
log(`GB = 1e9 bytes. throughput = server rxBytes / (client start -> all bytes read); CPU-s/GB = server user+sys CPU`);
log(`(all threads) per GB received; srvCPU/cltCPU = CPU-seconds per wall-second (100% = one core saturated).`);
log(`Ratios: median (min-max) over rounds of system/peer in the same round; for CPU/GB lower is better.`);
log(`client-bound: the client used >=95% of its core while the server idled part of the time; its GB/s then says`);
log(`how well the server lets this client go (wake-ups, window updates), and CPU-s/GB is the figure to compare.`);
log(`Client: ${client}. Pinning: ${pin.note}.`);
if (disturbed) log(`${disturbed} run(s) saw other load (> ${FOREIGN_MAX * 100}% of a core); ${retries} repeated. Noisy machine: treat with care.`);
log(`Results: ${relative(process.cwd(), outFile)} (${Math.round(results.elapsedS)} s)`);
