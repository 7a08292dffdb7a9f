// The command lines of iapp-srv, iapp-clt and iapp-proxy, read without starting a process: each
// program's parse(argv) gives its config for good flags and, for each bad one, a UsageError that
// names the flag and says what it takes. Then the one way all three end on a bad flag (runCli),
// and the per-thread totals helper they share.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { UsageError } from '../dist/src/cli/args.js';
import { addCounters, totals } from '../dist/src/cli/totals.js';
import { parse as parseClt } from '../dist/clt/config.js';
import { parse as parseSrv } from '../dist/srv/config.js';
import { MAX_BODY_BYTES } from '../dist/srv/http.js';
import { parse as parseProxy } from '../dist/srv/proxy-config.js';

const dir = mkdtempSync(join(tmpdir(), 'iapp-cli-parse-'));
writeFileSync(join(dir, 'file'), 'x');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The UsageError `fn` throws (the test fails if it throws nothing, or something else). */
function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('no UsageError was thrown');
}

describe('iapp-srv parse', () => {
  it('gives the defaults for an empty line, and help for --help whatever else is there', () => {
    expect(parseSrv([])).toEqual({
      tcp: [],
      udp: [],
      mode: 'sink',
      root: undefined,
      dotfiles: 'ignore',
      fileCache: 1024,
      fileCacheValidS: 1,
      threads: availableParallelism(),
      threadsGiven: false,
      procs: 1,
      accept: 'reuseport',
      durationS: undefined,
      idleExitS: undefined,
      statsS: 1,
      headerTimeoutS: 10,
      bodyTimeoutS: 60,
      keepaliveTimeoutS: 75,
      maxBodyBytes: MAX_BODY_BYTES,
      rcvlowat: undefined,
      maxConns: 0,
      maxConnsPerAddr: 0,
      unixMode: undefined,
      inetd: false,
      json: false,
      verbose: false,
      bus: undefined,
    });
    expect(parseSrv(['--help'])).toBe('help');
    expect(parseSrv(['-h', '--threads', '0'])).toBe('help');
  });

  it('reads every flag, short and long', () => {
    const c = parseSrv([
      '-l', '127.0.0.1:0', '--listen', 'unix:/tmp/x.sock', '-u', '[::1]:9', '-m', 'http', '-t', '4', '-p', '2',
      '--accept', 'shared', '-d', '1.5', '--idle-exit', '3', '-i', '0.5', '--header-timeout', '2', '--body-timeout', '4',
      '--keepalive-timeout', '6', '--max-body', '64k', '--max-conns', '10', '--max-conns-per-addr', '5', '--unix-mode', '660',
      '--inetd', '--json', '-v',
    ]);
    expect(c).toMatchObject({
      tcp: [{ host: '127.0.0.1', port: 0 }, { path: '/tmp/x.sock' }],
      udp: [{ host: '::1', port: 9 }],
      mode: 'http',
      threads: 4,
      threadsGiven: true,
      procs: 2,
      accept: 'shared',
      durationS: 1.5,
      idleExitS: 3,
      statsS: 0.5,
      headerTimeoutS: 2,
      bodyTimeoutS: 4,
      keepaliveTimeoutS: 6,
      maxBodyBytes: 65536,
      maxConns: 10,
      maxConnsPerAddr: 5,
      unixMode: 0o660,
      inetd: true,
      json: true,
      verbose: true,
    });
    expect(parseSrv(['--mode', 'file', '--root', dir, '--dotfiles', 'deny'])).toMatchObject({ mode: 'file', root: dir, dotfiles: 'deny' });
    expect(parseSrv(['--mode', 'file', '--root', dir, '--file-cache', '0', '--file-cache-valid', '0.5'])).toMatchObject({ fileCache: 0, fileCacheValidS: 0.5 });
    expect(parseSrv(['--rcvlowat', '1m', '--mode', 'data'])).toMatchObject({ rcvlowat: 1 << 20 });
  });

  it.each([
    [['--bogus'], /^Unknown option '--bogus'$/],
    [['stray'], /^Unexpected argument 'stray'/],
    [['--threads', '0'], /^--threads 0: must be from 1 to 1024$/],
    [['--threads', '2', '--procs', '3'], /^--procs 3: more processes than threads \(2\); raise --threads$/],
    [['--mode', 'nope'], /^--mode nope: must be one of sink, data, echo, http, file$/],
    [['--listen', '1.2.3.4'], /^--listen 1\.2\.3\.4: no port/],
    [['--udp', 'unix:/x'], /^--udp unix:\/x: UDP needs HOST:PORT$/],
    [['--accept', 'all'], /^--accept all: must be one of reuseport, shared$/],
    [['--mode', 'file'], /^--mode file needs --root DIR/],
    [['--mode', 'file', '--root', join(dir, 'none')], /^--root .*none: no such directory$/],
    [['--mode', 'file', '--root', join(dir, 'file')], /^--root .*file: not a directory$/],
    [['--root', dir], /^--root is for --mode file$/],
    [['--dotfiles', 'allow'], /^--dotfiles is for --mode file$/],
    [['--file-cache', '8'], /^--file-cache is for --mode file$/],
    [['--file-cache-valid', '2'], /^--file-cache-valid is for --mode file$/],
    [['--bus', 'nats://127.0.0.1:4222'], /--run/],
    [['--rcvlowat', '64k', '--mode', 'echo'], /^--rcvlowat is for --mode sink or data/],
    [['--max-body', '1k'], /^--max-body is for --mode http or file$/],
    [['--max-body', 'lots', '--mode', 'http'], /^--max-body lots: not a whole number/],
    [['--max-conns', '5', '--max-conns-per-addr', '6'], /^--max-conns-per-addr 6 is above --max-conns 5: it would never apply$/],
    [['--unix-mode', '999', '-l', 'unix:/tmp/x'], /^--unix-mode 999: permission bits in octal/],
    [['--unix-mode', '660'], /^--unix-mode is for a unix:\/path --listen address$/],
    [['--duration', 'soon'], /^--duration soon: must be a number of seconds above 0$/],
    [['--stats', '0'], /^--stats 0: must be a number of seconds above 0$/],
  ])('%j: a UsageError naming the flag', (argv, message) => {
    expect(usageError(() => parseSrv(argv)).message).toMatch(message);
  });
});

