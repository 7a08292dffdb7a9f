// node:net sink for bench/sink.mjs: one process, counts the bytes of every 'data' event.
//   node bench/peers/net-sink.mjs [--host 127.0.0.1] [--port 0]
// Prints `READY <port>` once listening; on SIGTERM/SIGINT prints {"rxBytes":N,"accepted":A} and
// exits 0. A peer's EOF ends the socket (allowHalfOpen is false); resets are ignored.
// As a node:cluster worker (bench/peers/net-cluster.mjs) it talks to the primary over IPC instead:
// it sends {ready: port} once listening and answers {stats: true} with {rxBytes, accepted}.
import cluster from 'node:cluster';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`net-sink: --port must be 0..65535 (got ${values.port})`);
  process.exit(2);
}

let rxBytes = 0;
let accepted = 0;
const server = net.createServer((socket) => {
  accepted++;
  socket.on('data', (chunk) => {
    rxBytes += chunk.length;
  });
  socket.on('error', () => {}); // ECONNRESET and the like: the socket closes, keep serving
});
server.on('error', (err) => {
  console.error(`net-sink: ${err.message}`);
  process.exit(1);
});
server.listen({ host: values.host, port, backlog: 4096 }, () => {
  if (cluster.isWorker) process.send({ ready: server.address().port });
  else process.stdout.write(`READY ${server.address().port}\n`);
});

if (cluster.isWorker) {
  process.on('message', (m) => {
    if (m?.stats) process.send({ rxBytes, accepted });
  });
} else {
  const stop = () => {
    process.stdout.write(`${JSON.stringify({ rxBytes, accepted })}\n`, () => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
