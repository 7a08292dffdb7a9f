// Serving a file: every client gets it from the page cache straight to its socket (sendfile(2)),
// natively, with no JavaScript per chunk; it takes its place in the socket's write queue, after
// the headers written before it. A FileCache keeps the file open with its stat between clients. The main thread downloads it with node:http and checks it.
// Run: node examples/sendfile.mjs
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

import { FileCache, createRuntime } from 'iapp';

export async function setup(loop, { data: path }) {
  // Opened and stat'ed once a second at most, not once per client (an open-file cache).
  const files = new FileCache(loop, { max: 16, validMs: 1000 });
  loop.onClose(() => void files.close());
  const listener = loop.listen({ host: '127.0.0.1', port: 0 }, async (socket) => {
    socket.sink(); // ignore what the client sends
    let f;
    try {
      f = await files.get(path); // { file, stat }, held until released
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${f.stat.size}\r\nConnection: close\r\n\r\n`);
      await socket.sendFile(f.file, { offset: 0, length: f.stat.size });
      socket.end();
    } catch (e) {
      console.error(`${e.code} after ${e.bytesSent ?? 0} bytes`); // ENOENT, ECONNRESET, EPIPE, ENODATA (truncated)
      socket.destroy();
    } finally {
      f?.release();
    }
  });
  return listener.port;
}

if (isMainThread) {
  const dir = mkdtempSync(join(tmpdir(), 'iapp-sendfile-example-'));
  const path = join(dir, 'data.bin');
  const data = randomBytes(8 << 20);
  writeFileSync(path, data);
  const sha = (b) => createHash('sha256').update(b).digest('hex').slice(0, 16);
  try {
    const rt = await createRuntime({ module: new URL(import.meta.url), threads: 2, data: path });
    for (let i = 0; i < 2; i++) {
      const body = await new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: rt.results[0], agent: false }, (res) => {
          const parts = [];
          res.on('data', (c) => parts.push(c)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
        }).on('error', reject);
      });
      const same = sha(body) === sha(data);
      console.log(`download ${i + 1}: ${body.length.toLocaleString('en-US')} bytes, sha256 ${sha(body)}… ${same ? 'equals the file' : 'DIFFERS'}`);
      if (!same) process.exitCode = 1;
    }
    await rt.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
