// The module every iapp-srv loop thread runs: listens (or adopts passed sockets), serves in the
// chosen mode, and counts what JavaScript sees (loop.onStats).

import { FileCache, type Listener, type Loop, type LoopInfo, type Socket, type UdpSocket } from '../src/index.js';
import { FileConnection, type Dotfiles } from './files.js';
import { HttpConnection, TIMEOUT } from './http.js';

/** onData options of handlers that keep no chunk past the call. */
const BORROW = Object.freeze({ borrow: true });

/** How accepted connections are served. */
export type Mode = 'sink' | 'data' | 'echo' | 'http' | 'file';

/** A TCP or Unix listener to open, or a passed listening socket to adopt. */
export type TcpSpec = { host: string; port: number; name: string } | { path: string; permissions?: number } | { fd: number };
/** A UDP socket to bind, or a passed one to adopt. */
export type UdpSpec = { host: string; port: number; name: string } | { fd: number };

/** `info.data` of every loop thread. */
export interface SrvLoopData {
  mode: Mode;
  accept: 'reuseport' | 'shared';
  tcp: TcpSpec[];
  udp: UdpSpec[];
  /**
   * Sockets from socket activation: listening ones are listened on, datagram ones served as UDP,
   * connected ones (inetd, `Accept=yes`) adopted by one loop only (`passed`).
   */
  activated: { fd: number; name: string; kind: 'listening' | 'connected' | 'datagram' }[];
  headerTimeoutMs: number;
  /** http mode: a request body must be complete within this long of its head (408). */
  bodyTimeoutMs: number;
  /** http and file modes: no byte either way for this long closes the connection (natively). */
  keepaliveTimeoutMs: number;
  /** http and file modes: the largest request body (Content-Length) accepted; past it, 413. */
  maxBodyBytes: number;
  /** file mode: the directory served (absolute). */
  root?: string;
  /** file mode: what a path with a segment starting with `.` gets. */
  dotfiles?: Dotfiles;
  /** file mode: files kept open (0: none) and how long each answers before it is opened again. */
  fileCache?: number;
  fileCacheValidMs?: number;
  /** SO_RCVLOWAT for accepted connections (sink and data modes). */
  rcvlowat?: number;
  firstThread: number;
  proc: number;
}

/** One bound address, as reported back to the main process. */
export interface BoundAddress {
  proto: 'tcp' | 'unix' | 'udp';
  address: string;
  port?: number;
  family?: string;
  /** The passed fd, for activated sockets. */
  fd?: number;
  name?: string;
  /** A passed connection (the address is its peer's), not a listening socket. */
  connection?: boolean;
}

/** What `setup` returns: the addresses of this thread's sockets, in the order asked. */
export interface SrvLoopResult {
  tcp: BoundAddress[];
  udp: BoundAddress[];
  activated: BoundAddress[];
}

/** The counters this module adds to the loop's stats (`stats().app`). */
export interface SrvAppStats {
  /** Bytes delivered to JavaScript (data, echo and http modes). */
  jsBytes: number;
  /** HTTP requests answered with 200. */
  requests: number;
  /** HTTP requests refused (400, 404, 408, 413, 431, 501, …). */
  httpErrors: number;
  /** file mode: body bytes sent from files. */
  fileBytes: number;
  /** Passed connections (inetd, `Accept=yes`) this loop serves that are still open. */
  passedOpen: number;
}

function describe(l: Listener): BoundAddress {
  return l.family === 'unix'
    ? { proto: 'unix', address: l.address }
    : { proto: 'tcp', address: l.address, port: l.port!, family: l.family };
}

