// Files at offsets, from a loop thread that never waits on the disk: reads and writes go to the
// loop's io_uring (or the native disk pool) and resolve on the loop, batched with its other
// events. Offsets past 4 GiB are exact, several operations may be in flight on one file, and a
// range is copied between files without passing through user space (copy_file_range).
// Run: node examples/files.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export async function setup(loop, { data: dir }) {
  const f = await loop.open(join(dir, 'sparse.bin'), { flags: 'w+' });
  const GiB = 2 ** 30;
  await Promise.all([f.write('hello', 0), f.write('world', 5 * GiB)]); // a sparse 5 GiB file
  const [a, b] = await Promise.all([f.read(5, 0), f.read(5, 5 * GiB)]);
  const { size, allocated } = await f.stat(); // 5 GiB + 5, a few KiB on disk
  const copied = await loop.copyFile(f, join(dir, 'copy.bin'), { srcOffset: 5 * GiB, length: 5 });
  await f.close();
  const copy = await loop.open(join(dir, 'copy.bin'));
  const back = (await copy.read(5, 0)).toString();
  await copy.close();
  return { text: `${a} ${b}`, size, allocated, copied, back, engine: loop.diskEngine };
}

if (isMainThread) {
  const dir = mkdtempSync(join(tmpdir(), 'iapp-files-example-'));
  try {
    const rt = await createRuntime({ module: new URL(import.meta.url), threads: 1, data: dir });
    const { text, size, allocated, copied, back, engine } = rt.results[0];
    console.log(`read back: ${text} (${engine})`);
    console.log(`size ${size.toLocaleString('en-US')} bytes, ${allocated.toLocaleString('en-US')} on disk`);
    console.log(`copied ${copied} bytes from offset 5 GiB: ${back}`);
    await rt.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
