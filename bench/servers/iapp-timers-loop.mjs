// The loop module of bench/servers/iapp-timers.mjs: iapp's loop timers, measured on the loop's
// own thread. One handler:
//   'run' (call) { kase, n, durationS, warmS, chunk, spreadMs, delayMs } -> the case's figures
// The cases mirror bench/peers/node-timers.mjs line for line (there with setTimeout/clearTimeout):
//   arm-disarm  n timers allocated, each armed (1000 + i % 1000 ms); then, round-robin over them,
//               disarm() + arm() of the same timer (its delay again), `chunk` pairs between
//               event-loop turns. n = 1: the one timer, arm(1e6 ms) + disarm(). Allocation is
//               outside the timed phase (iapp allocates once; arming allocates nothing).
//               Memory: process.memoryUsage() after GC before allocating and after arming.
//   arm-fire    n = 1: one timer re-armed with `delayMs` from its own callback (a chain).
//               n > 1: batches: arm all n (1 + i % spreadMs ms), wait until every one fired;
//               a batch's time = first arm -> last callback.
// Arming is a store into arrays the loop applies before it next waits (its prepare hook), so
// every timed phase includes event-loop turns: what was armed is applied inside the timing.
import { batches, chainTracker, churn, memPerTimer, memSnapshot, nowNs, yieldLoop } from '../lib/timer-run.mjs';

const LONG_MS = 1_000_000;

export function setup(loop) {
  loop.handle('run', async (args) => {
    const { kase, n } = args;
    if (kase === 'arm-disarm') return n === 1 ? armDisarm1(loop, args) : armDisarmMany(loop, args);
    if (kase === 'arm-fire') return n === 1 ? armFire1(loop, args) : armFireMany(loop, args);
    throw new Error(`unknown case ${kase}`);
  });
  return {};
}

let unexpected = 0;
const onUnexpected = () => {
  unexpected++;
};

async function armDisarm1(loop, { chunk, warmS, durationS }) {
  const t = loop.timer(onUnexpected);
  const K = chunk;
  const r = await churn(
    () => {
      for (let k = 0; k < K; k++) {
        t.arm(LONG_MS);
        t.disarm();
      }
      return K;
    },
    { warmS, durationS },
  );
  await yieldLoop();
  const st = loop.stats();
  t.close();
  return { ...r, opsPerS: r.ops / r.seconds, fired: unexpected, timersArmed: st.timersArmed };
}

async function armDisarmMany(loop, { n, chunk, warmS, durationS }) {
  const m0 = await memSnapshot();
  const a0 = nowNs();
  const ts = new Array(n);
  for (let i = 0; i < n; i++) ts[i] = loop.timer(onUnexpected);
  const a1 = nowNs();
  for (let i = 0; i < n; i++) ts[i].arm(1000 + (i % 1000));
  await yieldLoop(); // applied
  const a2 = nowNs();
  const armedAfter = loop.stats().timersArmed;
  const m1 = await memSnapshot();
  const K = chunk;
  let j = 0;
  const r = await churn(
    () => {
      for (let k = 0; k < K; k++) {
        const t = ts[j];
        t.disarm();
        t.arm(1000 + (j % 1000));
        if (++j === n) j = 0;
      }
      return K;
    },
    { warmS, durationS },
  );
  await yieldLoop();
  const st = loop.stats();
  for (const t of ts) t.close();
  return {
    ...r,
    opsPerS: r.ops / r.seconds,
    fired: unexpected,
    timersArmed: st.timersArmed,
    armedAfterSetup: armedAfter,
    allocMs: (a1 - a0) / 1e6,
    armAllMs: (a2 - a1) / 1e6,
    mem: { before: m0, after: m1, ...memPerTimer(m0, m1, n) },
  };
}

function armFire1(loop, { delayMs, warmS, durationS }) {
  const tr = chainTracker({ warmS, durationS });
  return new Promise((resolve) => {
    const t = loop.timer((_exp, tm) => {
      if (tr.tick(nowNs())) {
        tm.close();
        resolve({ ...tr.result, delayMs });
        return;
      }
      tm.arm(delayMs);
    });
    t.arm(delayMs);
  });
}

async function armFireMany(loop, { n, spreadMs, warmS, durationS }) {
  let fired = 0;
  let last = 0;
  let wake = null;
  const onFire = () => {
    if (++fired === n) {
      last = nowNs();
      wake();
    }
  };
  const a0 = nowNs();
  const ts = new Array(n);
  for (let i = 0; i < n; i++) ts[i] = loop.timer(onFire);
  const allocMs = (nowNs() - a0) / 1e6;
  const S = spreadMs;
  const batch = () => {
    fired = 0;
    const done = new Promise((r) => (wake = r));
    const t0 = nowNs();
    for (let i = 0; i < n; i++) ts[i].arm(1 + (i % S));
    return done.then(() => last - t0);
  };
  const r = await batches(batch, { warmS, durationS });
  for (const t of ts) t.close();
  const fires = r.batches * n;
  return { ...r, fires, firesPerS: fires / r.seconds, cpuPerFireUs: (r.cpuS / fires) * 1e6, threadCpuPerFireUs: (r.threadCpuS / fires) * 1e6, allocMs, spreadMs };
}
