// The http scenario: requests per second, latency and server CPU per request of
// `iapp-srv --mode http` against a node:http server, both answering 200 `ok\n` with keep-alive;
// and (the file case) `iapp-srv --mode file` against node:http with stat + createReadStream, both
// serving one 4 KiB file to wrk.
//
//   node bench/http.mjs [--quick] [--duration S] [--runs N] [--threads 1,2] [--systems LIST]
//                       [--noise-floor] [--no-pin] [--json] [--out FILE]
//
// Servers (restarted for every run, pinned to CPU 0):
//   iapp-srv   node dist/srv/main.js --mode http --listen 127.0.0.1:0 --threads T --json
//   node:http  bench/peers/node-http.mjs --procs T (node:cluster with T workers when T > 1)
// File case: iapp-srv --mode file --root DIR (its open-file cache at its defaults), node:http with
// --root DIR; DIR holds one 4 KiB file, asked for as /f.bin by wrk -c 64.
// Load generators (pinned to CPU 1), 100 connections:
//   autocannon node_modules/.bin/autocannon -j -c 100 -p 1 and -p 10 (pipelining)
//   wrk        /usr/bin/wrk -t 1 -c 100 (no pipelining); a Lua done() hook prints its counts as JSON
//
// One run: start the server, sample the CPU of its whole process tree (/proc), run the generator
// for S seconds, sample again as soon as it exits, stop the server and read its request count.
//   rps         = responses the generator completed / its own duration
//   p50, p99    = the generator's latency percentiles, in ms (autocannon measures whole ms)
//   cpuPer100k  = server user+sys CPU-seconds (all threads and processes) per 100,000 requests served
//   rpsPerCpuS  = requests served per server CPU-second
// Counts are checked: the server's count must lie between the generator's completed responses and
// what it sent (autocannon reports that; for wrk, completed + connections), else the run is flagged.
// Systems are interleaved (A B A B ...); ratios are medians of per-round ratios, oriented so that
// > 1 means iapp-srv is better (rates iapp/node:http, latency and CPU node:http/iapp).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenOverflows, machineInfo, pinningPlan, startServer } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { caseJsonLines, f, interleavedOptions, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, pct, rng, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';
import { startJsonProc, treeCpuSeconds } from './lib/procs.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const SRV = join(root, 'dist', 'srv', 'main.js');
const AUTOCANNON = join(root, 'node_modules', '.bin', 'autocannon');
const WRK = '/usr/bin/wrk';
const IAPP = 'iapp-srv';
const PEER = 'node:http';
const CONNS = 100;
const TARGET = 2; // the issue's target: >= 2x node:http requests per server CPU-second
const FILE_TARGET = 2.5; // the file case's: >= 2.5x node:http + createReadStream
const FILE_CONNS = 64;
const FILE_SIZE = 4096;
const MAX_RETRIES_SHARE = 0.15;

const USAGE = `usage: node bench/http.mjs [options]
  --quick              autocannon p=1 and p=10 and the file case only, threads 1, 2 runs x 2 s (about 45 s)
  --duration S         seconds of load per run, whole seconds (default 5; 2 with --quick)
  --runs N             runs per system per case, interleaved (default 3; 2 with --quick)
  --threads LIST       server threads (iapp-srv) = processes (node:http), e.g. 1,2 (default 1; 1,2 takes
                       twice as long: about 5 min)
  --systems LIST       iapp-srv,node:http (default both)
  --noise-floor        add a second node:http ("node:http-2"): its ratios to node:http are the A/A floor
  --no-pin             do not pin the server to CPU 0 and the load generator to CPU 1
  --json               one JSON line per case, system and metric on stdout
  --out FILE           results file (default bench/results/http.json)`;

const { 'only-conns': _c, ...options } = interleavedOptions;
const opts = parseOptions({ ...options, threads: { type: 'string' } }, USAGE);
const duration = Number(opts.duration ?? (opts.quick ? 2 : 5));
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
const threadsList = (opts.threads ?? '1').split(',').map(Number);
if (!Number.isInteger(duration) || duration < 1 || duration > 600 || !Number.isInteger(runs) || runs < 1 || runs > 100) {
  console.error('--duration: whole seconds 1..600; --runs: 1..100');
  process.exit(2);
}
if (threadsList.some((t) => !Number.isInteger(t) || t < 1 || t > 64)) {
  console.error('--threads: integers 1..64');
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'http.json');
if (!existsSync(SRV)) {
  console.error(`http bench: ${relative(root, SRV)} not built (npm run build)`);
  process.exit(1);
}
const pin = pinningPlan({ disabled: opts['no-pin'] });
const cores = machineInfo().cpus;
const serverCores = pin.pinned ? 1 : cores; // what the server may use

