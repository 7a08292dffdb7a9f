// iapp file server for bench/sendfile.mjs: `--path FILE [--length BYTES] [--threads 1] [--port 0]`.
// A runtime of --threads loop threads (bench/servers/iapp-sendfile-loop.mjs); each opens FILE once
// and, per accepted connection, sends its first --length bytes (default: all of it) with
// `await socket.sendFile(file, { offset: 0, length })`, then `socket.end()`. The client sends
// nothing. Prints `READY <port>`; on SIGTERM/SIGINT prints
// {"accepted","served","txBytes","failed","errors"} and exits 0.
import { parseArgs } from 'node:util';
import { serveRuntime, usage } from '../lib/serve.mjs';

const { values } = parseArgs({
  options: { path: { type: 'string' }, length: { type: 'string' }, threads: { type: 'string', default: '1' }, port: { type: 'string', default: '0' } },
});
if (!values.path) usage('iapp-sendfile', '--path FILE is required');
await serveRuntime(
  'iapp-sendfile',
  {
    module: new URL('./iapp-sendfile-loop.mjs', import.meta.url),
    threads: Number(values.threads),
    data: { path: values.path, port: Number(values.port), ...(values.length ? { length: Number(values.length) } : {}) },
  },
  ['served', 'txBytes', 'failed'],
);
