// systemd's socket activation protocol (sd_listen_fds(3)): a service manager that opened the
// sockets passes them as fds 3, 4, … and says so in LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES.
// inetd-style managers and `systemd-socket-activate` speak the same protocol; with Accept=yes
// (`systemd-socket-activate --accept`) the one passed socket is a connection the manager accepted.
import { native } from './native.js';

// What kind of socket an inherited fd is.
declare module './native.js' {
  interface Addon {
    socketKind(fd: number): { kind: 'listening' | 'connected' | 'stream' | 'datagram' | 'other'; family: 'IPv4' | 'IPv6' | 'unix' | 'other' };
  }
}

/** First fd passed by the service manager (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** A socket passed by the service manager. */
export interface ActivatedSocket {
  /** The fd number in this process (3, 4, …). */
  fd: number;
  /** Its name from LISTEN_FDNAMES (`FileDescriptorName=` in the .socket unit), `'unknown'` when not given. */
  name: string;
  /**
   * What it is: a listening stream socket (`loop.listen({ fd })`), a connection the manager
   * accepted (`loop.adopt({ fd })`), a datagram socket (`loop.udp({ fd })`), another stream
   * socket, or not a socket.
   */
  kind: 'listening' | 'connected' | 'stream' | 'datagram' | 'other';
  family: 'IPv4' | 'IPv6' | 'unix' | 'other';
}

/**
 * Says what the socket at `fd` is (as `listenFds()` does for each passed fd): inetd, for one,
 * passes a connection as fd 0 without any variable. Throws IappError (EBADF) when `fd` is not
 * open.
 */
export function socketKind(fd: number): Pick<ActivatedSocket, 'kind' | 'family'> {
  return native.socketKind(fd);
}

/**
 * Reads the sockets passed by a service manager, as `sd_listen_fds(unset = true)` does, and says
 * what each is.
 *
 * Returns `[]` when LISTEN_FDS is unset, or when LISTEN_PID names another process (the variables
 * were inherited from a parent and are not meant for us). The three variables are removed from
 * `env` either way, so child processes do not take the sockets for theirs.
 *
 * Throws `Error` when the variables are malformed (LISTEN_FDS not a positive count, LISTEN_PID
 * not a number) or name an fd that is not open: the service manager and the program disagree,
 * which should not be ignored.
 *
 * @param env - the environment to read (and clean); `process.env` by default
 * @param pid - this process's id; `process.pid` by default
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): ActivatedSocket[] {
  const pidText = env.LISTEN_PID;
  const fdsText = env.LISTEN_FDS;
  const namesText = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (fdsText === undefined) return [];
  if (pidText === undefined || !/^\d+$/.test(pidText))
    throw new Error(`socket activation: LISTEN_PID '${pidText ?? ''}' is not a process id`);
  if (Number(pidText) !== pid) return [];
  if (!/^\d+$/.test(fdsText)) throw new Error(`socket activation: LISTEN_FDS '${fdsText}' is not a count`);
  const count = Number(fdsText);
  // Names are optional; a list of the wrong length is ignored as sd_listen_fds_with_names does.
  const names = namesText?.split(':');
  const named = names !== undefined && names.length === count;
  return Array.from({ length: count }, (_, i) => {
    const fd = LISTEN_FDS_START + i;
    let what: ReturnType<typeof native.socketKind>;
    try {
      what = native.socketKind(fd);
    } catch {
      throw new Error(`socket activation: LISTEN_FDS says ${count} sockets were passed, but fd ${fd} is not open`);
    }
    return { fd, name: named ? names[i]! : 'unknown', ...what };
  });
}
