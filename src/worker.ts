// Entry point of a loop thread: builds the Loop, loads the user's module, runs its setup, and
// answers the runtime's control messages. Not imported by users.
import { parentPort, workerData } from 'node:worker_threads';

import { toWire } from './errors.js';
import { Loop, type LoopReport } from './loop.js';
import type { ControlRequest, ThreadData, ThreadMessage } from './runtime.js';

const port = parentPort!;
const { index, threads, module, data, group, messaging } = workerData as ThreadData;
const post = (m: ThreadMessage): void => port.postMessage(m);

const loop = new Loop(index, threads, group, messaging, (r: LoopReport) => {
  if (r.type === 'handler-error') post({ type: 'handler-error', error: toWire(r.error) });
  else post({ type: 'accept-error', error: toWire(r.error), shed: r.shed, resumeInMs: r.resumeInMs });
});

port.on('message', (m: ControlRequest) => {
  if (m.type === 'stats') {
    post({ type: 'stats', seq: m.seq, stats: loop.stats() });
  } else if (m.type === 'force') {
    loop.forceClose();
  } else if (m.type === 'close') {
    void loop.close({ timeoutMs: m.timeoutMs }).then((summary) => {
      // Counters after the drain: what was read while closing counts too.
      post({ type: 'closed', summary, stats: loop.stats() });
      // Nothing of ours is left on this thread's libuv loop; dropping the port lets the thread end
      // as soon as the user's own timers and handles are gone (the runtime terminates it otherwise).
      port.close();
    });
  }
});

const mod = (await import(module)) as { setup?: unknown; default?: { setup?: unknown } };
const setup = (mod.setup ?? mod.default?.setup) as
  | ((loop: Loop, info: { index: number; threads: number; data: unknown }) => unknown)
  | undefined;
if (typeof setup !== 'function') throw new TypeError(`${module} does not export a setup(loop, info) function`);
const result = await setup(loop, { index, threads, data });
loop._ready();
post({ type: 'ready', result });
