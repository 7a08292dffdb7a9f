// A minimal HTTP/1.1 responder for load generators (wrk, autocannon): every request gets
// `200 OK` and a small fixed body, on a keep-alive connection, with pipelined requests answered
// in order. It parses only what it needs to find where a request ends; it is not a web server.

/** Body of every 200 response. */
export const BODY = 'ok\n';

/** Limits of one connection's parser. */
export interface HttpOptions {
  /**
   * Request line plus headers, in bytes, past which the answer is 431. Empty lines before a
   * request line count too. Default 8 KiB.
   */
  maxHeaderBytes?: number;
  /**
   * Largest request body (by Content-Length) skipped; a longer one is answered 413 and the
   * connection closed. Default 1 MiB.
   */
  maxBodyBytes?: number;
}

/** Default of `maxBodyBytes`. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** What feeding bytes to a connection produced. */
export interface HttpFeed {
  /** Responses to send, in request order. */
  out: Buffer[];
  /** Requests completed by this feed (answered with 200). */
  requests: number;
  /** The connection must be ended after `out` is sent (error, `Connection: close`, HTTP/1.0). */
  close: boolean;
}

const CRLF2 = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([01])$/;

export function response(status: string, body: string, close: boolean, head = false): Buffer {
  return Buffer.from(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `${close ? 'Connection: close\r\n' : ''}\r\n${head ? '' : body}`,
    'latin1',
  );
}

// Responses are built once: a request costs a parse and a write of a shared Buffer.
const OK = response('200 OK', BODY, false);
const OK_CLOSE = response('200 OK', BODY, true);
const OK_HEAD = response('200 OK', BODY, false, true);
const OK_HEAD_CLOSE = response('200 OK', BODY, true, true);
/** Answer to a malformed request; the connection is then closed. */
export const BAD_REQUEST = response('400 Bad Request', 'bad request\n', true);
/** Answer to a request whose headers exceed the limit; the connection is then closed. */
export const TOO_LARGE = response('431 Request Header Fields Too Large', 'request header fields too large\n', true);
/** Answer to a request whose declared body exceeds `maxBodyBytes`; the connection is then closed. */
export const BODY_TOO_LARGE = response('413 Content Too Large', 'request body too large\n', true);
/** Answer to chunked request bodies, which this responder does not decode. */
export const NOT_IMPLEMENTED = response('501 Not Implemented', 'chunked request bodies are not supported\n', true);
/** Answer sent when a request's headers do not arrive in time; the connection is then closed. */
export const TIMEOUT = response('408 Request Timeout', 'request timeout\n', true);

/**
 * The parser state of one connection. Feed it the bytes as they arrive; it returns the responses
 * to write. After a feed that says `close`, feed it nothing more.
 */
export class HttpConnection {
  readonly #max: number;
  readonly #maxBody: number;
  #pending: Buffer | undefined;
  // Empty-line bytes seen since the last request head ended. They are allowed before a request
  // line, but a peer sending nothing else must still meet the header timeout and the size limit.
  #blank = 0;
  #bodyLeft = 0;
  // The answer to the request whose body is being read past: sent once it has all arrived.
  #answer: { out: Buffer; close: boolean } | undefined;
  #closed = false;

  constructor(options: HttpOptions = {}) {
    this.#max = options.maxHeaderBytes ?? 8192;
    this.#maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
  }

  /** True while a request's body is being read past (for a body deadline). */
  get inBody(): boolean {
    return this.#bodyLeft > 0;
  }

  /** True while part of a request's head has arrived but not its end (for a header timeout). */
  get partial(): boolean {
    return this.#blank > 0 || (this.#pending !== undefined && this.#pending.length > 0);
  }

  /** Bytes held between feeds: the incomplete head, never more than `maxHeaderBytes`. */
  get buffered(): number {
    return this.#pending?.length ?? 0;
  }

