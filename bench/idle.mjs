// The idle check: a runtime of two loop threads that listens and does nothing; the process's CPU
// time over one second of that, and the loops' wakeups. A measurement, not a test (moved out of
// test/runtime.test.ts: CPU time on a shared machine is not something a test can assert).
//
//   node bench/idle.mjs [--limit-ms N]
//
// Prints one JSON line { cpuMs, wakeups }. With --limit-ms, exits 1 when cpuMs is over it (a busy
// loop would burn about 1000 ms; an idle runtime a few).
import { createRuntime } from '../dist/src/index.js';

const at = process.argv.indexOf('--limit-ms');
const limit = at > 0 ? Number(process.argv[at + 1]) : undefined;
const rt = await createRuntime({
  module: new URL('../test/fixtures/server.mjs', import.meta.url),
  threads: 2,
  data: { kind: 'echo', listen: { host: '127.0.0.1', port: 0 } },
});
// Let thread start-up settle before measuring.
await new Promise((r) => setTimeout(r, 300));
const w0 = (await rt.stats()).reduce((a, s) => a + s.wakeups, 0);
const before = process.cpuUsage();
await new Promise((r) => setTimeout(r, 1000));
const used = process.cpuUsage(before);
const wakeups = (await rt.stats()).reduce((a, s) => a + s.wakeups, 0) - w0;
await rt.close();
const cpuMs = (used.user + used.system) / 1000;
console.log(JSON.stringify({ cpuMs, wakeups }));
if (limit !== undefined && cpuMs > limit) {
  console.error(`bench/idle: ${cpuMs} ms of CPU in 1 s idle, over the limit of ${limit} ms`);
  process.exit(1);
}
