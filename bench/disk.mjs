// The disk scenario: file reads through a loop's File (io_uring or the disk pool) against Node's
// fs.promises FileHandle, from a file in the page cache.
//
//   node bench/disk.mjs [--quick] [--runs N] [--duration S] [--size BYTES] [--cases LIST]
//                       [--systems LIST] [--noise-floor] [--json] [--out FILE]
//
// Systems (each run a fresh process):
//   iapp-uring  bench/servers/iapp-disk.mjs: createRuntime({ threads: 1, diskEngine: 'io_uring' });
//               the loop's reads go through its ring, submitted once per loop turn (the run fails
//               if loop.diskEngine is not 'io_uring')
//   iapp-pool   the same with diskEngine 'pool', diskThreads 4: the process-wide disk pool
//   node-fs     bench/peers/node-fs-read.mjs: fs.promises.open(), filehandle.read(buf, 0, len,
//               pos) on the main thread; libuv's default threadpool of 4 runs the preads
//   node-fs-2   with --noise-floor: a second node-fs, whose ratio to node-fs is the A/A floor
// Both iapp systems read with file.readv([buf], pos) into the slot's own Buffer, as node-fs does
// with filehandle.read(buf, ...); iapp and Node run the same driver (measureReads() in
// bench/peers/node-fs-read.mjs): `qd` reads in flight, each slot issuing its next read when its
// previous one resolves.
// Cases:
//   rand-4k-qd64  random 4 KiB-aligned 4 KiB reads over the whole file, 64 in flight: reads/s, and
//                 CPU seconds of the whole process (all threads) per million reads
//   seq-1m-qd4    1 MiB reads in file order (wrapping at its end), 4 in flight: GB/s (1e9 bytes),
//                 and CPU seconds of the whole process per GB
// The file: --size bytes (default 256 MiB) in os.tmpdir(), every 4 KiB block of it distinct
// (random-looking, non-zero, stamped with its index), made once, flushed (fdatasync), read once
// into the page cache, and deleted at the end (also on an error or SIGINT/SIGTERM).
// Correctness, every run: before timing, 64 reads spread over the file and a short read across its
// end, every byte compared; while timed, every read's length and the stamps of its first and last
// 4 KiB, and every byte of every 16th (4k) or 64th (1m) read. One wrong byte fails the run, so a
// wrong offset cannot look fast.
// Each run: an uncounted warm-up (0.2 s; 0.1 with --quick), then --duration seconds (1; 0.4 with
// --quick) from the first completion after the warm-up to the last completion once no read is
// issued past the duration (the drain is inside). Systems are interleaved (A B C A B C ...), 3
// rounds (2 with --quick); ratios are medians of per-round ratios, > 1 = iapp better (iapp/node-fs
// for reads/s and GB/s, node-fs/iapp for CPU costs). "Which engine": the iapp-uring rows also carry
// refPeer iapp-pool, refRatio iapp-uring against iapp-pool, oriented the same way (> 1 = io_uring
// better).
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runClient } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { caseJsonLines, f, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, rng, runnableSystems, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';
import { freeBytes, removeAtExit, removeTestFiles, scratchPath, warm } from './lib/testfile.mjs';
import { writeDataFile } from './peers/node-fs-read.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const INDEX = join(root, 'dist', 'src', 'index.js');
const URING = 'iapp-uring';
const POOL = 'iapp-pool';
const PEER = 'node-fs';
const NOISE = 'node-fs-2';
const MiB = 1 << 20;
const MAX_RETRIES_SHARE = 0.15;

const CASES = [
  { label: 'rand-4k-qd64', pattern: 'rand', block: 4096, qd: 64, fullEvery: 16, rate: ['readRate', 'reads/s', 'readsPerS'], cost: ['cpuPerMReads', 'CPU-s/M reads', 'cpuPerMReads'] },
  { label: 'seq-1m-qd4', pattern: 'seq', block: MiB, qd: 4, fullEvery: 64, rate: ['throughput', 'GB/s', 'gbps'], cost: ['cpuPerGB', 'CPU-s/GB', 'cpuPerGB'] },
];

const USAGE = `usage: node bench/disk.mjs [options]
  --quick            2 rounds of 0.4 s runs (about 20 s)
  --runs N           rounds (default 3; 2 with --quick)
  --duration S       measured seconds per run (default 1; 0.4 with --quick)
  --size BYTES       the file, a multiple of 1 MiB; suffixes KiB, MiB, GiB (default 256MiB)
  --cases LIST       ${CASES.map((c) => c.label).join(',')} (default both)
  --systems LIST     ${URING},${POOL},${PEER} (default all; ${NOISE} with --noise-floor)
  --noise-floor      add a second node-fs ("${NOISE}"): its ratio to ${PEER} is the A/A floor
  --json             one JSON line per case, system and metric on stdout
  --out FILE         results file (default bench/results/disk.json)`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    duration: { type: 'string' },
    size: { type: 'string', default: '256MiB' },
    cases: { type: 'string' },
    systems: { type: 'string' },
    'noise-floor': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
  USAGE,
);
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
const durationS = Number(opts.duration ?? (opts.quick ? 0.4 : 1));
const warmS = opts.quick ? 0.1 : 0.2;
const sizeM = /^(\d+)\s*(B|KiB|MiB|GiB)?$/i.exec(opts.size.trim());
const fileSize = sizeM ? Number(sizeM[1]) * { b: 1, kib: 1024, mib: MiB, gib: 1024 * MiB }[(sizeM[2] ?? 'b').toLowerCase()] : NaN;
if (!Number.isInteger(runs) || runs < 1 || runs > 50 || !(durationS > 0 && durationS <= 30)) {
  console.error(`--runs: 1..50; --duration: (0, 30] s\n${USAGE}`);
  process.exit(2);
}
if (!(Number.isSafeInteger(fileSize) && fileSize >= 16 * MiB && fileSize % MiB === 0)) {
  console.error(`--size: a multiple of 1 MiB, at least 16 MiB (got ${opts.size})\n${USAGE}`);
  process.exit(2);
}
const wantCases = opts.cases ? opts.cases.split(',').map((s) => s.trim()) : CASES.map((c) => c.label);
const badCase = wantCases.filter((c) => !CASES.some((x) => x.label === c));
if (badCase.length) {
  console.error(`--cases: unknown ${badCase.join(', ')} (known: ${CASES.map((c) => c.label).join(', ')})\n${USAGE}`);
  process.exit(2);
}
const cases = CASES.filter((c) => wantCases.includes(c.label));
const outFile = opts.out ?? join(benchDir, 'results', 'disk.json');
const cores = os.availableParallelism?.() ?? os.cpus().length;
// node-fs is "libuv's default threadpool of 4": not whatever this shell's environment says.
const uvPool = process.env.UV_THREADPOOL_SIZE;
delete process.env.UV_THREADPOOL_SIZE;

