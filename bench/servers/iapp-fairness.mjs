// One run of bench/fairness.mjs: a runtime of one loop thread (bench/servers/iapp-fairness-loop.mjs)
// under native load, and how responsive that loop stays.
//
//   node bench/servers/iapp-fairness.mjs --case idle|push|sink|proxy --budget-us U|default
//        [--conns N] [--size B] [--peer-port P] [--warmup-s W] [--duration D] [--ping-ms 5]
//        [--stop-timeout-s S] [--end-signal] [--main-nice=N] [--quiet]
//
// The load's peer is another process the harness runs: push -> the C sink at --peer-port; sink
// <- the C push client, which the harness starts once this prints {"type":"listening","port"};
// proxy: the C push client -> this loop's loop.proxy() -> the C sink at --peer-port. idle: none.
// The sockets are open before the load starts (push: every connect has completed before the
// first push; sink and proxy: the loop starts measuring once all N connections, and for proxy
// their upstream connections, are there). From then on (t0):
//   - the loop's 10 ms interval timer records its lateness (see the loop module);
//   - after --warmup-s, this main thread calls 'ping' on the loop every --ping-ms for
//     --duration seconds (a new call every period, whether the earlier ones were answered or
//     not) and times each round trip on process.hrtime (the loop's clock: CLOCK_MONOTONIC);
//   - at the window's end (with --end-signal: once SIGUSR2 comes after it, which the harness
//     sends when it has read the kernel's counters, so that no socket closes before) it calls
//     'stop', which the loop runs once it gets to its messages.
//     The harness ends the load just after the window's end (a loop without a budget would
//     otherwise finish a turn of seconds first), so calls and timer periods still open then are
//     cut short: lower bounds. The pings of the window are answered before 'stop' is; what is
//     still unanswered after it (or when --stop-timeout-s passes, which fails the run) counts
//     at its age, and separately.
// --quiet: throughput alone: no pings and no timer, so the main thread and the loop's JavaScript
// take no CPU from the native work (with pings, a loop that answers them hands the main thread
// its share of the core, which a loop without a budget, answering none, does not).
// Prints {"type":"window","t0","ws","we","budgetUs"} (hrtime ns) once measuring starts, then one
// line { type: 'result', ... } with the figures (ms unless named otherwise).
import os from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const { values } = parseArgs({
  options: {
    case: { type: 'string' },
    'budget-us': { type: 'string' },
    conns: { type: 'string', default: '0' },
    size: { type: 'string', default: '0' },
    'peer-port': { type: 'string', default: '0' },
    'warmup-s': { type: 'string', default: '0.3' },
    duration: { type: 'string', default: '1.5' },
    'ping-ms': { type: 'string', default: '5' },
    'stop-timeout-s': { type: 'string', default: '20' },
    'end-signal': { type: 'boolean', default: false },
    'main-nice': { type: 'string' },
    quiet: { type: 'boolean', default: false },
    'free-caller': { type: 'boolean', default: false },
  },
});
const quiet = values.quiet;
const kase = values.case;
// 'default': the runtime's own default budget (createRuntime without turnBudgetUs).
const budgetUs = values['budget-us'] === 'default' ? undefined : Number(values['budget-us']);
const conns = Number(values.conns);
const size = Number(values.size);
const peerPort = Number(values['peer-port']);
const warmS = Number(values['warmup-s']);
const durationS = Number(values.duration);
const pingMs = Number(values['ping-ms']);
const stopTimeoutS = Number(values['stop-timeout-s']);
const loaded = kase !== 'idle';
if (
  !['idle', 'push', 'sink', 'proxy'].includes(kase) ||
  !(budgetUs === undefined || budgetUs >= 0) ||
  (loaded && !(Number.isInteger(conns) && conns >= 1 && conns <= 10000)) ||
  (kase === 'push' && !(size >= 1)) ||
  ((kase === 'push' || kase === 'proxy') && !(peerPort > 0)) ||
  !(warmS >= 0 && durationS > 0 && pingMs > 0 && stopTimeoutS > 0)
) {
  console.error('usage: iapp-fairness.mjs --case idle|push|sink|proxy --budget-us U [--conns N] [--size B] [--peer-port P] [--warmup-s W] [--duration D] [--ping-ms MS] [--stop-timeout-s S]');
  process.exit(2);
}
// Self-termination: whatever happens, a run ends (the harness has its own bound too).
const giveUpS = 60 + warmS + durationS + stopTimeoutS;
setTimeout(() => {
  console.error(`iapp-fairness (${kase}): still running after ${giveUpS} s: giving up`);
  process.exit(1);
}, giveUpS * 1000).unref();

