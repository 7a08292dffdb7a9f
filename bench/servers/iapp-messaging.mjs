// iapp cross-thread messaging for bench/messaging.mjs (the same cases and output as
// bench/peers/messageport.mjs, which is the worker_threads baseline). One case per process:
//
//   node bench/servers/iapp-messaging.mjs --case oneway --senders S [--duration D] [--n N] [--warmup-s W]
//   node bench/servers/iapp-messaging.mjs --case rtt [--duration D] [--warmup-s W]
//   (either with --busy-poll-us U: the runtime's busyPollUs)
//
// oneway: a runtime of S+1 loop threads (bench/servers/iapp-messaging-loop.mjs); loops 0..S-1
// each post Uint8Array(16) to loop S with tryPost() in a tight loop for D seconds (or until N/S
// were posted), awaiting space() when its inbox is full, then post 'end'; loop S counts them and
// notes the time when the last sender's 'end' (which follows that sender's messages) arrives. A
// warm-up transfer of W seconds (uncounted) comes first. msgs/s = messages posted / (first post
// of the earliest sender -> the receiver handling the last 'end'), both on process.hrtime
// (CLOCK_MONOTONIC, the same clock in every thread); the drain after the senders stop is in it.
// The receiver's count must equal what the senders posted (else the run fails).
// rtt: 2 loop threads; loop 0 posts 'ping' to loop 1, which posts the payload back as 'pong';
// loop 0 measures hrtime before the post -> its 'pong' handler, one round trip in flight. Warm-up
// W s, then D s of samples.
//
// Prints one JSON line on stdout, the fields of bench/peers/messageport.mjs with
// "system":"iapp" (fullWaits instead of ackWaits: how often a sender found the inbox full).
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'oneway' },
    senders: { type: 'string', default: '1' },
    n: { type: 'string' },
    duration: { type: 'string', default: '1.5' },
    'warmup-s': { type: 'string', default: '0.3' },
    'busy-poll-us': { type: 'string', default: '0' },
  },
});
const kase = values.case;
const senders = Number(values.senders);
const n = values.n === undefined ? undefined : Number(values.n);
const durationS = Number(values.duration);
const warmS = Number(values['warmup-s']);
if (!['oneway', 'rtt'].includes(kase) || !(Number.isInteger(senders) && senders >= 1 && senders <= 64) || !(n === undefined || (Number.isInteger(n) && n >= senders)) || !(durationS > 0) || !(warmS >= 0)) {
  console.error('usage: iapp-messaging.mjs --case oneway|rtt [--senders S] [--duration D] [--n N] [--warmup-s W]');
  process.exit(2);
}
// Self-termination: a run takes seconds; give up well past what it can need.
const giveUpS = Math.max(120, 3 * (durationS + warmS) + 60, n === undefined ? 0 : n / 50_000 + 60);
setTimeout(() => {
  console.error(`iapp-messaging: still running after ${Math.round(giveUpS)} s (${kase}): giving up`);
  process.exit(1);
}, giveUpS * 1000).unref();

const cpuS = (u = process.cpuUsage()) => (u.user + u.system) / 1e6;
const CALL = { timeoutMs: 60_000 };
const threads = kase === 'oneway' ? senders + 1 : 2;
// Any failure ends the process with one line on stderr (the harness shows the last lines).
const fail = (err) => {
  console.error(`iapp-messaging (${kase}): ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}${err?.stack ? ` [${err.stack.split('\n').slice(1, 3).map((l) => l.trim()).join(' ')}]` : ''}`);
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
const { createRuntime } = await import('../../dist/src/index.js').catch(fail);
const busyPollUs = Number(values['busy-poll-us']);
const rt = await createRuntime({ module: new URL('./iapp-messaging-loop.mjs', import.meta.url), threads, busyPollUs });
let out;
if (kase === 'oneway') {
  const recv = senders;
  /** One transfer: every sender posts for `secs` (or its share of `total`); returns the figures. */
  const transfer = async (secs, total) => {
    await rt.call(recv, 'reset', { senders }, CALL);
    const cpu0 = cpuS();
    const reps = await Promise.all(
      Array.from({ length: senders }, (_, i) => {
        const share = total === undefined ? undefined : Math.floor(total / senders) + (i < total % senders ? 1 : 0);
        return rt.call(i, 'send', { target: recv, durationS: secs, ...(share === undefined ? {} : { n: share }) }, CALL);
      }),
    );
    const fin = await rt.call(recv, 'wait', undefined, CALL);
    const cpu = cpuS() - cpu0;
    const sent = reps.reduce((a, r) => a + r.sent, 0);
    if (fin.count !== sent) throw new Error(`the receiver counted ${fin.count} messages when every sender's 'end' had arrived, the senders posted ${sent}`);
    const t0 = Math.min(...reps.map((r) => r.startNs));
    const seconds = (fin.endNs - t0) / 1e9;
    return { n: sent, seconds, msgsPerS: sent / seconds, cpuS: cpu, cores: cpu / seconds, fullWaits: reps.reduce((a, r) => a + r.fullWaits, 0), postS: (Math.max(...reps.map((r) => r.endNs)) - t0) / 1e9 };
  };
  if (warmS > 0) await transfer(warmS);
  const m = await transfer(durationS, n);
  out = { system: 'iapp', case: 'oneway', senders, ...m };
} else {
  const cpu0 = cpuS();
  const r = await rt.call(0, 'rtt', { target: 1, durationS, warmS }, CALL);
  const cpu = cpuS() - cpu0;
  out = { system: 'iapp', case: 'rtt', ...r, cpuS: cpu, cores: cpu / (r.seconds + warmS) };
}
out.cpuTotalS = cpuS();
process.stdout.write(`${JSON.stringify(out)}\n`);
await rt.close({ timeoutMs: 2000 });
process.exit(0);