const iappScript = join(benchDir, 'servers', 'iapp-disk.mjs');
const peerScript = join(benchDir, 'peers', 'node-fs-read.mjs');
let systems = [
  { name: URING, kind: 'iapp', script: iappScript, extra: ['--engine', 'io_uring'], what: "createRuntime({ threads: 1, diskEngine: 'io_uring' }), file.readv([buf], pos) on the loop thread" },
  { name: POOL, kind: 'iapp', script: iappScript, extra: ['--engine', 'pool', '--disk-threads', '4'], what: "createRuntime({ threads: 1, diskEngine: 'pool', diskThreads: 4 }), file.readv([buf], pos) on the loop thread" },
  { name: PEER, kind: 'peer', script: peerScript, extra: [], what: 'fs.promises.open(), filehandle.read(buf, 0, len, pos) on the main thread, libuv threadpool 4' },
];
if (opts['noise-floor']) systems.push({ name: NOISE, kind: 'noise', script: peerScript, extra: [], what: `a second ${PEER}` });
systems = runnableSystems(selectSystems(systems, opts.systems), INDEX, (s) => s.script === iappScript);

// ---- one run -------------------------------------------------------------------------------------
const runArgs = (sys, c, path) => [sys.script, ...sys.extra, '--path', path, '--size', String(fileSize), '--pattern', c.pattern, '--block', String(c.block), '--qd', String(c.qd), '--duration', String(durationS), '--warmup-s', String(warmS), '--full-every', String(c.fullEvery), '--case', c.label];

