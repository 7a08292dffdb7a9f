// Public methods and options that no other test drives, each checked against what a peer or the
// kernel sees, so a broken one fails here.
//
// What it proves: a socket's address getters (localAddress, localPort, remoteAddress, remotePort,
// remoteFamily) agree with the node:net peer's view, from a loop client and a loop server; the
// write queue's high-water mark (the 256 KiB default, connect's and listen's highWaterMark
// option, setHighWaterMark raised and lowered) decides exactly when write() returns false; a
// spawned child's ChildWatch has its pid, hasExited false then true, and onExit called once with
// the signal; LISTEN_FDS_START is the protocol's 3; socketKind() on TCP and Unix listening
// sockets and a closed fd; a listener's priority option runs its sockets' reads first in a batch
// (the loop held by Atomics.wait, not by timing); listenSocket()'s TCP socket handed to
// loop.listen({ fd }) on two loops is served there.
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LISTEN_FDS_START, createRuntime, listenSocket, socketKind, type Runtime } from '../dist/src/index.js';
import { fdCount, fixture, netExchange } from './helpers.js';

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = fdCount();
});
afterAll(() => {
  expect(fdCount()).toBe(fdsBefore);
});

async function withLoop<T>(fn: (rt: Runtime) => Promise<T>, data?: Record<string, unknown>): Promise<T> {
  const rt = await createRuntime({ module: fixture('api.mjs'), threads: 1, data });
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}
const call = <T>(rt: Runtime, name: string, arg: unknown = {}): Promise<T> => rt.call(0, name, arg, { timeoutMs: 20_000 }) as Promise<T>;

type View = { localAddress: string; localPort: number; remoteAddress: string; remotePort: number; remoteFamily: string };

