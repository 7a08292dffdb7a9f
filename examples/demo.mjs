#!/usr/bin/env node
// npm run demo: iapp-srv (native sink, 2 loop threads) and iapp-clt (2 loop threads pushing
// 64 KiB writes over 64 connections) on loopback for ~10 s. A live line each second, then both
// programs' summaries side by side, with the bytes reconciled: what clt sent is what srv got.
// Options: --duration S (default 10), --conns N per client thread (default 32), --mode sink|data.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    conns: { type: 'string', default: '32' },
    mode: { type: 'string', default: 'sink' },
  },
});
const durationS = Number(values.duration);
const conns = Number(values.conns);
if (!(durationS > 0) || !(conns >= 1) || !['sink', 'data'].includes(values.mode)) {
  console.error('usage: npm run demo -- [--duration S] [--conns N] [--mode sink|data]');
  process.exit(2);
}

/** Starts iapp-srv or iapp-clt with --json and hands each JSON line to `onRecord`. */
function run(name, args, onRecord) {
  const main = new URL(`../dist/${name}/main.js`, import.meta.url).pathname;
  const child = spawn(process.execPath, [main, '--json', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout }).on('line', (l) => onRecord(JSON.parse(l)));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return { child, exited };
}
const gbps = (bytesPerS) => `${((bytesPerS * 8) / 1e9).toFixed(1)} Gbit/s`;
const n = (x) => x.toLocaleString('en-US');

let srvSummary;
let srvRate = 0;
let onListening;
const listening = new Promise((resolve) => (onListening = resolve));
const srv = run('srv', ['--listen', '127.0.0.1:0', '--threads', '2', '--mode', values.mode], (r) => {
  if (r.type === 'listening') onListening(r.addresses[0].port);
  if (r.type === 'stats') srvRate = r.rxBytesPerS;
  if (r.type === 'summary') srvSummary = r;
});
const port = await Promise.race([listening, srv.exited.then(() => undefined)]);
if (port === undefined) {
  console.error('iapp-srv did not start; see its message above');
  process.exit(1);
}
console.log(`iapp-srv: ${values.mode} on 127.0.0.1:${port}, 2 loop threads`);
console.log(`iapp-clt: 2 loop threads × ${conns} connections, 64 KiB writes, ${durationS} s\n`);

let cltSummary;
const tty = process.stdout.isTTY;
const cltArgs = ['--target', `127.0.0.1:${port}`, '--threads', '2', '--conns', String(conns), '--rate', '10000', '--duration', String(durationS)];
const clt = run('clt', cltArgs, (r) => {
  if (r.type === 'stats') {
    const line = `${r.t.toFixed(0).padStart(3)} s  connections ${r.connections}  clt sends ${gbps(r.txBytesPerS)}  srv receives ${gbps(srvRate)}`;
    process.stdout.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  }
  if (r.type === 'summary') cltSummary = r;
});
const cltCode = await clt.exited;
if (tty) process.stdout.write('\n');
srv.child.kill('SIGTERM'); // srv reads what is still in flight, then prints its summary
await srv.exited;
if (!cltSummary || !srvSummary) {
  console.error(`a program failed (clt exit ${cltCode}); see its message above`);
  process.exit(1);
}

const rows = [
  ['', 'iapp-clt', 'iapp-srv'],
  ['connections', n(cltSummary.connected), n(srvSummary.accepted)],
  ['bytes', `${n(cltSummary.txBytes)} sent`, `${n(srvSummary.rxBytes)} received`],
  ['throughput', gbps(cltSummary.txBytes / cltSummary.durationS), gbps(srvSummary.rxBytes / cltSummary.durationS)],
  ['errors', JSON.stringify(cltSummary.errors), JSON.stringify(srvSummary.errors)],
];
const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
console.log();
for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('   '));
const ok = cltSummary.txBytes === srvSummary.rxBytes;
console.log(`\nreconciled: ${ok ? 'yes, every byte clt sent was received by srv' : `NO, ${n(srvSummary.rxBytes - cltSummary.txBytes)} bytes apart`}`);
process.exitCode = ok && cltCode === 0 ? 0 : 1;
