// npm run test:kqueue: the whole suite on the kqueue backend. Builds libkqueue from the shared
// third_party copy and the addon with IAPP_KQUEUE and IAPP_PORTABLE into build-kqueue/ (see
// build-kqueue.mjs; the normal build is left alone), then runs vitest with IAPP_ADDON pointing at
// it, in the test processes and in every program they start. Tests that cannot mean anything on
// this build skip with the reason in their name. Arguments are passed to vitest (e.g. a file).
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildKqueueAddon } from './build-kqueue.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
let addon;
try {
  addon = buildKqueueAddon();
} catch (e) {
  console.error(`test:kqueue: ${e.message}`);
  process.exit(1);
}
// The suite must run on what was asked for: the addon itself says what it was built for.
const info = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(addon)}).build))`], { encoding: 'utf8' });
const build = info.status === 0 ? JSON.parse(info.stdout) : undefined;
if (!build || build.poller !== 'kqueue' || !build.libkqueue || !build.portable) {
  console.error(`test:kqueue: ${addon} is not a portable kqueue build over libkqueue: ${info.stdout || info.stderr}`);
  process.exit(1);
}
console.error(`test:kqueue: ${JSON.stringify(build)}`);
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const run = spawnSync(process.execPath, [vitest, 'run', ...process.argv.slice(2)], {
  cwd: root,
  env: { ...process.env, IAPP_ADDON: addon },
  stdio: 'inherit',
});
const seconds = Math.round((Date.now() - started) / 1000);
if (run.status !== 0) {
  console.error(`test:kqueue: the suite failed on the kqueue backend (exit ${run.status ?? run.signal}) after ${seconds} s`);
  process.exit(1);
}
console.error(`test:kqueue: the suite passed on the kqueue backend over libkqueue, in ${seconds} s with the build`);
