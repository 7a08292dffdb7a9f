import { constants } from 'node:os';

const names = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) if (!names.has(value)) names.set(value, name);

/** What to do about an error, by code. Shown after the error's summary. */
const hints: Record<string, string> = {
  EADDRINUSE:
    'another socket is bound to this address: stop the other process, pick another port, or listen with the same options from every loop of one runtime (reuseport or shared)',
  EADDRNOTAVAIL:
    'the address is not on this machine, or the ephemeral ports toward this destination are used up: bind another localAddress or spread over more targets',
  EACCES: 'ports below 1024 need privileges: use a port of 1024 or above',
  ECONNREFUSED: 'nothing is listening there: check the host and port and that the server is up',
  ETIMEDOUT: 'no answer in time: check the address and that the server accepts, or raise the timeout',
  ECONNRESET: 'the peer reset the connection (it closed with unread data, crashed or aborted)',
  EPIPE: 'the peer closed its side before everything was written',
  EMFILE:
    'the process is out of file descriptors: raise RLIMIT_NOFILE (ulimit -n), close idle sockets, or spread connections over more processes',
  ENFILE: 'the system is out of file descriptors: raise fs.file-max or use fewer sockets',
  ENOBUFS: 'the kernel is out of socket buffers: lower the number of sockets or buffer sizes',
  ENOMEM: 'the kernel is out of memory for this operation',
  ENOENT: 'no socket file at that path: is the server running, and is the path right?',
  ENAMETOOLONG: 'Unix socket paths are limited to about 100 bytes: use a shorter path',
  EINVAL: 'invalid address: use a numeric IPv4/IPv6 address, a host name that resolves, or a Unix path',
  EBADF: 'it is already closed',
  ENETUNREACH: 'no route to that network from this machine',
  EHOSTUNREACH: 'no route to that host from this machine',
  EAGAIN:
    'a resource is exhausted for now (for a thread: the user\'s process limit, ulimit -u, or memory): use fewer threads or retry later',
  ERR_THREAD_START: 'the process may be out of threads or memory: use fewer threads',
  ERR_THREAD_EXITED: 'the loop thread is gone; see the runtime\'s "exit" event for why',
};

/** The same codes mean something else for a file than for a socket. */
const fileHints: Record<string, string> = {
  ENOENT: 'no such file or directory: check the path',
  EACCES: 'permission denied: check the permissions of the file and its directories',
  EEXIST: 'the file exists (opened with an x flag, which creates only)',
  EISDIR: 'it is a directory, not a file',
  ENOTDIR: 'a component of the path is not a directory',
  ENOSPC: 'the filesystem is full',
  EBADF: 'the file is closed (or not open for this: read on a write-only file, write on a read-only one)',
  ENODATA: 'the file ended before the range asked for: was it truncated while being sent?',
  EFBIG: 'past the largest file size this filesystem allows',
  ESPIPE: 'not seekable (a FIFO, pipe or socket): a File reads and writes at offsets',
  EXDEV: 'the path leads outside the directory it must stay beneath (`..` past it, an absolute path or symlink, or a symlink that climbs out)',
  ELOOP: 'too many symlinks on the way (more than 40, or a loop), or a /proc magic link',
};
const fileSyscalls = new Set(['open', 'openat', 'openat2', 'readlinkat', 'pread', 'pwrite', 'fsync', 'fstat', 'ftruncate', 'close', 'sendfile', 'copy_file_range']);

const brand = Symbol.for('iapp.IappError');

/**
 * The one error class of iapp. `code` is an errno name (`ECONNREFUSED`, `EMFILE`, …) or an
 * `ERR_*` code for errors that are not syscall failures; `errno` is negative as in Node's own
 * errors (`-os.constants.errno.X`), 0 when there is none; `syscall` names the failing call.
 * `instanceof` works across copies of the module loaded by different threads.
 */
export class IappError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  /** The address, path or operation the error is about, when there is one. */
  readonly context: string;

  constructor(message: string, code: string, errno = 0, syscall = '', context = '') {
    super(message);
    this.name = 'IappError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.context = context;
    Object.defineProperty(this, brand, { value: true });
  }

  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[brand] === true;
  }

  /** @internal Builds the error for a failed syscall from a positive errno value. */
  static fromErrno(errno: number, syscall: string, context = ''): IappError {
    const code = names.get(errno) ?? `E${errno}`;
    return new IappError(describe(code, syscall, context), code, -errno, syscall, context);
  }
}

/** An error as it crosses between threads (structured clone keeps no class and no own fields). */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  context?: string;
  stack?: string;
}

/** What of `e` crosses to another thread: everything a handler of the error may look at. */
export function toWire(e: Error, withStack = true): WireError {
  const w: WireError = { name: e.name, message: e.message };
  const x = e as Partial<IappError>;
  if (typeof x.code === 'string') w.code = x.code;
  if (typeof x.errno === 'number') w.errno = x.errno;
  if (typeof x.syscall === 'string') w.syscall = x.syscall;
  if (typeof x.context === 'string') w.context = x.context;
  if (withStack && e.stack !== undefined) w.stack = e.stack;
  return w;
}

/** The error again on this side: an IappError (code, errno, syscall) when it was one. */
export function fromWire(w: WireError): Error {
  const err = w.code !== undefined && (w.errno !== undefined || w.syscall !== undefined || w.name === 'IappError')
    ? new IappError(w.message, w.code, w.errno ?? 0, w.syscall ?? '', w.context ?? '')
    : Object.assign(new Error(w.message), w.code !== undefined ? { code: w.code } : {});
  err.name = w.name;
  if (w.stack !== undefined) err.stack = w.stack;
  return err;
}

/** Ensures `e` is an Error (handlers may throw anything). */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function describe(code: string, syscall: string, context: string): string {
  const head = [syscall, code, context].filter(Boolean).join(' ');
  const hint =
    syscall === 'idle' && code === 'ETIMEDOUT'
      ? 'no byte moved either way within the socket\'s idle timeout (idleTimeout, setIdleTimeout)'
      : ((fileSyscalls.has(syscall) ? fileHints[code] : undefined) ?? hints[code]);
  return hint ? `${head}: ${hint}` : head;
}

/** An error with an `ERR_*` code (not a syscall failure). */
export function iappError(code: string, message: string, context = ''): IappError {
  const hint = hints[code];
  return new IappError(hint ? `${message}: ${hint}` : message, code, 0, '', context);
}
