// Sockets between loop threads and with node:net peers, on loopback: what a stream connection
// promises.
//
// What it proves: byte integrity across threads (hashes of random-size transfers, iapp and node:net
// clients); a Unix path served by each loop in turn (the other's listener paused, then resumed;
// the handler set with onConnection(); one loop's listener closed while the other serves);
// without allowHalfOpen, replies to data that came with the peer's FIN still go out (the
// soak's reproducer: the socket used to end itself natively first); Unix and IPv6 listeners, a
// shared listener (EPOLLEXCLUSIVE) spreading connections; EADDRINUSE with its syscall; connect
// errors ECONNREFUSED, ENOENT (a missing Unix path) and ETIMEDOUT; half-close, reset by peer,
// backpressure and drain, unsent bytes reported by destroy(); a native sink counting bytes with no
// call into JavaScript per read, on TCP and Unix sockets; borrowed chunks (onData's borrow) keep
// every byte, echoed or hashed, and come in one buffer the loop reads into again.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createRuntime } from '../dist/src/index.js';
import { fdCount, fixture, netExchange, startServer } from './helpers.js';

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = fdCount();
});
afterAll(() => {
  // Every runtime below was closed: its epoll fds, sockets, eventfds and reserve fds are gone.
  expect(fdCount()).toBe(fdsBefore);
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('integrity', () => {
  it.each([false, true])('keeps every byte across threads: iapp clients on 2 threads → hashing server on 2 threads (borrow %s); borrowed chunks all come in one buffer the loop reads into again', async (borrow) => {
    const { rt, port, ev } = await startServer('hash', { host: '127.0.0.1', port: 0, allowHalfOpen: true }, { data: { borrow } });
    try {
      const clients = await createRuntime({
        module: fixture('client.mjs'),
        threads: 2,
        data: { op: 'push-hash', connections: 12, maxSize: 4 << 20, target: { host: '127.0.0.1', port } },
      });
      await clients.close();
      const results = (clients.results as { size: number; sent: string; reply: string; error?: string }[][]).flat();
      expect(results).toHaveLength(24);
      for (const r of results) {
        expect(r.error).toBeUndefined();
        expect(r.reply).toBe(`${r.size} ${r.sent}`);
      }
      const stats = await rt.stats();
      expect(stats.reduce((a, s) => a + s.accepted, 0)).toBe(24);
      expect(stats.reduce((a, s) => a + s.bytesIn, 0)).toBe(results.reduce((a, r) => a + r.size, 0));
      const reports = (): Record<string, unknown>[] => ev.seen.filter((m) => m.type === 'buffers');
      await ev.waitFor(() => reports().length === results.length);
      // Each client thread's first connection sends the most (4 MiB): fresh Buffers for that
      // span several 256 KiB arenas; borrowed, every chunk is a view of the one lent arena.
      const seen = reports();
      const big = seen.filter((m) => m.n === 4 << 20);
      expect(big).toHaveLength(2);
      if (borrow) for (const m of seen) expect(m.buffers, JSON.stringify(m)).toBeLessThanOrEqual(1);
      else for (const m of big) expect(m.buffers).toBeGreaterThan(1);
    } finally {
      ev.close();
      await rt.close();
    }
  });

  it.each([false, true])('echoes random sizes to many node:net clients at once (borrow %s: write() copies what it queues)', async (borrow) => {
    const { rt, port } = await startServer('echo', undefined, { data: { borrow } });
    try {
      const sizes = Array.from({ length: 40 }, () => Math.floor(Math.random() * (2 << 20)));
      const outs = await Promise.all(
        sizes.map(async (n) => {
          const data = randomBytes(n);
          const { reply } = await netExchange({ host: '127.0.0.1', port }, data);
          return { sent: sha(data), got: sha(reply), n, len: reply.length };
        }),
      );
      for (const o of outs) {
        expect(o.len).toBe(o.n);
        expect(o.got).toBe(o.sent);
      }
    } finally {
      await rt.close();
    }
  });
});

describe('end of input', () => {
  it('without allowHalfOpen, replies to data that came with the FIN go out before this side ends', async () => {
    // The client sends everything and its FIN at once, so the last read and the end arrive in
    // one batch. The socket used to end natively at once, and the echo of that read was refused.
    const { rt, port } = await startServer('echo', { host: '127.0.0.1', port: 0 }, { threads: 1 });
    try {
      let started = 0;
      let short = 0;
      const one = (size: number): Promise<boolean> =>
        new Promise((resolve) => {
          const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
          let back = 0;
          c.on('data', (b) => (back += b.length));
          c.on('error', () => {});
          c.once('close', () => resolve(back === size));
          c.end(Buffer.alloc(size, 1));
        });
      const worker = async (): Promise<void> => {
        while (started < 600) if (!(await one(65536 * (1 + (started++ % 3))))) short++;
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      expect(short).toBe(0);
    } finally {
      await rt.close();
    }
  });
});

describe('addresses', () => {
  it('serves a Unix socket path from every loop and removes the file on close', async () => {
    // Each loop in turn is the only one accepting (the other's listener paused), so every loop is
    // seen serving the path; the handler is set with listener.onConnection(), not given to listen().
    const path = join(tmpdir(), `iapp-${process.pid}-${Date.now()}.sock`);
    const { rt, address } = await startServer('hash', { path, allowHalfOpen: true }, { data: { viaOnConnection: true } });
    expect(address).toBe(path);
    const listener = (i: number, op: string): Promise<{ accepted: number; closed: boolean }> =>
      rt.call(i, 'listener', op, { timeoutMs: 10_000 }) as Promise<{ accepted: number; closed: boolean }>;
    try {
      for (const [serving, paused] of [[0, 1], [1, 0]] as const) {
        await listener(paused, 'pause');
        await listener(serving, 'resume');
        const before = await Promise.all([listener(0, ''), listener(1, '')]);
        for (let i = 0; i < 3; i++) {
          const data = randomBytes(1000 + i);
          const { reply } = await netExchange({ path }, data, { allowHalfOpen: true });
          expect(reply.toString()).toBe(`${data.length} ${sha(data)}`);
        }
        const clients = await createRuntime({
          module: fixture('client.mjs'),
          threads: 1,
          data: { op: 'push-hash', connections: 2, maxSize: 1 << 20, target: { path } },
        });
        await clients.close();
        const results = (clients.results as { size: number; sent: string; reply: string; error?: string }[][]).flat();
        expect(results).toHaveLength(2);
        for (const r of results) expect(r).toMatchObject({ error: undefined, reply: `${r.size} ${r.sent}` });
        const after = await Promise.all([listener(0, ''), listener(1, '')]);
        expect(after[serving]!.accepted - before[serving]!.accepted).toBe(5);
        expect(after[paused]!.accepted - before[paused]!.accepted).toBe(0);
        expect(after[serving]!.closed).toBe(false);
      }
      // One loop's listener closes; the other still serves the path, and the file stays.
      expect(await listener(0, 'close')).toMatchObject({ closed: true });
      await listener(1, 'resume');
      const data = randomBytes(100);
      expect((await netExchange({ path }, data, { allowHalfOpen: true })).reply.toString()).toBe(`${data.length} ${sha(data)}`);
      expect(existsSync(path)).toBe(true);
    } finally {
      await rt.close();
    }
    expect(existsSync(path)).toBe(false);
  });

  it('listens on IPv6 loopback', async () => {
    const { rt, port, address } = await startServer('echo', { host: '::1', port: 0 });
    expect(address).toBe('::1');
    try {
      const { reply } = await netExchange({ host: '::1', port }, 'six');
      expect(reply.toString()).toBe('six');
    } finally {
      await rt.close();
    }
  });

  it('spreads connections over loops with one shared listener (EPOLLEXCLUSIVE)', async () => {
    const { rt, port } = await startServer('echo', { host: '127.0.0.1', port: 0, accept: 'shared' });
    try {
      const replies = await Promise.all(
        Array.from({ length: 30 }, (_, i) => netExchange({ host: '127.0.0.1', port }, `s${i}`)),
      );
      replies.forEach((r, i) => expect(r.reply.toString()).toBe(`s${i}`));
      const stats = await rt.stats();
      expect(stats.reduce((a, s) => a + s.accepted, 0)).toBe(30);
    } finally {
      await rt.close();
    }
  });

  it('reports EADDRINUSE with the syscall, the address and what to do', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const rt = await createRuntime({
        module: fixture('client.mjs'),
        threads: 1,
        data: { op: 'listen-error', listen: { host: '127.0.0.1', port } },
      });
      await rt.close();
      const r = rt.results[0] as { code: string; errno: number; syscall: string; message: string; name: string };
      expect(r).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', name: 'IappError' });
      expect(r.errno).toBeLessThan(0);
      expect(r.message).toContain(`127.0.0.1:${port}`);
      expect(r.message).toMatch(/pick another port/);
    } finally {
      blocker.close();
    }
  });
});

describe('connect errors', () => {
  it('rejects with ECONNREFUSED when nothing listens', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const rt = await createRuntime({
      module: fixture('client.mjs'),
      threads: 1,
      data: { op: 'connect-error', target: { host: '127.0.0.1', port } },
    });
    await rt.close();
    expect(rt.results[0]).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', isIappError: true });
  });

  it('rejects with ENOENT for a missing Unix socket path', async () => {
    const rt = await createRuntime({
      module: fixture('client.mjs'),
      threads: 1,
      data: { op: 'connect-error', target: { path: join(tmpdir(), `iapp-missing-${process.pid}.sock`) } },
    });
    await rt.close();
    expect(rt.results[0]).toMatchObject({ code: 'ENOENT', syscall: 'connect' });
  });

  it('times out with ETIMEDOUT when the listener never accepts', async () => {
    const rt = await createRuntime({ module: fixture('client.mjs'), threads: 1, data: { op: 'timeout' } });
    await rt.close({ timeoutMs: 100 });
    const results = rt.results[0] as string[];
    // The first few fit in the backlog; once it is full the kernel drops SYNs and we time out.
    expect(results).toContain('ETIMEDOUT');
    expect(results.filter((r) => r !== 'connected' && r !== 'ETIMEDOUT')).toEqual([]);
  });
});

