// The udp scenario: small-datagram request/response over loopback, `iapp-srv --udp --mode echo`
// against the node:dgram echo server a Node user would write, both on one thread.
//
//   node bench/udp.mjs [--quick] [--duration S] [--runs N] [--sizes 64,1024] [--sockets S]
//                      [--window K] [--systems LIST] [--noise-floor] [--no-pin] [--json] [--out FILE]
//
// Servers (restarted for every run, pinned to CPU 0):
//   iapp-srv    node dist/srv/main.js --udp 127.0.0.1:0 --mode echo --threads 1 --json
//   node:dgram  bench/peers/node-dgram-echo.mjs (socket.on('message') -> socket.send back)
// Load (pinned to CPU 1): bench/reference/udpecho.c, S connected sockets each keeping K datagrams
// in flight, every answer sending the next (a closed loop: the same client for both servers, and
// one that cannot outrun either), a socket silent for 100 ms re-sending its window.
//
// In flight: S*K datagrams, all of them at most in the server's receive queue, whose default
// SO_RCVBUF (212,992 bytes; neither server changes it) holds 256 datagrams of 64 bytes and 92 of
// 1024 on Linux 6.x (each costs its buffer's true size, not its payload). More in flight than
// that and the kernel drops them (UDP RcvbufErrors), the client's windows shrink and refill, and
// the run measures the loss instead of the server: 16 x 8 = 128 for 64 bytes, 16 x 4 = 64 for
// 1024, which still leave the server a full batch (iapp reads 32 per recvmmsg) every turn.
//
// One run: start the server, sample its process tree's CPU (/proc), run the client for S seconds,
// sample again when it exits, stop the server and read its datagram count.
//   rps         = answers the client counted / its seconds
//   cpuPer100k  = server user+sys CPU-seconds (process tree) per 100,000 datagrams it counted
//   rpsPerCpuS  = datagrams the server counted per server CPU-second (its requests)
//   serverCpu   = server CPU-seconds per second of load (1 = its whole core: saturated)
//   serverWait  = seconds its threads were runnable but not running (schedstat), per second of
//                 load: on a busy machine, serverCpu + serverWait near 1 still means saturated
//   clientCpu   = client CPU-seconds per second of load
// Counts are checked: the server's count must lie between the answers the client counted and the
// datagrams it sent, else the run is flagged. Systems are interleaved (A B A B ...); ratios are
// medians of per-round ratios, > 1 = iapp-srv better (rates iapp/node, CPU per request node/iapp).
// Target (issue 20): iapp-srv >= 3x node:dgram in requests per server CPU-second.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { machineInfo, pinningPlan, startServer } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { buildReference } from './lib/reference.mjs';
import { caseJsonLines, f, interleavedOptions, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, pct, rng, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';
import { startJsonProc, treeCpuSeconds, treePids } from './lib/procs.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const SRV = join(root, 'dist', 'srv', 'main.js');
const IAPP = 'iapp-srv';
const PEER = 'node:dgram';
const TARGET = 3; // issue 20: >= 3x node:dgram requests per server CPU-second
const MAX_RETRIES_SHARE = 0.15;
// S x K per datagram size: below what the default receive buffer holds (see the top).
const LOAD = { 64: { sockets: 16, window: 8 }, 1024: { sockets: 16, window: 4 } };
const DEFAULT_LOAD = { sockets: 16, window: 4 };

const USAGE = `usage: node bench/udp.mjs [options]
  --quick              2 runs x 2 s per server and size (about 25 s; full: 3 runs x 3 s, about 60 s)
  --duration S         seconds of load per run, whole seconds (default 3; 2 with --quick)
  --runs N             runs per system per case, interleaved (default 3; 2 with --quick)
  --sizes LIST         datagram sizes in bytes, 4..65507 (default 64,1024)
  --sockets S          client sockets (default 16)
  --window K           datagrams in flight per socket (default 8 for 64 bytes, 4 for 1024)
  --systems LIST       ${IAPP},${PEER} (default both)
  --noise-floor        add a second node:dgram ("${PEER}-2"): its ratios to ${PEER} are the A/A floor
  --no-pin             do not pin the server to CPU 0 and the client to CPU 1
  --json               one JSON line per case, system and metric on stdout
  --out FILE           results file (default bench/results/udp.json)`;

const { 'only-conns': _c, ...options } = interleavedOptions;
const opts = parseOptions({ ...options, sizes: { type: 'string' }, sockets: { type: 'string' }, window: { type: 'string' } }, USAGE);
const duration = Number(opts.duration ?? (opts.quick ? 2 : 3));
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
const sizes = (opts.sizes ?? '64,1024').split(',').map(Number);
const intOpt = (name, lo, hi) => {
  if (opts[name] === undefined) return undefined;
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < lo || v > hi) {
    console.error(`--${name}: an integer ${lo}..${hi}\n${USAGE}`);
    process.exit(2);
  }
  return v;
};
const socketsOpt = intOpt('sockets', 1, 4096);
const windowOpt = intOpt('window', 1, 65536);
if (!Number.isInteger(duration) || duration < 1 || duration > 600 || !Number.isInteger(runs) || runs < 1 || runs > 100) {
  console.error('--duration: whole seconds 1..600; --runs: 1..100');
  process.exit(2);
}
if (!sizes.length || sizes.some((s) => !Number.isInteger(s) || s < 4 || s > 65507)) {
  console.error('--sizes: integers 4..65507 (the client writes a 4-byte window number in each datagram)');
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'udp.json');
if (!existsSync(SRV)) {
  console.error(`udp bench: ${relative(root, SRV)} not built (npx tsc -p tsconfig.json)`);
  process.exit(1);
}
let CLIENT;
try {
  CLIENT = buildReference('udpecho', { log });
} catch (err) {
  console.error(`udp bench: ${err.message}`);
  process.exit(1);
}
const pin = pinningPlan({ disabled: opts['no-pin'] });
const cores = machineInfo().cpus;
const serverCores = pin.pinned ? 1 : cores;

