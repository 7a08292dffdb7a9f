// A TCP proxy, the core of iapp-proxy: each client is connected to an upstream server and the
// bytes move both ways natively (splice through a kernel pipe on Linux: no copy through user
// space, no JavaScript per chunk), a slow side slowing the other down, half-closes passed on.
// Loop 0 is the upstream (an echo server), loop 1 the proxy; the main thread sends 4 MiB
// through it with node:net and checks what comes back.
// Run: node examples/proxy.mjs
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export async function setup(loop, { index }) {
  if (index === 0) {
    const echo = loop.listen({ host: '127.0.0.1', port: 0, name: 'upstream' }, (s) => s.onData((b) => {
      if (!s.write(b)) s.pause().onDrain(() => s.resume());
    }));
    return echo.port;
  }
  // The upstream's port comes from main once every setup has run.
  const upstreamPort = new Promise((resolve) => loop.handle('upstream', resolve));
  const listener = loop.listen({ host: '127.0.0.1', port: 0, name: 'proxy' }, async (client) => {
    let upstream;
    try {
      upstream = await loop.connect({ host: '127.0.0.1', port: await upstreamPort, timeout: 5000 });
    } catch {
      return client.destroy({ reset: true }); // bytes the client sent meanwhile were held for the pipe
    }
    try {
      const { aToB, bToA } = await loop.proxy(client, upstream); // both ends seen: both closed
      loop.post('main', 'proxied', { aToB, bToA });
    } catch (e) {
      loop.post('main', 'proxied', { error: `${e.code}: ${e.aToB} up, ${e.bToA} down` }); // both sockets were destroyed
    }
  });
  return listener.port;
}

if (isMainThread) {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 2 });
  const [upstreamPort, proxyPort] = rt.results;
  rt.post(1, 'upstream', upstreamPort);
  const done = new Promise((resolve) => rt.handle('proxied', resolve));

  const data = randomBytes(4 << 20);
  const c = net.connect(proxyPort, '127.0.0.1');
  c.end(data);
  const back = [];
  for await (const chunk of c) back.push(chunk);
  const sha = (b) => createHash('sha256').update(b).digest('hex');
  const same = sha(Buffer.concat(back)) === sha(data);
  console.log(`sent ${data.length.toLocaleString('en-US')} bytes through the proxy, got them back ${same ? 'intact' : 'CHANGED'}`);
  const r = await done;
  console.log(r.error ?? `the proxy moved ${r.aToB.toLocaleString('en-US')} bytes up and ${r.bToA.toLocaleString('en-US')} down`);
  await rt.close();
  process.exitCode = same && !r.error ? 0 : 1;
}
