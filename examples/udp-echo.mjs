// A UDP echo server written in JavaScript: every datagram goes back to its sender. onMessage gets
// the datagrams of a loop turn in one call (recvmmsg), sendTo stages the answers and the loop
// sends them together (sendmmsg); `from` is reused as the reply address without parsing.
// Two loops share the port (SO_REUSEPORT), on IPv4 and IPv6.
// Run: node examples/udp-echo.mjs            (answers a small Python client, then stops)
// or:  node examples/udp-echo.mjs --serve 9000  (until Ctrl-C), and from another terminal
//      socat - UDP:127.0.0.1:9000    or    echo hi | socat -t 1 - UDP6:[::1]:9000
import { spawnSync } from 'node:child_process';
import { isMainThread } from 'node:worker_threads';

import { createRuntime } from 'iapp';

export function setup(loop, { index, data }) {
  const sockets = ['127.0.0.1', '::1'].map((host) => loop.udp({ host, port: data.port }));
  for (const u of sockets) {
    u.onMessage((datagram, from) => {
      // false: the send queue is full; a server that must not drop would pause() until onDrain.
      u.sendTo(datagram, from);
    });
  }
  return { loop: index, ports: sockets.map((u) => u.port) };
}

// The client a user might write in Python: three datagrams to each address, each answer printed.
const PYTHON_CLIENT = `
import socket, sys
for family, host, port in ((socket.AF_INET, '127.0.0.1', sys.argv[1]), (socket.AF_INET6, '::1', sys.argv[2])):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    for word in (b'hello', b'from', b'python'):
        s.sendto(word, (host, int(port)))
        answer, _ = s.recvfrom(2048)
        print(host, answer.decode())
`;

if (isMainThread) {
  const serve = process.argv[2] === '--serve';
  const port = serve ? Number(process.argv[3] ?? 9000) : 0;
  // Port 0: each loop's first socket shares one port, its second another (one per address).
  const runtime = await createRuntime({ module: new URL(import.meta.url), threads: 2, data: { port } });
  const [ipv4, ipv6] = runtime.results[0].ports;
  console.log(`UDP echo on 127.0.0.1:${ipv4} and [::1]:${ipv6}, 2 loop threads`);
  if (serve) {
    runtime.closeOnSignals({ timeoutMs: 1000 });
  } else {
    const client = spawnSync('python3', ['-c', PYTHON_CLIENT, String(ipv4), String(ipv6)], { encoding: 'utf8', timeout: 10_000 });
    if (client.error) console.log(`python3 not found (${client.error.message}): try socat - UDP:127.0.0.1:${ipv4} with --serve`);
    else process.stdout.write(client.stdout + client.stderr);
    const stats = await runtime.stats();
    const got = stats.reduce((n, s) => n + s.datagramsIn, 0);
    console.log(`echoed ${got} datagrams`);
    await runtime.close();
    process.exitCode = client.error || client.status === 0 ? 0 : 1;
  }
}
