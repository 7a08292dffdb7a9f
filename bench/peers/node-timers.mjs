// setTimeout/clearTimeout for bench/timers.mjs, the Node baseline next to iapp's loop timers
// (bench/servers/iapp-timers-loop.mjs, whose cases this mirrors line for line). Plain Node, no
// iapp, on the main thread (the thread that arms the timers runs their callbacks, as with
// iapp). One case per process, run with --expose-gc:
//
//   node --expose-gc bench/peers/node-timers.mjs --case arm-disarm|arm-fire --n N
//        [--duration D] [--warmup-s W] [--chunk K] [--spread-ms S] [--delay-ms M] [--refresh]
//
//   arm-disarm  n = 1: t = setTimeout(fn, 1e6); clearTimeout(t), `chunk` pairs between
//               event-loop turns. n > 1: n Timeouts set (1000 + i % 1000 ms), then round-robin
//               clearTimeout(ts[j]); ts[j] = setTimeout(fn, its delay) (a new Timeout each
//               time: setTimeout has no re-arm), or with --refresh ts[j].refresh() (re-arms the
//               same Timeout for its delay: Node's cheapest way to postpone a timer).
//               Memory: process.memoryUsage() after GC before setting and after setting them.
//   arm-fire    n = 1: one timer re-set with `delayMs` from its own callback (a chain; Node
//               runs a delay below 1 ms as 1 ms). n > 1: batches: setTimeout(fn, 1 + i % S) for
//               all n, wait until every one fired; a batch's time = first set -> last callback.
//
// Prints one JSON line on stdout: {"system":"node"|"node-refresh","case","n", ...figures...,
// "cpuTotalS"}; cpuS/cores: the whole process (all threads) during the measured phase.
import { parseArgs } from 'node:util';
import { batches, chainTracker, churn, cpuS, memPerTimer, memSnapshot, nowNs, yieldLoop } from '../lib/timer-run.mjs';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'arm-disarm' },
    n: { type: 'string', default: '1' },
    duration: { type: 'string', default: '0.5' },
    'warmup-s': { type: 'string', default: '0.2' },
    chunk: { type: 'string', default: '1024' },
    'spread-ms': { type: 'string', default: '10' },
    'delay-ms': { type: 'string', default: '1' },
    refresh: { type: 'boolean', default: false },
  },
});
const kase = values.case;
const n = Number(values.n);
const durationS = Number(values.duration);
const warmS = Number(values['warmup-s']);
const chunk = Number(values.chunk);
const spreadMs = Number(values['spread-ms']);
const delayMs = Number(values['delay-ms']);
const refresh = values.refresh;
if (!['arm-disarm', 'arm-fire'].includes(kase) || !(Number.isInteger(n) && n >= 1 && n <= 10_000_000) || !(durationS > 0 && durationS <= 60) || !(warmS >= 0) || !(Number.isInteger(chunk) && chunk >= 1) || !(Number.isInteger(spreadMs) && spreadMs >= 1) || !(Number.isInteger(delayMs) && delayMs >= 0) || (refresh && (kase !== 'arm-disarm' || n === 1))) {
  console.error('usage: node-timers.mjs --case arm-disarm|arm-fire --n N [--duration D] [--warmup-s W] [--chunk K] [--spread-ms S] [--delay-ms M] [--refresh (arm-disarm, n > 1)]');
  process.exit(2);
}
const giveUpS = Math.max(60, 3 * (durationS + warmS) + 30 + n / 20_000);
setTimeout(() => {
  console.error(`node-timers: still running after ${Math.round(giveUpS)} s (${kase}, n ${n}): giving up`);
  process.exit(1);
}, giveUpS * 1000).unref();
const fail = (err) => {
  console.error(`node-timers (${kase}, n ${n}): ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}`);
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

const LONG_MS = 1_000_000;
let unexpected = 0;
const onUnexpected = () => {
  unexpected++;
};

async function armDisarm1() {
  const K = chunk;
  const r = await churn(
    () => {
      for (let k = 0; k < K; k++) {
        const t = setTimeout(onUnexpected, LONG_MS);
        clearTimeout(t);
      }
      return K;
    },
    { warmS, durationS },
  );
  return { ...r, opsPerS: r.ops / r.seconds, fired: unexpected };
}

async function armDisarmMany() {
  const m0 = await memSnapshot();
  const a0 = nowNs();
  const ts = new Array(n);
  for (let i = 0; i < n; i++) ts[i] = setTimeout(onUnexpected, 1000 + (i % 1000));
  await yieldLoop();
  const a1 = nowNs();
  const m1 = await memSnapshot();
  const K = chunk;
  let j = 0;
  const r = await churn(
    refresh
      ? () => {
          for (let k = 0; k < K; k++) {
            ts[j].refresh();
            if (++j === n) j = 0;
          }
          return K;
        }
      : () => {
          for (let k = 0; k < K; k++) {
            clearTimeout(ts[j]);
            ts[j] = setTimeout(onUnexpected, 1000 + (j % 1000));
            if (++j === n) j = 0;
          }
          return K;
        },
    { warmS, durationS },
  );
  for (const t of ts) clearTimeout(t);
  return { ...r, opsPerS: r.ops / r.seconds, fired: unexpected, armAllMs: (a1 - a0) / 1e6, mem: { before: m0, after: m1, ...memPerTimer(m0, m1, n) } };
}

function armFire1() {
  const tr = chainTracker({ warmS, durationS });
  return new Promise((resolve) => {
    const onFire = () => {
      if (tr.tick(nowNs())) {
        resolve({ ...tr.result, delayMs });
        return;
      }
      setTimeout(onFire, delayMs);
    };
    setTimeout(onFire, delayMs);
  });
}

async function armFireMany() {
  let fired = 0;
  let last = 0;
  let wake = null;
  const onFire = () => {
    if (++fired === n) {
      last = nowNs();
      wake();
    }
  };
  const S = spreadMs;
  const batch = () => {
    fired = 0;
    const done = new Promise((r) => (wake = r));
    const t0 = nowNs();
    for (let i = 0; i < n; i++) setTimeout(onFire, 1 + (i % S));
    return done.then(() => last - t0);
  };
  const r = await batches(batch, { warmS, durationS });
  const fires = r.batches * n;
  return { ...r, fires, firesPerS: fires / r.seconds, cpuPerFireUs: (r.cpuS / fires) * 1e6, threadCpuPerFireUs: (r.threadCpuS / fires) * 1e6, spreadMs };
}

const run = kase === 'arm-disarm' ? (n === 1 ? armDisarm1 : armDisarmMany) : n === 1 ? armFire1 : armFireMany;
const r = await run();
process.stdout.write(`${JSON.stringify({ system: refresh ? 'node-refresh' : 'node', case: kase, n, ...r, cpuTotalS: cpuS() })}\n`);
process.exit(0);
