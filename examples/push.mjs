// A native sink and a native pusher: one runtime sinks (reads and discards without entering
// JavaScript, not even per connection), another opens 100 connections per loop and pushes one
// 64 KiB buffer over them again and again, natively, for a second. The byte counts of both
// sides then agree exactly.
// Run: node examples/push.mjs
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export async function setup(loop, { data }) {
  if (data.role === 'sink') {
    // No connection handler: accepted sockets never become JavaScript objects.
    const listener = loop.listen({ host: '127.0.0.1', port: 0, mode: 'sink' });
    return listener.port;
  }
  const chunk = Buffer.alloc(65536, 'x');
  const sockets = await Promise.all(
    Array.from({ length: 100 }, () => loop.connect({ host: '127.0.0.1', port: data.port, mode: 'sink' })),
  );
  for (const s of sockets) s.push(chunk);            // no JavaScript per write from here on
  setTimeout(() => sockets.forEach((s) => s.end()), data.ms); // end() stops pushing, half-closes
  const closed = await Promise.all(sockets.map((s) => s.closed));
  return closed.reduce((sum, c) => sum + c.bytesWritten, 0); // exactly what the kernel accepted
}

if (isMainThread) {
  const module = new URL(import.meta.url);
  const sink = await createRuntime({ module, threads: 1, data: { role: 'sink' } });
  const pusher = await createRuntime({ module, threads: 2, data: { role: 'push', port: sink.results[0], ms: 1000 } });
  const pushed = pusher.results.reduce((a, b) => a + b, 0);
  await pusher.close();
  // The sink reads what is still in flight, then its final counters are taken.
  const { stats } = await sink.close({ timeoutMs: 2000 });
  const sunk = stats.reduce((sum, t) => sum + t.bytesIn, 0);
  console.log(`pushed ${pushed.toLocaleString('en-US')} bytes over 200 connections in 1 s`);
  console.log(`sunk   ${sunk.toLocaleString('en-US')} bytes`);
  console.log(pushed === sunk ? 'reconciled: every byte pushed was sunk' : 'MISMATCH');
  process.exitCode = pushed === sunk ? 0 : 1;
}
