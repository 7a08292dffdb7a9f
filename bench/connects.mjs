// The connects scenario: how many connections per second iapp-clt opens (and closes) with one loop
// thread, and at what CPU cost, against a C connect loop on the same core.
//
//   node bench/connects.mjs [--quick] [--duration S] [--runs N] [--cases LIST] [--addrs D]
//                           [--hold-limit S] [--systems iapp-clt,c-connect,c-connect-k128]
//                           [--noise-floor] [--no-pin] [--json] [--out FILE]
//
// Cases:
//   churn-k32, churn-k128  open + close: each connection is ended with a FIN as soon as it is
//                          established, closed once the server's FIN comes back, and replaced; at
//                          most K connecting or closing at once. S seconds per run.
//   hold-n10000            open and hold: 10,000 connections as fast as they open (no rate limit),
//                          timed until all are established. 10,000 stays under half the ephemeral
//                          range even toward a single address.
// Systems (the client; pinned to CPU 1; one thread):
//   iapp-clt        node dist/clt/main.js --threads 1 --procs 1 --rate 10000000 --json and
//                   churn: --mode connect --conns K; hold: --mode hold --conns 10000
//   c-connect       bench/reference/connect.c (one epoll thread, level-triggered): churn: --mode
//                   churn --inflight K; hold: --mode hold --count 10000 --inflight 10000
//   c-connect-k128  hold only: the same with --inflight 128, what a careful C client would pick
//   c-connect-2     with --noise-floor: a second c-connect, whose ratio to c-connect is the A/A floor
// In-flight bounds. clt's --conns bounds connections open or in flight together, so in churn it is
// exactly the C client's K (connecting or waiting for the server's close). In hold clt has no
// separate bound on connects in flight: at an unlimited rate it starts all 10,000 within its first
// 10 ms tick. c-connect gets the same bound (--inflight 10000), so that the ratio compares like with
// like; c-connect-k128 shows what a bound of 128 changes for C (on this machine: little).
//
// Server (the same for every client, restarted for every run, pinned to CPU 0): the C sink
// (bench/reference/sink.c --mode trunc: accepts, closes on the client's EOF), listening on D
// loopback addresses (127.0.0.1 .. 127.0.0.D, one port; default D = 8). The clients spread their
// connects round-robin over the D addresses (clt: one --target per address). Why: toward one
// address the kernel picks ephemeral ports from one range of 28,232 (even ports first), and a port
// whose connection ended in TIME_WAIT on the client (the client closes first here) is reused only
// after tcp_tw_reuse_delay (1 s). Toward one address both clients then stop at ~14,100 connects/s,
// the client's core busy scanning for a free port: a kernel limit that says nothing about the
// client. With 8 addresses each range sees an eighth of the rate. (Once the kernel's TIME_WAIT
// table is full, tcp_max_tw_buckets = 131,072, closed connections skip TIME_WAIT; a full run
// reaches that after a few seconds; the TIME_WAIT count at each run's start is in the results.)
//
// One run: start the sink; spawn the client under GNU time (CPU of its whole process tree, start-up
// included); sample every 5-20 ms, until it exits, the kernel's TCP counters (/proc/net/snmp:
// ActiveOpens = connects started, machine-wide) and the CPU time of every thread of the client's
// tree (/proc/<pid>/task/<tid>/schedstat, ns); stop the sink and reconcile its accept count with the
// client's connects. The client's kernel work counts as its CPU, and on loopback that includes the
// server side's TCP processing of the packets the client sends (softirq in the client's context):
// the same for both clients.
//   connects/s    the client's own figure: churn: connections established / its run time (clt:
//                 openPerS; C: first connect -> last close); hold: 10,000 / the time until all
//                 are established (clt: rampS, timed by its loop thread from its start; C: from its
//                 first connect). If clt has not got all open after --hold-limit seconds, it is
//                 stopped and its openPerS (established / run time) stands, with a note.
//   CPU-s/1k      client CPU seconds (all threads of the tree) per 1,000 connects, without process
//                 start-up: churn: over the window from the first connect + WARM_S to the last
//                 connect - TAIL_S, per connect started in that window (ActiveOpens); hold: from
//                 the first connect to the client's own end (first connect + its seconds), per
//                 connection established. "w/ start": the whole tree from spawn to exit (GNU time)
//                 per connect, closing included.
// Reconciliation: the sink's accept count must equal c-connect's connects (it lets the connects
// under way finish before it exits), else the run fails. clt's close cancels the connects under way
// when it stops, some of which the kernel had already completed: the sink may have accepted up to
// --conns more than clt counted; more, or fewer than clt counted, fails the run.
// Systems are interleaved (A B A B ...), 3 rounds (2 with --quick); ratios are medians of per-round
// ratios, > 1 = iapp better (iapp/C for connects/s, C/iapp for CPU-s/1k).
// Target: iapp-clt >= 0.8x c-connect's connects/s in every case.
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { busyBetween, cpuTimes, listenOverflows, now, pinningPlan, procCpuSeconds, startServer } from './lib/harness.mjs';
import { startJsonProc, treePids } from './lib/procs.mjs';
import { vmProbe } from './lib/vmprobe.mjs';
import { FOREIGN_MAX, caseJsonLines, f, flagNotes, interleavedOptions, interleavedRunner, invertedRatio, log, logResultsFile, logTable, newResults, parseOptions, pct, referencesOrExit, rng, selectSystems, summarizeSystems, writeJsonLines, writeResults } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const CLT = join(root, 'dist', 'clt', 'main.js');
const IAPP = 'iapp-clt';
const REF = 'c-connect';
const REF128 = 'c-connect-k128';
const NOISE = 'c-connect-2';
const TARGET = 0.8; // iapp-clt's connects/s >= 0.8x the C loop's
// Sampling period: a hold run of C lasts ~0.25 s, so 5 ms for a hold run's first second; churn
// windows last over a second, and so does whatever a hold run takes past its first.
const sampleMs = (kind, t) => (kind === 'hold' && t < 1 ? 5 : 20);
const WARM_S = 0.3; // churn: what the CPU window leaves out after the first connect (JIT, ramp-up)
const TAIL_S = 0.1; // ... and before the last
const MAX_RETRIES_SHARE = 0.15;
const FOREIGN_MIN_S = 0.15; // CPU-seconds of other load below which a run is not called disturbed
const ALL_CASES = ['churn-k32', 'churn-k128', 'hold-n10000'];
const QUICK_CASES = ['churn-k32', 'hold-n10000'];

