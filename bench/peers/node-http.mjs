// node:http peer for bench/http.mjs: answers every request with 200 `ok\n` (keep-alive, the same
// body and headers as `iapp-srv --mode http`) and counts the requests. With --root DIR it is the
// file server a Node user writes instead (the peer of `iapp-srv --mode file`): fs.promises.stat
// for Content-Length and Last-Modified, then fs.createReadStream(path).pipe(res); 404 when the
// stat fails (the bench asks only for one file that exists).
//   node bench/peers/node-http.mjs [--host 127.0.0.1] [--port 0] [--procs P] [--root DIR]
// With --procs P > 1, node:cluster forks P workers sharing the port (Node's default scheduling on
// Linux: the primary accepts and hands each connection to a worker, round-robin). Prints
// `READY <port>` once every worker listens; on SIGTERM/SIGINT closes every server and prints
// {"requests":N,"accepted":A,"procs":P} (all workers together), then exits 0.
import cluster from 'node:cluster';
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const BODY = Buffer.from('ok\n');
const HEADERS = { 'Content-Type': 'text/plain', 'Content-Length': String(BODY.length) };

const fail = (msg, code = 1) => {
  console.error(`node-http: ${msg}`);
  process.exit(code);
};

/** The static answer, or (root) the file the request names under root. */
const handler = (root, count) =>
  root === undefined
    ? (req, res) => {
        count();
        res.writeHead(200, HEADERS);
        res.end(BODY);
      }
    : async (req, res) => {
        const path = join(root, decodeURIComponent(req.url.split('?')[0]));
        let st;
        try {
          st = await fsp.stat(path);
        } catch {
          res.writeHead(404, { 'Content-Length': '0' });
          res.end();
          return;
        }
        count();
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(st.size), 'Last-Modified': st.mtime.toUTCString() });
        createReadStream(path).on('error', () => res.destroy()).pipe(res);
      };

/** Listens and counts; calls onListening(port). Returns () => { requests, accepted } after closing. */
function serve(host, port, root, onListening) {
  let requests = 0;
  let accepted = 0;
  const server = http.createServer(handler(root, () => requests++));
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket) => {
    accepted++;
    socket.on('error', () => {}); // resets when the load generator stops: keep serving the rest
  });
  server.on('clientError', (err, socket) => socket.destroy());
  server.on('error', (err) => fail(err.message));
  server.listen({ host, port, backlog: 4096 }, () => onListening(server.address().port));
  return () => {
    server.close();
    server.closeAllConnections();
    return { requests, accepted };
  };
}

/** Writes one JSON line on stdout, then exits 0. */
const finish = (o) => process.stdout.write(`${JSON.stringify(o)}\n`, () => process.exit(0));

if (cluster.isWorker) {
  const { host, port, root } = JSON.parse(process.env.NODE_HTTP_PEER);
  const close = serve(host, port, root, (p) => process.send({ listening: p }));
  process.on('message', (m) => {
    if (m?.stop) process.send({ counts: close() }, () => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0)); // the primary is gone
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => {}); // the primary stops us
} else {
  const { values } = parseArgs({
    options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' }, procs: { type: 'string', default: '1' }, root: { type: 'string' } },
  });
  const port = Number(values.port);
  const procs = Number(values.procs);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0..65535 (got ${values.port})`, 2);
  if (!Number.isInteger(procs) || procs < 1 || procs > 64) fail(`--procs must be 1..64 (got ${values.procs})`, 2);

  if (procs === 1) {
    const close = serve(values.host, port, values.root, (p) => process.stdout.write(`READY ${p}\n`));
    const stop = () => finish({ ...close(), procs });
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  } else {
    cluster.setupPrimary({ silent: false });
    const env = { ...process.env, NODE_HTTP_PEER: JSON.stringify({ host: values.host, port, root: values.root }) };
    const workers = Array.from({ length: procs }, () => cluster.fork(env));
    const ports = new Set();
    let listening = 0;
    const counts = [];
    let stopping = false;
    for (const w of workers) {
      w.on('message', (m) => {
        if (m?.listening !== undefined) {
          ports.add(m.listening);
          if (++listening === procs) {
            if (ports.size !== 1) fail(`workers listen on different ports: ${[...ports].join(', ')}`);
            process.stdout.write(`READY ${m.listening}\n`);
          }
        } else if (m?.counts) {
          counts.push(m.counts);
          if (counts.length === procs) report();
        }
      });
      w.on('exit', (code, signal) => {
        if (!stopping) fail(`worker ${w.process.pid} exited (${signal ?? `code ${code}`})`);
      });
    }
    const report = () =>
      finish({
        requests: counts.reduce((a, c) => a + c.requests, 0),
        accepted: counts.reduce((a, c) => a + c.accepted, 0),
        procs,
        perWorker: counts.map((c) => c.requests),
      });
    const stop = () => {
      if (stopping) return;
      stopping = true;
      for (const w of workers) w.send({ stop: true });
      setTimeout(() => fail(`only ${counts.length} of ${procs} workers reported within 5 s`), 5000).unref();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  }
}
