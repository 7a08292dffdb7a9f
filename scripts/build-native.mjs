// Builds the native addon with node-gyp against the headers of the Node that runs this script.
// Nothing is downloaded: when the running Node ships its headers (include/node beside its binary,
// as Debian's and the official tarballs do), node-gyp is pointed at them with --nodedir.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const prefix = resolve(dirname(process.execPath), '..');
const args = [gyp, 'rebuild'];
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
if (process.env.IAPP_DEBUG) args.push('--debug');
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error('iapp: building the native addon failed (see above). It needs python3, make, a C++17 ' +
    "compiler and Node's headers (include/node beside the node binary, or node-gyp's cache).");
  process.exit(r.status ?? 1);
}
