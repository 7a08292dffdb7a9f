// The timers scenario: iapp's loop timers against Node's setTimeout/clearTimeout, each on the
// thread that runs the callbacks.
//
//   node bench/timers.mjs [--quick] [--runs N] [--duration S] [--n N] [--spread-ms S] [--chunk K]
//                         [--cases LIST] [--systems LIST] [--noise-floor] [--json] [--out FILE]
//
// Systems (each run a fresh process with --expose-gc, so one run's heap does not carry into the
// next):
//   iapp          bench/servers/iapp-timers.mjs: a runtime of one loop thread that runs the case
//                 (bench/servers/iapp-timers-loop.mjs); timers allocated with loop.timer(), then
//                 arm()/disarm() (stores the loop applies before it next waits)
//   node          bench/peers/node-timers.mjs: setTimeout/clearTimeout on the main thread of a
//                 plain Node process
//   node-refresh  the same, re-arming with timeout.refresh() instead of clearTimeout+setTimeout
//                 (arm-disarm-N only: Node's cheapest way to postpone a timer; no allocation)
//   iapp-0ms      arm-fire-1 only: iapp's chain with arm(0) (due at once); no ratio, as Node
//                 cannot arm below 1 ms (setTimeout(fn, 0) is 1 ms)
//   node-2        with --noise-floor: a second node, whose ratio to node is the A/A floor
// Cases (N = --n, default 100,000; the label says N as 100k):
//   arm-disarm-1   one timer: arm(1e6 ms)+disarm() / t = setTimeout(fn, 1e6); clearTimeout(t)
//                  in a tight loop, an event-loop turn every --chunk pairs (1024): pairs/s
//   arm-disarm-N   N timers armed with 1000 + i % 1000 ms; round-robin disarm+arm of one timer
//                  (its own delay again) / clearTimeout + a new setTimeout (or refresh()), a turn
//                  every --chunk pairs: pairs/s with N armed throughout (none fires)
//   arm-fire-1     one timer re-armed with 1 ms from its own callback (both systems: Node's
//                  minimum): fires/s (set by the 1 ms delay on both sides) and CPU µs per fire
//                  of the thread running the chain (/proc/thread-self/schedstat: the timers'
//                  own work, not the process's other threads'). Wake-ups from idle make this
//                  figure vary up to 2x from run to run on a VM: see --noise-floor
//   arm-fire-N     batches: arm N timers (1 + i % --spread-ms ms, default 1..10 ms), wait until
//                  all fired; fires/s = N / (first arm -> last callback), summed over the batches
//                  of a run (2 x --duration of batches: Node's vary with its GC), and CPU µs per fire
//                  of the whole process (Node's GC helper threads work for its allocations)
//   armed-N        memory per armed timer, from the arm-disarm-N runs: process.memoryUsage()
//                  after GC before the N timers exist and after they are armed (before the
//                  churn): RSS and JS (heapUsed + external) bytes per timer. iapp's native slots
//                  show in RSS only.
// Every timed phase includes event-loop turns, so what iapp armed is applied by its loop inside
// the timing (iapp applies arming changes when its loop next waits: a disarm+arm of one timer
// between two turns costs one heap update there; Node does both). Each run: --duration seconds
// measured after an uncounted warm-up (0.2 s; 0.1 with --quick); allocation of iapp's timers is
// outside the timing (allocate once, then arm allocation-free), Node's setTimeout allocates a
// Timeout every time and that is inside. Systems are interleaved (A B A B ...), 3 rounds (2 with
// --quick); ratios are medians of per-round ratios, > 1 = iapp better (iapp/peer for rates,
// peer/iapp for CPU per fire and bytes per timer). "cores": CPU of the run's process (all
// threads) per second of the measured phase.
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonOption, addonUsage, withAddons } from './lib/addon.mjs';
import { runClient, summarize } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { caseJsonLines, f, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, rng, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const INDEX = join(root, 'dist', 'src', 'index.js');
const IAPP = 'iapp';
const IAPP0 = 'iapp-0ms';
const PEER = 'node';
const REFRESH = 'node-refresh';
const NOISE = 'node-2';
const MAX_RETRIES_SHARE = 0.15;
const TARGET = 3; // the issue's: >= 3x Node's rate
const COSTS = ['cpuPerFire', 'rssPerTimer', 'jsPerTimer', 'setupPerTimer'];

const USAGE = `usage: node bench/timers.mjs [options]
  --quick            2 rounds of 0.3 s runs (about 20 s)
  --runs N           rounds (default 3; 2 with --quick)
  --duration S       measured seconds per run (default 0.5; 0.3 with --quick; arm-fire-N runs twice that)
  --n N              timers of the many-timer cases (default 100000; labels say 100k)
  --spread-ms S      arm-fire-N: delays 1..S ms (default 10)
  --chunk K          arm-disarm: pairs between event-loop turns (default 1024)
  --cases LIST       arm-disarm-1,arm-disarm-N,arm-fire-1,arm-fire-N (N as in the labels; default all;
                     armed-N comes with arm-disarm-N)
  --systems LIST     ${IAPP},${PEER},${REFRESH},${IAPP0} (default all; ${NOISE} with --noise-floor)
  --noise-floor      add a second node ("${NOISE}"): its ratio to ${PEER} is the A/A floor
  --json             one JSON line per case, system and metric on stdout
  --out FILE         results file (default bench/results/timers.json)
${addonUsage}`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    duration: { type: 'string' },
    n: { type: 'string', default: '100000' },
    'spread-ms': { type: 'string', default: '10' },
    chunk: { type: 'string', default: '1024' },
    cases: { type: 'string' },
    systems: { type: 'string' },
    'noise-floor': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
    ...addonOption,
  },
  USAGE,
);
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
const durationS = Number(opts.duration ?? (opts.quick ? 0.3 : 0.5));
const warmS = opts.quick ? 0.1 : 0.2;
const n = Number(opts.n);
const spreadMs = Number(opts['spread-ms']);
const chunk = Number(opts.chunk);
if (!Number.isInteger(runs) || runs < 1 || runs > 50 || !(durationS > 0 && durationS <= 30) || !(Number.isInteger(n) && n >= 2 && n <= 2_000_000)) {
  console.error(`--runs: 1..50; --duration: (0, 30] s; --n: 2..2e6\n${USAGE}`);
  process.exit(2);
}
if (!(Number.isInteger(spreadMs) && spreadMs >= 1 && spreadMs <= 1000) || !(Number.isInteger(chunk) && chunk >= 1 && chunk <= 1e6)) {
  console.error(`--spread-ms: 1..1000; --chunk: 1..1e6\n${USAGE}`);
  process.exit(2);
}
const nLabel = n % 1000 === 0 ? `${n / 1000}k` : String(n);
const CASES = [
  { label: 'arm-disarm-1', kase: 'arm-disarm', n: 1 },
  { label: `arm-disarm-${nLabel}`, kase: 'arm-disarm', n },
  { label: 'arm-fire-1', kase: 'arm-fire', n: 1 },
  { label: `arm-fire-${nLabel}`, kase: 'arm-fire', n },
];
const memLabel = `armed-${nLabel}`;
const wantCases = opts.cases ? opts.cases.split(',').map((s) => s.trim().replace(/-N$/, `-${nLabel}`)) : CASES.map((c) => c.label);
const badCase = wantCases.filter((c) => !CASES.some((x) => x.label === c));
if (badCase.length) {
  console.error(`--cases: unknown ${badCase.join(', ')} (known: ${CASES.map((c) => c.label).join(', ')})\n${USAGE}`);
  process.exit(2);
}
const cases = CASES.filter((c) => wantCases.includes(c.label));
const outFile = opts.out ?? join(benchDir, 'results', 'timers.json');
const cores = os.availableParallelism?.() ?? os.cpus().length;

