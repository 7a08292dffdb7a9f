// iapp TCP proxy for bench/proxy.mjs: `--target HOST:PORT [--threads 1] [--port 0]`. A runtime of
// --threads loop threads (bench/servers/iapp-proxy-loop.mjs); each listens on 127.0.0.1 and, per
// accepted socket, connects to the target and hands both to loop.proxy() (splice both ways, no JS
// per chunk). Prints `READY <port>`; on SIGTERM/SIGINT prints
// {"accepted","proxied","aToB","bToA","failed","errors"} and exits 0.
import { parseArgs } from 'node:util';
import { createRuntime } from '../../dist/src/index.js';

const { values } = parseArgs({
  options: { target: { type: 'string' }, threads: { type: 'string', default: '1' }, port: { type: 'string', default: '0' } },
});
const m = /^([\d.]+):(\d+)$/.exec(values.target ?? '');
if (!m) {
  console.error('iapp-proxy: --target HOST:PORT (numeric IPv4) is required');
  process.exit(2);
}
const rt = await createRuntime({
  module: new URL('./iapp-proxy-loop.mjs', import.meta.url),
  threads: Number(values.threads),
  data: { port: Number(values.port), target: { host: m[1], port: Number(m[2]) } },
});
rt.on('handler-error', ({ error }) => console.error(`iapp-proxy: handler error: ${error.message}`));
console.log(`READY ${rt.results[0].port}`);
const stop = async () => {
  const stats = await rt.stats();
  await rt.close({ timeoutMs: 500 });
  const app = stats.map((s) => s.app ?? {});
  const sum = (k) => app.reduce((a, x) => a + (x[k] ?? 0), 0);
  const errors = {};
  for (const x of app) for (const [k, v] of Object.entries(x.errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
  console.log(JSON.stringify({ accepted: stats.reduce((a, s) => a + s.accepted, 0), proxied: sum('proxied'), aToB: sum('aToB'), bToA: sum('bToA'), failed: sum('failed'), errors }));
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