async function runOnce(sys, c, path) {
  const timeoutS = 30 + 3 * (durationS + warmS);
  return measureRun(
    async () => {
      const r = await runClient({ name: sys.name, cmd: node, args: runArgs(sys, c, path), cwd: root }, { timeoutS });
      if (r.exitCode !== 0) throw new Error(`${sys.name} exited with code ${r.exitCode}${r.stderr ? `: ${r.stderr.split('\n').slice(-3).join(' | ')}` : ''}`);
      if (sys.name === URING && r.engine !== 'io_uring') throw new Error(`${sys.name} ran on '${r.engine}', not io_uring`);
      if (!(r.reads > 0) || r.fullChecks < 1) throw new Error(`${sys.name}: no reads measured or none checked`);
      const { cpuTotalS, stderr, exitCode, ...report } = r;
      // The run's own CPU is what it reported just before exiting: its teardown is not in it.
      return { ownCpuS: Number(cpuTotalS), rate: r[c.rate[2]], cost: r[c.cost[2]], readsPerS: r.readsPerS, gbps: r.gbps, cores: r.cores, seconds: r.seconds, reads: r.reads, checked: r.checkReads + r.fullChecks, report };
    },
    { selfIsOwn: true },
  );
}

// ---- summaries -----------------------------------------------------------------------------------
const summarizeCase = (c, rows) =>
  summarizeSystems(rows, systems, {
    metrics: { [c.rate[0]]: 'rate', [c.cost[0]]: 'cost', cores: 'cores', seconds: 'seconds', reads: 'reads', checked: 'checked' },
    peers: [PEER, POOL],
    ratios: { [c.rate[0]]: 'rate', [c.cost[0]]: 'cost' },
  });

