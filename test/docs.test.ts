// The documentation against the code it describes, so that it cannot drift silently:
// - each program's page (docs/iapp-srv.md, iapp-clt.md, iapp-proxy.md) has a row for every flag its
//   --help prints, and no flag --help does not print;
// - every code block that starts with `// examples/<file>` in the README or docs/ is an excerpt of
//   that file: its pieces (between `// …` lines) appear in the file verbatim and in order;
// - every exported class, function and constant, and every public class member
//   (test/types/public-api.txt), is named in docs/api/;
// - every relative link in the README, the changelog and docs/ reaches a file, and every #anchor a
//   heading of it;
// - the README's performance figures are the cells of the same rows of the generated
//   bench/results/REPORT.md's headline (figures are never copied there by hand and left to age);
// - the README stays short (≤ 250 lines) and lists every example;
// - docs/testing.md's table of test files has a row for every test/*.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string): string => readFileSync(join(root, p), 'utf8');

function markdownFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? markdownFiles(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
  );
}
const DOCS = ['README.md', 'CHANGELOG.md', ...markdownFiles('docs')];

/** Long and short flags on the option lines of a program's --help. */
function helpFlags(script: string): string[] {
  const r = spawnSync(process.execPath, [script, '--help'], { cwd: root, encoding: 'utf8', timeout: 15_000 });
  expect(r.status, r.stderr).toBe(0);
  const options = r.stdout.split('\n').filter((l) => /^\s+-/.test(l));
  expect(options.length).toBeGreaterThan(5);
  return [...new Set(options.flatMap((l) => l.trim().split(/\s{2,}/)[0]!.match(/--?[a-z][a-z0-9-]*/g) ?? []))].sort();
}

/** Flags in the first column of the first table under "## Flags" of a page. */
function pageFlags(page: string): string[] {
  const text = read(page);
  const table = text.slice(text.indexOf('\n## Flags')).split('\n').filter((l) => l.startsWith('| `'));
  expect(table.length).toBeGreaterThan(5);
  return [...new Set(table.flatMap((l) => l.split('|')[1]!.match(/--?[a-z][a-z0-9-]*/g) ?? []))].sort();
}

describe('program pages', () => {
  for (const [program, script] of [
    ['iapp-srv', 'dist/srv/main.js'],
    ['iapp-clt', 'dist/clt/main.js'],
    ['iapp-proxy', 'dist/srv/proxy.js'],
  ] as const) {
    it(`docs/${program}.md has a row for every flag of ${program} --help, and no other`, () => {
      expect(pageFlags(`docs/${program}.md`)).toEqual(helpFlags(script));
    });
  }
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string): string =>
  heading.trim().toLowerCase().replace(/`/g, '').replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');

function anchors(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...text.matchAll(/^#+ (.+)$/gm)].map((m) => slug(m[1]!)));
}

describe('documents', () => {
  it('excerpts of examples/ are verbatim', () => {
    let checked = 0;
    for (const doc of DOCS) {
      for (const [, body] of read(doc).matchAll(/^```js\n([\s\S]*?)^```/gm)) {
        const lines = body!.split('\n');
        const m = /^\/\/ (examples\/[\w-]+\.mjs)$/.exec(lines[0]!);
        if (!m) continue;
        const source = read(m[1]!);
        const pieces = lines.slice(1).join('\n').split(/^\s*\/\/ …\n/m).map((p) => p.replace(/\n$/, ''));
        let from = 0;
        for (const piece of pieces) {
          const at = source.indexOf(piece, from);
          expect(at, `${doc}: a piece of its excerpt of ${m[1]} is not in the file (or not in order):\n${piece}`).toBeGreaterThanOrEqual(0);
          from = at + piece.length;
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(15);
  });

  it('name every exported class, function and constant, and every public member of a class, in docs/api/', () => {
    // Inline code only: the examples' template literals would pair backticks across the page.
    const api = markdownFiles('docs/api').map((f) => read(f).replace(/^```[\s\S]*?^```/gm, '')).join('\n');
    const named = new Set([...api.matchAll(/`([^`]+)`/g)].flatMap((m) => m[1]!.match(/[A-Za-z_$][\w$]*/g) ?? []));
    const surface = read('test/types/public-api.txt');
    const classes = [...surface.matchAll(/^class (\w+)/gm)].map((m) => m[1]!);
    const missing = [...surface.matchAll(/^(\w+)(?: static)?\.([\w$]+): /gm)]
      .filter(([, owner, member]) => classes.includes(owner!) && !named.has(member!))
      .map(([, owner, member]) => `${owner}.${member}`);
    // And every exported class, function and constant.
    for (const [, name] of surface.matchAll(/^(?:class|function|const) (\w+)/gm)) if (!named.has(name!)) missing.push(name!);
    expect(missing).toEqual([]);
  });

  it('link only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const doc of DOCS) {
      const text = read(doc).replace(/^```[\s\S]*?^```/gm, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue; // https: and the like
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const file = path === '' ? join(root, doc) : resolve(root, dirname(doc), path);
        if (!existsSync(file)) {
          broken.push(`${doc}: ${target} (no such file)`);
        } else if (anchor !== undefined && statSync(file).isFile() && file.endsWith('.md') && !anchors(file).has(anchor)) {
          broken.push(`${doc}: ${target} (no heading #${anchor} in ${relative(root, file)})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('docs/testing.md', () => {
  it('has a row in its table of test files for every test/*.test.ts', () => {
    const text = read('docs/testing.md');
    const from = text.indexOf('\n## The test files');
    expect(from).toBeGreaterThanOrEqual(0);
    const end = text.indexOf('\n## ', from + 1);
    const rows = text.slice(from, end < 0 ? undefined : end).split('\n').filter((l) => l.startsWith('| ['));
    // The first cell only: a row's description may link to another test file.
    const listed = new Set(rows.flatMap((l) => [...l.split('|')[1]!.matchAll(/\(\.\.\/test\/([\w.-]+\.test\.ts)\)/g)].map((m) => m[1]!)));
    const files = readdirSync(join(root, 'test')).filter((f) => f.endsWith('.test.ts'));
    expect(files.length).toBeGreaterThan(30);
    expect(files.filter((f) => !listed.has(f))).toEqual([]);
  });
});

describe('README', () => {
  const readme = read('README.md');

  it('fits on a few screens', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(250);
  });

  it('lists every example', () => {
    for (const f of readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.mjs') && f !== 'demo.mjs')) {
      expect(readme).toContain(`(examples/${f})`);
    }
  });

  it("quotes performance figures only as the report's headline has them", () => {
    const report = read('bench/results/REPORT.md');
    const headline = report.slice(report.indexOf('## Headline'), report.indexOf('## Scenarios'));
    const cells = (row: string): string[] => row.split('|').slice(1, -1).map((c) => c.trim());
    const performance = readme.slice(readme.indexOf('## Performance'));
    const rows = performance.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| figure') && !l.startsWith('|---')).map(cells);
    expect(rows.length).toBe(3);
    for (const [figure, ...values] of rows) {
      const source = headline.split('\n').find((l) => cells(l)[0] === figure);
      expect(source, `no headline row "${figure}" in bench/results/REPORT.md`).toBeDefined();
      expect(values, figure).toEqual(cells(source!).slice(1, 1 + values.length));
    }
  });
});
