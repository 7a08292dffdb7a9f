// The module every iapp-srv loop thread runs: listens (or adopts passed sockets), serves in the
// chosen mode, and counts what JavaScript sees (loop.onStats).

import type { File, Listener, Loop, LoopInfo, Socket, UdpSocket } from '../src/index.js';
import { FileConnection, type Dotfiles } from './files.js';
import { HttpConnection, TIMEOUT } from './http.js';

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
  /** Sockets from socket activation: adopted as listeners, or as UDP sockets if they are not. */
  activated: { fd: number; name: string }[];
  headerTimeoutMs: number;
  /** http and file modes: the largest request body (Content-Length) accepted; past it, 413. */
  maxBodyBytes: number;
  /** file mode: the directory served (absolute). */
  root?: string;
  /** file mode: what a path with a segment starting with `.` gets. */
  dotfiles?: Dotfiles;
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
  let root: File | undefined;
  if (d.mode === 'file') {
    root = await loop.open(d.root!, { directory: true }); // closed with the loop, like every file of it
  }
  const app: SrvAppStats = { jsBytes: 0, requests: 0, httpErrors: 0, fileBytes: 0 };
  // http and file modes: connections a header timeout may end (`since`: when the current
  // request head began, 0 when none is in progress).
  const heads = new Map<Socket, { readonly since: number; abort(answer: Buffer): void }>();

  const serve = (s: Socket): void => {
    s.onClose(() => heads.delete(s));
    switch (d.mode) {
      case 'data':
        s.onData((b) => {
          app.jsBytes += b.length;
        });
        break;
      case 'echo':
        s.onData((b) => {
          app.jsBytes += b.length;
          // Queue full: stop reading so the peer's sends block, until the queue drains.
          if (!s.write(b)) s.pause();
        });
        s.onDrain(() => s.resume());
        break;
      case 'file':
        heads.set(s, new FileConnection(loop, root!, s, app, { maxBodyBytes: d.maxBodyBytes, dotfiles: d.dotfiles ?? 'ignore' }));
        break;
      case 'http': {
        const state = { conn: new HttpConnection({ maxBodyBytes: d.maxBodyBytes }), since: 0 };
        heads.set(s, {
          get since() {
            return state.since;
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
          state.since = state.conn.partial ? state.since || Date.now() : 0;
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
  const lowWaterMark = d.rcvlowat !== undefined ? { lowWaterMark: d.rcvlowat } : {};
  // A sink listener without a handler keeps its sockets native: no JS object, no JS call per
  // connection (the loop still counts them in stats().sockets).
  const onConn = d.mode === 'sink' ? undefined : serve;
  const result: SrvLoopResult = { tcp: [], udp: [], activated: [] };
  const listeners: Listener[] = [];

  for (const spec of d.tcp) {
    let l: Listener;
    if ('fd' in spec) l = loop.listen({ fd: spec.fd, mode: listenMode, ...lowWaterMark }, onConn);
    else if ('path' in spec) l = loop.listen({ path: spec.path, ...(spec.permissions !== undefined ? { permissions: spec.permissions } : {}), mode: listenMode, accept: 'shared', ...lowWaterMark }, onConn);
    else l = loop.listen({ host: spec.host, port: spec.port, name: spec.name, accept: d.accept, mode: listenMode, ...lowWaterMark }, onConn);
    listeners.push(l);
    result.tcp.push(describe(l));
  }
  for (const spec of d.udp) {
    const u = loop.udp({ ...spec, mode: 'sink' });
    result.udp.push({ proto: 'udp', address: u.address, port: u.port });
  }
  for (const a of d.activated) {
    // A passed socket is a listening stream socket or a datagram socket; without getsockopt the
    // library tells which by refusing to listen on a datagram one.
    try {
      const l = loop.listen({ fd: a.fd, mode: listenMode, ...lowWaterMark }, onConn);
      listeners.push(l);
      result.activated.push({ ...describe(l), fd: a.fd, name: a.name });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EINVAL' && code !== 'ENOTSOCK' && code !== 'EOPNOTSUPP' && code !== 'EPROTOTYPE') throw e;
      let u: UdpSocket;
      try {
        u = loop.udp({ fd: a.fd, mode: 'sink' });
      } catch {
        throw e; // neither: the listen error says more
      }
      result.activated.push({ proto: 'udp', address: u.address, port: u.port, fd: a.fd, name: a.name });
    }
  }

  let timer: NodeJS.Timeout | undefined;
  if (d.mode === 'http' || d.mode === 'file') {
    // A slow or stuck client must not hold a connection with half a request forever.
    timer = setInterval(() => {
      const now = Date.now();
      for (const [s, c] of heads) {
        if (c.since === 0 || now - c.since < d.headerTimeoutMs) continue;
        heads.delete(s);
        c.abort(TIMEOUT);
      }
    }, Math.max(50, Math.min(1000, d.headerTimeoutMs / 4)));
  }

  loop.onStats(() => app);
  loop.onClose(() => clearInterval(timer));
  return result;
}
