import { constants as fsc } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

import { IappError, iappError } from './errors.js';
import { native as addon, Rec, type NativeLoop } from './native.js';
import type { RecordTable } from './records.js';

// Files: each call starts a disk job that a File record completes.
declare module './native.js' {
  interface NativeLoop {
    /** beneath: 0, or the id of an open directory the path must resolve beneath. */
    fileOpen(req: number, path: string, flags: number, mode: number, beneath: number): void;
    fileClose(req: number, file: number): void;
    fileStat(req: number, file: number): void;
    fileTruncate(req: number, file: number, length: number): void;
    fileRead(req: number, file: number, buffers: readonly Uint8Array[], offset: number): void;
    fileWrite(req: number, file: number, buffers: readonly Uint8Array[], offset: number): void;
    fileSync(req: number, file: number, dataOnly: boolean): void;
    /** length -1: to the end of src. */
    fileCopy(req: number, src: number, dst: number, srcOffset: number, dstOffset: number, length: number): void;
    diskEngine(): 'io_uring' | 'pool';
  }
  interface Addon {
    /** The most threads the process-wide disk pool may start; returns the value in force. */
    setDiskThreads(n: number): number;
    /** 0 auto, 1 pool, 2 io_uring: for loops whose files are set up from now on (process-wide). */
    setDiskEngine(engine: number): void;
    /** true: opens beneath a directory use the portable walk; false: the kernel's primitive. */
    setConfinement(walk: boolean): void;
  }
}

/** How to open a file: Node's flag strings, with the same meaning as in `fs.open`. */
export type OpenFlags = 'r' | 'r+' | 'w' | 'w+' | 'wx' | 'wx+' | 'a' | 'a+' | 'ax' | 'ax+';

export interface OpenOptions {
  /** Default `'r'`. */
  flags?: OpenFlags;
  /** Permission bits for a file the open creates (before the umask). Default 0o666. */
  mode?: number;
  /**
   * An open directory of the same loop that `path` (then relative) must stay beneath. The
   * kernel resolves the path from the directory's descriptor and refuses every way out — `..`
   * past it, an absolute symlink, a relative symlink that climbs out, a /proc magic link — with
   * `EXDEV` (`ELOOP` for a magic link or more than 40 symlinks); symlinks that stay inside work.
   * Atomic on Linux ≥ 5.6 (openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) and FreeBSD ≥ 13
   * (O_RESOLVE_BENEATH); elsewhere a component-by-component walk that never follows a link
   * blindly and never asks the kernel for `..` (see `confinement()` and docs/security.md for the
   * one race it leaves). Hard links and mount points inside the directory are not ways out: what
   * they lead to is inside as far as any path lookup can tell.
   */
  beneath?: File;
  /** Fail with ENOTDIR unless the path names a directory (O_DIRECTORY). Default false. */
  directory?: boolean;
}

/** How opens beneath a directory are confined in this process: see `confinement()`. */
export type Confinement = 'openat2' | 'O_RESOLVE_BENEATH' | 'walk';

declare module './native.js' {
  interface Addon {
    confinement(): Confinement;
  }
}

/**
 * What `open(path, { beneath })` uses in this process: `'openat2'` (Linux ≥ 5.6) or
 * `'O_RESOLVE_BENEATH'` (FreeBSD ≥ 13), one atomic lookup in the kernel; or `'walk'`, the
 * portable fallback (macOS, older kernels, a seccomp filter that refuses openat2, or forced by
 * `setConfinement('walk')` / `IAPP_CONFINEMENT=walk`). The first call may ask the kernel once.
 * Cannot fail.
 */
export function confinement(): Confinement {
  return addon.confinement();
}

/**
 * Forces the portable walk for opens beneath a directory (`'walk'`), or goes back to the
 * kernel's primitive where there is one (`'auto'`, the default). Process-wide, for the opens
 * started from now on. Meant for tests, which prove both paths on one machine, and for a
 * platform whose primitive misbehaves. `IAPP_CONFINEMENT=walk` in the environment does the same
 * when the main thread loads iapp.
 */
export function setConfinement(how: 'auto' | 'walk'): void {
  if (how !== 'auto' && how !== 'walk') throw new TypeError(`setConfinement: 'auto' or 'walk', not ${JSON.stringify(how)}`);
  addon.setConfinement(how === 'walk');
}

// Loop threads share the process's setting: only the main thread reads the environment.
if (isMainThread && process.env.IAPP_CONFINEMENT !== undefined) {
  const how = process.env.IAPP_CONFINEMENT;
  if (how !== 'auto' && how !== 'walk') throw new TypeError(`iapp: IAPP_CONFINEMENT must be 'auto' or 'walk', not ${JSON.stringify(how)}`);
  setConfinement(how);
}

/** What `File.stat()` reports. */
export interface FileStat {
  size: number;
  /** Last modification, in milliseconds since the epoch. */
  mtimeMs: number;
  /** Type and permission bits (st_mode). */
  mode: number;
  /** Bytes the file occupies on disk (less than `size` for a sparse file). */
  allocated: number;
  isFile: boolean;
  isDirectory: boolean;
}

