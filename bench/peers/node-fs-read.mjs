// The node-fs peer of bench/disk.mjs, and the read driver and file format both of its systems
// share (bench/servers/iapp-disk-loop.mjs imports them from here, so iapp and Node run the very
// same JavaScript around their reads; bench/disk.mjs writes the file with writeDataFile()).
//
//   node bench/peers/node-fs-read.mjs --path FILE --size BYTES --pattern rand|seq --block BYTES
//        --qd N [--duration S] [--warmup-s S] [--full-every K] [--case LABEL]
//
// As a peer: plain Node, no iapp. fs.promises.open(path, 'r'), then `qd` reads in flight at once,
// each filehandle.read(buf, 0, block, pos) into its own preallocated Buffer, on the main thread;
// libuv's threadpool (4 threads unless UV_THREADPOOL_SIZE says otherwise) runs the preads.
// Prints one JSON line on stdout: {"system":"node-fs", ...measureReads()..., "cpuTotalS"}.
//
// The file: every 4 KiB block k (k = offset / 4096) is 4 KiB of a fixed 1 MiB random-looking block
// (baseBlock(): xorshift32 from a fixed seed, zero bytes replaced, so no zero pages), bytes
// (k % 256) * 4096 onwards, with its first 8 bytes replaced by a stamp: u32le k, u32le k ^ MAGIC.
// Every block is told from every other by its stamp, so a read from a wrong offset is caught even
// where the rest of the bytes agree; the rest catches garbage, stale buffers and short copies.
//
// measureReads(): `qd` slots, each reading into its own Buffer and issuing its next read when the
// previous one resolves. First a check (fails the run): 64 reads spread over the file (first and
// last block included) and a short read across the end of the file, every byte compared. Then
// reads for warmS (uncounted) and durationS: rand = a block-aligned offset from xorshift32
// (uniform over the file), seq = the next block of the file, wrapping at its end (the slots share
// the cursor). The measured phase starts at the first completion at or after warmS (CPU and clock
// sampled there) and ends at the last completion after no new read is issued past durationS (the
// drain is inside). Every read: its length and the stamps of its first and last 4 KiB block;
// every `fullEvery`th read: every byte. Any mismatch fails the run, naming the offset.
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const BLOCK = 4096;
export const MiB = 1 << 20;
const MAGIC = 0x9e3779b9;
const SEED = 0x2545f491;

let base;
/** The 1 MiB random-looking block the file repeats (stamps aside); made once per process. */
export function baseBlock() {
  if (base) return base;
  const words = new Uint32Array(MiB / 4);
  let x = SEED;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  base = Buffer.from(words.buffer);
  for (let i = 0; i < base.length; i++) if (base[i] === 0) base[i] = 0x5b;
  return base;
}

/** The MiB of the file at `mib` (its 256 stamped blocks) into `out` at `at`. */
export function fillMiB(out, at, mib) {
  const b = baseBlock();
  b.copy(out, at);
  for (let j = 0; j < MiB / BLOCK; j++) {
    const k = mib * (MiB / BLOCK) + j;
    out.writeUInt32LE(k >>> 0, at + j * BLOCK);
    out.writeUInt32LE((k ^ MAGIC) >>> 0, at + j * BLOCK + 4);
  }
}

/**
 * Writes the file (`bytes`, a multiple of 1 MiB) and fdatasyncs it, so no writeback runs during
 * the measurements. Returns { writeS, syncS }.
 */
export function writeDataFile(path, bytes) {
  if (!(Number.isSafeInteger(bytes) && bytes > 0 && bytes % MiB === 0)) throw new RangeError(`file size must be a positive multiple of 1 MiB, got ${bytes}`);
  const CHUNK = 8 * MiB;
  const chunk = Buffer.allocUnsafe(CHUNK);
  const t0 = performance.now();
  const fd = openSync(path, 'w');
  let syncS;
  try {
    for (let at = 0; at < bytes; ) {
      const n = Math.min(CHUNK, bytes - at);
      for (let o = 0; o < n; o += MiB) fillMiB(chunk, o, (at + o) / MiB);
      let w = 0;
      while (w < n) w += writeSync(fd, chunk, w, n - w, at + w);
      at += n;
    }
    const t1 = performance.now();
    fdatasyncSync(fd);
    syncS = (performance.now() - t1) / 1000;
  } finally {
    closeSync(fd);
  }
  return { writeS: (performance.now() - t0) / 1000 - syncS, syncS };
}

const stampOk = (buf, o, k) => buf.readUInt32LE(o) === k >>> 0 && buf.readUInt32LE(o + 4) === (k ^ MAGIC) >>> 0;

/**
 * Whether `buf[0, n)` holds what the file has at `pos` (`pos` need not be block-aligned):
 * null if so, else a description of the first difference.
 */
