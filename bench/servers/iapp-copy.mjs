// iapp file copy for bench/copy.mjs: `--src FILE --dst FILE` (DST is deleted first, untimed). A
// runtime with 1 loop thread (bench/servers/iapp-copy-loop.mjs); the loop times
// `await loop.copyFile(src, dst)` (paths: opened, copied with copy_file_range on the native disk
// pool, closed) and the main thread the process's CPU around it (every thread: the disk pool's too). Prints one JSON line
// {"bytes","seconds","cpuS","cpuTotalS"} (cpuTotalS: the process's CPU from its start to after the
// runtime closed) and exits 0 (1 with {"error"} if the copy failed).
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createRuntime } from '../../dist/src/index.js';

const { values } = parseArgs({ options: { src: { type: 'string' }, dst: { type: 'string' } } });
if (!values.src || !values.dst) {
  console.error('iapp-copy: --src FILE --dst FILE');
  process.exit(2);
}
const rt = await createRuntime({ module: new URL('./iapp-copy-loop.mjs', import.meta.url), threads: 1 });
let out;
let code = 0;
try {
  // A new file every run: the previous destination goes just before the copy, outside the timing
  // (see bench/copy.mjs on why not earlier).
  rmSync(values.dst, { force: true });
  const c0 = process.cpuUsage();
  const r = await rt.call(0, 'copy', { src: values.src, dst: values.dst }, { timeoutMs: 300_000 });
  const c = process.cpuUsage(c0);
  out = { ...r, cpuS: (c.user + c.system) / 1e6 };
} catch (e) {
  out = { error: `${e.code ?? ''} ${e.message}`.trim() };
  code = 1;
}
await rt.close({ timeoutMs: 1000 });
const all = process.cpuUsage();
out.cpuTotalS = (all.user + all.system) / 1e6;
process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(code));
