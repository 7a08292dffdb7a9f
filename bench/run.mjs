// The one-command benchmark: runs every scenario, keeps what each measured, writes a report.
//
//   node bench/run.mjs [--quick] [--only NAME[,NAME]]... [--addon kqueue] [--json] [--report-only]
//   (with --only, the report keeps the other scenarios' figures from the earlier run, marked so)
//   npm run bench [-- --quick]
//
// Scenarios (each a script of its own, run one after the other, never two at once):
//   sink         bench/sink.mjs         a server discarding what a C client pushes (GB/s, CPU-s/GB)
//   push         bench/push.mjs         iapp-clt pushing into a C sink (GB/s, client CPU-s/GB)
//   connections  bench/connections.mjs  server RSS per idle connection (32,768; 4,096 with --quick)
//   http         bench/http.mjs         iapp-srv --mode http vs node:http (skipped if not there)
//   udp          bench/udp.mjs          iapp-srv --udp --mode echo vs a node:dgram echo, 64 and 1024 B datagrams (req/s, req per server CPU-s; target >= 3x)
//   messaging    bench/messaging.mjs    cross-thread messages vs worker_threads MessagePort (msgs/s, round trip µs; round trip also vs a C eventfd ping-pong, target <= 1.5x C)
//   messaging-object  the same script with --payload object: small plain objects instead of bytes
//   timers       bench/timers.mjs       loop timers vs setTimeout/clearTimeout (arm+disarm, arm+fire /s; bytes per timer)
//   proxy        bench/proxy.mjs        C client -> loop.proxy() vs node:net pipe() -> C sink (GB/s, proxy CPU-s/GB)
//   sendfile     bench/sendfile.mjs     a cached 1 GiB file to 1 and 64 clients: socket.sendFile vs createReadStream().pipe (GB/s, CPU-s/GB)
//   copy         bench/copy.mjs         a cached 1 GiB file: loop.copyFile vs fs.promises.copyFile and a stream copy (GB/s)
//   disk         bench/disk.mjs         file reads via a loop's File (io_uring, pool) vs fs.promises FileHandle (reads/s, GB/s, CPU-s per M reads/GB)
//   connects     bench/connects.mjs     iapp-clt's connect rate (open+close, open+hold) vs a C connect loop (connects/s, client CPU-s per 1k; target >= 0.8x C)
//   fairness     bench/fairness.mjs     a loop under native load (push, sink, proxy) with its turn budget vs without (timer lateness, call round trip ms; GB/s)
// Budget on a 2-core machine: about 19 minutes, --quick about 7. SCENARIOS below bounds each
// scenario (run a scenario's script directly for its other options).
//
// Every scenario script takes --quick, --json and --out FILE; this runner adds --json and --out
// bench/results/<name>.json (the file the script writes by default, so a later direct run of the
// script replaces it), passes --quick through, and --addon to the scenarios that take it (sink,
// messaging, messaging-object, timers: their iapp systems again on the kqueue build, as
// <system>-kqueue rows, information only and left out of the headline), shows the scenario's stderr (progress and tables)
// on its own stderr with a "[name]" prefix and collects its stdout.
//
// The JSON-lines contract (each scenario's stdout with --json; this runner's stdout with --json):
// one object per line, no other output on stdout,
//   {"scenario", "case", "system", "metric", "value", "unit", ...}
// where value is the median over the scenario's runs (min, max and runs next to it when it repeats
// runs) and, on the rows of iapp's systems,
//   "peer"  the system it is compared with (node:net, node:http, ...), measured in the same run,
//   "ratio" iapp against that peer, ORIENTED SO THAT ratio > 1 MEANS IAPP IS BETTER: iapp/peer for
//           throughput-like metrics, peer/iapp for costs (CPU per GB or per request, bytes per
//           connection, latency). sink and push get this from caseJsonLines (COST_METRICS in
//           bench/lib/report.mjs); http and connections orient their own. With repeated runs it
//           is the median of per-round ratios (each round: iapp and peer next to each other in
//           time), with ratioMin/ratioMax; full runs repeat 3 times, --quick runs may repeat twice.
// Optional: "refPeer"/"refRatio"/"refRatioMin"/"refRatioMax", the same against the C reference.
//
// Writes bench/results/latest.json (machine, command line, per scenario its arguments, JSON lines,
// results file, duration, exit status and peak concurrently busy threads) and
// bench/results/REPORT.md with its charts (bench/results/*.svg). --report-only rewrites the report
// and charts from latest.json without running anything. Exit status: 0 if every scenario that ran
// exited 0, else 1.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lineChart } from './lib/chart.mjs';
import { log, parseOptions, writeResults } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const resultsDir = join(benchDir, 'results');
const latestFile = join(resultsDir, 'latest.json');
const reportFile = join(resultsDir, 'REPORT.md');