const USAGE = `usage: node bench/connects.mjs [options]
  --quick            ${QUICK_CASES.join(', ')}; 2 runs, 1.5 s churn (about 25 s)
  --duration S       seconds of churn per run (default 2.5; 1.5 with --quick)
  --runs N           runs per system per case, interleaved (default 3; 2 with --quick)
  --cases LIST       of ${ALL_CASES.join(', ')} (default all; --quick: ${QUICK_CASES.join(', ')});
                     churn-kK and hold-nN with other numbers work too
  --addrs D          loopback destination addresses 127.0.0.1..127.0.0.D (default 8, at most 16)
  --hold-limit S     how long iapp-clt may take to get every hold connection open (default 3; 2
                     with --quick)
  --systems LIST     iapp-clt,c-connect,c-connect-k128 (default all)
  --noise-floor      add a second C client ("c-connect-2"): its ratio to c-connect is the A/A floor
  --no-pin           do not pin sink/client to CPUs 0/1
  --json             one JSON line per case, system and metric on stdout
  --out FILE         results file (default bench/results/connects.json)`;

const opts = parseOptions(
  {
    ...interleavedOptions,
    cases: { type: 'string' },
    addrs: { type: 'string' },
    'hold-limit': { type: 'string' },
  },
  USAGE,
);
const duration = Number(opts.duration ?? (opts.quick ? 1.5 : 2.5));
const runs = Number(opts.runs ?? (opts.quick ? 2 : 3));
const addrCount = Number(opts.addrs ?? 8);
const holdLimit = Number(opts['hold-limit'] ?? (opts.quick ? 2 : 3));
if (!(duration > 0 && duration <= 600) || !Number.isInteger(runs) || runs < 1 || runs > 100) {
  console.error('--duration: (0, 600] seconds; --runs: 1..100');
  process.exit(2);
}
if (!Number.isInteger(addrCount) || addrCount < 1 || addrCount > 16 || !(holdLimit > 0 && holdLimit <= 600)) {
  console.error('--addrs: 1..16; --hold-limit: (0, 600] seconds');
  process.exit(2);
}
const cases = [];
for (const name of (opts.cases ?? (opts.quick ? QUICK_CASES : ALL_CASES).join(',')).split(',').map((s) => s.trim())) {
  const m = /^(churn)-k(\d+)$|^(hold)-n(\d+)$/.exec(name);
  const n = Number(m?.[2] ?? m?.[4]);
  if (!m || !Number.isInteger(n) || n < 1 || n > 15_000) {
    console.error(`--cases: ${name}: expected churn-kK or hold-nN with K, N in 1..15000\n${USAGE}`);
    process.exit(2);
  }
  cases.push(m[1] ? { name, kind: 'churn', k: n } : { name, kind: 'hold', n, k: n });
}
const outFile = opts.out ?? join(benchDir, 'results', 'connects.json');
const addrs = Array.from({ length: addrCount }, (_, i) => `127.0.0.${i + 1}`);

