// npm run test:asan: builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer into
// build-asan/ (the normal build is left alone) and runs the test suite against it. Node itself is
// not instrumented, so the sanitizer runtimes are preloaded (LD_PRELOAD); IAPP_ADDON points the
// loader at the instrumented addon, in the test processes and in every program they start.
// Any report fails the run, including one from a child process whose test did not notice.
// Arguments are passed to vitest (e.g. a test file).
//
// LeakSanitizer is on, and checks at exit every process that loaded the addon and exits normally
// (scripts/asan/lsan-at-exit.cc; test forks are stopped by signal and do not; others, such as tsc,
// are not checked: at their size the check takes minutes). Most of what it reports is Node's and
// V8's, which do not free their heaps at exit. A leak is ours, and fails the run, when
// the first frame above the allocator is in iapp.node: a block our code allocated itself. V8
// objects made through N-API calls (Buffers, references) start in Node's frames and are Node's to
// free. `--prove-leak` builds the addon with IAPP_TEST_LEAK (64 bytes dropped at every load) into
// build-asan-leak/, loads it in a process that exits normally, and passes only if this check
// reports that leak.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { buildVariant, root } from './lib/build-variant.mjs';

const proveLeak = process.argv.includes('--prove-leak');
const out = join(root, proveLeak ? 'build-asan-leak' : 'build-asan');
const logs = join(out, 'reports');

function fail(message) {
  console.error(`test:asan: ${message}`);
  process.exit(1);
}

if (process.platform !== 'linux') fail('this script preloads the GCC sanitizer runtimes and runs on Linux only');

// The runtimes that match the compiler node-gyp uses (g++ by default, or $CXX).
const cxx = process.env.CXX || 'g++';
const runtimes = ['libasan.so', 'libubsan.so'].map((lib) => {
  const r = spawnSync(cxx, [`-print-file-name=${lib}`], { encoding: 'utf8' });
  const path = r.stdout?.trim();
  if (r.status !== 0 || !path || !path.startsWith('/') || !existsSync(path))
    fail(`${cxx} has no ${lib}: install the sanitizer runtimes (Debian: libasan8 and libubsan1, which g++ pulls in)`);
  return path;
});

// The target of binding.gyp with sanitizer flags (and the leak check at exit), in build-asan/.
console.error(`test:asan: building the addon with -fsanitize=address,undefined${proveLeak ? ' and IAPP_TEST_LEAK' : ''} in ${out.slice(root.length + 1)}/`);
let addon;
try {
  addon = buildVariant(out.slice(root.length + 1), 'sanitizer', (target) => {
    target.sources.push('../scripts/asan/lsan-at-exit.cc');
    target.cflags_cc = target.cflags_cc.filter((f) => !/^-O/.test(f)).concat(['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined']);
    target.ldflags = ['-fsanitize=address,undefined'];
    if (proveLeak) target.defines = [...target.defines, 'IAPP_TEST_LEAK=1'];
  });
} catch (e) {
  fail(e.message);
}

rmSync(logs, { recursive: true, force: true });
mkdirSync(logs);
const env = {
  ...process.env,
  IAPP_ADDON: addon,
  LD_PRELOAD: runtimes.join(' '),
  // Leaks are reported into the logs and sorted out below; they do not change exit statuses
  // (LSan's exitcode), which tests check.
  ASAN_OPTIONS: `detect_leaks=1:leak_check_at_exit=0:halt_on_error=1:log_path=${join(logs, 'asan')}`,
  LSAN_OPTIONS: 'exitcode=0',
  UBSAN_OPTIONS: `print_stacktrace=1:halt_on_error=1:log_path=${join(logs, 'ubsan')}`,
};

// Frames of the allocator itself, before the code that asked for the block.
const ALLOCATOR = /\b(malloc|calloc|realloc|aligned_alloc|posix_memalign|memalign|operator new|__interceptor_\w+|__libc_\w+)\b|libasan\.so|asan_\w+\.cpp/;

