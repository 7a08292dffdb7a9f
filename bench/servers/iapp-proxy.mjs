// iapp TCP proxy for bench/proxy.mjs: `--target HOST:PORT [--threads 1] [--port 0]`. A runtime of
// --threads loop threads (bench/servers/iapp-proxy-loop.mjs); each listens on 127.0.0.1 and, per
// accepted socket, connects to the target and hands both to loop.proxy() (splice both ways, no JS
// per chunk). Prints `READY <port>`; on SIGTERM/SIGINT prints
// {"accepted","proxied","aToB","bToA","failed","errors"} and exits 0.
import { parseArgs } from 'node:util';
import { parseTarget, serveRuntime } from '../lib/serve.mjs';

const { values } = parseArgs({
  options: { target: { type: 'string' }, threads: { type: 'string', default: '1' }, port: { type: 'string', default: '0' } },
});
await serveRuntime(
  'iapp-proxy',
  {
    module: new URL('./iapp-proxy-loop.mjs', import.meta.url),
    threads: Number(values.threads),
    data: { port: Number(values.port), target: parseTarget('iapp-proxy', values.target) },
  },
  ['proxied', 'aToB', 'bToA', 'failed'],
);
