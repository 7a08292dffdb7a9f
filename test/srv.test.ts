// iapp-srv as a user runs it: a child process, real sockets on loopback, its JSON lines and exit
// codes. Every server is stopped by its test (SIGTERM, --duration or --idle-exit).
//
// What it proves: the JSON contract with exact rxBytes, data/echo/http modes (pipelined answers in
// order, 400, 408, 431); against the http and the file modes, 50 slowloris connections (a byte
// every 100 ms with --header-timeout 1, ten of them sending only empty lines) all answered 408 and
// closed 1–3.5 s after their first byte while a keep-alive client is answered throughout, counted
// in the summary; 431 for a 9 KB head and 413 for a declared body over --max-body (1,025 bytes, and
// a 20-digit Content-Length) with the server closing the connection, a body at the limit read past;
// Unix paths (one process and two), IPv6, port 0 and --accept shared across two processes,
// --idle-exit, SIGINT/SIGTERM summaries, bad flags (exit 2), EADDRINUSE and a missing directory
// (exit 1), data from socat, UDP, and socket activation by the real systemd-socket-activate (TCP
// with names, and datagram sockets), and --inetd under it: a connection on fd 0 ("nowait") in
// every mode with nothing but the mode's answer reaching the peer, and ("wait") a listening fd 0
// in http and file modes and a datagram fd 0 in data and echo modes. Tests that need socat or systemd-socket-activate skip where it
// is missing, with the reason in their name (test/tools.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';

import { listenFds } from '../dist/src/index.js';
import { killAll, runCommand, track } from './proc.js';
import { itWithTool } from './tools.js';

const MAIN = fileURLToPath(new URL('../dist/srv/main.js', import.meta.url));
type Json = Record<string, any>;

interface Srv {
  cp: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** The first stdout line (parsed as JSON) that `pred` accepts, seen before or later. */
  waitJson: (pred: (o: Json) => boolean, what?: string) => Promise<Json>;
  waitLine: (pred: (l: string) => boolean, what?: string) => Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

afterEach(killAll);

function run(args: string[], cmd: string[] = [process.execPath, MAIN]): Srv {
  const p = runCommand(cmd, args);
  return { cp: p.child, lines: p.lines, stderr: p.stderr, exit: p.exited, waitLine: p.line, waitJson: p.jsonWhere };
}

/** Starts srv in JSON mode and waits for its "listening" line. */
async function start(args: string[], cmd?: string[]): Promise<{ srv: Srv; listening: Json; port: number }> {
  const srv = run(['--json', '--threads', '2', '--stats', '0.1', ...args], cmd);
  const listening = await srv.waitJson((o) => o.type === 'listening', 'the listening line');
  return { srv, listening, port: listening.addresses[0].port as number };
}

async function stop(srv: Srv, signal: NodeJS.Signals = 'SIGTERM'): Promise<Json> {
  srv.cp.kill(signal);
  const { code } = await srv.exit;
  expect(code).toBe(0);
  for (const l of srv.lines) expect(() => JSON.parse(l)).not.toThrow(); // nothing but JSON on stdout
  const last = JSON.parse(srv.lines.at(-1)!) as Json;
  expect(last.type).toBe('summary');
  return last;
}

/** Sends `data` over one node:net connection and closes it. */
function send(target: net.NetConnectOpts, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect(target, () => c.end(data));
    c.on('error', reject);
    c.resume();
    c.on('close', () => resolve());
  });
}