describe('iapp-clt parse', () => {
  it('gives the defaults for an empty line (one UDP socket with --udp), and help for --help', () => {
    expect(parseClt([])).toEqual({
      targets: [{ host: '127.0.0.1', port: 7000 }],
      sources: [],
      threads: 8,
      shard: { index: 0, count: 1, firstThread: 0, threads: 8, totalThreads: 8 },
      bus: undefined,
      expect: undefined,
      procs: 1,
      conns: 4096,
      rate: 128,
      size: 65536,
      mode: 'push',
      udp: false,
      durationS: undefined,
      statsS: 1,
      closeTimeoutS: 10,
      json: false,
      verbose: false,
    });
    expect(parseClt(['--udp', '--size', '1000'])).toMatchObject({ udp: true, conns: 1 });
    expect(parseClt(['--help', '--mode', 'pull'])).toBe('help');
  });

  it('reads every flag', () => {
    expect(
      parseClt([
        '--target', '10.0.0.1:80', '--target', 'unix:/run/s', '--source', '127.0.0.2', '--threads', '4', '--procs', '2',
        '--conns', '8k', '--rate', '1k', '--size', '1m', '--mode', 'echo', '--duration', '2', '--close-timeout', '0',
        '--stats', '0.25', '--json', '-v',
      ]),
    ).toEqual({
      targets: [{ host: '10.0.0.1', port: 80 }, { path: '/run/s' }],
      sources: ['127.0.0.2'],
      threads: 4,
      shard: { index: 0, count: 1, firstThread: 0, threads: 4, totalThreads: 4 },
      bus: undefined,
      expect: undefined,
      procs: 2,
      conns: 8192,
      rate: 1024,
      size: 1 << 20,
      mode: 'echo',
      udp: false,
      durationS: 2,
      statsS: 0.25,
      closeTimeoutS: 0,
      json: true,
      verbose: true,
    });
  });

  it.each([
    [['--bogus'], /^Unknown option '--bogus'$/],
    [['--mode', 'pull'], /^--mode pull: must be one of push, echo, hold, connect$/],
    [['--threads', '0'], /^--threads 0: must be from 1 to 1024$/],
    [['--threads', '2', '--procs', '3'], /^--procs 3: at most --threads \(2\)/],
    [['--conns', '0'], /^--conns 0: must be from 1 to 10000000$/],
    [['--rate', 'fast'], /^--rate fast: not a whole number \(suffixes k, m, g allowed\)$/],
    [['--target', 'localhost'], /^--target localhost: no port/],
    [['--source', 'example.com'], /^--source example\.com: not a numeric IPv4 or IPv6 address$/],
    [['--udp', '--size', '65508'], /^--size 65508: a UDP datagram carries at most 65507 bytes$/],
    [['--udp', '--mode', 'echo'], /^--mode echo is for TCP and Unix targets/],
    [['--udp', '--size', '100', '--target', 'unix:/x'], /^--target unix:\/x: --udp needs HOST:PORT targets$/],
    [['--udp', '--size', '100', '--source', '127.0.0.1'], /^--source is for TCP connections/],
    [['--close-timeout', 'never'], /^--close-timeout never: must be a number of seconds$/],
    [['--threads', '4', '--shard', '4/4'], /^--shard 4\/4: the index counts from 0/],
    [['--threads', '2', '--shard', '0/3'], /^--shard 0\/3: 3 shards but --threads 2/],
    [['--threads', '4', '--shard', '1/2', '--procs', '3'], /^--procs 3: at most this shard's threads \(2 of --threads 4\)/],
    [['--expect', '3'], /^--expect is for the controller/],
    [['--control', '--expect', '3'], /^--control needs --bus/],
    [['--udp'], /^--size 65536: a UDP datagram carries at most 65507 bytes$/],
  ])('%j: a UsageError naming the flag', (argv, message) => {
    expect(usageError(() => parseClt(argv)).message).toMatch(message);
  });
});

describe('iapp-proxy parse', () => {
  it('reads its flags, with defaults, and help for --help', () => {
    expect(parseProxy(['--target', '127.0.0.1:80'])).toEqual({
      targets: [{ host: '127.0.0.1', port: 80 }],
      listen: undefined,
      threads: availableParallelism(),
      connectTimeoutS: 10,
      maxConns: 0,
      maxConnsPerAddr: 0,
      unixMode: undefined,
      durationS: undefined,
      idleExitS: undefined,
      statsS: 1,
      json: false,
    });
    expect(parseProxy(['-l', 'unix:/run/p.sock', '-T', 'h:1', '--unix-mode', '0660'])).toMatchObject({ listen: { path: '/run/p.sock' }, unixMode: 0o660 });
    expect(
      parseProxy(['-l', ':8080', '-T', 'a.example:1', '-T', 'unix:/run/b', '-t', '2', '--connect-timeout', '3', '--max-conns', '9', '--max-conns-per-addr', '3', '-d', '5', '--idle-exit', '7', '-i', '2', '--json']),
    ).toEqual({
      listen: { host: '::', port: 8080 },
      targets: [{ host: 'a.example', port: 1 }, { path: '/run/b' }],
      threads: 2,
      connectTimeoutS: 3,
      maxConns: 9,
      maxConnsPerAddr: 3,
      unixMode: undefined,
      durationS: 5,
      idleExitS: 7,
      statsS: 2,
      json: true,
    });
    expect(parseProxy(['--help'])).toBe('help');
  });

  it.each([
    [[], /^--target HOST:PORT is required: where to send them$/],
    [['--target', '1.2.3.4'], /^--target 1\.2\.3\.4: no port/],
    [['--target', 'h:1', '--max-conns', '2', '--max-conns-per-addr', '3'], /^--max-conns-per-addr 3 is above --max-conns 2/],
    [['--target', 'h:1', '--connect-timeout', '0'], /^--connect-timeout 0: must be a number of seconds above 0$/],
    [['--target', 'h:1', '--listen', 'nowhere'], /^--listen nowhere: no port/],
    [['--target', 'h:1', '--threads', 'many'], /^--threads many: not a whole number$/],
    [['--target', 'h:1', '--listen', 'unix:/tmp/x', '--unix-mode', 'rw'], /^--unix-mode rw: permission bits in octal/],
    [['--target', 'h:1', '--listen', ':80', '--unix-mode', '660'], /^--unix-mode is for a unix:\/path --listen address$/],
  ])('%j: a UsageError naming the flag', (argv, message) => {
    expect(usageError(() => parseProxy(argv)).message).toMatch(message);
  });
});

describe('runCli', () => {
  it.each([
    ['iapp-srv', 'dist/srv/main.js', []],
    ['iapp-clt', 'dist/clt/main.js', []],
    ['iapp-proxy', 'dist/srv/proxy.js', ['--target', '127.0.0.1:9']],
  ])('%s: a bad flag is one line on stderr naming the program and --help, and exit code 2', (program, script, more) => {
    const r = spawnSync(process.execPath, [script, ...more, '--threads', '0'], { encoding: 'utf8', timeout: 15_000 });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${program}: --threads 0: must be from 1 to 1024 (see ${program} --help)\n`);
  });
});

describe('totals over threads', () => {
  it('sums numbers and maps of numbers into the fields the total has, and leaves the rest', () => {
    const into = { a: 1, errors: { EPIPE: 1 } as Record<string, number>, label: 'x' };
    addCounters(into, { a: 2, errors: { EPIPE: 2, ECONNRESET: 1 }, label: 'y', other: 5 } as Partial<typeof into>);
    expect(into).toEqual({ a: 3, errors: { EPIPE: 3, ECONNRESET: 1 }, label: 'x' });
    expect(addCounters(into, undefined)).toBe(into);
  });

  it('totals rows by what pick() takes from each', () => {
    const rows = [
      { bytesIn: 10, app: { n: 1 } },
      { bytesIn: 5, app: undefined },
    ];
    const t = totals(rows, () => ({ rx: 0, n: 0 }), (r) => ({ rx: r.bytesIn, ...r.app }));
    expect(t).toEqual({ rx: 15, n: 1 });
  });
});
