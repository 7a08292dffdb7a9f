// node:net + fs file server for bench/sendfile.mjs, the Node baseline next to iapp's sendFile:
//   node bench/peers/node-stream-file.mjs --path FILE [--length BYTES] [--port 0]
// One process; per accepted connection `fs.createReadStream(path, { start: 0, end: length - 1 })
// .pipe(socket)` (the idiom: a read stream per connection, 64 KiB reads on libuv's thread pool,
// pipe()'s backpressure; pipe() ends the socket after the last byte). An error on either side
// destroys both. The client sends nothing. Prints `READY <port>`; on SIGTERM/SIGINT prints
// {"accepted","served","txBytes","failed","errors"} and exits 0 (txBytes: socket.bytesWritten,
// counted when each socket closes).
import { createReadStream, statSync } from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { countFailure, serveNet, usage } from '../lib/serve.mjs';

const { values } = parseArgs({ options: { path: { type: 'string' }, length: { type: 'string' }, port: { type: 'string', default: '0' } } });
if (!values.path) usage('node-stream-file', '--path FILE is required');
const path = values.path;
const size = statSync(path).size;
const length = values.length ? Number(values.length) : size;
if (!(Number.isSafeInteger(length) && length > 0 && length <= size)) usage('node-stream-file', `--length must be 1..${size}`);
const st = { accepted: 0, served: 0, txBytes: 0, failed: 0, errors: {} };

const server = net.createServer((socket) => {
  st.accepted++;
  const rs = createReadStream(path, { start: 0, end: length - 1 });
  let failed = false;
  const fail = (err) => {
    if (!failed) {
      failed = true;
      countFailure(st, err);
    }
    rs.destroy();
    socket.destroy();
  };
  rs.on('error', fail);
  socket.on('error', fail);
  socket.on('close', () => {
    st.txBytes += socket.bytesWritten;
    if (!failed) st.served++;
  });
  rs.pipe(socket);
});
serveNet('node-stream-file', server, Number(values.port), st);