const iappScript = join(benchDir, 'servers', 'iapp-timers.mjs');
const nodeScript = join(benchDir, 'peers', 'node-timers.mjs');
let allSystems = [
  { name: IAPP, kind: 'iapp', script: iappScript, when: () => true },
  { name: PEER, kind: 'peer', script: nodeScript, when: () => true },
  { name: REFRESH, kind: 'alt', script: nodeScript, extra: ['--refresh'], when: (c) => c.kase === 'arm-disarm' && c.n > 1 },
  { name: IAPP0, kind: 'info', script: iappScript, extra: ['--delay-ms', '0'], when: (c) => c.kase === 'arm-fire' && c.n === 1 },
];
if (opts['noise-floor']) allSystems.push({ name: NOISE, kind: 'noise', script: nodeScript, when: () => true });
if (opts.systems) {
  const want = opts.systems.split(',').map((s) => s.trim());
  const unknown = want.filter((w) => !allSystems.some((s) => s.name === w));
  if (unknown.length) {
    console.error(`--systems: unknown ${unknown.join(', ')} (known: ${allSystems.map((s) => s.name).join(', ')})`);
    process.exit(2);
  }
  allSystems = allSystems.filter((s) => want.includes(s.name));
}
if (allSystems.some((s) => s.script === iappScript) && !existsSync(INDEX)) {
  log(`NOTE: ${relative(root, INDEX)} not built (npx tsc -p tsconfig.json): skipping ${IAPP} and ${IAPP0}`);
  allSystems = allSystems.filter((s) => s.script !== iappScript);
}
allSystems = withAddons(allSystems, opts.addon);
const systemsOf = (c) => allSystems.filter((s) => s.when(c));
if (!cases.some((c) => systemsOf(c).length)) {
  console.error('no systems to run');
  process.exit(2);
}