// ---- load generators -----------------------------------------------------------------------------
// wrk reports through a Lua done() hook: exact counts and percentiles (in µs) as one JSON line.
const WRK_LUA = `done = function(s, latency, requests)
  io.write(string.format('{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"statusErrors":%d,"timeouts":%d}\\n',
    s.requests, s.duration, latency:percentile(50), latency:percentile(99),
    s.errors.connect, s.errors.read, s.errors.write, s.errors.status, s.errors.timeout))
end
`;
let luaDir = null;
function wrkScript() {
  if (!luaDir) {
    luaDir = mkdtempSync(join(tmpdir(), 'iapp-http-bench-'));
    writeFileSync(join(luaDir, 'done.lua'), WRK_LUA);
    process.once('exit', () => rmSync(luaDir, { recursive: true, force: true }));
  }
  return join(luaDir, 'done.lua');
}

/**
 * Each generator: cmd, args(url, pipelining, seconds), and parse(report) -> { completed, sent (max the
 * server may have seen), durationS, p50, p99 (ms), errors }.
 */
const generators = {
  autocannon: {
    cmd: AUTOCANNON,
    args: (url, p, secs) => ['-j', '-c', String(CONNS), '-p', String(p), '-d', String(secs), url],
    parse: (o) => ({
      completed: o.requests.total,
      sent: o.requests.sent,
      durationS: o.duration,
      p50: o.latency.p50,
      p99: o.latency.p99,
      errors: o.errors + o.timeouts + o.non2xx,
    }),
  },
  wrk: {
    cmd: WRK,
    args: (url, p, secs, conns = CONNS) => ['-t', pin.pinned ? '1' : '2', '-c', String(conns), '-d', `${secs}s`, '--latency', '-s', wrkScript(), url],
    parse: (o, conns = CONNS) => ({
      completed: o.requests,
      sent: o.requests + conns, // wrk does not say; at most one request in flight per connection
      durationS: o.durationUs / 1e6,
      p50: o.p50Us / 1000,
      p99: o.p99Us / 1000,
      errors: o.connectErrors + o.readErrors + o.writeErrors + o.statusErrors + o.timeouts,
    }),
  },
};
const skipped = [];
const loads = [
  { gen: 'autocannon', pipelining: 1 },
  { gen: 'autocannon', pipelining: 10 },
  ...(opts.quick ? [] : [{ gen: 'wrk', pipelining: 1 }]),
  { gen: 'wrk', pipelining: 1, file: true },
].filter((l) => {
  if (existsSync(generators[l.gen].cmd)) return true;
  if (!skipped.includes(l.gen)) skipped.push(l.gen);
  return false;
});
if (skipped.length) log(`NOTE: ${skipped.map((g) => `${g} (${relative(root, generators[g].cmd) || generators[g].cmd}) not installed`).join('; ')}: skipping its cases`);
const cases = threadsList.flatMap((threads) =>
  loads.map((l) => ({
    ...l,
    threads,
    conns: l.file ? FILE_CONNS : CONNS,
    label: l.file
      ? `file ${FILE_SIZE / 1024} KiB wrk c=${FILE_CONNS}${threads > 1 ? ` T=${threads}` : ''}`
      : `${l.gen} c=${CONNS}${l.gen === 'wrk' ? '' : ` p=${l.pipelining}`}${threads > 1 ? ` T=${threads}` : ''}`,
  })),
);

if (!cases.length) {
  console.error('http bench: no load generator installed (autocannon: npm install; wrk: apt-get install wrk)');
  process.exit(1);
}

// ---- servers -------------------------------------------------------------------------------------
// The file case's root: one file of FILE_SIZE random bytes, in the page cache after the first run.
let fileRoot = null;
function servedRoot() {
  if (!fileRoot) {
    fileRoot = mkdtempSync(join(tmpdir(), 'iapp-http-file-'));
    writeFileSync(join(fileRoot, 'f.bin'), randomBytes(FILE_SIZE));
    process.once('exit', () => rmSync(fileRoot, { recursive: true, force: true }));
  }
  return fileRoot;
}