// Per scenario: its extra arguments (full run, --quick) and the expected seconds, for progress and
// the time-out (3x + 2 min). The scenarios' own defaults keep to the budget: sink runs its headline
// cases (64 and 1024 conns x 64 KiB) 3 times and the rest of its matrix once; http runs 3 s
// instead of its default 5 s per run here.
const SCENARIOS = [
  { name: 'sink', full: [], quick: ['--quick'], estS: [270, 50], addon: true },
  { name: 'push', full: [], quick: ['--quick', '--duration', '1'], estS: [120, 35] },
  { name: 'connections', full: [], quick: ['--quick'], estS: [130, 60] },
  { name: 'http', full: ['--duration', '3'], quick: ['--quick'], estS: [150, 30] },
  { name: 'udp', full: [], quick: ['--quick'], estS: [60, 25] },
  { name: 'messaging', full: [], quick: ['--quick'], estS: [66, 28], addon: true },
  // The same script with small plain objects instead of bytes (JSON where it equals structuredClone).
  { name: 'messaging-object', script: 'messaging', full: ['--payload', 'object', '--cases', 'oneway-1,rtt'], quick: ['--quick', '--payload', 'object', '--cases', 'oneway-1'], estS: [35, 15], addon: true },
  { name: 'timers', full: [], quick: ['--quick'], estS: [50, 25], addon: true },
  { name: 'proxy', full: [], quick: ['--quick'], estS: [55, 25] },
  { name: 'sendfile', full: [], quick: ['--quick'], estS: [60, 25] },
  { name: 'copy', full: [], quick: ['--quick'], estS: [70, 20] },
  { name: 'disk', full: [], quick: ['--quick'], estS: [45, 20] },
  { name: 'connects', full: [], quick: ['--quick'], estS: [60, 20] },
  { name: 'fairness', full: [], quick: ['--quick'], estS: [180, 80] },
];
const NAMES = SCENARIOS.map((s) => s.name);
const ADDON_NAMES = SCENARIOS.filter((s) => s.addon).map((s) => s.name);

const USAGE = `usage: node bench/run.mjs [options]
  --quick          every scenario's --quick (about 7 min instead of about 19)
  --only LIST      only these scenarios (${NAMES.join(', ')}); repeatable or comma-separated
  --addon kqueue   run the iapp systems of ${ADDON_NAMES.join(', ')} again
                   on the kqueue build over libkqueue (the scenario builds it: scripts/build-kqueue.mjs),
                   as <system>-kqueue rows: information, left out of the headline; the other
                   scenarios ignore it (default: epoll, the default build only)
  --json           print the scenarios' JSON lines on stdout (progress stays on stderr)
  --report-only    rewrite REPORT.md and the charts from bench/results/latest.json; run nothing`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true },
    addon: { type: 'string', default: 'epoll' },
    json: { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
  },
  USAGE,
);
const only = opts.only?.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
const unknown = (only ?? []).filter((n) => !NAMES.includes(n));
if (unknown.length) {
  console.error(`--only: unknown ${unknown.join(', ')} (known: ${NAMES.join(', ')})\n${USAGE}`);
  process.exit(2);
}

const addons = opts.addon.split(',').map((s) => s.trim()).filter(Boolean);
const badAddon = addons.filter((a) => a !== 'epoll' && a !== 'kqueue');
if (badAddon.length || !addons.length) {
  console.error(`--addon: unknown ${badAddon.join(', ') || "''"} (known: epoll, kqueue)\n${USAGE}`);
  process.exit(2);
}
/** The --addon arguments a scenario gets: none for the default build, or for a scenario without the option. */
const addonArgs = (sc) => (sc.addon && addons.includes('kqueue') ? ['--addon', addons.join(',')] : []);

// `--json | head`: once the reader is gone, keep running (and writing the files) without stdout.
let stdoutOpen = true;
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err;
  stdoutOpen = false;
});
const now = () => performance.now() / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- threads: how many threads of a scenario's process tree were busy at once -----------------
const TICK = 100; // USER_HZ on Linux
function readStat(path) {
  try {
    const s = readFileSync(path, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), startS: Number(f[19]) / TICK };
  } catch {
    return null;
  }
}
const uptimeS = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
/** Pids of `pid` and all its descendants. */
function tree(pid) {
  const kids = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(`/proc/${d}/stat`);
    if (st) kids.set(st.ppid, [...(kids.get(st.ppid) ?? []), Number(d)]);
  }
  const out = [];
  for (const stack = [pid]; stack.length; ) {
    const p = stack.pop();
    out.push(p);
    stack.push(...(kids.get(p) ?? []));
  }
  return out;
}
/**
 * Samples the tree every `everyMs`: a thread counts as busy in a sample if it used more than a
 * quarter of a core since the previous sample (or since it started, if it is new). A thread that
 * lives and dies between two samples is missed. Returns stop() -> { peakBusy, peakThreads,
 * peakCores (the tree's CPU in a sample, in cores), samples }.
 */
function threadSampler(pid, everyMs = 1000) {
  if (process.platform !== 'linux') return { stop: () => null };
  let prev = new Map();
  let tPrev = uptimeS();
  const st = { peakBusy: 0, peakThreads: 0, peakCores: 0, samples: 0 };
  let running = true;
  (async () => {
    while (running) {
      await sleep(everyMs);
      if (!running) break;
      const t = uptimeS();
      const cur = new Map();
      let busy = 0;
      let cores = 0;
      for (const p of tree(pid)) {
        let tids = [];
        try {
          tids = readdirSync(`/proc/${p}/task`);
        } catch {}
        for (const tid of tids) {
          const s = readStat(`/proc/${p}/task/${tid}/stat`);
          if (!s) continue;
          cur.set(tid, s.ticks);
          const since = Math.max(tPrev, s.startS);
          const used = (s.ticks - (prev.get(tid) ?? 0)) / TICK;
          if (t - since > 0.1 && used / (t - since) > 0.25) busy++;
          cores += used / (t - tPrev);
        }
      }
      st.peakThreads = Math.max(st.peakThreads, cur.size);
      st.peakBusy = Math.max(st.peakBusy, busy);
      st.peakCores = Math.max(st.peakCores, Math.round(cores * 100) / 100);
      st.samples++;
      prev = cur;
      tPrev = t;
    }
  })();
  return {
    stop() {
      running = false;
      return st;
    },
  };
}