describe('port 0 shared between loops', () => {
  it("each loop's k-th listener (and UDP socket) on port 0 shares the others' k-th port, not its own loop's", async () => {
    const rt = await createRuntime({ module: fixture('ports.mjs'), threads: 2 });
    try {
      const [x, y] = rt.results as { a: number; b: number; u: number; v: number }[];
      expect(y).toEqual(x); // the same four ports on both loops
      expect(new Set([x!.a, x!.b]).size).toBe(2); // two listeners of one loop: two ports
      expect(new Set([x!.u, x!.v]).size).toBe(2);
    } finally {
      await rt.close();
    }
  });
});

describe('half-close, reset, backpressure', () => {
  it('half-close: the server reads to EOF, then answers and closes', async () => {
    const { rt, port } = await startServer('halfclose', { host: '127.0.0.1', port: 0, allowHalfOpen: true });
    try {
      const data = randomBytes(300_000);
      const { reply, ended } = await netExchange({ host: '127.0.0.1', port }, data, { allowHalfOpen: true });
      expect(reply.toString()).toBe(`bye after ${data.length}`);
      expect(ended).toBe(true);
    } finally {
      await rt.close();
    }
  });

  it('a peer reset closes the socket with ECONNRESET', async () => {
    const { rt, port, ev } = await startServer('echo');
    try {
      const c = net.connect(port, '127.0.0.1');
      await new Promise((r) => c.on('data', r).write('x'));
      c.resetAndDestroy();
      const m = await ev.waitFor((m) => m.type === 'close');
      expect(m.code).toBe('ECONNRESET');
      const stats = await rt.stats();
      expect(stats.reduce((a, s) => a + (s.errors.ECONNRESET ?? 0), 0)).toBe(1);
    } finally {
      ev.close();
      await rt.close();
    }
  });

  it('write() returns false past the high-water mark and drain fires once the peer reads', async () => {
    const bytes = 24 << 20;
    const { rt, port, ev } = await startServer('flood', { host: '127.0.0.1', port: 0 }, { threads: 1, data: { bytes } });
    try {
      const c = net.connect(port, '127.0.0.1');
      c.pause();
      // No drain while the client reads nothing: the queue is full.
      await new Promise((r) => setTimeout(r, 200));
      expect(ev.seen.filter((m) => m.type === 'drain')).toHaveLength(0);
      let got = 0;
      c.on('data', (d) => (got += d.length));
      c.resume();
      await new Promise((r) => c.on('end', r));
      expect(got).toBe(bytes);
      expect(ev.seen.filter((m) => m.type === 'drain').length).toBeGreaterThan(0);
      c.destroy();
    } finally {
      ev.close();
      await rt.close();
    }
  });

  it('destroy() reports the queued bytes that were never sent', async () => {
    const bytes = 64 << 20;
    const { rt, port, ev } = await startServer('hold', { host: '127.0.0.1', port: 0 }, { threads: 1, data: { bytes } });
    try {
      const c = net.connect(port, '127.0.0.1');
      c.pause();
      const q = await ev.waitFor((m) => m.type === 'queued');
      expect(q.writable).toBe(false);
      expect(q.buffered as number).toBeGreaterThan(0);
      ev.send({ type: 'destroy' });
      const d = await ev.waitFor((m) => m.type === 'destroyed');
      const closed = await ev.waitFor((m) => m.type === 'close');
      expect(d.unsent as number).toBeGreaterThan(0);
      expect(closed.unsent).toBe(d.unsent);
      expect((closed.bytesWritten as number) + (closed.unsent as number)).toBe(bytes);
      c.destroy();
    } finally {
      ev.close();
      await rt.close();
    }
  });
});

