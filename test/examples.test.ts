// Every file under examples/ runs as a user runs it (`node examples/<name>.mjs`, importing
// 'iapp' by name through package.json's "exports"), on loopback only, each bounded by a timeout
// (its whole process group is killed past it). Each must exit 0 on its own, having stopped every
// server it started, and print what proves it worked: the bytes echoed, pushed and sunk
// reconciled, datagrams received, connections served, the file read back, the hash matched, the
// child killed. Nothing in examples/ is left untested: the list below must name every file.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Each example, the arguments it gets here, and lines its output must contain. */
const EXAMPLES: Record<string, { args?: string[]; expect: RegExp[] }> = {
  'demo.mjs': { args: ['--duration', '1', '--conns', '4'], expect: [/^reconciled: yes, every byte clt sent was received by srv$/m] },
  'echo.mjs': { expect: [/^echo server on 127\.0\.0\.1:\d+, 2 loop threads$/m, /^echoed: hello, iapp$/m, /^closed: 0 sockets open at close, 0 reset$/m] },
  'push.mjs': { expect: [/^pushed [\d,]+ bytes over 200 connections in 1 s$/m, /^reconciled: every byte pushed was sunk$/m] },
  'dial.mjs': {
    expect: [/^loop 0: 500 open, all open after \d+ ms$/m, /^loop 1: 500 open/m, /^established 1000, failed 0, peak 500 \+ 500, pushed [\d,]+ bytes$/m, /^the sink accepted 1000 and read/m],
  },
  'udp.mjs': { expect: [/^sent [\d,]+ datagrams in 0\.5 s$/m, /^received [\d,]+ \([\d,]+ bytes\)/m] },
  'udp-echo.mjs': { expect: [/^UDP echo on 127\.0\.0\.1:\d+ and \[::1\]:\d+, 2 loop threads$/m, /^::1 python$/m, /^echoed 6 datagrams$/m] },
  'activation.mjs': {
    expect: [/^child \d+: serving web \(fd 3\)$/m, /^parent: connection 3: served by loop [01] of pid \d+$/m, /^parent: child exited with code 0$/m],
  },
  'messages.mjs': {
    expect: [/^loop 1 put a and read back 1$/m, /^main reads a = 1$/m, /^broadcast reached 2 loops$/m, /^loop 1 has config \{"level":2,"from":"main"\}$/m, /^threads taking messages: \[0,1,"main"\]$/m],
  },
  'handoff.mjs': { expect: [/^loop 1: client 1$/m, /^loop 2: client 2$/m, /^loop 1: client 3$/m, /^loop 2: client 4$/m, /^detached by loop 0: 4; adopted by loops 1 and 2: 2 and 2$/m] },
  'offload.mjs': { expect: [/^sha256 of 32 MiB, computed off the loop: [0-9a-f]{16}… \(matches the loop's own\)$/m, /timer fired [1-9]\d* times$/m] },
  'supervise.mjs': { expect: [/^child ended after \d+ ms: code null, signal SIGKILL$/m] },
  'timers.mjs': {
    expect: [/^tick 1 at \d+ ms/m, /^tick 3 at \d+ ms/m, /^realtime timer at \d+ ms$/m, /^idle timeout at \d+ ms, after 3 re-arms$/m],
  },
  'signals.mjs': { expect: [/^loop 0: SIGHUP, reloading$/m, /^loop 1: SIGHUP, reloading$/m, /^main: SIGTERM, closing$/m, /^main: closed \(0 sockets were open, 0 reset\)$/m] },
  'files.mjs': { expect: [/^read back: hello world \((io_uring|pool)\)$/m, /^size 5,368,709,125 bytes/m, /^copied 5 bytes from offset 5 GiB: world$/m] },
  'sendfile.mjs': { expect: [/^download 1: 8,388,608 bytes, sha256 [0-9a-f]{16}… equals the file$/m, /^download 2: .* equals the file$/m] },
  'proxy.mjs': { expect: [/^sent 4,194,304 bytes through the proxy, got them back intact$/m, /^the proxy moved 4,194,304 bytes up and 4,194,304 down$/m] },
};

const TIMEOUT_MS = 30_000;

/** Runs `node examples/<name> ...args`; past the timeout its process group is killed. */
function runExample(name: string, args: string[]): Promise<{ code: number | null; signal: string | null; out: string; err: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [`examples/${name}`, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), TIMEOUT_MS);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err, ms: Date.now() - started });
    }),
  );
}

describe('examples/', () => {
  it('has a test below for every file in it', () => {
    const files = readdirSync(`${root}/examples`).filter((f) => f.endsWith('.mjs')).sort();
    expect(files).toEqual(Object.keys(EXAMPLES).sort());
  });

  for (const [name, { args = [], expect: lines }] of Object.entries(EXAMPLES)) {
    it(`${['node', `examples/${name}`, ...args].join(' ')}: exits 0 by itself and prints what proves it worked`, async () => {
      const r = await runExample(name, args);
      const context = `stdout:\n${r.out}\nstderr:\n${r.err}`;
      expect(r.signal, `killed after ${TIMEOUT_MS} ms: ${context}`).toBe(null);
      expect(r.code, context).toBe(0);
      for (const re of lines) expect(r.out, context).toMatch(re);
    }, TIMEOUT_MS + 5000);
  }
});
