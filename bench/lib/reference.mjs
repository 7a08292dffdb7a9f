// Builds the C reference programs (bench/reference/*.c) on demand with the system compiler into
// bench/reference/build/ (git-ignored) and returns their paths. A program is rebuilt when its
// source or one of the headers they share (common.h, client.h) is newer than the binary. The compiler is $CC, else the first of cc, gcc, clang found.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const referenceDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'reference');
export const buildDir = join(referenceDir, 'build');
// -pthread: pingpong.c runs two threads (a no-op for the others; needed before glibc 2.34).
export const CFLAGS = ['-O2', '-Wall', '-pthread'];

function findCompiler() {
  const candidates = process.env.CC ? [process.env.CC] : ['cc', 'gcc', 'clang'];
  for (const cc of candidates) {
    const r = spawnSync(cc, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    if (!r.error && r.status === 0) return cc;
  }
  throw new Error(
    `no C compiler found (tried ${candidates.join(', ')}); install one (e.g. apt-get install gcc) ` +
      'or set CC to build the C references in bench/reference/',
  );
}

let compiler;

/** Builds bench/reference/<name>.c if needed; returns the binary's absolute path. */
export function buildReference(name, { log = () => {} } = {}) {
  const src = join(referenceDir, `${name}.c`);
  const out = join(buildDir, name);
  if (!existsSync(src)) throw new Error(`missing source ${src}`);
  // The shared headers count as source too.
  const headers = readdirSync(referenceDir).filter((f) => f.endsWith('.h'));
  const newest = Math.max(statSync(src).mtimeMs, ...headers.map((h) => statSync(join(referenceDir, h)).mtimeMs));
  if (existsSync(out) && statSync(out).mtimeMs >= newest) return out;
  compiler ??= findCompiler();
  mkdirSync(buildDir, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  const args = [...CFLAGS, '-o', tmp, src];
  log(`building ${name}: ${compiler} ${args.join(' ')}`);
  try {
    execFileSync(compiler, args, { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120_000 });
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`compiling ${src} with ${compiler} failed: ${err.message.split('\n')[0]}`);
  }
  renameSync(tmp, out);
  return out;
}

/** Builds every reference the benchmarks use: { sink, push, connect, udpecho }. */
export function buildReferences(opts) {
  return {
    sink: buildReference('sink', opts),
    push: buildReference('push', opts),
    connect: buildReference('connect', opts),
    udpecho: buildReference('udpecho', opts),
  };
}