// ---- running one scenario ------------------------------------------------------------------------
let current = null; // the child running now, for SIGINT/SIGTERM
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current) {
      log(`\nrun: ${sig}: stopping ${current.name}`);
      try {
        process.kill(-current.child.pid, 'SIGTERM');
      } catch {}
    }
    setTimeout(() => process.exit(130), current ? 3000 : 0).unref();
  });
}

async function runScenario(sc, index, total) {
  const script = join(benchDir, `${sc.script ?? sc.name}.mjs`);
  const outFile = join(resultsDir, `${sc.name}.json`);
  const rec = { name: sc.name, script: relative(root, script) };
  if (!existsSync(script)) {
    rec.status = 'skipped';
    rec.note = `${rec.script} is not there yet`;
    log(`[${index}/${total}] ${sc.name}: skipped (${rec.note})`);
    return rec;
  }
  const args = [script, ...(opts.quick ? sc.quick : sc.full), ...addonArgs(sc), '--json', '--out', outFile];
  rec.args = args.map((a) => (a.startsWith(root) ? relative(root, a) : a));
  const est = sc.estS[opts.quick ? 1 : 0];
  const timeoutS = est * 3 + 120;
  log(`[${index}/${total}] ${sc.name}: node ${rec.args.join(' ')} (about ${Math.ceil(est / 60)} min)`);
  try {
    unlinkSync(outFile); // a stale file must not pass for this run's results
  } catch {}
  const t0 = now();
  rec.started = new Date().toISOString();
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  current = { name: sc.name, child };
  const sampler = threadSampler(child.pid);
  rec.lines = [];
  rec.otherStdout = [];
  let outBuf = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    outBuf += d;
    for (let i; (i = outBuf.indexOf('\n')) >= 0; ) {
      const line = outBuf.slice(0, i).trim();
      outBuf = outBuf.slice(i + 1);
      if (!line) continue;
      try {
        const o = JSON.parse(line);
        rec.lines.push(o);
        if (opts.json && stdoutOpen) process.stdout.write(`${JSON.stringify(o)}\n`);
      } catch {
        rec.otherStdout.push(line);
        log(`[${sc.name}] (stdout, not JSON) ${line}`);
      }
    }
  });
  let errBuf = '';
  child.stderr.setEncoding('utf8').on('data', (d) => {
    errBuf += d;
    // \r progress lines: keep only what follows the last \r of each line
    for (let i; (i = errBuf.indexOf('\n')) >= 0; ) {
      const line = errBuf.slice(0, i).split('\r').pop().replace(/\x1b\[K/g, '');
      errBuf = errBuf.slice(i + 1);
      log(`[${sc.name}] ${line}`);
    }
  });
  const timer = setTimeout(() => {
    rec.timedOut = true;
    log(`[${sc.name}] still running after ${timeoutS} s: stopping it`);
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, 5000).unref();
  }, timeoutS * 1000);
  const [code, signal] = await new Promise((r) => child.on('close', (c, s) => r([c, s])));
  clearTimeout(timer);
  current = null;
  rec.threads = sampler.stop();
  rec.durationS = Math.round((now() - t0) * 10) / 10;
  rec.exitCode = code;
  rec.signal = signal;
  rec.status = code === 0 ? 'ok' : 'failed';
  try {
    rec.results = JSON.parse(readFileSync(outFile, 'utf8'));
  } catch (err) {
    rec.results = null;
    rec.resultsError = `${relative(root, outFile)}: ${err.code === 'ENOENT' ? 'not written' : err.message}`;
  }
  log(`[${index}/${total}] ${sc.name}: ${rec.status} in ${Math.round(rec.durationS)} s (${signal ?? `exit ${code}`}), ${rec.lines.length} JSON lines`);
  return rec;
}

// ---- the report --------------------------------------------------------------------------------
const fmt = (x) => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : Math.abs(x) >= 10 ? x.toFixed(1) : Math.abs(x) >= 0.1 ? x.toFixed(2) : x.toPrecision(2)) : '-');
const range = (lo, hi) => (Number.isFinite(lo) && Number.isFinite(hi) && lo !== hi ? ` (${fmt(lo)}–${fmt(hi)})` : '');
const valueCell = (l) => (l ? `${fmt(l.value)}${range(l.min, l.max)}` : '-');
const ratioCell = (r, lo, hi) => (Number.isFinite(r) ? `${fmt(r)}×${range(lo, hi)}` : '-');
const sizeLabel = (b) => (b % 1024 === 0 ? `${b / 1024} KiB` : `${b} B`);
const caseNum = (label, key) => Number(new RegExp(`${key}=(\\d+)`).exec(label)?.[1]);
const md = (s) => String(s).replace(/\|/g, '\\|');
/** Costs (CPU per unit of work, memory, latency): lower is better. */
const lowerIsBetter = (metric) => /cpu-?per|per-?gb|rss|mem|latency|^p\d|per-conn/i.test(metric);