/** Writes `data` on one connection and collects what comes back until the server closes. */
function exchange(target: net.NetConnectOpts, data: Buffer | string, endAfterWrite = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const c = net.connect(target, () => (endAfterWrite ? c.end(data) : c.write(data)));
    c.on('data', (b) => got.push(b));
    c.on('error', reject);
    c.on('close', () => resolve(Buffer.concat(got)));
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'iapp-srv-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('iapp-srv', () => {
  it('JSON lines: listening, stats, then a summary with the exact bytes sent (sink mode)', async () => {
    const { srv, listening, port } = await start(['--listen', '127.0.0.1:0']);
    expect(listening.mode).toBe('sink');
    expect(listening.addresses[0]).toMatchObject({ proto: 'tcp', address: '127.0.0.1' });
    expect(port).toBeGreaterThan(0);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    // One connection held open until a live line shows it; the other sends and closes.
    const held = net.connect({ port, host: '127.0.0.1' });
    held.write(data.subarray(0, 1000));
    await srv.waitJson((o) => o.type === 'stats' && o.connections === 1, 'a stats line with the open connection');
    const heldClosed = new Promise((r) => held.on('close', r));
    held.end();
    await Promise.all([send({ port, host: '127.0.0.1' }, data), heldClosed]);
    const total = data.length + 1000;
    const st = await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === total && o.connections === 0, 'stats with all bytes');
    expect(st.accepted).toBe(2);
    const sum = await stop(srv);
    expect(sum).toMatchObject({ rxBytes: total, txBytes: 0, accepted: 2, closed: 2, threads: 2, procs: 1, mode: 'sink', errors: {} });
    expect(sum.peakConnections).toBeGreaterThanOrEqual(1);
    expect(sum.durationS).toBeGreaterThan(0);
    expect(sum.perThread.reduce((a: number, t: Json) => a + t.rxBytes, 0)).toBe(total);
  });

  it('data mode counts every byte in JavaScript', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--mode', 'data']);
    const data = randomBytes(1024 * 1024 + 3);
    await send({ port, host: '127.0.0.1' }, data);
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === data.length && o.connections === 0);
    const sum = await stop(srv);
    expect(sum).toMatchObject({ rxBytes: data.length, jsBytes: data.length, accepted: 1 });
  });

  it('echo mode returns exactly what was sent', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--mode', 'echo']);
    const data = randomBytes(2 * 1024 * 1024 + 5);
    const back = await exchange({ port, host: '127.0.0.1' }, data);
    expect(back.equals(data)).toBe(true);
    await srv.waitJson((o) => o.type === 'stats' && o.connections === 0 && o.rxBytes === data.length);
    const sum = await stop(srv);
    expect(sum).toMatchObject({ rxBytes: data.length, txBytes: data.length });
  });

  it('http mode answers pipelined requests in order, and 431 for huge headers', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--mode', 'http']);
    const r = (path: string, method = 'GET', extra = ''): string => `${method} ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`;
    const back = (await exchange({ port, host: '127.0.0.1' }, r('/a') + r('/b', 'HEAD') + r('/c', 'GET', 'Connection: close\r\n'), false)).toString('latin1');
    const parts = back.split('HTTP/1.1 ').slice(1);
    expect(parts).toHaveLength(3);
    expect(parts.every((p) => p.startsWith('200 OK'))).toBe(true);
    expect(parts[0]!.endsWith('ok\n')).toBe(true);
    expect(parts[1]!.endsWith('\r\n\r\n')).toBe(true); // HEAD: no body, so the order is visible
    expect(parts[2]).toContain('Connection: close');
    const huge = await exchange({ port, host: '127.0.0.1' }, r('/', 'GET', `X-Big: ${'a'.repeat(20000)}\r\n`), false);
    expect(huge.toString('latin1')).toMatch(/^HTTP\/1\.1 431 /);
    const garbage = await exchange({ port, host: '127.0.0.1' }, 'hello\r\n\r\n', false);
    expect(garbage.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
    await srv.waitJson((o) => o.type === 'stats' && o.requests === 3 && o.connections === 0);
    const sum = await stop(srv);
    expect(sum).toMatchObject({ requests: 3, httpErrors: 2, accepted: 3 });
  });

  it('listens on a Unix socket path and removes it at exit', async () => {
    const path = join(tmp, 'srv.sock');
    const { srv, listening } = await start(['--listen', `unix:${path}`]);
    expect(listening.addresses[0]).toMatchObject({ proto: 'unix', address: path });
    const data = randomBytes(500_000);
    await send({ path }, data);
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === data.length && o.connections === 0);
    expect((await stop(srv)).rxBytes).toBe(data.length);
    expect(existsSync(path)).toBe(false); // removed at exit, not merely refusing
    const refused = await new Promise<string>((r) => net.connect({ path }).on('error', (e: NodeJS.ErrnoException) => r(e.code!)));
    expect(refused).toBe('ENOENT');
  });

  it('serves one Unix socket path from two processes', async () => {
    const path = join(tmp, 'procs.sock');
    const { srv } = await start(['--listen', `unix:${path}`, '--procs', '2']);
    const data = randomBytes(100_000);
    await Promise.all([1, 2, 3, 4].map(() => send({ path }, data)));
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === 4 * data.length && o.connections === 0);
    const sum = await stop(srv);
    expect(sum).toMatchObject({ rxBytes: 4 * data.length, accepted: 4, procs: 2 });
    expect(sum.perThread.map((t: Json) => t.proc)).toEqual([0, 1]);
  });

  it('shares one TCP socket between two processes with --accept shared', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--procs', '2', '--accept', 'shared']);
    const data = randomBytes(50_000);
    await Promise.all([1, 2, 3, 4, 5, 6].map(() => send({ port, host: '127.0.0.1' }, data)));
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === 6 * data.length && o.connections === 0);
    const sum = await stop(srv);
    expect(sum).toMatchObject({ rxBytes: 6 * data.length, accepted: 6, procs: 2 });
  });

  it('with --rcvlowat, still counts every byte: small sends at close, large ones as they come', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--rcvlowat', '256k']);
    const sizes = [10, 1000, 300_000, 2_000_000];
    await Promise.all(sizes.map((n) => send({ port, host: '127.0.0.1' }, Buffer.alloc(n, 7))));
    const total = sizes.reduce((a, b) => a + b, 0);
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === total && o.connections === 0);
    expect((await stop(srv)).rxBytes).toBe(total);
  });

  it('listens on IPv6 [::1]', async () => {
    const { srv, listening, port } = await start(['--listen', '[::1]:0']);
    expect(listening.addresses[0]).toMatchObject({ address: '::1', family: 'IPv6', text: `[::1]:${port}` });
    await send({ port, host: '::1' }, Buffer.alloc(12345));
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === 12345 && o.connections === 0);
    expect((await stop(srv)).rxBytes).toBe(12345);
  });

  it('exits 0 by itself after --idle-exit seconds without connections', async () => {
    // The idle clock runs from start-up: 2 s leaves a loaded machine time to connect first (the
    // test fails, never passes wrongly, if it does not).
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--idle-exit', '2']);
    await send({ port, host: '127.0.0.1' }, Buffer.alloc(10));
    const { code } = await srv.exit;
    expect(code).toBe(0);
    const sum = JSON.parse(srv.lines.at(-1)!) as Json;
    expect(sum).toMatchObject({ type: 'summary', rxBytes: 10, accepted: 1 });
    expect(sum.reason).toMatch(/idle/);
  });

  it('stays up with --idle-exit while a silent connection is open, and exits once it closes', async () => {
    // The idle clock runs from start-up: 2 s leaves a loaded machine time to connect first.
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--idle-exit', '2']);
    const c = net.connect(port, '127.0.0.1');
    const opened = await srv.waitJson((o) => o.type === 'stats' && o.connections === 1, 'the connection open');
    // More than an idle period with the connection silent, seen by the live lines of a running server.
    await srv.waitJson((o) => o.type === 'stats' && o.t >= opened.t + 2.5, 'stats 2.5 s later');
    expect(srv.lines.some((l) => l.includes('"summary"'))).toBe(false);
    c.destroy();
    expect((await srv.exit).code).toBe(0);
    const sum = JSON.parse(srv.lines.at(-1)!) as Json;
    expect(sum).toMatchObject({ type: 'summary', reason: 'idle for 2 s', accepted: 1, closed: 1 });
  });

  it('prints the human summary on SIGINT and exits 0', async () => {
    const srv = run(['--listen', '127.0.0.1:0', '--threads', '2', '--stats', '0.1']);
    await srv.waitLine((l) => l.startsWith('listening on 127.0.0.1:'));
    expect(srv.lines[0]).toMatch(/^fd limit /);
    await srv.waitLine((l) => /conns 0 +new 0/.test(l), 'a live line');
    srv.cp.kill('SIGINT');
    expect((await srv.exit).code).toBe(0);
    const out = srv.lines.join('\n');
    expect(out).toMatch(/^thread +accepted +closed +RX bytes/m);
    expect(out).toMatch(/^total: 0 B received/m);
  });

  it('rejects bad flags with exit code 2 and one clear line', () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /Unknown option '--bogus'/],
      [['--mode', 'nope'], /--mode nope: must be one of sink, data, echo, http/],
      [['--listen', '1.2.3.4'], /--listen 1\.2\.3\.4: no port/],
      [['--threads', '0'], /--threads 0: must be from 1/],
      [['--threads', '1', '--procs', '2'], /more processes than threads/],
      [['--duration', 'soon'], /--duration soon: must be a number of seconds/],
      [['stray'], /positional/i],
      [['--rcvlowat', '64k', '--mode', 'echo'], /--rcvlowat is for --mode sink or data/],
    ];
    for (const [args, msg] of cases) {
      const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.split('\n')[0]).toMatch(/^iapp-srv: /);
    }
    const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: iapp-srv/);
  });

  it('reports an address in use with exit code 1', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const srv = run(['--listen', `127.0.0.1:${port}`, '--threads', '1']);
      expect((await srv.exit).code).toBe(1);
      expect(srv.stderr()).toMatch(/EADDRINUSE/);
      expect(srv.stderr().trim().split('\n')).toHaveLength(1);
    } finally {
      blocker.close();
    }
    const r = spawnSync(process.execPath, [MAIN, '--listen', `unix:${tmp}/missing/dir.sock`], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/directory .*missing does not exist/);
  });

  itWithTool('socat', 'sinks what socat sends from stdin', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0']);
    const data = randomBytes(4 * 1024 * 1024);
    const socat = track(spawn('socat', ['-u', '-', `TCP:127.0.0.1:${port}`], { stdio: ['pipe', 'ignore', 'pipe'] }));
    socat.stdin!.end(data);
    const code = await new Promise((r) => socat.once('exit', r));
    expect(code).toBe(0);
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === data.length && o.connections === 0);
    expect((await stop(srv)).rxBytes).toBe(data.length);
  });

  itWithTool('socat', 'answers socat and a Python client over UDP in echo mode, IPv4 and IPv6', async () => {
    const { srv, listening } = await start(['--udp', '127.0.0.1:0', '--udp', '[::1]:0', '--mode', 'echo']);
    const [v4, v6] = listening.addresses.map((a: Json) => a.port as number);
    const socat = (target: string, text: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const cp = track(spawn('socat', ['-t', '2', '-', target], { stdio: ['pipe', 'pipe', 'pipe'] }));
        let out = '';
        cp.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
        cp.on('error', reject);
        cp.on('close', () => resolve(out));
        cp.stdin!.end(text);
      });
    // socat waits 2 s after its input ends for answers: both at once.
    const [a4, a6] = await Promise.all([socat(`UDP:127.0.0.1:${v4}`, 'hello over IPv4\n'), socat(`UDP6:[::1]:${v6}`, 'hello over IPv6\n')]);
    expect(a4).toBe('hello over IPv4\n');
    expect(a6).toBe('hello over IPv6\n');
    const py = spawnSync(
      'python3',
      ['-c', 'import socket,sys\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.settimeout(5)\ns.sendto(b"py",("::1",int(sys.argv[1])))\nprint(s.recvfrom(99)[0].decode())', String(v6)],
      { encoding: 'utf8', timeout: 10_000 },
    );
    expect(py.stdout).toBe('py\n');
    const sum = await stop(srv);
    expect(sum).toMatchObject({ datagramsIn: 3, rxBytes: 34, txBytes: 34 });
  });

  it('counts UDP datagrams', async () => {
    const { srv, listening } = await start(['--udp', '127.0.0.1:0']);
    expect(listening.addresses[0]).toMatchObject({ proto: 'udp', address: '127.0.0.1' });
    const port = listening.addresses[0].port as number;
    const sock = dgram.createSocket('udp4');
    const n = 5;
    for (let i = 0; i < n; i++) await new Promise<void>((r, j) => sock.send(Buffer.alloc(100, i), port, '127.0.0.1', (e) => (e ? j(e) : r())));
    sock.close();
    await srv.waitJson((o) => o.type === 'stats' && o.datagramsIn >= 1);
    const sum = await stop(srv);
    // Loopback UDP may drop under load: at least one, never more than sent, 100 bytes each.
    expect(sum.datagramsIn).toBeGreaterThanOrEqual(1);
    expect(sum.datagramsIn).toBeLessThanOrEqual(n);
    expect(sum.rxBytes).toBe(sum.datagramsIn * 100);
  });

  it('echo mode sends each UDP datagram back to its sender, and counts both ways', async () => {
    const { srv, listening } = await start(['--udp', '127.0.0.1:0', '--mode', 'echo']);
    const port = listening.addresses[0].port as number;
    const sock = dgram.createSocket('udp4');
    const got: string[] = [];
    sock.on('message', (m) => got.push(m.toString()));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const n = 20;
    for (let i = 0; i < n; i++) sock.send(`echo ${i}`, port, '127.0.0.1');
    const deadline = Date.now() + 5000;
    while (got.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    sock.close();
    // Loopback UDP may drop under load: what comes back is what was sent, and counted.
    expect(got.length).toBeGreaterThan(0);
    for (const m of got) expect(m).toMatch(/^echo \d+$/);
    const sum = await stop(srv);
    expect(sum.datagramsIn).toBeGreaterThanOrEqual(got.length);
    expect(sum.txBytes).toBe(sum.jsBytes);
    expect(sum.rxBytes).toBe(sum.jsBytes);
  });

  itWithTool('systemd-socket-activate', 'serves sockets passed by systemd-socket-activate', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const srv = run(['--json', '--threads', '2', '--stats', '0.1'], ['systemd-socket-activate', '-l', `127.0.0.1:${port}`, '--fdname=web', process.execPath, MAIN]);
    // systemd-socket-activate starts the program on the first connection, which then waits in
    // the passed socket's backlog until srv serves it.
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (!srv.stderr().includes('Listening on')) return;
        srv.cp.stderr!.off('data', check);
        resolve();
      };
      srv.cp.stderr!.on('data', check);
      check();
    });
    const first = send({ port, host: '127.0.0.1' }, Buffer.alloc(54321));
    const listening = await srv.waitJson((o) => o.type === 'listening', 'the listening line');
    await first;
    expect(listening.activated).toBe(true);
    expect(listening.addresses).toEqual([expect.objectContaining({ proto: 'tcp', address: '127.0.0.1', port, fd: 3, name: 'web' })]);
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === 54321 && o.connections === 0);
    expect((await stop(srv)).rxBytes).toBe(54321);
  });

  it('answers 408 when a request body does not arrive within --body-timeout of its head, however it dribbles', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--mode', 'http', '--body-timeout', '0.5']);
    // A body that stops, and one that dribbles a byte every 100 ms (it would take 10 s).
    const stalled = exchange({ port, host: '127.0.0.1' }, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789', false);
    const dribbled = new Promise<{ back: string; ms: number }>((resolve) => {
      const t0 = Date.now();
      const c = net.connect(port, '127.0.0.1', () => c.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n'));
      const timer = setInterval(() => c.write('.'), 100);
      const got: Buffer[] = [];
      c.on('data', (b) => got.push(b));
      c.on('error', () => {});
      c.on('close', () => {
        clearInterval(timer);
        resolve({ back: Buffer.concat(got).toString('latin1'), ms: Date.now() - t0 });
      });
    });
    expect((await stalled).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
    const d = await dribbled;
    expect(d.back).toMatch(/^HTTP\/1\.1 408 /);
    expect(d.ms).toBeGreaterThanOrEqual(450);
    expect(d.ms).toBeLessThan(5000);
    expect((await stop(srv)).httpErrors).toBe(2);
  });

  for (const mode of ['http', 'file'] as const) {
    it(`${mode} mode closes a keep-alive connection idle for --keepalive-timeout, after a request or before any, and not one that keeps asking`, async () => {
      const { srv, port } = await start(['--listen', '127.0.0.1:0', ...modeArgs(mode), '--keepalive-timeout', '1']);
      const path = mode === 'http' ? '/' : '/index.html';
      const body = expectedBody(mode);
      const answers = (text: string): number => text.split(body).length - 1;
      const idleAfter = new Promise<{ back: string; ms: number }>((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
        const got: Buffer[] = [];
        let t0 = 0;
        c.on('data', (b) => {
          got.push(b);
          t0 ||= Date.now();
        });
        c.on('error', () => {});
        c.on('close', () => resolve({ back: Buffer.concat(got).toString('latin1'), ms: Date.now() - t0 }));
      });
      const silent = new Promise<number>((resolve) => {
        const t0 = Date.now();
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => {});
        c.resume();
        c.on('close', () => resolve(Date.now() - t0));
      });
      // Asks again 100 ms after each answer for 2.5 s, well past the timeout: no gap is near 1 s,
      // so the server must never close it, and every request is answered.
      const busy = new Promise<{ asked: number; answered: number; serverEnded: boolean }>((resolve, reject) => {
        const t0 = Date.now();
        let text = '';
        let asked = 0;
        let serverEnded = false;
        const ask = (): void => {
          asked++;
          c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        };
        const c = net.connect(port, '127.0.0.1', ask);
        c.setEncoding('latin1');
        c.on('data', (d: string) => {
          text += d;
          if (answers(text) < asked) return;
          if (Date.now() - t0 < 2500) setTimeout(ask, 100);
          else {
            resolve({ asked, answered: answers(text), serverEnded });
            c.end();
          }
        });
        c.on('end', () => (serverEnded = true));
        c.on('error', reject);
        c.on('close', () => resolve({ asked, answered: answers(text), serverEnded: true }));
      });
      const a = await idleAfter;
      expect(a.back).toMatch(/^HTTP\/1\.1 200 OK/); // answered, then closed without a word
      expect(a.back).not.toMatch(/408/);
      expect(answers(a.back)).toBe(1);
      // Timers fire late, never early (50 ms for the client starting its clock after the server).
      expect(a.ms).toBeGreaterThanOrEqual(950);
      expect(await silent).toBeGreaterThanOrEqual(950);
      const b = await busy;
      expect(b.serverEnded).toBe(false);
      expect(b.asked).toBeGreaterThanOrEqual(3); // open 2.5 s, more than twice the timeout, by asking again and again
      expect(b.answered).toBe(b.asked);
      await srv.waitJson((o) => o.type === 'stats' && o.connections === 0, 'stats with every connection closed');
      const sum = await stop(srv);
      expect(sum.requests).toBe(1 + b.asked);
      expect(sum.errors.ETIMEDOUT).toBe(2);
    });
  }

  it('answers 408 when a request head does not complete within --header-timeout', async () => {
    const { srv, port } = await start(['--listen', '127.0.0.1:0', '--mode', 'http', '--header-timeout', '0.3']);
    const back = await exchange({ port, host: '127.0.0.1' }, 'GET / HTTP/1.1\r\nHost: slow\r\n', false);
    expect(back.toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
    await srv.waitJson((o) => o.type === 'stats' && o.connections === 0 && o.accepted === 1);
    expect((await stop(srv)).httpErrors).toBe(1);
  });

  it('shares a port chosen with :0 between two processes', async () => {
    const { srv, listening, port } = await start(['--listen', '127.0.0.1:0', '--procs', '2']);
    expect(listening.procs).toBe(2);
    const data = Buffer.alloc(70_000, 1);
    await Promise.all(Array.from({ length: 8 }, () => send({ port, host: '127.0.0.1' }, data)));
    await srv.waitJson((o) => o.type === 'stats' && o.rxBytes === 8 * data.length && o.connections === 0);
    const sum = await stop(srv);
    expect(sum).toMatchObject({ rxBytes: 8 * data.length, accepted: 8, closed: 8 });
  });

  itWithTool('systemd-socket-activate', 'serves a datagram socket passed by systemd-socket-activate', async () => {
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
    const port = probe.address().port;
    await new Promise<void>((r) => probe.close(r));
    const srv = run(['--json', '--threads', '2', '--stats', '0.1'], ['systemd-socket-activate', '--datagram', '-l', `127.0.0.1:${port}`, process.execPath, MAIN]);
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (!srv.stderr().includes('Listening on')) return;
        srv.cp.stderr!.off('data', check);
        resolve();
      };
      srv.cp.stderr!.on('data', check);
      check();
    });
    // The first datagram makes the activator start srv; it waits in the socket's queue.
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r, j) => sock.send(Buffer.alloc(64), port, '127.0.0.1', (e) => (e ? j(e) : r())));
    sock.close();
    const listening = await srv.waitJson((o) => o.type === 'listening');
    expect(listening.addresses).toEqual([expect.objectContaining({ proto: 'udp', port, fd: 3 })]);
    await srv.waitJson((o) => o.type === 'stats' && o.datagramsIn === 1);
    expect((await stop(srv)).rxBytes).toBe(64);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input over real sockets: slow heads, oversized heads and bodies.

