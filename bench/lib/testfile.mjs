// A large scratch file for the file scenarios (bench/sendfile.mjs, bench/copy.mjs): made once in
// os.tmpdir(), filled with non-zero random-looking bytes (no holes, no zero pages, nothing a
// filesystem could compress or share), flushed to disk so that no writeback runs during the
// measurements, read once so that it sits in the page cache, and removed when the process exits
// (normally, on an uncaught error, or through the harness's SIGINT/SIGTERM handler, which exits).
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, openSync, readSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { now } from './harness.mjs';

const MiB = 1 << 20;
const CHUNK = 8 * MiB;
const owned = new Set();
let hooked = false;

/** Removes every file made here that is still there (idempotent). */
export function removeTestFiles() {
  for (const p of owned) {
    rmSync(p, { force: true });
    owned.delete(p);
  }
}

/** Registers `path` for removal at exit (also for files made elsewhere, e.g. copy destinations). */
export function removeAtExit(path) {
  owned.add(path);
  if (!hooked) {
    hooked = true;
    process.once('exit', removeTestFiles);
  }
}

/** A path in os.tmpdir() named after the scenario and this process. */
export const scratchPath = (name, suffix = 'bin') => join(os.tmpdir(), `iapp-bench-${name}-${process.pid}.${suffix}`);

/** Bytes free in the filesystem holding `dir`, or NaN. */
export function freeBytes(dir = os.tmpdir()) {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return NaN;
  }
}

/**
 * Writes `bytes` (a multiple of 1 MiB) of random-looking data to `path` (replacing it), flushes it
 * (fdatasync) and reads it back once. Every MiB is a 1 MiB random block stamped with its index,
 * so no two MiB are alike. Returns { path, bytes, writeS, syncS, warmS, warmGBps }.
 */
export function makeTestFile(path, bytes) {
  if (!(Number.isSafeInteger(bytes) && bytes > 0 && bytes % MiB === 0)) throw new RangeError(`test file size must be a positive multiple of 1 MiB, got ${bytes}`);
  const free = freeBytes();
  if (free < bytes * 2 + 512 * MiB) throw new Error(`${os.tmpdir()} has ${Math.round(free / MiB)} MiB free; the scenario needs about ${Math.round((bytes * 2) / MiB) + 512} MiB`);
  removeAtExit(path);
  const block = randomBytes(MiB);
  const chunk = Buffer.allocUnsafe(CHUNK);
  const t0 = now();
  const fd = openSync(path, 'w');
  let syncS;
  try {
    for (let at = 0; at < bytes; ) {
      const n = Math.min(CHUNK, bytes - at);
      for (let o = 0; o < n; o += MiB) {
        block.copy(chunk, o);
        chunk.writeUInt32LE((at + o) / MiB, o); // the MiB's index: no two alike
        chunk.writeUInt32LE(0x1a4b0000 | (((at + o) / MiB) & 0xffff), o + 4);
      }
      let w = 0;
      while (w < n) w += writeSync(fd, chunk, w, n - w, at + w);
      at += n;
    }
    const t1 = now();
    fdatasyncSync(fd);
    syncS = now() - t1;
  } finally {
    closeSync(fd);
  }
  const writeS = now() - t0 - syncS;
  const w = warm(path);
  if (statSync(path).size !== bytes) throw new Error(`${path}: wrote ${statSync(path).size} bytes, wanted ${bytes}`);
  return { path, bytes, writeS, syncS, ...w };
}

/** Reads `path` once from the start, to the end or `length` bytes (into the page cache). Returns { warmS, warmGBps }. */
export function warm(path, length = Infinity) {
  const t0 = now();
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  let total = 0;
  try {
    for (let n; total < length && (n = readSync(fd, buf, 0, Math.min(CHUNK, length - total), total)) > 0; ) total += n;
  } finally {
    closeSync(fd);
  }
  const warmS = now() - t0;
  return { warmS, warmGBps: total / 1e9 / warmS };
}

/**
 * Compares `samples` 64 KiB blocks of two files at offsets spread over the whole length (first and
 * last block included). Returns the number of blocks that differ.
 */
export function sampleDiff(a, b, size, samples = 32) {
  const BLK = 64 * 1024;
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  const ba = Buffer.alloc(BLK);
  const bb = Buffer.alloc(BLK);
  let bad = 0;
  try {
    for (let i = 0; i < samples; i++) {
      const at = Math.max(0, Math.min(size - BLK, Math.floor(((size - BLK) * i) / (samples - 1))));
      const na = readSync(fa, ba, 0, BLK, at);
      const nb = readSync(fb, bb, 0, BLK, at);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) bad++;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
  return bad;
}