const cases = sizes.map((size) => {
  const load = LOAD[size] ?? DEFAULT_LOAD;
  const sockets = socketsOpt ?? load.sockets;
  const window = windowOpt ?? load.window;
  return { size, sockets, window, label: `size=${size},sockets=${sockets},window=${window}` };
});

// ---- the kernel's UDP counters -------------------------------------------------------------------
/** Udp: fields of /proc/net/snmp (this network namespace, every process in it), or null. */
function udpCounters() {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0].trim().split(/\s+/);
    const values = lines[1].trim().split(/\s+/).map(Number);
    return Object.fromEntries(names.slice(1).map((n, i) => [n, values[i + 1]]));
  } catch {
    return null;
  }
}

/**
 * Seconds the threads of a process tree have waited, runnable, for a CPU (/proc/<pid>/task/<tid>/
 * schedstat, second field, ns), or NaN. Next to its CPU time it tells a server that had too little
 * work (it slept) from one that wanted the whole core but shared it with other load (it waited).
 */
function treeRunDelayS(pid) {
  let ns = 0;
  let seen = false;
  for (const p of treePids(pid)) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      try {
        ns += Number(readFileSync(`/proc/${p}/task/${t}/schedstat`, 'utf8').split(' ')[1]);
        seen = true;
      } catch {}
    }
  }
  return seen ? ns / 1e9 : NaN;
}

const CLK_TCK = 100; // USER_HZ: what /proc/<pid>/stat counts in on Linux
/** Kernel (system) CPU-seconds of a process tree's live processes: where a UDP server's time goes. */
function treeSysSeconds(pid) {
  let ticks = 0;
  for (const p of treePids(pid)) {
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      ticks += Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[12]); // field 15, stime
    } catch {}
  }
  return ticks / CLK_TCK;
}

