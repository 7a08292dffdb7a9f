// iapp-srv --mode file: a minimal static file server. HTTP/1.1 GET and HEAD of regular files
// under one root, on keep-alive connections, each body sent with sendFile (page cache to socket,
// no bytes through JavaScript). Requests on a connection are answered one after the other.
import { extname } from 'node:path';

import type { CachedFile, FileCache, Socket } from '../src/index.js';
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
 * What `--dotfiles` does with a request whose path has a segment starting with `.` (`.env`,
 * `.git/config`, `a/.hidden/b`): `'ignore'` answers 404 as if it did not exist (the default, as
 * `serve-static` and `send` do), `'deny'` answers 403, `'allow'` serves it like any other file.
 */
export type Dotfiles = 'ignore' | 'deny' | 'allow';

/** Where a request target leads: a path relative to the root, or the status that refuses it. */
export type Target = { path: string } | { status: 400 | 403 | 404 };

/**
 * Maps a request target to a path relative to the served root, or to the status that refuses it:
 * 400 for what is not a plain origin-form path (no leading `/`, bad percent-encoding, NUL, a `..`
 * segment, also percent-encoded), and for dotfiles 404 or 403 as `dotfiles` says. The query is
 * dropped; a target ending in `/` or `/.` keeps one trailing `/` (a directory, never a file). This is about what a request may *ask* for; whether the path stays inside the root on
 * disk (symlinks) is for the kernel to say when it is opened beneath the root (`loop.open(path,
 * { beneath })`), never for this text.
 */
export function mapTarget(target: string, dotfiles: Dotfiles = 'ignore'): Target {
  if (!target.startsWith('/')) return { status: 400 };
  const q = target.search(/[?#]/);
  let path: string;
  try {
    path = decodeURIComponent(q < 0 ? target : target.slice(0, q));
  } catch {
    return { status: 400 };
  }
  if (path.includes('\0')) return { status: 400 };
  // Empty segments (`//`) and `.` name nothing; `..` never reaches the disk, even where it would
  // stay inside (a/../b): one spelling per file, and nothing to reason about.
  const all = path.split('/');
  const segments = all.filter((x) => x !== '' && x !== '.');
  if (segments.includes('..')) return { status: 400 };
  if (dotfiles !== 'allow' && segments.some((x) => x.startsWith('.'))) return { status: dotfiles === 'deny' ? 403 : 404 };
  if (segments.length === 0) return { path: '.' };
  // A path ending in `/` or `/.` (`/a.txt/`, `/a.txt/.`, `/a.txt%2f`) names a directory: the
  // trailing slash is kept so that the kernel answers ENOTDIR for a file (404), as open(2) does,
  // rather than the file being served under a second spelling.
  const last = all[all.length - 1];
  return { path: segments.join('/') + (last === '' || last === '.' ? '/' : '') };
}

/** The status for a failed open beneath the root, by its code. */
export function openStatus(code: string | undefined): 403 | 404 | 500 {
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ENAMETOOLONG':
      return 404;
    // EXDEV: the path resolves outside the root (a symlink pointing out); ELOOP: a link loop, too
    // many links or a magic link; EACCES/EPERM: the permissions say no.
    case 'EXDEV':
    case 'ELOOP':
    case 'EACCES':
    case 'EPERM':
      return 403;
    default:
      return 500;
  }
}

/** Serves one connection until it ends. `since` tells the header timeout when a head began. */
export class FileConnection {
  /** Milliseconds since the epoch at which the current partial head began, or 0. */
  since = 0;
  readonly #files: FileCache;
  readonly #dotfiles: Dotfiles;
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

  /** `files`: the loop's cache of files opened beneath the served root. */
  constructor(files: FileCache, s: Socket, counters: FileCounters, options: { maxBodyBytes?: number; dotfiles?: Dotfiles } = {}) {
    this.#files = files;
    this.#dotfiles = options.dotfiles ?? 'ignore';
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

  #refuse(status: 400 | 403 | 404 | 500, close: boolean): void {
    if (status === 400) this.#error('400 Bad Request', 'bad path', close);
    else if (status === 403) this.#error('403 Forbidden', 'forbidden', close);
    else if (status === 404) this.#error('404 Not Found', 'not found', close);
    else this.#error('500 Internal Server Error', 'cannot open', close);
  }

  async #answer(method: string, target: string, close: boolean): Promise<void> {
    if (method !== 'GET' && method !== 'HEAD') return this.#error('405 Method Not Allowed', 'only GET and HEAD', close, 'Allow: GET, HEAD');
    const t = mapTarget(target, this.#dotfiles);
    if ('status' in t) return this.#refuse(t.status, close);
    const path = t.path;
    let f: CachedFile;
    try {
      // The kernel resolves the path from the root's descriptor and refuses every way out; a file
      // asked for again within the cache's validity is answered from the descriptor opened then.
      f = await this.#files.get(path);
    } catch (e) {
      return this.#refuse(openStatus((e as { code?: string }).code), close);
    }
    try {
      const st = f.stat;
      if (!st.isFile) return this.#error('404 Not Found', 'not found', close);
      const type = TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
      this.#s.write(
        `HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\nContent-Length: ${st.size}\r\n` +
          `Last-Modified: ${new Date(st.mtimeMs).toUTCString()}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`,
      );
      this.#n.requests++;
      // A file that shrank after its stat fails the socket (ENODATA): the client sees the body
      // cut short rather than read the next answer as its end.
      if (method === 'GET' && st.size > 0) this.#n.fileBytes += await this.#s.sendFile(f.file, { offset: 0, length: st.size });
    } finally {
      f.release();
    }
  }
}