export function checkBytes(buf, n, pos) {
  const b = baseBlock();
  for (let o = 0; o < n; ) {
    const at = pos + o;
    const k = Math.floor(at / BLOCK);
    const inBlk = at - k * BLOCK;
    const len = Math.min(BLOCK - inBlk, n - o);
    // the block's expected bytes [inBlk, inBlk + len): the stamp's part, then the base's
    const kx = (k ^ MAGIC) >>> 0;
    for (let i = inBlk; i < Math.min(8, inBlk + len); i++) {
      const want = i < 4 ? (k >>> (8 * i)) & 255 : (kx >>> (8 * (i - 4))) & 255;
      const got = buf[o + i - inBlk];
      if (got !== want) return `offset ${at + i - inBlk}: byte ${got}, expected ${want} (the stamp of block ${k}${inBlk === 0 && len >= 4 ? `; the bytes read carry ${buf.readUInt32LE(o)}` : ''})`;
    }
    const from = Math.max(inBlk, 8);
    const to = inBlk + len;
    if (from < to) {
      const bo = (k % 256) * BLOCK;
      if (buf.compare(b, bo + from, bo + to, o + from - inBlk, o + to - inBlk) !== 0) return `offset ${at}: bytes ${at + from - inBlk}..${at + to - inBlk} differ from the file's (block ${k})`;
    }
    o += len;
  }
  return null;
}

/**
 * Runs the reads (see the header). `read(slot, buf, pos)` resolves with the bytes it read into
 * `buf` (block bytes at `pos`). Returns the run's figures; throws on any wrong byte or length.
 */
