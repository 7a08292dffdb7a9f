// Native load primitives: socket.push, adopting an inherited listening socket, UDP sink/send/push.
//
// What it proves: socket.push sends the chunk repeated, byte for byte, and bytesWritten equals what
// the peer got; sink listeners without a handler (quiet sockets) make no JavaScript call per
// connection, end in order on close and reset peers at the deadline, with or without a low-water
// mark (one out of range is refused); an inherited listening socket is served by two loops in a
// child process, and an fd that is not one gets a clear error; UDP sink counts every datagram
// node:dgram sends, send() and push() from a connected socket reach the sink (push stops at stopPush()),
// loops share port 0, and ECONNREFUSED is counted when pushing to a closed port.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createRuntime, type Runtime } from '../dist/src/index.js';
import { fdCount, fixture } from './helpers.js';

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = fdCount();
});
afterAll(() => {
  expect(fdCount()).toBe(fdsBefore);
});

async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('socket.push', () => {
  it('sends the chunk repeated exactly, and bytesWritten equals what the peer received', async () => {
    const pattern = Buffer.from(Array.from({ length: 4099 }, (_, i) => (i * 7 + 3) & 0xff));
    let received = 0;
    let mismatch = -1;
    const server = net.createServer((c) => {
      c.on('data', (d: Buffer) => {
        for (let i = 0; i < d.length; i++) {
          if (mismatch < 0 && d[i] !== pattern[(received + i) % pattern.length]) mismatch = received + i;
        }
        received += d.length;
      });
      c.on('end', () => c.end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const closed = new Promise<void>((r) => server.on('connection', (c) => c.on('close', () => r())));
    const port = (server.address() as net.AddressInfo).port;
    const rt = await createRuntime({
      module: fixture('primitives.mjs'),
      threads: 1,
      data: { op: 'push', port, bytes: 20 << 20, pattern: pattern.toString('base64') },
    });
    try {
      const r = rt.results[0] as { written: number; unsent: number; error?: string };
      await closed;
      expect(r.error).toBeUndefined();
      expect(r.unsent).toBe(0);
      expect(r.written).toBeGreaterThanOrEqual(20 << 20);
      expect(received).toBe(r.written);
      expect(mismatch).toBe(-1);
    } finally {
      await rt.close();
      server.close();
    }
  });
});

describe('a sink listener without a handler (quiet sockets)', () => {
  it('accepts, counts and drains natively with no JS per connection, and ends its sockets on close', async () => {
    const rt = await createRuntime({ module: fixture('primitives.mjs'), threads: 2, data: { op: 'quiet-sink' } });
    const port = (rt.results[0] as { port: number }).port;
    const before = await rt.stats();
    const jsBefore = before.reduce((a, s) => a + s.jsCalls, 0);
    const n = 200;
    const clients: net.Socket[] = [];
    const closedByServer: Promise<boolean>[] = [];
    await Promise.all(
      Array.from({ length: n }, (_, i) => {
        return new Promise<void>((resolve, reject) => {
          const c = net.connect({ host: '127.0.0.1', port }, () => c.write(Buffer.alloc(1000 + i, 7), () => resolve()));
          c.on('error', reject);
          c.resume();
          clients.push(c);
          closedByServer.push(new Promise((r) => c.on('end', () => { r(true); c.end(); })));
        });
      }),
    );
    const want = Array.from({ length: n }, (_, i) => 1000 + i).reduce((a, b) => a + b, 0);
    let stats = await rt.stats();
    await until('all bytes counted', async () => {
      stats = await rt.stats();
      return stats.reduce((a, s) => a + s.bytesIn, 0) >= want;
    });
    expect(stats.reduce((a, s) => a + s.bytesIn, 0)).toBe(want);
    expect(stats.reduce((a, s) => a + s.accepted, 0)).toBe(n);
    expect(stats.reduce((a, s) => a + s.sockets, 0)).toBe(n);
    // No accept, data or close record went to JS: the loops were not entered per connection.
    expect(stats.reduce((a, s) => a + s.jsCalls, 0) - jsBefore).toBe(0);
    const summary = await rt.close({ timeoutMs: 5000 });
    expect(summary.sockets).toBe(n);
    expect(summary.reset).toBe(0);
    // Every client saw an orderly end from the server (it half-closed them and they answered).
    expect((await Promise.all(closedByServer)).every(Boolean)).toBe(true);
  });

  it('with a low-water mark, bytes below it are read at the peer\'s end, bytes above it as they come', async () => {
    const rt = await createRuntime({ module: fixture('primitives.mjs'), threads: 1, data: { op: 'quiet-sink', lowWaterMark: 256 * 1024 } });
    const port = (rt.results[0] as { port: number }).port;
    const bytesIn = async (): Promise<number> => (await rt.stats())[0]!.bytesIn;
    try {
      // 1 MiB from a peer that keeps the connection open: woken at the mark, most of it is read.
      const big = net.connect({ host: '127.0.0.1', port });
      big.on('error', () => {});
      big.write(Buffer.alloc(1 << 20, 1));
      await until('the bulk read while open', async () => (await bytesIn()) >= 768 * 1024);
      // 100 bytes sit below the mark until their sender ends: then they are read too.
      const small = net.connect({ host: '127.0.0.1', port });
      await new Promise<void>((r) => small.end(Buffer.alloc(100, 2), () => r()));
      big.end();
      await until('every byte', async () => (await bytesIn()) === (1 << 20) + 100);
      small.destroy();
      big.destroy();
    } finally {
      await rt.close();
    }
  });

  it('refuses a low-water mark out of range', async () => {
    const rt = await createRuntime({ module: fixture('primitives.mjs'), threads: 1, data: { op: 'quiet-sink', lowWaterMark: -5 } }).catch((e: Error) => e);
    expect(rt).toBeInstanceOf(Error);
    expect((rt as Error).message).toMatch(/lowWaterMark must be between 1 and/);
  });

  it('resets quiet sockets whose peers do not close by the deadline', async () => {
    const rt = await createRuntime({ module: fixture('primitives.mjs'), threads: 1, data: { op: 'quiet-sink' } });
    const port = (rt.results[0] as { port: number }).port;
    const clients: net.Socket[] = [];
    await Promise.all(
      Array.from({ length: 5 }, () => new Promise<void>((resolve) => {
        // allowHalfOpen: these clients never answer the server's end.
        const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve());
        c.resume();
        clients.push(c);
      })),
    );
    await until('5 sockets', async () => (await rt.stats())[0]!.sockets === 5);
    const summary = await rt.close({ timeoutMs: 200 });
    expect(summary).toMatchObject({ sockets: 5, reset: 5 });
    // The connections are gone on the server's side: a write from the client fails.
    const codes = await Promise.all(
      clients.map((c) => new Promise<string>((r) => {
        c.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? ''));
        c.write('x');
      })),
    );
    for (const c of clients) c.destroy();
    for (const code of codes) expect(['ECONNRESET', 'EPIPE']).toContain(code);
  });
});

