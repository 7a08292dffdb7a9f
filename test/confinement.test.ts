// Confinement beneath a directory (loop.open(path, { beneath })) and the file server built on it,
// checked on generated cases: random symlink trees made on the fly and random paths never yield a
// byte from outside the root, the kernel's openat2 and the portable walk give the same answer to
// every one, and iapp-srv --mode file never sends a byte from outside its root whatever the
// request target (segments, escapes, double escapes, `..`, dots, NULs).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { confinement, createRuntime, setConfinement, type Runtime } from '../dist/src/index.js';
import { mapTarget, openStatus } from '../dist/srv/files.js';
import { fixture } from './helpers.js';
import { killAll, run } from './proc.js';
import { exchange, parseReplies, type Reply } from './http-client.js';

const SRV = fileURLToPath(new URL('../dist/srv/main.js', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'iapp-confine-'));
const root = join(base, 'root');
afterAll(() => {
  killAll();
  setConfinement('auto');
  rmSync(base, { recursive: true, force: true });
});

// Inside: files and directories whose content says "IN"; outside (beside the root, and in a
// sibling whose name starts with the root's, to catch prefix checks): "OUTSIDE".
beforeAll(() => {
  const tree: [string, string][] = [
    ['root/a.txt', 'IN a'],
    ['root/marker', 'IN root'],
    ['root/sub/b.txt', 'IN b'],
    ['root/sub/marker', 'IN sub'],
    ['root/sub/deeper/c.txt', 'IN c'],
    ['root/sub/deeper/marker', 'IN deeper'],
    ['outside/secret.txt', 'OUTSIDE secret'],
    ['outside/marker', 'OUTSIDE dir'],
    ['outside/d/secret2', 'OUTSIDE secret2'],
    ['outside/d/marker', 'OUTSIDE d'],
    ['rootx/marker', 'OUTSIDE rootx'],
    ['rootx/a.txt', 'OUTSIDE rootx a'],
  ];
  for (const [p, text] of tree) {
    mkdirSync(join(base, p, '..'), { recursive: true });
    writeFileSync(join(base, p), text);
  }
});

// Names that exist somewhere, names of links, and the ways out.
const SEGMENTS = ['a.txt', 'sub', 'deeper', 'b.txt', 'c.txt', 'marker', 'l1', 'l2', 'l3', '..', '.', '', 'outside', 'secret.txt', 'd', 'rootx', 'nope'];
const LINK_DIRS = ['', 'sub/', 'sub/deeper/'];

/** A symlink to make in the root before a case: where, its name, and its target. */
const linkArb = fc.record({
  dir: fc.constantFrom(...LINK_DIRS),
  name: fc.constantFrom('l1', 'l2', 'l3'),
  // Relative targets, and absolute ones into the root, beside it and to the filesystem's root.
  prefix: fc.constantFrom('', '', '', '/', `${base}/`, `${root}/`, `${root}/sub/`),
  target: fc.oneof(
    { weight: 3, arbitrary: fc.array(fc.constantFrom(...SEGMENTS), { minLength: 0, maxLength: 5 }).map((s) => s.join('/')) },
    // Targets that name something real, inside or out, from any of the link directories.
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('', '../', '../../', '../../../'), fc.constantFrom('outside/secret.txt', 'outside/d', 'outside', 'rootx', 'rootx/a.txt', 'root/a.txt', 'a.txt', 'sub/deeper', 'sub', 'l1', 'l2'))
        .map(([up, to]) => up + to),
    },
  ),
});
const pathArb = fc
  .tuple(fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 6 }), fc.boolean())
  .map(([segs, slash]) => segs.join('/') + (slash ? '/' : ''))
  .filter((p) => p.length > 0 && !p.startsWith('/'));

function makeLinks(links: fc.RecordValue<{ dir: string; name: string; prefix: string; target: string }>[]): string[] {
  const made: string[] = [];
  for (const l of links) {
    const at = join(root, l.dir, l.name);
    if (made.includes(at)) continue;
    symlinkSync(l.prefix + l.target || '.', at); // an empty target cannot be made: a link to its own directory
    made.push(at);
  }
  return made;
}
const removeLinks = (made: string[]): void => made.forEach((p) => unlinkSync(p));