// ---- servers -------------------------------------------------------------------------------------
/** Each system's start() -> { pid, port, stop() -> { requests, errors }, kill() }. */
const nodeDgram = {
  name: PEER,
  kind: 'peer',
  async start() {
    const args = [join(benchDir, 'peers', 'node-dgram-echo.mjs'), '--host', '127.0.0.1', '--port', '0'];
    const s = await startServer({ name: this.name, cmd: node, args, cwd: root }, { prefix: pin.server });
    return {
      pid: s.pid,
      port: s.port,
      async stop() {
        const r = await s.stop({ timeoutS: 10 });
        return { requests: r.requests, sendErrors: r.sendErrors };
      },
      kill: () => s.kill(),
    };
  },
};
const systems = selectSystems(
  [
    {
      name: IAPP,
      kind: 'iapp',
      async start() {
        const args = [SRV, '--udp', '127.0.0.1:0', '--mode', 'echo', '--threads', '1', '--json', '--stats', '3600'];
        const p = startJsonProc({ name: IAPP, cmd: node, args, cwd: root, prefix: pin.server });
        let listening;
        try {
          listening = await p.waitFor((o) => o.type === 'listening', 20, 'listening line');
        } catch (err) {
          await p.kill();
          throw err;
        }
        const udp = listening.addresses.find((a) => a.proto === 'udp');
        if (!udp) {
          await p.kill();
          throw new Error(`${IAPP} listens on no UDP address: ${JSON.stringify(listening.addresses)}`);
        }
        return {
          pid: p.pid,
          port: udp.port,
          async stop() {
            const r = await p.stop({ timeoutS: 10 });
            const summary = r.objects.findLast((o) => o.type === 'summary');
            if (!summary) throw new Error(`${IAPP} printed no summary (${r.signal ?? `code ${r.code}`})${p.errTail()}`);
            const sendErrors = Object.values(summary.errors ?? {}).reduce((a, b) => a + b, 0);
            return { requests: summary.datagramsIn, sendErrors };
          },
          kill: () => p.kill(),
        };
      },
    },
    nodeDgram,
    ...(opts['noise-floor'] ? [{ ...nodeDgram, name: `${PEER}-2`, kind: 'noise' }] : []),
  ],
  opts.systems,
);