describe('loop.forceClose()', () => {
  it('cuts a graceful close short from an end handler: what is left is reset at once, not at the deadline', async () => {
    const rt = await createRuntime({ module: fixture('primitives.mjs'), threads: 1, data: { op: 'force-on-end' } });
    const port = (rt.results[0] as { port: number }).port;
    // Both clients half-open: neither answers the server's end by closing on its own.
    const connect = (): Promise<net.Socket> =>
      new Promise((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(c));
        c.resume();
        c.on('error', () => {});
      });
    const [ender, holder] = await Promise.all([connect(), connect()]);
    await until('2 sockets', async () => (await rt.stats())[0]!.sockets === 2);
    // A deadline far past the test's own timeout: only forceClose can end the close in time.
    const closing = rt.close({ timeoutMs: 600_000 });
    // The server's end reaching a client says its close has begun; then one client ends.
    await new Promise((r) => ender.once('end', r));
    ender.end();
    const summary = await closing;
    expect(summary).toMatchObject({ sockets: 2, forced: true });
    // The holder never ended: it was reset.
    expect(summary.reset).toBeGreaterThanOrEqual(1);
    ender.destroy();
    holder.destroy();
  });
});

describe('listen({ fd })', () => {
  it('serves an inherited listening socket in another process, on every loop', async () => {
    // The parent makes the socket and hands it over as fd 3, as a service manager would.
    const parent = net.createServer();
    await new Promise<void>((r) => parent.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (parent.address() as net.AddressInfo).port;
    const fd = (parent as unknown as { _handle: { fd: number } })._handle.fd;
    const child = spawn(process.execPath, [fixture('adopt-child.mjs')], { stdio: ['pipe', 'pipe', 'inherit', fd] });
    parent.close(); // the child holds its own copy now
    const lines: string[] = [];
    let buf = '';
    const nextLine = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const i = buf.indexOf('\n');
          if (i >= 0) {
            const l = buf.slice(0, i);
            buf = buf.slice(i + 1);
            child.stdout.off('data', onData);
            child.off('exit', onExit);
            resolve(l);
          }
        };
        const onData = (d: Buffer): void => {
          buf += d.toString();
          check();
        };
        const onExit = (code: number | null): void => reject(new Error(`child exited with ${code}`));
        child.stdout.on('data', onData);
        child.once('exit', onExit);
        check();
      });
    try {
      const info = JSON.parse(await nextLine()) as { port: number; family: string };
      expect(info.port).toBe(port);
      expect(info.family).toBe('IPv4');
      const sizes = [1000, 70_000, 300_000, 5, 123_456, 1 << 20];
      await Promise.all(
        sizes.map(
          (n) =>
            new Promise<void>((resolve, reject) => {
              const c = net.connect({ host: '127.0.0.1', port }, () => c.end(Buffer.alloc(n, 1)));
              c.on('error', reject);
              c.on('close', () => resolve());
              c.resume();
            }),
        ),
      );
      // The peers closed after the server read everything and ended: counts are final.
      child.stdin.write('stats\n');
      lines.push(await nextLine());
      const perThread = JSON.parse(lines[0]!) as [number, number][];
      expect(perThread.reduce((a, [n]) => a + n, 0)).toBe(sizes.length);
      expect(perThread.reduce((a, [, b]) => a + b, 0)).toBe(sizes.reduce((a, b) => a + b, 0));
    } finally {
      child.stdin.end();
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  });

  it('refuses an fd that is not a listening stream socket, with a clear error', async () => {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const fd = (udp as unknown as { _handle: { fd: number } })._handle.fd;
    const rt = await createRuntime({ module: fixture('primitives.mjs'), threads: 1, data: { op: 'bad-fd', fd } });
    try {
      const r = rt.results[0] as { code: string; message: string };
      expect(r.code).toBe('EPROTOTYPE');
      expect(r.message).toContain(`inherited fd ${fd}`);
    } finally {
      await rt.close();
      udp.close();
    }
  });
});