/** The headline table's rows: [figure, iapp, peer, ratio, C, ratio vs C]. */
function headlineRows(byName) {
  const rows = [];
  // The kqueue build's rows (--addon kqueue) are information: they stay in their scenario's table.
  const lines = (name) => (byName.get(name)?.lines ?? []).filter((l) => !l.system?.endsWith('-kqueue'));
  const find = (name, pred) => lines(name).find(pred);
  const row = (figure, l, name) => {
    if (!l) return;
    const peer = find(name, (x) => x.case === l.case && x.metric === l.metric && x.system === l.peer);
    const ref = l.refPeer && find(name, (x) => x.case === l.case && x.metric === l.metric && x.system === l.refPeer);
    rows.push([
      `${figure}${l.unit ? ` (${l.unit})` : ''}`,
      `**${fmt(l.value)}** ${md(l.system)}`,
      peer ? `${fmt(peer.value)} ${md(peer.system)}` : '-',
      `**${ratioCell(l.ratio, l.ratioMin, l.ratioMax)}**`,
      ref ? `${fmt(ref.value)} ${md(ref.system)}` : '-',
      l.refRatio !== undefined ? ratioCell(l.refRatio, l.refRatioMin, l.refRatioMax) : '-',
    ]);
  };
  for (const conns of [64, 1024]) {
    for (const [metric, what] of [['throughput', 'throughput'], ['cpuPerGB', 'server CPU per GB']]) {
      const l = find('sink', (x) => x.system === 'iapp-sink' && x.metric === metric && caseNum(x.case, 'conns') === conns && caseNum(x.case, 'size') === 65536);
      if (l) row(`sink, ${conns} conns × 64 KiB: ${what}`, l, 'sink');
      else if (byName.has('sink')) rows.push([`sink, ${conns} conns × 64 KiB: ${what}`, 'not measured in this run', '', '', '', '']);
    }
  }
  // onData (a JS handler per batch of reads), in fresh Buffers and borrowed from the lent arena,
  // against the same peer and the C read() sink; fresh Buffers also against C reading into cold
  // memory (c-read-ring), which is what owning each chunk until a collection costs without JS.
  const onData = [
    ['iapp-data', 'socket.onData', 'c-read'],
    ['iapp-data', 'socket.onData (vs C into cold memory)', 'c-read-ring'],
    ['iapp-data-borrow', 'socket.onData borrowed', 'c-read'],
  ];
  for (const [system, label, cSystem] of onData) {
    for (const conns of [64, 1024]) {
      for (const metric of ['throughput', 'cpuPerGB']) {
        const l = find('sink', (x) => x.system === system && x.metric === metric && caseNum(x.case, 'conns') === conns && caseNum(x.case, 'size') === 65536);
        if (!l) continue;
        const c = find('sink', (x) => x.system === cSystem && x.case === l.case && x.metric === metric);
        if (!c && cSystem !== 'c-read') continue;
        const vsC = c && (metric === 'cpuPerGB' ? c.value / l.value : l.value / c.value);
        row(`${label}, ${conns} conns × 64 KiB: ${metric === 'throughput' ? 'throughput' : 'server CPU per GB'}`, c ? { ...l, refPeer: c.system, refRatio: vsC, refRatioMin: undefined, refRatioMax: undefined } : { ...l, refPeer: undefined, refRatio: undefined }, 'sink');
      }
    }
  }
  for (const l of lines('connections').filter((x) => /^iapp/.test(x.system))) {
    // connections.mjs gives no ratio when iapp's figure is not positive (within the RSS noise)
    const peer = l.peer ?? lines('connections').find((x) => x.case === l.case && x.metric === l.metric && !/^iapp/.test(x.system))?.system;
    row(`idle memory per connection, ${l.case}`, { ...l, peer }, 'connections');
  }
  for (const l of lines('push').filter((x) => x.system === 'iapp-clt' && x.metric === 'throughput')) row(`iapp-clt push, ${l.case.replace(/conns=(\d+),size=(\d+)/, (_, c, s) => `${c} conn${c === '1' ? '' : 's'} × ${sizeLabel(Number(s))}`)}`, l, 'push');
  // http: requests per server CPU-second (whatever the scenario calls it), iapp rows with a peer
  const perCpu = lines('http').filter((x) => x.peer && /cpu/i.test(`${x.metric} ${x.unit}`) && !lowerIsBetter(x.metric) && !(x.threads > 1));
  for (const l of perCpu) row(`HTTP ${l.case}: ${l.metric === 'rpsPerCpuS' ? 'requests per server CPU-second' : l.metric}`, l, 'http');
  if (byName.has('http') && !perCpu.length) rows.push(['HTTP requests per server CPU-second', byName.get('http').status === 'skipped' ? 'not run (bench/http.mjs not there yet)' : 'no such line in the http output', '', '', '', '']);
  const udpPerCpu = lines('udp').filter((x) => x.system === 'iapp-srv' && x.metric === 'rpsPerCpuS' && x.peer);
  for (const l of udpPerCpu) row(`UDP echo, ${l.size ?? caseNum(l.case, 'size')} B datagrams: requests per server CPU-second`, l, 'udp');
  if (byName.has('udp') && !udpPerCpu.length) rows.push(['UDP echo: requests per server CPU-second', byName.get('udp').status === 'skipped' ? 'not run' : 'no such line in the udp output', '', '', '', '']);
  // The round trip's reference is the C eventfd ping-pong (refRatio = C/iapp): the target is
  // iapp's p50 <= 1.5x C's, i.e. a ratio >= 0.67.
  for (const l of lines('messaging').filter((x) => /^iapp/.test(x.system) && x.peer && (x.metric === 'throughput' || x.metric === 'latency-p50'))) {
    const vsC = l.refPeer ? ` vs the C eventfd floor (target: iapp ≤ 1.5× C's p50, i.e. C/iapp ≥ 0.67: ${l.refRatio >= 1 / 1.5 ? 'met' : 'not met'})` : '';
    row(`messages between threads, ${l.case}: ${l.metric === 'throughput' ? 'one way' : `round trip p50${vsC}`}`, l, 'messaging');
  }
  for (const l of lines('messaging-object').filter((x) => x.system === 'iapp' && x.peer && (x.metric === 'throughput' || x.metric === 'latency-p50')))
    row(`messages between threads, small objects, ${l.case}: ${l.metric === 'throughput' ? 'one way' : 'round trip p50'}`, l, 'messaging-object');
  for (const l of lines('timers').filter((x) => x.system === 'iapp' && x.peer && /^arm(Disarm|Fire)Rate$/.test(x.metric) && /-100k$/.test(x.case)))
    row(`timers, 100,000 armed: ${l.metric === 'armDisarmRate' ? 'arm+disarm' : 'arm+fire'}`, l, 'timers');
  for (const l of lines('timers').filter((x) => x.system === 'iapp' && x.peer && x.metric === 'setupPerTimer' && /-100k$/.test(x.case)))
    row('timers: creating and arming 100,000, each (cold)', l, 'timers');
  const conns = (c) => c.replace(/conns=(\d+),size=\d+/, (_, n) => `${n} conn${n === '1' ? '' : 's'}`);
  for (const l of lines('proxy').filter((x) => /^iapp/.test(x.system) && x.peer && (x.metric === 'throughput' || x.metric === 'cpuPerGB')))
    row(`proxy, ${conns(l.case)}: ${l.metric === 'throughput' ? 'throughput' : 'proxy CPU per GB'}`, l, 'proxy');
  for (const l of lines('sendfile').filter((x) => /^iapp/.test(x.system) && x.peer && x.metric === 'throughput'))
    row(`sendFile, ${l.case.replace(/clients=(\d+),each=(\w+)/, (_, n, e) => `${n} client${n === '1' ? '' : 's'} × ${e}`)}`, l, 'sendfile');
  for (const l of lines('copy').filter((x) => /^iapp/.test(x.system) && x.peer && x.metric === 'throughput')) row(`copyFile, ${l.case.replace('size=', '')}`, l, 'copy');
  for (const l of lines('disk').filter((x) => x.system === 'iapp-uring' && x.peer && (x.metric === 'readRate' || x.metric === 'throughput')))
    row(`file reads, ${l.case === 'rand-4k-qd64' ? 'random 4 KiB, 64 in flight' : l.case === 'seq-1m-qd4' ? 'sequential 1 MiB, 4 in flight' : l.case} (io_uring)`, l, 'disk');
  // connects: the peer is the C connect loop, so it goes in the reference columns
  for (const l of lines('connects').filter((x) => x.system === 'iapp-clt' && x.metric === 'connectsPerS' && x.peer)) {
    const c = find('connects', (x) => x.case === l.case && x.metric === l.metric && x.system === l.peer);
    rows.push([`iapp-clt connects/s, ${connectsCase(l.case)}`, `**${fmt(l.value)}** ${md(l.system)}`, '-', '-', c ? `${fmt(c.value)} ${md(c.system)}` : '-', `**${ratioCell(l.ratio, l.ratioMin, l.ratioMax)}**`]);
  }
  return rows;
}