// ---- one run -------------------------------------------------------------------------------------
async function runOnce(sys, c, secs = duration) {
  const srv = await sys.start();
  try {
    const udp0 = udpCounters();
    const cpu0 = treeCpuSeconds(srv.pid);
    const wait0 = treeRunDelayS(srv.pid);
    const sys0 = treeSysSeconds(srv.pid);
    return await measureRun(async (window) => {
      const args = ['--host', '127.0.0.1', '--port', String(srv.port), '--sockets', String(c.sockets), '--window', String(c.window), '--size', String(c.size), '--duration', String(secs)];
      const clt = startJsonProc({ name: 'udpecho', cmd: CLIENT, args, cwd: root, prefix: pin.client });
      const limitS = secs + 15;
      const res = await Promise.race([clt.done, sleep(limitS * 1000, null, { ref: false })]);
      if (!res) {
        await clt.kill();
        throw new Error(`udpecho still running ${limitS} s after start (killed)`);
      }
      const cpu1 = treeCpuSeconds(srv.pid);
      const wait1 = treeRunDelayS(srv.pid);
      const sys1 = treeSysSeconds(srv.pid);
      window.close();
      const udp1 = udpCounters();
      const rep = res.objects.at(-1);
      if (!rep || res.code !== 0) throw new Error(`udpecho exited (${res.signal ?? `code ${res.code}`})${rep ? `, ${rep.responses} answers` : ' without a JSON report'}${clt.errTail()}`);
      const served = await srv.stop();
      const srvCpuS = cpu1 - cpu0;
      const cltCpuS = rep.cpuS;
      const flags = {};
      if (!(served.requests >= rep.responses && served.requests <= rep.sent)) flags['count mismatch (served - answered)'] = served.requests - rep.responses;
      if (rep.refills > 0) flags['windows refilled (lost)'] = rep.refills;
      if (rep.recvErrors > 0) flags['client receive errors'] = rep.recvErrors;
      // Namespace-wide: another UDP program on the machine drops into the same counter.
      const drops = udp0 && udp1 ? udp1.RcvbufErrors - udp0.RcvbufErrors : NaN;
      if (drops > 0) flags['UDP RcvbufErrors (any socket)'] = drops;
      return {
        ownCpuS: srvCpuS + cltCpuS,
        flags,
        responses: rep.responses,
        sent: rep.sent,
        served: served.requests,
        refills: rep.refills,
        late: rep.late,
        serverSendErrors: served.sendErrors,
        drops,
        cltSeconds: rep.seconds,
        rps: rep.responses / rep.seconds,
        srvCpuS,
        cltCpuS,
        cpuPer100k: (srvCpuS / served.requests) * 1e5,
        rpsPerCpuS: served.requests / srvCpuS,
        // The server idles while the client starts: its share of a core over the load itself.
        srvUtil: srvCpuS / rep.seconds,
        // ... and its share of the load waiting for CPU 0: util + wait near 1 = it had work throughout.
        srvWait: (wait1 - wait0) / rep.seconds,
        srvSysShare: (sys1 - sys0) / srvCpuS,
        // A client that waited for CPU 1 left the server without work (the loop is closed).
        cltWait: rep.waitS >= 0 ? rep.waitS / rep.seconds : NaN,
        cltCpu: cltCpuS / rep.seconds,
      };
    });
  } catch (err) {
    await srv.kill();
    throw err;
  }
}

// ---- summaries and tables ------------------------------------------------------------------------
const METRICS = [
  ['rps', 'req/s'],
  ['cpuPer100k', 'CPU-s/100k req'],
  ['rpsPerCpuS', 'req/CPU-s'],
];
const summarizeCase = (rows) =>
  summarizeSystems(rows, systems, {
    metrics: { rps: 'rps', cpuPer100k: 'cpuPer100k', rpsPerCpuS: 'rpsPerCpuS', srvUtil: 'srvUtil', srvWait: 'srvWait', srvDemand: (r) => r.srvUtil + r.srvWait, srvSysShare: 'srvSysShare', cltCpu: 'cltCpu', cltWait: 'cltWait' },
    peers: [PEER],
    ratios: Object.fromEntries(METRICS.map(([m]) => [m, m])),
    errors: true,
  });

// Ratios > 1 mean iapp-srv is better: iapp/node for rates, node/iapp for CPU per request.
const COSTS = ['cpuPer100k'];
const better = (r, metric) => (COSTS.includes(metric) ? invertedRatio(r) : r);
function jsonLines(c, summary, verdict) {
  const lines = caseJsonLines('udp', c.label, summary, { peer: PEER, metrics: METRICS, costMetrics: COSTS }).map((o) => ({ ...o, size: c.size, sockets: c.sockets, window: c.window }));
  for (const o of lines) if (verdict && o.system === IAPP && o.metric === 'rpsPerCpuS') Object.assign(o, { target: `>= ${TARGET}x ${PEER}`, met: verdict.met });
  // Whether the server was the bottleneck and what the load cost: facts about the run, not a
  // contest between the servers, so no ratio.
  for (const s of summary) {
    if (!s.runs) continue;
    for (const [metric, st] of [['serverCpu', s.srvUtil], ['serverWait', s.srvWait], ['clientCpu', s.cltCpu]])
      lines.push({ scenario: 'udp', case: c.label, system: s.system, metric, value: st.median, unit: 'cores', min: st.min, max: st.max, runs: st.n, size: c.size, sockets: c.sockets, window: c.window, ...(metric === 'serverCpu' ? { saturation: saturation(s) } : {}) });
  }
  return lines;
}

