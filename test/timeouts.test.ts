// Socket timeouts: a connection with no byte either way for its idle timeout is closed with
// ETIMEDOUT (syscall 'idle'), JS sockets and a native sink's alike, while one that keeps moving
// bytes stays; TCP keepalive is set where asked (seen in the kernel's socket table). Bounds are
// loose (the timeout is exact to a quarter of it; a loaded machine adds more).
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { createRuntime, type Runtime } from '../dist/src/index.js';
import { fixture } from './helpers.js';
import { itWithTool } from './tools.js';

let rt: Runtime | undefined;
afterEach(async () => {
  await rt?.close({ timeoutMs: 1000 });
  rt = undefined;
});

async function start(): Promise<{ rt: Runtime; js: number; sink: number; ka: number }> {
  rt = await createRuntime({ module: fixture('timeouts.mjs'), threads: 1 });
  return { rt, ...(rt.results[0] as { js: number; sink: number; ka: number }) };
}

/** Connects, optionally writes a byte every `everyMs`, and resolves when the server closes it. */
function client(port: number, everyMs?: number, forMs?: number): Promise<{ ms: number; ended: boolean }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const c = net.connect(port, '127.0.0.1');
    let timer: NodeJS.Timeout | undefined;
    if (everyMs) timer = setInterval(() => c.write('.'), everyMs);
    let ended = false;
    c.on('end', () => (ended = true));
    c.on('error', () => {});
    c.resume();
    c.on('close', () => {
      clearInterval(timer);
      resolve({ ms: Date.now() - started, ended });
    });
    if (forMs) setTimeout(() => {
      clearInterval(timer);
      c.destroy();
    }, forMs);
  });
}

describe('idle timeout', () => {
  it('closes a silent connection with ETIMEDOUT, syscall idle; a busy one stays', async () => {
    const { rt, js } = await start();
    const [silent, busy] = await Promise.all([client(js), client(js, 40, 700)]);
    expect(silent.ended).toBe(true); // the server closed it
    expect(silent.ms).toBeGreaterThanOrEqual(190);
    expect(silent.ms).toBeLessThan(3000);
    expect(busy.ms).toBeGreaterThanOrEqual(690); // the client ended it, not the timeout
    const closes = (await rt.call(0, 'closes')) as { code: string | null; syscall: string | null; ms: number }[];
    expect(closes).toContainEqual(expect.objectContaining({ code: 'ETIMEDOUT', syscall: 'idle' }));
    expect(closes.filter((c) => c.code === 'ETIMEDOUT')).toHaveLength(1);
  });

  it("times out a native sink's silent connections too, with no JavaScript per connection", async () => {
    const { sink } = await start();
    const r = await client(sink);
    expect(r.ended).toBe(true);
    expect(r.ms).toBeGreaterThanOrEqual(190);
    expect(r.ms).toBeLessThan(3000);
  });

  it('setIdleTimeout on a client socket: closed with ETIMEDOUT and a message that says why', async () => {
    const server = net.createServer((s) => s.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { rt } = await start();
    const r = (await rt.call(0, 'clientIdle', { port: (server.address() as net.AddressInfo).port })) as { code: string; syscall: string; message: string; ms: number };
    server.close();
    expect(r).toMatchObject({ code: 'ETIMEDOUT', syscall: 'idle' });
    expect(r.message).toMatch(/no byte moved either way within the socket's idle timeout/);
    expect(r.ms).toBeGreaterThanOrEqual(140);
  });
});

describe('keepalive', () => {
  itWithTool('ss', 'sets SO_KEEPALIVE with the initial delay asked, on accepted sockets', async () => {
    const { ka } = await start();
    const t0 = Date.now();
    const c = net.connect(ka, '127.0.0.1');
    await new Promise<void>((r) => c.once('connect', r));
    // The server's side of this connection: its keepalive timer counts down from ~7 s.
    let line = '';
    for (let i = 0; i < 100 && !line.includes('keepalive'); i++) {
      const out = spawnSync('ss', ['-tnoH', 'state', 'established', `( sport = :${ka} )`], { encoding: 'utf8' }).stdout;
      line = out.trim();
      if (!line.includes('keepalive')) await new Promise((r) => setTimeout(r, 20));
    }
    c.destroy();
    // ss versions print the timer's seconds with different unit names ("6.9sec", "6.892ms"):
    // the number is what counts.
    const m = /timer:\(keepalive,(\d+(?:\.\d+)?)/.exec(line);
    expect(m, line).not.toBeNull();
    const s = Number(m![1]);
    // Set to 7 s at accept, counting down since: a slow machine only makes it lower, by no more
    // than the time that passed (plus ss's rounding).
    const elapsedS = (Date.now() - t0) / 1000;
    expect(s).toBeGreaterThan(7 - elapsedS - 0.5);
    expect(s).toBeLessThanOrEqual(7);
  });

  it('refuses keepalive on a Unix socket (EOPNOTSUPP)', async () => {
    const { rt } = await start();
    // EOPNOTSUPP and ENOTSUP are one errno on Linux.
    expect(['EOPNOTSUPP', 'ENOTSUP']).toContain(await rt.call(0, 'setKeepAliveUnix', { path: join(tmpdir(), `iapp-ka-${process.pid}.sock`) }));
  });
});