/** "churn-k32" -> "open + close, 32 at once"; "hold-n10000" -> "open and hold 10,000". */
function connectsCase(name) {
  const m = /^(churn)-k(\d+)$|^(hold)-n(\d+)$/.exec(name);
  if (!m) return name;
  return m[1] ? `open + close, ${Number(m[2]).toLocaleString('en-US')} at once` : `open and hold ${Number(m[4]).toLocaleString('en-US')}`;
}

/** The connects scenario's own section: iapp-clt against the C loop, with the target. */
function connectsSection(rec) {
  const TARGET = 0.8;
  const out = [];
  const ls = rec.lines.filter((l) => l.system === 'iapp-clt' && l.peer);
  if (!ls.length) return out;
  const rows = [];
  let met = true;
  for (const c of [...new Set(ls.map((l) => l.case))]) {
    const v = ls.find((l) => l.case === c && l.metric === 'connectsPerS');
    const cpu = ls.find((l) => l.case === c && l.metric === 'cpuPer1k');
    const peer = (l) => l && rec.lines.find((x) => x.case === c && x.metric === l.metric && x.system === l.peer);
    const ok = v && v.ratio >= TARGET;
    met &&= Boolean(ok);
    rows.push(`| ${md(connectsCase(c))} | ${valueCell(v)} | ${valueCell(peer(v))} | **${v ? ratioCell(v.ratio, v.ratioMin, v.ratioMax) : '-'}** | ${valueCell(cpu)} | ${valueCell(peer(cpu))} | ${cpu ? ratioCell(cpu.ratio, cpu.ratioMin, cpu.ratioMax) : '-'} | ${ok ? 'met' : '**not met**'} |`);
  }
  out.push(`**Target: iapp-clt opens connections at ≥ ${TARGET}× the rate of a C epoll connect loop on the same core, in every case: ${met ? 'met' : 'NOT met'}** (per case below).`, '');
  out.push(`| case | iapp-clt connects/s | ${md(ls[0].peer)} connects/s | iapp vs C | iapp-clt CPU-s / 1k | C CPU-s / 1k | CPU, C/iapp | ≥ ${TARGET}× |`, '|---|---|---|---|---|---|---|---|');
  out.push(...rows, '');
  return out;
}

/** The udp scenario's target line and, per case, whether each server had work throughout. */
function udpSection(rec) {
  const out = [];
  const ls = rec.lines.filter((l) => l.metric === 'rpsPerCpuS' && l.target);
  if (!ls.length) return out;
  const met = ls.every((l) => l.met);
  const perCase = ls.map((l) => `${l.size ?? caseNum(l.case, 'size')} B: ${ratioCell(l.ratio, l.ratioMin, l.ratioMax)} ${l.met ? 'met' : '**not met**'}`);
  out.push(`**Target: iapp-srv ${md(ls[0].target)} in requests per server CPU-second, in every case: ${met ? 'met' : 'NOT met'}** (${perCase.join('; ')}).`, '');
  const sat = rec.lines.filter((l) => l.metric === 'serverCpu' && l.saturation);
  if (sat.length) out.push(`Saturation (server CPU per second of load, medians): ${sat.map((l) => `${md(l.case)} ${md(l.system)} ${fmt(l.value)} cores, ${md(l.saturation)}`).join('; ')}.`, '');
  return out;
}