/** Each system's start(threads, case) -> { pid, port, stop() -> requests served, kill() }. */
const nodeHttp = {
  name: PEER,
  kind: 'peer',
  async start(threads, c) {
    const args = [join(benchDir, 'peers', 'node-http.mjs'), '--host', '127.0.0.1', '--port', '0', '--procs', String(threads), ...(c.file ? ['--root', servedRoot()] : [])];
    const s = await startServer({ name: this.name, cmd: node, args, cwd: root }, { prefix: pin.server });
    return { pid: s.pid, port: s.port, stop: () => s.stop({ timeoutS: 10 }), kill: () => s.kill() };
  },
};
const systems = selectSystems(
  [
    {
      name: IAPP,
      kind: 'iapp',
      async start(threads, c) {
        const args = [SRV, ...(c.file ? ['--mode', 'file', '--root', servedRoot()] : ['--mode', 'http']), '--listen', '127.0.0.1:0', '--threads', String(threads), '--json', '--stats', '3600'];
        const p = startJsonProc({ name: IAPP, cmd: node, args, cwd: root, prefix: pin.server });
        let listening;
        try {
          listening = await p.waitFor((o) => o.type === 'listening', 20, 'listening line');
        } catch (err) {
          await p.kill();
          throw err;
        }
        return {
          pid: p.pid,
          port: listening.addresses[0].port,
          async stop() {
            const r = await p.stop({ timeoutS: 10 });
            const summary = r.objects.findLast((o) => o.type === 'summary');
            if (!summary) throw new Error(`${IAPP} printed no summary (${r.signal ?? `code ${r.code}`})${p.errTail()}`);
            return { requests: summary.requests, httpErrors: summary.httpErrors, listenOverflows: summary.listenOverflows };
          },
          kill: () => p.kill(),
        };
      },
    },
    nodeHttp,
    ...(opts['noise-floor'] ? [{ ...nodeHttp, name: `${PEER}-2`, kind: 'noise' }] : []),
  ],
  opts.systems,
);

// ---- one run -------------------------------------------------------------------------------------
async function runOnce(sys, c, secs = duration) {
  const gen = generators[c.gen];
  const ovf0 = listenOverflows();
  const srv = await sys.start(c.threads, c);
  try {
    const cpu0 = treeCpuSeconds(srv.pid);
    return await measureRun(
      async (window) => {
        const g = startJsonProc({ name: c.gen, cmd: gen.cmd, args: gen.args(`http://127.0.0.1:${srv.port}/${c.file ? 'f.bin' : ''}`, c.pipelining, secs, c.conns), cwd: root, prefix: pin.client, timeCpu: true });
        const limitS = secs + 30;
        const res = await Promise.race([g.done, sleep(limitS * 1000, null, { ref: false })]);
        if (!res) {
          await g.kill();
          throw new Error(`${c.gen} still running ${limitS} s after start (killed)`);
        }
        const cpu1 = treeCpuSeconds(srv.pid);
        const wallS = window.close();
        const rep = res.objects.at(-1);
        if (res.code !== 0 || !rep) throw new Error(`${c.gen} exited (${res.signal ?? `code ${res.code}`})${rep ? '' : ' without a JSON report'}${g.errTail()}`);
        const m = gen.parse(rep, c.conns);
        const served = await srv.stop();
        const srvCpuS = cpu1 - cpu0;
        const genCpuS = res.cpu?.cpuS ?? NaN;
        const flags = {};
        if (!(served.requests >= m.completed && served.requests <= m.sent)) flags['count mismatch (served - completed)'] = served.requests - m.completed;
        if (m.errors > 0) flags[`${c.gen} errors`] = m.errors;
        if (served.httpErrors > 0) flags['server httpErrors'] = served.httpErrors;
        const cpuPer100k = (srvCpuS / served.requests) * 1e5;
        const rpsPerCpuS = served.requests / srvCpuS;
        return {
          // Not other load: the server tree and the generator tree.
          ownCpuS: srvCpuS + genCpuS,
          flags,
          completed: m.completed,
          sent: m.sent,
          served: served.requests,
          genDurationS: m.durationS,
          wallS,
          rps: m.completed / m.durationS,
          p50: m.p50,
          p99: m.p99,
          srvCpuS,
          genCpuS,
          cpuPer100k,
          rpsPerCpuS,
          // The server is idle while the generator starts: its share of a core over the load itself.
          srvUtil: srvCpuS / m.durationS,
          genUtil: genCpuS / wallS,
        };
      },
      { overflowsSince: ovf0 },
    );
  } catch (err) {
    await srv.kill();
    throw err;
  }
}

