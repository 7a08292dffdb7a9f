// node:net TCP proxy for bench/proxy.mjs, the Node baseline next to iapp's loop.proxy():
//   node bench/peers/net-proxy.mjs --target HOST:PORT [--port 0]
// One process; per accepted socket c: u = net.connect(target); c.pipe(u); u.pipe(c) (stream
// backpressure both ways, ends passed on by pipe()); an error on either side destroys both.
// Prints `READY <port>`; on SIGTERM/SIGINT prints {"accepted","proxied","aToB","bToA","failed",
// "errors"} and exits 0 (aToB/bToA: bytes written to the target / back to the client, counted
// when both sockets have closed).
import net from 'node:net';
import { parseArgs } from 'node:util';
import { countFailure, parseTarget, serveNet } from '../lib/serve.mjs';

const { values } = parseArgs({ options: { target: { type: 'string' }, port: { type: 'string', default: '0' } } });
const target = parseTarget('net-proxy', values.target);
const st = { accepted: 0, proxied: 0, aToB: 0, bToA: 0, failed: 0, errors: {} };

const server = net.createServer((c) => {
  st.accepted++;
  const u = net.connect(target);
  let failed = false;
  let closed = 0;
  const fail = (err) => {
    if (!failed) {
      failed = true;
      countFailure(st, err);
    }
    c.destroy();
    u.destroy();
  };
  const onClose = () => {
    if (++closed < 2) return;
    st.aToB += u.bytesWritten;
    st.bToA += c.bytesWritten;
    if (!failed) st.proxied++;
  };
  c.on('error', fail);
  u.on('error', fail);
  c.on('close', onClose);
  u.on('close', onClose);
  c.pipe(u);
  u.pipe(c);
});
serveNet('net-proxy', server, Number(values.port), st);