export interface CopyOptions {
  /** Where to start reading the source. Default 0. */
  srcOffset?: number;
  /** Where to start writing the destination. Default 0. */
  dstOffset?: number;
  /** Bytes to copy. Default: up to the end of the source. */
  length?: number;
}

const FLAGS: Record<OpenFlags, number> = {
  r: fsc.O_RDONLY,
  'r+': fsc.O_RDWR,
  w: fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC,
  'w+': fsc.O_RDWR | fsc.O_CREAT | fsc.O_TRUNC,
  wx: fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_EXCL,
  'wx+': fsc.O_RDWR | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_EXCL,
  a: fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND,
  'a+': fsc.O_RDWR | fsc.O_CREAT | fsc.O_APPEND,
  ax: fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | fsc.O_EXCL,
  'ax+': fsc.O_RDWR | fsc.O_CREAT | fsc.O_APPEND | fsc.O_EXCL,
};

/** @internal Checks an offset or length: a safe non-negative integer (so offsets past 4 GiB are exact). */
export function checkSize(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`${name} must be a non-negative integer (got ${String(v)})`);
  return v;
}

type Settle = (result: number, syscall: string, v: Float64Array, at: number) => void;

/**
 * A loop's disk requests: each native call starts one job on the disk pool and a record with the
 * request number settles it. @internal
 */
export class FileRequests {
  readonly native: NativeLoop;
  #next = 1;
  #pending = new Map<number, Settle>();

  constructor(native: NativeLoop) {
    this.native = native;
  }

  get pending(): number {
    return this.#pending.size;
  }

  #idle: (() => void) | undefined;
  /** Resolves once no request is pending. */
  idle(): Promise<void> {
    return this.#pending.size === 0 ? Promise.resolve() : new Promise((r) => (this.#idle = r));
  }

  /** Starts a job with `start(req)` and resolves with what `done` makes of its result. */
  run<T>(context: string, start: (req: number) => void, done: (result: number, v: Float64Array, at: number) => T): Promise<T> {
    const req = this.#next++;
    start(req); // throws synchronously (closed file, closed loop): nothing was started
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(req, (result, syscall, v, at) => {
        if (result < 0) reject(IappError.fromErrno(-result, syscall, context));
        else {
          try {
            resolve(done(result, v, at));
          } catch (e) {
            reject(e);
          }
        }
      });
    });
  }

  /** Takes the File records of its loop. */
  register(t: RecordTable): void {
    t.on(Rec.File, (req, r, o) => this.complete(req, r, o));
  }

  /** A kRecFile record: [kind, req, result, syscall, v2..v5] at `at`. */
  complete(req: number, v: Float64Array, at: number): void {
    const settle = this.#pending.get(req);
    if (!settle) return;
    this.#pending.delete(req);
    if (this.#pending.size === 0) this.#idle?.();
    settle(v[at + 2]!, addon.syscallNames[v[at + 3]!] ?? '', v, at);
  }

  /** Opens `path` on this loop. */
  open(path: string, options: OpenOptions = {}): Promise<File> {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError('open: path must be a non-empty string');
    if (path.includes('\0')) throw new TypeError('open: path must not contain NUL bytes');
    const flags = FLAGS[options.flags ?? 'r'];
    if (flags === undefined)
      throw new TypeError(`open: unknown flags ${JSON.stringify(options.flags)} (use one of ${Object.keys(FLAGS).join(', ')})`);
    const mode = options.mode ?? 0o666;
    const dir = options.beneath;
    if (dir !== undefined) {
      if (!(dir instanceof File) || !dir._of(this)) throw new TypeError('open: beneath must be a File opened on this loop (a directory)');
      if (path.startsWith('/')) throw new TypeError(`open: with beneath, the path must be relative (got ${JSON.stringify(path)})`);
      if (dir.closed) return Promise.reject(iappError('ERR_FILE_CLOSED', `open: ${dir.path} (beneath) is closed`, dir.path));
    }
    const all = flags | (options.directory === true ? fsc.O_DIRECTORY : 0);
    const shown = dir !== undefined ? `${dir.path.replace(/\/$/, '')}/${path}` : path;
    return this.run(shown, (req) => this.native.fileOpen(req, path, all, mode, dir?.id ?? 0), (id) => new File(this, id, shown));
  }
}

/**
 * An open file on one loop. Every operation runs on the native disk pool (never blocking the
 * loop) and resolves on the loop's thread. Reads and writes name their offset, so several may be
 * in flight at once; offsets past 4 GiB are exact.
 */
export class File {
  /** The path it was opened with. */
  readonly path: string;
  /** @internal */
  readonly id: number;
  #io: FileRequests;
  #closing: Promise<void> | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;

  /** @internal Files are made by `loop.open()`. */
  constructor(io: FileRequests, id: number, path: string) {
    this.#io = io;
    this.id = id;
    this.path = path;
  }

