// The loop module of bench/servers/iapp-messaging.mjs: iapp's cross-thread messaging between loop
// threads, driven from the main thread by call()s. Every loop has all the handlers; the driver
// decides which loops send, receive, ping and pong.
//   'm'       (post)  a 16-byte message: counted
//   'end'     (post)  a sender is done (it follows that sender's messages): once every sender's
//                     has arrived, the receiver notes the time and its count
//   'reset'   (call)  { senders }: zero the count, expect that many 'end's
//   'wait'    (call)  resolves { endNs, count } once every sender's 'end' was handled
//   'send'    (call)  { target, durationS, n? }: posts to `target` in a tight loop for durationS
//                     (looking at the clock every 4096 posts) or until n were posted, tryPost()
//                     and `await loop.space(target)` when its inbox is full, then 'end';
//                     returns { startNs, endNs, sent, fullWaits }
//   'ping'/'pong' (post) a 16-byte message and its echo
//   'rtt'     (call)  { target, durationS, warmS }: ping-pong with `target`, one round trip in
//                     flight; returns { count, seconds, p50Us, p99Us, meanUs, minUs, maxUs }
// Times are process.hrtime (CLOCK_MONOTONIC, the same clock in every thread), in ns as Numbers.
import { benchPayload } from '../lib/payload.mjs';
const nowNs = () => Number(process.hrtime.bigint());
const CHUNK = 4096; // posts between looks at the clock

export function setup(loop) {
  // ---- one way -------------------------------------------------------------------------------
  let count = 0;
  let senders = 1;
  let ends = 0;
  let done = null; // { endNs, count } once every sender's 'end' arrived
  let waiter = null;
  loop.handle('m', () => {
    count++;
  });
  loop.handle('end', () => {
    if (++ends < senders) return;
    done = { endNs: nowNs(), count };
    if (waiter) {
      const w = waiter;
      waiter = null;
      w(done);
    }
  });
  loop.handle('reset', ({ senders: s }) => {
    senders = s;
    count = 0;
    ends = 0;
    done = null;
    return {};
  });
  loop.handle('wait', () => done ?? new Promise((r) => (waiter = r)));

  const u8 = benchPayload();
  loop.handle('send', async ({ target, durationS, n }) => {
    let fullWaits = 0;
    let sent = 0;
    const max = n ?? Infinity;
    const startNs = nowNs();
    const endAt = startNs + durationS * 1e9;
    for (;;) {
      const stop = Math.min(max, sent + CHUNK);
      while (sent < stop) {
        if (loop.tryPost(target, 'm', u8) === undefined) {
          fullWaits++;
          await loop.space(target);
        } else sent++;
      }
      if (sent >= max || nowNs() >= endAt) break;
    }
    while (loop.tryPost(target, 'end') === undefined) await loop.space(target);
    return { startNs, endNs: nowNs(), sent, fullWaits };
  });

  // ---- round trips ---------------------------------------------------------------------------
  loop.handle('ping', (payload, from) => {
    loop.post(from, 'pong', payload);
  });
  let onPong = null;
  loop.handle('pong', () => onPong?.());
  loop.handle('rtt', ({ target, durationS, warmS }) => {
    const MAX = 4_000_000;
    const samples = new Float64Array(MAX);
    let n = 0;
    const warmEnd = nowNs() + warmS * 1e9;
    let tMeasure = 0;
    let end = Infinity;
    let t = 0;
    return new Promise((resolve) => {
      onPong = () => {
        const now = nowNs();
        if (tMeasure) {
          samples[n++] = now - t;
          if (now >= end || n >= MAX) {
            onPong = null;
            resolve(latencyStats(samples.subarray(0, n), (now - tMeasure) / 1e9));
            return;
          }
        } else if (now >= warmEnd) {
          tMeasure = now;
          end = now + durationS * 1e9;
        }
        t = nowNs();
        loop.post(target, 'ping', u8);
      };
      t = nowNs();
      loop.post(target, 'ping', u8);
    });
  });
  return {};
}

/** { count, seconds, p50Us, p99Us, meanUs, minUs, maxUs } of round trips in ns. */
function latencyStats(ns, seconds) {
  const s = Float64Array.from(ns).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))] / 1e3;
  let sum = 0;
  for (const x of s) sum += x;
  return { count: s.length, seconds, p50Us: q(0.5), p99Us: q(0.99), meanUs: sum / s.length / 1e3, minUs: s[0] / 1e3, maxUs: s[s.length - 1] / 1e3 };
}
