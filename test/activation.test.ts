// Sockets a service manager or a parent process passes: listenFds() says what each fd is, and a
// connection accepted elsewhere (inetd, systemd's Accept=yes) is adopted with loop.adopt({ fd })
// and served, the peer seeing its end. Real sockets on loopback and a real child process.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';

import { describe, expect, it } from 'vitest';

import { createRuntime } from '../dist/src/index.js';
import { fixture } from './helpers.js';

describe('inherited connections', () => {
  it('a child adopts the connection it was given as fd 3, echoes it, and the peer sees the end', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const conn = await accepted;
    conn.pause();
    const child = spawn(process.execPath, [fixture('inetd-child.mjs')], { stdio: ['ignore', 'pipe', 'inherit', conn] });
    conn.destroy(); // the child holds the connection now
    server.close();
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const fds = JSON.parse((await lines.next()).value as string);
    expect(fds).toEqual([{ fd: 3, name: 'conn', kind: 'connected', family: 'IPv4' }]);
    const payload = Buffer.alloc(100_000, 'e');
    const back: Buffer[] = [];
    client.on('data', (b) => back.push(b));
    const ended = new Promise<void>((r) => client.once('end', r));
    client.end(payload);
    await ended; // the child ended its side after the echo: the fd was its own
    expect(Buffer.concat(back).equals(payload)).toBe(true);
    const result = JSON.parse((await lines.next()).value as string);
    expect(result).toEqual({ bytes: payload.length });
    expect(await new Promise((r) => child.once('exit', r))).toBe(0);
    client.destroy();
  });

  it('refuses what is not a connected stream socket, and leaves the fd alone', async () => {
    const rt = await createRuntime({ module: fixture('inetd-loop.mjs'), threads: 1, data: { fd: 9999 } });
    try {
      const r = (await rt.call(0, 'done')) as { error: string };
      expect(r.error).toMatch(/^(EBADF|ENOTSOCK) /);
    } finally {
      await rt.close();
    }
    // A listening socket: EINVAL, with what to do instead.
    const l = net.createServer();
    await new Promise<void>((r) => l.listen({ host: '127.0.0.1', port: 0 }, r));
    const fd = (l as unknown as { _handle: { fd: number } })._handle.fd;
    const rt2 = await createRuntime({ module: fixture('inetd-loop.mjs'), threads: 1, data: { fd } });
    try {
      const r = (await rt2.call(0, 'done')) as { error: string };
      expect(r.error).toMatch(/^EINVAL .*not a connected stream socket \(listening\? datagram\? listen on it instead\)/);
    } finally {
      await rt2.close();
    }
    // Still open and listening: nothing took it.
    const c = net.connect((l.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise<void>((r) => c.once('connect', r));
    c.destroy();
    await new Promise<void>((r) => l.close(() => r()));
  });
});