/** A file for --mode file to serve, under its own root. */
function wwwRoot(): { root: string; body: string } {
  const root = join(tmp, 'www');
  const body = '<p>served</p>\n';
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'index.html'), body);
  return { root, body };
}

const modeArgs = (mode: 'http' | 'file'): string[] => (mode === 'http' ? ['--mode', 'http'] : ['--mode', 'file', '--root', wwwRoot().root]);
const expectedBody = (mode: 'http' | 'file'): string => (mode === 'http' ? 'ok\n' : wwwRoot().body);

/** What a connection got back and whether the server closed it (sent its FIN) by itself. */
interface Reply {
  text: string;
  serverEnded: boolean;
}

/** Sends `data` without ending, and collects the reply until the server closes the connection. */
function untilServerCloses(port: number, data: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let serverEnded = false;
    const c = net.connect({ port, host: '127.0.0.1' }, () => c.write(data));
    c.on('data', (b) => got.push(b));
    c.on('end', () => (serverEnded = true));
    c.on('error', reject);
    c.on('close', () => resolve({ text: Buffer.concat(got).toString('latin1'), serverEnded }));
  });
}

/**
 * A client that sends `bytes` one byte every `everyMs` and never completes a request. Resolves
 * when the server has closed the connection, with the reply and how long after the first byte
 * that was; gives up (closing it itself) after `limitMs`.
 */
