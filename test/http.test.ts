// The HTTP responder of iapp-srv --mode http, by itself: framing, pipelining, limits, errors.
import { describe, expect, it } from 'vitest';

import { BAD_REQUEST, BODY, HttpConnection, NOT_IMPLEMENTED, TOO_LARGE, parseHead } from '../dist/srv/http.js';

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

  it('skips request bodies by Content-Length', () => {
    const c = new HttpConnection();
    const body = 'x'.repeat(100);
    const first = req('POST / HTTP/1.1', ['Content-Length: 100']) + body.slice(0, 40);
    expect(c.feed(Buffer.from(first)).requests).toBe(1);
    const r = c.feed(Buffer.from(body.slice(40) + req()));
    expect(r.requests).toBe(1);
    expect(statuses(text(r.out))).toEqual(['200']);
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
