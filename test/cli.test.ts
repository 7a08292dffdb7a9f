// The flag values srv and clt share: endpoints, integers with units, seconds, and how threads
// spread over processes.
import { describe, expect, it } from 'vitest';

import { MAX_SECONDS, UsageError, formatEndpoint, parseEndpoint, parseFlags, parseInteger, parseSeconds } from '../dist/src/cli/args.js';
import { threadsOf } from '../dist/src/cli/spread.js';

describe('parseEndpoint', () => {
  it('reads IPv4, bracketed IPv6, a bare port, a name and a Unix path', () => {
    expect(parseEndpoint('listen', '127.0.0.1:7000')).toEqual({ host: '127.0.0.1', port: 7000 });
    expect(parseEndpoint('listen', '[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseEndpoint('listen', '7000', { defaultHost: '::' })).toEqual({ host: '::', port: 7000 });
    expect(parseEndpoint('listen', ':7000', { defaultHost: '0.0.0.0' })).toEqual({ host: '0.0.0.0', port: 7000 });
    expect(parseEndpoint('target', 'localhost:9')).toEqual({ host: 'localhost', port: 9 });
    expect(parseEndpoint('listen', 'unix:/tmp/a.sock')).toEqual({ path: '/tmp/a.sock' });
    expect(parseEndpoint('listen', '127.0.0.1:0', { allowPortZero: true })).toEqual({ host: '127.0.0.1', port: 0 });
  });

  it('round-trips through formatEndpoint', () => {
    for (const s of ['127.0.0.1:1', '[::1]:65535', 'unix:/run/x.sock', 'example.org:443'])
      expect(formatEndpoint(parseEndpoint('x', s))).toBe(s);
  });

  it('refuses what it cannot use, naming the flag and the value', () => {
    const bad = ['127.0.0.1', '::1:80', '[127.0.0.1]:80', '1.2.3.4:99999', '1.2.3.4:0', 'host:port', 'unix:', `unix:/${'x'.repeat(120)}`, ':80'];
    for (const v of bad) {
      let err: unknown;
      try {
        parseEndpoint('target', v);
      } catch (e) {
        err = e;
      }
      expect(err, v).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(`--target ${v}`);
    }
  });
});

describe('numbers', () => {
  it('parses integers with binary suffixes only where allowed, within range', () => {
    expect(parseInteger('size', '64k', 1, 1 << 30, true)).toBe(65536);
    expect(parseInteger('size', '1m', 1, 1 << 30, true)).toBe(1 << 20);
    expect(parseInteger('conns', '4096', 1, 1e6)).toBe(4096);
    for (const [v, units] of [['64k', false], ['-1', true], ['1.5', true], ['0', true], ['2g', true], ['', true]] as const)
      expect(() => parseInteger('x', v, 1, 1 << 30, units), v).toThrow(UsageError);
  });

  it('parses seconds, zero only when allowed', () => {
    expect(parseSeconds('duration', '0.5')).toBe(0.5);
    expect(parseSeconds('close-timeout', '0', true)).toBe(0);
    for (const v of ['0', '-1', 'x', '', 'Infinity']) expect(() => parseSeconds('duration', v), v).toThrow(UsageError);
  });

  it('refuses durations a timer cannot hold, which would fire at once', () => {
    expect(parseSeconds('duration', String(MAX_SECONDS))).toBe(MAX_SECONDS);
    // One millisecond past the timer's limit, and far past it.
    expect(() => parseSeconds('duration', String(MAX_SECONDS + 0.648))).toThrow(/--duration .*at most 2147483 seconds/);
    expect(() => parseSeconds('stats', '1e10')).toThrow(UsageError);
  });
});

describe('parseFlags', () => {
  it('reports a bad flag on one line, naming it', () => {
    const spec = { mode: { type: 'string', short: 'm' }, json: { type: 'boolean' } } as const;
    // parseArgs explains an ambiguous value ('--mode -x') over three lines.
    for (const argv of [['--mode', '-x'], ['--bogus'], ['--json=1'], ['stray']]) {
      let err: unknown;
      try {
        parseFlags(argv, spec);
      } catch (e) {
        err = e;
      }
      expect(err, argv.join(' ')).toBeInstanceOf(UsageError);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toContain(argv[0] === 'stray' ? "'stray'" : argv[0]!.replace(/=.*/, ''));
    }
    expect(parseFlags(['--mode=-x'], spec)).toEqual({ mode: '-x' });
  });
});

describe('threadsOf', () => {
  it('spreads threads over processes as evenly as possible, losing none', () => {
    for (let threads = 1; threads <= 17; threads++) {
      for (let procs = 1; procs <= threads; procs++) {
        const per = Array.from({ length: procs }, (_, p) => threadsOf(threads, procs, p));
        expect(per.reduce((a, b) => a + b, 0)).toBe(threads);
        expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
      }
    }
  });
});
