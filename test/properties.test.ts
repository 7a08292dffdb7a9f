// Properties of what parses untrusted input, checked with fast-check on generated cases: the HTTP
// responder's parser (srv --mode http), the command-line flag parsers, and the library's handling
// of addresses it is given. Every property has a fixed number of runs; a failure prints the seed
// and the shrunk case to replay.
//
// What it proves: the HTTP parser of --mode http: valid pipelined requests (random methods,
// targets, headers, bodies of any bytes, empty lines before them, HTTP/1.0 keep-alive) cut at
// random points get the same answers as when fed whole, in order; any bytes, cut anywhere, never
// throw, keep at most maxHeaderBytes between feeds, get the same answers as fed whole, and nothing
// after a 400/413/431/501; heads over the limit get 431 and bodies over maxBodyBytes 413; parseHead
// reads back what was written. The flag parsers: every integer, size with a k/m/g suffix, duration
// and choice in range reads back, and any other text is a one-line UsageError naming the flag and
// value (never another error, NaN or a value out of range); random argument lists parse or are
// refused naming the argument; endpoints (IPv4, IPv6 in brackets, names, Unix paths) round-trip
// through formatEndpoint, and any text is an endpoint that formats back to itself or refused. The
// library: hosts that are no address nor host name are refused by connect with ENOTFOUND (before
// any lookup, so no DNS query is sent) and by listen/listenSocket with a TypeError; bad ports with
// RangeError/TypeError; random Unix paths in a temporary directory listen and are removed at close
// or fail with an errno code (EINVAL for a NUL); the loop answers after every refusal, real
// addresses still connect, no fd is left open. A few seconds in all.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MAX_SECONDS, UsageError, formatEndpoint, parseChoice, parseEndpoint, parseFlags, parseInteger, parseSeconds } from '../dist/src/cli/args.js';
import { IappError, createRuntime, listenSocket, type Runtime } from '../dist/src/index.js';
import { HttpConnection, parseHead, type HttpOptions } from '../dist/srv/http.js';
import { fdCount, fixture } from './helpers.js';

// ---------------------------------------------------------------------------------------------
// HTTP parser

// The expected answers, written out byte for byte from the protocol (RFC 9112: status line, then
// header fields, an empty line and the body; Content-Length the body's length in bytes, which a
// HEAD answer states without sending the body), not built with srv's own response(): a wrong
// status line, header or length there fails every property below.
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const OK = bytes('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n');
const OK_CLOSE = bytes('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n');
const OK_HEAD = bytes('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n');
const OK_HEAD_CLOSE = bytes('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n');
const BAD_REQUEST = bytes('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n');
const TOO_LARGE = bytes(
  'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nrequest header fields too large\n',
);
const BODY_TOO_LARGE = bytes('HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 23\r\nConnection: close\r\n\r\nrequest body too large\n');
const NOT_IMPLEMENTED = bytes(
  'HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nContent-Length: 41\r\nConnection: close\r\n\r\nchunked request bodies are not supported\n',
);
const ANSWERS = [OK, OK_CLOSE, OK_HEAD, OK_HEAD_CLOSE];
// Answers after which the connection is closed and nothing more is answered.
const REFUSALS = [BAD_REQUEST, TOO_LARGE, BODY_TOO_LARGE, NOT_IMPLEMENTED];

interface Fed {
  out: Buffer[];
  requests: number;
  close: boolean;
}

/**
 * Feeds `data` cut at `cuts` (any numbers, taken modulo its length) and checks what must hold
 * after every feed: no throw, at most `maxHeaderBytes` held, nothing answered after a close.
 */
function feedCut(options: HttpOptions, data: Buffer, cuts: number[] = []): Fed {
  const c = new HttpConnection(options);
  const max = options.maxHeaderBytes ?? 8192;
  const at = [...new Set(cuts.map((n) => n % (data.length + 1)))].sort((a, b) => a - b);
  const res: Fed = { out: [], requests: 0, close: false };
  let from = 0;
  for (const to of [...at, data.length]) {
    const r = c.feed(data.subarray(from, to));
    from = to;
    if (res.close) {
      // Whatever comes after a close is ignored.
      expect(r).toEqual({ out: [], requests: 0, close: false });
      continue;
    }
    res.out.push(...r.out);
    res.requests += r.requests;
    res.close = r.close;
    if (!r.close) expect(c.buffered).toBeLessThanOrEqual(max);
  }
  return res;
}