describe('udp to a closed port', () => {
  it('counts ECONNREFUSED (from ICMP port-unreachable) while pushing, and keeps going', async () => {
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
    const port = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));
    const sender = await createRuntime({ module: fixture('primitives.mjs'), threads: 1, data: { op: 'udp-send', port, size: 64, count: 0, push: true } });
    try {
      await until('refusals', async () => ((await sender.stats())[0]!.errors.ECONNREFUSED ?? 0) >= 10);
      expect((await sender.stats())[0]!.datagramsOut).toBeGreaterThan(0);
    } finally {
      await sender.close();
    }
  });
});

describe('udp', () => {
  let sink: Runtime;
  let port = 0;
  beforeAll(async () => {
    sink = await createRuntime({ module: fixture('primitives.mjs'), threads: 2, data: { op: 'udp-sink' } });
    port = (sink.results[0] as { port: number }).port;
    // Port 0 was asked for by both loops: they share one port.
    expect((sink.results[1] as { port: number }).port).toBe(port);
  });
  afterAll(async () => {
    await sink.close();
  });
  const received = async (): Promise<{ n: number; bytes: number }> => {
    const s = await sink.stats();
    return { n: s.reduce((a, t) => a + t.datagramsIn, 0), bytes: s.reduce((a, t) => a + t.bytesIn, 0) };
  };

  it('counts datagrams natively: every datagram sent by node:dgram arrives and is counted', async () => {
    const before = await received();
    const c = dgram.createSocket('udp4');
    const count = 50;
    for (let i = 0; i < count; i++) await new Promise<void>((r, j) => c.send(Buffer.alloc(100 + i), port, '127.0.0.1', (e) => (e ? j(e) : r())));
    c.close();
    const want = Array.from({ length: count }, (_, i) => 100 + i).reduce((a, b) => a + b, 0);
    await until('50 datagrams', async () => (await received()).n - before.n >= count);
    const after = await received();
    expect(after.n - before.n).toBe(count);
    expect(after.bytes - before.bytes).toBe(want);
  });

  it('send() and push() from a connected iapp UDP socket reach the sink; push stops at stopPush()', async () => {
    const before = await received();
    const sender = await createRuntime({
      module: fixture('primitives.mjs'),
      threads: 1,
      data: { op: 'udp-send', port, size: 512, count: 20, push: true },
    });
    try {
      expect((sender.results[0] as { sent: number }).sent).toBe(20);
      await until('pushed datagrams', async () => (await received()).n - before.n >= 2000);
      const out = (await sender.stats())[0]!;
      expect(out.datagramsOut).toBeGreaterThanOrEqual(2000);
      expect(out.bytesOut).toBe(out.datagramsOut * 512);
      // Each call to the sender is a turn of its loop. While pushing, every few turns send more;
      // once stopPush() has returned, no further turn sends anything.
      type Out = { datagramsOut: number; bytesOut: number };
      const push = (op = ''): Promise<Out> => sender.call(0, 'push', op, { timeoutMs: 10_000 }) as Promise<Out>;
      const turns = async (): Promise<Out> => {
        for (let i = 0; i < 5; i++) await push();
        return push();
      };
      const a = await push();
      expect((await turns()).datagramsOut).toBeGreaterThan(a.datagramsOut);
      const stopped = await push('stop');
      const later = await turns();
      expect(later).toEqual(stopped);
      expect(later.bytesOut).toBe(later.datagramsOut * 512);
    } finally {
      await sender.close();
    }
    const after = await received();
    // Datagrams may be dropped by the kernel under a flood, but every one counted is whole.
    expect((after.bytes - before.bytes) % 512).toBe(0);
  });
});