const vsPeer = (s, metric) => (s.vs[PEER] ? rng(better(s.vs[PEER][metric], metric)) : s.system === PEER ? '1' : '-');
const k = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const krng = (s) => (s.n ? `${k(s.median)} (${k(s.min)}-${k(s.max)})` : '-');

function printTable(c, summary) {
  log('');
  log(`== udp ${c.size}-byte datagrams, ${c.sockets} sockets x ${c.window} in flight: ${runs} runs x ${duration} s per server, interleaved`);
  const cols = [
    ['system', 12],
    ['req/s (min-max)', 26],
    ['CPU-s/100k', 11],
    ['req/CPU-s (min-max)', 26],
    ['srvCPU', 7],
    ['srvWait', 8],
    ['kernel', 7],
    ['cltCPU', 7],
    ['cltWait', 8],
    ['req/s iapp÷node', 17],
    ['CPU/100k node÷iapp', 19],
    ['req/CPU-s iapp÷node', 20],
    ['notes', 0],
  ];
  const rows = summary.map((s) => {
    const notes = [...s.notes];
    notes.push(saturation(s));
    if (s.cltCpu.n && s.cltCpu.median >= 0.9) notes.push('client CPU-bound');
    if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s): ${[...new Set(s.errors)].join(' / ').slice(0, 300)}`);
    return [s.system, krng(s.rps), f(s.cpuPer100k.median, 3), krng(s.rpsPerCpuS), pct(s.srvUtil), pct(s.srvWait), pct(s.srvSysShare), pct(s.cltCpu), pct(s.cltWait), vsPeer(s, 'rps'), vsPeer(s, 'cpuPer100k'), vsPeer(s, 'rpsPerCpuS'), notes.join('; ')];
  });
  logTable(cols, rows);
  return verdict(c, summary);
}

/**
 * Was the server the bottleneck? Saturated: it ran >= 90% of its core; or it ran and waited for
 * its core (other load on CPU 0) >= 90% of the time, so it had work throughout. Unpinned, it
 * may use every core and the test is against all of them.
 */
function saturation(s) {
  if (!s.srvUtil.n) return '';
  if (s.srvUtil.median >= 0.9 * serverCores) return 'server saturated';
  if (pin.pinned && s.srvDemand.median >= 0.9) return `server saturated (ran ${pct(s.srvUtil)}, waited for its core ${pct(s.srvWait)})`;
  const why = s.cltWait.n && s.cltWait.median >= 0.2 ? ` (the client waited for its core ${pct(s.cltWait)})` : '';
  return `server NOT saturated${why}`;
}

/** The target line of a case: iapp-srv's req/CPU-s against node:dgram's, measured in the same rounds. */
function verdict(c, summary) {
  const r = summary.find((s) => s.system === IAPP)?.vs[PEER]?.rpsPerCpuS;
  if (!r?.n) return null;
  const met = r.median >= TARGET;
  const text = `${c.size} B: ${f(r.median)}x (${f(r.min)}-${f(r.max)}) ${PEER}'s req/CPU-s: target >= ${TARGET}x ${met ? 'met' : `missed by ${Math.round((1 - r.median / TARGET) * 100)}%`}`;
  log(`   ${text}`);
  return { case: c.label, ratio: r.median, min: r.min, max: r.max, met, text };
}

// ---- main ----------------------------------------------------------------------------------------
const results = newResults('udp', {
  duration,
  runs,
  cases: cases.map((c) => c.label),
  systems: systems.map((s) => s.name),
  client: `bench/reference/udpecho.c (C, epoll, recvmmsg/sendmmsg), S connected sockets x K datagrams in flight, closed loop`,
  pinning: pin.note,
  definitions: {
    rps: 'answers the client counted / its seconds of load',
    cpuPer100k: 'server user+sys CPU-seconds, whole process tree (/proc, client start -> exit), per 100,000 datagrams the server counted',
    rpsPerCpuS: 'datagrams the server counted (each answered) per server CPU-second',
    serverCpu: "the server's user+sys CPU-seconds per second of load (1 = its whole core)",
    serverWait: "seconds the server's threads were runnable but waiting for a CPU, per second of load (other load on its core)",
    clientCpu: "the client's user+sys CPU-seconds per second of load",
    ratio: `median over rounds of ${IAPP} vs ${PEER} in the same round, > 1 = ${IAPP} better: iapp/peer for rps and rpsPerCpuS, peer/iapp for cpuPer100k`,
    target: `${IAPP} >= ${TARGET}x ${PEER} requests per server CPU-second`,
  },
});
results.verdicts = [];
const save = () => writeResults(outFile, results);
const estimate = systems.length * (cases.length * runs * (duration + 0.7) + 1.2);
log(`udp bench: ${cases.length} case(s) x ${systems.length} server(s) x ${runs} runs x ${duration} s; about ${Math.ceil(estimate)} s`);
log(`servers: ${systems.map((s) => s.name).join(', ')}; client: ${relative(root, CLIENT)}`);
log(`pinning: ${pin.note}`);
// A busy machine must not stretch the scenario past its budget: short waits for quiet.
const runner = interleavedRunner({ results, plannedRuns: cases.length * systems.length * runs, maxRetriesShare: MAX_RETRIES_SHARE, quietWaitS: 2, quietBudgetS: opts.quick ? 4 : 8, failIndent: '  ' });
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(10)} ${k(row.rps)} req/s  ${f(row.cpuPer100k, 3)} CPU-s/100k  ${k(row.rpsPerCpuS)} req/CPU-s  srv ${Math.round(row.srvUtil * 100)}% (waited ${Math.round(row.srvWait * 100)}%)  kernel ${Math.round(row.srvSysShare * 100)}% of it  clt ${Math.round(row.cltCpu * 100)}% (waited ${Math.round(row.cltWait * 100)}%)  served ${row.served} answered ${row.responses} sent ${row.sent}` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
// The first run after a pause came out slow on this VM (see bench/http.mjs): one half-second run
// of every system first, not counted.
for (const sys of systems) await runOnce(sys, cases[0], 0.5).catch((err) => log(`  warm-up ${sys.name}: ${err.message}`));
for (const c of cases) {
  const rows = await runner.runCase({
    label: c.label,
    base: { size: c.size, sockets: c.sockets, window: c.window },
    systems,
    runs,
    runOnce: (sys) => runOnce(sys, c),
    logRow: logRun,
  });
  const summary = summarizeCase(rows);
  const v = printTable(c, summary);
  if (v) results.verdicts.push(v);
  results.summary.push({ case: c.label, size: c.size, sockets: c.sockets, window: c.window, systems: summary });
  if (opts.json) writeJsonLines(jsonLines(c, summary, v));
  save();
}
runner.finish();
save();
log('');
log('req/s = answers the client counted / its seconds; CPU-s/100k and req/CPU-s = server user+sys CPU (whole process tree)');
log('against the datagrams the server counted; srvCPU = server CPU-s per second of load, srvWait = its threads\' time runnable but');
log('waiting for a CPU per second of load (other load on its core), kernel = the system share of the server\'s CPU, cltCPU and');
log('cltWait = the same as srvCPU and srvWait for the client; 100% = one core.');
log(`Ratios: median (min-max) over rounds, > 1 = ${IAPP} better (req/s and req/CPU-s iapp÷node, CPU/100k node÷iapp).`);
log(`Pinning: ${pin.note}.`);
if (results.verdicts.length) {
  const met = results.verdicts.filter((v) => v.met).length;
  log(`Target (${IAPP} >= ${TARGET}x ${PEER} req per server CPU-s): met in ${met} of ${results.verdicts.length} case(s)${met === results.verdicts.length ? '' : ' (NOT MET)'}.`);
}
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