/** Per-scenario tables from its JSON lines: rows (case, system), per metric its value and ratios. */
function scenarioTable(rec) {
  const out = [];
  const cases = [...new Set(rec.lines.map((l) => l.case))];
  const metrics = [...new Map(rec.lines.map((l) => [l.metric, l.unit])).entries()];
  const hasRef = rec.lines.some((l) => l.refPeer);
  const head = ['case', 'system'];
  for (const [m, u] of metrics) head.push(`${m}${u ? ` (${u})` : ''}`, `${m} vs peer`, ...(hasRef ? [`${m} vs ref`] : []));
  out.push(`| ${head.map(md).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const c of cases) {
    const systems = [...new Set(rec.lines.filter((l) => l.case === c).map((l) => l.system))];
    systems.forEach((sys, i) => {
      const cells = [i === 0 ? md(c) : '', md(sys)];
      for (const [m] of metrics) {
        const l = rec.lines.find((x) => x.case === c && x.system === sys && x.metric === m);
        const isPeer = rec.lines.some((x) => x.case === c && x.metric === m && x.peer === sys);
        const isRef = rec.lines.some((x) => x.case === c && x.metric === m && x.refPeer === sys);
        cells.push(valueCell(l), l?.peer ? `${ratioCell(l.ratio, l.ratioMin, l.ratioMax)} ${md(l.peer)}` : isPeer ? '1' : '');
        if (hasRef) cells.push(l?.refPeer ? `${ratioCell(l.refRatio, l.refRatioMin, l.refRatioMax)} ${md(l.refPeer)}` : isRef ? '1' : '');
      }
      out.push(`| ${cells.join(' | ')} |`);
    });
  }
  return out;
}

/**
 * The fairness scenario's table: per case the loop with its turn budget and without, lateness and
 * round trips as p50 / p99 medians (the p99's min–max over rounds), throughput, cut turns, and
 * the targets its JSON lines judged (met or not).
 */
function fairnessTable(rec) {
  const lines = rec.lines;
  const get = (c, sys, m) => lines.find((x) => x.case === c && x.system === sys && x.metric === m);
  const pair = (c, sys, what) => {
    const p50 = get(c, sys, `${what}-p50`);
    const p99 = get(c, sys, `${what}-p99`);
    return p50 || p99 ? `${p50 ? fmt(p50.value) : '-'} / ${p99 ? valueCell(p99) : '-'}` : '-';
  };
  // Counts and rates of events: whole numbers (a median of two runs may end in .5).
  const whole = (l) => (l ? `${Math.round(l.value).toLocaleString('en-US')}${l.min !== l.max ? ` (${Math.round(l.min).toLocaleString('en-US')}–${Math.round(l.max).toLocaleString('en-US')})` : ''}` : '-');
  const budget = (c, sys) => {
    const us = lines.find((x) => x.case === c && x.system === sys)?.budgetUs;
    const cell = us === 0 ? 'none (0)' : Number.isFinite(us) ? `${us} µs` : md(sys);
    return sys.endsWith('-quiet') ? `${cell}, no probes` : cell;
  };
  const out = [
    '| case | turn budget | timer late p50 / p99 (ms) | call round trip p50 / p99 (ms) | call p99 there / back (ms) | calls unanswered at the window\'s end | throughput (GB/s) | turns cut /s | budget vs none: timer p99, call p99, GB/s | targets (with the budget) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of [...new Set(lines.map((l) => l.case))]) {
    for (const sys of [...new Set(lines.filter((l) => l.case === c).map((l) => l.system))]) {
      const ratios = ['timer-late-p99', 'call-rtt-p99', 'throughput'].map((m) => get(c, sys, m)).filter((l) => l?.peer);
      const targets = lines.filter((l) => l.case === c && l.system === sys && l.target).map((l) => `${l.metric} ${l.target}: ${l.met ? 'met' : '**not met**'}`);
      out.push(
        `| ${md(c)} | ${budget(c, sys)} | ${pair(c, sys, 'timer-late')} | ${pair(c, sys, 'call-rtt')} | ${[get(c, sys, 'call-there-p99'), get(c, sys, 'call-back-p99')].map((l) => (l ? fmt(l.value) : '-')).join(' / ')} | ${whole(get(c, sys, 'calls-unanswered'))} | ${valueCell(get(c, sys, 'throughput'))} | ${whole(get(c, sys, 'turns-cut-rate'))} | ${ratios.map((l) => ratioCell(l.ratio, l.ratioMin, l.ratioMax)).join(', ') || (c === 'idle' ? 'baseline, no load' : '')} | ${md(targets.join('; '))} |`,
      );
    }
  }
  out.push('', "Rows marked *no probes* run the same load with no calls and no timer: the budget's own cost in throughput, which the throughput target judges. Lateness: a 10 ms interval timer on the loaded loop, callback time minus due time; round trip: `runtime.call(0, 'ping')` from the main thread every 5 ms, split at the loop's handler into the way there (the loop's delay) and back (the main thread's wake-up, on whichever core is free: both are busy in the proxy case). Ratios > 1 mean the budget is better (none/budget for ms, budget/none for GB/s). The load ends just after each window, so the figures of calls and periods still open then without a budget are lower bounds.");
  return out;
}

/** Writes the charts; returns [[file, caption], ...]. */
function writeCharts(byName) {
  const charts = [];
  for (const f of readdirSync(resultsDir)) if (f.endsWith('.svg')) unlinkSync(join(resultsDir, f)); // none left from an older run
  const sink = byName.get('sink')?.lines ?? [];
  const sizes = [...new Set(sink.map((l) => caseNum(l.case, 'size')).filter(Number.isFinite))].sort((a, b) => a - b);
  for (const size of sizes) {
    for (const [metric, label, tag] of [['throughput', 'GB/s (median, bar: min–max)', 'throughput'], ['cpuPerGB', 'server CPU-s per GB (median, bar: min–max)', 'cpu']]) {
      const ls = sink.filter((l) => l.metric === metric && caseNum(l.case, 'size') === size);
      if (new Set(ls.map((l) => caseNum(l.case, 'conns'))).size < 2) continue;
      const series = [...new Set(ls.map((l) => l.system))].map((name) => ({
        name,
        points: ls.filter((l) => l.system === name).map((l) => ({ x: caseNum(l.case, 'conns'), y: l.value, min: l.min, max: l.max })),
      }));
      const file = `sink-${tag}-${size >= 1024 ? `${size / 1024}k` : size}.svg`;
      const title = `sink, ${sizeLabel(size)} writes: ${metric === 'throughput' ? 'throughput' : 'server CPU per GB'}`;
      writeFileSync(join(resultsDir, file), lineChart({ title, x: { label: 'connections (log scale)', scale: 'log' }, y: { label }, series }));
      charts.push([file, title]);
    }
  }
  // http latency: lines whose metric names a percentile (p50, latency-p99, ...); x = the cases
  const http = (byName.get('http')?.lines ?? []).filter((l) => /(^|[^a-z])p\d+(\.\d+)?$/i.test(l.metric));
  if (http.length) {
    const pct = (m) => `p${/p(\d+(?:\.\d+)?)$/i.exec(m)[1]}`;
    const cats = [...new Set(http.map((l) => l.case))];
    const systems = [...new Set(http.map((l) => l.system))];
    const keys = [...new Set(http.map((l) => `${l.system} ${pct(l.metric)}`))].sort();
    const series = keys.map((name) => ({
      name,
      color: systems.indexOf(name.slice(0, name.lastIndexOf(' '))), // a colour per system
      dash: !name.endsWith('p50'), // hollow markers for the higher percentiles
      points: http.filter((l) => `${l.system} ${pct(l.metric)}` === name).map((l) => ({ x: l.case, y: l.value, min: l.min, max: l.max })),
    }));
    const file = 'http-latency.svg';
    const title = 'http: latency percentiles per case';
    writeFileSync(join(resultsDir, file), lineChart({ title, x: { label: 'case (generator, connections, pipelining, threads)', scale: 'category', categories: cats }, y: { label: `latency, ${http[0].unit ?? ''}, log scale (median, bar: min–max)`, scale: 'log' }, series }));
    charts.push([file, title]);
  }
  return charts;
}

function writeReport(latest) {
  const byName = new Map(latest.scenarios.map((s) => [s.name, s]));
  const m = latest.machine;
  const out = [];
  out.push('# iapp benchmark report', '');
  out.push(`\`${latest.command}\`, ${latest.started.replace('T', ' ').replace(/\..*/, '')} UTC, ${Math.round(latest.durationS)} s in all${latest.quick ? ' (--quick: shorter runs, fewer cases)' : ''}.`);
  out.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.kernel}, Node ${m.node}; load average ${m.loadavg.map((x) => x.toFixed(2)).join(' ')} at the start.`, '');
  out.push('Ratios: **> 1 means iapp is better** (iapp/peer for throughput, peer/iapp for CPU, memory and latency), the peer measured in the same run; medians of per-round ratios, (min–max) over rounds where the scenario repeats runs.', '');
  out.push('## Headline', '');
  out.push('| figure | iapp | node peer | iapp vs node | reference (C; for disk, the pool) | iapp vs reference |', '|---|---|---|---|---|---|');
  for (const r of headlineRows(byName)) out.push(`| ${r.join(' | ')} |`);
  out.push('');
  const caveats = [];
  for (const rec of latest.scenarios) {
    const notes = (rec.results?.runs ?? []).filter((r) => r.ok !== false && /^iapp/.test(r.system ?? '')).flatMap((r) => r.notes ?? []);
    if (rec.name === 'connections') for (const n of new Set(notes)) caveats.push(`idle memory: ${n}`);
    if (rec.results?.disturbedRuns) caveats.push(`${rec.name}: ${rec.results.disturbedRuns} run(s) saw other load on the machine (> 25 % of a core)`);
    if (rec.status !== 'ok' && rec.status !== 'skipped') caveats.push(`${rec.name}: ${rec.status} (${rec.signal ?? `exit ${rec.exitCode}`})`);
    if (rec.status === 'skipped') caveats.push(`${rec.name}: ${rec.note}`);
  }
  if (latest.quick) caveats.push('--quick: fewer cases, shorter runs (2 runs where a scenario says so): a first look, not figures to quote');
  if (caveats.length) out.push(...caveats.map((c) => `- ${md(c)}`), '');
  const charts = writeCharts(byName);
  out.push('## Scenarios', '');
  for (const rec of latest.scenarios) {
    out.push(`### ${rec.name}`, '');
    if (rec.keptFrom) out.push(`*Measured in an earlier run, started ${rec.keptFrom} (the last run measured only some scenarios).*`, '');
    if (rec.status === 'skipped') {
      out.push(`Skipped: ${rec.note}.`, '');
      continue;
    }
    const cfg = rec.results?.config ?? {};
    const facts = [`\`node ${rec.args.join(' ')}\``, `${Math.round(rec.durationS)} s`, rec.status === 'ok' ? 'exit 0' : `**${rec.timedOut ? 'timed out' : 'failed'}** (${rec.signal ?? `exit ${rec.exitCode}`})`];
    if (cfg.runs && cfg.duration) facts.push(`${cfg.runs} runs × ${cfg.duration} s per system, interleaved`);
    if (rec.results?.disturbedRuns) facts.push(`${rec.results.disturbedRuns} run(s) disturbed by other load, ${rec.results.repeatedRuns ?? 0} repeated`);
    out.push(`${facts.join('; ')}.`);
    const th = rec.threads;
    if (th?.samples) {
      const peak = th.peakCores !== undefined ? `; the scenario's processes used at most ${th.peakCores.toFixed(1)} cores in a sample` : '';
      const busy = `${th.peakBusy} of its threads busy at once (each > 25 % of a core over a 1 s sample) on ${latest.machine.cores} cores${peak}`;
      out.push(th.peakBusy > latest.machine.cores ? `**More threads than cores:** up to ${busy}.` : `Threads: at most ${busy}.`);
    }
    for (const c of rec.results?.summary ?? []) if (c.note) out.push(`Note, ${md(c.case)}: ${md(c.note)}.`);
    for (const sys of cfg.systems ?? []) if (sys.procs > latest.machine.cores) out.push(`Note: ${md(sys.name)} runs ${sys.procs} processes or threads on ${latest.machine.cores} cores${sys.what ? ` (${md(sys.what)})` : ''}.`);
    if (cfg.client) out.push(`Client: ${cfg.client}.`);
    if (cfg.pinning) out.push(`Pinning: ${cfg.pinning}.`);
    if (rec.resultsError) out.push(`Results file: ${rec.resultsError}.`);
    out.push('');
    if (rec.name === 'connects') out.push(...connectsSection(rec));
    if (rec.name === 'udp') out.push(...udpSection(rec));
    if (rec.lines.length) out.push(...(rec.name === 'fairness' ? fairnessTable(rec) : scenarioTable(rec)), '');
    else out.push('No JSON lines.', '');
    for (const [file, title] of charts.filter(([f]) => f.startsWith(`${rec.name}-`))) out.push(`![${title}](${file})`, '');
  }
  out.push('Full data: `bench/results/latest.json` (every scenario\'s JSON lines and results file).', '');
  writeFileSync(reportFile, out.join('\n'));
  return charts;
}

