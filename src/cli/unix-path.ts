// Unix socket files a program binds (iapp-srv and iapp-proxy): made with the mode --unix-mode
// asks, never in the way of the next start, never left behind.
// - --unix-mode: octal permission bits, only where a unix:/path is listened on.
// - Before binding: a socket file nobody answers on (a server killed with SIGKILL, or a crash,
//   leaves one) is removed; a file a server still answers on, or one that is not a socket, stops
//   the program with a line that says so. Nothing else is ever removed.
// - After binding: the file's identity (device and inode) is remembered, and at exit, however the
//   process ends short of SIGKILL, the path is removed if it is still that same file.
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';

import { UsageError, type Endpoint } from './args.js';

/**
 * --unix-mode's value as permission bits (`660`, `0600`), or undefined when absent. Throws a
 * UsageError for a value that is not octal bits, or when none of `listens` is a unix:/path.
 */
export function parseUnixMode(value: string | undefined, listens: (Endpoint | undefined)[]): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-7]{3,4}$/.test(value)) throw new UsageError(`--unix-mode ${value}: permission bits in octal, such as 660 or 0600`);
  if (!listens.some((e) => e?.path !== undefined)) throw new UsageError('--unix-mode is for a unix:/path --listen address');
  return parseInt(value, 8);
}

/** Why a path cannot be bound, in one line: what is there and what to do. */
export class UnixPathError extends Error {}

/**
 * Makes `path` free to bind: nothing there, or a stale socket file (which is removed, and the
 * function resolves `true`). Rejects with a UnixPathError when its directory is missing, when a
 * server answers there, when the path is not a socket, or when it cannot be checked.
 */
export async function claimUnixPath(path: string): Promise<boolean> {
  const dir = dirname(path);
  if (!existsSync(dir)) throw new UnixPathError(`unix:${path}: directory ${dir} does not exist: create it or choose another path`);
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new UnixPathError(`unix:${path}: cannot check the path (${(e as Error).message})`);
  }
  if (!st.isSocket()) throw new UnixPathError(`unix:${path}: the path exists and is not a socket: remove it or choose another path`);
  const answer = await new Promise<string | undefined>((resolve) => {
    const c = net.connect({ path });
    c.once('connect', () => {
      c.destroy();
      resolve(undefined);
    });
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  if (answer === undefined) throw new UnixPathError(`unix:${path}: address in use: a server answers there; stop it or choose another path`);
  // ECONNREFUSED: a socket file nobody listens on, left by a server that did not get to remove it.
  if (answer !== 'ECONNREFUSED') throw new UnixPathError(`unix:${path}: cannot tell whether a server uses it (${answer}); remove it if none does`);
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UnixPathError(`unix:${path}: cannot remove the stale socket file (${(e as Error).message})`);
  }
  return true;
}

/**
 * claimUnixPath for every `--listen` endpoint that is a unix:/path, telling `note` of each stale
 * file removed. Rejects with the first UnixPathError, its message starting `--listen unix:…`.
 */
export async function claimListenPaths(listens: (Endpoint | undefined)[], note: (line: string) => void): Promise<void> {
  for (const e of listens) {
    if (e?.path === undefined) continue;
    try {
      if (await claimUnixPath(e.path)) note(`removed the stale socket file ${e.path} (nothing answered on it)`);
    } catch (err) {
      throw err instanceof UnixPathError ? new UnixPathError(`--listen ${err.message}`) : err;
    }
  }
}

const owned = new Map<string, { dev: number; ino: number }>();
let hooked = false;

/** Removes `path` if it is still the file `owned` recorded (the socket this process made). */
function removeIfOurs(path: string): void {
  const id = owned.get(path);
  owned.delete(path);
  if (!id) return;
  try {
    const st = lstatSync(path);
    if (st.dev === id.dev && st.ino === id.ino) unlinkSync(path);
  } catch {
    // already removed (a normal close does it), or replaced: not ours to touch
  }
}

/**
 * Remembers that this process made the socket file at `path` (call it once bound), so that it is
 * removed at exit, whatever the exit path (a second signal's process.exit, an uncaught error),
 * unless something else has replaced it meanwhile.
 */
export function ownUnixPath(path: string): void {
  try {
    const st = lstatSync(path);
    owned.set(path, { dev: st.dev, ino: st.ino });
  } catch {
    return;
  }
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const p of [...owned.keys()]) removeIfOurs(p);
    });
  }
}
