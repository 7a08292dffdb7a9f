// node:dgram echo peer for bench/udp.mjs: sends every datagram back to its sender, the way a Node
// user writes it (one 'message' event and one send() per datagram), and counts them.
//   node bench/peers/node-dgram-echo.mjs [--host 127.0.0.1] [--port 0]
// Prints `READY <port>` once bound; on SIGTERM/SIGINT closes the socket and prints
// {"requests":N,"rxBytes":B,"sendErrors":E} (requests: datagrams received), then exits 0.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`node-dgram-echo: --port must be 0..65535 (got ${values.port})`);
  process.exit(2);
}

let requests = 0;
let rxBytes = 0;
let sendErrors = 0;
// Default buffer sizes, as iapp-srv keeps them: the benchmark keeps fewer datagrams in flight
// than the default receive buffer holds.
const socket = dgram.createSocket(isIPv6(values.host) ? 'udp6' : 'udp4');
socket.on('message', (msg, rinfo) => {
  requests++;
  rxBytes += msg.length;
  socket.send(msg, rinfo.port, rinfo.address);
});
// A send that fails (the client closed its socket at the end of a run) comes here, not as a
// crash; binding errors stay fatal.
let bound = false;
socket.on('error', (err) => {
  if (bound) {
    sendErrors++;
    return;
  }
  console.error(`node-dgram-echo: ${err.message}`);
  process.exit(1);
});
socket.bind(port, values.host, () => {
  bound = true;
  process.stdout.write(`READY ${socket.address().port}\n`);
});

const stop = () => {
  socket.close();
  process.stdout.write(`${JSON.stringify({ requests, rxBytes, sendErrors })}\n`, () => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
