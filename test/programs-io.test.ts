// iapp-proxy and iapp-srv --mode file as a user runs them: child processes, real sockets on
// loopback, their JSON lines and exit codes. Every process is stopped by its test.
//
// What it proves: iapp-proxy between clt and an iapp-srv sink (every byte that went through reached
// the sink, exactly; a second target that refuses is counted unreachable ECONNREFUSED), its bad
// flags (exit 2); iapp-srv --mode file: a 6 MB file by SHA-256, HEAD, a percent-encoded name with a
// query, 404 (missing, a directory), 400 for .. (also encoded), 405, over one keep-alive
// connection, the counters in the summary, and --root errors (exit 2).
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { killAll, run, runCommand, type Proc } from './proc.js';
import { itWithTool } from './tools.js';

const SRV = fileURLToPath(new URL('../dist/srv/main.js', import.meta.url));
const PROXY = fileURLToPath(new URL('../dist/srv/proxy.js', import.meta.url));
const CLT = fileURLToPath(new URL('../dist/clt/main.js', import.meta.url));

afterEach(killAll);
const dir = mkdtempSync(join(tmpdir(), 'iapp-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function stopped(p: Proc): Promise<Record<string, any>> {
  const { code } = await p.exited;
  expect(code).toBe(0);
  return p.json('summary');
}

describe('iapp-proxy', () => {
  it('carries every byte clt sends to a sink, and counts a target that refuses', async () => {
    const sink = run(SRV, ['--json', '-l', '127.0.0.1:0', '-t', '1']);
    const port = (await sink.json('listening')).addresses[0].port as number;
    // A second target nobody listens on: every other connection is refused there.
    const dead = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => dead.once('listening', r));
    const deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const proxy = run(PROXY, ['--json', '-l', '127.0.0.1:0', '-T', `127.0.0.1:${port}`, '-T', `127.0.0.1:${deadPort}`, '-t', '1', '-i', '0.2']);
    const proxyPort = (await proxy.json('listening')).port as number;
    const clt = run(CLT, ['--json', '--target', `127.0.0.1:${proxyPort}`, '--threads', '1', '--conns', '4', '--rate', '1000', '--duration', '1']);
    const sent = await stopped(clt);
    // Every proxied connection has ended (clt closed its side) before the proxy is stopped.
    await proxy.jsonWhere((o) => o.type === 'stats' && o.txBytes > 0 && o.active === 0, 'a stats line with nothing active');
    proxy.child.kill('SIGTERM');
    const p = await stopped(proxy);
    sink.child.kill('SIGTERM');
    const s = await stopped(sink);
    expect(p.proxied).toBeGreaterThanOrEqual(1); // one thread: connections alternate, the first to the live target
    expect(p.unreachable.ECONNREFUSED).toBeGreaterThan(0);
    expect(p.up).toBeGreaterThan(0);
    // What went through the proxy reached the sink, to the byte; clt also sent into connections
    // the proxy reset (their target refused), which it could not deliver.
    expect(s.rxBytes).toBe(p.up);
    expect(sent.txBytes).toBeGreaterThanOrEqual(p.up);
  });

  it('--idle-exit: an open connection keeps it running; once none is left it exits 0 by itself', async () => {
    const sink = run(SRV, ['--json', '-l', '127.0.0.1:0', '-t', '1']);
    const port = (await sink.json('listening')).addresses[0].port as number;
    // The idle clock runs from start-up: 2 s leaves a loaded machine time to connect first
    // (the test fails, never passes wrongly, if it does not).
    const proxy = run(PROXY, ['--json', '-l', '127.0.0.1:0', '-T', `127.0.0.1:${port}`, '-t', '1', '--idle-exit', '2', '-i', '0.1']);
    const proxyPort = (await proxy.json('listening')).port as number;
    const c = net.connect(proxyPort, '127.0.0.1');
    const opened = await proxy.jsonWhere((o) => o.type === 'stats' && o.active === 1, 'a stats line with the connection active');
    // Held open, silent, for more than an idle period, as the proxy's own live lines tell: still
    // running (no sleep: the lines are the clock).
    await proxy.jsonWhere((o) => o.type === 'stats' && o.t >= opened.t + 2.5, 'a stats line 2.5 s later');
    expect(proxy.child.exitCode).toBeNull();
    expect(proxy.lines.some((l) => l.includes('"summary"'))).toBe(false);
    c.end();
    const p = await stopped(proxy);
    expect(p.reason).toBe('idle for 2 s');
    sink.child.kill('SIGTERM');
    await stopped(sink);
  });

  itWithTool('systemd-socket-activate', 'serves a listening socket passed by socket activation, and exits when idle', async () => {
    const sink = run(SRV, ['--json', '-l', '127.0.0.1:0', '-t', '1']);
    const port = (await sink.json('listening')).addresses[0].port as number;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const proxyPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const proxy = runCommand(['systemd-socket-activate', '-l', `127.0.0.1:${proxyPort}`, '--fdname=front', process.execPath, PROXY], ['--json', '-T', `127.0.0.1:${port}`, '-t', '2', '--idle-exit', '0.5']);
    // The activator listens first (it says so on stderr), then starts the proxy on the first
    // connection, which waits in the backlog until the proxy serves it.
    for (let i = 0; i < 500 && !proxy.stderr().includes('Listening on'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(proxy.stderr()).toContain('Listening on');
    const payload = randomBytes(200_000);
    const c = net.connect(proxyPort, '127.0.0.1');
    c.on('error', () => {});
    c.end(payload);
    await new Promise((r) => c.once('close', r));
    const p = await stopped(proxy);
    expect(p).toMatchObject({ reason: 'idle for 0.5 s', proxied: 1, up: payload.length });
    expect(proxy.lines.join('\n')).toContain('"type":"listening"');
    sink.child.kill('SIGTERM');
    expect((await stopped(sink)).rxBytes).toBe(payload.length);
  });

  it('refuses bad flags with a one-line reason and exit code 2', async () => {
    for (const [args, msg] of [
      [['-l', '127.0.0.1:0'], '--target HOST:PORT is required'],
      [['-T', '127.0.0.1:1'], '--listen HOST:PORT is required'],
      [['-l', '127.0.0.1:0', '-T', 'nowhere'], '--target nowhere: no port'],
      [['-l', '127.0.0.1:0', '-T', '127.0.0.1:1', '--threads', '0'], '--threads'],
    ] as const) {
      const p = run(PROXY, [...args]);
      expect((await p.exited).code).toBe(2);
      expect(p.stderr()).toContain(msg);
    }
  });
});

function get(port: number, path: string, method = 'GET', agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('iapp-srv --mode file', () => {
  it('serves files by GET and HEAD over keep-alive, byte for byte, and refuses what it must', async () => {
    const root = join(dir, 'www');
    mkdirSync(join(root, 'sub'), { recursive: true });
    const big = randomBytes(6_000_000);
    writeFileSync(join(root, 'big.bin'), big);
    writeFileSync(join(root, 'sub', 'a b.txt'), 'hello\n');
    writeFileSync(join(dir, 'secret'), 'outside the root');
    const srv = run(SRV, ['--json', '--mode', 'file', '--root', root, '-l', '127.0.0.1:0', '-t', '2']);
    const port = (await srv.json('listening')).addresses[0].port as number;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const r1 = await get(port, '/big.bin', 'GET', agent);
    expect(r1.status).toBe(200);
    expect(r1.headers['content-length']).toBe(String(big.length));
    expect(sha(r1.body)).toBe(sha(big));
    const r2 = await get(port, '/sub/a%20b.txt?x=1', 'GET', agent);
    expect([r2.status, r2.headers['content-type'], r2.body.toString()]).toEqual([200, 'text/plain; charset=utf-8', 'hello\n']);
    const r3 = await get(port, '/big.bin', 'HEAD', agent);
    expect([r3.status, r3.headers['content-length'], r3.body.length]).toEqual([200, String(big.length), 0]);
    expect((await get(port, '/nope', 'GET', agent)).status).toBe(404);
    expect((await get(port, '/sub', 'GET', agent)).status).toBe(404); // a directory
    expect((await get(port, '/sub/../../secret', 'GET', agent)).status).toBe(400);
    expect((await get(port, '/%2e%2e/secret', 'GET', agent)).status).toBe(400);
    expect((await get(port, '/big.bin', 'POST', agent)).status).toBe(405);
    agent.destroy();
    srv.child.kill('SIGTERM');
    const s = await stopped(srv);
    expect(s.requests).toBe(3);
    expect(s.httpErrors).toBe(5);
    expect(s.txBytes).toBeGreaterThan(big.length);
  });

  it('answers from its open-file cache within the validity, and opens every request with --file-cache 0', async () => {
    const root = join(dir, 'cached');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'x.txt'), 'one\n');
    const cached = run(SRV, ['--json', '--mode', 'file', '--root', root, '-l', '127.0.0.1:0', '-t', '1', '--file-cache-valid', '3600']);
    const uncached = run(SRV, ['--json', '--mode', 'file', '--root', root, '-l', '127.0.0.1:0', '-t', '1', '--file-cache', '0']);
    const ports = await Promise.all([cached, uncached].map(async (p) => (await p.json('listening')).addresses[0].port as number));
    const body = async (port: number): Promise<string> => (await get(port, '/x.txt', 'GET')).body.toString();
    expect(await Promise.all(ports.map(body))).toEqual(['one\n', 'one\n']);
    // Replaced by rename (as deploys do): the cache still holds the file it opened.
    writeFileSync(join(root, 'x.tmp'), 'two\n');
    renameSync(join(root, 'x.tmp'), join(root, 'x.txt'));
    expect(await Promise.all(ports.map(body))).toEqual(['one\n', 'two\n']);
    for (const p of [cached, uncached]) p.child.kill('SIGTERM');
    for (const p of [cached, uncached]) expect((await stopped(p)).requests).toBe(2);
  });

  it('needs --root with --mode file, and a directory there', async () => {
    for (const [args, msg] of [
      [['--mode', 'file'], '--mode file needs --root DIR'],
      [['--mode', 'file', '--root', join(dir, 'missing')], 'no such directory'],
      [['--root', dir], '--root is for --mode file'],
      [['--file-cache', '10'], '--file-cache is for --mode file'],
      [['--mode', 'file', '--root', dir, '--file-cache', '-1'], '--file-cache'],
      [['--mode', 'file', '--root', dir, '--file-cache-valid', 'soon'], '--file-cache-valid'],
    ] as const) {
      const p = run(SRV, [...args]);
      expect((await p.exited).code).toBe(2);
      expect(p.stderr()).toContain(msg);
    }
  });
});