// ---- one run -------------------------------------------------------------------------------------
/** Measured seconds of a run: arm-fire-N doubles --duration (Node's batches vary with its GC: more of them). */
const runDuration = (c) => (c.kase === 'arm-fire' && c.n > 1 ? 2 : 1) * durationS;
function runArgs(sys, c) {
  const args = ['--expose-gc', sys.script, '--case', c.kase, '--n', String(c.n), '--duration', String(runDuration(c)), '--warmup-s', String(warmS), '--chunk', String(chunk), '--spread-ms', String(spreadMs)];
  if (c.kase === 'arm-fire' && c.n === 1) args.push('--delay-ms', '1');
  if (sys.extra) args.push(...sys.extra); // iapp-0ms's --delay-ms 0 comes last and wins
  return args;
}

async function runOnce(sys, c) {
  const timeoutS = 60 + 3 * (runDuration(c) + warmS) + c.n / 20_000;
  const row = await measureRun(
    async () => {
      const r = await runClient({ name: sys.name, cmd: node, args: runArgs(sys, c), cwd: root, env: sys.env }, { timeoutS });
      if (r.exitCode !== 0) throw new Error(`${sys.name} exited with code ${r.exitCode}${r.stderr ? `: ${r.stderr.split('\n').slice(-3).join(' | ')}` : ''}`);
      const flags = {};
      if (r.fired > 0) flags['timers fired that should not have'] = r.fired;
      if (r.mem && !r.mem.gc) flags['no --expose-gc: memory without GC'] = 1;
      // The run's own CPU is what it reported just before exiting: its teardown is not in it.
      return { ownCpuS: Number(r.cpuTotalS), flags, seconds: r.seconds, cores: r.cores, cpuS: r.cpuS, report: r };
    },
    { selfIsOwn: true },
  );
  const r = row.report;
  if (c.kase === 'arm-disarm') {
    if (!(r.opsPerS > 0)) throw new Error(`${sys.name}: no pairs measured`);
    Object.assign(row, { rate: r.opsPerS, ops: r.ops });
    if (c.n > 1) {
      row.setupMs = (r.allocMs ?? 0) + r.armAllMs; // allocating (iapp) and arming all n: outside the timing
      // Per timer, cold (the first n of the process): loop.timer() + arm() against setTimeout().
      row.setupPerTimer = (row.setupMs * 1000) / c.n;
    }
    if (r.mem) Object.assign(row, { rssPerTimer: r.mem.rssPerTimer, jsPerTimer: r.mem.jsPerTimer, heapPerTimer: r.mem.heapPerTimer, externalPerTimer: r.mem.externalPerTimer });
  } else {
    if (!(r.firesPerS > 0)) throw new Error(`${sys.name}: no fires measured`);
    Object.assign(row, { rate: r.firesPerS, fires: r.fires, cpuPerFire: r.cpuPerFireUs });
    if (c.n === 1) row.intervalUs = r.intervalUs;
    else Object.assign(row, { batches: r.batches, batchMs: summarize(r.batchMs).median, batchMsMax: Math.max(...r.batchMs) });
  }
  return row;
}

