// What the options of listen, connect, adopt and udp mean: their types, their checks, their
// defaults (from src/defaults.ts) and the native specs they become. Loop (src/loop.ts) opens
// the sockets; dial's own options are src/dialer.ts's.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

import { checkInt } from './check.js';
import { CONNECT_TIMEOUT_MS, LISTEN_BACKLOG, SOCKET_HIGH_WATER_MARK, UDP_HIGH_WATER_MARK } from './defaults.js';
import { iappError } from './errors.js';
import { ReadMode } from './native.js';


export interface NativeListenSpec {
  host?: string;
  port?: number;
  path?: string;
  permissions?: number;
  backlog?: number;
  shared?: boolean;
  ipv6Only?: boolean;
  shed?: boolean;
  group?: string;
  fd?: number;
  mode?: number;
  noDelay?: boolean;
  allowHalfOpen?: boolean;
  highWaterMark?: number;
  quiet?: boolean;
  lowWaterMark?: number;
  priority?: number;
}

export interface NativeConnectSpec {
  host?: string;
  port?: number;
  path?: string;
  localAddress?: string;
  localPort?: number;
  mode?: number;
  noDelay?: boolean;
  allowHalfOpen?: boolean;
  highWaterMark?: number;
  lowWaterMark?: number;
  priority?: number;
}

export interface NativeUdpSpec {
  host?: string;
  port?: number;
  fd?: number;
  group?: string;
  peerHost?: string;
  peerPort?: number;
  /** 0 paused, 1 native sink, 2 datagrams to JS. */
  read?: number;
  highWaterMark?: number;
}

// The native loop opens listeners, connections and UDP sockets from the specs made here.
declare module './native.js' {
  interface NativeLoop {
    listen(spec: NativeListenSpec): NativeAddress & { id: number };
    connect(spec: NativeConnectSpec): number;
    udp(spec: NativeUdpSpec): NativeAddress & { id: number };
    adoptFd(fd: number, spec: { mode: number; noDelay: boolean; allowHalfOpen: boolean; highWaterMark: number; lowWaterMark?: number; priority: number }): number;
  }
}

/** How a socket reads: deliver to JS (`data`), discard natively (`sink`) or not at all yet (`paused`). */
export type ReadModeName = 'data' | 'sink' | 'paused';

export interface SocketOptions {
  /** Read mode a new socket starts in. Default `'data'`. */
  mode?: ReadModeName;
  /** TCP_NODELAY. Default true. */
  noDelay?: boolean;
  /**
   * Keep the write side open after the peer half-closes. Default false: end() automatically, right
   * after the onEnd handler (replies to the data that came before the FIN go out first).
   */
  allowHalfOpen?: boolean;
  /** Write queue size at which write() returns false. Default 256 KiB. */
  highWaterMark?: number;
  /**
   * Receive low-water mark (SO_RCVLOWAT): the loop is woken for this socket only once this many
   * bytes are queued, at end of stream, or when the peer would otherwise stall. Fewer wakes cost
   * the sender less on loopback (a single stream into a sink: 1.3 → 5.7 GB/s with 256 KiB), but
   * smaller amounts are read (and counted) only when more arrive or the peer closes: for sinks
   * and bulk transfers, not request/response. Default: the kernel's (1 byte).
   */
  lowWaterMark?: number;
  /**
   * Dispatch priority of this socket's events (and a listener's accepts) within one drained
   * batch: -128 to 127, higher first. Default 0.
   */
  priority?: number;
  /**
   * Milliseconds with no byte either way after which the socket is closed with ETIMEDOUT
   * (syscall `'idle'`); exact to a quarter of the timeout. Default 0: never. Watched natively:
   * a native sink's sockets time out too, with no JavaScript.
   */
  idleTimeout?: number;
  /** TCP keepalive probes (SO_KEEPALIVE). Default false. */
  keepAlive?: boolean;
  /** With keepAlive: milliseconds of silence before the first probe (whole seconds; default: the system's). */
  keepAliveInitialDelay?: number;
}

