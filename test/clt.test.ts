// iapp-clt: flag and preflight errors, push and echo against a node:net peer (bytes reconcile
// exactly), Unix targets, several processes, a refused target, and the summary on SIGTERM.
//
// What it proves: preflight (fd and port limits, the suggested --procs/--source), bad flags, push
// and echo against a node:net peer with exact counts, latency percentiles in order, a refused
// target (one line, exit 1), SIGTERM, human output.
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { connectionsPerPair, parseFileLimit, parsePortRange, preflight, procsNeeded } from '../dist/clt/preflight.js';
import { killAll, run } from './proc.js';

const CLT = 'dist/clt/main.js';
const SINK = 'test/fixtures/clt-sink.mjs';
const machine = { fileLimit: 20_000, portRange: { low: 32768, high: 60999 } };
const local = { host: '127.0.0.1', port: 7000 };
const plan = { threads: 8, procs: 1, conns: 4096, targets: [local], sources: [] as string[], udp: false };

afterEach(killAll);

/** Starts the node:net peer and returns it with where it listens. */
async function sink(args: string[] = []) {
  const p = run(SINK, args);
  const l = await p.json('listening');
  return { p, target: l.path ? `unix:${l.path}` : `127.0.0.1:${l.port}` };
}

/** Stops the peer (it waits for its connections to close) and returns its summary. */
async function sinkSummary(p: ReturnType<typeof run>) {
  p.child.kill('SIGTERM');
  return p.json('summary');
}

describe('preflight', () => {
  it('reads the limits the way /proc writes them', () => {
    expect(parseFileLimit('Max cpu time    unlimited   unlimited   seconds\nMax open files            1024                 20000                files     \n')).toBe(20000);
    expect(parsePortRange('32768\t60999\n')).toEqual({ low: 32768, high: 60999 });
    expect(parsePortRange('nonsense')).toBeUndefined();
  });

  it('refuses more sockets than one process may open and computes --procs', () => {
    const v = preflight(plan, machine);
    expect(v.error).toMatch(/32,832 open files.*limit is 20,000.*RLIMIT_NOFILE.*--procs 2/);
    expect(procsNeeded(8, 4096, 20_000)).toBe(2);
    expect(preflight({ ...plan, procs: 2, sources: ['127.0.0.1', '127.0.0.2'] }, machine).error).toBeUndefined();
  });

  it('suggests more, smaller threads when one thread alone is too many', () => {
    const v = preflight({ ...plan, threads: 2, conns: 20_000 }, machine);
    expect(v.error).toMatch(/limit is 20,000/);
    expect(v.error).toMatch(/--threads 3 --procs 3 --conns 13334/);
  });

  it('refuses more connections per source and target than there are ephemeral ports', () => {
    const v = preflight({ ...plan, procs: 2 }, machine);
    expect(v.error).toMatch(/32,768 connections from one local address to 127\.0\.0\.1:7000 need 32,768 local ports.*28,232.*--source 127\.0\.0\.1 --source 127\.0\.0\.2/);
    // Two targets halve the need per pair; it still uses more than half the range: a warning.
    const two = preflight({ ...plan, procs: 2, targets: [local, { host: '127.0.0.2', port: 7000 }] }, machine);
    expect(two.error).toBeUndefined();
    expect(two.warnings.join()).toMatch(/more than half/);
  });

  it('counts no ports for Unix targets and spreads evenly over every source and target pair', () => {
    expect(preflight({ ...plan, procs: 2, targets: [{ path: '/tmp/x.sock' }] }, machine).error).toBeUndefined();
    const pairs = connectionsPerPair(10, [local, { host: '127.0.0.2', port: 7000 }], ['127.0.0.1', '127.0.0.3']);
    expect([...pairs.values()].sort()).toEqual([2, 2, 3, 3]);
  });

  it('rejects a source of another family than the target', () => {
    expect(preflight({ ...plan, conns: 1, sources: ['::1'] }, machine).error).toMatch(/one family/);
  });
});

