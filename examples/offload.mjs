// CPU work off the loop: a loop hands hashing to the runtime's shared worker pool (piscina)
// with loop.offload() and gets the result back on its own thread, so it keeps serving its
// sockets meanwhile. This file is both: its default export is the task the pool runs, its
// setup() what each loop runs. Use it for work that would hold a loop for more than about a
// millisecond; small work costs more to send than to do.
// Run: node examples/offload.mjs
import { createHash, randomBytes } from 'node:crypto';
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

// Runs on a pool thread, never on a loop thread.
export default (bytes) => createHash('sha256').update(bytes).digest('hex');

export async function setup(loop) {
  const bytes = randomBytes(32 << 20);
  let ticks = 0;
  const tick = loop.timer(() => ticks++);
  tick.armInterval(1);                         // the loop stays free to run its timers meanwhile
  const started = performance.now();
  const digest = await loop.offload(new URL(import.meta.url), bytes); // resolves on this loop
  const ms = performance.now() - started;
  tick.close();
  const same = digest === createHash('sha256').update(bytes).digest('hex');
  return { digest, same, ms, ticks };
}

if (isMainThread) {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 1, offloadThreads: 1 });
  const { digest, same, ms, ticks } = rt.results[0];
  console.log(`sha256 of 32 MiB, computed off the loop: ${digest.slice(0, 16)}… (${same ? 'matches' : 'DIFFERS from'} the loop's own)`);
  console.log(`it took ${ms.toFixed(0)} ms, during which the loop's 1 ms timer fired ${ticks} times`);
  await rt.close();
  process.exitCode = same && ticks > 0 ? 0 : 1;
}
