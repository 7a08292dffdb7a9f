// node:net connection holder, the fallback load for bench/connections.mjs when iapp-clt is not
// available: opens --conns connections at --rate per second, round-robin over the --target
// addresses, writes --size bytes once on each, then holds them idle until SIGTERM/SIGINT (or
// --duration), ends them all and waits (at most 5 s) for them to close.
//   node bench/peers/net-connect.mjs --target 127.0.0.1:PORT [--target ...] --conns N --rate R
//        [--size 64] [--stats 1] [--duration S]
// One process; run several to pass the per-process fd limit. Speaks iapp-clt's --json contract:
// {"type":"stats",connections,established,failed} every --stats seconds, then
// {"type":"summary",txBytes,connected,failed,peakConnections,errors}.
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    target: { type: 'string', multiple: true },
    conns: { type: 'string', default: '1' },
    rate: { type: 'string', default: '1000' },
    size: { type: 'string', default: '64' },
    stats: { type: 'string', default: '1' },
    duration: { type: 'string' },
  },
});
const targets = (values.target ?? []).map((t) => {
  const m = /^(.*):(\d+)$/.exec(t);
  if (!m) {
    console.error(`net-connect: --target ${t}: expected HOST:PORT`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]) };
});
if (!targets.length) {
  console.error('net-connect: at least one --target');
  process.exit(2);
}
const conns = Number(values.conns);
const rate = Number(values.rate);
const payload = Buffer.alloc(Number(values.size), 0x61);
const t0 = performance.now();
const elapsed = () => Number(((performance.now() - t0) / 1000).toFixed(3));
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

let started = 0;
let established = 0;
let failed = 0;
let open = 0;
let peak = 0;
let txBytes = 0;
let stopping = false;
const errors = {};
const sockets = new Set();

function openOne() {
  const target = targets[started++ % targets.length];
  const s = net.connect({ host: target.host, port: target.port });
  let up = false;
  sockets.add(s);
  s.on('connect', () => {
    up = true;
    established++;
    open++;
    if (open > peak) peak = open;
    if (payload.length) s.write(payload);
  });
  s.on('data', () => {});
  s.on('error', (err) => {
    errors[err.code ?? 'ERR'] = (errors[err.code ?? 'ERR'] ?? 0) + 1;
    if (!up) failed++;
  });
  s.on('close', () => {
    sockets.delete(s);
    if (up) {
      open--;
      txBytes += s.bytesWritten;
    }
  });
}

// Token bucket, ticking every 10 ms.
let tokens = 1;
let last = performance.now();
const ticker = setInterval(() => {
  const now = performance.now();
  tokens = Math.min(Math.max(1, rate / 10), tokens + ((now - last) * rate) / 1000);
  last = now;
  while (!stopping && tokens >= 1 && started < conns) {
    tokens--;
    openOne();
  }
  if (started >= conns) clearInterval(ticker);
}, 10);
const statsTimer = setInterval(() => out({ type: 'stats', t: elapsed(), connections: open, established, failed, pending: started - established - failed }), Number(values.stats) * 1000);

async function stop(reason) {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  clearInterval(statsTimer);
  for (const s of sockets) s.end();
  const deadline = performance.now() + 5000;
  while (sockets.size && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const s of sockets) {
    if (s.connecting === false) txBytes += s.bytesWritten;
    s.destroy();
  }
  out({ type: 'summary', reason, durationS: elapsed(), txBytes, connected: established, failed, peakConnections: peak, errors, unclosed: sockets.size });
  process.exit(0);
}
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
if (values.duration) setTimeout(() => stop('duration'), Number(values.duration) * 1000);