// ---- summaries -----------------------------------------------------------------------------------
function summarizeCase(c, rows, systems) {
  const common = { cores: 'cores', seconds: 'seconds' };
  // Ratios against node; iapp's against node-refresh too (arm-disarm-N).
  const peers = [PEER, REFRESH];
  if (c.kase === 'arm-disarm') {
    const mem = c.n > 1 ? { setupMs: 'setupMs', setupPerTimer: 'setupPerTimer', rssPerTimer: 'rssPerTimer', jsPerTimer: 'jsPerTimer', heapPerTimer: 'heapPerTimer', externalPerTimer: 'externalPerTimer' } : {};
    return summarizeSystems(rows, systems, { metrics: { throughput: 'rate', ops: 'ops', ...mem, ...common }, peers, ratios: { throughput: 'rate', ...(c.n > 1 ? { rssPerTimer: 'rssPerTimer', jsPerTimer: 'jsPerTimer', setupPerTimer: 'setupPerTimer' } : {}) } });
  }
  const extra = c.n === 1 ? { intervalUs: 'intervalUs' } : { batchMs: 'batchMs', batchMsMax: 'batchMsMax', batches: 'batches' };
  return summarizeSystems(rows, systems, { metrics: { throughput: 'rate', fires: 'fires', cpuPerFire: 'cpuPerFire', ...extra, ...common }, peers, ratios: { throughput: 'rate', cpuPerFire: 'cpuPerFire' } });
}

/** "median (min-max)" of a ratio oriented so that > 1 means the system beats `peer`. */
function betterCell(s, peer, metric) {
  const v = s.vs[peer]?.[metric];
  if (!v) return s.system === peer ? '1' : '-';
  return rng(COSTS.includes(metric) ? invertedRatio(v) : v);
}
const M = (x) => (Number.isFinite(x) ? (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0)) : '-');
const mRng = (s) => (s.n ? `${M(s.median)} (${M(s.min)}-${M(s.max)})` : '-');
const notesOf = (s) => [...(s.failedRuns ? [`${s.failedRuns} failed run(s)`] : []), ...s.notes].join('; ');

function caseTitle(c) {
  if (c.kase === 'arm-disarm' && c.n === 1) return `== timers ${c.label}: one timer, arm(1e6 ms)+disarm() vs setTimeout(fn, 1e6)+clearTimeout, a loop turn every ${chunk} pairs`;
  if (c.kase === 'arm-disarm') return `== timers ${c.label}: ${c.n.toLocaleString('en-US')} armed (1000 + i % 1000 ms), round-robin disarm+arm vs clearTimeout+setTimeout (node-refresh: refresh()), a loop turn every ${chunk} pairs`;
  if (c.n === 1) return `== timers ${c.label}: one timer re-armed with 1 ms from its callback (${IAPP0}: arm(0); Node has no delay below 1 ms)`;
  return `== timers ${c.label}: batches of ${c.n.toLocaleString('en-US')} timers armed with 1..${spreadMs} ms, first arm -> last callback`;
}

