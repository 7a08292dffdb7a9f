// iapp sink for bench/sink.mjs: `--mode sink|data [--borrow] --threads N --port P`. Prints `READY <port>`;
// on SIGTERM/SIGINT prints {"rxBytes","accepted"} and exits.
import { parseArgs } from 'node:util';
import { createRuntime } from '../../dist/src/index.js';

const { values } = parseArgs({
  options: { mode: { type: 'string', default: 'sink' }, threads: { type: 'string', default: '1' }, port: { type: 'string', default: '0' }, lowat: { type: 'string' }, borrow: { type: 'boolean', default: false } },
});
const rt = await createRuntime({
  module: new URL('./iapp-sink-loop.mjs', import.meta.url),
  threads: Number(values.threads),
  data: { mode: values.mode, borrow: values.borrow, port: Number(values.port), ...(values.lowat ? { lowWaterMark: Number(values.lowat) } : {}) },
});
console.log(`READY ${rt.results[0].port}`);
const stop = async () => {
  const stats = await rt.stats();
  await rt.close({ timeoutMs: 500 });
  console.log(JSON.stringify({ rxBytes: stats.reduce((a, s) => a + s.bytesIn, 0), accepted: stats.reduce((a, s) => a + s.accepted, 0) }));
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
