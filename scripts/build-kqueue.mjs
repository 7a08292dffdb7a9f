// Builds the addon with the kqueue backend on Linux, over libkqueue (kqueue/kevent emulated on
// epoll, timerfd, eventfd and pidfd), so that the code FreeBSD and macOS run is compiled and run
// here. Everything goes to build-kqueue/ (ignored by git): libkqueue from the shared third_party
// copy (../shared/third_party, or $IAPP_THIRD_PARTY) into build-kqueue/libkqueue, and the addon
// into build-kqueue/build/Release/iapp.node. The normal build is left alone.
//
// The addon is compiled with IAPP_KQUEUE (the poller, timers, child watches, the inbox waker and
// pause/resume as on FreeBSD) and IAPP_PORTABLE (the portable fallbacks instead of Linux's fast
// calls: sink reads into a scratch buffer, pipes by read/write, copies by pread/pwrite, disk jobs
// on the pool), so every fallback runs in CI too.
//
// Run directly (`node scripts/build-kqueue.mjs`) it prints the addon's path; test-kqueue.mjs and
// the bench (`--addon kqueue`) import buildKqueueAddon().
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const kqueueDir = join(root, 'build-kqueue');
export const kqueueAddon = join(kqueueDir, 'build', 'Release', 'iapp.node');

function fail(message) {
  throw new Error(`build-kqueue: ${message}`);
}

function thirdParty() {
  const dir = process.env.IAPP_THIRD_PARTY ? resolve(process.env.IAPP_THIRD_PARTY) : resolve(root, '..', 'shared', 'third_party');
  if (!existsSync(join(dir, 'build-libkqueue.sh')))
    fail(`no libkqueue at ${dir} (expected build-libkqueue.sh there): set IAPP_THIRD_PARTY to the shared third_party folder`);
  return dir;
}

/** Builds libkqueue and the kqueue addon; returns the addon's path. Throws on failure. */
export function buildKqueueAddon({ quiet = false } = {}) {
  if (process.platform !== 'linux') fail('the libkqueue build is for Linux (FreeBSD and macOS build the kqueue backend natively)');
  const log = (m) => quiet || console.error(`build-kqueue: ${m}`);
  for (const tool of ['cmake', 'make'])
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) fail(`${tool} is missing (Debian: apt-get install ${tool})`);
  const prefix = join(kqueueDir, 'libkqueue');
  mkdirSync(kqueueDir, { recursive: true });
  // About 3 s: rebuilt every time, so a change to the shared copy is never missed.
  log(`libkqueue into ${prefix}`);
  const lib = spawnSync('sh', [join(thirdParty(), 'build-libkqueue.sh'), prefix], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (lib.status !== 0) fail('building libkqueue failed (see above)');
  const header = readFileSync(join(prefix, 'include', 'kqueue', 'sys', 'event.h'), 'utf8');
  if (!header.includes('LIBKQUEUE_HAS_POLLABLE_FD'))
    fail('this libkqueue lacks libkqueue_pollable_fd() (the patch in third_party): nothing would ever wake the loop');

  // The target of binding.gyp, with the backend chosen by define instead of by OS.
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
  const target = gyp.targets[0];
  target.sources = target.sources.map((s) => `../${s}`);
  delete target.conditions;
  target.defines = [...target.defines, 'IAPP_KQUEUE=1', 'IAPP_PORTABLE=1'];
  target.include_dirs = [...target.include_dirs, join(prefix, 'include', 'kqueue')];
  target.libraries = [`-L${join(prefix, 'lib')}`, '-lkqueue', `-Wl,-rpath,${join(prefix, 'lib')}`];
  writeFileSync(join(kqueueDir, 'binding.gyp'), JSON.stringify(gyp, null, 2));
  const require = createRequire(import.meta.url);
  const node = resolve(dirname(process.execPath), '..');
  const args = [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild', '--loglevel=warn'];
  if (existsSync(join(node, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${node}`);
  log('the addon with IAPP_KQUEUE and IAPP_PORTABLE into build-kqueue/');
  const built = spawnSync(process.execPath, args, { cwd: kqueueDir, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) fail('building the kqueue addon failed (see above)');
  return kqueueAddon;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(buildKqueueAddon());
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
