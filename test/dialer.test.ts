// loop.dial(): connections opened, kept and cycled natively (no JavaScript per connection), at a
// rate, each held, pushing or ended at once; replaced when they close; counted exactly. Real
// sockets on loopback between two loop threads of one runtime.
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, describe, expect, it } from 'vitest';

import { createRuntime, type DialerStats, type Runtime } from '../dist/src/index.js';
import { fixture } from './helpers.js';

interface Counts {
  accepted: number;
  closed: number;
  bytes: number;
  bad: number;
  open: number;
}

let rt: Runtime | undefined;
afterEach(async () => {
  await rt?.close({ timeoutMs: 2000 });
  rt = undefined;
});

async function start(): Promise<{ rt: Runtime; port: number; fullPort: number }> {
  rt = await createRuntime({ module: fixture('dialer.mjs'), threads: 2 });
  const { port, fullPort } = rt.results[1] as { port: number; fullPort: number };
  return { rt, port, fullPort };
}

/** Polls the dialer's stats until `pred` holds (bounded: 10 s). */
async function until(r: Runtime, pred: (s: DialerStats) => boolean): Promise<DialerStats> {
  for (let i = 0; i < 1000; i++) {
    const s = (await r.call(0, 'stats')) as DialerStats;
    if (pred(s)) return s;
    await sleep(10);
  }
  throw new Error(`dialer never got there: ${JSON.stringify(await r.call(0, 'stats'))}`);
}

describe('loop.dial', () => {
  it('hold: opens count connections at the rate, keeps them, and closes them all', async () => {
    const { rt, port } = await start();
    expect(await rt.call(0, 'dial', { targets: [{ host: '127.0.0.1', port }], count: 40, rate: 400 })).toBe('ok');
    const s = await until(rt, (x) => x.open === 40);
    expect(s).toMatchObject({ established: 40, failed: 0, dropped: 0, connecting: 0, peak: 40, bytesOut: 0, errors: {} });
    // 40 at 400/s: about 100 ms (the first token is there at once). Loose: a loaded machine.
    expect(s.rampMs).toBeGreaterThan(50);
    expect(s.rampMs).toBeLessThan(5000);
    const closed = (await rt.call(0, 'close')) as DialerStats;
    expect(closed).toMatchObject({ established: 40, open: 0, connecting: 0, dropped: 0 });
    const server = (await rt.call(1, 'counts')) as Counts;
    expect(server.accepted).toBe(40);
  });

  it('push: every connection sends the chunk again and again; the server gets every byte, in order', async () => {
    const { rt, port } = await start();
    expect(await rt.call(0, 'dial', { targets: [{ host: '127.0.0.1', port }], count: 8, then: 'push', chunk: 1004 })).toBe('ok');
    await until(rt, (x) => x.open === 8 && x.bytesOut > 8_000_000);
    const closed = (await rt.call(0, 'close')) as DialerStats;
    // close() resolves once every connection has closed: the server has read all of it.
    let server = (await rt.call(1, 'counts')) as Counts;
    for (let i = 0; i < 500 && server.closed < 8; i++) server = (await sleep(10), (await rt.call(1, 'counts')) as Counts);
    expect(server.bytes).toBe(closed.bytesOut);
    expect(server.bad).toBe(0);
    expect(closed.dropped).toBe(0);
  });

  it('end: each connection is ended once established and the next opened; the server sees every one', async () => {
    const { rt, port } = await start();
    expect(await rt.call(0, 'dial', { targets: [{ host: '127.0.0.1', port }], count: 4, then: 'end' })).toBe('ok');
    await until(rt, (x) => x.cycled >= 200);
    const s = (await rt.call(0, 'close')) as DialerStats;
    expect(s.failed).toBe(0);
    expect(s.peak).toBeLessThanOrEqual(4);
    expect(s.cycled).toBe(s.established);
    expect(s.rampMs).toBeNull();
    const server = (await rt.call(1, 'counts')) as Counts;
    // Connects under way at close() are closed; the server may have accepted them already.
    expect(server.accepted).toBeGreaterThanOrEqual(s.established);
    expect(server.accepted).toBeLessThanOrEqual(s.established + 4);
  });

  it('replaces connections the server drops, and counts them', async () => {
    const { rt, port } = await start();
    await rt.call(0, 'dial', { targets: [{ host: '127.0.0.1', port }], count: 10, rate: 10_000 });
    await until(rt, (x) => x.open === 10);
    expect(await rt.call(1, 'drop')).toBe(10);
    const s = await until(rt, (x) => x.dropped === 10 && x.open === 10);
    expect(s.established).toBe(20);
  });

  it('counts refused connects by code, and times out connects a full backlog never answers', async () => {
    const { rt, fullPort } = await start();
    // Nothing listens on port 1 of 127.0.0.1 for an unprivileged test: refused.
    await rt.call(0, 'dial', { targets: [{ host: '127.0.0.1', port: 1 }], count: 5, rate: 200 });
    const refused = await until(rt, (x) => x.failed >= 20);
    expect(refused.established).toBe(0);
    expect(refused.errors.ECONNREFUSED).toBe(refused.failed);
    await rt.call(0, 'close');
    await rt.call(0, 'dial', { targets: [{ host: '127.0.0.1', port: fullPort }], count: 6, rate: 1000, timeoutMs: 200 });
    const timedOut = await until(rt, (x) => (x.errors.ETIMEDOUT ?? 0) >= 1);
    expect(timedOut.failed).toBeGreaterThanOrEqual(1);
  });

  it('validates its options before opening anything', async () => {
    const { rt, port } = await start();
    const t = [{ host: '127.0.0.1', port }];
    expect(await rt.call(0, 'dial', { targets: [{ host: 'localhost', port }], count: 1 })).toMatch(/^TypeError: targets\[0\]\.host must be a numeric IP address/);
    expect(await rt.call(0, 'dial', { targets: [], count: 1 })).toMatch(/^TypeError: dial needs targets/);
    expect(await rt.call(0, 'dial', { targets: t, count: 0 })).toMatch(/^RangeError: count must be between 1/);
    expect(await rt.call(0, 'dial', { targets: t, count: 1, rate: -1 })).toMatch(/^RangeError: rate must be a positive number/);
    expect(await rt.call(0, 'dial', { targets: t, count: 1, then: 'push' })).toMatch(/^TypeError: then: 'push' needs a chunk/);
    expect(await rt.call(0, 'dial', { targets: t, count: 1, then: 'sing' })).toMatch(/^TypeError: then must be 'hold', 'push' or 'end'/);
  });

  it("the loop's close ends the dialer's connections and keeps its final counts", async () => {
    const { rt, port } = await start();
    await rt.call(0, 'dial', { targets: [{ host: '127.0.0.1', port }], count: 30, then: 'push', chunk: 512 });
    await until(rt, (x) => x.open === 30);
    const summary = await rt.close({ timeoutMs: 5000 });
    expect(summary.reset).toBe(0);
    const st = summary.stats.find((s) => s.thread === 0)!;
    expect(st.connections).toBe(0);
    expect(st.peakConnections).toBe(30);
  });
});
