// Many connections opened and kept natively (loop.dial), as iapp-clt runs them: each loop of a
// client runtime keeps 500 connections to a sink, opened at 1,000 per second, each pushing 512 B
// writes; one that closes is replaced. No JavaScript runs per connection: the dialer's counters
// say what happened, exactly.
// Run: node examples/dial.mjs
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export async function setup(loop, { data }) {
  if (data.role === 'sink') return loop.listen({ host: '127.0.0.1', port: 0, mode: 'sink' }).port;
  const dialer = loop.dial({
    targets: [{ host: '127.0.0.1', port: data.port }],
    count: 500,
    rate: 1000,
    then: 'push',                      // or 'hold' (idle), or 'end' (connects per second)
    chunk: Buffer.alloc(512, 'x'),
  });
  loop.onStats(() => dialer.stats());  // the dialer's counters in runtime.stats()
  // Main asks for the final counts: close() ends every connection and resolves with them.
  loop.handle('finish', () => dialer.close());
}

if (isMainThread) {
  const module = new URL(import.meta.url);
  const sink = await createRuntime({ module, threads: 1, data: { role: 'sink' } });
  const client = await createRuntime({ module, threads: 2, data: { role: 'dial', port: sink.results[0] } });
  // Wait until every loop has all its connections open (the ramp takes about half a second).
  const deadline = Date.now() + 10_000;
  let live;
  do {
    await new Promise((r) => setTimeout(r, 100));
    live = (await client.stats()).map((t) => t.app);
  } while (live.some((s) => s.rampMs === null) && Date.now() < deadline);
  for (const [i, s] of live.entries()) console.log(`loop ${i}: ${s.open} open, all open after ${Math.round(s.rampMs)} ms`);

  const final = await Promise.all([0, 1].map((i) => client.call(i, 'finish')));
  const established = final.reduce((n, s) => n + s.established, 0);
  const failed = final.reduce((n, s) => n + s.failed, 0);
  const bytesOut = final.reduce((n, s) => n + s.bytesOut, 0);
  console.log(`established ${established}, failed ${failed}, peak ${final.map((s) => s.peak).join(' + ')}, pushed ${bytesOut.toLocaleString('en-US')} bytes`);
  await client.close();
  const { stats } = await sink.close({ timeoutMs: 2000 });
  const sunk = stats.reduce((n, t) => n + t.bytesIn, 0);
  console.log(`the sink accepted ${stats[0].accepted} and read ${sunk.toLocaleString('en-US')} bytes`);
  process.exitCode = established === 1000 && sunk === bytesOut ? 0 : 1;
}
