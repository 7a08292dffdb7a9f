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
