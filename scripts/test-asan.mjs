// npm run test:asan: builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer into
// build-asan/ (the normal build is left alone) and runs the test suite against it. Node itself is
// not instrumented, so the sanitizer runtimes are preloaded (LD_PRELOAD); IAPP_ADDON points the
// loader at the instrumented addon, in the test processes and in every program they start.
// Any report fails the run, including one from a child process whose test did not notice.
// Arguments are passed to vitest (e.g. a test file).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build-asan');
const logs = join(out, 'reports');
const require = createRequire(import.meta.url);

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

// The same target as binding.gyp, with sanitizer flags, its sources reached from build-asan/.
const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
const target = gyp.targets[0];
target.sources = target.sources.map((s) => `../${s}`);
target.cflags_cc = target.cflags_cc.filter((f) => !/^-O/.test(f)).concat(['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined']);
target.ldflags = ['-fsanitize=address,undefined'];
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'binding.gyp'), JSON.stringify(gyp, null, 2));
const prefix = resolve(dirname(process.execPath), '..');
const args = [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild'];
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
console.error('test:asan: building the addon with -fsanitize=address,undefined in build-asan/');
const built = spawnSync(process.execPath, args, { cwd: out, stdio: ['ignore', 'ignore', 'inherit'] });
if (built.status !== 0) fail('the sanitizer build failed (see above)');

rmSync(logs, { recursive: true, force: true });
mkdirSync(logs);
const env = {
  ...process.env,
  IAPP_ADDON: join(out, 'build', 'Release', 'iapp.node'),
  LD_PRELOAD: runtimes.join(' '),
  // Leaks are not checked here: Node's own allocations at exit would drown ours. The tests'
  // leak checks (test/setup/leaks.ts) count fds, threads and native handles instead.
  ASAN_OPTIONS: `detect_leaks=0:halt_on_error=1:log_path=${join(logs, 'asan')}`,
  UBSAN_OPTIONS: `print_stacktrace=1:halt_on_error=1:log_path=${join(logs, 'ubsan')}`,
};
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const run = spawnSync(process.execPath, [vitest, 'run', ...process.argv.slice(2)], { cwd: root, env, stdio: 'inherit' });

const reports = readdirSync(logs);
for (const f of reports) {
  console.error(`\n--- ${f} ---`);
  console.error(readFileSync(join(logs, f), 'utf8'));
}
if (reports.length > 0) fail(`${reports.length} sanitizer report(s), above (also in ${logs})`);
if (run.status !== 0) fail(`the tests failed under the sanitizers (exit ${run.status ?? run.signal})`);
console.error('test:asan: every test passed with no AddressSanitizer or UndefinedBehaviorSanitizer report');
