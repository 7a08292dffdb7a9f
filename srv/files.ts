// iapp-srv --mode file: a minimal static file server. HTTP/1.1 GET and HEAD of regular files
// under one root, on keep-alive connections, each body sent with sendFile (page cache to socket,
// no bytes through JavaScript). Requests on a connection are answered one after the other.
import { extname, join, resolve, sep } from 'node:path';

import type { File, Loop, Socket } from '../src/index.js';
import { BAD_REQUEST, BODY_TOO_LARGE, MAX_BODY_BYTES, NOT_IMPLEMENTED, TOO_LARGE, parseHead, response } from './http.js';

const CRLF2 = Buffer.from('\r\n\r\n');
const MAX_HEAD = 8192;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css',
  '.js': 'text/javascript',
  '.json': 'application/json',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
};

/** What the file mode counts (part of the loop's `stats().app`). */
export interface FileCounters {
  requests: number;
  httpErrors: number;
  /** Body bytes sent from files. */
  fileBytes: number;
}

/**
 * Maps a request target to a path under `root`, or undefined for one that may not be served
 * (not origin form, `..` segments, NUL, bad percent-encoding).
 */
export function resolveTarget(root: string, target: string): string | undefined {
  if (!target.startsWith('/')) return undefined;
  const q = target.search(/[?#]/);
  let path: string;
  try {
    path = decodeURIComponent(q < 0 ? target : target.slice(0, q));
  } catch {
    return undefined;
  }
  if (path.includes('\0') || path.split('/').includes('..')) return undefined;
  const full = resolve(join(root, path));
  return full === root || full.startsWith(root.endsWith(sep) ? root : root + sep) ? full : undefined;
}

/** Serves one connection until it ends. `since` tells the header timeout when a head began. */
export class FileConnection {
  /** Milliseconds since the epoch at which the current partial head began, or 0. */
  since = 0;
  readonly #loop: Loop;
  readonly #root: string;
  readonly #s: Socket;
  readonly #n: FileCounters;
  readonly #maxBody: number;
  #buf: Buffer | undefined;
  // Empty-line bytes skipped before the head being read (they count toward its limit and time).
  #blank = 0;
  #busy = false;
  #paused = false;
  #done = false;
  #peerEnded = false;

  constructor(loop: Loop, root: string, s: Socket, counters: FileCounters, options: { maxBodyBytes?: number } = {}) {
    this.#loop = loop;
    this.#root = root;
    this.#s = s;
    this.#n = counters;
    this.#maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
    s.onData((b) => this.#feed(b));
    // The socket is half-open (allowHalfOpen): a peer that sends its request and then its FIN
    // (`printf … | socat`) is still answered, and the connection ends once the answers are out.
    s.onEnd(() => {
      this.#peerEnded = true;
      if (!this.#busy) this.#finish();
    });
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#s.readyState === 'open') this.#s.end();
  }

  /** Bytes received and not yet parsed. */
  get buffered(): number {
    return this.#buf?.length ?? 0;
  }

  /** Ends the connection with `answer` (the header timeout's 408). */
  abort(answer: Buffer): void {
    if (this.#done) return;
    this.#done = true;
    this.#n.httpErrors++;
    if (this.#s.readyState === 'open') this.#s.end(answer);
  }

  #feed(b: Buffer): void {
    if (this.#done) return;
    this.#buf = this.#buf ? Buffer.concat([this.#buf, b]) : Buffer.from(b);
    if (!this.#busy) void this.#next();
    else if (this.#buf.length > MAX_HEAD && !this.#paused) {
      // A peer pipelining while a file goes out must not grow this buffer without bound:
      // stop reading until the requests before are answered.
      this.#paused = true;
      this.#s.pause();
    }
  }

  // Answers every complete request in the buffer, one at a time.
  async #next(): Promise<void> {
    this.#busy = true;
    try {
      while (!this.#done && this.#buf) {
        let pos = 0;
        while (pos < this.#buf.length && (this.#buf[pos] === 0x0d || this.#buf[pos] === 0x0a)) pos++;
        this.#blank += pos;
        const end = this.#buf.indexOf(CRLF2, pos);
        if (end < 0) {
          if (this.#blank + this.#buf.length - pos > MAX_HEAD) return this.#fail(TOO_LARGE);
          this.#buf = pos < this.#buf.length ? this.#buf.subarray(pos) : undefined;
          // Empty lines alone start the clock too: a peer sending only those is still waited on.
          this.since = this.#buf || this.#blank > 0 ? this.since || Date.now() : 0;
          return;
        }
        if (this.#blank + end + 4 - pos > MAX_HEAD) return this.#fail(TOO_LARGE);
        const head = parseHead(this.#buf.toString('latin1', pos, end));
        this.#buf = end + 4 < this.#buf.length ? this.#buf.subarray(end + 4) : undefined;
        this.#blank = 0;
        this.since = 0;
        if (head === 'bad') return this.#fail(BAD_REQUEST);
        // Bodies are not read here; one past the limit gets the http mode's 413, others 501.
        if (head !== 'chunked' && head.contentLength > this.#maxBody) return this.#fail(BODY_TOO_LARGE);
        if (head === 'chunked' || head.contentLength > 0) return this.#fail(NOT_IMPLEMENTED);
        await this.#answer(head.method, head.target, head.close);
        if (head.close) {
          this.#done = true;
          if (this.#s.readyState === 'open') this.#s.end();
        }
      }
    } catch {
      // The socket failed under us (reset, closed): nothing more to answer.
      this.#done = true;
    } finally {
      this.#busy = false;
      if (this.#peerEnded) this.#finish();
      if (this.#paused) {
        this.#paused = false;
        if (!this.#done && this.#s.readyState === 'open') this.#s.resume();
      }
    }
  }

  #fail(answer: Buffer): void {
    this.#done = true;
    this.#n.httpErrors++;
    if (this.#s.readyState === 'open') this.#s.end(answer);
  }

  #error(status: string, text: string, close: boolean, extra = ''): void {
    this.#n.httpErrors++;
    const r = response(status, `${text}\n`, close);
    // The head of a prepared response plus an extra header line, when one is needed.
    this.#s.write(extra ? Buffer.concat([r.subarray(0, r.indexOf(CRLF2) + 2), Buffer.from(extra + '\r\n\r\n'), r.subarray(r.indexOf(CRLF2) + 4)]) : r);
  }

  async #answer(method: string, target: string, close: boolean): Promise<void> {
    if (method !== 'GET' && method !== 'HEAD') return this.#error('405 Method Not Allowed', 'only GET and HEAD', close, 'Allow: GET, HEAD');
    const path = resolveTarget(this.#root, target);
    if (path === undefined) return this.#error('400 Bad Request', 'bad path', close);
    let f: File;
    try {
      f = await this.#loop.open(path);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return this.#error('404 Not Found', 'not found', close);
      if (code === 'EACCES') return this.#error('403 Forbidden', 'forbidden', close);
      return this.#error('500 Internal Server Error', 'cannot open', close);
    }
    try {
      const st = await f.stat();
      if (!st.isFile) return this.#error('404 Not Found', 'not found', close);
      const type = TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
      this.#s.write(
        `HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\nContent-Length: ${st.size}\r\n` +
          `Last-Modified: ${new Date(st.mtimeMs).toUTCString()}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`,
      );
      this.#n.requests++;
      if (method === 'GET' && st.size > 0) this.#n.fileBytes += await this.#s.sendFile(f, { offset: 0, length: st.size });
    } finally {
      await f.close();
    }
  }
}
