// Messages between threads: loop 0 keeps a map that the other loop and the main thread use by
// message. A post runs a named handler on the target thread; a call also brings back what the
// handler returned; a broadcast reaches every thread subscribed to a topic. Messages from one
// thread to another run in the order they were sent.
// Run: node examples/messages.mjs
import { isMainThread } from 'node:worker_threads';

import { createRuntime, MEMBERSHIP } from 'iapp';

export async function setup(loop, { index }) {
  const cache = new Map();
  let config;
  loop.handle('put', ({ key, value }) => void cache.set(key, value));   // reached by post()
  loop.handle('get', (key) => cache.get(key));                          // call() resolves with this
  loop.handle('config', () => config);
  loop.subscribe('config', (c, from) => void (config = { ...c, from }));
  if (index === 1) {
    loop.post(0, 'put', { key: 'a', value: 1 });
    // FIFO per pair: the call runs after the post, so it sees the value.
    return loop.call(0, 'get', 'a', { timeoutMs: 1000 });
  }
}

if (isMainThread) {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 2 });
  // Every thread is told when another starts or exits (`dropped`: messages it took and never ran).
  rt.subscribe(MEMBERSHIP, (ev) => ev.event === 'exited' && console.log(`loop ${ev.thread} exited`));
  console.log(`loop 1 put a and read back ${rt.results[1]}`);
  console.log(`main reads a = ${await rt.call(0, 'get', 'a')}`);
  console.log(`broadcast reached ${rt.broadcast('config', { level: 2 }).reached} loops`);
  // Per sender and target, messages keep their order: this call runs after the broadcast.
  console.log(`loop 1 has config ${JSON.stringify(await rt.call(1, 'config'))}`);
  console.log(`threads taking messages: ${JSON.stringify(rt.members())}`);
  await rt.close();
}
