// An acceptor thread that hands connections to workers: loop 0 accepts every connection and
// detaches it; loops 1 and 2 adopt them in turn and echo what they read, prefixed with their
// index. Bytes the acceptor had already read travel with the socket, and every byte arrives
// once, in order.
// Run: node examples/handoff.mjs
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export function setup(loop, { index, threads }) {
  loop.handle('conn', (token) => {
    const socket = loop.adopt(token);          // now this loop's: fd, queued writes, counters
    socket.onData((chunk) => socket.write(`loop ${index}: ${chunk}`));
  });
  if (index !== 0) return;
  let next = 0;
  const listener = loop.listen({ host: '127.0.0.1', port: 0 }, async (socket) => {
    const token = await socket.detach();       // bytes already read travel with the token
    loop.post(1 + (next++ % (threads - 1)), 'conn', token);
  });
  return listener.port;
}

if (isMainThread) {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 3 });
  for (let i = 1; i <= 4; i++) {
    const c = net.connect(rt.results[0], '127.0.0.1');
    c.end(`client ${i}`);                      // sent at once: it may reach loop 0 before the hand-off
    let reply = '';
    for await (const chunk of c) reply += chunk;
    console.log(reply);
  }
  const { stats } = await rt.close();
  console.log(`detached by loop 0: ${stats[0].detached}; adopted by loops 1 and 2: ${stats[1].adopted} and ${stats[2].adopted}`);
}
