// The HTTP responder of iapp-srv --mode http, by itself: framing, pipelining, limits, errors.
//
// What it proves: the parser by itself (framing, pipelining, 413 and the 1 MiB default, empty lines
// toward the head's limit and clock, 400/408/431/501), and the file mode's connection with a
// stand-in socket (reading stops while a file goes out and more than a head is waiting, and resumes
// after).
import { describe, expect, it } from 'vitest';

import { FileConnection } from '../dist/srv/files.js';
import { BAD_REQUEST, BODY, BODY_TOO_LARGE, HttpConnection, MAX_BODY_BYTES, NOT_IMPLEMENTED, TOO_LARGE, parseHead } from '../dist/srv/http.js';

const req = (line = 'GET / HTTP/1.1', headers: string[] = ['Host: x']): string => `${line}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
const text = (bufs: Buffer[]): string => Buffer.concat(bufs).toString('latin1');
const statuses = (s: string): string[] => [...s.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]!);

describe('HttpConnection', () => {
  it('answers one request with 200 and the fixed body, keeping the connection', () => {
    const c = new HttpConnection();
    const r = c.feed(Buffer.from(req()));
    expect(r.requests).toBe(1);
    expect(r.close).toBe(false);
    const out = text(r.out);
    expect(out.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(out).toContain(`Content-Length: ${BODY.length}\r\n`);
    expect(out.endsWith(`\r\n\r\n${BODY}`)).toBe(true);
    expect(out).not.toContain('Connection: close');
  });

  it('answers pipelined requests in order, in one feed', () => {
    const c = new HttpConnection();
    const r = c.feed(Buffer.from(req('GET /a HTTP/1.1') + req('HEAD /b HTTP/1.1') + req('GET /c HTTP/1.1', ['Connection: close'])));
    expect(r.requests).toBe(3);
    expect(r.close).toBe(true);
    const [a, b, cc] = r.out.map((x) => x.toString('latin1'));
    expect(a!.endsWith(BODY)).toBe(true);
    expect(b!.endsWith('\r\n\r\n')).toBe(true); // HEAD: no body
    expect(cc).toContain('Connection: close');
  });

  it('parses requests split at every byte', () => {
    const c = new HttpConnection();
    const all = Buffer.from(req('GET /1 HTTP/1.1') + req('GET /2 HTTP/1.1'));
    let n = 0;
    for (let i = 0; i < all.length; i++) {
      const r = c.feed(all.subarray(i, i + 1));
      n += r.requests;
      expect(r.close).toBe(false);
      if (i < all.length - 1 && n === 2) throw new Error('answered early');
    }
    expect(n).toBe(2);
    expect(c.partial).toBe(false);
  });

  it('skips request bodies by Content-Length, answering once the body has arrived', () => {
    const c = new HttpConnection();
    const body = 'x'.repeat(100);
    const first = req('POST / HTTP/1.1', ['Content-Length: 100']) + body.slice(0, 40);
    expect(c.feed(Buffer.from(first)).requests).toBe(0);
    expect(c.inBody).toBe(true);
    const r = c.feed(Buffer.from(body.slice(40) + req()));
    expect(c.inBody).toBe(false);
    expect(r.requests).toBe(2);
    expect(statuses(text(r.out))).toEqual(['200', '200']);
  });

  it('says when part of a request head is waiting', () => {
    const c = new HttpConnection();
    c.feed(Buffer.from('GET / HTTP/1.1\r\nHo'));
    expect(c.partial).toBe(true);
    c.feed(Buffer.from('st: x\r\n\r\n'));
    expect(c.partial).toBe(false);
  });

  it('refuses oversized headers with 431 and closes, whether or not the head ended', () => {
    const big = `X-Big: ${'a'.repeat(9000)}`;
    const whole = new HttpConnection().feed(Buffer.from(req('GET / HTTP/1.1', [big])));
    expect(whole.out).toEqual([TOO_LARGE]);
    expect(whole.close).toBe(true);
    const c = new HttpConnection({ maxHeaderBytes: 1000 });
    const partial = c.feed(Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}`));
    expect(partial.out).toEqual([TOO_LARGE]);
    expect(partial.close).toBe(true);
    expect(c.feed(Buffer.from(req())).out).toEqual([]); // nothing after close
  });

  it('refuses garbage with 400 after answering the good requests before it', () => {
    const r = new HttpConnection().feed(Buffer.from(req() + 'hello there\r\n\r\n' + req()));
    expect(statuses(text(r.out))).toEqual(['200', '400']);
    expect(r.out[1]).toBe(BAD_REQUEST);
    expect(r.close).toBe(true);
    expect(r.requests).toBe(1);
  });

  it('refuses a declared body over maxBodyBytes with 413 and closes, after the requests before it', () => {
    const c = new HttpConnection({ maxBodyBytes: 100 });
    const atLimit = req('POST /a HTTP/1.1', ['Content-Length: 100']) + 'x'.repeat(100);
    const r = c.feed(Buffer.from(atLimit + req('POST /b HTTP/1.1', ['Content-Length: 101']) + req()));
    expect(statuses(text(r.out))).toEqual(['200', '413']);
    expect(r.out[1]).toBe(BODY_TOO_LARGE);
    expect(r.requests).toBe(1);
    expect(r.close).toBe(true);
    expect(c.feed(Buffer.from(req())).out).toEqual([]);
    expect(statuses(BODY_TOO_LARGE.toString('latin1'))).toEqual(['413']);
    expect(BODY_TOO_LARGE.toString('latin1')).toContain('Connection: close');
  });

  it('defaults to 1 MiB, and a Content-Length too long to be exact is 413, not 400', () => {
    expect(MAX_BODY_BYTES).toBe(1024 * 1024);
    const ok = new HttpConnection();
    expect(ok.feed(Buffer.from(req('POST / HTTP/1.1', [`Content-Length: ${MAX_BODY_BYTES}`])))).toMatchObject({ requests: 0, close: false });
    expect(ok.feed(Buffer.alloc(MAX_BODY_BYTES))).toMatchObject({ requests: 1, close: false });
    const over = new HttpConnection().feed(Buffer.from(req('POST / HTTP/1.1', [`Content-Length: ${MAX_BODY_BYTES + 1}`])));
    expect(over.out).toEqual([BODY_TOO_LARGE]);
    for (const digits of [16, 25, 400]) {
      const r = new HttpConnection({ maxBodyBytes: 2 ** 50 }).feed(Buffer.from(req('POST / HTTP/1.1', [`Content-Length: ${'9'.repeat(digits)}`])));
      expect(r.out, `${digits} digits`).toEqual([BODY_TOO_LARGE]);
    }
  });

  it('counts empty lines before a request line toward the head: header timeout and size limit', () => {
    // A peer sending only CRLFs used to look idle to the header timeout and was held forever.
    const c = new HttpConnection({ maxHeaderBytes: 64 });
    expect(c.feed(Buffer.from('\r\n')).out).toEqual([]);
    expect(c.partial).toBe(true);
    expect(c.buffered).toBe(0);
    const r = c.feed(Buffer.from('\r\n'.repeat(40)));
    expect(r.out).toEqual([TOO_LARGE]);
    expect(r.close).toBe(true);
    // Within the limit they are skipped, and the clock stops once the request has come.
    const d = new HttpConnection({ maxHeaderBytes: 64 });
    expect(d.feed(Buffer.from('\r\n\r\n' + req())).requests).toBe(1);
    expect(d.partial).toBe(false);
  });

  it('refuses chunked bodies with 501', () => {
    const r = new HttpConnection().feed(Buffer.from(req('POST / HTTP/1.1', ['Transfer-Encoding: chunked'])));
    expect(r.out).toEqual([NOT_IMPLEMENTED]);
    expect(r.close).toBe(true);
  });

  it('closes HTTP/1.0 connections unless keep-alive is asked for', () => {
    expect(new HttpConnection().feed(Buffer.from(req('GET / HTTP/1.0', []))).close).toBe(true);
    expect(new HttpConnection().feed(Buffer.from(req('GET / HTTP/1.0', ['Connection: keep-alive']))).close).toBe(false);
  });
});

