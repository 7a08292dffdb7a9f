// npm run test:valgrind: runs test/valgrind-core.mjs under valgrind's memcheck and counts the
// errors whose stack passes through the addon (iapp.node). Node and V8 themselves give memcheck
// plenty to say (a JIT, custom allocators); those are counted apart and not held against us.
// Leaks are checked too (--leak-check=full): a block definitely lost whose allocation stack passes
// through iapp.node is an error (--errors-for-leak-kinds=definite); possibly-lost and reachable
// blocks are not (threads parked until exit, Node's own caches).
// Exits 1 on any error from our code or a wrong result. Takes a few minutes: not part of npm test.
//
//   node scripts/valgrind.mjs               the check
//   node scripts/valgrind.mjs --prove-leak  builds the addon with IAPP_TEST_LEAK (64 bytes dropped
//                                           at each load) into build-leak/ and runs the same check,
//                                           which must fail on that leak: exits 0 when it does
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildVariant, root } from './lib/build-variant.mjs';

const has = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
if (has.status !== 0) {
  console.error('test:valgrind: valgrind is not installed (Debian: apt-get install valgrind)');
  process.exit(1);
}
const proveLeak = process.argv.includes('--prove-leak');
let addon = '';
if (proveLeak) {
  // The normal target with IAPP_TEST_LEAK defined, built beside the normal build.
  console.error('test:valgrind: building the addon with IAPP_TEST_LEAK in build-leak/');
  try {
    addon = buildVariant('build-leak', 'leak', (target) => {
      target.defines = [...target.defines, 'IAPP_TEST_LEAK=1'];
    });
  } catch (e) {
    console.error(`test:valgrind: ${e.message}`);
    process.exit(1);
  }
}
const work = mkdtempSync(join(tmpdir(), 'iapp-memcheck-'));
const xml = join(work, 'memcheck.xml');
const args = [
  '--tool=memcheck',
  '--xml=yes',
  `--xml-file=${xml}`,
  '--num-callers=40',
  '--leak-check=full',
  '--show-leak-kinds=definite',
  '--errors-for-leak-kinds=definite',
  // One known, intended report: on Linux TCP the sink discards with recv(fd, NULL, n, MSG_TRUNC),
  // which memcheck takes for a write into address 0.
  `--suppressions=${join(root, 'test', 'valgrind.supp')}`,
  process.execPath,
  join(root, 'test', 'valgrind-core.mjs'),
];
console.error(`test:valgrind: ${has.stdout.trim()} over test/valgrind-core.mjs (a few minutes)`);
const started = Date.now();
const run = spawnSync('valgrind', args, { cwd: root, stdio: 'inherit', env: { ...process.env, IAPP_ADDON: addon } });
const text = readFileSync(xml, 'utf8');
rmSync(work, { recursive: true, force: true });

// Each <error> is one distinct report; its <stack> frames name the object they ran in.
const errors = [...text.matchAll(/<error>([\s\S]*?)<\/error>/g)].map((m) => m[1]);
const ours = errors.filter((e) => /<obj>[^<]*iapp\.node<\/obj>/.test(e));
for (const e of ours) {
  const kind = /<kind>(.*?)<\/kind>/.exec(e)?.[1];
  const what = /<what>(.*?)<\/what>/.exec(e)?.[1] ?? /<text>(.*?)<\/text>/.exec(e)?.[1];
  const frames = [...e.matchAll(/<fn>(.*?)<\/fn>(?:[\s\S]*?<file>(.*?)<\/file>[\s\S]*?<line>(.*?)<\/line>)?/g)].slice(0, 8);
  console.error(`\n${kind}: ${what}`);
  for (const f of frames) console.error(`    ${f[1]}${f[2] ? ` (${f[2]}:${f[3]})` : ''}`);
}
for (const m of text.matchAll(/<pair>\s*<count>(\d+)<\/count>\s*<name>(.*?)<\/name>\s*<\/pair>/g))
  console.error(`suppressed as intended: ${m[2]} ×${m[1]}`);
const others = new Map();
for (const e of errors.filter((x) => !ours.includes(x))) {
  const kind = /<kind>(.*?)<\/kind>/.exec(e)?.[1] ?? '?';
  others.set(kind, (others.get(kind) ?? 0) + 1);
}
if (others.size) console.error(`elsewhere: ${[...others].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
const seconds = Math.round((Date.now() - started) / 1000);
console.error(`\ntest:valgrind: ${ours.length} error(s) in iapp.node, ${errors.length - ours.length} elsewhere (Node, V8), in ${seconds} s`);
if (run.status !== 0) {
  console.error(`test:valgrind: the program failed under memcheck (exit ${run.status ?? run.signal})`);
  process.exit(1);
}
if (proveLeak) {
  const leaks = ours.filter((e) => /<kind>Leak_DefinitelyLost<\/kind>/.test(e) && /LeakOnPurpose/.test(e));
  if (leaks.length === 0) {
    console.error('test:valgrind --prove-leak: the deliberate leak was NOT reported: the leak check does not work');
    process.exit(1);
  }
  console.error(`test:valgrind --prove-leak: the deliberate leak was reported (${leaks.length}×, definitely lost, in LeakOnPurpose): the leak check fires`);
  process.exit(0);
}
process.exit(ours.length > 0 ? 1 : 0);