describe('sink', () => {
  it('sinks Unix stream sockets too (no MSG_TRUNC there)', async () => {
    const path = join(tmpdir(), `iapp-sink-${process.pid}-${Date.now()}.sock`);
    const { rt } = await startServer('sink', { path, mode: 'sink' }, { threads: 1 });
    try {
      const total = 5 << 20;
      await netExchange({ path }, Buffer.alloc(total, 9));
      const [s] = await rt.stats();
      expect(s!.bytesIn).toBe(total);
      expect(s!.errors).toEqual({});
    } finally {
      await rt.close();
    }
  });

  it('discards natively: bytes are counted without a call into JS per read', async () => {
    const { rt, port } = await startServer('sink', { host: '127.0.0.1', port: 0, mode: 'sink' }, { threads: 1 });
    try {
      const total = 64 << 20;
      await netExchange({ host: '127.0.0.1', port }, Buffer.alloc(total, 3));
      const [s] = await rt.stats();
      expect(s!.bytesIn).toBe(total);
      // 64 MiB arrives over many wakeups (at most 16 MiB each; hundreds on a normal build, a few
      // dozen under the sanitizers); JS only sees the accept and the close.
      expect(s!.jsCalls, JSON.stringify(s)).toBeLessThanOrEqual(4);
      expect(s!.wakeups).toBeGreaterThan(2 * s!.jsCalls);
    } finally {
      await rt.close();
    }
  });
});