function slowClient(port: number, bytes: Buffer, everyMs: number, limitMs: number): Promise<{ text: string; afterMs: number; serverEnded: boolean; leftAtEnd: number }> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let sent = 0;
    let first = 0;
    let serverEnded = false;
    let leftAtEnd = -1;
    let timer: NodeJS.Timeout | undefined;
    const limit = setTimeout(() => c.destroy(), limitMs);
    const c = net.connect({ port, host: '127.0.0.1' }, () => {
      first = performance.now();
      const next = (): void => {
        if (sent < bytes.length && !serverEnded && c.writable) c.write(bytes.subarray(sent, ++sent));
      };
      next();
      timer = setInterval(next, everyMs);
    });
    c.on('data', (b) => got.push(b));
    c.on('end', () => {
      serverEnded = true;
      leftAtEnd = bytes.length - sent;
      clearInterval(timer);
    });
    c.on('error', (e) => {
      clearInterval(timer);
      clearTimeout(limit);
      reject(e);
    });
    c.on('close', () => {
      clearInterval(timer);
      clearTimeout(limit);
      resolve({ text: Buffer.concat(got).toString('latin1'), afterMs: performance.now() - first, serverEnded, leftAtEnd });
    });
  });
}

/**
 * One keep-alive connection asking `GET path` again and again, each request once the previous
 * answer is complete, until `done` settles (or `max` requests). Checks every answer.
 */
