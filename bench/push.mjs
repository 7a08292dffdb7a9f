// The push scenario: how fast, and at what CPU cost, one client thread pushes 64 KiB writes into a
// sink over N connections: iapp-clt against a node:net client and the C reference client.
//
//   node bench/push.mjs [--quick] [--duration S] [--runs N] [--only-conns 1,64] [--size B]
//                       [--systems iapp-clt,net-push,c-push] [--sink c-trunc|iapp-srv]
//                       [--noise-floor] [--no-pin] [--json] [--out FILE]
//
// Sink (the same for every client, restarted for every run, pinned to CPU 0): by default the C
// MSG_TRUNC sink (bench/reference/sink.c --mode trunc: ~0.06 CPU-s/GB, the cheapest sink there is,
// so the least likely to be the bottleneck); --sink iapp-srv uses `iapp-srv --mode sink --threads 1`.
// Clients, each pinned to CPU 1 (one core, one thread of pushing):
//   iapp-clt  node dist/clt/main.js --threads 1 --procs 1 --conns N --size B --duration S --mode push --json
//   net-push  bench/peers/net-push.mjs: node:net, write() while it returns true, resume on 'drain'
//   c-push    bench/reference/push.c: one epoll thread, one write() per socket per writable wake
//
// One run: start the sink, run the client under GNU time (CPU of its whole process tree, startup
// included) for S seconds, wait until the kernel holds no more bytes toward the sink, stop the
// sink and reconcile: sink rxBytes == client txBytes.
//   GB/s      = client txBytes / client's own push time (first connect -> last write), GB = 1e9 B
//   CPU-s/GB  = client user+sys CPU seconds of the whole process tree per GB sent, in steady state:
//               from a mark taken once every connection carries bytes (ss: bytes_acked + Send-Q,
//               /proc CPU of the tree) to the exit (GNU time). "w/ start": spawn to exit.
// Systems are interleaved (A B C A B C ...); ratios are medians of per-round ratios.
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listenOverflows, now, pinningPlan, procCpuSeconds, startServer, waitDrained } from './lib/harness.mjs';
import { measureRun } from './lib/measure.mjs';
import { caseJsonLines, f, interleavedOptions, interleavedRunner, log, logResultsFile, logTable, newResults, parseOptions, pct, ratioCells, ratioColumns, referencesOrExit, rng, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { startJsonProc, treeCpuSeconds } from './lib/procs.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const CLT = join(root, 'dist', 'clt', 'main.js');
const SRV = join(root, 'dist', 'srv', 'main.js');
const IAPP = 'iapp-clt';
const PEER = 'net-push';
const REF = 'c-push';
const DRAIN_TIMEOUT_S = 10;
const MARK_AFTER_S = 0.3; // steady-state mark: this long after every connection carried bytes

/**
 * Client sockets toward 127.0.0.1:port from ss: { sockets, written } where written = bytes_acked
 * + Send-Q summed (what the client's writes put into the kernel so far, to within what is in
 * flight), or null without ss.
 */
function clientSockets(port) {
  const r = spawnSync('ss', ['-tinH', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8', timeout: 2000 });
  if (r.error || r.status !== 0) return null;
  let sockets = 0;
  let written = 0;
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) {
      sockets++;
      written += Number(line.trim().split(/\s+/)[1]) || 0; // Send-Q
    } else {
      const m = /bytes_acked:(\d+)/.exec(line);
      if (m) written += Number(m[1]);
    }
  }
  return { sockets, written };
}
// A run during which other processes used more than FOREIGN_MAX of a core is repeated once (at
// most MAX_RETRIES_SHARE of all runs), as in bench/sink.mjs (interleavedRunner, bench/lib/report.mjs).
const MAX_RETRIES_SHARE = 0.15;

const USAGE = `usage: node bench/push.mjs [options]
  --quick              2 runs x 2 s per system and case (about 1 min)
  --duration S         seconds of pushing per run (default 5; 2 with --quick)
  --runs N             runs per system per case, interleaved (default 3; 2 with --quick)
  --only-conns LIST    connection counts (default 1,64)
  --size B             bytes per write (default 65536)
  --systems LIST       iapp-clt,net-push,c-push (default all)
  --sink WHICH         c-trunc (default) or iapp-srv
  --noise-floor        add a second C client ("c-push-2"): its ratio to c-push is the A/A floor
  --no-pin             do not pin sink/client to CPUs 0/1
  --json               one JSON line per case, system and metric on stdout
  --out FILE           results file (default bench/results/push.json)`;

const opts = parseOptions(
  {
    ...interleavedOptions,
    size: { type: 'string', default: '65536' },
    sink: { type: 'string', default: 'c-trunc' },
  },
  USAGE,
);
const connsList = (opts['only-conns'] ?? '1,64').split(',').map(Number);
const size = Number(opts.size);
const duration = Number(opts.duration ?? (opts.quick ? 2 : 5));
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
if (connsList.some((n) => !Number.isInteger(n) || n < 1 || n > 10000) || !Number.isInteger(size) || size < 1 || size > 16 << 20) {
  console.error('--only-conns: integers 1..10000; --size: 1..16 MiB');
  process.exit(2);
}
if (!(duration > 0 && duration <= 600) || !Number.isInteger(runs) || runs < 1 || runs > 100) {
  console.error('--duration: (0, 600] seconds; --runs: 1..100');
  process.exit(2);
}
if (!['c-trunc', 'iapp-srv'].includes(opts.sink)) {
  console.error('--sink must be c-trunc or iapp-srv');
  process.exit(2);
}
const outFile = opts.out ?? join(benchDir, 'results', 'push.json');

const ref = referencesOrExit('push');

// ---- systems (clients) ---------------------------------------------------------------------------
const clientArgs = {
  [IAPP]: (port, conns) => [CLT, '--target', `127.0.0.1:${port}`, '--threads', '1', '--procs', '1', '--conns', String(conns),
    '--rate', String(Math.max(1000, conns * 100)), '--size', String(size), '--duration', String(duration), '--mode', 'push', '--json', '--stats', '1'],
  [PEER]: (port, conns) => [join(benchDir, 'peers', 'net-push.mjs'), '--host', '127.0.0.1', '--port', String(port), '--conns', String(conns), '--size', String(size), '--duration', String(duration)],
  [REF]: (port, conns) => ['--host', '127.0.0.1', '--port', String(port), '--conns', String(conns), '--size', String(size), '--duration', String(duration)],
};
let systems = [
  { name: IAPP, kind: 'iapp', cmd: node },
  { name: PEER, kind: 'peer', cmd: node },
  { name: REF, kind: 'reference', cmd: ref.push },
];
clientArgs['c-push-2'] = clientArgs[REF];
if (opts['noise-floor']) systems.push({ name: 'c-push-2', kind: 'noise', cmd: ref.push });
systems = selectSystems(systems, opts.systems);
if (systems.some((s) => s.name === IAPP) && !existsSync(CLT)) {
  log(`NOTE: ${relative(root, CLT)} not built: skipping ${IAPP}`);
  systems = systems.filter((s) => s.name !== IAPP);
}
if (opts.sink === 'iapp-srv' && !existsSync(SRV)) {
  console.error(`--sink iapp-srv: ${relative(root, SRV)} not built`);
  process.exit(1);
}
if (!systems.length) {
  console.error('no systems to run');
  process.exit(2);
}
const pin = pinningPlan({ disabled: opts['no-pin'] });
const sinkDesc =
  opts.sink === 'c-trunc'
    ? 'bench/reference/sink.c --mode trunc (C, one epoll thread, recv(MSG_TRUNC))'
    : 'iapp-srv --mode sink --threads 1 (native sink, one loop thread)';

// ---- the sink ------------------------------------------------------------------------------------
/** Starts the sink: { pid, port, cpu(), stop() -> { rxBytes, accepted } }. */
async function startSink() {
  if (opts.sink === 'c-trunc') {
    const s = await startServer({ name: 'c-trunc', cmd: ref.sink, args: ['--mode', 'trunc', '--port', '0'], cwd: root }, { prefix: pin.server });
    return { pid: s.pid, port: s.port, cpu: () => procCpuSeconds(s.pid), stop: () => s.stop(), kill: () => s.kill() };
  }
  const p = startJsonProc({ name: 'iapp-srv', cmd: node, args: [SRV, '--mode', 'sink', '--threads', '1', '--listen', '127.0.0.1:0', '--json', '--stats', '60'], cwd: root, prefix: pin.server });
  const l = await p.waitFor((o) => o.type === 'listening', 20, 'listening line');
  return {
    pid: p.pid,
    port: l.addresses[0].port,
    cpu: () => treeCpuSeconds(p.pid),
    async stop() {
      const r = await p.stop({ timeoutS: 10 });
      const sum = r.objects.filter((o) => o.type === 'summary').pop();
      if (!sum) throw new Error(`iapp-srv printed no summary (${r.signal ?? `code ${r.code}`})${p.errTail()}`);
      return sum;
    },
    kill: () => p.kill(),
  };
}

// ---- one run -------------------------------------------------------------------------------------
async function runOnce(sys, conns) {
  const ovf0 = listenOverflows();
  const sink = await startSink();
  try {
    const sinkCpu0 = sink.cpu();
    return await measureRun(
      async (window) => {
        const t0 = window.t0;
        const cl = startJsonProc({ name: sys.name, cmd: sys.cmd, args: clientArgs[sys.name](sink.port, conns), cwd: root, prefix: pin.client, timeCpu: true });
        const timeoutS = duration + 60;
        let timer;
        let finished = false;
        cl.done.then(() => (finished = true));
        // Steady-state mark: once every connection has carried bytes (plus MARK_AFTER_S), the client
        // tree's CPU so far and the bytes in the kernel so far. CPU and bytes after the mark give a
        // CPU-s/GB without process start-up (Node's start, iapp's threads) and connection set-up.
        const marking = (async () => {
          let since = null;
          while (!finished && now() - t0 < duration) {
            const c = clientSockets(sink.port);
            if (!c) return null;
            if (c.sockets >= conns && c.written > 0) {
              since ??= now();
              if (now() - since >= MARK_AFTER_S) {
                const cpu = treeCpuSeconds(cl.spawnPid);
                const again = clientSockets(sink.port);
                return { t: now() - t0, cpu, written: again ? (c.written + again.written) / 2 : c.written };
              }
            }
            await sleep(50);
          }
          return null;
        })();
        const res = await Promise.race([cl.done, new Promise((r) => (timer = setTimeout(() => r(null), timeoutS * 1000)))]);
        clearTimeout(timer);
        const mark = await marking;
        if (!res) {
          await cl.kill();
          throw new Error(`${sys.name} still running ${timeoutS} s after start (killed)`);
        }
        const tExit = t0 + window.close();
        const sinkCpuX = sink.cpu();
        // The client's own report: iapp-clt's {"type":"summary"}, the others' single line.
        const rep = res.objects.filter((o) => o.type === 'summary').pop() ?? res.objects.filter((o) => o.type === undefined).pop();
        if (!rep) throw new Error(`${sys.name} exited (${res.signal ?? `code ${res.code}`}) without a report${cl.errTail()}`);
        if (res.code !== 0) throw new Error(`${sys.name} exited with ${res.signal ?? `code ${res.code}`}${cl.errTail()}`);
        const dr = await waitDrained(sink.port, { since: tExit, timeoutS: DRAIN_TIMEOUT_S });
        const sinkCpu1 = sink.cpu();
        const sres = await sink.stop();
        const tx = Number(rep.txBytes);
        const connected = Number(rep.connected ?? rep.established ?? NaN);
        const pushS = Number(rep.durationS ?? NaN) > 0 ? Number(rep.durationS) : tExit - t0;
        const cpuS = res.cpu?.cpuS ?? Number(rep.cpuS ?? NaN);
        const wallS = tExit - t0;
        const gb = tx / 1e9;
        const flags = {};
        if (sres.rxBytes !== tx) flags['rx!=tx'] = sres.rxBytes - tx;
        if (connected !== conns) flags['connected!=conns'] = connected - conns;
        if (sres.accepted !== conns) flags['accepted!=conns'] = sres.accepted - conns;
        if (Number(rep.failed) > 0) flags.failed = Number(rep.failed);
        if (Number(rep.broken) > 0) flags.broken = Number(rep.broken);
        if (rep.errors && Object.keys(rep.errors).length) flags.errors = JSON.stringify(rep.errors);
        if (!mark) flags['no steady mark (CPU/GB includes start-up)'] = 1;
        if (dr.drained === false) flags[`not drained in ${DRAIN_TIMEOUT_S} s`] = dr.queued;
        return {
          // Not other load while the client ran: the sink and the client (/proc/stat ticks against
          // exact process times: undisturbed runs read about -20% to +15%).
          ownCpuS: sinkCpuX - sinkCpu0 + cpuS,
          flags,
          txBytes: tx,
          rxBytes: sres.rxBytes,
          connected,
          pushS,
          wallS,
          drainS: dr.endS - tExit,
          cltCpuS: cpuS,
          cltSelfCpuS: Number(rep.cpuS ?? NaN),
          cltMaxRssKB: res.cpu?.maxRssKB ?? NaN,
          sinkCpuS: sinkCpu1 - sinkCpu0,
          gbps: gb / pushS,
          // The sink's view: bytes received / (client start -> last byte read), startup included.
          wallGbps: sres.rxBytes / 1e9 / (dr.endS - t0),
          cpuPerGBAll: gb > 0 ? cpuS / gb : NaN,
          // Steady state (after the mark); falls back to the whole run if no mark was taken.
          cpuPerGB: mark && tx - mark.written > 0 ? (cpuS - mark.cpu) / ((tx - mark.written) / 1e9) : gb > 0 ? cpuS / gb : NaN,
          mark,
          cltUtil: cpuS / wallS,
          sinkUtil: (sinkCpu1 - sinkCpu0) / (dr.endS - t0),
        };
      },
      { overflowsSince: ovf0 },
    );
  } catch (err) {
    await sink.kill();
    throw err;
  }
}

// ---- summaries -----------------------------------------------------------------------------------
const summarizeCase = (rows) =>
  summarizeSystems(rows, systems, {
    metrics: {
      throughput: 'gbps',
      wallThroughput: 'wallGbps',
      cpuPerGB: 'cpuPerGB',
      cpuPerGBAll: 'cpuPerGBAll',
      markS: (r) => r.mark?.t,
      cltUtil: 'cltUtil',
      sinkUtil: 'sinkUtil',
    },
    peers: [REF, PEER],
    errors: true,
  });

function printTable(label, summary) {
  log('');
  log(`== push ${label}: ${runs} runs x ${duration} s per client, interleaved; sink ${opts.sink}`);
  const cols = [
    ['client', 9],
    ['GB/s (min-max)', 18],
    ['CPU-s/GB (min-max)', 21],
    ['w/ start', 9],
    ['start', 6],
    ['cltCPU', 7],
    ['sinkCPU', 8],
    ...ratioColumns([REF, PEER], 18),
    ['notes', 0],
  ];
  const rows = summary.map((s) => {
    const notes = [...s.notes];
    if (s.sinkUtil.n && s.sinkUtil.max >= 0.95) notes.push('sink saturated');
    if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s): ${[...new Set(s.errors)].join(' / ').slice(0, 300)}`);
    return [s.system, rng(s.throughput), rng(s.cpuPerGB, 3), f(s.cpuPerGBAll.median, 3), `${f(s.markS.median, 1)}s`, pct(s.cltUtil), pct(s.sinkUtil), ...ratioCells(s, [REF, PEER]), notes.join('; ')];
  });
  logTable(cols, rows);
}

// ---- main ----------------------------------------------------------------------------------------
const results = newResults('push', {
  duration,
  runs,
  size,
  conns: connsList,
  systems: systems.map((s) => ({ name: s.name, kind: s.kind, cmd: relative(root, s.cmd) || s.cmd })),
  sink: sinkDesc,
  pinning: pin.note,
  definitions: {
    throughput: "client txBytes / the client's own push time (first connect -> last write or flush), GB = 1e9 bytes",
    wallThroughput: "sink rxBytes / (client spawn -> kernel queues toward the sink empty): startup included",
    cpuPerGB: 'client user+system CPU seconds of the whole process tree per GB sent, from the steady-state mark (every connection carrying bytes + 0.3 s; bytes from ss bytes_acked+Send-Q, CPU from /proc) to exit (GNU time)',
    cpuPerGBAll: 'the same from spawn to exit: includes process start-up and connection set-up',
    ratio: 'median over rounds of system/peer measured in the same round (lower is better for cpuPerGB)',
  },
});
const save = () => writeResults(outFile, results);
const estimate = connsList.length * systems.length * runs * (duration + 1.5);
log(`push bench: ${connsList.length} case(s) x ${systems.length} client(s) x ${runs} runs x ${duration} s, ${size}-byte writes; about ${Math.ceil(estimate / 60)} min`);
log(`clients: ${systems.map((s) => s.name).join(', ')}; sink: ${sinkDesc}`);
log(`pinning: ${pin.note}`);
const runner = interleavedRunner({
  results,
  plannedRuns: connsList.length * systems.length * runs,
  maxRetriesShare: MAX_RETRIES_SHARE,
  failIndent: '  ',
});
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(9)} ${f(row.gbps)} GB/s  ${f(row.cpuPerGB, 3)} CPU-s/GB  clt ${Math.round(row.cltUtil * 100)}%  sink ${Math.round(row.sinkUtil * 100)}%` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
for (const conns of connsList) {
  const label = `conns=${conns},size=${size}`;
  const rows = await runner.runCase({ label, base: { conns, size }, systems, runs, runOnce: (sys) => runOnce(sys, conns), logRow: logRun });
  const summary = summarizeCase(rows);
  results.summary.push({ case: label, conns, size, systems: summary });
  printTable(label, summary);
  if (opts.json) writeJsonLines(caseJsonLines('push', label, summary, { peer: PEER, ref: REF }));
  save();
}
runner.finish();
save();
log('');
log(`GB = 1e9 bytes. GB/s = client txBytes / its own push time; CPU-s/GB = client user+sys CPU (whole process tree)`);
log(`per GB sent after the steady mark (every connection carrying bytes, "start" s after spawn); "w/ start" = spawn to exit.`);
log(`cltCPU/sinkCPU = CPU-seconds per wall-second (100% = one core).`);
log(`Ratios: median (min-max) over rounds of client/peer in the same round; for CPU/GB lower is better.`);
log(`Sink: ${sinkDesc}. Pinning: ${pin.note}.`);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