function printTable(c, summary) {
  log('');
  log(`${caseTitle(c)}; ${runDuration(c)} s per run, ${runs} rounds`);
  const unit = c.kase === 'arm-disarm' ? 'pairs/s' : 'fires/s';
  const hasRefresh = summary.some((s) => s.system === REFRESH && s.runs);
  const cols = [
    ['system', 13],
    [`${unit} (min-max)`, 26],
    ...(c.kase === 'arm-fire' ? [[c.n === 1 ? 'thread CPU µs/fire' : 'CPU µs/fire', 20], [c.n === 1 ? 'interval µs' : 'batch ms (max)', 15]] : []),
    ['cores', 6],
    [`vs ${PEER}`, 18],
    ...(c.kase === 'arm-fire' ? [[`CPU/fire vs ${PEER}`, 19]] : []),
    ...(hasRefresh ? [[`vs ${REFRESH}`, 18]] : []),
    ['notes', 0],
  ];
  logTable(
    cols,
    summary
      .filter((s) => s.runs || s.failedRuns)
      .map((s) => [
        s.system,
        mRng(s.throughput),
        ...(c.kase === 'arm-fire' ? [rng(s.cpuPerFire, 2), c.n === 1 ? f(s.intervalUs.median, 0) : `${f(s.batchMs.median, 1)} (${f(s.batchMsMax.max, 1)})`] : []),
        f(s.cores.median),
        s.kind === 'info' ? 'n/a' : betterCell(s, PEER, 'throughput'),
        ...(c.kase === 'arm-fire' ? [s.kind === 'info' ? 'n/a' : betterCell(s, PEER, 'cpuPerFire')] : []),
        ...(hasRefresh ? [s.kind === 'iapp' ? betterCell(s, REFRESH, 'throughput') : s.system === REFRESH ? '1' : ''] : []),
        notesOf(s),
      ]),
  );
  if (c.kase === 'arm-disarm' && c.n > 1) {
    log('');
    log(`== timers ${memLabel}: memory per armed timer with ${c.n.toLocaleString('en-US')} armed (after GC; from the ${c.label} runs, before their churn)`);
    log(`   setup: allocating (iapp: loop.timer()) and arming all of them once, an event-loop turn included; outside the timed rates`);
    logTable(
      [
        ['system', 13],
        ['RSS B/timer (min-max)', 24],
        ['JS B/timer (min-max)', 24],
        ['heap B', 8],
        ['external B', 11],
        [`RSS vs ${PEER}`, 18],
        [`JS vs ${PEER}`, 18],
        ['setup µs/timer', 0],
      ],
      summary.filter((s) => s.runs).map((s) => [s.system, rng(s.rssPerTimer, 0), rng(s.jsPerTimer, 0), f(s.heapPerTimer.median, 0), f(s.externalPerTimer.median, 0), betterCell(s, PEER, 'rssPerTimer'), betterCell(s, PEER, 'jsPerTimer'), f((s.setupMs.median * 1000) / c.n)]),
    );
  }
}

/** The `--json` lines of a case (and of armed-N for arm-disarm-N). */
function jsonLines(c, summary) {
  const unit = c.kase === 'arm-disarm' ? 'pairs/s' : 'fires/s';
  const metrics = c.kase === 'arm-disarm' ? [['throughput', unit]] : [['throughput', unit], ['cpuPerFire', 'µs']];
  const common = { peer: PEER, peerKinds: ['iapp', 'noise'], refKinds: [], costMetrics: COSTS };
  const withRefresh = (l) => {
    const s = summary.find((x) => x.system === l.system);
    const v = s?.kind === 'iapp' && s.vs[REFRESH]?.[l.metric];
    if (!v) return l;
    const r = COSTS.includes(l.metric) ? invertedRatio(v) : v;
    return { ...l, peer2: REFRESH, ratio2: r.median, ratio2Min: r.min, ratio2Max: r.max };
  };
  // Distinct metric names for the two rates (the report's tables take one unit per metric name).
  const rateMetric = c.kase === 'arm-disarm' ? 'armDisarmRate' : 'armFireRate';
  const lines = caseJsonLines('timers', c.label, summary, { ...common, metrics }).map((l) => {
    const o = { ...l, metric: l.metric === 'throughput' ? rateMetric : l.metric, timers: c.n };
    if (l.system === IAPP0) o.note = 'arm(0): due at once; Node cannot arm below 1 ms, so no ratio';
    if (c.kase === 'arm-fire' && c.n === 1 && l.system !== IAPP0) o.delayMs = 1;
    return withRefresh(o);
  });
  if (c.kase === 'arm-disarm' && c.n > 1) {
    const mem = caseJsonLines('timers', memLabel, summary, { ...common, metrics: [['rssPerTimer', 'B/timer'], ['jsPerTimer', 'B/timer'], ['setupPerTimer', 'µs/timer']] }).map((l) => withRefresh({ ...l, timers: c.n, from: c.label }));
    lines.push(...mem);
  }
  return lines;
}

