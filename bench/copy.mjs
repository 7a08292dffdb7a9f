// The copy scenario: copying one cached file into another in the same directory, iapp's
// loop.copyFile() against fs.promises.copyFile() and a stream copy.
//
//   node bench/copy.mjs [--quick] [--runs N] [--size BYTES] [--systems LIST] [--noise-floor]
//                       [--no-trace] [--json] [--out FILE]
//
// The source: --size bytes (default 1 GiB; 256 MiB with --quick) of non-zero random-looking data
// in os.tmpdir(), made once, flushed (fdatasync) and read once into the page cache, re-read
// before every run (cheap while cached; this VM's DAMON pages out memory idle for ~60 s), deleted
// at the end. The destination is in the same directory; each run's process deletes it just before
// its timed copy (so every copy makes a new file, and the previous one's dirty pages are dropped
// with it: no writeback builds up); the copies go to the page cache, with no fsync.
// Why delete at the start of a run rather than at the end of the previous one: on a VM whose
// balloon reports free pages to the host (this one does), memory freed and left free for a
// couple of seconds is handed back, and the next copy into it pays a host fault per page: copies
// started 3 s after the delete ran at 0.9-1.1 GB/s, right after it at 2-5 GB/s (256 MiB,
// fs.copyFileSync). Deleting right before the copy measures it on memory the guest holds, as on
// a real machine. For the same reason one untimed copy (fs.copyFileSync) runs before the rounds.
// Systems (each run a fresh process that times its own copy and the CPU of all its threads):
//   iapp-copyFile  bench/servers/iapp-copy.mjs: a runtime with 1 loop thread,
//                  `await loop.copyFile(src, dst)` (copy_file_range on the native disk pool)
//   fs-copyFile    bench/peers/node-copy.mjs --method copyFile: `await fs.promises.copyFile(src, dst)`
//                  (libuv's uv_fs_copyfile on its thread pool)
//   stream-copy    bench/peers/node-copy.mjs --method stream:
//                  `await pipeline(fs.createReadStream(src), fs.createWriteStream(dst))`
//   fs-copyFile-2  with --noise-floor: a second fs-copyFile, whose ratio to fs-copyFile is the A/A floor
// Every run checks the destination: its size, and 32 blocks of 64 KiB spread over it against the
// source; a wrong copy FAILS the run (and the script exits 1).
//   throughput = bytes / the copy call's time (opening and closing both files included)
//   CPU-s/GB   = the copying process's user+sys CPU over the call (every thread) / GB
// The main ratio is against fs-copyFile (peer); the JSON lines of iapp add peer2/ratio2 against
// stream-copy. On Linux both copyFile variants may take the same kernel path (copy_file_range:
// an in-kernel copy, or a reflink on filesystems that share extents): then they measure the same
// kernel work, and the ratio is about what surrounds it. After the runs each system copies once
// more under strace -f -c (untimed; --no-trace skips it) and the syscalls it used are reported.
// Systems are interleaved (A B C A B C ...), 5 rounds (3 with --quick); ratios are medians of
// per-round ratios, > 1 = iapp better (iapp/peer for GB/s, peer/iapp for CPU-s/GB).
// The script also records what a syscall and a page fault cost on the machine (bench/lib/vmprobe.mjs):
// on VMs where both are slow, the side making more syscalls or touching more fresh memory per byte
// (Node's streams) loses more than on bare metal, and the script prints a note saying so.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { now, runClient } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { vmProbe } from './lib/vmprobe.mjs';
import { caseJsonLines, f, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, pct, rng, runnableSystems, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';
import { makeTestFile, removeAtExit, removeTestFiles, sampleDiff, scratchPath, warm } from './lib/testfile.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const INDEX = join(root, 'dist', 'src', 'index.js');
const IAPP = 'iapp-copyFile';
const PEER = 'fs-copyFile';
const STREAM = 'stream-copy';
const NOISE = 'fs-copyFile-2';
const MiB = 1 << 20;
const GiB = 1 << 30;
const MAX_RETRIES_SHARE = 0.15;
const TRACED = ['copy_file_range', 'sendfile', 'splice', 'ioctl', 'io_uring_enter', 'read', 'write', 'pread64', 'pwrite64', 'preadv', 'pwritev', 'preadv2', 'pwritev2', 'ftruncate', 'close'];

const USAGE = `usage: node bench/copy.mjs [options]
  --quick          a 256 MiB file, 3 rounds (about 20 s)
  --runs N         rounds, each system once per round (default 5; 3 with --quick)
  --size BYTES     file size, a multiple of 1 MiB; suffixes KiB, MiB, GiB (default 1GiB; 256MiB with --quick)
  --systems LIST   ${IAPP},${PEER},${STREAM} (default all; ${NOISE} with --noise-floor)
  --noise-floor    add a second ${PEER} ("${NOISE}"): its ratio to ${PEER} is the A/A floor
  --no-trace       skip the strace pass that reports each system's syscalls
  --json           one JSON line per case, system and metric on stdout
  --out FILE       results file (default bench/results/copy.json)`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    size: { type: 'string' },
    systems: { type: 'string' },
    'noise-floor': { type: 'boolean', default: false },
    'no-trace': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
  USAGE,
);
function bytesOpt(s) {
  const m = /^(\d+(?:\.\d+)?)\s*(|B|KiB|MiB|GiB)$/i.exec(String(s).trim());
  if (!m) return NaN;
  return Math.round(Number(m[1]) * { '': 1, b: 1, kib: 1024, mib: MiB, gib: GiB }[m[2].toLowerCase()]);
}
const sizeLabel = (b) => (b % GiB === 0 ? `${b / GiB}GiB` : b % MiB === 0 ? `${b / MiB}MiB` : `${b}B`);
const size = bytesOpt(opts.size ?? (opts.quick ? '256MiB' : '1GiB'));
const runs = Number(opts.runs ?? (opts.quick ? 3 : 5));
if (!(size >= MiB && size % MiB === 0 && size <= 16 * GiB) || !Number.isInteger(runs) || runs < 1 || runs > 50) {
  console.error(`--size: a multiple of 1 MiB up to 16 GiB; --runs: 1..50\n${USAGE}`);
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'copy.json');