// ---- main ------------------------------------------------------------------------------------
if (opts['report-only']) {
  const latest = JSON.parse(readFileSync(latestFile, 'utf8'));
  const charts = writeReport(latest);
  log(`Report: ${relative(process.cwd(), reportFile)} (${charts.length} chart(s))`);
  process.exit(0);
}

const selected = SCENARIOS.filter((s) => !only || only.includes(s.name));
if (addons.includes('kqueue') && !selected.some((s) => s.addon)) log(`NOTE: --addon kqueue: none of these scenarios takes it (${ADDON_NAMES.join(', ')} do)`);
const t0 = now();
const cpus = os.cpus();
const latest = {
  command: ['node', ...process.argv.slice(1).map((a) => (a.startsWith(root) ? relative(root, a) : a))].join(' '),
  quick: opts.quick,
  started: new Date().toISOString(),
  machine: {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    date: new Date().toISOString(),
    hostname: os.hostname(),
    loadavg: os.loadavg(),
  },
  scenarios: [],
};
const estTotal = selected.filter((s) => existsSync(join(benchDir, `${s.name}.mjs`))).reduce((a, s) => a + s.estS[opts.quick ? 1 : 0], 0);
log(`bench: ${selected.map((s) => s.name).join(', ')}${opts.quick ? ' (--quick)' : ''}; about ${Math.ceil(estTotal / 60)} min on ${latest.machine.cores} cores`);
if (latest.machine.loadavg[0] > 0.5) log(`NOTE: load average ${latest.machine.loadavg[0].toFixed(2)} before starting: other work on the machine adds noise`);
// With --only, the scenarios not run keep what an earlier run measured (marked as such in the
// report), so one scenario can be measured again without losing the others.
let earlier = [];
if (only && existsSync(latestFile)) {
  try {
    const prev = JSON.parse(readFileSync(latestFile, 'utf8'));
    earlier = (prev.scenarios ?? []).filter((r) => !only.includes(r.name)).map((r) => ({ ...r, keptFrom: r.keptFrom ?? prev.started }));
  } catch {
    log(`NOTE: ${relative(process.cwd(), latestFile)} could not be read: the report has only this run's scenarios`);
  }
}
const ordered = (ran) => [...earlier, ...ran].sort((a, b) => NAMES.indexOf(a.name) - NAMES.indexOf(b.name));
const ran = [];
for (const [i, sc] of selected.entries()) {
  ran.push(await runScenario(sc, i + 1, selected.length));
  latest.scenarios = ordered(ran);
  latest.durationS = now() - t0;
  writeResults(latestFile, latest); // after each scenario, so an interrupted run keeps what it measured
}
latest.scenarios = ordered(ran);
latest.finished = new Date().toISOString();
latest.durationS = now() - t0;
writeResults(latestFile, latest);
const charts = writeReport(latest);
log('');
log(latest.scenarios.map((s) => `${s.name}: ${s.status}${s.durationS !== undefined ? ` ${Math.round(s.durationS)} s` : ''}`).join('; '));
log(`Results: ${relative(process.cwd(), latestFile)}; report: ${relative(process.cwd(), reportFile)} (${charts.length} chart(s)); ${Math.round(latest.durationS)} s in all`);
process.exit(ran.every((s) => s.status !== 'failed') ? 0 : 1);