describe('socket addresses', () => {
  it('a loop client sees the addresses its node:net server sees, reversed', async () => {
    const peers: { remoteAddress?: string; remotePort?: number; localPort?: number }[] = [];
    const server = net.createServer((c) => {
      peers.push({ remoteAddress: c.remoteAddress, remotePort: c.remotePort, localPort: c.localPort });
      c.resume();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      await withLoop(async (rt) => {
        const v = await call<View>(rt, 'addresses', { port });
        expect(peers).toHaveLength(1);
        expect(v).toEqual({ localAddress: '127.0.0.1', localPort: peers[0]!.remotePort, remoteAddress: '127.0.0.1', remotePort: port, remoteFamily: 'IPv4' });
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('a loop server sees the addresses its node:net client sees, reversed', async () => {
    await withLoop(async (rt) => {
      const port = await call<number>(rt, 'port');
      const c = net.connect({ host: '127.0.0.1', port });
      await new Promise((r) => c.once('connect', r));
      const mine = { localPort: c.localPort, remotePort: c.remotePort };
      let got: View[] = [];
      for (let i = 0; i < 10_000 && got.length === 0; i++) got = await call<View[]>(rt, 'accepted');
      c.destroy();
      expect(got).toEqual([{ localAddress: '127.0.0.1', localPort: mine.remotePort, remoteAddress: '127.0.0.1', remotePort: mine.localPort, remoteFamily: 'IPv4' }]);
    });
  });
});

describe('write high-water mark', () => {
  const chunk = 16 * 1024;
  type Hwm = { client: number; server?: number; afterRaise: boolean; afterLower: boolean };
  // write() returns false once the queue is at or over the mark: the first refusal comes with
  // between mark and mark + one chunk queued.
  const atMark = (queued: number, mark: number): void => {
    expect(queued).toBeGreaterThanOrEqual(mark);
    expect(queued).toBeLessThan(mark + chunk);
  };

  it('is 256 KiB by default, and setHighWaterMark raises and lowers it on an open socket', async () => {
    const r = await withLoop((rt) => call<Hwm>(rt, 'hwm', { chunk }));
    atMark(r.client, 256 * 1024);
    expect(r.afterRaise).toBe(true);
    expect(r.afterLower).toBe(false);
  });

  it("is connect's and listen's highWaterMark option when given", async () => {
    const r = await withLoop((rt) => call<Hwm>(rt, 'hwm', { chunk, highWaterMark: 1 << 20, listenHighWaterMark: 96 * 1024 }));
    atMark(r.client, 1 << 20);
    atMark(r.server!, 96 * 1024);
  });
});

describe('priority', () => {
  it("a listener's priority option runs its sockets' reads first in a batch", async () => {
    const sab = new SharedArrayBuffer(8);
    const flag = new Int32Array(sab);
    await withLoop(async (rt) => {
      const ports = await call<{ low: number; high: number }>(rt, 'prioPorts');
      const connect = (port: number): Promise<net.Socket> =>
        new Promise((res, rej) => {
          const c = net.connect(port, '127.0.0.1', () => res(c));
          c.once('error', rej);
        });
      const low = await connect(ports.low);
      const high = await connect(ports.high);
      try {
        // Both accepted before the thread is held (accepts are events too).
        let accepted = 0;
        for (let i = 0; i < 10_000 && accepted < 2; i++) accepted = (await call<{ accepted: number }>(rt, 'prioPorts')).accepted;
        expect(accepted).toBe(2);
        const blocked = rt.call(0, 'block', undefined, { timeoutMs: 0 });
        await Atomics.waitAsync(flag, 0, 0).value;
        // While the thread is held: a byte to the low-priority socket, then to the high one.
        await new Promise<void>((r) => low.write('l', () => r()));
        await new Promise<void>((r) => high.write('h', () => r()));
        Atomics.store(flag, 1, 1);
        Atomics.notify(flag, 1);
        await blocked;
        // The call that asks may itself run between the two reads (a message has priority 0,
        // like the low socket): gather until both have run.
        const order: string[] = [];
        for (let i = 0; i < 10_000 && order.length < 2; i++) order.push(...(await call<string[]>(rt, 'order')));
        expect(order).toEqual(['high', 'low']);
      } finally {
        low.destroy();
        high.destroy();
      }
    }, { sab });
  });
});

describe('child watches', () => {
  it("a spawned child's watch: its pid, hasExited before and after, onExit called once with the signal", async () => {
    const r = await withLoop((rt) => call<{ before: { pid: number; samePid: boolean; hasExited: boolean }; after: { hasExited: boolean; pid: number; killAfter: boolean }; calls: unknown[]; exited: unknown }>(rt, 'child'));
    expect(r.before.pid).toBeGreaterThan(0);
    expect(r.before).toMatchObject({ samePid: true, hasExited: false });
    expect(r.after).toEqual({ hasExited: true, pid: r.before.pid, killAfter: false });
    expect(r.calls).toEqual([{ code: null, signal: 'SIGTERM' }]);
    expect(r.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });
});

describe('listening sockets', () => {
  it('LISTEN_FDS_START is the socket activation protocol’s first fd, 3 (sd_listen_fds(3))', () => {
    expect(LISTEN_FDS_START).toBe(3);
  });

  it('socketKind() says what an fd is: a TCP or Unix listening socket, and EBADF once closed', () => {
    const tcp = listenSocket({ host: '127.0.0.1', port: 0 });
    const path = join(tmpdir(), `iapp-kind-${process.pid}.sock`);
    const unix = listenSocket({ path });
    try {
      expect(socketKind(tcp.fd)).toEqual({ kind: 'listening', family: 'IPv4' });
      expect(socketKind(unix.fd)).toEqual({ kind: 'listening', family: 'unix' });
    } finally {
      tcp.close();
      unix.close();
    }
    expect(() => socketKind(tcp.fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it("listenSocket()'s TCP socket, handed to loop.listen({ fd }) on two loops, is served", async () => {
    const ls = listenSocket({ host: '127.0.0.1', port: 0 });
    try {
      expect(ls).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
      expect(ls.port).toBeGreaterThan(0);
      const rt = await createRuntime({ module: fixture('api.mjs'), threads: 2, data: { op: 'adopt', fd: ls.fd } });
      try {
        expect(rt.results).toEqual([
          { port: ls.port, address: '127.0.0.1', family: 'IPv4' },
          { port: ls.port, address: '127.0.0.1', family: 'IPv4' },
        ]);
        const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => netExchange({ host: '127.0.0.1', port: ls.port! }, `fd ${i}`)));
        replies.forEach((r, i) => expect(r.reply.toString()).toBe(`fd ${i}`));
        const stats = await rt.stats();
        expect(stats.reduce((a, s) => a + s.accepted, 0)).toBe(20);
      } finally {
        await rt.close();
      }
    } finally {
      ls.close();
    }
  });
});
