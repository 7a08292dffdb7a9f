// Node file copies for bench/copy.mjs, the baselines next to iapp's loop.copyFile():
//   node bench/peers/node-copy.mjs --method copyFile|stream --src FILE --dst FILE
// (DST is deleted first, untimed.)
// copyFile: `await fs.promises.copyFile(src, dst)` (libuv's uv_fs_copyfile on its thread pool);
// stream:   `await pipeline(fs.createReadStream(src), fs.createWriteStream(dst))` (64 KiB reads
//           and writes on the thread pool, through JS).
// Times the call (process.hrtime) and the process's CPU around it (every thread), prints one JSON
// line {"bytes","seconds","cpuS","cpuTotalS"} (bytes: the destination's size afterwards;
// cpuTotalS: the process's CPU since it started) and exits 0 (1 with {"error"} if the copy failed).
import { createReadStream, createWriteStream, promises as fsp, rmSync, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { method: { type: 'string', default: 'copyFile' }, src: { type: 'string' }, dst: { type: 'string' } } });
if (!values.src || !values.dst || !['copyFile', 'stream'].includes(values.method)) {
  console.error('node-copy: --method copyFile|stream --src FILE --dst FILE');
  process.exit(2);
}
let out;
let code = 0;
try {
  // A new file every run: the previous destination goes just before the copy, outside the timing
  // (see bench/copy.mjs on why not earlier).
  rmSync(values.dst, { force: true });
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  if (values.method === 'copyFile') await fsp.copyFile(values.src, values.dst);
  else await pipeline(createReadStream(values.src), createWriteStream(values.dst));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  out = { bytes: statSync(values.dst).size, seconds, cpuS: (c.user + c.system) / 1e6 };
} catch (e) {
  out = { error: `${e.code ?? ''} ${e.message}`.trim() };
  code = 1;
}
const all = process.cpuUsage();
out.cpuTotalS = (all.user + all.system) / 1e6;
process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(code));