// ---- summaries and tables ------------------------------------------------------------------------
const METRICS = [
  ['rps', 'req/s'],
  ['p50', 'ms'],
  ['p99', 'ms'],
  ['cpuPer100k', 'CPU-s/100k req'],
  ['rpsPerCpuS', 'req/CPU-s'],
];
const summarizeCase = (rows) =>
  summarizeSystems(rows, systems, {
    metrics: { rps: 'rps', p50: 'p50', p99: 'p99', cpuPer100k: 'cpuPer100k', rpsPerCpuS: 'rpsPerCpuS', srvUtil: 'srvUtil', genUtil: 'genUtil' },
    peers: [PEER],
    ratios: Object.fromEntries(METRICS.map(([m]) => [m, m])),
    errors: true,
  });

// Ratios > 1 mean iapp-srv is better: iapp/node:http for rates, node:http/iapp for latency and CPU
// per request. The summaries hold iapp/node:http throughout; the lower-is-better ones are inverted
// (per round) for the tables here and by caseJsonLines for the --json lines.
const COSTS = ['p50', 'p99', 'cpuPer100k'];
const better = (r, metric) => (COSTS.includes(metric) ? invertedRatio(r) : r);
const jsonLines = (c, summary) => caseJsonLines('http', c.label, summary, { peer: PEER, metrics: METRICS, costMetrics: COSTS }).map((o) => ({ ...o, threads: c.threads }));

const oversubscribed = (threads) => (threads > serverCores ? `${threads} server threads/processes on ${serverCores} CPU${serverCores > 1 ? 's' : ''} (machine: ${cores} cores${pin.pinned ? ', server pinned to one' : ''})` : null);
const vsPeer = (s, metric) => (s.vs[PEER] ? rng(better(s.vs[PEER][metric], metric)) : s.system === PEER ? '1' : '-');
const k = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const krng = (s) => (s.n ? `${k(s.median)} (${k(s.min)}-${k(s.max)})` : '-');

