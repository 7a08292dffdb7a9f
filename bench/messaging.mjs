// The messaging scenario: iapp's cross-thread messaging against worker_threads MessagePort
// between the same threads of one process, and its round trip against a C eventfd ping-pong.
//
//   node bench/messaging.mjs [--quick] [--runs N] [--duration S] [--n N] [--senders S]
//                            [--cases oneway-1,oneway-3,rtt] [--systems iapp,iapp-busypoll,MessagePort,c-eventfd]
//                            [--window K] [--noise-floor] [--json] [--out FILE]
//
// Systems (each run a fresh process, so one run's heap and queues do not carry into the next):
//   iapp         bench/servers/iapp-messaging.mjs: loop threads of one runtime
//                (bench/servers/iapp-messaging-loop.mjs), loop.tryPost() + await loop.space()
//   iapp-busypoll  the same with createRuntime({ busyPollUs: 50 }): loops poll their inbox for
//                50 µs after taking messages before sleeping (CPU for latency)
//   MessagePort  bench/peers/messageport.mjs: plain Workers, a MessageChannel per sender made in
//                the main thread and transferred to the two ends, port.postMessage() (structured
//                clone); a sender may have --window messages unacknowledged (the receiver acks
//                every window/4), which bounds the queue's memory
//   c-eventfd    bench/reference/pingpong.c, rtt only (and only with the bytes payload): two
//                pthreads, each in epoll_wait on its own eventfd, writing each other's: the floor
//                of a round trip between two threads that sleep, no JavaScript and no payload
// Cases (Uint8Array(16) payloads by default, or with --payload object a small object; the same
// value every post, which both systems copy):
//   oneway-1   one sender thread posts to one receiver thread, which counts the messages
//   oneway-3   three sender threads to one receiver: 4 busy threads on a 2-core machine
//   rtt        ping-pong between two threads, one round trip in flight
// A run is --duration seconds of posting (or of round trips) after an uncounted warm-up (0.3 s;
// 0.2 with --quick); with --n, the oneway senders post N messages in all instead. Each sender
// ends with an end marker that follows its messages; msgs/s = messages posted / (first post of
// the earliest sender -> the receiver handling the last marker), on process.hrtime
// (CLOCK_MONOTONIC, the same clock in every thread), so the drain after the senders stop is
// included; a run whose receiver counted other than what was posted fails. rtt p50/p99 in µs
// from every sample of the run. "cores": CPU of the run's process (all threads) during the
// measured phase per second of it. Equal durations rather than equal counts keep the slower
// system's runs bounded and the faster one's long enough to measure.
// Systems are interleaved (A B A B ...), 3 rounds (2 with --quick); ratios are medians of
// per-round ratios, oriented so that > 1 means iapp is better (iapp/peer for msgs/s, peer/iapp
// for latency); the iapp systems' rtt rows are also compared with c-eventfd (refPeer/refRatio,
// c-eventfd/iapp, the same orientation; target: iapp's p50 <= 1.5x C's, i.e. refRatio >= 0.67).
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runClient } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { addonOption, addonUsage, withAddons } from './lib/addon.mjs';
import { PAYLOADS } from './lib/payload.mjs';
import { buildReference } from './lib/reference.mjs';
import { caseJsonLines, f, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, rng, runnableSystems, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const INDEX = join(root, 'dist', 'src', 'index.js');
const IAPP = 'iapp';
const IAPP_BUSY = 'iapp-busypoll';
const PEER = 'MessagePort';
const NOISE = 'MessagePort-2';
const C_REF = 'c-eventfd';
// iapp's round trip p50 at most this many times the C eventfd ping-pong's.
const C_LATENCY_TARGET = 1.5;
const MAX_RETRIES_SHARE = 0.15;
const CASES = ['oneway-1', 'oneway-3', 'rtt'];
// Bytes: >= 5x the msgs/s, <= 1/3 the round trip. Small objects (which both systems must clone):
// >= 2x the msgs/s, and no round-trip target.
const TARGETS_BY_PAYLOAD = { bytes: { throughput: 5, latency: 3 }, object: { throughput: 2, latency: undefined } };

const USAGE = `usage: node bench/messaging.mjs [options]
  --quick            2 rounds of 0.5 s runs (about 20 s)
  --runs N           rounds (default 3; 2 with --quick)
  --duration S       seconds of posting (oneway) or of round trips (rtt) per run (default 1; 0.5 with --quick)
  --n N              oneway runs post N messages (all senders together) instead of posting for --duration
  --senders S        sender threads of the oneway-3 case (default 3; the case is named after it)
  --cases LIST       ${CASES.join(',')} (default all)
  --systems LIST     ${IAPP},${IAPP_BUSY},${PEER},${C_REF} (default all; ${C_REF}, the C floor, runs only
                     in rtt with the bytes payload)
  --payload P        bytes (Uint8Array(16), default) or object ({ i: 1, s: 'abc' }, structured-cloned)
  --window K         MessagePort: messages a sender may have unacknowledged (default 262144)
  --noise-floor      add a second MessagePort ("${NOISE}"): its ratio to ${PEER} is the A/A floor
  --json             one JSON line per case, system and metric on stdout
  --out FILE         results file (default bench/results/messaging.json)
${addonUsage}`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    n: { type: 'string' },
    duration: { type: 'string' },
    senders: { type: 'string', default: '3' },
    cases: { type: 'string' },
    systems: { type: 'string' },
    window: { type: 'string', default: '262144' },
    payload: { type: 'string', default: 'bytes' },
    'noise-floor': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
    ...addonOption,
  },
  USAGE,
);
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
const n = opts.n === undefined ? undefined : Number(opts.n);
const durationS = Number(opts.duration ?? (opts.quick ? 0.5 : 1));
const manySenders = Number(opts.senders);
const window = Number(opts.window);
const warmS = opts.quick ? 0.2 : 0.3;
if (!Number.isInteger(runs) || runs < 1 || runs > 50 || !(n === undefined || (Number.isInteger(n) && n >= 1000 && n <= 1e8))) {
  console.error('--runs: 1..50; --n: 1000..1e8');
  process.exit(2);
}
if (!(durationS > 0 && durationS <= 60) || !Number.isInteger(manySenders) || manySenders < 2 || manySenders > 16 || !Number.isInteger(window) || window < 16) {
  console.error('--duration: (0, 60] s; --senders: 2..16; --window: >= 16');
  process.exit(2);
}
if (!(opts.payload in PAYLOADS)) {
  console.error(`--payload: bytes or object, got ${opts.payload}`);
  process.exit(2);
}
const payloadText = PAYLOADS[opts.payload];
const manyCase = `oneway-${manySenders}`;
const allCases = ['oneway-1', manyCase, 'rtt'];
const cases = opts.cases ? opts.cases.split(',').map((s) => s.trim().replace(/^oneway-3$/, manyCase)) : allCases;
const badCase = cases.filter((c) => !allCases.includes(c));
if (badCase.length) {
  console.error(`--cases: unknown ${badCase.join(', ')} (known: ${allCases.join(', ')})\n${USAGE}`);
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', opts.payload === 'object' ? 'messaging-object.json' : 'messaging.json');
const cores = os.availableParallelism?.() ?? os.cpus().length;

let systems = [
  { name: IAPP, kind: 'iapp', script: join(benchDir, 'servers', 'iapp-messaging.mjs') },
  // The same with the runtime's busyPollUs: a loop polls its inbox for 50 µs after taking
  // messages before its thread sleeps, trading CPU for the thread wake-up.
  { name: IAPP_BUSY, kind: 'iapp', script: join(benchDir, 'servers', 'iapp-messaging.mjs'), extra: ['--busy-poll-us', '50'] },
  { name: PEER, kind: 'peer', script: join(benchDir, 'peers', 'messageport.mjs') },
  // The floor: two threads waking each other through epoll + eventfd. It carries no payload, so
  // it is the reference of the bytes round trip only.
  { name: C_REF, kind: 'reference', source: join(benchDir, 'reference', 'pingpong.c') },
];
if (opts['noise-floor']) systems.push({ name: NOISE, kind: 'noise', script: join(benchDir, 'peers', 'messageport.mjs') });
const cRefRuns = cases.includes('rtt') && opts.payload === 'bytes';
systems = withAddons(runnableSystems(selectSystems(systems, opts.systems).filter((s) => s.kind !== 'reference' || cRefRuns), INDEX), opts.addon);
for (const s of systems.filter((x) => x.kind === 'reference')) {
  try {
    s.cmd = buildReference('pingpong', { log });
  } catch (err) {
    console.error(`messaging bench: ${err.message}`);
    process.exit(1);
  }
}
/** The systems of a case: the C reference has only the round trip. */
const caseSystems = (kase) => systems.filter((s) => s.kind !== 'reference' || kase === 'rtt');

/** Threads the case keeps busy (the main thread of the run's process only waits). */
const busyThreads = (kase) => (kase === 'rtt' ? 2 : Number(kase.split('-')[1]) + 1);

// ---- one run -------------------------------------------------------------------------------------
function runArgs(sys, kase) {
  const args = [...(sys.cmd ? [] : [sys.script]), '--warmup-s', String(warmS)];
  if (kase === 'rtt') args.push('--case', 'rtt', '--duration', String(durationS));
  else if (n !== undefined) args.push('--case', 'oneway', '--senders', kase.split('-')[1], '--n', String(n), '--duration', '600');
  else args.push('--case', 'oneway', '--senders', kase.split('-')[1], '--duration', String(durationS));
  if (sys.kind !== 'iapp' && kase !== 'rtt') args.push('--window', String(window));
  if (sys.extra) args.push(...sys.extra);
  return args;
}

async function runOnce(sys, kase) {
  const timeoutS = kase !== 'rtt' && n !== undefined ? 30 + n / 50_000 : 30 + 3 * (durationS + warmS);
  const row = await measureRun(
    async () => {
      const r = await runClient({ name: sys.name, cmd: sys.cmd ?? node, args: runArgs(sys, kase), cwd: root, env: { ...sys.env, BENCH_MESSAGE_PAYLOAD: opts.payload } }, { timeoutS });
      if (r.exitCode !== 0) throw new Error(`${sys.name} exited with code ${r.exitCode}${r.stderr ? `: ${r.stderr.split('\n').slice(-3).join(' | ')}` : ''}`);
      // The run's own CPU is what it reported just before exiting: its teardown is not in it.
      return { ownCpuS: Number(r.cpuTotalS), seconds: r.seconds, cores: r.cores, cpuS: r.cpuS, report: r };
    },
    { selfIsOwn: true },
  );
  const r = row.report;
  if (kase === 'rtt') {
    if (!(r.count > 0)) throw new Error(`${sys.name}: no round trips measured`);
    Object.assign(row, { count: r.count, p50Us: r.p50Us, p99Us: r.p99Us, meanUs: r.meanUs, maxUs: r.maxUs });
  } else {
    if (!(r.msgsPerS > 0)) throw new Error(`${sys.name}: no messages measured`);
    Object.assign(row, { msgsPerS: r.msgsPerS, msgs: r.n, postS: r.postS, waits: r.fullWaits ?? r.ackWaits });
  }
  return row;
}

// ---- summaries -----------------------------------------------------------------------------------
const peersOf = [PEER];
function summarizeCase(kase, rows) {
  const common = { cores: 'cores', seconds: 'seconds' };
  if (kase === 'rtt') {
    return summarizeSystems(rows, caseSystems(kase), {
      metrics: { 'latency-p50': 'p50Us', 'latency-p99': 'p99Us', mean: 'meanUs', count: 'count', ...common },
      peers: [...peersOf, C_REF],
      ratios: { 'latency-p50': 'p50Us', 'latency-p99': 'p99Us' },
    });
  }
  return summarizeSystems(rows, caseSystems(kase), { metrics: { throughput: 'msgsPerS', msgs: 'msgs', waits: 'waits', ...common }, peers: peersOf, ratios: { throughput: 'msgsPerS' } });
}

/** "median (min-max)" of a ratio oriented so that > 1 means the system beats the peer. */
function betterCell(s, metric, cost, peer = PEER) {
  const v = s.vs[peer]?.[metric];
  if (!v) return s.system === peer ? '1' : '-';
  return rng(cost ? invertedRatio(v) : v);
}
const M = (x) => (Number.isFinite(x) ? `${(x / 1e6).toFixed(3)}M` : '-');
const mRng = (s) => (s.n ? `${M(s.median)} (${M(s.min)}-${M(s.max)})` : '-');

function caseNote(kase) {
  const t = busyThreads(kase);
  if (t <= cores) return undefined;
  return `${t} busy threads (${t - 1} senders + 1 receiver) on ${cores} cores: the threads take turns on the cores, for both systems`;
}

function printTable(kase, summary) {
  log('');
  const note = caseNote(kase);
  if (kase === 'rtt') {
    log(`== messaging rtt: ping-pong between 2 threads, ${payloadText}, one in flight, ${durationS} s per run, ${runs} rounds`);
    const cols = [
      ['system', 14],
      ['p50 µs (min-max)', 22],
      ['p99 µs (min-max)', 24],
      ['mean µs', 8],
      ['round trips', 12],
      ['cores', 6],
      [`p50 vs ${PEER}`, 20],
      [`p99 vs ${PEER}`, 20],
      [`p50 vs ${C_REF}`, 20],
      ['notes', 0],
    ];
    logTable(
      cols,
      summary.map((s) => [
        s.system,
        rng(s['latency-p50'], 1),
        rng(s['latency-p99'], 1),
        f(s.mean.median, 1),
        Number.isFinite(s.count.median) ? Math.round(s.count.median) : '-',
        f(s.cores.median),
        betterCell(s, 'latency-p50', true),
        betterCell(s, 'latency-p99', true),
        betterCell(s, 'latency-p50', true, C_REF),
        [...(s.failedRuns ? [`${s.failedRuns} failed run(s)`] : []), ...s.notes].join('; '),
      ]),
    );
  } else {
    const k = Number(kase.split('-')[1]);
    log(`== messaging ${kase}: ${k} sender thread${k > 1 ? 's' : ''} -> 1 receiver, ${payloadText}, ${n === undefined ? `${durationS} s of posting` : `${n.toLocaleString('en-US')} messages`} per run, ${runs} rounds`);
    if (note) log(`NOTE: ${note}`);
    const cols = [
      ['system', 14],
      ['msgs/s (min-max)', 28],
      ['messages', 10],
      ['seconds', 8],
      ['cores', 6],
      ['waits', 7],
      [`vs ${PEER}`, 20],
      ['notes', 0],
    ];
    logTable(
      cols,
      summary.map((s) => [
        s.system,
        mRng(s.throughput),
        M(s.msgs.median),
        f(s.seconds.median),
        f(s.cores.median),
        Number.isFinite(s.waits.median) ? Math.round(s.waits.median) : '-',
        betterCell(s, 'throughput', false),
        [...(s.failedRuns ? [`${s.failedRuns} failed run(s)`] : []), ...s.notes].join('; '),
      ]),
    );
  }
}

// ---- main ----------------------------------------------------------------------------------------
const results = newResults('messaging', {
  runs,
  durationS,
  n: n ?? null,
  warmS,
  payload: `${payloadText}, the same value every post (both systems copy it)`,
  window,
  cases,
  cores,
  systems: systems.map((s) => ({ name: s.name, kind: s.kind, ...(s.cmd ? { cmd: relative(root, s.cmd), source: relative(root, s.source) } : { script: relative(root, s.script) }), ...(s.backend ? { addon: s.backend } : {}) })),
  definitions: {
    throughput: 'messages per second: messages posted in durationS (or n) / (first post of the earliest sender -> the receiver handling the last sender\'s end marker, which follows its messages), hrtime (CLOCK_MONOTONIC) in every thread; the drain is included; after an uncounted warm-up transfer of warmS seconds',
    'latency-p50': `µs: median round trip (hrtime before the ping post -> the pong handler; ${C_REF}: CLOCK_MONOTONIC before the eventfd write -> after the reply's read), one in flight, over every sample of a run after \`warmS\` s of warm-up`,
    'latency-p99': 'µs: 99th percentile of the same samples',
    cores: 'CPU seconds of the run process (all threads) per second of the measured phase',
    waits: 'iapp: tryPost() found the inbox full (then await space()); MessagePort: a sender had `window` messages unacknowledged and waited for an ack',
    ratio: `median over rounds of the per-round ratio, > 1 = iapp better: iapp/${PEER} for msgs/s, ${PEER}/iapp for latency; refPeer/refRatio on the iapp systems' rtt lines: the same against ${C_REF} (${C_REF}/iapp; target >= ${f(1 / C_LATENCY_TARGET)}, i.e. iapp's p50 <= ${C_LATENCY_TARGET}x C's)`,
  },
});
const save = () => writeResults(outFile, results);
// Per run: process start-up and the quiet check (~0.6 s), warm-up and measured phase, and for
// oneway the receiver's drain (MessagePort: up to --window messages, ~0.5 s at its rates).
const estRun = (kase, sys) => durationS + warmS + 0.6 + (kase === 'rtt' ? 0 : n !== undefined ? n / (sys.kind === 'iapp' ? 2e6 : 3e5) : sys.kind === 'iapp' ? 0.1 : 0.8);
const estimate = cases.reduce((a, c) => a + caseSystems(c).reduce((b, s) => b + estRun(c, s) * runs, 0), 0);
log(`messaging bench: ${cases.join(', ')} × ${systems.map((s) => s.name).join(', ')} × ${runs} rounds; about ${Math.ceil(estimate)} s on ${cores} cores`);
if (cases.some((c) => busyThreads(c) > cores)) log(`NOTE: ${manyCase} runs ${busyThreads(manyCase)} busy threads on ${cores} cores`);
const runner = interleavedRunner({ results, plannedRuns: cases.reduce((a, c) => a + caseSystems(c).length, 0) * runs, maxRetriesShare: MAX_RETRIES_SHARE, failIndent: '  ' });
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(13)} ` +
      (row.case === 'rtt' ? `p50 ${f(row.p50Us, 1)} µs  p99 ${f(row.p99Us, 1)} µs  ${row.count} round trips` : `${M(row.msgsPerS)} msgs/s  ${M(row.msgs)} msgs in ${f(row.seconds)} s (posting ${f(row.postS)} s)  waits ${row.waits}`) +
      `  cores ${f(row.cores)}${row.notes.length ? `  [${row.notes.join('; ')}]` : ''}`,
  );
const targetLines = [];
for (const kase of cases) {
  const rows = await runner.runCase({ label: kase, base: { threads: busyThreads(kase) }, systems: caseSystems(kase), runs, runOnce: (sys) => runOnce(sys, kase), logRow: logRun });
  const summary = summarizeCase(kase, rows);
  const entry = { case: kase, threads: busyThreads(kase), systems: summary };
  const note = caseNote(kase);
  if (note) entry.note = note;
  results.summary.push(entry);
  printTable(kase, summary);
  const metrics = kase === 'rtt' ? [['latency-p50', 'µs'], ['latency-p99', 'µs']] : [['throughput', 'msgs/s']];
  const lines = caseJsonLines('messaging', kase, summary, { peer: PEER, ref: C_REF, peerKinds: ['iapp', 'noise'], refKinds: ['iapp'], costMetrics: ['latency-p50', 'latency-p99'], metrics }).map((l) =>
    kase === 'rtt' ? l : { ...l, threads: busyThreads(kase) },
  );
  for (const iapp of summary.filter((s) => s.system === IAPP || s.system === IAPP_BUSY)) {
    if (!iapp.vs[PEER]) continue;
    const TARGETS = TARGETS_BY_PAYLOAD[opts.payload];
    const [metric, target] = kase === 'rtt' ? ['latency-p50', TARGETS.latency] : ['throughput', TARGETS.throughput];
    if (target === undefined) continue;
    const r = kase === 'rtt' ? invertedRatio(iapp.vs[PEER][metric]) : iapp.vs[PEER][metric];
    targetLines.push(`target ${kase} (${iapp.system}): ${kase === 'rtt' ? `round trip (p50) <= 1/${target} of ${PEER}'s` : `>= ${target}x ${PEER}'s msgs/s`}: ${r.median >= target ? 'met' : 'NOT met'} (${f(r.median)}x, rounds ${f(r.min)}-${f(r.max)})`);
  }
  for (const iapp of summary.filter((s) => (s.system === IAPP || s.system === IAPP_BUSY) && s.vs[C_REF])) {
    const r = invertedRatio(iapp.vs[C_REF]['latency-p50']);
    targetLines.push(
      `target rtt (${iapp.system}) vs the C floor: round trip (p50) <= ${C_LATENCY_TARGET}x ${C_REF}'s, i.e. ${C_REF}/iapp >= ${f(1 / C_LATENCY_TARGET)}: ${r.median >= 1 / C_LATENCY_TARGET ? 'met' : 'NOT met'} (${f(r.median)}x, rounds ${f(r.min)}-${f(r.max)}; iapp takes ${f(1 / r.median)}x C's p50)`,
    );
  }
  if (opts.json) writeJsonLines(lines);
  save();
}
runner.finish();
results.targets = targetLines;
save();
log('');
log(`msgs/s: messages posted / (first post -> the receiver handling the last sender's end marker): warm-up excluded, drain included.`);
log(`rtt: hrtime before a ping's post -> the pong's handler, one round trip in flight; p50/p99 over every sample of a run.`);
log(`cores: CPU of the run's process (all its threads) per second of the measured phase (${cores} cores here).`);
log(`"vs ${PEER}": median (min-max) over rounds of the per-round ratio, > 1 = iapp better (iapp/peer for msgs/s, peer/iapp for µs).`);
if (systems.some((s) => s.name === C_REF)) log(`"vs ${C_REF}": the same with the C eventfd ping-pong (${C_REF}/iapp: the share of the floor iapp reaches; 1 = as fast as C).`);
log(`${PEER}: a sender keeps at most ${window.toLocaleString('en-US')} messages unacknowledged; iapp: its inbox bound (tryPost/space).`);
for (const t of targetLines) log(t);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
// Exit 0 only if every system measured every case.
const complete = results.summary.every((c) => c.systems.every((s) => s.runs > 0));
if (!complete) log('Some system measured nothing in some case (see the failures above): exit 1.');
process.exit(complete ? 0 : 1);
