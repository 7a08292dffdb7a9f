// The sendfile scenario: serving one cached file to many downloaders, iapp's socket.sendFile()
// against Node's fs.createReadStream(path).pipe(socket).
//
//   node bench/sendfile.mjs [--quick] [--runs N] [--only-clients 1,64] [--size BYTES]
//                           [--total BYTES] [--systems iapp-sendfile,node-stream] [--noise-floor]
//                           [--no-pin] [--json] [--out FILE]
//
// The file: --size bytes (default 1 GiB; 256 MiB with --quick) of non-zero random-looking data
// in os.tmpdir(), made once, flushed (fdatasync, so no writeback runs during the runs), read once
// to put it in the page cache (and the part the clients get again before every run, which costs
// ~0.1 s while it is cached), and deleted at the end (bench/lib/testfile.mjs).
// Systems (servers; each prints `READY <port>` and, on SIGTERM, its counters):
//   iapp-sendfile  bench/servers/iapp-sendfile.mjs: a runtime with 1 loop thread, the file opened
//                  once per loop; per connection `await socket.sendFile(file, { offset: 0, length })`
//                  then `socket.end()` (sendfile(2) from the page cache, no bytes through JS)
//   node-stream    bench/peers/node-stream-file.mjs: per connection
//                  `fs.createReadStream(path, { start: 0, end: length - 1 }).pipe(socket)`
//   node-stream-2  with --noise-floor: a second node-stream, whose ratio to node-stream is the A/A floor
// Client (the same for both, pinned to CPU 1; the server to CPU 0): bench/reference/fetch.c opens
// N connections at once and discards what arrives with recv(MSG_TRUNC) until each ends, counting
// per connection.
// Every client gets the same `length` bytes from the start of the file: the whole file when
// N x size <= --total (the bound on the bytes of one run: default 8 GiB, 4 GiB with --quick), else
// --total / N rounded down to 1 MiB (64 clients x 1 GiB would be 64 GiB per run, over a minute per
// node-stream run); the case label says which (`clients=64,each=128MiB`). --total 64GiB gives
// every one of 64 clients the whole 1 GiB.
// A run: start the server; sample its CPU (/proc, all threads); run the client; sample again.
// The client must report N connections that ended cleanly with exactly `length` bytes each
// (N x length in all), or the run FAILS (and the script exits 1).
//   throughput = bytes received / (first connect -> last end of stream), the client's clock
//   CPU-s/GB   = server user+sys CPU seconds (all threads) over the client's run / GB received
// Systems are interleaved (A B A B ...), 3 rounds (2 with --quick); ratios are medians of
// per-round ratios, > 1 = iapp better (iapp/peer for GB/s, peer/iapp for CPU-s/GB).
// Target: sendfile >= 2x the stream pipe's throughput.
// The script also records what a syscall and a page fault cost on the machine (bench/lib/vmprobe.mjs):
// on VMs where both are slow, the side making more syscalls or touching more fresh memory per byte
// (Node's streams) loses more than on bare metal, and the script prints a note saying so.
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listenOverflows, pinningPlan, runClient, startServer } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { treeCpuSeconds } from './lib/procs.mjs';
import { buildReference } from './lib/reference.mjs';
import { vmProbe } from './lib/vmprobe.mjs';
import { caseJsonLines, f, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, pct, ratioCells, ratioColumns, rng, runnableSystems, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';
import { makeTestFile, removeTestFiles, scratchPath, warm } from './lib/testfile.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const INDEX = join(root, 'dist', 'src', 'index.js');
const IAPP = 'iapp-sendfile';
const PEER = 'node-stream';
const NOISE = 'node-stream-2';
const MiB = 1 << 20;
const GiB = 1 << 30;
const MAX_RETRIES_SHARE = 0.15;
const TARGET = 2; // >= 2x the stream pipe's GB/s

const USAGE = `usage: node bench/sendfile.mjs [options]
  --quick              a 256 MiB file, 1 and 16 clients, 2 rounds (about 30 s)
  --runs N             rounds, each system once per round (default 3; 2 with --quick)
  --only-clients LIST  client counts (default 1,64; 1,16 with --quick)
  --size BYTES         file size, a multiple of 1 MiB; suffixes KiB, MiB, GiB (default 1GiB; 256MiB with --quick)
  --total BYTES        bound on the bytes of one run: with N clients each gets min(size, total/N)
                       (default 8GiB; 4GiB with --quick)
  --systems LIST       ${IAPP},${PEER} (default both; ${NOISE} with --noise-floor)
  --noise-floor        add a second ${PEER} ("${NOISE}"): its ratio to ${PEER} is the A/A floor
  --no-pin             do not pin the server to CPU 0 and the client to CPU 1
  --json               one JSON line per case, system and metric on stdout
  --out FILE           results file (default bench/results/sendfile.json)`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'only-clients': { type: 'string' },
    size: { type: 'string' },
    total: { type: 'string' },
    systems: { type: 'string' },
    'noise-floor': { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
  USAGE,
);
/** "1GiB", "256MiB", "65536" -> bytes, or NaN. */
function bytesOpt(s) {
  const m = /^(\d+(?:\.\d+)?)\s*(|B|KiB|MiB|GiB|TiB)$/i.exec(String(s).trim());
  if (!m) return NaN;
  const unit = { '': 1, b: 1, kib: 1024, mib: MiB, gib: GiB, tib: 1024 * GiB }[m[2].toLowerCase()];
  return Math.round(Number(m[1]) * unit);
}
const sizeLabel = (b) => (b % GiB === 0 ? `${b / GiB}GiB` : b % MiB === 0 ? `${b / MiB}MiB` : `${b}B`);
const clientsList = (opts['only-clients'] ?? (opts.quick ? '1,16' : '1,64')).split(',').map((s) => Number(s.trim()));
const fileSize = bytesOpt(opts.size ?? (opts.quick ? '256MiB' : '1GiB'));
const total = bytesOpt(opts.total ?? (opts.quick ? '4GiB' : '8GiB'));
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
if (clientsList.some((n) => !Number.isInteger(n) || n < 1 || n > 4096) || !Number.isInteger(runs) || runs < 1 || runs > 50) {
  console.error(`--only-clients: integers 1..4096; --runs: 1..50\n${USAGE}`);
  process.exit(2);
}
if (!(fileSize >= MiB && fileSize % MiB === 0 && fileSize <= 64 * GiB) || !(total >= MiB && total <= 1024 * GiB)) {
  console.error(`--size: a multiple of 1 MiB up to 64 GiB; --total: 1 MiB..1 TiB\n${USAGE}`);
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'sendfile.json');
let fetchBin;
try {
  fetchBin = buildReference('fetch', { log });
} catch (err) {
  console.error(`sendfile bench: ${err.message}`);
  process.exit(1);
}

// ---- systems and cases -------------------------------------------------------------------------
const iappScript = join(benchDir, 'servers', 'iapp-sendfile.mjs');
const peerScript = join(benchDir, 'peers', 'node-stream-file.mjs');
let systems = [
  { name: IAPP, kind: 'iapp', script: iappScript, extra: ['--threads', '1'], what: 'runtime with 1 loop thread; file opened once per loop; await socket.sendFile(file, { offset: 0, length }); socket.end()' },
  { name: PEER, kind: 'peer', script: peerScript, extra: [], what: 'node:net, fs.createReadStream(path, { start: 0, end: length - 1 }).pipe(socket) per connection, 1 process' },
];
if (opts['noise-floor']) systems.push({ ...systems[1], name: NOISE, kind: 'noise' });
systems = runnableSystems(selectSystems(systems, opts.systems), INDEX);
const cases = clientsList.map((clients) => {
  const each = clients * fileSize <= total ? fileSize : Math.floor(total / clients / MiB) * MiB;
  if (each < MiB) {
    console.error(`--total ${total} gives ${clients} clients less than 1 MiB each`);
    process.exit(2);
  }
  return { clients, each, whole: each === fileSize, label: `clients=${clients},each=${sizeLabel(each)}` };
});
const pin = pinningPlan({ disabled: opts['no-pin'] });
const client = 'bench/reference/fetch.c (C, one epoll thread, N connections, recv(MSG_TRUNC) until each ends, bytes counted per connection)';

// ---- one run -----------------------------------------------------------------------------------
const badByteRuns = [];
async function runOnce(sys, c, path) {
  // Re-read what the clients will get: cheap while cached (this VM's DAMON pages out memory idle
  // for about a minute); a slow read says it had been paged out.
  const w = warm(path, c.each);
  const ovf0 = listenOverflows();
  const srv = await startServer({ name: sys.name, cmd: node, args: [sys.script, '--path', path, '--length', String(c.each), '--port', '0', ...sys.extra], cwd: root }, { prefix: pin.server });
  try {
    const expected = c.clients * c.each;
    // Bounded: at 0.1 GB/s (a tenth of the slowest rate seen) plus start-up.
    const timeoutS = Math.min(600, 20 + expected / 1e8);
    const cpu0 = treeCpuSeconds(srv.pid);
    return await measureRun(
      async (window) => {
        const cl = await runClient(
          { name: 'fetch', cmd: fetchBin, args: ['--host', '127.0.0.1', '--port', String(srv.port), '--conns', String(c.clients), '--expect', String(c.each), '--timeout', String(Math.ceil(timeoutS))] },
          { prefix: pin.client, timeoutS: timeoutS + 10 },
        );
        const wallS = window.close();
        const cpu1 = treeCpuSeconds(srv.pid);
        const res = await srv.stop();
        // The byte count must be exact: every connection ended cleanly with `each` bytes.
        const wrong = [];
        if (cl.rxBytes !== expected) wrong.push(`received ${cl.rxBytes} bytes, expected ${c.clients} x ${c.each} = ${expected}`);
        if (cl.eofs !== c.clients) wrong.push(`${cl.eofs} of ${c.clients} connections ended cleanly (failed ${cl.failed}, broken ${cl.broken}${cl.timedOut ? ', timed out' : ''})`);
        if (cl.short) wrong.push(`${cl.short} connection(s) got other than ${c.each} bytes (min ${cl.minConn}, max ${cl.maxConn})`);
        if (res.failed) wrong.push(`server: ${res.failed} failed ${JSON.stringify(res.errors)}`);
        if (wrong.length) {
          badByteRuns.push({ case: c.label, system: sys.name, wrong, client: cl, server: res });
          throw new Error(`BYTE COUNT WRONG: ${wrong.join('; ')}`);
        }
        const srvCpuS = cpu1 - cpu0;
        const gb = cl.rxBytes / 1e9;
        const flags = {};
        // Informational: the server counts when its side is through (node-stream: at 'close').
        if (res.txBytes !== expected) flags['server txBytes!=expected (counted at close)'] = res.txBytes - expected;
        if (res.accepted !== c.clients) flags['accepted!=clients'] = res.accepted - c.clients;
        if (w.warmGBps < 2 && c.each >= 64 * MiB) flags['file re-read slowly (GB/s; paged out?)'] = Number(f(w.warmGBps));
        return {
          ownCpuS: srvCpuS + cl.cpuS,
          flags,
          rxBytes: cl.rxBytes,
          serverTx: res.txBytes,
          served: res.served,
          clientS: cl.durationS,
          firstByteS: cl.firstByteS,
          wallS,
          srvCpuS,
          gbps: gb / cl.durationS,
          cpuPerGB: srvCpuS / gb,
          srvUtil: srvCpuS / wallS,
          cltUtil: cl.cpuS / wallS,
        };
      },
      { overflowsSince: ovf0 },
    );
  } catch (err) {
    await srv.kill();
    throw err;
  }
}

// ---- summaries -----------------------------------------------------------------------------------
const summarizeCase = (c, rows) =>
  summarizeSystems(rows, systems, {
    metrics: { throughput: 'gbps', cpuPerGB: 'cpuPerGB', srvUtil: 'srvUtil', cltUtil: 'cltUtil', seconds: 'clientS' },
    peers: [PEER],
    errors: true,
    flagMax: true,
  });

function printTable(c, summary) {
  log('');
  log(`== sendfile ${c.label}: ${c.clients} client${c.clients > 1 ? 's' : ''} x ${sizeLabel(c.each)}${c.whole ? ' (the whole file)' : ` (the first ${sizeLabel(c.each)} of the ${sizeLabel(fileSize)} file: --total ${sizeLabel(total)})`}; ${runs} rounds, interleaved`);
  const cols = [
    ['system', 14],
    ['GB/s (min-max)', 19],
    ['CPU-s/GB (min-max)', 21],
    ['s', 6],
    ['srvCPU', 7],
    ['cltCPU', 7],
    ...ratioColumns([PEER], 19),
    ['notes', 0],
  ];
  logTable(
    cols,
    summary.map((s) => {
      const notes = [...s.notes];
      if (s.srvUtil.n && s.srvUtil.min >= 0.95) notes.push('server saturated');
      if (s.cltUtil.n && s.cltUtil.min >= 0.95) notes.push('client saturated');
      if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s): ${[...new Set(s.errors)].join(' / ').slice(0, 300)}`);
      return [s.system, rng(s.throughput), rng(s.cpuPerGB, 3), f(s.seconds.median), pct(s.srvUtil), pct(s.cltUtil), ...ratioCells(s, [PEER]), notes.join('; ')];
    }),
  );
}

// ---- main --------------------------------------------------------------------------------------
const results = newResults('sendfile', {
  runs,
  fileSize,
  total,
  cases: cases.map((c) => ({ case: c.label, clients: c.clients, each: c.each, whole: c.whole })),
  systems: systems.map((s) => ({ name: s.name, kind: s.kind, script: relative(root, s.script), extra: s.extra, what: s.what, procs: 1 })),
  client,
  pinning: pin.note,
  definitions: {
    throughput: 'bytes the client received / its first connect -> the last end of stream (CLOCK_MONOTONIC), GB = 1e9 bytes; every run checks N connections x `each` bytes, exactly',
    cpuPerGB: 'server user+system CPU seconds, all threads (/proc/<pid>/stat), from before the client starts to after it exits, per GB received',
    each: `bytes per connection: the whole file when clients x size <= total, else total / clients rounded down to 1 MiB (the first bytes of the same file)`,
    ratio: `median over rounds of the per-round ratio, > 1 = iapp better in the JSON lines: iapp/${PEER} for GB/s, ${PEER}/iapp for CPU-s/GB (the printed "÷${PEER}" columns keep system/peer)`,
  },
});
const save = () => writeResults(outFile, results);
const vm = vmProbe(); // syscall and page-fault cost here: context for the ratios (bench/lib/vmprobe.mjs)
results.config.vm = vm;
if (vm.slow) log(`NOTE: ${vm.slow}.`);
const path = scratchPath('sendfile');
log(`sendfile bench: ${cases.map((c) => c.label).join(', ')} x ${systems.map((s) => s.name).join(', ')} x ${runs} rounds`);
for (const s of systems) log(`  ${s.name}: ${s.what}`);
log(`client: ${client}`);
log(`pinning: ${pin.note}`);
for (const c of cases.filter((x) => !x.whole))
  log(`NOTE: ${c.clients} clients x the whole ${sizeLabel(fileSize)} file would be ${sizeLabel(c.clients * fileSize)} per run; bounded by --total ${sizeLabel(total)}: each gets the first ${sizeLabel(c.each)}`);
log(`making the file: ${path}, ${sizeLabel(fileSize)}...`);
let file;
try {
  file = makeTestFile(path, fileSize);
} catch (err) {
  console.error(`sendfile bench: cannot make the test file: ${err.message}`);
  process.exit(1);
}
log(`  written in ${f(file.writeS)} s, flushed in ${f(file.syncS)} s, read back (page cache) in ${f(file.warmS)} s (${f(file.warmGBps, 1)} GB/s)`);
results.file = { path, bytes: fileSize, writeS: file.writeS, syncS: file.syncS, warmS: file.warmS, warmGBps: file.warmGBps };

const runner = interleavedRunner({ results, plannedRuns: cases.length * systems.length * runs, maxRetriesShare: MAX_RETRIES_SHARE, recordBusy: true, progress: true, failIndent: '  ' });
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(14)} ${f(row.gbps)} GB/s  ${f(row.cpuPerGB, 3)} CPU-s/GB  ${f(row.clientS)} s  srv ${Math.round(row.srvUtil * 100)}%  clt ${Math.round(row.cltUtil * 100)}%` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
const targetLines = [];
for (const c of cases) {
  const rows = await runner.runCase({ label: c.label, base: { clients: c.clients, each: c.each }, systems, runs, runOnce: (sys) => runOnce(sys, c, path), logRow: logRun });
  const summary = summarizeCase(c, rows);
  results.summary.push({ case: c.label, clients: c.clients, each: c.each, systems: summary, ...(vm.slow && !results.summary.length ? { note: vm.slow } : {}) });
  printTable(c, summary);
  const iapp = summary.find((s) => s.system === IAPP);
  if (iapp?.vs[PEER]?.throughput.n) {
    const t = iapp.vs[PEER].throughput;
    const cpu = invertedRatio(iapp.vs[PEER].cpuPerGB);
    targetLines.push(`target ${c.label}: >= ${TARGET}x ${PEER}'s GB/s: ${t.median >= TARGET ? 'met' : 'NOT met'} (${f(t.median)}x, rounds ${f(t.min)}-${f(t.max)}); CPU-s/GB ${PEER}/iapp ${f(cpu.median)}x (rounds ${f(cpu.min)}-${f(cpu.max)})`);
  }
  if (opts.json) writeJsonLines(caseJsonLines('sendfile', c.label, summary, { peer: PEER, peerKinds: ['iapp', 'noise'], refKinds: [] }).map((l) => ({ ...l, clients: c.clients, bytesEach: c.each, fileSize })));
  save();
}
runner.finish({ quietWait: true });
results.targets = targetLines;
results.byteCountErrors = badByteRuns;
save();
removeTestFiles();
log('');
log(`GB = 1e9 bytes. GB/s = bytes received / (first connect -> last end of stream); CPU-s/GB = server user+sys CPU (all`);
log(`threads) per GB; srvCPU/cltCPU = CPU-seconds per wall-second (100% = one core). "÷${PEER}": median (min-max) over`);
log(`rounds of system/peer in the same round (for CPU/GB lower is better; the JSON lines' ratio is ${PEER}/iapp there).`);
log(`Client: ${client}. Pinning: ${pin.note}. The file (${sizeLabel(fileSize)}) was removed.`);
for (const t of targetLines) log(t);
if (vm.slow) log(`NOTE: ${vm.slow}.`);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
if (badByteRuns.length) {
  log('');
  log(`FAILED: ${badByteRuns.length} run(s) delivered the wrong number of bytes:`);
  for (const b of badByteRuns) log(`  ${b.case} ${b.system}: ${b.wrong.join('; ')}`);
}
const complete = results.summary.every((c) => c.systems.every((s) => s.runs > 0));
if (!complete) log('Some system measured nothing in some case (see the failures above): exit 1.');
process.exit(complete && !badByteRuns.length ? 0 : 1);