/** A report file's leaks ({ bytes, ours, where }) and whether it holds anything else. */
function parseReport(text) {
  const leaks = [];
  for (const block of text.split(/\n(?=(?:Direct|Indirect) leak of )/).slice(1)) {
    const bytes = Number(/leak of (\d+) byte/.exec(block)?.[1] ?? 0);
    const frames = block.split('\n').filter((l) => /^\s+#\d+ /.test(l));
    const first = frames.find((f) => !ALLOCATOR.test(f)) ?? '';
    const where = first.replace(/^\s+#\d+ 0x[0-9a-f]+ in /, '').replace(/^\s+#\d+ 0x[0-9a-f]+ +/, '').trim();
    // Symbolized frames of our build name their source (native/…); others name the module.
    leaks.push({ bytes, ours: /iapp\.node|(^|[\s/])native\/[\w/]+\.(cc|h):\d+/.test(first), where, block });
  }
  const other = /ERROR: AddressSanitizer|runtime error:|ERROR: UndefinedBehaviorSanitizer/.test(text);
  return { leaks, other };
}

/** Reads every report; fails on an error, or a leak of ours; summarizes the rest. */
function judge() {
  const ours = [];
  const elsewhere = new Map();
  let errors = 0;
  for (const f of readdirSync(logs)) {
    const text = readFileSync(join(logs, f), 'utf8');
    const r = parseReport(text);
    if (r.other) {
      errors++;
      console.error(`\n--- ${f} ---\n${text}`);
    }
    for (const l of r.leaks) {
      if (l.ours) ours.push(`--- ${f} ---\n${l.block.trim()}`);
      else {
        const key = l.where.replace(/\+0x[0-9a-f]+/g, '').slice(0, 120) || '(no frame)';
        elsewhere.set(key, (elsewhere.get(key) ?? 0) + l.bytes);
      }
    }
  }
  if (elsewhere.size) {
    const top = [...elsewhere].sort((a, b) => b[1] - a[1]).slice(0, 5);
    console.error(`test:asan: ${elsewhere.size} kind(s) of block left at exit outside iapp (not ours to free), largest: ${top.map(([k, b]) => `${k} (${b} B)`).join('; ')}`);
  }
  return { ours, errors };
}

if (proveLeak) {
  // A process that exits normally, having loaded the addon on its main thread and two loops.
  const mod = join(out, 'idle-loop.mjs');
  writeFileSync(mod, 'export function setup() {}\n');
  const main = join(out, 'load-and-exit.mjs');
  writeFileSync(
    main,
    `const { createRuntime } = await import(${JSON.stringify(join(root, 'dist', 'src', 'index.js'))});
const rt = await createRuntime({ module: ${JSON.stringify(mod)}, threads: 2 });
await rt.close();
`,
  );
  const r = spawnSync(process.execPath, [main], { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) fail(`the leaking build did not run (exit ${r.status ?? r.signal})`);
  const { ours, errors } = judge();
  if (errors > 0) fail(`${errors} sanitizer error report(s) other than leaks, above`);
  const found = ours.filter((l) => /LeakOnPurpose/.test(l));
  if (found.length === 0) fail('the deliberate leak (LeakOnPurpose) was not reported: the leak check does not fire');
  console.error(`test:asan --prove-leak: the deliberate leak was reported as ours (${found.length}×, in LeakOnPurpose): the leak check fires`);
  process.exit(0);
}

const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const run = spawnSync(process.execPath, [vitest, 'run', ...process.argv.slice(2)], { cwd: root, env, stdio: 'inherit' });

const { ours, errors } = judge();
if (ours.length > 0) console.error(`\n${ours.join('\n\n')}`);
if (errors > 0 || ours.length > 0)
  fail(`${errors} sanitizer report(s) and ${ours.length} leak(s) of blocks iapp.node allocated, above (also in ${logs})`);
if (run.status !== 0) fail(`the tests failed under the sanitizers (exit ${run.status ?? run.signal})`);
console.error('test:asan: every test passed with no AddressSanitizer or UndefinedBehaviorSanitizer report and no leak of ours');