describe('loop.open(path, { beneath })', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await createRuntime({ module: fixture('beneath.mjs'), threads: 1 });
  });
  afterAll(() => rt?.close());
  const open = (paths: string[]): Promise<string[]> => rt.call(0, 'open', { root, paths }, { timeoutMs: 20_000 }) as Promise<string[]>;

  it('uses openat2 here (Linux 6.x), and the walk when told to', () => {
    setConfinement('auto');
    expect(confinement()).toBe('openat2');
    setConfinement('walk');
    expect(confinement()).toBe('walk');
    setConfinement('auto');
    expect(() => setConfinement('none' as never)).toThrow(TypeError);
  });

  it('random symlink trees and paths: nothing from outside the root, and openat2 and the walk agree on every answer', async () => {
    const seen: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.array(linkArb, { maxLength: 4 }), fc.array(pathArb, { minLength: 1, maxLength: 10 }), async (links, paths) => {
        const made = makeLinks(links);
        try {
          // A file and a directory no link can shadow ride along, so every case opens something
          // inside (generated paths reach a file inside only a few times a run).
          paths = [...paths, 'a.txt', 'sub/deeper/'];
          setConfinement('auto');
          const kernel = await open(paths);
          setConfinement('walk');
          const walk = await open(paths);
          for (const r of kernel) {
            const kind = r.startsWith('IN') ? 'inside' : r.startsWith('DIR IN') ? 'inside dir' : r;
            seen[kind] = (seen[kind] ?? 0) + 1;
          }
          expect(kernel.filter((r) => r.includes('OUTSIDE'))).toEqual([]);
          expect(kernel.slice(-2)).toEqual(['IN a', 'DIR IN deeper']);
          expect(walk).toEqual(kernel);
        } finally {
          setConfinement('auto');
          removeLinks(made);
        }
      }),
      { numRuns: 150 },
    );
    // The cases reached every kind of answer: files and directories inside, refusals for ways out
    // and for link loops, and names that do not exist.
    for (const k of ['inside', 'inside dir', 'EXDEV', 'ENOENT', 'ENOTDIR']) expect(seen[k] ?? 0, `${k} in ${JSON.stringify(seen)}`).toBeGreaterThan(0);
  });

  it('follows links that stay inside, refuses those that leave, on both paths', async () => {
    const made = makeLinks([
      { dir: '', name: 'l1', prefix: '', target: 'sub/deeper' },
      { dir: 'sub/', name: 'l2', prefix: '', target: '../../rootx/a.txt' },
      { dir: 'sub/deeper/', name: 'l3', prefix: '', target: '../../l1/../b.txt' },
    ]);
    try {
      for (const how of ['auto', 'walk'] as const) {
        setConfinement(how);
        expect(await open(['l1/c.txt', 'l1/..', 'sub/l2', 'sub/deeper/l3', 'l1/l3', 'a.txt/.', 'a.txt/', 'sub/./deeper/', '.'])).toEqual([
          'IN c', 'DIR IN sub', 'EXDEV', 'IN b', 'IN b', 'ENOTDIR', 'ENOTDIR', 'DIR IN deeper', 'DIR IN root',
        ]);
      }
    } finally {
      setConfinement('auto');
      removeLinks(made);
    }
  });

  it('refuses misuse before starting: an absolute path, a beneath that is no File, a closed one; creates beneath', async () => {
    const r = (await rt.call(0, 'misuse', { root, file: join(root, 'a.txt') })) as Record<string, string>;
    expect(r.absolute).toMatch(/^TypeError .*must be relative/);
    expect(r.notFile).toMatch(/^TypeError .*beneath must be a File/);
    expect(r.fileAsDir).toMatch(/^IappError ENOTDIR /);
    expect(r.directoryFlag).toMatch(/^IappError ENOTDIR /);
    expect(r.created).toBe(`${root}/new.txt`);
    expect(r.closed).toMatch(/^IappError ERR_FILE_CLOSED /);
    unlinkSync(join(root, 'new.txt'));
  });
});

describe('mapTarget and openStatus (srv --mode file)', () => {
  it('maps request targets to relative paths, or to the status that refuses them', () => {
    expect(mapTarget('/a/b.txt?x=1#y')).toEqual({ path: 'a/b.txt' });
    expect(mapTarget('/')).toEqual({ path: '.' });
    expect(mapTarget('//a//./b')).toEqual({ path: 'a/b' });
    // A directory spelling keeps one trailing slash, so that the kernel refuses it for a file.
    expect(['/a.txt/', '/a.txt/.', '/a.txt%2f', '/a.txt//./', '/sub/./'].map((t) => mapTarget(t))).toEqual([
      { path: 'a.txt/' },
      { path: 'a.txt/' },
      { path: 'a.txt/' },
      { path: 'a.txt/' },
      { path: 'sub/' },
    ]);
    expect(mapTarget('a.txt')).toEqual({ status: 400 });
    expect(mapTarget('/%zz')).toEqual({ status: 400 });
    expect(mapTarget('/a%00b')).toEqual({ status: 400 });
    expect(mapTarget('/a/%2e%2e/b')).toEqual({ status: 400 });
    expect(mapTarget('/.env')).toEqual({ status: 404 });
    expect(mapTarget('/a/.git/config', 'deny')).toEqual({ status: 403 });
    expect(mapTarget('/.well-known/x', 'allow')).toEqual({ path: '.well-known/x' });
    expect([openStatus('ENOENT'), openStatus('ENOTDIR'), openStatus('EXDEV'), openStatus('ELOOP'), openStatus('EACCES'), openStatus('EIO')]).toEqual([404, 404, 403, 403, 403, 500]);
  });
});

