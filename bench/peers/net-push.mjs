// node:net push client for bench/push.mjs, the Node baseline next to iapp-clt and the C client.
//   node bench/peers/net-push.mjs --host 127.0.0.1 --port P --conns N --size BYTES --duration S
// Opens N connections, then on each writes the same --size Buffer (not copied by node:net) while
// write() returns true and resumes on 'drain' (honours backpressure: at most one write beyond the
// high-water mark is queued per socket). After S seconds it stops writing, end()s every socket
// and waits for the queued bytes to reach the kernel ('finish'), then prints the C client's line:
//   {"txBytes":N,"connected":C,"failed":F,"broken":B,"durationS":D,"cpuS":U}
// txBytes: bytes handed to write() (all of them flushed to the kernel by 'finish'); durationS:
// from the first connect to the last 'finish'; cpuS: this process's user+system CPU time.
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    conns: { type: 'string', default: '1' },
    size: { type: 'string', default: '65536' },
    duration: { type: 'string', default: '5' },
  },
});
const port = Number(values.port);
const conns = Number(values.conns);
const size = Number(values.size);
const durationS = Number(values.duration);
if (!(port > 0 && port < 65536) || !(conns > 0) || !(size > 0) || !(durationS > 0)) {
  console.error('usage: net-push --host H --port P --conns N --size BYTES --duration S');
  process.exit(2);
}
const buf = Buffer.alloc(size);
for (let i = 0; i < size; i++) buf[i] = 97 + (i % 26);

let txBytes = 0;
let connected = 0;
let failed = 0;
let broken = 0;
let stopping = false;
let open = 0;
const t0 = performance.now();
let tLast = t0;
const sockets = [];

function pump(s) {
  while (!stopping) {
    txBytes += size;
    if (!s.write(buf)) return; // 'drain' resumes
  }
}

let settled = 0;
const allSettled = new Promise((resolve) => {
  const one = () => {
    if (++settled === conns) resolve();
  };
  for (let i = 0; i < conns; i++) {
    const s = net.connect({ host: values.host, port, noDelay: true });
    let up = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      tLast = performance.now();
      one();
    };
    s.on('connect', () => {
      up = true;
      connected++;
      open++;
      sockets.push(s);
      pump(s);
    });
    s.on('drain', () => pump(s));
    s.on('error', (err) => {
      if (!up) failed++;
      else if (!done) broken++;
      if (!up || !stopping) console.error(`net-push: ${err.code ?? err.message}`);
      finish();
    });
    s.on('finish', finish);
    s.on('close', finish);
  }
});

setTimeout(() => {
  stopping = true;
  for (const s of sockets) s.end();
}, durationS * 1000);

await allSettled;
const cpu = process.cpuUsage();
process.stdout.write(
  `${JSON.stringify({ txBytes, connected, failed, broken, durationS: (tLast - t0) / 1000, cpuS: (cpu.user + cpu.system) / 1e6 })}\n`,
);
for (const s of sockets) s.destroy();
process.exit(connected > 0 ? 0 : 1);