describe('parseHead', () => {
  it('rejects malformed request lines and headers', () => {
    expect(parseHead('GET /')).toBe('bad');
    expect(parseHead('GET / HTTP/2.0')).toBe('bad');
    expect(parseHead('GET / HTTP/1.1\r\nno colon here')).toBe('bad');
    expect(parseHead('GET / HTTP/1.1\r\nBad Name: x')).toBe('bad');
    expect(parseHead('GET / HTTP/1.1\r\nContent-Length: -1')).toBe('bad');
    expect(parseHead('GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2')).toBe('bad');
  });

  it('reads method, Connection and Content-Length', () => {
    expect(parseHead('HEAD / HTTP/1.1\r\nconnection: Keep-Alive, Close\r\ncontent-length: 7')).toEqual({
      method: 'HEAD',
      target: '/',
      head: true,
      close: true,
      contentLength: 7,
    });
  });
});

// FileConnection with a stand-in socket and file cache: only the parts of their API it uses, so the
// test controls when a file has been sent.
function fileConn(maxBodyBytes?: number) {
  const written: string[] = [];
  const calls: string[] = [];
  let onData: (b: Buffer) => void = () => {};
  let onEnd: () => void = () => {};
  const sends: (() => void)[] = [];
  let state: 'open' | 'closed' = 'open';
  const socket = {
    get readyState() {
      return state;
    },
    onData: (fn: (b: Buffer) => void) => void (onData = fn),
    onEnd: (fn: () => void) => void (onEnd = fn),
    write: (b: Buffer | string) => void written.push(b.toString()),
    end: (b?: Buffer) => {
      if (b) written.push(b.toString('latin1'));
      calls.push('end');
      state = 'closed';
    },
    pause: () => void calls.push('pause'),
    resume: () => void calls.push('resume'),
    sendFile: (_f: unknown, o: { length: number }) => new Promise<number>((r) => sends.push(() => r(o.length))),
  };
  const files = { get: async () => ({ file: {}, stat: { isFile: true, size: 10, mtimeMs: 0 }, release: () => {} }) };
  const counters = { requests: 0, httpErrors: 0, fileBytes: 0 };
  const conn = new FileConnection(files as never, socket as never, counters, maxBodyBytes === undefined ? {} : { maxBodyBytes });
  // Lets the connection's awaits (the cache's get, the send) run.
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  return { conn, feed: (s: string | Buffer) => onData(Buffer.from(s)), peerEnd: () => onEnd(), written, calls, sends, counters, settle };
}