// ---- main ----------------------------------------------------------------------------------------
const results = newResults('timers', {
  runs,
  durationS,
  warmS,
  n,
  spreadMs,
  chunk,
  cases: cases.map((c) => c.label),
  cores,
  systems: allSystems.map((s) => ({ name: s.name, kind: s.kind, script: relative(root, s.script), extra: s.extra ?? [], ...(s.backend ? { addon: s.backend } : {}) })),
  definitions: {
    'arm-disarm': `pairs per second: one pair = disarm+arm of one timer (iapp) or clearTimeout+setTimeout (node) or refresh() (node-refresh), ${chunk} pairs between event-loop turns, the turns inside the timing; n=1: arm(1e6 ms)+disarm() / setTimeout(fn, 1e6)+clearTimeout; n>1: n timers armed with 1000 + i % 1000 ms throughout`,
    'arm-fire-1': 'fires per second of one timer re-armed with 1 ms from its own callback (iapp-0ms: arm(0)); cpuPerFire: CPU µs per fire of the thread running the chain (/proc/thread-self/schedstat; the process\'s when that cannot be read: see the runs\' cpuPerFireOf)',
    'arm-fire-N': `fires per second: n / (first arm -> last callback) over batches of n timers armed with 1 + i % ${spreadMs} ms; cpuPerFire: process CPU µs per fire (gaps between batches included)`,
    'armed-N': 'bytes per armed timer: process.memoryUsage() after GC, (after arming n - before the n timers existed) / n; rssPerTimer: RSS; jsPerTimer: heapUsed + external (external includes arrayBuffers)',
    jsonMetrics: 'armDisarmRate (pairs/s) in arm-disarm-*, armFireRate (fires/s) and cpuPerFire (µs) in arm-fire-*, rssPerTimer and jsPerTimer (B/timer) and setupPerTimer (µs: creating and arming each of the n timers, the first of the process, so cold; Node: setTimeout) in armed-N',
    cores: 'CPU seconds of the run process (all threads) per second of the measured phase',
    ratio: `median over rounds of the per-round ratio, > 1 = iapp better: iapp/${PEER} for rates, ${PEER}/iapp for CPU per fire and bytes per timer; peer2/ratio2: the same against ${REFRESH}`,
  },
});
const save = () => writeResults(outFile, results);
// Per run: process start-up, a runtime for iapp, the quiet check (~0.6 s), warm-up, the measured
// phase, and for n timers their allocation and the GCs around the memory snapshots (~0.4 s).
const estRun = (c) => runDuration(c) + warmS + 0.6 + (c.n > 1 ? 0.4 + c.n / 1e6 : 0);
const estimate = cases.reduce((a, c) => a + systemsOf(c).length * runs * estRun(c), 0);
log(`timers bench: ${cases.map((c) => `${c.label} × ${systemsOf(c).map((s) => s.name).join('/')}`).join(', ')}; ${runs} rounds; about ${Math.ceil(estimate)} s on ${cores} cores`);
const plannedRuns = cases.reduce((a, c) => a + systemsOf(c).length * runs, 0);
const runner = interleavedRunner({ results, plannedRuns, maxRetriesShare: MAX_RETRIES_SHARE, failIndent: '  ' });
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(13)} ${M(row.rate)} ${row.case.startsWith('arm-disarm') ? 'pairs/s' : 'fires/s'}` +
      (row.cpuPerFire !== undefined ? `  CPU ${f(row.cpuPerFire)} µs/fire` : '') +
      (row.batchMs !== undefined ? `  batch ${f(row.batchMs, 1)} ms × ${row.batches}` : '') +
      (row.rssPerTimer !== undefined ? `  RSS ${f(row.rssPerTimer, 0)} B/timer  JS ${f(row.jsPerTimer, 0)} B/timer` : '') +
      `  cores ${f(row.cores)}${row.notes.length ? `  [${row.notes.join('; ')}]` : ''}`,
  );
const targetLines = [];
const memLines = [];
for (const c of cases) {
  const systems = systemsOf(c);
  if (!systems.length) continue;
  const rows = await runner.runCase({ label: c.label, base: { timers: c.n }, systems, runs, runOnce: (sys) => runOnce(sys, c), logRow: logRun });
  const summary = summarizeCase(c, rows, systems);
  results.summary.push({ case: c.label, timers: c.n, systems: summary });
  printTable(c, summary);
  const iapp = summary.find((s) => s.system === IAPP);
  if (iapp?.vs[PEER]) {
    const r = iapp.vs[PEER].throughput;
    let line = `target ${c.label}: >= ${TARGET}x ${PEER}'s rate: ${r.median >= TARGET ? 'met' : 'NOT met'} (${f(r.median)}x, rounds ${f(r.min)}-${f(r.max)})`;
    if (c.kase === 'arm-fire') {
      const cpu = invertedRatio(iapp.vs[PEER].cpuPerFire);
      line += `; CPU per fire ${PEER}/iapp ${f(cpu.median)}x (rounds ${f(cpu.min)}-${f(cpu.max)})`;
      if (c.n === 1) line += ` [a 1 ms chain: the delay sets both rates]`;
    }
    const rf = iapp.vs[REFRESH]?.throughput;
    if (rf) line += `; vs ${REFRESH}: ${f(rf.median)}x (rounds ${f(rf.min)}-${f(rf.max)})`;
    targetLines.push(line);
    if (iapp.vs[PEER].rssPerTimer) {
      const peer = summary.find((s) => s.system === PEER);
      const rr = invertedRatio(iapp.vs[PEER].rssPerTimer);
      const jr = invertedRatio(iapp.vs[PEER].jsPerTimer);
      memLines.push(`memory per armed timer (${memLabel}): RSS iapp ${f(iapp.rssPerTimer.median, 0)} B, ${PEER} ${f(peer.rssPerTimer.median, 0)} B (${PEER}/iapp ${f(rr.median)}, rounds ${f(rr.min)}-${f(rr.max)}); JS heap+external iapp ${f(iapp.jsPerTimer.median, 0)} B, ${PEER} ${f(peer.jsPerTimer.median, 0)} B (${f(jr.median)})`);
    }
  }
  if (opts.json) writeJsonLines(jsonLines(c, summary));
  save();
}
runner.finish();
results.targets = targetLines;
results.memory = memLines;
save();
log('');
log(`Rates include event-loop turns (arm-disarm: one per ${chunk} pairs), so iapp's loop applies what was armed inside the timing.`);
log(`iapp coalesces: a timer disarmed and re-armed between two loop turns costs one heap update; Node unlinks, allocates a new Timeout and links it.`);
log(`arm-fire-1 runs both at 1 ms (setTimeout(fn, 0) is 1 ms in Node): its fires/s is the delay's, CPU per fire (the chain's thread) the implementation's.`);
log(`cores: CPU of the run's process (all its threads) per second of the measured phase (${cores} cores here).`);
log(`"vs ${PEER}": median (min-max) over rounds of the per-round ratio, > 1 = iapp better (iapp/peer for rates, peer/iapp for CPU and bytes).`);
for (const t of [...targetLines, ...memLines]) log(t);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
// Exit 0 only if every system measured every case it runs.
const complete = results.summary.every((c) => c.systems.every((s) => s.runs > 0));
if (!complete) log('Some system measured nothing in some case (see the failures above): exit 1.');
process.exit(complete ? 0 : 1);
