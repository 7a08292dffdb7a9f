// node:cluster sink for bench/sink.mjs: a primary and --workers N worker processes (default: one
// per CPU this process may use), each worker running bench/peers/net-sink.mjs.
//   node bench/peers/net-cluster.mjs [--workers N] [--host 127.0.0.1] [--port 0]
// On Node 20 net.Server has no reusePort, so cluster's default (round-robin) scheduling applies:
// the PRIMARY accepts every connection and hands the socket to a worker over IPC; the workers
// then read their sockets themselves. Prints `READY <port>` once every worker listens; on
// SIGTERM/SIGINT asks each worker for its counts, prints the sums {"rxBytes","accepted",
// "workers"} and exits 0 (the workers are killed).
import cluster from 'node:cluster';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { workers: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } },
});
const n = Number(values.workers ?? os.availableParallelism());
if (!Number.isInteger(n) || n < 1 || n > 256) {
  console.error(`net-cluster: --workers must be 1..256 (got ${values.workers})`);
  process.exit(2);
}
const STATS_TIMEOUT_MS = 3000;

cluster.schedulingPolicy = cluster.SCHED_RR; // the default on Linux; stated, not changed
cluster.setupPrimary({
  exec: join(dirname(fileURLToPath(import.meta.url)), 'net-sink.mjs'),
  args: ['--host', values.host, '--port', values.port],
  silent: false,
});
const workers = [];
const ports = [];
for (let i = 0; i < n; i++) {
  const w = cluster.fork();
  workers.push(w);
  w.on('message', (m) => {
    if (m?.ready === undefined) return;
    ports.push(m.ready);
    if (ports.length === n) process.stdout.write(`READY ${ports[0]}\n`);
  });
}
let stopping = false;
cluster.on('exit', (w, code, signal) => {
  if (stopping) return;
  console.error(`net-cluster: worker ${w.process.pid} exited (${signal ?? `code ${code}`})`);
  process.exit(1);
});

const askStats = (w) =>
  new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), STATS_TIMEOUT_MS);
    const on = (m) => {
      if (m?.rxBytes === undefined) return;
      clearTimeout(t);
      w.off('message', on);
      resolve(m);
    };
    w.on('message', on);
    w.send({ stats: true });
  });

const stop = async () => {
  stopping = true;
  const stats = await Promise.all(workers.map(askStats));
  for (const w of workers) w.process.kill('SIGKILL');
  if (stats.includes(null)) {
    console.error('net-cluster: a worker did not report its counts');
    process.exit(1);
  }
  const sum = (k) => stats.reduce((a, s) => a + s[k], 0);
  process.stdout.write(`${JSON.stringify({ rxBytes: sum('rxBytes'), accepted: sum('accepted'), workers: n })}\n`, () => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
