// Signals: they arrive on the main thread, as always in Node, and the runtime forwards them to
// every loop that asked with loop.onSignal(). closeOnSignals() makes the first SIGINT or SIGTERM
// close the runtime gracefully (a second one resets what is left at once). Here the process
// sends itself a SIGHUP (each loop "reloads") and then a SIGTERM (the runtime closes, and the
// process ends by itself: nothing calls process.exit()).
// Run: node examples/signals.mjs
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export async function setup(loop, { index }) {
  // Resolves once the main thread listens, so a SIGHUP from then on reaches this loop.
  const off = await loop.onSignal('SIGHUP', (signal) => loop.post('main', 'reloaded', { index, signal }));
  loop.onClose(off);
}

if (isMainThread) {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 2 });
  rt.closeOnSignals({ timeoutMs: 2000 });
  rt.on('signal', ({ signal }) => console.log(`main: ${signal}, closing`));
  rt.on('closed', (summary) => console.log(`main: closed (${summary.sockets} sockets were open, ${summary.reset} reset)`));
  let reloaded = 0;
  rt.handle('reloaded', ({ index, signal }) => {
    console.log(`loop ${index}: ${signal}, reloading`);
    if (++reloaded === 2) process.kill(process.pid, 'SIGTERM');
  });
  process.kill(process.pid, 'SIGHUP');
}