async function steadyClient(port: number, path: string, body: string, done: Promise<unknown>, max = 5000): Promise<{ served: number }> {
  const c = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((r, j) => c.once('connect', r).once('error', j));
  let stop = false;
  void done.finally(() => (stop = true));
  let buf = Buffer.alloc(0);
  let served = 0;
  const closed = new Promise<void>((r) => c.once('close', () => r()));
  try {
    while (!stop && served < max) {
      c.write(`GET ${path} HTTP/1.1\r\nHost: steady\r\n\r\n`);
      // Wait for one whole response: its head, then Content-Length bytes of body.
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end >= 0) {
          const head = buf.toString('latin1', 0, end);
          const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]);
          if (buf.length >= end + 4 + length) {
            expect(head).toMatch(/^HTTP\/1\.1 200 /);
            expect(buf.toString('latin1', end + 4, end + 4 + length)).toBe(body);
            buf = buf.subarray(end + 4 + length);
            break;
          }
        }
        const more = await Promise.race([new Promise<Buffer>((r) => c.once('data', r)), closed.then(() => undefined)]);
        if (more === undefined) throw new Error(`the steady client's connection was closed after ${served} answers`);
        buf = Buffer.concat([buf, more]);
      }
      served++;
    }
  } finally {
    c.end();
    await closed;
  }
  return { served };
}

