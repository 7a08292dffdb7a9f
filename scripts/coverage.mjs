// npm run coverage: line and function coverage of src/, srv/ and clt/ by the whole test suite,
// including the code that runs in loop threads and in the programs the tests start. Vitest's own
// coverage sees neither (it follows the test process's main thread only), so this runs the suite
// under NODE_V8_COVERAGE, which every thread and child process inherits and writes on exit, and
// c8 maps what V8 recorded in dist/ back to the TypeScript through the source maps. Then it lists
// the public methods no test names (scripts/api-coverage.mjs).
//
// Writes coverage/ (index.html, coverage-summary.json) and prints the per-file table. Exits 1 if
// the report could not be made; a failing test is reported, not fatal here (`npm test` is the
// gate).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const raw = mkdtempSync(join(tmpdir(), 'iapp-v8-coverage-'));
const run = (cmd, args, env = process.env) => spawnSync(cmd, args, { cwd: root, env, stdio: 'inherit' });

try {
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const tests = run(process.execPath, [vitest, 'run', '--config', 'test/coverage.config.ts', ...process.argv.slice(2)], { ...process.env, NODE_V8_COVERAGE: raw });
  const c8 = join(root, 'node_modules', 'c8', 'bin', 'c8.js');
  const report = run(process.execPath, [
    c8, 'report',
    '--temp-directory', raw,
    '--reports-dir', join(root, 'coverage'),
    '--include', 'dist/src/**', '--include', 'dist/srv/**', '--include', 'dist/clt/**',
    '--reporter', 'text', '--reporter', 'html', '--reporter', 'json-summary',
  ]);
  if (report.status !== 0) {
    console.error('coverage: c8 could not make the report (see above)');
    process.exit(1);
  }
  run(process.execPath, [join(root, 'scripts', 'api-coverage.mjs')]);
  console.error(`coverage: report in coverage/index.html${tests.status === 0 ? '' : `; NOTE: the tests failed (exit ${tests.status ?? tests.signal}), so some code may show uncovered`}`);
} finally {
  rmSync(raw, { recursive: true, force: true });
}
