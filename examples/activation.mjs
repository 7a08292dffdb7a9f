// Serving sockets a service manager passes (socket activation) or a parent process made. Run as
// is, this file plays both sides of the protocol systemd speaks: the parent binds a listening
// socket with listenSocket() (nothing in the parent serves it), starts itself again as a child
// with that socket as fd 3 and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES set, as systemd does, and
// connects to it; the child finds the socket with listenFds() and serves it on two loops.
// Run: node examples/activation.mjs
// or, under a real service manager:
//   systemd-socket-activate -l 127.0.0.1:9000 --fdname=web node examples/activation.mjs
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { isMainThread } from 'node:worker_threads';

import { createRuntime, listenFds, listenSocket } from 'iapp';

// Each loop of the child serves every passed socket: the kernel wakes one loop per connection.
export function setup(loop, { index, data }) {
  for (const { fd } of data.passed) {
    loop.listen({ fd }, (socket) => socket.end(`served by loop ${index} of pid ${process.pid}\n`));
  }
}

if (isMainThread) {
  const passed = listenFds(); // [{ fd: 3, name: 'web' }, …]; [] when not activated
  if (passed.length > 0) {
    // Activated: serve until SIGTERM (a second one resets what is left at once).
    const runtime = await createRuntime({ module: new URL(import.meta.url), threads: 2, data: { passed } });
    runtime.closeOnSignals({ timeoutMs: 2000 });
    console.log(`child ${process.pid}: serving ${passed.map((p) => `${p.name} (fd ${p.fd})`).join(', ')}`);
  } else {
    // The parent: one listening socket, served by a child process.
    const sock = listenSocket({ host: '127.0.0.1', port: 0 });
    // LISTEN_PID must be the child's pid: `exec` keeps the shell's, which `$$` names.
    const child = spawn('sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "$0" "$1"', process.execPath, new URL(import.meta.url).pathname], {
      stdio: ['ignore', 'pipe', 'inherit', sock.fd],
    });
    sock.close(); // the child has its copy; a connection waits in the backlog until it serves
    // The child's first line says it is ready (it handles SIGTERM from then on).
    const lines = createInterface({ input: child.stdout });
    const [ready] = await once(lines, 'line');
    console.log(ready);
    for (let i = 0; i < 3; i++) {
      const c = net.connect(sock.port, '127.0.0.1');
      let line = '';
      for await (const chunk of c) line += chunk;
      console.log(`parent: connection ${i + 1}: ${line.trim()}`);
    }
    child.kill('SIGTERM');
    const [code, signal] = await once(child, 'exit');
    console.log(`parent: child exited with ${signal ?? `code ${code}`}`);
    process.exitCode = code === 0 ? 0 : 1;
  }
}
