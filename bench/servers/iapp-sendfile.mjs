// iapp file server for bench/sendfile.mjs: `--path FILE [--length BYTES] [--threads 1] [--port 0]`.
// A runtime of --threads loop threads (bench/servers/iapp-sendfile-loop.mjs); each opens FILE once
// and, per accepted connection, sends its first --length bytes (default: all of it) with
// `await socket.sendFile(file, { offset: 0, length })`, then `socket.end()`. The client sends
// nothing. Prints `READY <port>`; on SIGTERM/SIGINT prints
// {"accepted","served","txBytes","failed","errors"} and exits 0.
import { parseArgs } from 'node:util';
import { createRuntime } from '../../dist/src/index.js';

const { values } = parseArgs({
  options: { path: { type: 'string' }, length: { type: 'string' }, threads: { type: 'string', default: '1' }, port: { type: 'string', default: '0' } },
});
if (!values.path) {
  console.error('iapp-sendfile: --path FILE is required');
  process.exit(2);
}
const rt = await createRuntime({
  module: new URL('./iapp-sendfile-loop.mjs', import.meta.url),
  threads: Number(values.threads),
  data: { path: values.path, port: Number(values.port), ...(values.length ? { length: Number(values.length) } : {}) },
});
rt.on('handler-error', ({ error }) => console.error(`iapp-sendfile: handler error: ${error.message}`));
console.log(`READY ${rt.results[0].port}`);
const stop = async () => {
  const stats = await rt.stats();
  await rt.close({ timeoutMs: 500 });
  const app = stats.map((s) => s.app ?? {});
  const sum = (k) => app.reduce((a, x) => a + (x[k] ?? 0), 0);
  const errors = {};
  for (const x of app) for (const [k, v] of Object.entries(x.errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
  console.log(JSON.stringify({ accepted: stats.reduce((a, s) => a + s.accepted, 0), served: sum('served'), txBytes: sum('txBytes'), failed: sum('failed'), errors }));
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