  /** Parses `chunk` (which may be a slice of a buffer that will be reused: it is not kept). */
  feed(chunk: Buffer): HttpFeed {
    const res: HttpFeed = { out: [], requests: 0, close: false };
    if (this.#closed) return res;
    const data = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = undefined;
    let pos = 0;
    const fail = (answer: Buffer): HttpFeed => {
      res.out.push(answer);
      res.close = true;
      this.#closed = true;
      return res;
    };
    const answer = (out: Buffer, close: boolean): boolean => {
      res.requests++;
      res.out.push(out);
      if (close) {
        res.close = true;
        this.#closed = true;
      }
      return close;
    };
    while (pos < data.length) {
      if (this.#bodyLeft > 0) {
        const skip = Math.min(this.#bodyLeft, data.length - pos);
        this.#bodyLeft -= skip;
        pos += skip;
        if (this.#bodyLeft === 0 && this.#answer) {
          const a = this.#answer;
          this.#answer = undefined;
          if (answer(a.out, a.close)) return res;
        }
        continue;
      }
      // Empty lines before a request line are allowed (RFC 9112 §2.2).
      if (data[pos] === 0x0d || data[pos] === 0x0a) {
        pos++;
        if (++this.#blank > this.#max) return fail(TOO_LARGE);
        continue;
      }
      const end = data.indexOf(CRLF2, pos);
      if (end < 0) {
        if (this.#blank + data.length - pos > this.#max) return fail(TOO_LARGE);
        this.#pending = Buffer.from(data.subarray(pos));
        break;
      }
      if (this.#blank + end + 4 - pos > this.#max) return fail(TOO_LARGE);
      const head = data.toString('latin1', pos, end);
      pos = end + 4;
      this.#blank = 0;
      const req = parseHead(head);
      if (req === 'bad') return fail(BAD_REQUEST);
      if (req === 'chunked') return fail(NOT_IMPLEMENTED);
      // Skipping costs no memory, but a body nobody will use is refused before it is read.
      if (req.contentLength > this.#maxBody) return fail(BODY_TOO_LARGE);
      const close = req.close;
      const out = req.head ? (close ? OK_HEAD_CLOSE : OK_HEAD) : close ? OK_CLOSE : OK;
      // Answered once the whole request, body included, has arrived.
      this.#bodyLeft = req.contentLength;
      if (this.#bodyLeft > 0) this.#answer = { out, close };
      else if (answer(out, close)) return res;
    }
    return res;
  }
}

export interface Head {
  method: string;
  /** The request target as sent (origin form for a normal request). */
  target: string;
  head: boolean;
  close: boolean;
  /**
   * From Content-Length, 0 without one. Any run of digits is taken, so a value too large to be
   * exact (even Infinity) stays larger than any body limit a caller compares it with.
   */
  contentLength: number;
}

/** Parses a request line and headers (without the final blank line). */
export function parseHead(text: string): Head | 'bad' | 'chunked' {
  const lines = text.split('\r\n');
  const m = REQUEST_LINE.exec(lines[0]!);
  if (!m) return 'bad';
  const http10 = m[3] === '0';
  let close = http10;
  let contentLength = 0;
  let sawLength = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return 'bad';
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return 'bad';
    const value = line.slice(colon + 1).trim();
    switch (name.toLowerCase()) {
      case 'content-length':
        if (!/^\d+$/.test(value) || (sawLength && Number(value) !== contentLength)) return 'bad';
        contentLength = Number(value);
        sawLength = true;
        break;
      case 'transfer-encoding':
        return 'chunked';
      case 'connection': {
        const opts = value.toLowerCase().split(',').map((s) => s.trim());
        if (opts.includes('close')) close = true;
        else if (http10 && opts.includes('keep-alive')) close = false;
        break;
      }
    }
  }
  return { method: m[1]!, target: m[2]!, head: m[1] === 'HEAD', close, contentLength };
}