const iappScript = join(benchDir, 'servers', 'iapp-copy.mjs');
const peerScript = join(benchDir, 'peers', 'node-copy.mjs');
let systems = [
  { name: IAPP, kind: 'iapp', script: iappScript, extra: [], what: 'runtime with 1 loop thread, await loop.copyFile(src, dst)' },
  { name: PEER, kind: 'peer', script: peerScript, extra: ['--method', 'copyFile'], what: 'await fs.promises.copyFile(src, dst)' },
  { name: STREAM, kind: 'alt', script: peerScript, extra: ['--method', 'stream'], what: 'await pipeline(fs.createReadStream(src), fs.createWriteStream(dst))' },
];
if (opts['noise-floor']) systems.push({ ...systems[1], name: NOISE, kind: 'noise' });
systems = runnableSystems(selectSystems(systems, opts.systems), INDEX);
const src = scratchPath('copy', 'src');
const dst = scratchPath('copy', 'dst');
removeAtExit(dst);
const label = `size=${sizeLabel(size)}`;

/** The filesystem type of `dir` (from /proc/self/mounts, longest matching mount point), or 'unknown'. */
function fsType(dir) {
  try {
    let best = { at: '', type: 'unknown' };
    for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [, at, type] = line.split(' ');
      if (at && (dir === at || dir.startsWith(at.endsWith('/') ? at : `${at}/`)) && at.length >= best.at.length) best = { at, type };
    }
    return best.type;
  } catch {
    return 'unknown';
  }
}

