// UDP to and from JavaScript: datagrams reach onMessage in batches with their senders (IPv4 and
// IPv6) — 20 that pile up while the loop thread is blocked come in one call into JavaScript (or
// two, for a straggler), a handler call each — sendTo answers them, ICMP errors are counted rather than thrown, a full queue reports
// backpressure and drains, and bad targets are refused before anything is sent. Real sockets on
// loopback; the peers are node:dgram sockets.
import dgram from 'node:dgram';

import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';

import { createRuntime, type Runtime } from '../dist/src/index.js';
import { formatIPv6 } from '../dist/src/udp.js';
import { fixture } from './helpers.js';

// The flood test fills the send queue with injected EAGAINs (test/fixtures/udp.mjs); fault
// injection is a switch tests turn on explicitly. Loop threads copy the environment at start.
process.env.IAPP_FAULT_INJECTION = '1';

let rt: Runtime | undefined;
afterEach(async () => {
  await rt?.close({ timeoutMs: 1000 });
  rt = undefined;
});

/** Sends `n` numbered datagrams from a node:dgram socket and collects the answers (bounded). */
async function exchange(type: 'udp4' | 'udp6', host: string, port: number, n: number): Promise<{ got: string[]; local: number }> {
  const c = dgram.createSocket(type);
  const got: string[] = [];
  c.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((r) => c.bind(0, r));
  const local = c.address().port;
  for (let i = 0; i < n; i++) c.send(`datagram ${i}`, port, host);
  const deadline = Date.now() + 5000;
  while (got.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  c.close();
  return { got, local };
}

describe('UDP in JavaScript', () => {
  it('echoes every datagram to its sender, over IPv4 and IPv6, with the sender given right', async () => {
    rt = await createRuntime({ module: fixture('udp.mjs'), threads: 1 });
    const { p4, p6 } = rt.results[0] as { p4: number; p6: number };
    const v4 = await exchange('udp4', '127.0.0.1', p4, 200);
    const v6 = await exchange('udp6', '::1', p6, 200);
    // Loopback can drop under load; what comes back comes back whole and in order here.
    expect(v4.got.length).toBeGreaterThan(150);
    expect(v6.got.length).toBeGreaterThan(150);
    for (const g of [v4.got, v6.got]) for (const m of g) expect(m).toMatch(/^datagram \d+$/);
    expect(await rt.call(0, 'senders')).toEqual([`IPv4 127.0.0.1 ${v4.local}`, `IPv6 ::1 ${v6.local}`]);
    const [c4, c6] = (await rt.call(0, 'counts')) as { in: number; out: number; errors: number }[];
    expect(c4!.out).toBe(c4!.in);
    expect(c6!.out).toBe(c6!.in);
  });

  it('datagrams that arrive together reach onMessage in one call into JavaScript, one handler call each', async () => {
    const gate = new Int32Array(new SharedArrayBuffer(4));
    rt = await createRuntime({ module: fixture('udp.mjs'), threads: 1, data: { gate } });
    const port = (await rt.call(0, 'batchReceiver')) as number;
    // The loop thread blocks on the gate; the datagrams are all sent before it reads again.
    const held = rt.call(0, 'hold');
    const w = Atomics.waitAsync(gate, 0, 0, 10_000);
    if (w.async) await w.value;
    expect(Atomics.load(gate, 0)).toBe(1);
    const c = dgram.createSocket('udp4');
    await new Promise<void>((r) => c.bind(0, '127.0.0.1', r));
    const n = 20; // under one recvmmsg call's 32
    try {
      for (let i = 0; i < n; i++) await new Promise<void>((r, j) => c.send(String(i), port, '127.0.0.1', (e) => (e ? j(e) : r())));
    } finally {
      Atomics.store(gate, 0, 2);
      Atomics.notify(gate, 0);
      c.close();
    }
    expect(await held).toBe('opened');
    let got: { n: number; call: number }[] = [];
    for (const deadline = Date.now() + 5000; got.length < n && Date.now() < deadline; ) got = (await rt.call(0, 'batch')) as typeof got;
    expect(got.map((g) => g.n)).toEqual(Array.from({ length: n }, (_, i) => i));
    // One handler call per datagram, brought by one call into JavaScript: each datagram was in
    // the socket before the loop looked again, save the last ones perhaps, if the kernel's
    // loopback delivery (a softirq) ran late. Per-datagram delivery would take 20 calls.
    const calls = [...new Set(got.map((g) => g.call))];
    expect(calls.length).toBeLessThanOrEqual(2);
    expect(got.filter((g) => g.call === calls[0]).length).toBeGreaterThanOrEqual(n / 2);
  });

  it('a handler that throws is reported, and the socket goes on answering', async () => {
    rt = await createRuntime({ module: fixture('udp.mjs'), threads: 1 });
    const errors: Error[] = [];
    rt.on('handler-error', (e: { error: Error }) => errors.push(e.error));
    const { p4 } = rt.results[0] as { p4: number };
    const c = dgram.createSocket('udp4');
    await new Promise<void>((r) => c.bind(0, r));
    const got: string[] = [];
    c.on('message', (m) => got.push(m.toString()));
    c.send('throw', p4, '127.0.0.1');
    c.send('after', p4, '127.0.0.1');
    const deadline = Date.now() + 5000;
    while ((got.length < 1 || errors.length < 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    c.close();
    expect(got).toEqual(['after']);
    expect(errors[0]!.message).toBe('handler threw on purpose');
  });

  it('counts ICMP port-unreachable errors on a connected socket instead of throwing', async () => {
    rt = await createRuntime({ module: fixture('udp.mjs'), threads: 1 });
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
    const port = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r())); // nothing listens there now
    const r = (await rt.call(0, 'refused', { port, n: 20 })) as { sendErrors: number; refused: number };
    expect(r.sendErrors).toBeGreaterThan(0);
    expect(r.refused).toBeGreaterThan(0);
  });

  it('reports backpressure on a full queue, drains it, and sends everything it accepted', async () => {
    rt = await createRuntime({ module: fixture('udp.mjs'), threads: 1 });
    const r = (await rt.call(0, 'flood', { n: 200, refusals: 40 }, { timeoutMs: 30_000 })) as { falses: number; drains: number; out: number; errors: number };
    expect(r.falses).toBeGreaterThan(0);
    expect(r.drains).toBe(r.falses);
    expect(r).toMatchObject({ out: 200, errors: 0 });
  });

  it('refuses targets that are no numeric address and port, and datagrams over 65,507 bytes', async () => {
    rt = await createRuntime({ module: fixture('udp.mjs'), threads: 1 });
    expect(await rt.call(0, 'bad')).toEqual([
      expect.stringMatching(/^TypeError: sendTo needs a numeric IP address \(resolve names first\)/),
      expect.stringMatching(/^TypeError: sendTo needs \{ host, port \} with a numeric address and a port from 1 to 65535/),
      expect.stringMatching(/^RangeError: a UDP datagram is 0 to 65,507 bytes, got 70000/),
      'TypeError: onMessage needs a function',
    ]);
  });

  it('writes IPv6 senders as RFC 5952 does (checked against the WHATWG URL serializer)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(7), fc.nat(8), (bytes, at, zeros) => {
        // Runs of zero groups, where compression has choices to make.
        bytes.fill(0, 2 * at, Math.min(16, 2 * (at + zeros)));
        const ours = formatIPv6(bytes);
        if (ours.startsWith('::ffff:') && ours.includes('.')) return; // IPv4-mapped: dotted by design
        expect(new URL(`http://[${ours}]/`).hostname).toBe(`[${ours}]`);
      }),
      { numRuns: 2000 },
    );
    expect(formatIPv6(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]))).toBe('::ffff:127.0.0.1');
    expect(formatIPv6(new Uint8Array(16))).toBe('::');
  });
});
