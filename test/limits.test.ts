// setConnectionLimits() as a library user calls it, in this process: the checks on its arguments,
// EBUSY while a connection is open, the bound counted across a hand-off between loops (the place
// goes with the socket and comes back when it closes), and the counts connectionCounts() reports.
import net from 'node:net';

import { afterAll, describe, expect, it } from 'vitest';

import { connectionCounts, createRuntime, setConnectionLimits, type Runtime } from '../dist/src/index.js';
import { fixture } from './helpers.js';

/** Connects; `outcome` resolves with how the connection ended ('reset' for a refusal). */
function client(port: number): { socket: net.Socket; outcome: Promise<string> } {
  const socket = net.connect({ host: '127.0.0.1', port });
  const outcome = new Promise<string>((resolve) => {
    socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNRESET' ? 'reset' : e.code ?? 'error'));
    socket.on('close', () => resolve('closed'));
  });
  return { socket, outcome };
}

/** Polls `fn` until it returns true (the test's timeout bounds it). */
async function until(fn: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await fn())) await new Promise((r) => setTimeout(r, 10));
}

describe('setConnectionLimits', () => {
  let rt: Runtime | undefined;
  afterAll(async () => {
    await rt?.close();
    setConnectionLimits({});
  });

  it('checks its arguments', () => {
    expect(() => setConnectionLimits({ total: -1 })).toThrow(RangeError);
    expect(() => setConnectionLimits({ perAddress: 1.5 })).toThrow(/perAddress must be a whole number/);
    expect(() => setConnectionLimits(null as never)).toThrow(TypeError);
    expect(connectionCounts()).toMatchObject({ maxConnections: 0, maxPerAddress: 0, refusedMaxConnections: 0, refusedPerAddress: 0 });
  });

  it('bounds connections across a hand-off between loops, gives places back on close, and refuses to change while one is open', async () => {
    setConnectionLimits({ total: 2, perAddress: 2 });
    expect(connectionCounts()).toMatchObject({ maxConnections: 2, maxPerAddress: 2 });
    rt = await createRuntime({ module: fixture('limits.mjs'), threads: 2 });
    const port = (rt.results[0] as { port: number }).port;
    const a = client(port);
    const b = client(port);
    // Both accepted on loop 0 and adopted by loop 1: open there.
    await until(async () => (await rt!.stats()).reduce((n, s) => n + s.connections, 0) === 2);
    expect(() => setConnectionLimits({ total: 3 })).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    const c = client(port);
    expect(await c.outcome).toBe('reset');
    expect(connectionCounts()).toMatchObject({ open: 2, refusedMaxConnections: 1, refusedPerAddress: 0 });
    const stats = await rt.stats();
    expect(stats[0]!.refusedMaxConnections).toBe(1); // counted by the loop that refused it
    // One closes on loop 1, where it was adopted: its place comes back, and a new one fits.
    a.socket.destroy();
    await until(async () => ((await rt!.call(1, 'closed')) as number) === 1);
    const d = client(port);
    await until(async () => (await rt!.stats()).reduce((n, s) => n + s.connections, 0) === 2);
    expect(connectionCounts().refusedMaxConnections).toBe(1);
    b.socket.destroy();
    d.socket.destroy();
    await until(async () => ((await rt!.call(1, 'closed')) as number) === 3);
    await rt.close();
    rt = undefined;
    // Nothing open: the bounds may change again; {} removes them.
    setConnectionLimits({});
    expect(connectionCounts()).toMatchObject({ maxConnections: 0, maxPerAddress: 0 });
  });
});
