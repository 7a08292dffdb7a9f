// iapp loop timers for bench/timers.mjs (the same cases and output as bench/peers/node-timers.mjs,
// the setTimeout/clearTimeout baseline). One case per process, run with --expose-gc:
//
//   node --expose-gc bench/servers/iapp-timers.mjs --case arm-disarm|arm-fire --n N
//        [--duration D] [--warmup-s W] [--chunk K] [--spread-ms S] [--delay-ms M]
//
// A runtime of one loop thread (bench/servers/iapp-timers-loop.mjs) runs the case on that thread
// (see there); this main thread only calls it and waits. Prints one JSON line on stdout:
//   {"system":"iapp","case","n", ...the loop's figures..., "cpuTotalS"}
// cpuS/cores: the whole process (all threads) during the measured phase.
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'arm-disarm' },
    n: { type: 'string', default: '1' },
    duration: { type: 'string', default: '0.5' },
    'warmup-s': { type: 'string', default: '0.2' },
    chunk: { type: 'string', default: '1024' },
    'spread-ms': { type: 'string', default: '10' },
    'delay-ms': { type: 'string', default: '1' },
  },
});
const kase = values.case;
const n = Number(values.n);
const durationS = Number(values.duration);
const warmS = Number(values['warmup-s']);
const chunk = Number(values.chunk);
const spreadMs = Number(values['spread-ms']);
const delayMs = Number(values['delay-ms']);
if (!['arm-disarm', 'arm-fire'].includes(kase) || !(Number.isInteger(n) && n >= 1 && n <= 10_000_000) || !(durationS > 0 && durationS <= 60) || !(warmS >= 0) || !(Number.isInteger(chunk) && chunk >= 1) || !(Number.isInteger(spreadMs) && spreadMs >= 1) || !(Number.isInteger(delayMs) && delayMs >= 0)) {
  console.error('usage: iapp-timers.mjs --case arm-disarm|arm-fire --n N [--duration D] [--warmup-s W] [--chunk K] [--spread-ms S] [--delay-ms M]');
  process.exit(2);
}
// Self-termination: a run takes about a second; give up well past what it can need.
const giveUpS = Math.max(60, 3 * (durationS + warmS) + 30 + n / 20_000);
setTimeout(() => {
  console.error(`iapp-timers: still running after ${Math.round(giveUpS)} s (${kase}, n ${n}): giving up`);
  process.exit(1);
}, giveUpS * 1000).unref();

const cpuS = (u = process.cpuUsage()) => (u.user + u.system) / 1e6;
// Any failure ends the process with one line on stderr (the harness shows the last lines).
const fail = (err) => {
  console.error(`iapp-timers (${kase}, n ${n}): ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}${err?.stack ? ` [${err.stack.split('\n').slice(1, 3).map((l) => l.trim()).join(' ')}]` : ''}`);
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
const { createRuntime } = await import('../../dist/src/index.js').catch(fail);
const rt = await createRuntime({ module: new URL('./iapp-timers-loop.mjs', import.meta.url), threads: 1 });
rt.on?.('handler-error', ({ error }) => fail(error));
const r = await rt.call(0, 'run', { kase, n, durationS, warmS, chunk, spreadMs, delayMs }, { timeoutMs: giveUpS * 1000 });
const out = { system: 'iapp', case: kase, n, ...r, cpuTotalS: cpuS() };
process.stdout.write(`${JSON.stringify(out)}\n`);
await rt.close({ timeoutMs: 2000 });
process.exit(0);