// ---- one run -----------------------------------------------------------------------------------
const badCopies = [];
async function runOnce(sys) {
  const w = warm(src); // keeps the source cached; a slow read means it had been paged out
  return measureRun(
    async (window) => {
      const r = await runClient({ name: sys.name, cmd: node, args: [sys.script, '--src', src, '--dst', dst, ...sys.extra], cwd: root }, { timeoutS: 60 + size / 5e7 });
      window.close();
      {
        if (r.error || r.exitCode !== 0) throw new Error(`${sys.name}: ${r.error ?? `exit ${r.exitCode}`}${r.stderr ? `: ${r.stderr.split('\n').slice(-3).join(' | ')}` : ''}`);
        const wrong = [];
        const st = existsSync(dst) ? statSync(dst).size : -1;
        if (r.bytes !== size) wrong.push(`reported ${r.bytes} bytes, expected ${size}`);
        if (st !== size) wrong.push(`destination has ${st} bytes, expected ${size}`);
        else {
          const bad = sampleDiff(src, dst, size);
          if (bad) wrong.push(`${bad} of 32 sampled 64 KiB blocks differ from the source`);
        }
        if (wrong.length) {
          badCopies.push({ system: sys.name, wrong });
          throw new Error(`COPY WRONG: ${wrong.join('; ')}`);
        }
      }
      const gb = size / 1e9;
      const flags = {};
      if (w.warmGBps < 2 && size >= 64 * MiB) flags['source re-read slowly (GB/s; paged out?)'] = Number(f(w.warmGBps));
      // The copying process's own CPU is all of it, start-up included.
      return { ownCpuS: r.cpuTotalS ?? r.cpuS, flags, bytes: r.bytes, seconds: r.seconds, cpuS: r.cpuS, cpuTotalS: r.cpuTotalS, gbps: gb / r.seconds, cpuPerGB: r.cpuS / gb, util: r.cpuS / r.seconds, warmGBps: w.warmGBps };
    },
    { selfIsOwn: true },
  );
}

/**
 * One untimed copy of `sys` under strace -f -c -w (wall-clock time in each syscall): { syscall:
 * { calls, s } } for the TRACED ones, or { error }.
 */
