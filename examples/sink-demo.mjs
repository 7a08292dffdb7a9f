#!/usr/bin/env node
// npm run demo: a native sink server (2 loop threads) and a pushing client (2 loop threads) on
// loopback for ~10 s, a live stats line, then a summary that reconciles sent and received bytes.
// Options: --duration S (default 10), --conns N per client thread (default 8), --size BYTES.
import { parseArgs } from 'node:util';
import { createRuntime } from '../dist/src/index.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    conns: { type: 'string', default: '8' },
    size: { type: 'string', default: '65536' },
    mode: { type: 'string', default: 'sink' },
  },
});
const durationS = Number(values.duration);
const conns = Number(values.conns);
const size = Number(values.size);
if (!(durationS > 0) || !(conns >= 1) || !(size >= 1) || !['sink', 'data'].includes(values.mode)) {
  console.error('usage: npm run demo -- [--duration S] [--conns N] [--size BYTES] [--mode sink|data]');
  process.exit(2);
}

const gb = (b) => (b / 1e9).toFixed(2);
const server = await createRuntime({ module: new URL('./sink-server.mjs', import.meta.url), threads: 2, data: { mode: values.mode } });
const port = server.results[0].port;
console.log(`sink (${values.mode}) on 127.0.0.1:${port}, 2 loop threads; client: 2 threads × ${conns} connections, ${size}-byte writes, ${durationS} s`);
console.log(`fd limit: soft ${server.limits.soft}, hard ${server.limits.hard} (was ${server.limits.before})`);

const started = Date.now();
const client = createRuntime({
  module: new URL('./push-client.mjs', import.meta.url),
  threads: 2,
  data: { port, connections: conns, size, durationMs: durationS * 1000 },
});
let last = 0;
let lastT = started;
const tty = process.stdout.isTTY;
const timer = setInterval(async () => {
  const stats = await server.stats();
  const rx = stats.reduce((a, s) => a + s.bytesIn, 0);
  const now = Date.now();
  const line = `${((now - started) / 1000).toFixed(0).padStart(3)} s  conns ${stats.reduce((a, s) => a + s.sockets, 0)}  rx ${gb(((rx - last) * 1000) / (now - lastT))} GB/s  total ${gb(rx)} GB`;
  process.stdout.write(tty ? `\r${line}   ` : `${line}\n`);
  last = rx;
  lastT = now;
}, 1000);

const clientRt = await client;
clearInterval(timer);
if (tty) process.stdout.write('\n');
const sent = clientRt.results.reduce((a, r) => a + r.txBytes, 0);
const unsent = clientRt.results.reduce((a, r) => a + r.unsent, 0);
const errors = clientRt.results.flatMap((r) => r.errors);
await clientRt.close();
// Let the sink read what is still in flight: the clients have ended, the server sees EOF.
let stats = await server.stats();
for (let i = 0; i < 100 && stats.some((s) => s.sockets > 0); i++) {
  await new Promise((r) => setTimeout(r, 20));
  stats = await server.stats();
}
await server.close();
const seconds = (Date.now() - started) / 1000;
const rx = stats.reduce((a, s) => a + s.bytesIn, 0);
console.table(
  stats.map((s) => ({ thread: s.thread, accepted: s.accepted, 'rx GB': gb(s.bytesIn), wakeups: s.wakeups, 'JS calls': s.jsCalls })),
);
console.table([
  { what: 'client sent (bytes)', value: sent },
  { what: 'server received (bytes)', value: rx },
  { what: 'reconciled', value: sent === rx ? 'yes' : `NO (${rx - sent})` },
  { what: 'unsent at close', value: unsent },
  { what: 'errors', value: errors.length ? errors.join(',') : 'none' },
  { what: 'throughput (GB/s)', value: gb(rx / seconds) },
]);
process.exitCode = sent === rx && errors.length === 0 ? 0 : 1;
