// The core primitives in one short program, for `npm run test:valgrind` (scripts/valgrind.mjs
// runs it under memcheck): sockets (echo, native sink), messages between threads, timers, files on the
// disk pool (memcheck cannot see the kernel write through io_uring), sendFile, pipes and proxies,
// and an injected fault. Exits 1 if anything came back wrong, so a clean memcheck means clean
// and correct.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createRuntime, injectFaults, liveHandles } from '../dist/src/index.js';

// The injected fault below needs the test switch, set here explicitly.
process.env.IAPP_FAULT_INJECTION = '1';

const fixture = (name) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const sha = (b) => createHash('sha256').update(b).digest('hex');
const problems = [];
const check = (ok, what) => {
  if (!ok) problems.push(what);
};

/** One node:net client: sends `data`, half-closes, returns what came back. */
function exchange(port, data) {
  return new Promise((resolve, reject) => {
    const parts = [];
    const c = net.connect({ host: '127.0.0.1', port });
    c.on('data', (d) => parts.push(d));
    c.on('close', () => resolve(Buffer.concat(parts)));
    c.on('error', reject);
    c.end(data);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'iapp-valgrind-'));
try {
  const rt = await createRuntime({ module: fixture('faults.mjs'), threads: 2, diskEngine: 'pool' });
  const echo = await rt.call(0, 'listen', { kind: 'echo' });
  const datas = [0, 1, 2, 3].map(() => randomBytes(256 * 1024));
  const back = await Promise.all(datas.map((d) => exchange(echo, d)));
  datas.forEach((d, i) => check(sha(back[i]) === sha(d), `echo ${i}`));

  const sinkPort = await rt.call(0, 'listen', { kind: 'sink' });
  await exchange(sinkPort, randomBytes(4 << 20));

  for (const thread of [0, 1]) {
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => rt.call(thread, 'ping', { i, thread })));
    check(answers.every((a, i) => a.i === i && a.thread === thread), `messages to thread ${thread}`);
  }
  const timers = await rt.call(0, 'timers', { count: 20, ms: 5, rules: '' });
  check(timers.fired === 20, 'timers');

  const file = join(dir, 'sent');
  const content = randomBytes(1 << 20);
  writeFileSync(file, content);
  const sendPort = await rt.call(0, 'listen', { kind: 'sendfile', path: file });
  const got = await Promise.all([exchange(sendPort, ''), exchange(sendPort, '')]);
  check(got.every((g) => sha(g) === sha(content)), 'sendFile');

  const proxyPort = await rt.call(0, 'listen', { kind: 'proxy', upstream: echo });
  const through = randomBytes(512 * 1024);
  check(sha(await exchange(proxyPort, through)) === sha(through), 'proxy');

  // A reset injected into one read: that socket fails, the next one is whole.
  injectFaults('recv:ECONNRESET:1:1');
  await exchange(echo, randomBytes(1000)).catch(() => {});
  injectFaults('');
  const after = randomBytes(1000);
  check(sha(await exchange(echo, after)) === sha(after), 'echo after a fault');
  // Every server socket has closed: 4 echoes, a sink, 2 downloads, a proxy and its upstream, 2
  // more echoes.
  const closes = await rt.call(0, 'closes', { count: 11 });
  check(closes.some((c) => c.bytesRead === 4 << 20 && c.bytesWritten === 0), 'sink');
  await rt.close();

  const io = await createRuntime({ module: fixture('io.mjs'), threads: 1, diskEngine: 'pool' });
  const files = await io.call(0, 'files', { dir, seed: 3 }, { timeoutMs: 0 });
  check(files.matches === files.spots && files.readvMatch, 'files at offsets');
  const sent = await io.call(0, 'sendFile', { dir }, { timeoutMs: 0 });
  check(sent.match === true, 'sendFile ranges');
  const proxied = await io.call(0, 'proxy', { size: 5_000_000 }, { timeoutMs: 0 });
  check(proxied.match === true, 'proxy between two loops sockets');
  await io.close();

  const live = liveHandles();
  check(live.loops === 0 && live.sockets === 0 && live.files === 0 && live.pipes === 0, `handles left: ${JSON.stringify(live)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (problems.length) {
  console.error(`valgrind-core: wrong results: ${problems.join(', ')}`);
  process.exit(1);
}
console.log('valgrind-core: every check passed');