export async function measureReads({ read, size, pattern, block, qd, warmS, durationS, fullEvery = 16 }) {
  if (!(size % block === 0 && block % BLOCK === 0 && size >= block)) throw new RangeError(`size ${size} must be a multiple of block ${block}, itself a multiple of ${BLOCK}`);
  const bufs = Array.from({ length: qd }, () => Buffer.alloc(block)); // alloc: pages touched before any read
  const nBlocks = size / block;
  const fail = (what) => {
    throw new Error(`wrong data: ${what}`);
  };

  // ---- the check: 64 reads spread over the file, all bytes compared, and a short read at its end
  const spots = [];
  for (let i = 0; i < 64; i++) spots.push(Math.round(((nBlocks - 1) * i) / 63) * block);
  let checkReads = 0;
  {
    let next = 0;
    await Promise.all(
      bufs.map(async (buf, slot) => {
        while (next < spots.length) {
          const pos = spots[next++];
          buf.fill(0);
          const n = await read(slot, buf, pos);
          checkReads++;
          if (n !== block) fail(`a read of ${block} at ${pos} got ${n} bytes`);
          const bad = checkBytes(buf, n, pos);
          if (bad) fail(bad);
        }
      }),
    );
    const pos = size - BLOCK / 2; // half a block before the end: a short read
    bufs[0].fill(0);
    const n = await read(0, bufs[0], pos);
    checkReads++;
    if (n !== BLOCK / 2) fail(`a read of ${block} at ${pos} (${BLOCK / 2} before the end) got ${n} bytes, expected ${BLOCK / 2}`);
    const bad = checkBytes(bufs[0], n, pos);
    if (bad) fail(bad);
  }

  // ---- the timed reads
  let x = 0x6d2b79f5; // xorshift32 for rand
  let cursor = 0; // seq: the next block
  const nextPos =
    pattern === 'rand'
      ? () => {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          return ((x >>> 0) % nBlocks) * block;
        }
      : () => {
          const p = cursor * block;
          cursor = cursor + 1 === nBlocks ? 0 : cursor + 1;
          return p;
        };
  const blocksPer = block / BLOCK;
  const t00 = performance.now();
  const tMeasure = t00 + warmS * 1000;
  let tEnd = Infinity;
  let measuring = false;
  let stopping = false;
  let t0 = 0;
  let tLast = 0;
  let cpu0;
  let reads = 0; // counted: completed in the measured phase
  let warmReads = 0;
  let done = 0; // every completion (for fullEvery)
  let fullChecks = 0;
  await Promise.all(
    bufs.map(async (buf, slot) => {
      while (!stopping) {
        const pos = nextPos();
        const n = await read(slot, buf, pos);
        const t = performance.now();
        if (n !== block) fail(`a read of ${block} at ${pos} got ${n} bytes`);
        const k = pos / BLOCK;
        if (!stampOk(buf, 0, k) || !stampOk(buf, block - BLOCK, k + blocksPer - 1)) fail(checkBytes(buf, n, pos) ?? `stamps at ${pos}`);
        if (++done % fullEvery === 0) {
          fullChecks++;
          const bad = checkBytes(buf, n, pos);
          if (bad) fail(bad);
        }
        if (measuring) {
          reads++;
          tLast = t;
          if (t >= tEnd) stopping = true;
        } else if (t >= tMeasure) {
          measuring = true;
          t0 = tLast = t;
          cpu0 = process.cpuUsage();
          tEnd = t + durationS * 1000;
        } else warmReads++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const seconds = (tLast - t0) / 1000;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const bytes = reads * block;
  if (!(reads > 0 && seconds > 0)) throw new Error(`no reads measured (${warmReads} in the warm-up)`);
  return {
    pattern,
    block,
    qd,
    size,
    reads,
    bytes,
    seconds,
    readsPerS: reads / seconds,
    gbps: bytes / 1e9 / seconds,
    cpuS,
    cores: cpuS / seconds,
    cpuPerMReads: (cpuS / reads) * 1e6,
    cpuPerGB: cpuS / (bytes / 1e9),
    warmReads,
    checkReads,
    fullChecks,
    stampChecks: done,
  };
}

/** The options both systems' scripts take. */
export const runOptions = {
  path: { type: 'string' },
  size: { type: 'string' },
  pattern: { type: 'string', default: 'rand' },
  block: { type: 'string', default: '4096' },
  qd: { type: 'string', default: '64' },
  duration: { type: 'string', default: '1' },
  'warmup-s': { type: 'string', default: '0.2' },
  'full-every': { type: 'string', default: '16' },
  case: { type: 'string' },
};
export const RUN_USAGE = '--path FILE --size BYTES --pattern rand|seq --block BYTES --qd N [--duration S] [--warmup-s S] [--full-every K] [--case LABEL]';

/** The measureReads() arguments from parsed runOptions values, or a reason they are bad. */
export function runArgs(v) {
  const a = {
    path: v.path,
    size: Number(v.size),
    pattern: v.pattern,
    block: Number(v.block),
    qd: Number(v.qd),
    durationS: Number(v.duration),
    warmS: Number(v['warmup-s']),
    fullEvery: Number(v['full-every']),
    label: v.case ?? `${v.pattern}-${v.block}-qd${v.qd}`,
  };
  if (!a.path) return { error: '--path is required' };
  if (!Number.isSafeInteger(a.size) || a.size <= 0) return { error: '--size: a positive integer' };
  if (!['rand', 'seq'].includes(a.pattern)) return { error: '--pattern: rand or seq' };
  if (!Number.isSafeInteger(a.block) || a.block < BLOCK || a.block % BLOCK || a.block > 64 * MiB || a.size % a.block) return { error: `--block: a multiple of ${BLOCK} up to 64 MiB that divides --size` };
  if (!Number.isInteger(a.qd) || a.qd < 1 || a.qd > 4096) return { error: '--qd: 1..4096' };
  if (!(a.durationS > 0 && a.durationS <= 60) || !(a.warmS >= 0 && a.warmS <= 60)) return { error: '--duration: (0, 60]; --warmup-s: [0, 60]' };
  if (!Number.isInteger(a.fullEvery) || a.fullEvery < 1) return { error: '--full-every: a positive integer' };
  return { args: a };
}

/** Ends the process with one line on stderr (the harness shows the last lines). */
export function failAndExit(who, err) {
  console.error(`${who}: ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}${err?.stack ? ` [${err.stack.split('\n').slice(1, 3).map((l) => l.trim()).join(' ')}]` : ''}`);
  process.exit(1);
}

/** Gives up (exit 1) if a run is still going long after it should have ended. */
export function giveUpAfter(who, a) {
  const s = Math.max(60, 3 * (a.durationS + a.warmS) + 30);
  setTimeout(() => {
    console.error(`${who}: still running after ${s} s (${a.label}): giving up`);
    process.exit(1);
  }, s * 1000).unref();
}

// ---- the peer ------------------------------------------------------------------------------------
async function main() {
  const who = 'node-fs-read';
  const { values } = parseArgs({ options: runOptions });
  const { args: a, error } = runArgs(values);
  if (error) {
    console.error(`${who}: ${error}\nusage: node bench/peers/node-fs-read.mjs ${RUN_USAGE}`);
    process.exit(2);
  }
  process.on('uncaughtException', (e) => failAndExit(who, e));
  process.on('unhandledRejection', (e) => failAndExit(who, e));
  giveUpAfter(who, a);
  const fh = await open(a.path, 'r');
  const st = await fh.stat();
  if (st.size !== a.size) throw new Error(`${a.path} has ${st.size} bytes, expected ${a.size}`);
  const r = await measureReads({ ...a, read: async (_slot, buf, pos) => (await fh.read(buf, 0, buf.length, pos)).bytesRead });
  await fh.close();
  const u = process.cpuUsage();
  const out = { system: 'node-fs', case: a.label, ...r, uvThreadpool: Number(process.env.UV_THREADPOOL_SIZE) || 4, cpuTotalS: (u.user + u.system) / 1e6 };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