/** The native socket options of a spec (native/napi/args.cc, SockOpts), with their defaults. */
export function nativeSocketOptions(o: SocketOptions) {
  return {
    noDelay: o.noDelay ?? true,
    allowHalfOpen: o.allowHalfOpen ?? false,
    highWaterMark: o.highWaterMark ?? SOCKET_HIGH_WATER_MARK,
    ...(o.lowWaterMark !== undefined ? { lowWaterMark: o.lowWaterMark } : {}),
    priority: o.priority ?? 0,
    idleTimeout: o.idleTimeout ?? 0,
    keepAlive: o.keepAlive ?? false,
    keepAliveIdleS: Math.ceil((o.keepAliveInitialDelay ?? 0) / 1000),
  };
}

export interface ListenOptions extends SocketOptions {
  /** Numeric IPv4/IPv6 address or `localhost`. Default `'::'` (all addresses, IPv4 too). */
  host?: string;
  /** TCP port; 0 picks one, shared by every loop of the runtime that listens with the same host and `name`. */
  port?: number;
  /** Unix socket path (instead of host/port). Removed when the last loop closes it. */
  path?: string;
  /**
   * Unix paths: the socket file's permission bits (e.g. `0o660`: owner and group may connect),
   * set between bind and listen, so no client can connect while the file has the umask's mode.
   * Default: what the umask leaves of 0o777.
   */
  permissions?: number;
  /** Kernel accept queue length (capped by net.core.somaxconn). Default 4096: bursts of thousands of connects otherwise overflow it and clients stall ~1 s per retry. */
  backlog?: number;
  /**
   * `'reuseport'` (default for TCP on Linux and FreeBSD): one socket per loop with SO_REUSEPORT
   * (SO_REUSEPORT_LB on FreeBSD), the kernel spreads connections by hash. `'shared'` (default for Unix paths): one socket, every loop waits on it,
   * the kernel wakes one loop per connection (EPOLLEXCLUSIVE).
   */
  accept?: 'reuseport' | 'shared';
  ipv6Only?: boolean;
  /**
   * When no fd can be had for a new connection (EMFILE, ENFILE): `'wait'` (default) pauses
   * accepting with a backoff and leaves clients in the backlog; `'shed'` also takes the oldest
   * pending connection and resets it, using an fd kept in reserve, so its client fails fast.
   */
  onFdExhaustion?: 'wait' | 'shed';
  /**
   * Loops listening on port 0 with the same host and name share one port: the first such call on
   * each loop with the second loop's first, the second with its second, and so on (so two
   * listeners of one loop get two ports). Default `''`.
   */
  name?: string;
  /**
   * Adopt this inherited listening socket (TCP or Unix) instead of binding: socket activation
   * (see `listenFds()`), or a socket a parent process made. Every loop passing the same fd
   * works on its own dup of it, and the kernel wakes one loop per connection. The fd itself is
   * left open, and a Unix path is never removed.
   */
  fd?: number;
}

export interface ConnectOptions extends SocketOptions {
  /** Host name or address. Default `'127.0.0.1'`. Names are resolved with dns.lookup. */
  host?: string;
  port?: number;
  /** Unix socket path (instead of host/port). */
  path?: string;
  /** Local address to bind before connecting (port chosen at connect time where supported). */
  localAddress?: string;
  localPort?: number;
  /** Milliseconds before the attempt fails with ETIMEDOUT. Default 30000; 0 waits for the kernel. */
  timeout?: number;
}

export interface UdpOptions {
  /** Numeric address to bind. Default `'0.0.0.0'` (`'::'` when `peer` is IPv6). */
  host?: string;
  /** Port to bind; 0 (default) picks one, shared by the runtime's loops binding the same host and `name`. */
  port?: number;
  /** Adopt this inherited datagram socket instead of binding. */
  fd?: number;
  /** Connect to this peer: `push`/`send` go there and only its datagrams are received. */
  peer?: { host: string; port: number };
  /**
   * `'sink'`: drain natively with recvmmsg, counting only. Default `'paused'` (not reading until
   * `onMessage()` or `sink()`).
   */
  mode?: 'sink' | 'paused';
  /** Queued send bytes at which `send`/`sendTo` return false. Default 1 MiB. */
  highWaterMark?: number;
  /** Loops binding port 0 with the same host and name share one port (as `listen`'s: the k-th on each loop). Default `''`. */
  name?: string;
}


