// Does iapp-srv --mode http's memory level off? Millions of keep-alive requests (wrk) with bad
// input mixed in (garbage, an oversized head, a reset mid-request, 100 connections a second),
// the server's RSS sampled every few seconds. It levels off when the last third of the run grows
// RSS by less than --max-growth MiB; otherwise it keeps growing and something leaks.
//
//   node bench/http-memory.mjs [--duration S] [--conns N] [--threads N] [--max-growth MiB] [--json]
//
// Needs wrk (apt-get install wrk). Traffic goes to 127.0.0.1 only and stops after --duration.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    duration: { type: 'string', default: '120' },
    conns: { type: 'string', default: '64' },
    threads: { type: 'string', default: '1' },
    'max-growth': { type: 'string', default: '8' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  console.log('usage: node bench/http-memory.mjs [--duration S (120)] [--conns N (64)] [--threads N (1)] [--max-growth MiB (8)] [--json]');
  process.exit(0);
}
const num = (name, min, max) => {
  const v = Number(o[name]);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`--${name} ${o[name]}: expected a number from ${min} to ${max}`);
    process.exit(2);
  }
  return v;
};
const durationS = num('duration', 10, 3600);
const conns = num('conns', 1, 10000);
const threads = num('threads', 1, 64);
const maxGrowth = num('max-growth', 0, 1e6);
const wrk = await promisify(execFile)('wrk', ['--version']).then(
  () => 'wrk',
  (e) => (e.code === 'ENOENT' ? null : 'wrk'), // wrk --version exits 1 after printing its version
);
if (!wrk) {
  console.error('wrk is not installed: apt-get install wrk');
  process.exit(2);
}

const srv = spawn(process.execPath, [join(root, 'dist/srv/main.js'), '--json', '--mode', 'http', '-l', '127.0.0.1:0', '-t', String(threads), '--stats', '3600'], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve, reject) => {
  let out = '';
  srv.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
    const m = /"port":(\d+)/.exec(out);
    if (m) resolve(Number(m[1]));
  });
  srv.once('exit', (code) => reject(new Error(`iapp-srv exited (${code}) before listening`)));
});
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${srv.pid}/status`, 'utf8'))[1]) / 1024;

const samples = [];
const t0 = performance.now();
const sample = () => samples.push({ t: (performance.now() - t0) / 1000, rss: rssMiB() });
const sampler = setInterval(sample, Math.max(1000, (durationS * 1000) / 40));
let bad = 0;
const badInput = setInterval(() => {
  for (let i = 0; i < 5; i++) {
    const c = net.connect(port, '127.0.0.1');
    const kind = bad++ % 3;
    c.on('error', () => {});
    c.resume();
    c.on('connect', () => {
      if (kind === 0) c.end('GARBAGE \x00\x01\x02\r\n\r\n');
      else if (kind === 1) c.end(`GET / HTTP/1.1\r\nX: ${'a'.repeat(9000)}`);
      else {
        c.write('GET / HTTP/1.1\r\nHost: x\r\n');
        c.resetAndDestroy();
      }
    });
  }
}, 50);
let wrkOut;
try {
  ({ stdout: wrkOut } = await promisify(execFile)('wrk', ['-c', String(conns), '-t', '1', '-d', `${durationS}s`, `http://127.0.0.1:${port}/`], { timeout: (durationS + 30) * 1000 }));
} finally {
  clearInterval(sampler);
  clearInterval(badInput);
  sample();
  srv.kill('SIGTERM');
}
const requests = Number(/(\d+) requests in/.exec(wrkOut)?.[1] ?? NaN);
const last = samples.filter((s) => s.t >= (durationS * 2) / 3);
const growth = last.length > 1 ? last.at(-1).rss - last[0].rss : NaN;
const levelsOff = Number.isFinite(growth) && growth < maxGrowth;
const result = {
  requests,
  badConnections: bad,
  rssStartMiB: samples[0]?.rss,
  rssEndMiB: samples.at(-1)?.rss,
  rssMaxMiB: Math.max(...samples.map((s) => s.rss)),
  lastThirdGrowthMiB: growth,
  levelsOff,
};
if (o.json) console.log(JSON.stringify({ scenario: 'http-memory', ...result, samples }));
else {
  console.log(`iapp-srv --mode http, ${threads} thread(s), wrk -c ${conns} for ${durationS} s: ${requests.toLocaleString('en')} requests, ${bad.toLocaleString('en')} bad connections`);
  console.log(`RSS MiB (s: MiB): ${samples.map((s) => `${Math.round(s.t)}: ${s.rss.toFixed(1)}`).join(', ')}`);
  console.log(`last third of the run: RSS ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MiB: ${levelsOff ? 'levels off' : `still growing (over ${maxGrowth} MiB)`}`);
}
process.exitCode = levelsOff ? 0 : 1;