const ref = referencesOrExit('connects');

// ---- systems (clients) ---------------------------------------------------------------------------
let systems = [
  { name: IAPP, kind: 'iapp', cmd: node },
  { name: REF, kind: 'reference', cmd: ref.connect },
  { name: REF128, kind: 'reference', cmd: ref.connect, holdOnly: true, inflight: 128 },
];
if (opts['noise-floor']) systems.push({ name: NOISE, kind: 'noise', cmd: ref.connect });
systems = selectSystems(systems, opts.systems);
if (systems.some((s) => s.name === IAPP) && !existsSync(CLT)) {
  log(`NOTE: ${relative(root, CLT)} not built (npx tsc -p tsconfig.json): skipping ${IAPP}`);
  systems = systems.filter((s) => s.name !== IAPP);
}
if (!systems.length) {
  console.error('no systems to run');
  process.exit(2);
}
const caseSystems = (c) => systems.filter((s) => c.kind === 'hold' || !s.holdOnly);

function clientArgs(sys, c, port) {
  if (sys.kind === 'iapp') {
    return [CLT, ...addrs.flatMap((a) => ['--target', `${a}:${port}`]), '--threads', '1', '--procs', '1', '--rate', '10000000', '--json',
      ...(c.kind === 'churn' ? ['--mode', 'connect', '--conns', String(c.k), '--duration', String(duration)] : ['--mode', 'hold', '--conns', String(c.n), '--duration', String(holdLimit), '--stats', '0.25'])];
  }
  return [...addrs.flatMap((a) => ['--host', a]), '--port', String(port),
    ...(c.kind === 'churn' ? ['--mode', 'churn', '--inflight', String(c.k), '--duration', String(duration)] : ['--mode', 'hold', '--count', String(c.n), '--inflight', String(sys.inflight ?? c.n), '--duration', '30'])];
}

const pin = pinningPlan({ disabled: opts['no-pin'] });
const sinkDesc = `bench/reference/sink.c --mode trunc (C, one epoll thread; accepts, closes on EOF) on ${addrs.length === 1 ? addrs[0] : `${addrs[0]}..${addrs.at(-1)}`}, one port`;

