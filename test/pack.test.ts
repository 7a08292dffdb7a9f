// The package as a user gets it: `npm pack`, then `npm install <tarball>` into an empty project
// in a temporary directory (the addon is built there by the install script, against the Node
// that runs the test), then an example copied there runs with `import … from 'iapp'` resolved
// from node_modules, the programs' bins answer --help, a TypeScript consumer compiles against the
// installed declarations, and their surface is the one test/types/public-api.txt pins. The
// tarball holds what an install needs (sources for the build, dist/), the docs the README links
// (docs/, the changelog), and nothing of test/, bench/ or a local build. Dependencies come from npm's cache when it has them (CI's `npm ci`
// just filled it), else from the registry.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { publicSurface } from './types/surface.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'iapp-pack-'));
const project = join(dir, 'project');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Under `npm test`, npm's variables (npm_config_local_prefix=this checkout, npm_package_*…)
// would make the nested npm act on this package instead of the project: the commands get none.
// Nor IAPP_ADDON (test:asan and test:node set it): the project must load the addon it built.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'IAPP_ADDON'));

function sh(cmd: string, args: string[], cwd: string, timeout = 60_000): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env });
  return { status: r.status, out: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` };
}

let files: string[] = [];
let tarball = '';

beforeAll(() => {
  // dist/ is what `npm test` just compiled; --ignore-scripts skips `prepare` compiling it again.
  const r = sh('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], root);
  expect(r.status, r.out).toBe(0);
  const [info] = JSON.parse(r.out.slice(r.out.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  files = info!.files.map((f) => f.path);
  tarball = join(dir, info!.filename);
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // The install builds the addon with node-gyp (about half a minute here).
  const install = sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], project, 240_000);
  expect(install.status, install.out).toBe(0);
}, 300_000);

describe('npm pack, then npm install <tarball> in another project', () => {
  it('packs the sources the install builds from and dist/, and nothing of tests, benches or builds', () => {
    for (const f of ['package.json', 'binding.gyp', 'scripts/build-native.mjs', 'native/loop.cc', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/srv/main.js', 'dist/clt/main.js', 'dist/srv/proxy.js', 'examples/echo.mjs', 'README.md']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /^(test|bench|build|node_modules|\.ci)\//.test(f) || f.endsWith('.node'))).toEqual([]);
  });

  it("ships every file the README links to, but for the repository's test/ and bench/", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
    const targets = [...readme.matchAll(/\]\(([^)\s#]+)[^)\s]*\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t) && !/^(test|bench)\//.test(t));
    expect(targets.length).toBeGreaterThan(20);
    expect(targets.filter((t) => !files.includes(t))).toEqual([]);
  });

  it('runs an example that imports iapp from node_modules', () => {
    copyFileSync(join(root, 'examples/echo.mjs'), join(project, 'echo.mjs'));
    const r = sh(process.execPath, ['echo.mjs'], project, 30_000);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/^echoed: hello, iapp$/m);
    // The addon it loaded is the one built in the project, not this checkout's.
    const probe = sh(process.execPath, ['--input-type=module', '-e', "import { createRequire } from 'node:module'; console.log(createRequire(import.meta.url).resolve('iapp'))"], project);
    expect(probe.out.trim()).toBe(join(project, 'node_modules/iapp/dist/src/index.js'));
  }, 60_000);

  it('links the programs, which answer --help', () => {
    for (const bin of ['iapp-srv', 'iapp-clt', 'iapp-proxy']) {
      const r = sh(join(project, 'node_modules/.bin', bin), ['--help'], project);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: ${bin}`, 'm'));
    }
  }, 60_000);

  it('gives a TypeScript consumer the public types, and only those', () => {
    copyFileSync(join(root, 'test/types/consumer.ts'), join(project, 'consumer.ts'));
    const tsconfig = JSON.parse(readFileSync(join(root, 'test/types/tsconfig.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')) as { compilerOptions: Record<string, unknown> };
    // @types/node from this checkout: the consumer project has no dev dependencies of its own.
    tsconfig.compilerOptions.typeRoots = [join(root, 'node_modules/@types')];
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
    const r = sh(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], project);
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
    const installed = publicSurface(join(project, 'node_modules/iapp/dist/src/index.d.ts'));
    expect(installed).toBe(readFileSync(join(root, 'test/types/public-api.txt'), 'utf8'));
  }, 60_000);
});