const fail = (err) => {
  console.error(`iapp-fairness (${kase}, budget ${budgetUs ?? 'default'} µs): ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}`);
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

// The harness's word that the window is over on its side too (bounded: a run always ends).
let endSignal = null;
if (values['end-signal']) {
  let got;
  const p = new Promise((r) => (got = r));
  process.on('SIGUSR2', () => got(true));
  endSignal = () => Promise.race([p, sleep(10_000, false)]);
}

const hr = () => process.hrtime.bigint();
const cpuS = (u = process.cpuUsage()) => (u.user + u.system) / 1e6;
const { createRuntime } = await import('../../dist/src/index.js').catch(fail);
const rt = await createRuntime({
  module: new URL('./iapp-fairness-loop.mjs', import.meta.url),
  threads: 1,
  ...(budgetUs === undefined ? {} : { turnBudgetUs: budgetUs }),
  data: { kase, conns, size, peerPort, warmS, quiet },
});
// --free-caller: started pinned (taskset) to the loop's core, this main thread alone is let run
// on every CPU once the runtime is up. The loop thread, created meanwhile, keeps the pinning (a
// thread inherits its creator's affinity when it is made; `taskset -p` on the pid changes the main
// thread only). A caller pinned to the busy loop's core waits for the loop's time slice to be
// woken (measured: ~4 ms p99), which no turn budget changes.
let callerFree = false;
if (values['free-caller']) {
  const all = `0-${os.cpus().length - 1}`; // not availableParallelism(): that counts the CPUs this process is pinned to
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('taskset', ['-p', '-c', all, String(process.pid)], { stdio: 'ignore', timeout: 5000 });
  callerFree = !r.error && r.status === 0;
  if (!callerFree) fail(new Error('--free-caller: taskset -p failed'));
}
// --main-nice: this main thread's nice value (on Linux, setpriority with pid 0 sets the calling
// thread's alone, so the loop thread keeps its own). The caller shares the loop's core when
// pinned; at equal nice the scheduler may let the busy loop thread finish its slice first.
let mainNice = null;
if (values['main-nice'] !== undefined) {
  os.setPriority(Number(values['main-nice']));
  mainNice = os.getPriority();
}
rt.on('handler-error', ({ error }) => fail(error));
rt.handle('failed', (msg) => fail(new Error(`loop: ${msg}`)));
const SETUP = { timeoutMs: 30_000 };

let go;
if (kase === 'push') {
  const n = await rt.call(0, 'open', undefined, SETUP);
  if (n !== conns) throw new Error(`${n} of ${conns} connections opened`);
}
if (kase === 'sink' || kase === 'proxy') {
  let onLoaded;
  const ready = new Promise((r) => (onLoaded = r));
  rt.handle('loaded', (p) => onLoaded(p));
  const port = await rt.call(0, 'listen', undefined, SETUP);
  process.stdout.write(`${JSON.stringify({ type: 'listening', port })}\n`);
  let timer;
  const p = await Promise.race([ready, new Promise((r) => (timer = setTimeout(() => r(null), SETUP.timeoutMs)))]);
  clearTimeout(timer);
  if (!p) throw new Error(`not all ${conns} connections were there within ${SETUP.timeoutMs / 1000} s`);
  go = p;
} else {
  go = await rt.call(0, 'go', undefined, SETUP);
}
const cpu0 = cpuS();
const t0 = BigInt(go.t0);

// ---- the window: a ping every pingMs ---------------------------------------------------------------
const ws = t0 + BigInt(Math.round(warmS * 1e9));
const we = ws + BigInt(Math.round(durationS * 1e9));
const periodNs = BigInt(Math.round(pingMs * 1e6));
// The harness samples the kernel's byte counters at ws and we, and ends the load after we.
process.stdout.write(`${JSON.stringify({ type: 'window', t0: String(t0), ws: String(ws), we: String(we), budgetUs: go.budgetUs })}\n`);
const rtts = [];
const there = []; // issue -> the loop's handler (ms)
const back = []; // the loop's handler -> the answer here (ms)
let issued = 0;
let outstanding = 0;
const pending = new Set(); // issue times of calls not answered yet
const ping = () => {
  const t = hr();
  issued++;
  outstanding++;
  pending.add(t);
  rt.call(0, 'ping', undefined, { timeoutMs: 0 }).then(
    (at) => {
      const a = hr();
      rtts.push(Number(a - t) / 1e6);
      there.push(Number(BigInt(at) - t) / 1e6);
      back.push(Number(a - BigInt(at)) / 1e6);
      pending.delete(t);
      outstanding--;
    },
    () => {}, // only rt.close() rejects these: they stay in `pending`
  );
};
const untilNs = async (at) => {
  const d = Number(at - hr()) / 1e6;
  if (d > 0) await sleep(d);
};
await untilNs(ws);
for (let next = ws; !quiet && next < we; next += periodNs) {
  await untilNs(next);
  if (hr() >= we) break;
  ping();
}
await untilNs(we);
const unansweredAtEnd = outstanding;
if (endSignal && !(await endSignal())) throw new Error("no SIGUSR2 within 10 s of the window's end");
const tStop = hr();
const stop = await rt.call(0, 'stop', { windowStartNs: String(ws), windowEndNs: String(we) }, { timeoutMs: stopTimeoutS * 1000 }).catch((e) => {
  throw new Error(`'stop' not answered within ${stopTimeoutS} s of the window's end (${e.code ?? e.message}); ${outstanding} pings unanswered`);
});
const stopMs = Number(hr() - tStop) / 1e6;
const cpu = cpuS() - cpu0;
// Answers to earlier calls come before the answer to 'stop'; give stragglers a moment anyway.
for (let i = 0; i < 20 && outstanding > 0; i++) await sleep(5);
const tEnd = hr();
const neverAnswered = [...pending].map((t) => Number(tEnd - t) / 1e6);

const q = (xs, p) => {
  if (!xs.length) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
// Unanswered calls and timer periods that never fired count at their age (lower bounds).
const rttAll = [...rtts, ...neverAnswered];
const lateAll = [...stop.late, ...stop.pending];
const spanS = (stop.span.toMs - stop.span.fromMs) / 1e3;
const out = {
  type: 'result',
  case: kase,
  budgetUs: go.budgetUs,
  mainNice,
  callerFree,
  conns,
  size,
  warmS,
  durationS,
  pingMs,
  timer: { callbacks: stop.late.length, pending: stop.pending.length, missed: stop.missed, p50: q(lateAll, 0.5), p99: q(lateAll, 0.99), max: q(lateAll, 1) },
  rtt: { issued, answered: rtts.length, unansweredAtEnd, neverAnswered: neverAnswered.length, p50: q(rttAll, 0.5), p99: q(rttAll, 0.99), max: q(rttAll, 1) },
  // The answered calls' way there (main thread -> the loop's handler: the loop's delay and the
  // wake-up of its thread) and way back (-> the answer in the main thread: its wake-up).
  rttThere: { p50: q(there, 0.5), p99: q(there, 0.99) },
  rttBack: { p50: q(back, 0.5), p99: q(back, 0.99) },
  stopMs,
  span: { ...stop.span, seconds: spanS },
  bytesPerS: (kase === 'sink' ? stop.span.bytesIn : stop.span.bytesOut) / spanS,
  turnsCutPerS: stop.span.turnsCut / spanS,
  wakeupsPerS: stop.span.wakeups / spanS,
  cpuS: cpu,
  cores: cpu / (Number(tStop - t0) / 1e9 + stopMs / 1e3),
};
out.cpuTotalS = cpuS();
process.stdout.write(`${JSON.stringify(out)}\n`);
await rt.close({ timeoutMs: 2000 }).catch(() => {});
process.exit(0);