describe('flags', () => {
  it.each([
    [['--bogus'], /Unknown option '--bogus'/],
    [['--mode', 'pull'], /--mode pull: must be one of push, echo/],
    [['--threads', '0'], /--threads 0: must be from 1/],
    [['--threads', '2', '--procs', '3'], /--procs 3: at most --threads/],
    [['--udp', '--size', '65508'], /at most 65507 bytes/],
    [['--target', 'localhost'], /--target localhost: no port/],
    [['--source', 'example.com'], /not a numeric IPv4 or IPv6 address/],
    [['extra'], /Unexpected argument 'extra'/],
  ])('%j: one line on stderr, exit 2', async (args, message) => {
    const p = run(CLT, args);
    const { code } = await p.exited;
    expect(code).toBe(2);
    expect(p.stderr()).toMatch(message);
    expect(p.stderr().trim().split('\n')).toHaveLength(1);
    expect(p.lines).toEqual([]);
  });

  it('--help prints usage and exits 0', async () => {
    const p = run(CLT, ['--help']);
    expect((await p.exited).code).toBe(0);
    expect(p.lines.join('\n')).toMatch(/--target HOST:PORT[\s\S]*--json/);
  });

  it('refuses a run that cannot fit before opening anything', async () => {
    const p = run(CLT, ['--conns', '20000', '--threads', '2', '--procs', '1', '--target', '127.0.0.1:9']);
    expect((await p.exited).code).toBe(2);
    expect(p.stderr()).toMatch(/limit is 20,000 per process \(RLIMIT_NOFILE/);
    expect(p.stderr()).toMatch(/--procs 3/);
  });
});

describe('runs', () => {
  const common = ['--json', '--threads', '2', '--conns', '4', '--rate', '1000'];

  it('push over TCP: every byte sent is received, JSON lines only', async () => {
    const s = await sink();
    const c = run(CLT, [...common, '--duration', '1.5', '--target', s.target]);
    const stats = await c.json('stats');
    expect(stats.connections).toBeLessThanOrEqual(8);
    const sum = await c.json('summary');
    expect((await c.exited).code).toBe(0);
    for (const l of c.lines) expect(() => JSON.parse(l)).not.toThrow();
    expect(sum).toMatchObject({ connected: 8, failed: 0, peakConnections: 8, threads: 2, procs: 1, errors: {}, complete: true });
    expect(sum.txBytes).toBeGreaterThan(0);
    expect(Number.isInteger(sum.txBytes)).toBe(true);
    expect((await sinkSummary(s.p)).rxBytes).toBe(sum.txBytes);
  });

  it('push over a Unix socket from two processes: every byte sent is received', async () => {
    const s = await sink(['--unix', join(tmpdir(), `clt-test-${process.pid}.sock`)]);
    const c = run(CLT, ['--json', '--threads', '3', '--procs', '2', '--conns', '3', '--rate', '1000', '--duration', '1', '--target', s.target]);
    const sum = await c.json('summary');
    expect((await c.exited).code).toBe(0);
    expect(sum).toMatchObject({ connected: 9, failed: 0, threads: 3, procs: 2 });
    expect((await sinkSummary(s.p)).rxBytes).toBe(sum.txBytes);
  });

  it('echo: latency percentiles in µs, in order, and every byte comes back', async () => {
    const s = await sink(['--echo']);
    const c = run(CLT, [...common, '--duration', '1', '--mode', 'echo', '--size', '1k', '--target', s.target]);
    const sum = await c.json('summary');
    expect((await c.exited).code).toBe(0);
    const l = sum.latencyUs;
    expect(sum.responses).toBeGreaterThan(0);
    expect(l.p50).toBeGreaterThan(0);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p90).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.p999);
    expect(l.p999).toBeLessThanOrEqual(l.max);
    expect(l.max).toBeLessThan(5_000_000);
    expect(sum.rxBytes).toBe(sum.txBytes);
    expect((await sinkSummary(s.p)).rxBytes).toBe(sum.txBytes);
  });

  it('a refused target: one clear line and exit 1', async () => {
    // A port that was free a moment ago: nothing listens there now.
    const srv = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const c = run(CLT, ['--threads', '1', '--conns', '2', '--target', `127.0.0.1:${port}`]);
    expect((await c.exited).code).toBe(1);
    const lines = c.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: ECONNREFUSED .*Is iapp-srv running\\?`));
  });

  it('runs until SIGTERM, then ends its connections and prints the summary', async () => {
    const s = await sink();
    const c = run(CLT, [...common, '--stats', '0.2', '--target', s.target]);
    await c.line((l) => l.includes('"type":"stats"') && JSON.parse(l).connections === 8, 'all connections open');
    c.child.kill('SIGTERM');
    const sum = await c.json('summary');
    expect((await c.exited).code).toBe(0);
    expect(sum.connected).toBe(8);
    expect(sum.dropped).toBe(0);
    expect((await sinkSummary(s.p)).rxBytes).toBe(sum.txBytes);
  });

  it('human output: header, interval lines and a summary table', async () => {
    const s = await sink();
    // Runs until an interval line shows both connections, then SIGTERM: no run length the
    // interval line must fit in, however slow the machine.
    const c = run(CLT, ['--threads', '1', '--conns', '2', '--rate', '1000', '--stats', '0.2', '--target', s.target]);
    await c.line((l) => /^\s+\d+\.\d s {2}conns 2 {2}tx /.test(l), 'an interval line with both connections open');
    c.child.kill('SIGTERM');
    expect((await c.exited).code).toBe(0);
    const text = c.lines.join('\n');
    expect(text).toMatch(/^iapp-clt: 2 connections \(1 thread × 2\) to 127\.0\.0\.1:\d+, push/);
    expect(text).toMatch(/all 2 connections open after/);
    expect(text).toMatch(/established\s+2\s+peak 2 open at once/);
    expect(text).toMatch(/sent\s+[\d.]+ [kMG]?B\s+[\d,]+ bytes, [\d.]+ [kMG]?bit\/s/);
    await sinkSummary(s.p);
  });
});