  /** @internal Whether this file belongs to `io` (its loop). */
  _of(io: FileRequests): boolean {
    return this.#io === io;
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  #op<T>(what: string, start: (req: number) => void, done: (result: number, v: Float64Array, at: number) => T): Promise<T> {
    if (this.#closing) return Promise.reject(iappError('ERR_FILE_CLOSED', `${what}: ${this.path} is closed`, this.path));
    let p: Promise<T>;
    try {
      p = this.#io.run(this.path, start, done);
    } catch (e) {
      return Promise.reject(e);
    }
    this.#inFlight++;
    const settled = (): void => {
      if (--this.#inFlight === 0) this.#idle?.();
    };
    p.then(settled, settled);
    return p;
  }

  /**
   * Reads up to `length` bytes at `offset` into a new Buffer; it is shorter only at the end of
   * the file.
   */
  read(length: number, offset: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(checkSize('length', length));
    checkSize('offset', offset);
    return this.#op('read', (req) => this.#io.native.fileRead(req, this.id, [buf], offset), (n) => buf.subarray(0, n));
  }

  /** Reads into `buffers` in order, starting at `offset`. Resolves with the bytes read. */
  readv(buffers: readonly Uint8Array[], offset: number): Promise<number> {
    checkSize('offset', offset);
    if (!Array.isArray(buffers) || !buffers.every((b: unknown) => b instanceof Uint8Array))
      throw new TypeError('readv: buffers must be an array of Uint8Array');
    const held: Uint8Array[] = [...buffers];
    return this.#op('readv', (req) => this.#io.native.fileRead(req, this.id, held, offset), (n) => n);
  }

  /**
   * Writes all of `data` at `offset` (a file opened with an `a` flag appends whatever the
   * offset). Resolves with the bytes written. Do not change the buffers until it resolves.
   */
  write(data: Uint8Array | readonly Uint8Array[] | string, offset: number): Promise<number> {
    checkSize('offset', offset);
    const held: Uint8Array[] = typeof data === 'string' ? [Buffer.from(data)] : ArrayBuffer.isView(data) ? [data as Uint8Array] : [...(data as readonly Uint8Array[])];
    if (!held.every((b: unknown) => b instanceof Uint8Array)) throw new TypeError('write: data must be a string, a Uint8Array or an array of them');
    return this.#op('write', (req) => this.#io.native.fileWrite(req, this.id, held, offset), (n) => n);
  }

  /** Flushes the file to its storage (fsync; fdatasync with `dataOnly`). */
  sync(options: { dataOnly?: boolean } = {}): Promise<void> {
    return this.#op('sync', (req) => this.#io.native.fileSync(req, this.id, options.dataOnly === true), () => undefined);
  }

  stat(): Promise<FileStat> {
    return this.#op(
      'stat',
      (req) => this.#io.native.fileStat(req, this.id),
      (_r, v, at) => {
        const mode = v[at + 6]!;
        return {
          size: v[at + 4]!,
          mtimeMs: v[at + 5]!,
          mode,
          allocated: v[at + 7]!,
          isFile: (mode & fsc.S_IFMT) === fsc.S_IFREG,
          isDirectory: (mode & fsc.S_IFMT) === fsc.S_IFDIR,
        };
      },
    );
  }

  /** Sets the file's size: cut, or extended with zeros (a hole, on most filesystems). */
  truncate(length: number): Promise<void> {
    checkSize('length', length);
    return this.#op('truncate', (req) => this.#io.native.fileTruncate(req, this.id, length), () => undefined);
  }

  /**
   * Closes the file after the operations in flight on it finish. A `sendFile` still queued on a
   * socket keeps the descriptor open until it is sent. Idempotent.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      const idle = this.#inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => (this.#idle = r));
      this.#closing = idle.then(() =>
        this.#io.run(this.path, (req) => this.#io.native.fileClose(req, this.id), () => undefined),
      );
    }
    return this.#closing;
  }
}

/**
 * Copies `length` bytes (default: to the end of `src`) from `src` at `srcOffset` into `dst` at
 * `dstOffset`, with copy_file_range where the kernel offers it (no bytes through user space;
 * reflinks on filesystems that share extents) and pread/pwrite elsewhere. Paths are opened and
 * closed around the copy (`dst` created or truncated); Files are used as they are. Resolves with
 * the bytes copied. @internal (users call `loop.copyFile()`)
 */
export async function copyFile(io: FileRequests, src: File | string, dst: File | string, options: CopyOptions = {}): Promise<number> {
  const srcOffset = checkSize('srcOffset', options.srcOffset ?? 0);
  const dstOffset = checkSize('dstOffset', options.dstOffset ?? 0);
  const length = options.length === undefined ? -1 : checkSize('length', options.length);
  const from = typeof src === 'string' ? await io.open(src) : src;
  let to: File | undefined;
  try {
    to = typeof dst === 'string' ? await io.open(dst, { flags: 'w' }) : dst;
    if (from.closed || to.closed) throw iappError('ERR_FILE_CLOSED', 'copyFile: a file is closed');
    const target = to;
    return await io.run(
      `${from.path} -> ${target.path}`,
      (req) => io.native.fileCopy(req, from.id, target.id, srcOffset, dstOffset, length),
      (n) => n,
    );
  } finally {
    if (typeof src === 'string') await from.close();
    if (typeof dst === 'string' && to) await to.close();
  }
}
