// npm run coverage:native: line coverage of the addon's C++ by the whole test suite. Builds the
// addon with gcov instrumentation into build-gcov/ (the normal build is left alone), runs the
// suite against it (IAPP_ADDON, inherited by every program the tests start; test processes exit
// rather than die when stopped, test/coverage.config.ts, so their counts are written), then
// reads the counts with gcov and prints lines run per native/ source file, least covered first.
// Exits 1 if the build or the report fails; a failing test is reported, not fatal here (`npm
// test` is the gate).
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import { buildVariant, root } from './lib/build-variant.mjs';

function fail(message) {
  console.error(`coverage:native: ${message}`);
  process.exit(1);
}

const has = spawnSync('gcov', ['--version'], { encoding: 'utf8' });
if (has.status !== 0) fail('gcov is not installed (it comes with gcc: Debian gcc)');

console.error('coverage:native: building the addon with --coverage in build-gcov/');
let addon;
try {
  addon = buildVariant('build-gcov', 'coverage', (target) => {
    target.cflags_cc = target.cflags_cc.filter((f) => !/^-O/.test(f)).concat(['-O1', '-g', '--coverage']);
    target.ldflags = ['--coverage'];
  });
} catch (e) {
  fail(e.message);
}
const objects = join(root, 'build-gcov', 'build', 'Release', 'obj.target');

/** Every directory under `dir` holding .gcda files, with them. */
function gcdaDirs(dir, out = new Map()) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) gcdaDirs(p, out);
    else if (name.endsWith('.gcda')) out.set(dir, [...(out.get(dir) ?? []), p]);
  }
  return out;
}
for (const files of gcdaDirs(objects).values()) for (const f of files) rmSync(f); // a fresh count

const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const tests = spawnSync(process.execPath, [vitest, 'run', '--config', 'test/coverage.config.ts', ...process.argv.slice(2)], {
  cwd: root,
  env: { ...process.env, IAPP_ADDON: addon },
  stdio: 'inherit',
});

// gcov's summary per source file: "File '<path>'" then "Lines executed:<pct>% of <n>".
const perFile = new Map();
for (const [dir, files] of gcdaDirs(objects)) {
  const r = spawnSync('gcov', ['-n', '-o', dir, ...files], { cwd: join(root, 'build-gcov', 'build'), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) fail(`gcov failed: ${r.stderr}`);
  for (const m of r.stdout.matchAll(/File '([^']+)'\nLines executed:([\d.]+)% of (\d+)/g)) {
    const file = relative(root, join(root, 'build-gcov', 'build', m[1]));
    // Each source once, from its own object: its .cc files, not the headers every object includes.
    if (!/^native\/.*\.cc$/.test(file) || perFile.has(file)) continue;
    const lines = Number(m[3]);
    perFile.set(file, { lines, run: Math.round((Number(m[2]) / 100) * lines) });
  }
}
if (perFile.size === 0) fail('no counts were written: did any process that loaded the addon exit normally?');
const rows = [...perFile].sort((a, b) => a[1].run / a[1].lines - b[1].run / b[1].lines);
const pct = (x) => `${((x.run / x.lines) * 100).toFixed(1)}%`.padStart(7);
for (const [file, x] of rows) console.log(`${pct(x)}  ${String(x.run).padStart(5)} of ${String(x.lines).padEnd(5)} ${file}`);
const total = rows.reduce((a, [, x]) => ({ run: a.run + x.run, lines: a.lines + x.lines }), { run: 0, lines: 0 });
console.log(`${pct(total)}  ${String(total.run).padStart(5)} of ${String(total.lines).padEnd(5)} native/ in all (${rows.length} files)`);
if (tests.status !== 0) console.error(`coverage:native: NOTE: the tests failed (exit ${tests.status ?? tests.signal}), so some code may show unrun`);