const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,10}$/);
const reserved = new Set(['content-length', 'transfer-encoding', 'connection']);
const request = fc.record({
  method: fc.oneof(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT'), token),
  target: fc.stringMatching(/^\/[!-~]{0,24}$/),
  headers: fc.array(fc.tuple(token.filter((n) => !reserved.has(n.toLowerCase())), fc.stringMatching(/^([!-~]([ -~]{0,16}[!-~])?)?$/)), {
    maxLength: 5,
  }),
  // Bodies of any bytes, request heads included: they must be skipped by length, not parsed.
  body: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constant(new Uint8Array(Buffer.from('GET /inside HTTP/1.1\r\n\r\n')))),
  lengthHeader: fc.constantFrom(undefined, 'Content-Length', 'content-length', 'CONTENT-LENGTH'),
  blank: fc.constantFrom('', '', '\r\n', '\n', '\r\n\r\n'),
  http10: fc.boolean(),
});
type Request = typeof request extends fc.Arbitrary<infer T> ? T : never;

function serialize(r: Request, close: boolean): Buffer {
  const headers = [...r.headers];
  if (r.body.length > 0 || r.lengthHeader) headers.push([r.lengthHeader ?? 'Content-Length', String(r.body.length)]);
  if (close) headers.push(['Connection', 'close']);
  else if (r.http10) headers.push(['Connection', 'keep-alive']);
  const head = `${r.blank}${r.method} ${r.target} HTTP/1.${r.http10 ? 0 : 1}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), r.body]);
}

// Bytes that look like HTTP often enough to reach every branch of the parser.
const fragment = fc.oneof(
  fc.constantFrom(
    'GET / HTTP/1.1\r\n',
    'HEAD /x HTTP/1.0\r\n',
    'POST / HTTP/1.1\r\n',
    '\r\n',
    '\r\n\r\n',
    '\n',
    '\r',
    ': ',
    ' ',
    'Host: a\r\n',
    'Connection: close\r\n',
    'Connection: keep-alive\r\n',
    'Transfer-Encoding: chunked\r\n',
    'Content-Length: ',
    'Content-Length: 3\r\n',
  ),
  fc.nat(700).map(String),
  fc.string({ unit: 'binary-ascii', maxLength: 12 }),
);
const anyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.array(fragment, { maxLength: 40 }).map((parts) => Buffer.from(parts.join(''), 'latin1')),
);
const cuts = fc.array(fc.nat(), { maxLength: 24 });

describe('HTTP parser (srv --mode http)', () => {
  it('valid requests, pipelined and cut anywhere, are answered in order, as when fed whole', () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 8 }), fc.boolean(), cuts, (reqs, closeLast, at) => {
        const data = Buffer.concat(reqs.map((r, i) => serialize(r, closeLast && i === reqs.length - 1)));
        const expected = reqs.map((r, i) => {
          const close = closeLast && i === reqs.length - 1;
          const head = r.method === 'HEAD';
          return close ? (head ? OK_HEAD_CLOSE : OK_CLOSE) : head ? OK_HEAD : OK;
        });
        const whole = feedCut({}, data);
        const cut = feedCut({}, data, at);
        for (const fed of [whole, cut]) {
          expect(fed.requests).toBe(reqs.length);
          expect(fed.close).toBe(closeLast);
          expect(Buffer.concat(fed.out).equals(Buffer.concat(expected))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('any bytes, cut anywhere: no throw, bounded memory, the same answers as fed whole, nothing after a refusal', () => {
    const options = fc.record({ maxHeaderBytes: fc.integer({ min: 8, max: 600 }), maxBodyBytes: fc.integer({ min: 0, max: 600 }) });
    fc.assert(
      fc.property(options, anyBytes, cuts, (opts, bytes, at) => {
        const data = Buffer.from(bytes);
        const whole = feedCut(opts, data);
        const cut = feedCut(opts, data, at);
        expect(Buffer.concat(cut.out).equals(Buffer.concat(whole.out))).toBe(true);
        expect(cut.requests).toBe(whole.requests);
        expect(cut.close).toBe(whole.close);
        for (const fed of [whole, cut]) {
          const kinds = fed.out.map((b) => (ANSWERS.some((a) => a.equals(b)) ? 'ok' : REFUSALS.some((a) => a.equals(b)) ? 'refused' : 'unknown'));
          expect(kinds).not.toContain('unknown');
          expect(kinds.filter((k) => k === 'ok')).toHaveLength(fed.requests);
          // A refusal is the last answer, and closes.
          const refused = kinds.indexOf('refused');
          if (refused >= 0) {
            expect(refused).toBe(kinds.length - 1);
            expect(fed.close).toBe(true);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('a head over maxHeaderBytes, ended or not, is 431 after the requests before it, cut anywhere', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 64, max: 2048 }),
        fc.nat(3),
        fc.nat(200),
        fc.boolean(),
        cuts,
        (max, before, extra, ended, at) => {
          const small = 'GET /p HTTP/1.1\r\n\r\n'.repeat(before);
          const big = `GET /big HTTP/1.1\r\nX-Big: ${'a'.repeat(max + extra)}${ended ? '\r\n\r\n' : ''}`;
          const fed = feedCut({ maxHeaderBytes: max }, Buffer.from(small + big), [Math.floor(max / 3), max, max + 1, ...at]);
          expect(fed.out).toEqual([...Array<Buffer>(before).fill(OK), TOO_LARGE]);
          expect(fed.close).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a body up to maxBodyBytes is skipped by length; a longer one is 413 and closes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 10000 }), cuts, (maxBody, length, at) => {
        // The body is made of request heads: answered only if they were parsed instead of skipped.
        const body = 'GET /in-body HTTP/1.1\r\n\r\n'.repeat(Math.ceil(length / 25) + 1).slice(0, length);
        const data = Buffer.from(`POST / HTTP/1.1\r\nContent-Length: ${length}\r\n\r\n${body}GET /after HTTP/1.1\r\n\r\n`);
        const fed = feedCut({ maxBodyBytes: maxBody }, data, at);
        if (length <= maxBody) expect(fed).toEqual({ out: [OK, OK], requests: 2, close: false });
        else expect(fed).toEqual({ out: [BODY_TOO_LARGE], requests: 0, close: true });
      }),
      { numRuns: 300 },
    );
  });

  it('parseHead reads back what was written, and never throws on any text', () => {
    fc.assert(
      fc.property(request, fc.boolean(), (r, close) => {
        const text = serialize({ ...r, blank: '', body: new Uint8Array(0) }, close).toString('latin1');
        const head = parseHead(text.slice(0, -4));
        expect(head).toEqual({
          method: r.method,
          target: r.target,
          head: r.method === 'HEAD',
          close,
          contentLength: 0,
        });
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary-ascii', maxLength: 200 }), fc.array(fragment, { maxLength: 30 }).map((p) => p.join(''))), (text) => {
        const h = parseHead(text);
        if (h === 'bad' || h === 'chunked') return;
        expect(h.contentLength).toBeGreaterThanOrEqual(0);
        expect(Number.isNaN(h.contentLength)).toBe(false);
        expect(h.head).toBe(h.method === 'HEAD');
      }),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Flags

const flagName = fc.stringMatching(/^[a-z][a-z-]{0,12}$/);

/** How a UsageError shows control characters: escaped, so that it stays one line. */
const shown = (s: string): string => s.replace(/[\u0000-\u001f]/g, (c) => JSON.stringify(c).slice(1, -1));

/** Runs `f`; a UsageError must name the flag and its value, and nothing else may be thrown. */
function parsesOrRefuses<T>(flag: string, value: string, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message.startsWith(`--${flag} ${shown(value)}: `), (e as Error).message).toBe(true);
    expect((e as Error).message).not.toContain('\n');
    return undefined;
  }
}

// Text near what flag values look like, and anything at all.
const numberish = fc.oneof(
  fc.stringMatching(/^[ +-]?[0-9]{0,20}(\.[0-9]{0,4})?([eE][+-]?[0-9]{1,3})?[kKmMgGtx]? ?$/),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('Infinity', '-Infinity', 'NaN', '0x10', '1_000', '', ' ', '9'.repeat(400)),
);

describe('flag values (src/cli/args.ts)', () => {
  it('parseInteger: every integer in range reads back, with or without a unit; anything else is a UsageError', () => {
    const units = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as const;
    fc.assert(
      fc.property(
        flagName,
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.constantFrom('', 'k', 'm', 'g', 'K', 'M', 'G'),
        fc.nat(),
        (flag, a, b, suffix, pick) => {
          const [min, max] = a <= b ? [a, b] : [b, a];
          const mult = units[suffix.toLowerCase() as keyof typeof units];
          const n = Math.floor((min + (pick % (max - min + 1))) / mult);
          const value = `${n}${suffix}`;
          const inRange = n * mult >= min && n * mult <= max;
          if (inRange) expect(parseInteger(flag, value, min, max, true)).toBe(n * mult);
          else expect(() => parseInteger(flag, value, min, max, true)).toThrow(UsageError);
          // Without units, a suffix is refused whatever the number.
          if (suffix !== '') expect(parsesOrRefuses(flag, value, () => parseInteger(flag, value, min, max))).toBeUndefined();
        },
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(flagName, numberish, fc.integer({ min: 0, max: 1 << 30 }), fc.nat(1 << 30), fc.boolean(), (flag, value, min, span, units) => {
        const max = min + span;
        const n = parsesOrRefuses(flag, value, () => parseInteger(flag, value, min, max, units));
        if (n !== undefined) {
          expect(Number.isSafeInteger(n)).toBe(true);
          expect(n).toBeGreaterThanOrEqual(min);
          expect(n).toBeLessThanOrEqual(max);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('parseSeconds: every duration a timer holds reads back; the result is always finite, positive and at most MAX_SECONDS', () => {
    fc.assert(
      fc.property(flagName, fc.double({ min: Number.MIN_VALUE, max: MAX_SECONDS, noNaN: true }), (flag, s) => {
        expect(parseSeconds(flag, String(s))).toBe(s);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(flagName, fc.oneof(numberish, fc.double().map(String)), fc.boolean(), (flag, value, allowZero) => {
        const s = parsesOrRefuses(flag, value, () => parseSeconds(flag, value, allowZero));
        if (s === undefined) return;
        expect(Number.isFinite(s)).toBe(true);
        expect(allowZero ? s >= 0 : s > 0).toBe(true);
        expect(s).toBeLessThanOrEqual(MAX_SECONDS);
        // What a timer will be set to stays within what it can hold.
        expect(s * 1000).toBeLessThanOrEqual(2 ** 31 - 1);
      }),
      { numRuns: 1000 },
    );
  });

  it('parseChoice: a listed word is returned, anything else is a UsageError listing the choices', () => {
    fc.assert(
      fc.property(flagName, fc.uniqueArray(token, { minLength: 1, maxLength: 6 }), fc.oneof(token, fc.string({ maxLength: 8 })), (flag, choices, value) => {
        const r = parsesOrRefuses(flag, value, () => parseChoice(flag, value, choices));
        if (choices.includes(value)) expect(r).toBe(value);
        else {
          expect(r).toBeUndefined();
          expect(() => parseChoice(flag, value, choices)).toThrow(choices.join(', '));
        }
      }),
      { numRuns: 500 },
    );
  });

  // The shape of srv's flags: strings, repeatable strings, booleans, short names.
  const spec = {
    listen: { type: 'string', short: 'l', multiple: true },
    mode: { type: 'string', short: 'm' },
    'header-timeout': { type: 'string' },
    json: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
  } as const;
  const value = fc.oneof(fc.string({ maxLength: 10 }), fc.stringMatching(/^-[a-z]{0,4}$/));

  it('parseFlags: values given in any of the accepted forms read back', () => {
    const given = fc.record(
      { listen: fc.array(value, { minLength: 1, maxLength: 3 }), mode: value, 'header-timeout': value, json: fc.constant(true), verbose: fc.constant(true) },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(given, fc.array(fc.nat(2), { minLength: 8, maxLength: 8 }), (values, forms) => {
        const argv: string[] = [];
        let k = 0;
        const put = (name: keyof typeof spec, v: string | true): void => {
          const short = (spec[name] as { short?: string }).short;
          const form = forms[k++ % forms.length]!;
          if (v === true) argv.push(form === 0 && short ? `-${short}` : `--${name}`);
          // A value starting with '-' must be attached, or it would read as a flag.
          else if (form === 0 || v.startsWith('-')) argv.push(`--${name}=${v}`);
          else if (form === 1 && short) argv.push(`-${short}`, v);
          else argv.push(`--${name}`, v);
        };
        for (const [name, v] of Object.entries(values) as [keyof typeof spec, string | string[] | true][])
          for (const one of Array.isArray(v) ? v : [v]) put(name, one);
        expect({ ...parseFlags(argv, spec) }).toEqual(values);
      }),
      { numRuns: 500 },
    );
  });

  it('parseFlags: any arguments parse or are a one-line UsageError quoting the argument at fault', () => {
    const arg = fc.oneof(
      fc.constantFrom('--listen', '-l', '--mode', '-m', '--json', '-v', '--verbose', '--header-timeout', '--', '-', '--json=1', '-vm', '-lv', '---', '--=', '-='),
      fc.stringMatching(/^--?[a-z-]{0,8}(=.{0,4})?$/),
      fc.string({ maxLength: 8 }),
    );
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 8 }), (argv) => {
        let values: Record<string, unknown>;
        try {
          values = { ...parseFlags(argv, spec) };
        } catch (e) {
          expect(e).toBeInstanceOf(UsageError);
          const msg = (e as Error).message;
          expect(msg).not.toContain('\n');
          const args = argv.map(shown);
          const quoted = [...msg.matchAll(/'([^']*)'/g)].flatMap((m) => m[1]!.split(/[ ,<>]+/)).filter((t) => t !== '');
          const named =
            quoted.some((t) => {
              const bare = t.replace(/^-+/, '');
              return args.some((a) => a.includes(t) || (bare !== '' && a.includes(bare)));
            }) ||
            // An argument that is itself a quote, or empty, cannot be picked out of the quotes.
            args.some((a) => a !== '' && msg.includes(`'${a}'`)) ||
            (args.includes('') && msg.includes("''"));
          expect(named, msg).toBe(true);
          return;
        }
        for (const [k, v] of Object.entries(values)) {
          expect(Object.keys(spec)).toContain(k);
          const s = spec[k as keyof typeof spec] as { type: string; multiple?: boolean };
          if (s.multiple) expect(Array.isArray(v)).toBe(true);
          else expect(typeof v).toBe(s.type);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('addresses (parseEndpoint, formatEndpoint)', () => {
  const port = fc.integer({ min: 1, max: 65535 });
  const path = fc.string({ unit: 'binary', minLength: 1, maxLength: 100 }).filter((p) => Buffer.byteLength(p) <= 100);

  it('IPv4, IPv6, names and Unix paths round-trip through formatEndpoint', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()), port, (host, p) => {
        const text = formatEndpoint({ host, port: p });
        expect(text).toBe(net.isIPv6(host) ? `[${host}]:${p}` : `${host}:${p}`);
        expect(parseEndpoint('target', text)).toEqual({ host, port: p });
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(path, (p) => {
        expect(parseEndpoint('listen', formatEndpoint({ path: p }))).toEqual({ path: p });
      }),
      { numRuns: 200 },
    );
  });

  it('any text is an endpoint that formats back to itself, or a UsageError naming the flag and the text', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 30 }),
      fc.tuple(fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain(), fc.constantFrom('', '[', ']', '[::1]', 'unix', 'localhost')), fc.constantFrom(':', '', '::', ']:', 'unix:'), numberish).map((p) => p.join('')),
      fc.tuple(fc.ipV6(), numberish).map(([h, p]) => `[${h}]:${p}`),
    );
    fc.assert(
      fc.property(text, fc.boolean(), fc.constantFrom(undefined, '::', '0.0.0.0'), (value, allowPortZero, defaultHost) => {
        const opts = { allowPortZero, ...(defaultHost ? { defaultHost } : {}) };
        const e = parsesOrRefuses('listen', value, () => parseEndpoint('listen', value, opts));
        if (e === undefined) return;
        if (e.path !== undefined) {
          expect(e.path.length).toBeGreaterThan(0);
          expect(Buffer.byteLength(e.path)).toBeLessThanOrEqual(100);
        } else {
          expect(e.host.length).toBeGreaterThan(0);
          expect(Number.isInteger(e.port)).toBe(true);
          expect(e.port).toBeGreaterThanOrEqual(allowPortZero ? 0 : 1);
          expect(e.port).toBeLessThanOrEqual(65535);
          // A ':' in a host only inside brackets, and then it is an IPv6 address.
          if (e.host.includes(':')) expect(net.isIPv6(e.host)).toBe(true);
        }
        expect(parseEndpoint('listen', formatEndpoint(e), opts)).toEqual(e);
      }),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The library's own address handling

// A string that is no numeric address and has a character a host name cannot have (or an empty
// or oversized label): the library must refuse it before any lookup, so no DNS query leaves
// this machine. Strings that could be real names are never generated.
const notAHostName = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.tuple(fc.domain(), fc.constantFrom('\0', ' ', '/', ':', '@', '\n', '..', '[', 'é'), fc.domain()).map((p) => p.join('')),
    fc.constantFrom('', '.', '..', 'a..b', '.a', 'x'.repeat(64), `${'a'.repeat(60)}.`.repeat(5)),
  )
  .filter((s) => net.isIP(s) === 0 && (!/^[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?$/.test(s) || s.length > 254));

describe('addresses given to the library', () => {
  let dir = '';
  let rt: Runtime;
  let fdsBefore = 0;
  let server: net.Server;
  let serverPort = 0;
  beforeAll(async () => {
    fdsBefore = fdCount();
    dir = mkdtempSync(join(tmpdir(), 'iapp-addr-'));
    rt = await createRuntime({ module: fixture('addresses.mjs'), threads: 1 });
    server = net.createServer((c) => c.resume().on('error', () => {}));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    serverPort = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await rt.close({ timeoutMs: 2000 });
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
    expect(fdCount()).toBe(fdsBefore);
  });

  type Tried = { ok: boolean; name?: string; iapp?: boolean; code?: string; message?: string; port?: number };
  const attempt = (kind: 'listen' | 'connect', options: Record<string, unknown>): Promise<Tried> =>
    rt.call(0, 'try', { kind, options }, { timeoutMs: 10_000 }) as Promise<Tried>;

  it('connect: a host that is no address nor host name is refused with ENOTFOUND, without a lookup', async () => {
    await fc.assert(
      fc.asyncProperty(notAHostName, async (host) => {
        const r = await attempt('connect', { host, port: serverPort });
        expect(r).toMatchObject({ ok: false, iapp: true, code: 'ENOTFOUND' });
        expect(r.message).toContain(`'${host}'`);
      }),
      { numRuns: 200 },
    );
    // The loop is still there, and real addresses still connect.
    for (const host of ['127.0.0.1', 'localhost', '::ffff:127.0.0.1']) expect(await attempt('connect', { host, port: serverPort }), host).toEqual({ ok: true });
  });

  it('listen: a host that is no numeric address is a TypeError naming it; a bad port a RangeError or TypeError', async () => {
    await fc.assert(
      fc.asyncProperty(notAHostName, async (host) => {
        const r = await attempt('listen', { host, port: 0 });
        expect(r).toMatchObject({ ok: false, name: 'TypeError' });
        expect(r.message).toContain(`'${host}'`);
        // The main thread's listenSocket says the same.
        expect(() => listenSocket({ host, port: 0 })).toThrow(TypeError);
      }),
      { numRuns: 150 },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.integer({ min: -(2 ** 40), max: -1 }), fc.integer({ min: 65536, max: 2 ** 40 }), fc.double({ noInteger: true })), async (port) => {
        const r = await attempt('listen', { host: '127.0.0.1', port });
        expect(r.ok).toBe(false);
        expect(['RangeError', 'TypeError']).toContain(r.name);
        expect(r.message).toMatch(/port/);
        expect(() => listenSocket({ host: '127.0.0.1', port })).toThrow(/port/);
      }),
      { numRuns: 150 },
    );
  });

  it('Unix paths: any name under a directory listens and is removed at close, or fails with an errno code (EINVAL for a NUL)', async () => {
    // Segments never '.' or '..', so every path stays under `dir`.
    const segment = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `p${s.replaceAll('/', '_')}`);
    const rel = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
    let listened = 0;
    await fc.assert(
      fc.asyncProperty(rel, async (name) => {
        const path = join(dir, name);
        const check = (r: Tried): void => {
          if (r.ok) {
            listened++;
            expect(existsSync(path)).toBe(false); // closed, and the path removed
            return;
          }
          expect(r.iapp, r.message).toBe(true);
          expect(r.code).toMatch(/^E[A-Z0-9]+$/);
          if (path.includes('\0')) expect(r.code).toBe('EINVAL');
        };
        check(await attempt('listen', { path }));
        let main: Tried;
        try {
          listenSocket({ path }).close();
          main = { ok: true };
        } catch (e) {
          main = { ok: false, iapp: e instanceof IappError, code: (e as IappError).code, message: (e as Error).message };
        }
        check(main);
        // Nothing listens there now.
        const c = await attempt('connect', { path });
        expect(c).toMatchObject({ ok: false, iapp: true });
      }),
      { numRuns: 150 },
    );
    // Not everything was refused: the property saw paths that work.
    expect(listened).toBeGreaterThan(0);
  });
});
