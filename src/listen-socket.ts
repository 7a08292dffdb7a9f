import { unlinkSync } from 'node:fs';
import { isIP } from 'node:net';

import { LISTEN_BACKLOG } from './defaults.js';
import { native } from './native.js';

// Listening sockets made before any loop.
declare module './native.js' {
  interface Addon {
    listenSocket(spec: { host?: string; port?: number; path?: string; permissions?: number; backlog?: number; ipv6Only?: boolean }): NativeAddress & { fd: number };
    closeFd(fd: number): void;
  }
}

/** A listening socket made on this thread and served by nobody here: for child processes. */
export interface ListeningSocket {
  /** The fd, to pass to a child process (e.g. in `spawn`'s `stdio`), which serves it with `loop.listen({ fd })`. */
  readonly fd: number;
  /** The bound address (the path for a Unix socket) and port (the real one when 0 was asked for). */
  readonly address: string;
  readonly port: number | undefined;
  readonly family: 'IPv4' | 'IPv6' | 'unix';
  /** Closes this process's copy (children keep theirs) and, for a Unix socket, removes its path. */
  close(): void;
}

/**
 * Binds and listens without watching the socket: the way to share one listening socket between
 * processes (a Unix path, which several processes cannot bind, or a TCP socket to be shared
 * rather than spread with SO_REUSEPORT). Pass `fd` to child processes; each serves it on its
 * loops with `loop.listen({ fd })`, and the kernel wakes one loop per connection. Nothing here
 * accepts, so no connection is taken by the parent. `permissions` sets a Unix socket file's mode
 * between bind and listen (see `ListenOptions.permissions`). Throws IappError (EADDRINUSE,
 * EACCES, ENOENT for a missing directory, …).
 */
export function listenSocket(options: { host?: string; port?: number; path?: string; permissions?: number; backlog?: number; ipv6Only?: boolean }): ListeningSocket {
  if (options.permissions !== undefined) {
    if (options.path === undefined) throw new TypeError('permissions is for a Unix path');
    if (!Number.isInteger(options.permissions) || options.permissions < 0 || options.permissions > 0o7777)
      throw new RangeError(`permissions must be file mode bits from 0 to 0o7777, got ${String(options.permissions)}`);
  }
  if (options.path === undefined) {
    if (!Number.isInteger(options.port) || options.port! < 0 || options.port! > 65535)
      throw new RangeError(`port must be an integer from 0 to 65535, got ${String(options.port)}`);
    const host = options.host === 'localhost' ? '127.0.0.1' : options.host ?? '::';
    if (isIP(host) === 0) throw new TypeError(`host must be a numeric IP address or 'localhost', got '${host}'`);
    options = { ...options, host };
  }
  const info = native.listenSocket({ backlog: LISTEN_BACKLOG, ...options });
  let open = true;
  return {
    fd: info.fd,
    address: info.address ?? '',
    port: info.family === 'unix' ? undefined : info.port,
    family: info.family ?? 'unix',
    close() {
      if (!open) return;
      open = false;
      native.closeFd(info.fd);
      if (options.path !== undefined) {
        try {
          unlinkSync(options.path);
        } catch {
          // already removed
        }
      }
    },
  };
}