// ---- kernel and process counters ---------------------------------------------------------------
/** Tcp ActiveOpens (connects started) from /proc/net/snmp (this network namespace), or null. */
function tcpCounters() {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'));
    const names = lines[0].trim().split(/\s+/);
    const values = lines[1].trim().split(/\s+/).map(Number);
    return { active: values[names.indexOf('ActiveOpens')] };
  } catch {
    return null;
  }
}
/** Sockets in TIME_WAIT now (/proc/net/sockstat), or NaN. */
function timeWaitCount() {
  try {
    return Number(/^TCP:.* tw (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}
/**
 * The CPU seconds of a process tree, with ns precision (schedstat), cheap enough to read every few
 * ms: each thread's schedstat file stays open and is re-read in place (a seq_file read at offset 0
 * starts over), and the tree's thread list is re-read only every `refreshMs` (threads come at
 * start-up). A thread that exits takes its time with it: read before the end. Returns
 * { read() -> seconds, close() }.
 */
function treeCpuReader(pid, refreshMs = 100) {
  const fds = new Map(); // schedstat path -> fd
  const buf = Buffer.alloc(128);
  let listedAt = -Infinity;
  const drop = (path) => {
    try {
      closeSync(fds.get(path));
    } catch {}
    fds.delete(path);
  };
  const list = () => {
    for (const p of treePids(pid)) {
      let tids = [];
      try {
        tids = readdirSync(`/proc/${p}/task`);
      } catch {}
      for (const t of tids) {
        const path = `/proc/${p}/task/${t}/schedstat`;
        if (fds.has(path)) continue;
        try {
          fds.set(path, openSync(path, 'r'));
        } catch {}
      }
    }
    listedAt = performance.now();
  };
  return {
    read() {
      if (performance.now() - listedAt >= refreshMs) list();
      let ns = 0;
      for (const [path, fd] of fds) {
        try {
          const n = readSync(fd, buf, 0, buf.length, 0);
          ns += Number(buf.toString('latin1', 0, n).split(' ')[0]);
        } catch {
          drop(path); // the thread is gone
        }
      }
      return ns / 1e9;
    },
    close() {
      for (const path of [...fds.keys()]) drop(path);
    },
  };
}
/** The value of `key` at time t, linearly between the samples around it. */
function at(samples, t, key) {
  if (!samples.length) return NaN;
  if (t <= samples[0].t) return samples[0][key];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    if (t <= b.t) return b.t === a.t ? b[key] : a[key] + ((b[key] - a[key]) * (t - a.t)) / (b.t - a.t);
  }
  return samples.at(-1)[key];
}

// ---- one run -------------------------------------------------------------------------------------
async function runOnce(sys, c) {
  const ovf0 = listenOverflows();
  const tw0 = timeWaitCount();
  const sink = await startServer({ name: 'c-sink', cmd: ref.sink, args: ['--mode', 'trunc', ...addrs.flatMap((a) => ['--host', a]), '--port', '0'], cwd: root }, { prefix: pin.server });
  let cl;
  try {
    const sinkCpu0 = procCpuSeconds(sink.pid);
    const cores0 = cpuTimes();
    const self0 = process.cpuUsage();
    const k0 = tcpCounters();
    const t0 = now();
    cl = startJsonProc({ name: sys.name, cmd: sys.cmd, args: clientArgs(sys, c, sink.port), cwd: root, prefix: pin.client, timeCpu: true });
    let exited = false;
    const done = cl.done.then((r) => ((exited = true), r));
    // clt in hold mode runs until --hold-limit: stop it once its own count says all are open.
    let stopSent = null;
    if (sys.kind === 'iapp' && c.kind === 'hold') {
      cl.waitFor((o) => o.type === 'stats' && o.connections >= c.n, holdLimit + 30, 'all connections open')
        .then(() => {
          stopSent = now() - t0;
          cl.signal('SIGTERM');
        })
        .catch(() => {});
    }
    const cpuOf = treeCpuReader(cl.spawnPid);
    const samples = [];
    const timeoutS = (c.kind === 'churn' ? duration : holdLimit) + 30;
    try {
      while (!exited) {
        const k = tcpCounters();
        samples.push({ t: now() - t0, active: k ? k.active - k0.active : NaN, cpu: cpuOf.read() });
        if (now() - t0 > timeoutS) throw new Error(`${sys.name} still running ${timeoutS} s after start (killed)`);
        await sleep(sampleMs(c.kind, now() - t0));
      }
    } finally {
      cpuOf.close();
    }
    const res = await done;
    const tExit = now();
    const coresX = cpuTimes();
    const self = process.cpuUsage(self0);
    const sinkCpuX = procCpuSeconds(sink.pid);
    const sres = await sink.stop();
    const rep = res.objects.filter((o) => o.type === 'summary').pop() ?? res.objects.filter((o) => o.type === undefined).pop();
    if (!rep) throw new Error(`${sys.name} exited (${res.signal ?? `code ${res.code}`}) without a report${cl.errTail()}`);
    if (res.code !== 0) throw new Error(`${sys.name} exited with ${res.signal ?? `code ${res.code}`}${cl.errTail()}`);

    const flags = {};
    const iapp = sys.kind === 'iapp';
    const connects = Number(iapp ? rep.connected : rep.connects);
    const failed = Number(rep.failed ?? 0);
    // The client's own time: from its start (clt: its loop thread's; C: its first connect).
    let ownS;
    let complete = true;
    if (c.kind === 'hold') {
      if (iapp) {
        complete = rep.rampS !== null && connects >= c.n;
        ownS = complete ? Number(rep.rampS) : connects / Number(rep.openPerS);
        if (!complete) flags[`not all open after ${holdLimit} s (open)`] = connects;
      } else {
        complete = Number(rep.established) >= c.n;
        ownS = Number(rep.seconds);
        if (!complete) flags['not all established'] = Number(rep.established);
      }
    } else {
      ownS = iapp ? connects / Number(rep.openPerS) : Number(rep.seconds);
    }
    const perS = iapp ? Number(rep.openPerS) : Number(rep.perS);

    // Reconcile with the sink.
    const extra = sres.accepted - connects;
    if (iapp ? extra < 0 || extra > c.k : extra !== 0) {
      throw new Error(`sink accepted ${sres.accepted}, ${sys.name} counted ${connects} connects${iapp ? ` (at most ${c.k} more may be accepted: the connects under way when clt stops)` : ''}`);
    }
    if (extra > 0) flags['accepted after clt stopped'] = extra;
    if (failed > 0) flags.failed = failed;
    if (rep.errors && Object.keys(rep.errors).length) flags.errors = JSON.stringify(rep.errors);
    const ovf = listenOverflows() - ovf0;
    if (ovf > 0) flags.ListenOverflows = ovf;

    // CPU window, on the samples' clock: the first connect is the first sample with ActiveOpens up.
    const first = samples.findIndex((s) => s.active > 0);
    let win = null;
    if (first > 0) {
      const tFirst = (samples[first - 1].t + samples[first].t) / 2;
      if (c.kind === 'churn') {
        const total = samples.at(-1).active;
        const last = samples.findIndex((s) => s.active >= total);
        const a = tFirst + WARM_S;
        const b = samples[last].t - TAIL_S;
        if (b - a >= 0.3) win = { a, b, connects: at(samples, b, 'active') - at(samples, a, 'active') };
      } else {
        win = { a: tFirst, b: tFirst + ownS, connects };
      }
      if (win) {
        win.cpu = at(samples, win.b, 'cpu') - at(samples, win.a, 'cpu');
        win.perS = win.connects / (win.b - win.a);
      }
    }
    if (!win) flags['no CPU window (CPU/1k includes start-up)'] = 1;
    // Other connects on the machine would show in ActiveOpens: compare with the client's own rate.
    if (win && c.kind === 'churn' && Math.abs(win.perS / perS - 1) > 0.15) flags['machine-wide connect rate differs from the client\'s (%)'] = Math.round((win.perS / perS - 1) * 100);
    if (stopSent !== null && iapp) flags['stopped at (s)'] = Number(f(stopSent));

    const cpuS = res.cpu?.cpuS ?? NaN;
    const wallS = tExit - t0;
    const sinkCpuS = sinkCpuX - sinkCpu0;
    const selfS = (self.user + self.system) / 1e6;
    // CPU used while the client ran by anything but the sink, the client and this harness.
    // /proc/stat and the sink's times tick at 10 ms: on a C hold run (~0.4 s) that alone reads as
    // up to ~15% of a core, so a short run counts as disturbed only past FOREIGN_MIN_S as well.
    const foreignRaw = (busyBetween(cores0, coresX) - sinkCpuS - cpuS - selfS) / wallS;
    const disturbed = foreignRaw > FOREIGN_MAX && foreignRaw * wallS > FOREIGN_MIN_S;
    if (disturbed) flags['other load (% of a core)'] = Math.round(foreignRaw * 100);
    return {
      connects,
      accepted: sres.accepted,
      failed,
      perS,
      ownS,
      complete,
      steadyPerS: win?.perS ?? NaN,
      cpuPer1k: win && win.connects > 0 ? (win.cpu / win.connects) * 1000 : connects > 0 ? (cpuS / connects) * 1000 : NaN,
      cpuPer1kAll: connects > 0 ? (cpuS / connects) * 1000 : NaN,
      cltSelfCpuS: iapp ? NaN : Number(rep.cpuS),
      window: win,
      cltCpuS: cpuS,
      cltUtil: win ? win.cpu / (win.b - win.a) : NaN,
      sinkCpuS,
      sinkUtil: sinkCpuS / wallS,
      sinkPer1k: connects > 0 ? (sinkCpuS / sres.accepted) * 1000 : NaN,
      harnessCpuS: selfS,
      wallS,
      timeWaitAtStart: tw0,
      samples: samples.length,
      foreign: disturbed ? foreignRaw : Math.min(foreignRaw, FOREIGN_MAX), // what the runner repeats a run for
      foreignRaw,
      flags,
      notes: flagNotes(flags),
    };
  } catch (err) {
    if (cl) await cl.kill();
    await sink.kill();
    throw err;
  }
}

// ---- summaries -----------------------------------------------------------------------------------
const summarizeCase = (rows, sys) =>
  summarizeSystems(rows, sys, {
    metrics: {
      connectsPerS: 'perS',
      steadyPerS: 'steadyPerS',
      cpuPer1k: 'cpuPer1k',
      cpuPer1kAll: 'cpuPer1kAll',
      cltUtil: 'cltUtil',
      sinkUtil: 'sinkUtil',
    },
    ratios: { connectsPerS: 'perS', cpuPer1k: 'cpuPer1k' },
    peers: [REF],
    errors: true,
  });

function printTable(c, summary) {
  log('');
  log(`== connects ${c.name}: ${runs} runs per client, interleaved; ${c.kind === 'churn' ? `${duration} s each` : `${c.n} connections`}; sink on ${addrs.length} address(es)`);
  const cols = [
    ['client', 15],
    ['connects/s (min-max)', 24],
    ['steady/s', 9],
    ['CPU-s/1k (min-max)', 22],
    ['w/ start', 9],
    ['cltCPU', 7],
    ['sinkCPU', 8],
    [`conn/s ÷${REF}`, 20],
    [`CPU/1k ÷${REF}`, 20],
    ['notes', 0],
  ];
  const rows = summary.map((s) => {
    const notes = [...s.notes];
    if (s.failedRuns) notes.unshift(`${s.failedRuns} failed run(s): ${[...new Set(s.errors)].join(' / ').slice(0, 300)}`);
    // a collapse reads 0.00 with two decimals: small ratios get significant digits instead
    const r = (m) => (s.vs[REF] ? (s.vs[REF][m].median < 0.1 ? rng(s.vs[REF][m], 4) : rng(s.vs[REF][m])) : s.system === REF ? '1' : '-');
    return [s.system, rng(s.connectsPerS, 0), f(s.steadyPerS.median, 0), rng(s.cpuPer1k, 3), f(s.cpuPer1kAll.median, 3), pct(s.cltUtil), pct(s.sinkUtil), r('connectsPerS'), r('cpuPer1k'), notes.join('; ')];
  });
  logTable(cols, rows);
}

// ---- main ----------------------------------------------------------------------------------------
const results = newResults('connects', {
  churnS: duration,
  runs,
  cases: cases.map((c) => c.name),
  addrs,
  holdLimit,
  systems: systems.map((s) => ({ name: s.name, kind: s.kind, cmd: relative(root, s.cmd) || s.cmd, ...(s.inflight ? { inflight: s.inflight } : {}), ...(s.holdOnly ? { holdOnly: true } : {}) })),
  client: 'one thread pinned to CPU 1: iapp-clt --threads 1 --procs 1 --rate 10000000 (connect or hold mode), or bench/reference/connect.c',
  sink: sinkDesc,
  pinning: pin.note,
  definitions: {
    connectsPerS: "the client's own: churn: established / its run time; hold: connections / time until all were established",
    steadyPerS: "connects started machine-wide (ActiveOpens) per second in the CPU window (churn), or the client's connections over its own time (hold)",
    cpuPer1k: 'client CPU seconds (schedstat, every thread of its process tree) per 1,000 connects: churn: from the first connect + 0.3 s to the last - 0.1 s, per connect started then; hold: from the first connect to the end of the client\'s own time',
    cpuPer1kAll: 'the same from spawn to exit (GNU time): start-up and closing included',
    ratio: `median over rounds of the per-round ratio, > 1 = iapp better in the JSON lines: iapp/${REF} for connects/s, ${REF}/iapp for CPU-s/1k (the printed "÷${REF}" columns keep system/${REF})`,
  },
});
const vm = vmProbe(); // syscall and page-fault cost here: this scenario is mostly syscalls
results.config.vm = vm;
if (vm.slow) log(`NOTE: ${vm.slow}.`);
const save = () => writeResults(outFile, results);
const planned = cases.reduce((a, c) => a + caseSystems(c).length * runs, 0);
const estimate = cases.reduce((a, c) => a + runs * caseSystems(c).reduce((b, s) => b + (c.kind === 'churn' ? duration + (s.kind === 'iapp' ? 0.9 : 0.3) : s.kind === 'iapp' ? holdLimit + 1.5 : 0.8), 0), 0);
log(`connects bench: ${cases.map((c) => c.name).join(', ')} x ${systems.map((s) => s.name).join(', ')} x ${runs} runs; about ${Math.ceil(estimate)} s`);
log(`sink: ${sinkDesc}`);
log(`pinning: ${pin.note}`);
const runner = interleavedRunner({ results, plannedRuns: planned, maxRetriesShare: MAX_RETRIES_SHARE, failIndent: '  ' });
const pc = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : '-');
const logRun = (row) =>
  log(
    `  ${row.case} run ${row.run} ${row.system.padEnd(15)} ${f(row.perS, 0).padStart(7)} connects/s  ${f(row.cpuPer1k, 3)} CPU-s/1k  clt ${pc(row.cltUtil)}  sink ${pc(row.sinkUtil)}  TIME_WAIT ${row.timeWaitAtStart}` +
      (row.notes.length ? `  [${row.notes.join('; ')}]` : ''),
  );
const targetLines = [];
for (const c of cases) {
  const sys = caseSystems(c);
  const rows = await runner.runCase({ label: c.name, base: { kind: c.kind, k: c.k }, systems: sys, runs, runOnce: (s) => runOnce(s, c), logRow: logRun });
  const summary = summarizeCase(rows, sys);
  const entry = { case: c.name, kind: c.kind, k: c.k, systems: summary };
  const short = rows.filter((r) => r.ok && r.system === IAPP && !r.complete);
  if (short.length) {
    entry.note = `${IAPP} did not have all ${c.n.toLocaleString('en-US')} connections open after ${holdLimit} s in ${short.length} of ${rows.filter((r) => r.ok && r.system === IAPP).length} runs ` +
      `(it counted ${short.map((r) => r.connects).join(', ')}; the sink had accepted ${short.map((r) => r.accepted).join(', ')}): its figure is connections per second over the ${holdLimit} s`;
  }
  results.summary.push(entry);
  printTable(c, summary);
  const iapp = summary.find((s) => s.system === IAPP);
  if (iapp?.vs[REF]?.connectsPerS.n) {
    const r = iapp.vs[REF].connectsPerS;
    const cpu = invertedRatio(iapp.vs[REF].cpuPer1k);
    const d = r.median < 0.1 ? 4 : 2;
    targetLines.push(
      `target ${c.name}: ${IAPP} >= ${TARGET}x ${REF}'s connects/s: ${r.median >= TARGET ? 'met' : 'NOT met'} ` +
        `(${f(r.median, d)}x, rounds ${f(r.min, d)}-${f(r.max, d)}; CPU-s/1k ${REF}/iapp ${f(cpu.median, d)}x)`,
    );
  }
  if (opts.json)
    writeJsonLines(
      caseJsonLines('connects', c.name, summary, {
        peer: REF,
        peerKinds: ['iapp', 'noise'],
        refKinds: [],
        costMetrics: ['cpuPer1k'],
        metrics: [
          ['connectsPerS', 'connects/s'],
          ['cpuPer1k', 'CPU-s per 1k connects'],
        ],
      })
        .filter((l) => Number.isFinite(l.value))
        .map((l) => ({ ...l, kind: c.kind, k: c.k, addrs: addrs.length, pinned: pin.pinned })),
    );
  save();
}
runner.finish({ quietWait: true });
results.targets = targetLines;
save();
log('');
log(`connects/s: the client's own figure (churn: established / run time; hold: connections / time until all established).`);
log(`steady/s: connects started machine-wide per second in the CPU window. CPU-s/1k: client CPU (every thread of its tree)`);
log(`per 1,000 connects without start-up; "w/ start": spawn to exit. cltCPU/sinkCPU: CPU-seconds per wall-second (100% = one core).`);
log(`"÷${REF}": median (min-max) over rounds of system/${REF} in the same round (lower is better for CPU/1k; the JSON lines'`);
log(`ratio is ${REF}/iapp there, > 1 = iapp better). Sink: ${sinkDesc}. Pinning: ${pin.note}.`);
for (const t of targetLines) log(t);
if (vm.slow) log(`NOTE: ${vm.slow}.`);
runner.logDisturbed();
logResultsFile(outFile, results.elapsedS);
const complete = results.summary.every((s) => s.systems.every((x) => x.runs > 0));
if (!complete) log('Some system measured nothing in some case (see the failures above): exit 1.');
process.exit(complete ? 0 : 1);
