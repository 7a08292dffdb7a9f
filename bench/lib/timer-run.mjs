// What bench/servers/iapp-timers-loop.mjs and bench/peers/node-timers.mjs share: clocks, CPU,
// yielding to the event loop, memory snapshots and the timed phases around a system's own hot
// loop. The hot loops themselves (the calls being measured) are written out in each system's
// file, the same shape on both sides, so that neither pays for an indirection the other does not.

/** process.hrtime (CLOCK_MONOTONIC) in ns, as a Number. */
import { readFileSync } from 'node:fs';

export const nowNs = () => Number(process.hrtime.bigint());
/** User+system CPU seconds of the whole process (all threads). */
export const cpuS = (u = process.cpuUsage()) => (u.user + u.system) / 1e6;
/**
 * CPU seconds of the calling thread alone (Linux: /proc/thread-self/schedstat, ns; a read costs
 * ~15 µs, so only at phase edges), or NaN where that is not there.
 */
export function threadCpuS() {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e9;
  } catch {
    return NaN;
  }
}
/** One turn of the thread's event loop (libuv: timers, prepare, poll, check). */
export const yieldLoop = () => new Promise((r) => setImmediate(r));

/**
 * process.memoryUsage() after two full GCs (when the process runs with --expose-gc) and event-loop
 * turns; `js` = heapUsed + external (external includes arrayBuffers). Both systems call it on
 * the thread that holds the timers (rss is the whole process's either way).
 */
export async function memSnapshot() {
  for (let i = 0; i < 2; i++) {
    globalThis.gc?.();
    await yieldLoop();
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, js: m.heapUsed + m.external, gc: typeof globalThis.gc === 'function' };
}

/** Per-timer bytes between two memSnapshot()s. */
export function memPerTimer(before, after, n) {
  return {
    rssPerTimer: (after.rss - before.rss) / n,
    jsPerTimer: (after.js - before.js) / n,
    heapPerTimer: (after.heapUsed - before.heapUsed) / n,
    externalPerTimer: (after.external - before.external) / n,
    gc: after.gc,
  };
}

/**
 * Calls `chunk()` (a fixed number of operations; returns how many) over and over, with one
 * event-loop turn after each call (so that what the calls changed is applied, and anything due
 * runs), for `warmS` seconds uncounted and then `durationS` seconds. Returns { ops, seconds,
 * cpuS, cores, chunks } of the measured phase; seconds include the turns.
 */
export async function churn(chunk, { warmS, durationS }) {
  const warmEnd = nowNs() + warmS * 1e9;
  while (nowNs() < warmEnd) {
    chunk();
    await yieldLoop();
  }
  let ops = 0;
  let chunks = 0;
  const c0 = cpuS();
  const t0 = nowNs();
  const end = t0 + durationS * 1e9;
  let t = t0;
  while (t < end) {
    ops += chunk();
    chunks++;
    await yieldLoop();
    t = nowNs();
  }
  const seconds = (t - t0) / 1e9;
  const cpu = cpuS() - c0;
  return { ops, seconds, cpuS: cpu, cores: cpu / seconds, chunks };
}

/**
 * Runs `batch()` (arms the whole set, resolves to the ns from the first arm to the last fire)
 * for `warmS` seconds (at least once) uncounted, then until `durationS` seconds of batches (at
 * least `minBatches`). Returns { batches, seconds (sum of the batches), batchMs: [...],
 * cpuS, cores (CPU per wall second of the measured phase, gaps between batches included) }.
 */
export async function batches(batch, { warmS, durationS, minBatches = 2 }) {
  const warmEnd = nowNs() + warmS * 1e9;
  do await batch();
  while (nowNs() < warmEnd);
  const ms = [];
  let sumNs = 0;
  const c0 = cpuS();
  const tc0 = threadCpuS();
  const t0 = nowNs();
  while (sumNs < durationS * 1e9 || ms.length < minBatches) {
    const ns = await batch();
    ms.push(ns / 1e6);
    sumNs += ns;
  }
  const wall = (nowNs() - t0) / 1e9;
  const cpu = cpuS() - c0;
  return { batches: ms.length, seconds: sumNs / 1e9, batchMs: ms, cpuS: cpu, threadCpuS: threadCpuS() - tc0, cores: cpu / wall, wallS: wall };
}

/**
 * The fields of a fire chain (one timer re-armed from its own callback): given the callback's
 * per-fire bookkeeping, returns a tracker with tick(now) -> true once the measured phase is over.
 */
export function chainTracker({ warmS, durationS }) {
  const tr = {
    fires: 0,
    phase: 0,
    warmEnd: nowNs() + warmS * 1e9,
    t0: 0,
    f0: 0,
    c0: 0,
    tc0: 0,
    end: Infinity,
    result: null,
    /** Call once per fire with nowNs(); true when the chain should stop. */
    tick(now) {
      tr.fires++;
      if (tr.phase === 0) {
        if (now >= tr.warmEnd) {
          tr.phase = 1;
          tr.t0 = now;
          tr.f0 = tr.fires;
          tr.c0 = cpuS();
          tr.tc0 = threadCpuS();
          tr.end = now + durationS * 1e9;
        }
        return false;
      }
      if (now < tr.end) return false;
      const fires = tr.fires - tr.f0;
      const seconds = (now - tr.t0) / 1e9;
      const cpu = cpuS() - tr.c0;
      const threadCpu = threadCpuS() - tr.tc0;
      // Per fire: the CPU of the chain's thread where it can be read (the timers' own work, not
      // the process's other threads'), else the process's.
      const perFire = Number.isFinite(threadCpu) ? threadCpu : cpu;
      tr.result = { fires, seconds, firesPerS: fires / seconds, cpuS: cpu, cores: cpu / seconds, threadCpuS: threadCpu, cpuPerFireUs: (perFire / fires) * 1e6, cpuPerFireOf: Number.isFinite(threadCpu) ? 'thread' : 'process', processCpuPerFireUs: (cpu / fires) * 1e6, intervalUs: (seconds / fires) * 1e6 };
      return true;
    },
  };
  return tr;
}
