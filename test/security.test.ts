// iapp-srv --mode file facing a network: every row of issue 21's table asked over a real socket,
// with the kernel's confinement (openat2 here) and with the portable walk forced, so both paths
// are proven; symlinks swapped under the server while it serves; dotfiles.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { exchange, get, parseReplies } from './http-client.js';
import { killAll, run, track, type Proc } from './proc.js';

const SRV = fileURLToPath(new URL('../dist/srv/main.js', import.meta.url));
afterEach(killAll);
const dir = mkdtempSync(join(tmpdir(), 'iapp-sec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The tree of the issue: a.txt, .env, .git/config, link -> /etc/passwd, sub/etc -> /etc, plus
 * symlinks that stay inside (relative, and through a subdirectory) and one that climbs out with
 * `..`, and a file outside the root next to it.
 */
function makeRoot(name: string): string {
  const root = join(dir, name, 'www');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(join(root, '.git'));
  mkdirSync(join(root, 'docs'));
  writeFileSync(join(root, 'a.txt'), 'inside\n');
  writeFileSync(join(root, '.env'), 'SECRET=1\n');
  writeFileSync(join(root, '.git', 'config'), '[core]\n');
  writeFileSync(join(root, 'docs', 'b.txt'), 'b inside\n');
  writeFileSync(join(dir, name, 'outside.txt'), 'OUTSIDE\n');
  symlinkSync('/etc/passwd', join(root, 'link'));
  symlinkSync('/etc', join(root, 'sub', 'etc'));
  symlinkSync('a.txt', join(root, 'same'));
  symlinkSync('../docs/b.txt', join(root, 'sub', 'b'));
  symlinkSync('../outside.txt', join(root, 'climb'));
  symlinkSync(join(root, 'a.txt'), join(root, 'absinside'));
  return root;
}

async function startFile(root: string, walk: boolean, extra: string[] = []): Promise<{ srv: Proc; port: number; listening: Record<string, any> }> {
  const srv = run(SRV, ['--json', '--mode', 'file', '--root', root, '-l', '127.0.0.1:0', '-t', '2', ...extra], walk ? { IAPP_CONFINEMENT: 'walk' } : {});
  const listening = await srv.json('listening');
  return { srv, port: listening.addresses[0].port as number, listening };
}

const passwd = readFileSync('/etc/passwd');

for (const walk of [false, true]) {
  const how = walk ? 'the portable walk (IAPP_CONFINEMENT=walk)' : "the kernel's confinement (openat2)";
  describe(`iapp-srv --mode file, paths opened beneath the root with ${how}`, () => {
    it('answers every row of the table as a careful server does', async () => {
      const root = makeRoot(walk ? 'walk' : 'kernel');
      const { srv, port, listening } = await startFile(root, walk);
      expect(listening.confinement).toBe(walk ? 'walk' : 'openat2');
      const rows: [string, number, string?][] = [
        ['/a.txt', 200, 'inside\n'],
        ['/link', 403], // -> /etc/passwd
        ['/sub/etc/passwd', 403], // sub/etc -> /etc
        ['/.env', 404],
        ['/.git/config', 404],
        ['/%2egit/config', 404], // a dotfile spelled with an escape is still one
        ['/..%2f..%2fetc%2fpasswd', 400],
        ['/%2e%2e/%2e%2e/etc/passwd', 400],
        ['/a.txt%00.html', 400],
        ['/%252e%252e/etc/passwd', 404], // decoded once: a file named %2e%2e, which does not exist
        ['//etc/passwd', 404], // the root's etc, not /etc
        ['/same', 200, 'inside\n'], // a relative symlink inside: still served
        ['/sub/b', 200, 'b inside\n'], // ../docs/b.txt from sub: inside
        ['/climb', 403], // ../outside.txt: out by one level
        ['/absinside', 403], // absolute links are refused even when they point back in
        ['/sub', 404], // a directory
        ['/a.txt/', 404], // a file spelled as a directory: ENOTDIR, as open(2) says
        ['/a.txt/.', 404],
        ['/a.txt%2f', 404],
        ['/same/', 404], // through a link that stays inside, too
        ['/link/', 403], // and out through one: refused, as without the slash
        ['/', 404],
        ['/missing', 404],
      ];
      const got: [string, number, string?][] = [];
      for (const [target, , body] of rows) {
        const r = await get(port, target);
        expect(r.body.includes(passwd.subarray(0, 16)), `${target}: bytes of /etc/passwd`).toBe(false);
        got.push(body !== undefined ? [target, r.status, r.body.toString()] : [target, r.status]);
      }
      expect(got).toEqual(rows);
      // A request with both Content-Length and Transfer-Encoding: 501, then the connection closes.
      const smuggle = await exchange(port, 'GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n');
      const sm = parseReplies(smuggle).replies;
      expect(sm.map((r) => [r.status, r.headers.connection])).toEqual([[501, 'close']]);
      srv.child.kill('SIGTERM');
      expect((await srv.exited).code).toBe(0);
      const summary = await srv.json('summary');
      expect(summary.requests).toBe(3);
      expect(summary.httpErrors).toBe(rows.length - 3 + 1);
    });

    it('serves what a symlink swapped under it points to only while that stays inside the root', async () => {
      // A child process swaps `race` (a symlink) between a file inside and /etc/passwd, and `d`
      // between a directory inside and a symlink to a directory outside, as fast as it can
      // (rename over: each swap is atomic), while requests for both go in. Every answer must be
      // the inside content or 403: never a byte from outside.
      const base = join(dir, walk ? 'race-walk' : 'race-kernel');
      const root = join(base, 'www');
      mkdirSync(join(root, 'din'), { recursive: true });
      mkdirSync(join(base, 'dout'));
      writeFileSync(join(root, 'in.txt'), 'inside\n');
      writeFileSync(join(root, 'din', 'f'), 'inside\n');
      writeFileSync(join(base, 'dout', 'f'), 'OUTSIDE\n');
      symlinkSync('in.txt', join(root, 'race'));
      symlinkSync('din', join(root, 'd'));
      const flipper = track(
        spawn(process.execPath, [
          '-e',
          `const fs = require('node:fs'); const r = ${JSON.stringify(root)}, out = ${JSON.stringify(join(base, 'dout'))};
           process.stdout.write('go\\n');
           for (let i = 0; ; i++) {
             fs.symlinkSync(i % 2 ? 'in.txt' : '/etc/passwd', r + '/race.tmp'); fs.renameSync(r + '/race.tmp', r + '/race');
             fs.symlinkSync(i % 2 ? 'din' : out, r + '/d.tmp'); fs.renameSync(r + '/d.tmp', r + '/d');
           }`,
        ], { stdio: ['ignore', 'pipe', 'inherit'] }),
      );
      await new Promise((r) => flipper.stdout!.once('data', r));
      // No open-file cache: every request looks its path up again, as the swaps need.
      const { srv, port } = await startFile(root, walk, ['--file-cache', '0']);
      const seen: Record<string, number> = {};
      // Keep-alive connections, each asking for both paths in turn: bounded by count, not time.
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 40; i++) {
            const raw = Array.from({ length: 10 }, (_, k) => `GET /${k % 2 ? 'race' : 'd/f'} HTTP/1.1\r\nHost: t\r\n\r\n`).join('') + 'GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n';
            const { replies } = parseReplies(await exchange(port, raw));
            expect(replies).toHaveLength(11);
            for (const r of replies.slice(0, 10)) {
              const key = `${r.status} ${r.body.toString().trim()}`;
              seen[key] = (seen[key] ?? 0) + 1;
            }
          }
        }),
      );
      flipper.kill('SIGKILL');
      srv.child.kill('SIGTERM');
      await srv.exited;
      // Only two answers: the inside file, or 403 (the link pointed out when it was looked up).
      // Never 404: rename replaces a name atomically, so a lookup always finds one of the links.
      for (const key of Object.keys(seen)) expect(['200 inside', '403 forbidden'], JSON.stringify(seen)).toContain(key);
      expect(seen['200 inside'], JSON.stringify(seen)).toBeGreaterThan(0);
      expect(seen['403 forbidden'], JSON.stringify(seen)).toBeGreaterThan(0);
    });
  });
}

describe('iapp-srv --dotfiles', () => {
  it('ignore (default) is 404, deny is 403, allow serves them; only for --mode file', async () => {
    const root = makeRoot('dots');
    for (const [how, status] of [['ignore', 404], ['deny', 403], ['allow', 200]] as const) {
      const { srv, port } = await startFile(root, false, ['--dotfiles', how]);
      const got = await Promise.all(['/.env', '/.git/config', '/%2eenv', '/a.txt'].map(async (t) => (await get(port, t)).status));
      expect(got).toEqual([status, status, status, 200]);
      srv.child.kill('SIGTERM');
      await srv.exited;
    }
    const bad = run(SRV, ['--dotfiles', 'allow']);
    expect((await bad.exited).code).toBe(2);
    expect(bad.stderr()).toContain('--dotfiles is for --mode file');
    const wrong = run(SRV, ['--mode', 'file', '--root', dir, '--dotfiles', 'show']);
    expect((await wrong.exited).code).toBe(2);
    expect(wrong.stderr()).toContain('--dotfiles');
  });
});
