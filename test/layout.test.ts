// The shape of the TypeScript code, so that it stays easy to read and to change (issue 19): no
// import cycle among the modules of src/ (type-only imports count: a cycle of types still ties
// the files together), and no source file of src/, srv/ or clt/ over 600 lines.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Relative imports of a module: `from './x.js'` (imports and re-exports) and `import('./x.js')` types. */
export function importsOf(file: string, text: string): string[] {
  return [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
}

/** The import cycles of a graph: its strongly connected components of more than one module (Tarjan). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('the TypeScript layout', () => {
  it('finds a cycle where there is one (the check can fail)', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c']]);
    expect(importsOf('/x/src/a.ts', "import type { T } from './b.js';\nexport { U } from '../c.js';\nlet v: import('./d.js').V;")).toEqual([
      '/x/src/b.ts',
      '/x/c.ts',
      '/x/src/d.ts',
    ]);
  });

  it('has no import cycle in src/', () => {
    const graph = new Map(tsFiles(join(root, 'src')).map((f) => [f, importsOf(f, readFileSync(f, 'utf8'))]));
    expect(graph.size).toBeGreaterThan(20);
    expect(cycles(graph).map((c) => c.map((f) => relative(root, f)))).toEqual([]);
  });

  it('has no file over 600 lines in src/, srv/ or clt/', () => {
    const files = ['src', 'srv', 'clt'].flatMap((d) => tsFiles(join(root, d)));
    const long = files
      .map((f) => [relative(root, f), readFileSync(f, 'utf8').split('\n').length - 1] as const)
      .filter(([, n]) => n > 600);
    expect(long).toEqual([]);
  });
});