function printTable(c, summary) {
  log('');
  log(`== http ${c.label}: ${runs} runs x ${duration} s per server, interleaved; threads/processes ${c.threads}`);
  const over = oversubscribed(c.threads);
  if (over) log(`   NOTE: ${over}`);
  const cols = [
    ['system', 12],
    ['req/s (min-max)', 26],
    ['p50 ms', 7],
    ['p99 ms', 7],
    ['CPU-s/100k', 11],
    ['req/CPU-s (min-max)', 26],
    ['srvCPU', 7],
    ['genCPU', 7],
    ['req/s iapp÷node', 17],
    ['p99 node÷iapp', 17],
    ['req/CPU-s iapp÷node', 20],
    ['notes', 0],
  ];
  const rows = summary.map((s) => {
    const notes = [...s.notes];
    if (s.srvUtil.n && s.srvUtil.median >= 0.9 * serverCores) notes.push('server CPU-bound');
    if (s.genUtil.n && s.genUtil.median >= 0.9) notes.push('generator CPU-bound');
    if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s): ${[...new Set(s.errors)].join(' / ').slice(0, 300)}`);
    return [s.system, krng(s.rps), f(s.p50.median), f(s.p99.median), f(s.cpuPer100k.median, 3), krng(s.rpsPerCpuS), pct(s.srvUtil), pct(s.genUtil), vsPeer(s, 'rps'), vsPeer(s, 'p99'), vsPeer(s, 'rpsPerCpuS'), notes.join('; ')];
  });
  logTable(cols, rows);
  return verdict(c, summary);
}

/** The target line of a case: iapp-srv's req/CPU-s against node:http's, measured in the same rounds. */
function verdict(c, summary) {
  const r = summary.find((s) => s.system === IAPP)?.vs[PEER]?.rpsPerCpuS;
  if (!r?.n) return null;
  const target = c.file ? FILE_TARGET : TARGET;
  const met = r.median >= target;
  const text = `${c.label}: ${f(r.median)}x (${f(r.min)}-${f(r.max)}) node:http's req/CPU-s: target >= ${target}x ${met ? 'met' : `missed by ${Math.round((1 - r.median / target) * 100)}%`}`;
  log(`   ${text}`);
  return { case: c.label, ratio: r.median, min: r.min, max: r.max, met, text };
}

// ---- main ----------------------------------------------------------------------------------------
const results = newResults('http', {
  duration,
  runs,
  threads: threadsList,
  conns: CONNS,
  cases: cases.map((c) => c.label),
  systems: systems.map((s) => s.name),
  skipped,
  pinning: pin.note,
  definitions: {
    rps: "responses the generator completed / the generator's own duration",
    p50: 'generator latency percentile, ms (autocannon: whole ms; wrk: µs resolution)',
    p99: 'generator latency percentile, ms',
    cpuPer100k: 'server user+sys CPU-seconds, whole process tree (/proc, generator start -> exit), per 100,000 requests the server counted',
    rpsPerCpuS: 'requests the server counted per server CPU-second',
    ratio: 'median over rounds of iapp-srv vs node:http in the same round, > 1 = iapp-srv better: iapp/peer for rps and rpsPerCpuS, peer/iapp for p50, p99, cpuPer100k',
    target: `iapp-srv >= ${TARGET}x node:http requests per server CPU-second (file cases: >= ${FILE_TARGET}x)`,
  },
});
results.verdicts = [];
const save = () => writeResults(outFile, results);
const estimate = cases.length * systems.length * runs * (duration + 2);
log(`http bench: ${cases.length} case(s) x ${systems.length} server(s) x ${runs} runs x ${duration} s; about ${Math.ceil(estimate / 60)} min`);
log(`servers: ${systems.map((s) => s.name).join(', ')}; generators: ${[...new Set(loads.map((l) => l.gen))].join(', ')}, ${CONNS} connections (file case: ${FILE_CONNS})`);
log(`pinning: ${pin.note}`);
const runner = interleavedRunner({ results, plannedRuns: cases.length * systems.length * runs, maxRetriesShare: MAX_RETRIES_SHARE, failIndent: '  ' });
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(9)} ${k(row.rps)} req/s  p50 ${f(row.p50)} p99 ${f(row.p99)} ms  ${f(row.cpuPer100k, 3)} CPU-s/100k  srv ${Math.round(row.srvUtil * 100)}%  gen ${Math.round(row.genUtil * 100)}%  served ${row.served} completed ${row.completed}` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
// The first run after a pause came out up to 45% slow on this VM, whichever system ran it: one
// 1-second run of every system first, not counted.
for (const sys of systems) await runOnce(sys, cases[0], 1).catch((err) => log(`  warm-up ${sys.name}: ${err.message}`));
for (const c of cases) {
  const rows = await runner.runCase({
    label: c.label,
    base: { generator: c.gen, pipelining: c.pipelining, threads: c.threads, conns: c.conns },
    systems,
    runs,
    runOnce: (sys) => runOnce(sys, c),
    logRow: logRun,
  });
  const summary = summarizeCase(rows);
  const v = printTable(c, summary);
  if (v) results.verdicts.push(v);
  results.summary.push({ case: c.label, generator: c.gen, pipelining: c.pipelining, threads: c.threads, conns: c.conns, note: oversubscribed(c.threads), systems: summary });
  if (opts.json) writeJsonLines(jsonLines(c, summary));
  save();
}
runner.finish();
save();
log('');
log(`req/s = completed responses / generator duration; p50/p99 = generator latency in ms; CPU-s/100k and req/CPU-s = server`);
log(`user+sys CPU (whole process tree) against the requests the server counted; srvCPU = server CPU-s per second of load,
genCPU = generator CPU-s (start-up included) per wall-second; 100% = one core.`);
log(`Ratios: median (min-max) over rounds, > 1 = iapp-srv better (req/s and req/CPU-s iapp÷node, p99 node÷iapp).`);
log(`Pinning: ${pin.note}.${skipped.length ? ` Skipped: ${skipped.join(', ')} (not installed).` : ''}`);
if (results.verdicts.length) {
  log(`Targets (iapp-srv >= ${TARGET}x node:http req per server CPU-s; file cases >= ${FILE_TARGET}x): met in ${results.verdicts.filter((v) => v.met).length} of ${results.verdicts.length} case(s).`);
}
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