/** "median (min-max)" of a ratio oriented so that > 1 means the system beats `peer`. */
function betterCell(s, peer, metric, cost) {
  const v = s.vs[peer]?.[metric];
  if (!v) return s.system === peer ? '1' : '-';
  return rng(cost ? invertedRatio(v) : v);
}
const rateFmt = (c, x) => (!Number.isFinite(x) ? '-' : c.rate[1] === 'GB/s' ? x.toFixed(2) : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(1)}k`);
const rateRng = (c, s) => (s.n ? `${rateFmt(c, s.median)} (${rateFmt(c, s.min)}-${rateFmt(c, s.max)})` : '-');
const notesOf = (s) => [...(s.failedRuns ? [`${s.failedRuns} failed run(s)`] : []), ...s.notes].join('; ');
const caseTitle = (c) => `== disk ${c.label}: ${c.pattern === 'rand' ? 'random' : 'sequential'} ${c.block >= MiB ? `${c.block / MiB} MiB` : `${c.block / 1024} KiB`} reads, ${c.qd} in flight, ${fileSize / MiB} MiB file in the page cache; ${durationS} s per run, ${runs} rounds`;

function printTable(c, summary) {
  log('');
  log(caseTitle(c));
  const [rm, ru] = c.rate;
  const [cm, cu] = c.cost;
  const hasPool = summary.some((s) => s.system === POOL && s.runs);
  logTable(
    [
      ['system', 11],
      [`${ru} (min-max)`, 24],
      [`${cu} (min-max)`, 24],
      ['cores', 6],
      [`vs ${PEER}`, 18],
      [`CPU vs ${PEER}`, 18],
      ...(hasPool ? [[`vs ${POOL}`, 18], [`CPU vs ${POOL}`, 18]] : []),
      ['checked', 8],
      ['notes', 0],
    ],
    summary
      .filter((s) => s.runs || s.failedRuns)
      .map((s) => [
        s.system,
        rateRng(c, s[rm]),
        rng(s[cm], c.cost[0] === 'cpuPerGB' ? 3 : 2),
        f(s.cores.median),
        betterCell(s, PEER, rm, false),
        betterCell(s, PEER, cm, true),
        ...(hasPool ? [s.system === URING || s.system === POOL ? betterCell(s, POOL, rm, false) : '', s.system === URING || s.system === POOL ? betterCell(s, POOL, cm, true) : ''] : []),
        Number.isFinite(s.checked.median) ? Math.round(s.checked.median) : '-',
        notesOf(s),
      ]),
  );
}

function jsonLines(c, summary) {
  const extra = { pattern: c.pattern, blockBytes: c.block, queueDepth: c.qd, fileBytes: fileSize };
  return caseJsonLines('disk', c.label, summary, { peer: PEER, ref: POOL, peerKinds: ['iapp', 'noise'], refKinds: ['iapp'], costMetrics: [c.cost[0]], metrics: [c.rate.slice(0, 2), c.cost.slice(0, 2)] }).map((l) => ({ ...l, ...extra }));
}

// ---- main ----------------------------------------------------------------------------------------
const results = newResults('disk', {
  runs,
  durationS,
  warmS,
  fileSize,
  cases: cases.map((c) => ({ case: c.label, pattern: c.pattern, block: c.block, qd: c.qd, fullEvery: c.fullEvery })),
  cores,
  uvThreadpoolSizeInShell: uvPool ?? null,
  systems: systems.map((s) => ({ name: s.name, kind: s.kind, script: relative(root, s.script), extra: s.extra, what: s.what })),
  definitions: {
    readRate: 'rand-4k-qd64: reads completed / (first completion after the warm-up -> last completion of the drain), performance.now() on the reading thread',
    cpuPerMReads: 'rand-4k-qd64: user+system CPU seconds of the whole run process (process.cpuUsage(): all threads, disk pool and libuv threadpool included) over the same span, per million reads',
    throughput: 'seq-1m-qd4: bytes read / the same span, GB = 1e9 bytes',
    cpuPerGB: 'seq-1m-qd4: CPU seconds of the whole run process over the same span, per GB read',
    cores: 'CPU seconds of the run process (all threads) per second of the measured span',
    checked: 'reads whose every byte was compared with the file (the check before timing and every fullEvery-th timed read); every timed read also has its length and the stamps of its first and last 4 KiB checked',
    ratio: `median over rounds of the per-round ratio, > 1 = iapp better: iapp/${PEER} for reads/s and GB/s, ${PEER}/iapp for CPU costs; refPeer/refRatio on ${URING}'s lines: the same against ${POOL} (> 1 = io_uring better)`,
  },
});
const save = () => writeResults(outFile, results);

const path = scratchPath('disk');
removeAtExit(path);
// An interrupt before the first run (while the file is being made) must remove it too; once runs
// have started, bench/lib/harness.mjs's handler also stops the run's process.
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    removeTestFiles();
    process.stderr.write(`\n${sig}: removed ${path}\n`);
    process.exit(130);
  });
