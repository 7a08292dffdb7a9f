// A threaded echo server: every loop thread listens on the same port and echoes what it reads,
// pausing a client that does not read its echo. The main thread then talks to it with node:net.
// Run: node examples/echo.mjs
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

// What each loop thread runs (this same file is its module).
export function setup(loop) {
  // Every loop listens on the same port; port 0 picks one for all of them (SO_REUSEPORT).
  const listener = loop.listen({ host: '127.0.0.1', port: 0 }, (socket) => {
    socket.onData((chunk) => {
      if (!socket.write(chunk)) {      // queue full: stop reading until it drains
        socket.pause();
        socket.onDrain(() => socket.resume());
      }
    });
  });
  return { port: listener.port };      // handed back in runtime.results
}

if (isMainThread) {
  const runtime = await createRuntime({ module: new URL(import.meta.url), threads: 2 });
  const { port } = runtime.results[0];
  console.log(`echo server on 127.0.0.1:${port}, 2 loop threads`);

  const client = net.connect(port, '127.0.0.1');
  client.end('hello, iapp');
  let reply = '';
  for await (const chunk of client) reply += chunk;
  console.log(`echoed: ${reply}`);

  const summary = await runtime.close({ timeoutMs: 2000 });
  console.log(`closed: ${summary.sockets} sockets open at close, ${summary.reset} reset`);
}
