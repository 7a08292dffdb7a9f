// Supervising a child process: stop it with SIGTERM, then SIGKILL if it is still there a second
// later. Everything that may be needed in a hurry is allocated first (the timer, the child's
// watch): that is the only step that can fail. Arming the timer then cannot fail, whatever the
// memory or fd situation by then. The child here ignores SIGTERM, so the SIGKILL is needed; it
// says it is ready by sending SIGUSR2 to this process, which the loop hears with onSignal().
// Run: node examples/supervise.mjs
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export async function setup(loop) {
  let child;
  const kill = loop.timer(() => child.kill('SIGKILL'));   // allocated up front
  let onReady;
  const ready = new Promise((resolve) => (onReady = resolve));
  // Resolves once the main thread listens for SIGUSR2 (its default action ends the process).
  loop.onClose(await loop.onSignal('SIGUSR2', () => onReady()));
  child = loop.spawn('sh', ['-c', 'trap "" TERM; kill -USR2 $PPID; exec sleep 30']); // its watch is reserved before it starts
  child.exited.then(() => kill.close());
  loop.handle('stop', async () => {
    await ready;                                          // the child ignores SIGTERM from here on
    const started = loop.now();
    child.kill('SIGTERM');
    kill.arm(1000);                                       // cannot fail
    const { code, signal } = await child.exited;
    return { code, signal, ms: Number((loop.now() - started) / 1_000_000n) };
  });
}

if (isMainThread) {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 1 });
  const { code, signal, ms } = await rt.call(0, 'stop');
  console.log(`child ended after ${ms} ms: code ${code}, signal ${signal}`);
  await rt.close();
  process.exitCode = signal === 'SIGKILL' ? 0 : 1;
}