describe('FileConnection', () => {
  it('stops reading while a file goes out and more than a head is waiting, and reads again after', async () => {
    const f = fileConn();
    f.feed(req('GET /a.txt HTTP/1.1'));
    await f.settle();
    expect(f.sends).toHaveLength(1); // the first file is being sent, held by the test
    for (let i = 0; i < 40; i++) f.feed(req('GET /b.txt HTTP/1.1', [`X-Pad: ${'p'.repeat(400)}`]));
    expect(f.calls).toEqual(['pause']);
    f.sends.shift()!();
    // Then the pipelined requests are answered one by one, and reading resumes once none is left.
    for (let i = 0; i < 40; i++) {
      await f.settle();
      f.sends.shift()?.();
    }
    await f.settle();
    expect(f.counters.requests).toBe(41);
    expect(f.calls).toEqual(['pause', 'resume']);
    expect(f.conn.buffered).toBe(0);
  });

  it('answers the requests that came before the peer half-closed, then ends', async () => {
    const f = fileConn();
    f.feed(req('GET /a.txt HTTP/1.1') + req('GET /b.txt HTTP/1.1'));
    f.peerEnd(); // while the first file is still going out
    await f.settle();
    expect(f.calls).toEqual([]);
    f.sends.shift()!();
    await f.settle();
    f.sends.shift()!();
    await f.settle();
    expect(f.counters.requests).toBe(2);
    expect(f.calls).toEqual(['end']);
    // With nothing in progress, the end is at once.
    const idle = fileConn();
    idle.peerEnd();
    expect(idle.calls).toEqual(['end']);
  });

  it('answers a declared body over the limit with 413, smaller bodies with 501, and a CRLF-only peer starts the header clock', async () => {
    const big = fileConn(100);
    big.feed(req('GET /a HTTP/1.1', ['Content-Length: 101']));
    await big.settle();
    expect(statuses(big.written.join(''))).toEqual(['413']);
    expect(big.calls).toEqual(['end']);
    expect(big.counters.httpErrors).toBe(1);
    const small = fileConn(100);
    small.feed(req('GET /a HTTP/1.1', ['Content-Length: 100']));
    await small.settle();
    expect(statuses(small.written.join(''))).toEqual(['501']);
    const blank = fileConn();
    expect(blank.conn.since).toBe(0);
    blank.feed('\r\n\r\n');
    await blank.settle();
    expect(blank.conn.since).toBeGreaterThan(0);
    blank.feed('\r\n'.repeat(5000));
    await blank.settle();
    expect(statuses(blank.written.join(''))).toEqual(['431']);
  });
});