// Per run: process start-up (a runtime for iapp), the quiet check (~0.3 s), the check reads,
// warm-up and the measured span.
const estimate = cases.length * systems.length * runs * (durationS + warmS + 0.9) + 3;
log(`disk bench: ${cases.map((c) => c.label).join(', ')} × ${systems.map((s) => s.name).join(', ')} × ${runs} rounds; about ${Math.ceil(estimate)} s on ${cores} cores`);
for (const s of systems) log(`  ${s.name}: ${s.what}`);
if (uvPool !== undefined) log(`NOTE: UV_THREADPOOL_SIZE=${uvPool} in this shell: unset for the runs (${PEER} uses libuv's default of 4)`);
const free = freeBytes();
if (free < fileSize + 256 * MiB) {
  console.error(`disk bench: ${os.tmpdir()} has ${Math.round(free / MiB)} MiB free; the file needs ${fileSize / MiB} MiB and some room`);
  process.exit(1);
}
log(`making the file: ${path}, ${fileSize / MiB} MiB...`);
try {
  const w = writeDataFile(path, fileSize);
  const r = warm(path);
  log(`  written in ${f(w.writeS)} s, flushed in ${f(w.syncS)} s, read back (page cache) in ${f(r.warmS)} s (${f(r.warmGBps, 1)} GB/s)`);
  results.file = { path, bytes: fileSize, ...w, ...r };
} catch (err) {
  console.error(`disk bench: cannot make the test file: ${err.message}`);
  process.exit(1);
}

const runner = interleavedRunner({ results, plannedRuns: cases.length * systems.length * runs, maxRetriesShare: MAX_RETRIES_SHARE, progress: true, failIndent: '  ' });
const logRun = (c) => (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(11)} ${rateFmt(c, row.rate)} ${c.rate[1]}  ${f(row.cost, c.cost[0] === 'cpuPerGB' ? 3 : 2)} ${c.cost[1]}  cores ${f(row.cores)}  ${row.reads} reads in ${f(row.seconds)} s, ${row.checked} checked byte for byte` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
const engineLines = [];
for (const c of cases) {
  const rows = await runner.runCase({ label: c.label, base: { pattern: c.pattern, block: c.block, qd: c.qd }, systems, runs, runOnce: (sys) => runOnce(sys, c, path), logRow: logRun(c) });
  const summary = summarizeCase(c, rows);
  results.summary.push({ case: c.label, pattern: c.pattern, block: c.block, qd: c.qd, systems: summary });
  printTable(c, summary);
  for (const s of summary.filter((x) => x.kind === 'iapp' && x.vs[PEER])) {
    const r = s.vs[PEER][c.rate[0]];
    const k = invertedRatio(s.vs[PEER][c.cost[0]]);
    engineLines.push(`${c.label}: ${s.system} vs ${PEER}: ${c.rate[1]} ${f(r.median)}x (rounds ${f(r.min)}-${f(r.max)}), CPU per unit ${PEER}/iapp ${f(k.median)}x (rounds ${f(k.min)}-${f(k.max)})`);
  }
  const u = summary.find((s) => s.system === URING);
  if (u?.vs[POOL]) {
    const r = u.vs[POOL][c.rate[0]];
    const k = invertedRatio(u.vs[POOL][c.cost[0]]);
    engineLines.push(`${c.label}: which engine: ${URING}/${POOL} ${c.rate[1]} ${f(r.median)}x (rounds ${f(r.min)}-${f(r.max)}), CPU per unit ${POOL}/${URING} ${f(k.median)}x (rounds ${f(k.min)}-${f(k.max)}): ${r.median > 1 ? 'io_uring' : 'the pool'} is faster here`);
  }
  if (opts.json) writeJsonLines(jsonLines(c, summary));
  save();
}
runner.finish({ quietWait: true });
results.comparisons = engineLines;
save();
removeTestFiles();
log('');
log(`reads/s and GB/s (1e9 bytes): from the first completion after the warm-up to the last completion of the drain; CPU: the`);
log(`whole run process (all threads: the disk pool, libuv's threadpool, io_uring's kernel work in the submitting thread).`);
log(`cores: that CPU per second (${cores} cores here). "vs X": median (min-max) over rounds of the per-round ratio, > 1 = the row's`);
log(`system better (rate/X's rate; X's CPU cost/the row's). "checked": reads compared byte for byte (median per run).`);
for (const l of engineLines) log(l);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
// Exit 0 only if every system measured every case.
const complete = results.summary.every((c) => c.systems.every((s) => s.runs > 0));
if (!complete) log('Some system measured nothing in some case (see the failures above): exit 1.');
process.exit(complete ? 0 : 1);