/** A request target for a path: each segment as is, percent-encoded in part or whole, or twice. */
const targetArb = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom(...SEGMENTS, '.env', '.git', 'config', 'a.txt\0.html', '%'), fc.string({ maxLength: 3 })),
      fc.constantFrom('plain', 'encoded', 'dots', 'twice', 'slash'),
    ),
    { minLength: 1, maxLength: 5 },
  )
  .map((segs) =>
    segs
      .map(([s, how]) => {
        const enc = (x: string): string => [...Buffer.from(x)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
        if (how === 'encoded') return enc(s);
        if (how === 'dots') return s.replace(/\./g, '%2e');
        if (how === 'twice') return enc(s).replace(/%/g, '%25');
        if (how === 'slash') return `${s}%2f..%2f..`;
        return encodeURI(s).replace(/[?#]/g, (c) => encodeURIComponent(c));
      })
      .join('/'),
  )
  .map((t) => `/${t}`);

/**
 * Links, and request targets of which some go through those very links (a link, then what may lie
 * beyond it, inside or out), so that links that lead out are asked for often.
 */
const caseArb = fc.array(linkArb, { minLength: 1, maxLength: 3 }).chain((links) =>
  fc.tuple(
    fc.constant(links),
    fc.array(
      fc.oneof(
        targetArb,
        fc
          .tuple(fc.constantFrom(...links.map((l) => `/${l.dir}${l.name}`)), fc.constantFrom('', '/', '/secret.txt', '/secret2', '/marker', '/a.txt', '/c.txt', '/d/marker', '/../x'))
          .map(([p, rest]) => p + rest),
      ),
      { minLength: 1, maxLength: 8 },
    ),
  ),
);

describe('iapp-srv --mode file on generated request targets and symlinks made on the fly', () => {
  for (const walk of [false, true]) {
    it(`never sends a byte from outside its root (${walk ? 'the walk' : 'openat2'})`, async () => {
      // No open-file cache: links change between cases, and each request must be looked up anew.
      const srv = run(SRV, ['--json', '--mode', 'file', '--root', root, '-l', '127.0.0.1:0', '-t', '2', '--file-cache', '0'], walk ? { IAPP_CONFINEMENT: 'walk' } : {});
      const listening = await srv.json('listening');
      expect(listening.confinement).toBe(walk ? 'walk' : 'openat2');
      const port = listening.addresses[0].port as number;
      const statuses: Record<number, number> = {};
      let dirSpellings = 0;
      await fc.assert(
        fc.asyncProperty(caseArb, async ([links, targets]) => {
          const made = makeLinks(links);
          try {
            // A connection per target, at once: a 400 ends its connection, and must not keep the
            // targets after it from being asked.
            // Two targets no link can shadow ride along with every case, so that what must be
            // served is served on each one (generated targets reach a 200 only a few times a run).
            const asked = [...targets, '/a.txt', '/sub/deeper/c.txt'];
            const replies = (
              await Promise.all(asked.map((t) => exchange(port, Buffer.from(`GET ${t} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`, 'latin1'))))
            ).map((data) => parseReplies(data).replies);
            expect(replies.map((r) => r.length)).toEqual(asked.map(() => 1));
            expect(replies.slice(-2).map(([r]) => [r.status, r.body.toString()])).toEqual([
              [200, 'IN a'],
              [200, 'IN c'],
            ]);
            for (const [i, [r]] of (replies as [Reply][]).entries()) {
              statuses[r.status] = (statuses[r.status] ?? 0) + 1;
              expect(r.body.toString('latin1')).not.toContain('OUTSIDE');
              expect([200, 400, 403, 404]).toContain(r.status);
              if (r.status === 200) expect(r.body.toString()).toMatch(/^IN /);
              // A directory spelling (`…/`, `…/.`, `…%2f`) is never answered with a file.
              const decoded = ((): string => {
                try {
                  return decodeURIComponent(asked[i]!);
                } catch {
                  return '';
                }
              })();
              if (/\/\.?$/.test(decoded)) {
                expect(r.status, asked[i]).not.toBe(200);
                dirSpellings++;
              }
            }
          } finally {
            removeLinks(made);
          }
        }),
        { numRuns: 120 },
      );
      for (const s of [200, 400, 403, 404]) expect(statuses[s] ?? 0, `${s} in ${JSON.stringify(statuses)}`).toBeGreaterThan(0);
      expect(dirSpellings).toBeGreaterThan(0);
      srv.child.kill('SIGTERM');
      expect((await srv.exited).code).toBe(0);
    });
  }
});