function traceOnce(sys) {
  const dir = mkdtempSync(join(os.tmpdir(), 'iapp-bench-trace-'));
  const out = join(dir, 'strace.txt');
  try {
    rmSync(dst, { force: true });
    const r = spawnSync('strace', ['-f', '-c', '-w', '-o', out, '-e', `trace=${TRACED.join(',')}`, node, sys.script, '--src', src, '--dst', dst, ...sys.extra], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    if (r.error || r.status !== 0) return { error: r.error?.message ?? `exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').pop()}` };
    const calls = {};
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const m = /^\s*[\d.]+\s+([\d.]+)\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$/.exec(line);
      if (m && m[4] !== 'total') calls[m[4]] = { calls: Number(m[2]), s: Number(m[1]) };
    }
    return calls;
  } catch (e) {
    return { error: e.message };
  } finally {
    rmSync(dst, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
/**
 * "copy_file_range x2 (43 ms), ..." for the calls that move file data, then ftruncate and close
 * (ext4 flushes a file truncated to 0 and rewritten when it is closed: auto_da_alloc), then the
 * reads and writes (which include the process's start-up: module loading, its output).
 */
function kernelPath(calls) {
  if (!calls || calls.error) return `not traced (${calls?.error ?? 'strace not available'})`;
  const fmt = (k) => `${k} x${calls[k].calls.toLocaleString('en-US')} (${f(calls[k].s * 1000, 1)} ms)`;
  const copy = ['copy_file_range', 'sendfile', 'splice', 'io_uring_enter'].filter((k) => calls[k]);
  const rw = ['pread64', 'pwrite64', 'preadv', 'pwritev', 'preadv2', 'pwritev2', 'read', 'write'].filter((k) => calls[k]);
  const other = ['ftruncate', 'close'].filter((k) => calls[k]);
  return [copy.length ? copy.map(fmt).join(', ') : 'no copy syscall', other.map(fmt).join(', '), `reads/writes incl. start-up: ${rw.map(fmt).join(', ') || 'none'}`].filter(Boolean).join('; ');
}

// ---- main --------------------------------------------------------------------------------------
const fstype = fsType(os.tmpdir());
const results = newResults('copy', {
  runs,
  size,
  dir: os.tmpdir(),
  fsType: fstype,
  systems: systems.map((s) => ({ name: s.name, kind: s.kind, script: relative(root, s.script), extra: s.extra, what: s.what })),
  definitions: {
    throughput: 'bytes / the copy call\'s time (process.hrtime around it in the copying process; opening and closing the files included), GB = 1e9 bytes; page cache to page cache, no fsync',
    cpuPerGB: 'the copying process\'s user+system CPU (every thread, process.cpuUsage) over the call, per GB',
    ratio: `median over rounds of the per-round ratio, > 1 = iapp better: iapp/${PEER} for GB/s, ${PEER}/iapp for CPU-s/GB; peer2/ratio2: the same against ${STREAM}`,
  },
});
const save = () => writeResults(outFile, results);
const vm = vmProbe(); // syscall and page-fault cost here: context for the ratios (bench/lib/vmprobe.mjs)
results.config.vm = vm;
if (vm.slow) log(`NOTE: ${vm.slow}.`);
log(`copy bench: ${label} x ${systems.map((s) => s.name).join(', ')} x ${runs} rounds, in ${os.tmpdir()} (${fstype})`);
for (const s of systems) log(`  ${s.name}: ${s.what}`);
log(`making the source: ${src}, ${sizeLabel(size)}...`);
let file;
try {
  file = makeTestFile(src, size);
} catch (err) {
  console.error(`copy bench: cannot make the source file: ${err.message}`);
  process.exit(1);
}
log(`  written in ${f(file.writeS)} s, flushed in ${f(file.syncS)} s, read back (page cache) in ${f(file.warmS)} s (${f(file.warmGBps, 1)} GB/s)`);
// One untimed copy first: on a VM, memory the guest has not touched yet (or gave back) costs a
// fault on the host per page; the first copy into fresh page cache ran at a tenth of the speed of
// the next ones here. The destination's pages, freed by each run's delete just before its copy,
// serve that copy (see the header).
const tw = now();
copyFileSync(src, dst); // left in place: the first run deletes it just before its copy
const warmupS = now() - tw;
log(`  warm-up copy (untimed in the results): ${f(warmupS)} s (${f(size / 1e9 / warmupS)} GB/s)`);
results.file = { path: src, bytes: size, writeS: file.writeS, syncS: file.syncS, warmS: file.warmS, warmGBps: file.warmGBps, warmupCopyS: warmupS };

const runner = interleavedRunner({ results, plannedRuns: systems.length * runs, maxRetriesShare: MAX_RETRIES_SHARE, failIndent: '  ' });
const logRun = (row) =>
  log(`  ${row.case} run ${row.run} ${row.system.padEnd(14)} ${f(row.gbps)} GB/s  ${f(row.seconds, 3)} s  ${f(row.cpuPerGB, 3)} CPU-s/GB  cpu ${Math.round(row.util * 100)}%` + (row.notes.length ? `  [${row.notes.join('; ')}]` : ''));
const rows = await runner.runCase({ label, base: { size }, systems, runs, runOnce, logRow: logRun });
const summary = summarizeSystems(rows, systems, { metrics: { throughput: 'gbps', cpuPerGB: 'cpuPerGB', seconds: 'seconds', util: 'util' }, peers: [PEER, STREAM], errors: true, flagMax: true });
results.summary.push({ case: label, size, systems: summary });
runner.finish({ quietWait: true });

// Which syscalls did each system's copy use?
const traces = {};
if (!opts['no-trace']) {
  const hasStrace = spawnSync('strace', ['-V'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  for (const s of systems.filter((x) => x.kind !== 'noise')) traces[s.name] = hasStrace ? traceOnce(s) : { error: 'strace not installed' };
}
const paths = Object.fromEntries(Object.entries(traces).map(([k, v]) => [k, kernelPath(v)]));
const sameKernelPath = traces[IAPP]?.copy_file_range?.calls > 0 && traces[PEER]?.copy_file_range?.calls > 0;
const pathNote = sameKernelPath
  ? `${IAPP} and ${PEER} both copy with copy_file_range here (${fstype}): the same in-kernel copy${fstype === 'ext4' ? ' (ext4 has no reflinks: the kernel copies the pages)' : ''}; their ratio is about the work around that call (process, thread pool, open/close), not the copy itself`
  : Object.keys(paths).length
    ? 'the copyFile variants took different kernel paths here (see kernelPaths)'
    : 'kernel paths not traced (--no-trace)';
results.kernelPaths = paths;
results.syscalls = traces;
results.pathNote = pathNote;
results.summary[0].note = vm.slow ? `${pathNote}; ${vm.slow}` : pathNote;

log('');
log(`== copy ${label}: one ${sizeLabel(size)} file into another in ${os.tmpdir()} (${fstype}), page cache, no fsync; ${runs} rounds, interleaved`);
const ratioCell = (s, peer, metric, cost) => {
  const v = s.vs[peer]?.[metric];
  if (!v) return s.system === peer ? '1' : '-';
  return rng(cost ? invertedRatio(v) : v);
};
logTable(
  [
    ['system', 14],
    ['GB/s (min-max)', 20],
    ['s', 7],
    ['CPU-s/GB (min-max)', 21],
    ['cpu', 5],
    [`GB/s vs ${PEER}`, 19],
    [`CPU vs ${PEER}`, 19],
    [`GB/s vs ${STREAM}`, 19],
    ['notes', 0],
  ],
  summary.map((s) => [
    s.system,
    rng(s.throughput),
    f(s.seconds.median, 3),
    rng(s.cpuPerGB, 3),
    pct(s.util),
    ratioCell(s, PEER, 'throughput', false),
    ratioCell(s, PEER, 'cpuPerGB', true),
    ratioCell(s, STREAM, 'throughput', false),
    [...(s.failedRuns ? [`${s.failedRuns} failed run(s): ${[...new Set(s.errors)].join(' / ').slice(0, 300)}`] : []), ...s.notes].join('; '),
  ]),
);
const lines = caseJsonLines('copy', label, summary, { peer: PEER, peerKinds: ['iapp', 'noise'], refKinds: [] }).map((l) => {
  const o = { ...l, bytes: size, fsType: fstype };
  const s = summary.find((x) => x.system === l.system);
  const v = s?.kind === 'iapp' && s.vs[STREAM]?.[l.metric];
  if (v) {
    const r = l.metric === 'cpuPerGB' ? invertedRatio(v) : v;
    Object.assign(o, { peer2: STREAM, ratio2: r.median, ratio2Min: r.min, ratio2Max: r.max });
  }
  if (s?.kind === 'iapp' || s?.kind === 'peer') o.note = pathNote;
  return o;
});
if (opts.json) writeJsonLines(lines);
const iapp = summary.find((s) => s.system === IAPP);
const targets = [];
for (const peer of [PEER, STREAM]) {
  const v = iapp?.vs[peer]?.throughput;
  if (v?.n) targets.push(`${IAPP} vs ${peer}: ${f(v.median)}x the GB/s (rounds ${f(v.min)}-${f(v.max)}); CPU-s/GB ${peer}/iapp ${f(invertedRatio(iapp.vs[peer].cpuPerGB).median)}x`);
}
results.targets = targets;
save();
removeTestFiles();
log('');
log(`GB = 1e9 bytes. GB/s = bytes / the copy call's time (open and close included); CPU-s/GB = the copying process's CPU`);
log(`(every thread) over the call; cpu = CPU-seconds per second of the call. Ratios: median (min-max) over rounds, > 1 = the`);
log(`row's system better (GB/s: system/peer; CPU: peer/system).`);
for (const [k, v] of Object.entries(paths)) log(`syscalls of ${k}: ${v}`);
log(`NOTE: ${pathNote}.`);
if (vm.slow) log(`NOTE: ${vm.slow}.`);
for (const t of targets) log(t);
log(`The source (${sizeLabel(size)}) and the destination were removed.`);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
if (badCopies.length) {
  log('');
  log(`FAILED: ${badCopies.length} copy(ies) were wrong:`);
  for (const b of badCopies) log(`  ${b.system}: ${b.wrong.join('; ')}`);
}
const complete = summary.every((s) => s.runs > 0);
if (!complete) log('Some system measured nothing (see the failures above): exit 1.');
process.exit(complete && !badCopies.length ? 0 : 1);
