// Lists the public methods (functions, and methods of classes: test/types/public-api.txt, which
// types.test.ts keeps equal to the published types) whose name appears in no test, fixture or
// example. A name that appears nowhere is certainly not exercised; one that appears may still not
// be (a common name such as `close` matches everywhere), so this is a lower bound of what is
// untested, not line coverage. (Line coverage is not measured: the loop code runs in worker
// threads, which vitest's V8 coverage does not follow, so it would call most of src/ uncovered.)
//
//   node scripts/api-coverage.mjs            prints the list; exits 0
//   node scripts/api-coverage.mjs --json     one JSON object { methods, unreferenced }
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const api = readFileSync(join(root, 'test', 'types', 'public-api.txt'), 'utf8').split('\n');

// Callable members of classes (`Class.name: (args) => T`) and exported functions.
const classes = new Set(api.filter((l) => l.startsWith('class ')).map((l) => l.slice(6).split(':')[0]));
const methods = [];
for (const l of api) {
  let m = /^(\w+)\.(\w+): \(/.exec(l);
  if (m && classes.has(m[1])) methods.push({ name: `${m[1]}.${m[2]}`, word: m[2] });
  m = /^function (\w+):/.exec(l);
  if (m) methods.push({ name: m[1], word: m[1] });
}

// Every test, fixture and example file, as one text.
const files = [];
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (f === 'types' || f === 'node_modules') continue;
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(ts|mjs|js)$/.test(f)) files.push(p);
  }
};
walk(join(root, 'test'));
walk(join(root, 'examples'));
const text = files.map((f) => readFileSync(f, 'utf8')).join('\n');

const unreferenced = methods.filter((m) => !new RegExp(`\\b${m.word}\\b`).test(text)).map((m) => m.name);
if (process.argv.includes('--json')) console.log(JSON.stringify({ methods: methods.length, unreferenced }));
else {
  console.log(`api-coverage: ${methods.length} public methods; ${unreferenced.length} named in no test, fixture or example:`);
  for (const n of unreferenced) console.log(`  ${n}`);
}