/** Loop-thread entry: see SrvLoopData. */
export async function setup(loop: Loop, info: LoopInfo): Promise<SrvLoopResult> {
  const d = info.data as SrvLoopData;
  // file mode: the root is opened once, before any connection, and every request's path is
  // opened beneath it, so the kernel keeps lookups inside it. It is the directory --root named
  // at start: renaming or replacing that path later does not change what is served.
  let files: FileCache | undefined;
  if (d.mode === 'file') {
    const root = await loop.open(d.root!, { directory: true }); // closed with the loop, like every file of it
    const keep = d.fileCache ?? 1024;
    files = new FileCache(loop, { beneath: root, max: Math.max(keep, 1), validMs: keep > 0 ? (d.fileCacheValidMs ?? 1000) : 0 });
  }
  const app: SrvAppStats = { jsBytes: 0, requests: 0, httpErrors: 0, fileBytes: 0, passedOpen: 0 };
  // http and file modes: connections a header timeout may end (`since`: when the current
  // request head began, 0 when none is in progress).
  const heads = new Map<Socket, { readonly since: number; readonly body?: boolean; abort(answer: Buffer): void }>();

  const serve = (s: Socket): void => {
    s.onClose(() => heads.delete(s));
    // An idle keep-alive connection (or one stalled mid-request) is closed natively.
    if ((d.mode === 'http' || d.mode === 'file') && d.keepaliveTimeoutMs > 0) s.setIdleTimeout(d.keepaliveTimeoutMs);
    switch (d.mode) {
      // data and echo keep no chunk past their handler (write() copies what it queues): they
      // borrow, so reads land in the loop's one lent arena (docs/api/socket.md#borrowed-chunks).
      case 'data':
        s.onData((b) => {
          app.jsBytes += b.length;
        }, BORROW);
        break;
      case 'echo':
        s.onData((b) => {
          app.jsBytes += b.length;
          // Queue full: stop reading so the peer's sends block, until the queue drains.
          if (!s.write(b)) s.pause();
        }, BORROW);
        s.onDrain(() => s.resume());
        break;
      case 'file':
        heads.set(s, new FileConnection(files!, s, app, { maxBodyBytes: d.maxBodyBytes, dotfiles: d.dotfiles ?? 'ignore' }));
        break;
      case 'http': {
        // since: when the request head in progress began, or (body) when the head ended.
        const state = { conn: new HttpConnection({ maxBodyBytes: d.maxBodyBytes }), since: 0, body: false };
        heads.set(s, {
          get since() {
            return state.since;
          },
          get body() {
            return state.body;
          },
          abort(answer) {
            app.httpErrors++;
            s.onData(() => {});
            if (s.readyState === 'open') s.end(answer);
          },
        });
        s.onData((b) => {
          app.jsBytes += b.length;
          const r = state.conn.feed(b);
          app.requests += r.requests;
          if (r.close && r.out.length > r.requests) app.httpErrors++;
          const body = state.conn.inBody;
          if (state.conn.partial) state.since = state.body ? Date.now() : state.since || Date.now();
          else if (body) state.since = state.body ? state.since : Date.now();
          else state.since = 0;
          state.body = body && !state.conn.partial;
          if (r.out.length > 0 && s.readyState === 'open') {
            if (!s.write(r.out)) s.pause();
          }
          if (r.close) {
            heads.delete(s);
            s.end();
          }
        });
        s.onDrain(() => s.resume());
        break;
      }
    }
  };

  const listenMode = d.mode === 'sink' ? 'sink' : 'data';
  const socketOptions = {
    ...(d.rcvlowat !== undefined ? { lowWaterMark: d.rcvlowat } : {}),
    // file mode answers asynchronously: a request followed by the peer's FIN is still answered.
    ...(d.mode === 'file' ? { allowHalfOpen: true } : {}),
  };
  // A sink listener without a handler keeps its sockets native: no JS object, no JS call per
  // connection (the loop still counts them in stats().sockets).
  const onConn = d.mode === 'sink' ? undefined : serve;
  const result: SrvLoopResult = { tcp: [], udp: [], activated: [] };
  const listeners: Listener[] = [];

  for (const spec of d.tcp) {
    let l: Listener;
    if ('fd' in spec) l = loop.listen({ fd: spec.fd, mode: listenMode, ...socketOptions }, onConn);
    else if ('path' in spec) l = loop.listen({ path: spec.path, ...(spec.permissions !== undefined ? { permissions: spec.permissions } : {}), mode: listenMode, accept: 'shared', ...socketOptions }, onConn);
    else l = loop.listen({ host: spec.host, port: spec.port, name: spec.name, accept: d.accept, mode: listenMode, ...socketOptions }, onConn);
    listeners.push(l);
    result.tcp.push(describe(l));
  }
  // Datagrams: sunk natively (sink, and the HTTP modes), counted in JavaScript (data), or sent
  // back to their sender (echo), in batches either way.
  const serveUdp = (u: UdpSocket): void => {
    if (d.mode === 'echo') {
      u.onMessage((b, from) => {
        app.jsBytes += b.length;
        u.sendTo(b, from);
      });
    } else if (d.mode === 'data') {
      u.onMessage((b) => {
        app.jsBytes += b.length;
      });
    } else {
      u.sink();
    }
  };
  for (const spec of d.udp) {
    const u = loop.udp(spec);
    serveUdp(u);
    result.udp.push({ proto: 'udp', address: u.address, port: u.port });
  }
  for (const a of d.activated) {
    if (a.kind === 'connected') {
      // One connection: served by the first loop of the (only) process; the others leave it.
      if (info.index !== 0) continue;
      const s = loop.adopt({ fd: a.fd, mode: listenMode, ...socketOptions });
      app.passedOpen++;
      void s.closed.then(() => app.passedOpen--); // not onClose: serve() sets that handler
      if (onConn) onConn(s);
      const tcp = s.remoteFamily !== 'unix';
      result.activated.push({
        proto: tcp ? 'tcp' : 'unix',
        address: (tcp ? s.remoteAddress : s.localAddress) ?? '',
        ...(tcp ? { port: s.remotePort! } : {}),
        fd: a.fd,
        name: a.name,
        connection: true,
      });
    } else if (a.kind === 'listening') {
      const l = loop.listen({ fd: a.fd, mode: listenMode, ...socketOptions }, onConn);
      listeners.push(l);
      result.activated.push({ ...describe(l), fd: a.fd, name: a.name });
    } else {
      const u = loop.udp({ fd: a.fd });
      serveUdp(u);
      result.activated.push({ proto: 'udp', address: u.address, port: u.port, fd: a.fd, name: a.name });
    }
  }

  let timer: NodeJS.Timeout | undefined;
  if (d.mode === 'http' || d.mode === 'file') {
    // A slow or stuck client must not hold a connection with half a request forever.
    timer = setInterval(() => {
      const now = Date.now();
      for (const [s, c] of heads) {
        if (c.since === 0 || now - c.since < (c.body ? d.bodyTimeoutMs : d.headerTimeoutMs)) continue;
        heads.delete(s);
        c.abort(TIMEOUT);
      }
    }, Math.max(50, Math.min(1000, Math.min(d.headerTimeoutMs, d.bodyTimeoutMs) / 4)));
  }

  loop.onStats(() => app);
  loop.onClose(() => clearInterval(timer));
  return result;
}
