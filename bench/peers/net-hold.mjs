// node:net server for bench/connections.mjs: accepts and holds connections, counting the bytes of
// every 'data' event. One process; run several (one per address) to pass the per-process fd limit,
// since Node 20's net.Server has no reusePort.
//   node bench/peers/net-hold.mjs --listen 127.0.0.1:0 [--listen HOST:PORT ...] [--stats S]
// Speaks iapp-srv's --json contract: {"type":"listening","addresses":[{address,port,text}]} first,
// {"type":"stats",connections,accepted,rxBytes} every --stats seconds, and on SIGTERM/SIGINT
// {"type":"summary",rxBytes,accepted,closed,peakConnections,errors} and exit 0.
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { listen: { type: 'string', multiple: true, default: ['127.0.0.1:0'] }, stats: { type: 'string', default: '1' } },
});
const t0 = performance.now();
let rxBytes = 0;
let accepted = 0;
let closed = 0;
let open = 0;
let peak = 0;
const errors = {};
const onConnection = (socket) => {
  accepted++;
  open++;
  if (open > peak) peak = open;
  socket.on('data', (chunk) => {
    rxBytes += chunk.length;
  });
  socket.on('error', (err) => {
    errors[err.code ?? 'ERR'] = (errors[err.code ?? 'ERR'] ?? 0) + 1;
  });
  socket.on('close', () => {
    open--;
    closed++;
  });
};

const servers = [];
const addresses = [];
for (const spec of values.listen) {
  const m = /^(.*):(\d+)$/.exec(spec);
  if (!m) {
    console.error(`net-hold: --listen ${spec}: expected HOST:PORT`);
    process.exit(2);
  }
  const server = net.createServer(onConnection);
  await new Promise((resolve) => {
    server.once('error', (err) => {
      console.error(`net-hold: listen ${spec}: ${err.message}`);
      process.exit(1);
    });
    server.listen({ host: m[1], port: Number(m[2]), backlog: 4096 }, resolve);
  });
  const a = server.address();
  addresses.push({ address: a.address, port: a.port, text: `${a.address}:${a.port}` });
  servers.push(server);
}
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
out({ type: 'listening', addresses });
const elapsed = () => Number(((performance.now() - t0) / 1000).toFixed(3));
const timer = setInterval(() => out({ type: 'stats', t: elapsed(), connections: open, accepted, closed, rxBytes }), Number(values.stats) * 1000);

const stop = (sig) => {
  clearInterval(timer);
  for (const s of servers) s.close();
  out({ type: 'summary', reason: sig, durationS: elapsed(), rxBytes, accepted, closed, connections: open, peakConnections: peak, errors });
  process.exit(0);
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
