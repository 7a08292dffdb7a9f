// A UDP sink and a UDP pusher on one loop: the sink drains datagrams natively (recvmmsg) and
// only counts them; the pusher sends one datagram with send(), then the same 1,400 bytes again
// and again with sendmmsg until stopped. UDP may drop: the sink gets at most what was sent.
// Run: node examples/udp.mjs
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export async function setup(loop) {
  const sink = loop.udp({ host: '127.0.0.1', port: 0, mode: 'sink' });      // recvmmsg, counted
  const out = loop.udp({ host: '127.0.0.1', peer: { host: '127.0.0.1', port: sink.port } });
  out.send(Buffer.from('one datagram'));                                  // false if the buffer is full
  out.push(Buffer.alloc(1400));                                           // sendmmsg batches until stopPush()
  await new Promise((r) => setTimeout(r, 500));
  out.stopPush();
  out.close();
  // Let the sink drain what is still queued for it (loopback delivers at once), then count.
  await new Promise((r) => setTimeout(r, 50));
  const counts = { sent: out.datagramsOut, received: sink.datagramsIn, bytes: sink.bytesIn };
  sink.close();
  return counts;
}

if (isMainThread) {
  const runtime = await createRuntime({ module: new URL(import.meta.url), threads: 1 });
  const { sent, received, bytes } = runtime.results[0];
  console.log(`sent ${sent.toLocaleString('en-US')} datagrams in 0.5 s`);
  console.log(`received ${received.toLocaleString('en-US')} (${bytes.toLocaleString('en-US')} bytes): ${((received / sent) * 100).toFixed(1)} %, at most all of them`);
  await runtime.close();
  process.exitCode = received > 0 && received <= sent ? 0 : 1;
}
