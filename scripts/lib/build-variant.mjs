// Builds a variant of the addon beside the normal build (which is left alone): the target of
// binding.gyp, its sources reached from `dir`, changed by `edit(target)` (flags, defines, extra
// sources). Returns the path of the built iapp.node; throws with `what` if the build fails.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `dir` relative to the root (e.g. 'build-asan'); `edit` changes the gyp target in place. */
export function buildVariant(dir, what, edit) {
  const out = join(root, dir);
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
  const target = gyp.targets[0];
  target.sources = target.sources.map((s) => `../${s}`);
  edit(target);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'binding.gyp'), JSON.stringify(gyp, null, 2));
  // Against the headers of the Node that runs this, where its install has them (offline).
  const prefix = resolve(dirname(process.execPath), '..');
  const args = [createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'), 'rebuild'];
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const built = spawnSync(process.execPath, args, { cwd: out, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) throw new Error(`the ${what} build failed (see above)`);
  return join(out, 'build', 'Release', 'iapp.node');
}