export const modeOf = (m: ReadModeName | undefined): ReadMode =>
  m === 'sink' ? ReadMode.Sink : m === 'paused' ? ReadMode.Paused : ReadMode.Data;

/**
 * Whether `host` can be a DNS or hosts-file name: dot-separated labels of 1 to 63 letters,
 * digits, '-' or '_', 253 bytes at most, a final dot allowed. Anything else is refused before a
 * lookup: the resolver would cut it at a NUL (and resolve another name) or ask a DNS server
 * about a string no server can answer.
 */
function isHostName(host: string): boolean {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return name.length >= 1 && name.length <= 253 && name.split('.').every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l));
}

export function checkSocketOptions(o: SocketOptions): void {
  if (o.mode !== undefined && o.mode !== 'data' && o.mode !== 'sink' && o.mode !== 'paused')
    throw new TypeError(`mode must be 'data', 'sink' or 'paused', got ${String(o.mode)}`);
  checkInt('highWaterMark', o.highWaterMark, 1, 2 ** 40);
  checkInt('lowWaterMark', o.lowWaterMark, 1, 2 ** 30);
  checkInt('priority', o.priority, -128, 127);
  checkInt('idleTimeout', o.idleTimeout, 0, 2 ** 31 - 1);
  checkInt('keepAliveInitialDelay', o.keepAliveInitialDelay, 0, 2 ** 31 - 1);
  if (o.keepAlive !== undefined && typeof o.keepAlive !== 'boolean') throw new TypeError(`keepAlive must be a boolean, got ${String(o.keepAlive)}`);
}

/**
 * Checks `listen()`'s options and makes the native spec. `watched`: an onConnection handler is
 * set; `group(host)` names the port-sharing group.
 */
export function listenSpec(options: ListenOptions, watched: boolean, group: (host: string) => string): NativeListenSpec & { mode: ReadMode } {
  checkSocketOptions(options);
  checkInt('port', options.port, 0, 65535);
  checkInt('backlog', options.backlog, 1, 1 << 20);
  if (options.accept !== undefined && options.accept !== 'reuseport' && options.accept !== 'shared')
    throw new TypeError(`accept must be 'reuseport' or 'shared', got ${String(options.accept)}`);
  if (options.onFdExhaustion !== undefined && options.onFdExhaustion !== 'wait' && options.onFdExhaustion !== 'shed')
    throw new TypeError(`onFdExhaustion must be 'wait' or 'shed', got ${String(options.onFdExhaustion)}`);
  checkInt('fd', options.fd, 0, 2 ** 31 - 1);
  checkInt('permissions', options.permissions, 0, 0o7777);
  if (options.path === undefined && options.port === undefined && options.fd === undefined)
    throw new TypeError('listen needs a port (0 for any), a Unix path or an inherited fd');
  if (options.permissions !== undefined && options.path === undefined) throw new TypeError('permissions is for a Unix path');
  if (options.path !== undefined && options.accept === 'reuseport')
    throw new TypeError("accept: 'reuseport' is for TCP; a Unix path is one socket shared by the loops (accept: 'shared')");
  let host = options.host ?? '::';
  if (host === 'localhost') host = '127.0.0.1';
  if (options.path === undefined && options.fd === undefined && isIP(host) === 0)
    throw new TypeError(`listen host must be a numeric IP address or 'localhost', got '${host}'`);
  const mode = modeOf(options.mode);
  return {
    ...(options.fd !== undefined ? { fd: options.fd }
      : options.path !== undefined ? { path: options.path, ...(options.permissions !== undefined ? { permissions: options.permissions } : {}) } : { host, port: options.port ?? 0 }),
    backlog: options.backlog ?? LISTEN_BACKLOG,
    // macOS's SO_REUSEPORT does not spread connections (the last bound socket gets them all):
    // there the default is one shared socket.
    shared:
      options.accept === 'shared' ||
      (options.accept === undefined && (options.path !== undefined || process.platform === 'darwin')),
    ipv6Only: options.ipv6Only ?? false,
    shed: options.onFdExhaustion === 'shed',
    group: group(host),
    mode,
    ...nativeSocketOptions(options),
    // A sink nobody watches needs no JS at all per connection: its sockets stay native
    // (no Socket object, no records) until someone sets onConnection.
    quiet: mode === ReadMode.Sink && !watched,
  };
}

