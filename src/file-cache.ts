// An open-file cache for one loop: a file served again and again is opened and stat'ed once per
// validity window instead of once per request, so a cached answer makes no trip to the disk pool.
import { File, type FileStat, type OpenOptions } from './file.js';

/** What a loop offers a cache: its `open`. */
export interface FileOpener {
  open(path: string, options?: OpenOptions): Promise<File>;
}

export interface FileCacheOptions {
  /** Every path is opened beneath this directory (see `OpenOptions.beneath`). */
  beneath?: File;
  /** Most files kept open at once; the least recently used is closed past it. Default 1024. */
  max?: number;
  /**
   * How long, in milliseconds, an entry is used before the path is opened and stat'ed again.
   * Default 1000. A file replaced, removed or changed on disk within that time may still be
   * answered from the descriptor opened before (as nginx's `open_file_cache_valid`); 0 opens
   * every time (the cache then only coalesces opens of one path that run at once).
   */
  validMs?: number;
}

/**
 * A cached open file in use, and what `stat()` said when it was opened. Call `release()` once
 * done with it (after the `sendFile` or reads on it have resolved): the cache closes a file it
 * has dropped only when no one holds it. Do not close `file` yourself.
 */
export interface CachedFile {
  readonly file: File;
  readonly stat: FileStat;
  /** Gives the file back to the cache. Idempotent. */
  release(): void;
}

class Entry {
  users = 0;
  dropped = false;
  constructor(
    readonly file: File,
    readonly stat: FileStat,
    readonly at: number,
  ) {}

  // Closing a file no one holds; a sendFile already queued on it still keeps its descriptor open.
  close(): void {
    if (this.dropped && this.users === 0) void this.file.close().catch(() => {});
  }
}

class Lease implements CachedFile {
  #e: Entry | undefined;
  constructor(e: Entry) {
    this.#e = e;
    e.users++;
  }
  get file(): File {
    return (this.#e ?? fail()).file;
  }
  get stat(): FileStat {
    return (this.#e ?? fail()).stat;
  }
  release(): void {
    const e = this.#e;
    if (e === undefined) return;
    this.#e = undefined;
    e.users--;
    e.close();
  }
}

function fail(): never {
  throw new Error('FileCache: a released CachedFile was used');
}
/** What a cache counts. */
export interface FileCacheStats {
  /** Answers given from an entry still valid. */
  hits: number;
  /** Opens (and stats) made: a path not cached, or cached longer than `validMs`. */
  opens: number;
  /** Entries closed to stay within `max`. */
  evictions: number;
  /** Files open in the cache now. */
  size: number;
}

/**
 * Keeps files of one loop open with their stat, bounded and least-recently-used first out, for
 * servers that answer the same files many times (`iapp-srv --mode file` uses one per loop).
 * Failed opens are not cached: a path that did not exist is looked up again next time. An entry
 * is only ever a descriptor opened under the confinement of `beneath`, so a symlink changed to
 * lead out later cannot make the cache answer from outside. Usable on its loop's thread only.
 *
 * ```ts
 * const cache = new FileCache(loop, { beneath: root, max: 1024, validMs: 1000 });
 * const { file, stat } = await cache.get('index.html');
 * await socket.sendFile(file, { length: stat.size });
 * ```
 */
export class FileCache {
  readonly #loop: FileOpener;
  readonly #beneath: File | undefined;
  readonly #max: number;
  readonly #validMs: number;
  // Insertion order is use order: a hit moves its entry to the end, eviction takes the first.
  readonly #entries = new Map<string, Entry>();
  // Opens in flight, so that requests for one path at once share one open.
  readonly #opening = new Map<string, Promise<Entry>>();
  readonly #stats: FileCacheStats = { hits: 0, opens: 0, evictions: 0, size: 0 };
  #closed = false;

  constructor(loop: FileOpener, options: FileCacheOptions = {}) {
    const max = options.max ?? 1024;
    const validMs = options.validMs ?? 1000;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`FileCache: max must be a positive integer (got ${String(max)})`);
    if (!(typeof validMs === 'number' && validMs >= 0 && Number.isFinite(validMs)))
      throw new RangeError(`FileCache: validMs must be a finite number >= 0 (got ${String(validMs)})`);
    if (options.beneath !== undefined && !(options.beneath instanceof File)) throw new TypeError('FileCache: beneath must be a File (a directory)');
    this.#loop = loop;
    this.#beneath = options.beneath;
    this.#max = max;
    this.#validMs = validMs;
  }

  /**
   * The open file at `path` and its stat: from the cache while the entry is valid, else opened
   * (read-only) and stat'ed now. Rejects as `loop.open` and `File.stat` do.
   */
  get(path: string): Promise<CachedFile> {
    if (this.#closed) return Promise.reject(new Error('FileCache: closed'));
    const e = this.#entries.get(path);
    if (e !== undefined) {
      if (performance.now() - e.at < this.#validMs) {
        this.#stats.hits++;
        this.#entries.delete(path);
        this.#entries.set(path, e);
        return Promise.resolve(new Lease(e));
      }
      this.#drop(path, e);
    }
    let p = this.#opening.get(path);
    if (p === undefined) {
      p = this.#open(path);
      this.#opening.set(path, p);
      const done = (): void => void this.#opening.delete(path);
      p.then(done, done);
    }
    // Each caller holds its own lease, taken as the open settles, before its own code runs.
    return p.then((entry) => new Lease(entry));
  }

  async #open(path: string): Promise<Entry> {
    this.#stats.opens++;
    const at = performance.now();
    const file = await this.#loop.open(path, this.#beneath !== undefined ? { beneath: this.#beneath } : {});
    let stat: FileStat;
    try {
      stat = await file.stat();
    } catch (err) {
      void file.close().catch(() => {});
      throw err;
    }
    const e = new Entry(file, stat, at);
    if (this.#closed || this.#validMs === 0) {
      e.dropped = true; // closes when its last user releases it
      return e;
    }
    const old = this.#entries.get(path);
    if (old !== undefined) this.#drop(path, old);
    this.#entries.set(path, e);
    while (this.#entries.size > this.#max) {
      const [oldest, o] = this.#entries.entries().next().value as [string, Entry];
      this.#drop(oldest, o);
      this.#stats.evictions++;
    }
    return e;
  }

  #drop(path: string, e: Entry): void {
    this.#entries.delete(path);
    e.dropped = true;
    e.close();
  }

  /** Forgets `path` (closing its file), so that the next `get` opens it again. */
  invalidate(path: string): void {
    const e = this.#entries.get(path);
    if (e !== undefined) this.#drop(path, e);
  }

  /** What the cache has counted. */
  stats(): FileCacheStats {
    return { ...this.#stats, size: this.#entries.size };
  }

  /** Closes every cached file (those in use once released); later `get`s reject. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const [path, e] of [...this.#entries]) this.#drop(path, e);
    await Promise.all([...this.#opening.values()].map((p) => p.catch(() => {})));
  }
}