describe('iapp-srv under bad input', () => {
  for (const mode of ['http', 'file'] as const) {
    it(`${mode} mode: 50 slowloris connections all get 408 and are closed at --header-timeout, while a normal client is served`, async () => {
      const { srv, port } = await start(['--listen', '127.0.0.1:0', ...modeArgs(mode), '--header-timeout', '1']);
      // 40 dribble a header that never ends; 10 dribble only empty lines, which a server must
      // skip before a request line and so may not treat as a head.
      const head = Buffer.from(`GET /slow HTTP/1.1\r\nX-Slow: ${'a'.repeat(40)}`);
      const blank = Buffer.from('\r\n'.repeat(30));
      // A client the server never closes gives up after 8 s, and the test fails on it.
      const slow = Array.from({ length: 50 }, (_, i) => slowClient(port, i < 40 ? head : blank, 100, 8000));
      const all = Promise.all(slow);
      const steady = await steadyClient(port, mode === 'http' ? '/' : '/index.html', expectedBody(mode), all);
      const results = await all;
      for (const [i, r] of results.entries()) {
        expect(r.text, `slow client ${i}`).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
        expect(r.serverEnded, `slow client ${i}`).toBe(true);
        // Not before the timeout (timers fire late, never early; 50 ms for the client starting
        // its clock after the server), and closed by the timeout, not by the head running out:
        // the client still had bytes to dribble when the server ended (each has 6 s or more of
        // them). No upper bound in seconds: a loaded machine may be late, never wrong.
        expect(r.afterMs, `slow client ${i}`).toBeGreaterThanOrEqual(950);
        expect(r.leftAtEnd, `slow client ${i}: bytes it had not sent when the server ended`).toBeGreaterThan(0);
      }
      // Served while the slow connections were open (it asks until the last of them closes, 950 ms
      // or more): answers, each checked, not a speed.
      expect(steady.served).toBeGreaterThanOrEqual(3);
      await srv.waitJson((o) => o.type === 'stats' && o.connections === 0 && o.accepted === 51, 'stats with every connection closed');
      const sum = await stop(srv);
      expect(sum).toMatchObject({ accepted: 51, closed: 51, httpErrors: 50, requests: steady.served });
    });

    it(`${mode} mode: 431 for a head over 8 KiB, 413 for a body over --max-body, and the server closes each connection`, async () => {
      const { srv, port } = await start(['--listen', '127.0.0.1:0', ...modeArgs(mode), '--max-body', '1k']);
      const big = await untilServerCloses(port, `GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${'b'.repeat(9000)}`);
      expect(big.text).toMatch(/^HTTP\/1\.1 431 /);
      expect(big.text).toContain('Connection: close');
      expect(big.serverEnded).toBe(true);
      // Declared, not sent: the answer must not wait for the body.
      for (const length of ['1025', '99999999999999999999']) {
        const r = await untilServerCloses(port, `GET / HTTP/1.1\r\nHost: t\r\nContent-Length: ${length}\r\n\r\n`);
        expect(r.text, length).toMatch(/^HTTP\/1\.1 413 Content Too Large\r\n/);
        expect(r.text).toContain('Connection: close');
        expect(r.serverEnded).toBe(true);
      }
      let expectedRequests = 0;
      if (mode === 'http') {
        // At the limit, the body is read past and the next request answered.
        const ok = await untilServerCloses(port, `POST / HTTP/1.1\r\nContent-Length: 1024\r\n\r\n${'x'.repeat(1024)}GET / HTTP/1.1\r\nConnection: close\r\n\r\n`);
        expect([...ok.text.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => m[1])).toEqual(['200', '200']);
        expectedRequests = 2;
      }
      await srv.waitJson((o) => o.type === 'stats' && o.connections === 0 && o.requests === expectedRequests, 'stats with every connection closed');
      const sum = await stop(srv);
      expect(sum).toMatchObject({ httpErrors: 3, requests: expectedRequests });
    });
  }

  it('refuses --max-body outside http and file modes, and values that are no size', () => {
    for (const [args, msg] of [
      [['--max-body', '1k'], /--max-body is for --mode http or file/],
      [['--mode', 'http', '--max-body', 'lots'], /--max-body lots: not a whole number/],
      [['--mode', 'http', '--max-body=-1'], /--max-body -1: not a whole number/],
    ] as [string[], RegExp][]) {
      const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });
});

describe('listenFds (socket activation variables)', () => {
  it('returns the passed fds with their names and unsets the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:dns', OTHER: 'x' };
    // fds 3 and 4 of this test process are whatever vitest opened: each is said to be something.
    const kinds = ['listening', 'connected', 'stream', 'datagram', 'other'];
    const got = listenFds(env, 42);
    expect(got).toEqual([expect.objectContaining({ fd: 3, name: 'web' }), expect.objectContaining({ fd: 4, name: 'dns' })]);
    for (const a of got) expect(kinds).toContain(a.kind);
    expect(env).toEqual({ OTHER: 'x' });
  });

  it('ignores variables meant for another process, and names of the wrong count', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '41', LISTEN_FDS: '1' };
    expect(listenFds(env, 42)).toEqual([]);
    expect(env).toEqual({});
    expect(listenFds({ LISTEN_PID: '42', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b' }, 42)).toEqual([expect.objectContaining({ fd: 3, name: 'unknown' })]);
    expect(listenFds({}, 42)).toEqual([]);
  });

  it('throws on malformed variables', () => {
    expect(() => listenFds({ LISTEN_PID: 'me', LISTEN_FDS: '1' }, 42)).toThrow(/LISTEN_PID/);
    expect(() => listenFds({ LISTEN_PID: '42', LISTEN_FDS: 'two' }, 42)).toThrow(/LISTEN_FDS/);
    // More fds than this process has open: one of them is not.
    expect(() => listenFds({ LISTEN_PID: '42', LISTEN_FDS: '4000' }, 42)).toThrow(/LISTEN_FDS says 4000 sockets were passed, but fd \d+ is not open/);
  });
});

// ---------------------------------------------------------------------------------------------
// Sockets a service manager passes: connections (Accept=yes, inetd) and sharing by processes.

/** A TCP port free on 127.0.0.1 now (for a tool that must bind it itself). */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return port;
}