/** Checks `connect()`'s options (before any name is resolved). */
export function checkConnect(options: ConnectOptions): void {
  checkSocketOptions(options);
  checkInt('port', options.port, 1, 65535);
  checkInt('localPort', options.localPort, 0, 65535);
  checkInt('timeout', options.timeout, 0, 2 ** 31 - 1);
  if (options.path === undefined && options.port === undefined)
    throw new TypeError('connect needs a port or a Unix path');
}

/** The address `connect()` goes to: a numeric host as it is, a name through dns.lookup. */
export async function resolveHost(options: ConnectOptions): Promise<string> {
  let host = options.host ?? '127.0.0.1';
  if (options.path === undefined && isIP(host) === 0) {
    if (!isHostName(host))
      throw iappError('ENOTFOUND', `cannot resolve host '${host}': not a host name (letters, digits, '-', '_' and dots) nor a numeric address`, host);
    try {
      host = (await lookup(host)).address;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw iappError(err.code ?? 'ENOTFOUND', `cannot resolve host '${host}' (${err.code ?? err.message})`, host);
    }
  }
  return host;
}

/** `connect()`'s native spec, to the resolved `host`, and its timeout. */
export function connectSpec(options: ConnectOptions, host: string): NativeConnectSpec & { mode: ReadMode; timeout: number } {
  return {
    ...(options.path !== undefined ? { path: options.path } : { host, port: options.port }),
    ...(options.localAddress !== undefined ? { localAddress: options.localAddress, localPort: options.localPort ?? 0 } : {}),
    mode: modeOf(options.mode),
    ...nativeSocketOptions(options),
    timeout: options.timeout ?? CONNECT_TIMEOUT_MS,
  };
}

/** Checks `udp()`'s options and makes the native spec; `group(host)` names the port-sharing group. */
export function udpSpec(options: UdpOptions, group: (host: string) => string): NativeUdpSpec & { highWaterMark: number } {
  checkInt('port', options.port, 0, 65535);
  checkInt('fd', options.fd, 0, 2 ** 31 - 1);
  checkInt('highWaterMark', options.highWaterMark, 1, 2 ** 31 - 1);
  if (options.mode !== undefined && options.mode !== 'sink' && options.mode !== 'paused')
    throw new TypeError(`udp mode must be 'sink' or 'paused', got ${String(options.mode)}`);
  let host = options.host ?? (options.peer && isIP(options.peer.host) === 6 ? '::' : '0.0.0.0');
  if (host === 'localhost') host = '127.0.0.1';
  if (options.fd === undefined && isIP(host) === 0) throw new TypeError(`udp host must be a numeric IP address, got '${host}'`);
  if (options.peer) {
    checkInt('peer.port', options.peer.port, 1, 65535);
    if (isIP(options.peer.host) === 0) throw new TypeError(`udp peer host must be a numeric IP address, got '${options.peer.host}'`);
  }
  return {
    ...(options.fd !== undefined ? { fd: options.fd } : { host, port: options.port ?? 0 }),
    group: group(host),
    ...(options.peer ? { peerHost: options.peer.host, peerPort: options.peer.port } : {}),
    read: options.mode === 'sink' ? 1 : 0,
    highWaterMark: options.highWaterMark ?? UDP_HIGH_WATER_MARK,
  };
}