/** Starts systemd-socket-activate on a free port with srv behind it and waits until it listens. */
async function activator(toolArgs: string[], srvArgs: string[]): Promise<{ act: Srv; port: number }> {
  const port = await freePort();
  const act = run(srvArgs, ['systemd-socket-activate', '-l', `127.0.0.1:${port}`, ...toolArgs, process.execPath, MAIN]);
  await waitStderr(act, (e) => e.includes('Listening on'));
  return { act, port };
}

/** Resolves once the process's stderr so far satisfies `pred`. */
function waitStderr(p: Srv, pred: (err: string) => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const check = (): void => {
      if (!pred(p.stderr())) return;
      p.cp.stderr!.off('data', check);
      resolve();
    };
    p.cp.stderr!.on('data', check);
    check();
  });
}

/** The JSON records among text lines (srv's --json output mixed with a tool's messages). */
const records = (text: string): Json[] =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Json);

/** What one connection sends in each mode, what it must get back, and the bytes srv counts. */
function modeCases(): { mode: string[]; send: Buffer; back: (b: Buffer) => void; rx: number }[] {
  const www = wwwRoot();
  const data = randomBytes(100_000);
  const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: t\r\n\r\n`;
  return [
    { mode: ['--mode', 'sink'], send: data, back: (b: Buffer) => expect(b.length).toBe(0), rx: data.length },
    { mode: ['--mode', 'data'], send: data, back: (b: Buffer) => expect(b.length).toBe(0), rx: data.length },
    { mode: ['--mode', 'echo'], send: data, back: (b: Buffer) => expect(b.equals(data)).toBe(true), rx: data.length },
    {
      mode: ['--mode', 'http'],
      send: Buffer.from(get('/a') + get('/b')),
      back: (b: Buffer) => expect(b.toString('latin1').match(/HTTP\/1\.1 200 /g)).toHaveLength(2),
      rx: 2 * get('/a').length,
    },
    {
      mode: ['--mode', 'file', '--root', www.root],
      send: Buffer.from(get('/index.html')),
      back: (b: Buffer) => expect(b.toString('latin1')).toMatch(new RegExp(`^HTTP/1\\.1 200 [^]*${www.body}$`)),
      rx: get('/index.html').length,
    },
  ];
}

describe('iapp-srv with passed connections', () => {
  itWithTool('systemd-socket-activate', 'serves each connection of systemd-socket-activate --accept in every mode, and exits when it closes', async () => {
    const cases = modeCases();
    await Promise.all(
      cases.map(async (c) => {
        const { act, port } = await activator(['--accept'], ['--json', ...c.mode]);
        // Two connections: a process each, each exiting when its connection closes.
        const backs = await Promise.all([exchange({ port, host: '127.0.0.1' }, c.send), exchange({ port, host: '127.0.0.1' }, c.send)]);
        for (const b of backs) c.back(b);
        await act.waitJson((o) => o.type === 'summary' && act.lines.filter((l) => l.includes('"summary"')).length === 2, 'two summaries');
        const sums = act.lines.map((l) => JSON.parse(l) as Json).filter((o) => o.type === 'summary');
        for (const s of sums) {
          expect(s.reason).toBe('the passed connection closed');
          expect(s).toMatchObject({ passed: 1, accepted: 0, closed: 1, rxBytes: c.rx, threads: 1, errors: {} });
        }
        const listening = act.lines.map((l) => JSON.parse(l) as Json).find((o) => o.type === 'listening')!;
        expect(listening.addresses[0]).toMatchObject({ proto: 'tcp', address: '127.0.0.1', fd: 3, connection: true });
        await waitStderr(act, (e) => (e.match(/died with code 0/g) ?? []).length === 2);
        act.cp.kill('SIGTERM');
        await act.exit;
      }),
    );
  });

  itWithTool('systemd-socket-activate', '--inetd: serves the connection on fd 0 with its output on stderr, or a listening fd 0 until --idle-exit', async () => {
    // "nowait": the connection is stdin and stdout; nothing but the echo may reach the peer.
    const data = randomBytes(50_000);
    const nowait = await activator(['--accept', '--inetd'], ['--inetd', '--json', '--mode', 'echo']);
    expect((await exchange({ port: nowait.port, host: '127.0.0.1' }, data)).equals(data)).toBe(true);
    await waitStderr(nowait.act, (e) => e.includes('died with code'));
    const sum = records(nowait.act.stderr()).find((o) => o.type === 'summary')!;
    expect(sum).toMatchObject({ reason: 'the passed connection closed', passed: 1, rxBytes: data.length, txBytes: data.length });
    expect(nowait.act.stderr()).toContain('died with code 0');
    expect(nowait.act.lines).toEqual([]);
    nowait.act.cp.kill('SIGTERM');
    await nowait.act.exit;

    // "wait": the listening socket is stdin; srv accepts on it until idle.
    // Idle 2 s between the two exchanges is more than a loaded machine needs.
    const wait = await activator(['--inetd'], ['--inetd', '--json', '--mode', 'http', '--idle-exit', '2', '--stats', '0.1']);
    for (let i = 0; i < 2; i++) {
      const back = await exchange({ port: wait.port, host: '127.0.0.1' }, 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', false);
      expect(back.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    }
    expect((await wait.act.exit).code).toBe(0);
    const waitSum = records(wait.act.stderr()).find((o) => o.type === 'summary')!;
    expect(waitSum).toMatchObject({ reason: 'idle for 2 s', accepted: 2, requests: 2 });
    expect(waitSum.passed).toBeUndefined();
  });

  itWithTool('systemd-socket-activate', '--inetd nowait in the sink, data, http and file modes: the peer gets only what the mode answers', async () => {
    // The connection is fds 0 and 1: a byte of srv's own output there would reach the peer.
    await Promise.all(
      modeCases()
        .filter((c) => c.mode[1] !== 'echo') // echo: the test above
        .map(async (c) => {
          const { act, port } = await activator(['--accept', '--inetd'], ['--inetd', '--json', ...c.mode]);
          c.back(await exchange({ port, host: '127.0.0.1' }, c.send));
          await waitStderr(act, (e) => e.includes('died with code'));
          expect(act.stderr()).toContain('died with code 0');
          expect(records(act.stderr()).find((o) => o.type === 'summary')).toMatchObject({ reason: 'the passed connection closed', passed: 1, closed: 1, rxBytes: c.rx, errors: {} });
          expect(act.lines).toEqual([]);
          act.cp.kill('SIGTERM');
          await act.exit;
        }),
    );
  });

  itWithTool('systemd-socket-activate', '--inetd wait: a datagram socket on fd 0 in the data and echo modes, a listening one in file mode', async () => {
    const udpPort = async (): Promise<number> => {
      const probe = dgram.createSocket('udp4');
      await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
      const port = probe.address().port;
      await new Promise<void>((r) => probe.close(r));
      return port;
    };
    // Without --accept the activator execs srv in its place at the first datagram or connection,
    // so SIGTERM reaches srv itself, which prints its summary (to stderr) and exits 0.
    const stopInetd = async (act: Srv): Promise<Json> => {
      act.cp.kill('SIGTERM');
      expect((await act.exit).code).toBe(0);
      expect(act.lines).toEqual([]);
      return records(act.stderr()).find((o) => o.type === 'summary')!;
    };
    const datagrams = async (mode: 'data' | 'echo'): Promise<void> => {
      const port = await udpPort();
      const act = run(['--inetd', '--json', '--stats', '0.1', '--mode', mode], ['systemd-socket-activate', '--datagram', '--inetd', '-l', `127.0.0.1:${port}`, process.execPath, MAIN]);
      await waitStderr(act, (e) => e.includes('Listening on'));
      const sock = dgram.createSocket('udp4');
      const echoed: Buffer[] = [];
      sock.on('message', (m) => echoed.push(m));
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      try {
        const sent = Array.from({ length: 10 }, (_, i) => Buffer.alloc(50 + i, i));
        for (const d of sent) await new Promise<void>((r, j) => sock.send(d, port, '127.0.0.1', (e) => (e ? j(e) : r())));
        await waitStderr(act, (e) => records(e).some((o) => o.type === 'stats' && o.datagramsIn === sent.length));
        const listening = records(act.stderr()).find((o) => o.type === 'listening')!;
        expect(listening.addresses).toEqual([expect.objectContaining({ proto: 'udp', port, fd: 0, name: 'inetd' })]);
        const total = sent.reduce((n, d) => n + d.length, 0);
        if (mode === 'echo') {
          await waitStderr(act, (e) => records(e).some((o) => o.type === 'stats' && o.txBytes === total));
          await vi.waitFor(() => expect(echoed).toHaveLength(sent.length), { timeout: 10_000 });
          expect(echoed.map((b) => b.toString('hex')).sort()).toEqual(sent.map((b) => b.toString('hex')).sort());
        }
        expect(await stopInetd(act)).toMatchObject({ datagramsIn: sent.length, rxBytes: total, jsBytes: total, txBytes: mode === 'echo' ? total : 0 });
      } finally {
        sock.close();
      }
    };
    const fileWait = async (): Promise<void> => {
      const [c] = modeCases().filter((x) => x.mode[1] === 'file');
      const { act, port } = await activator(['--inetd'], ['--inetd', '--json', '--stats', '0.1', ...c!.mode]);
      for (let i = 0; i < 2; i++) c!.back(await exchange({ port, host: '127.0.0.1' }, c!.send));
      await waitStderr(act, (e) => records(e).some((o) => o.type === 'stats' && o.accepted === 2 && o.connections === 0));
      expect(await stopInetd(act)).toMatchObject({ accepted: 2, closed: 2, requests: 2, rxBytes: 2 * c!.rx });
    };
    await Promise.all([datagrams('data'), datagrams('echo'), fileWait()]);
  });

  it('refuses --inetd without a socket on fd 0, and --procs 2 with a passed connection', async () => {
    // (Not a pipe for stdin: Node makes those from socket pairs, which are connections.)
    const file = openSync(join(tmp, 'not-a-socket'), 'w+');
    try {
      const notSocket = spawnSync(process.execPath, [MAIN, '--inetd'], { stdio: [file, 'ignore', 'pipe'], encoding: 'utf8', timeout: 10_000 });
      expect(notSocket.status).toBe(2);
      expect(notSocket.stderr).toMatch(/--inetd: fd 0 is not a socket/);
    } finally {
      closeSync(file);
    }

    const server = net.createServer((c) => c.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const conn = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => conn.once('connect', r));
    try {
      const cp = track(spawn(process.execPath, [MAIN, '--inetd', '--procs', '2', '--threads', '2'], { stdio: [conn, 'ignore', 'pipe'] }));
      let err = '';
      cp.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const code = await new Promise<number | null>((r) => cp.on('close', r));
      expect(code).toBe(2);
      expect(err).toMatch(/--procs 2: a passed connection is served by one process/);
    } finally {
      conn.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  itWithTool('systemd-socket-activate', 'serves a passed listening socket from both processes with --procs 2', async () => {
    const { act, port } = await activator([], ['--json', '--procs', '2', '--threads', '2', '--stats', '0.1', '--verbose']);
    // Connections held open in batches until both processes have accepted some (bounded).
    const held: net.Socket[] = [];
    const open = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1', () => resolve());
        c.on('error', reject);
        held.push(c);
      });
    let procs = new Set<number>();
    try {
      for (let batch = 0; batch < 30 && procs.size < 2; batch++) {
        await Promise.all(Array.from({ length: 16 }, open));
        const st = await act.waitJson((o) => o.type === 'stats' && o.accepted === held.length, `stats with ${held.length} accepted`);
        procs = new Set((st.perThread as Json[]).filter((t) => t.accepted > 0).map((t) => t.proc as number));
      }
      expect([...procs].sort()).toEqual([0, 1]);
    } finally {
      for (const c of held) c.destroy();
    }
    await act.waitJson((o) => o.type === 'stats' && o.connections === 0);
    const sum = await stop(act);
    expect(sum).toMatchObject({ procs: 2, accepted: held.length, closed: held.length });
  });
});
