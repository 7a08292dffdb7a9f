// Fault injection (src/faults.ts): each test makes one syscall fail the way the world can, then
// checks that the process stays up, that the affected operation reports a clear error, that the
// other connections keep every byte, and that the counters add up.
//
// What it proves: every row of the fault table in docs/reliability.md: one syscall made to fail,
// that operation's error checked (code, errno, syscall), every other connection compared by
// SHA-256, and per-socket and per-loop counts reconciled; onFdExhaustion: 'shed' resetting exactly one
// waiting connection; the rule parser and IAPP_FAULTS at start (read by the library itself).
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { buildInfo, createRuntime, faultCounts, faultInjectionEnabled, injectFaults, parseFaults, type Runtime } from '../dist/src/index.js';
import { itWithFeature } from './features.js';
import { fixture, netExchange } from './helpers.js';

const build = buildInfo();
// What a pipe's failing call is named: splice, or the recv/send of the fallback (the splice
// fault site covers both).
const pipeCalls = build.calls.splice ? ['splice'] : ['read', 'write'];

// Fault injection is a test switch: this file turns it on for itself, its loop threads (which
// copy the environment when they start) and the programs it starts.
process.env.IAPP_FAULT_INJECTION = '1';

type Err = { code: string; errno: number; syscall: string; message: string };
type Close = { error?: Err; unsent: number; bytesRead: number; bytesWritten: number; result?: Record<string, unknown> };

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'iapp-faults-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => injectFaults(''));

async function server(): Promise<Runtime> {
  return createRuntime({ module: fixture('faults.mjs'), threads: 1 });
}
const call = <T>(rt: Runtime, name: string, arg: unknown = {}): Promise<T> => rt.call(0, name, arg, { timeoutMs: 20_000 }) as Promise<T>;

/** `n` node:net clients at once, each sending `size` random bytes and half-closing: what came back. */
async function clients(port: number, n: number, size: number): Promise<{ sent: string; got?: string; bytes: number; error?: string }[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const data = randomBytes(size);
      try {
        const { reply } = await netExchange({ host: '127.0.0.1', port }, data);
        return { sent: sha(data), got: sha(reply), bytes: reply.length };
      } catch (e) {
        return { sent: sha(data), bytes: 0, error: (e as NodeJS.ErrnoException).code };
      }
    }),
  );
}

/** Every server socket's bytes add up: what it read was written back or reported unsent. */
function expectReconciled(closes: Close[]): void {
  for (const c of closes) expect(c.bytesRead).toBe(c.bytesWritten + c.unsent);
}

describe('rules', () => {
  it('parses specs and refuses bad ones, naming the part', () => {
    expect(parseFaults('accept:EMFILE:0.5, send:EAGAIN:1:10:2')).toEqual([
      { site: 'accept', code: 'EMFILE', rate: 0.5 },
      { site: 'send', code: 'EAGAIN', rate: 1, max: 10, after: 2 },
    ]);
    expect(() => parseFaults('acept:EMFILE')).toThrow(/unknown site 'acept'.*sites: accept, recv/);
    expect(() => parseFaults('accept:EMFIL')).toThrow(/unknown errno name 'EMFIL'/);
    expect(() => parseFaults('accept:EMFILE:2')).toThrow(/rate must be between 0 and 1/);
    expect(() => parseFaults('accept:EMFILE:1:-1')).toThrow(/max must be a whole number/);
    expect(() => parseFaults('accept')).toThrow(/wrong number of fields/);
    expect(() => injectFaults(Array.from({ length: 17 }, () => ({ site: 'recv' as const, code: 'EIO' })))).toThrow(/at most 16/);
  });

  it('reads IAPP_FAULTS at start, and a bad one stops the program with the reason', () => {
    // The child only imports the library and starts a runtime: it never parses or injects rules
    // itself, so the failed thread start can only come from the library reading IAPP_FAULTS.
    const script = `import('./dist/src/index.js').then(async (m) => {
      const out = {};
      try { const rt = await m.createRuntime({ module: ${JSON.stringify(fixture('faults.mjs'))}, threads: 1 }); out.started = true; await rt.close(); }
      catch (e) { out.code = e.code; out.syscall = e.syscall; }
      out.injected = m.faultCounts().thread;
      console.log(JSON.stringify(out));
    })`;
    const good = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, IAPP_FAULTS: 'thread:EAGAIN:1:1' }, encoding: 'utf8', timeout: 20_000 });
    expect(good.status, good.stderr).toBe(0);
    expect(good.stderr).toMatch(/^iapp: fault injection ON \(pid \d+\): thread:EAGAIN:1:1:0: these syscalls will fail on purpose\n$/);
    expect(JSON.parse(good.stdout)).toEqual({ code: 'EAGAIN', syscall: 'pthread_create', injected: 1 });
    const bad = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, IAPP_FAULTS: 'recv:NOPE' }, encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toBe(''); // the import itself failed: no runtime was tried
    expect(bad.stderr).toMatch(/bad fault rule 'recv:NOPE': unknown errno name/);
  });

  it('is a test switch: without IAPP_FAULT_INJECTION=1, IAPP_FAULTS is ignored with one line and injectFaults() refuses', () => {
    const script = `import('./dist/src/index.js').then(async (m) => {
      const out = { enabled: m.faultInjectionEnabled(), counts: m.faultCounts() };
      try { m.injectFaults('recv:EIO'); out.injected = true; } catch (e) { out.refused = e.code; }
      m.injectFaults(''); // turning injection off is always allowed
      // The program still works: a file opens and reads (no disk rule is in force).
      const rt = await m.createRuntime({ module: ${JSON.stringify(fixture('faults.mjs'))}, threads: 1 });
      out.opened = await rt.call(0, 'openTwice', { path: ${JSON.stringify(fixture('faults.mjs'))} });
      await rt.close();
      console.log(JSON.stringify(out));
    })`;
    const env = { ...process.env, IAPP_FAULTS: 'disk:EIO,recv:ECONNRESET' };
    delete env.IAPP_FAULT_INJECTION;
    const off = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 20_000 });
    expect(off.status, off.stderr).toBe(0);
    expect(off.stderr).toBe('iapp: IAPP_FAULTS is set but ignored: fault injection is a test switch; set IAPP_FAULT_INJECTION=1 as well to make syscalls fail on purpose\n');
    expect(JSON.parse(off.stdout)).toEqual({ enabled: false, counts: expect.objectContaining({ disk: 0, recv: 0 }), refused: 'ERR_FAULTS_DISABLED', opened: ['ok', 'ok'] });
    // Any value but 1 is off too.
    const other = spawnSync(process.execPath, ['-e', script], { env: { ...env, IAPP_FAULT_INJECTION: 'yes' }, encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(other.stdout)).toMatchObject({ enabled: false, refused: 'ERR_FAULTS_DISABLED', opened: ['ok', 'ok'] });
    // Switched on, the same environment makes the opens fail, and stderr says so once per rule set.
    const on = spawnSync(process.execPath, ['-e', script], { env: { ...env, IAPP_FAULTS: 'thread:EAGAIN:1:1', IAPP_FAULT_INJECTION: '1' }, encoding: 'utf8', timeout: 20_000 });
    expect(on.status, on.stderr).toBe(0);
    expect(on.stderr.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(/^iapp: fault injection ON \(pid \d+\): thread:EAGAIN:1:1:0: these syscalls will fail on purpose$/),
      expect.stringMatching(/^iapp: fault injection ON \(pid \d+\): recv:EIO:1:0:0: these syscalls will fail on purpose$/),
    ]);
    expect(JSON.parse(on.stdout)).toMatchObject({ enabled: true, injected: true });
    expect(faultInjectionEnabled()).toBe(true); // this file switched it on for itself
  });
});

describe('accept', () => {
  it("EMFILE with onFdExhaustion: 'shed': the oldest waiting connection is reset, the others served", async () => {
    const rt = await server();
    const reported: { code: string; shed: number }[] = [];
    rt.on('accept-error', (e: { error: { code: string }; shed: number }) => reported.push({ code: e.error.code, shed: e.shed }));
    try {
      const port = await call<number>(rt, 'listen', { kind: 'echo', shed: true });
      injectFaults('accept:EMFILE:1:1');
      const out = await clients(port, 6, 4096);
      // Under 'wait' (the tests below) every one is served; 'shed' resets exactly one.
      const failed = out.filter((o) => o.error);
      expect(failed).toHaveLength(1);
      expect(['ECONNRESET', 'EPIPE']).toContain(failed[0]!.error);
      for (const o of out.filter((x) => !x.error)) expect(o.got).toBe(o.sent);
      expect(reported).toEqual([{ code: 'EMFILE', shed: 1 }]);
      const [st] = await rt.stats();
      expect(st!.acceptShed).toBe(1);
      expect(st!.accepted).toBe(5);
      expectReconciled(await call<Close[]>(rt, 'closes', { count: 5 }));
    } finally {
      await rt.close();
    }
  });

  for (const code of ['EMFILE', 'ENFILE', 'ENOBUFS']) {
    it(`${code}: the listener pauses, reports, resumes, and every connection is served`, async () => {
      const rt = await server();
      const reported: { code: string; syscall: string }[] = [];
      rt.on('accept-error', (e: { error: { code: string; syscall: string } }) => reported.push({ code: e.error.code, syscall: e.error.syscall }));
      try {
        const port = await call<number>(rt, 'listen', { kind: 'echo' });
        injectFaults(`accept:${code}:1:3`);
        const out = await clients(port, 10, 64 * 1024);
        for (const o of out) expect(o.got).toBe(o.sent);
        const closes = await call<Close[]>(rt, 'closes', { count: 10 });
        expect(closes.filter((c) => c.error)).toEqual([]);
        expectReconciled(closes);
        expect(faultCounts().accept).toBe(3);
        expect(reported).toEqual(Array(3).fill({ code, syscall: 'accept' }));
        const [st] = await rt.stats();
        expect(st!.accepted).toBe(10);
      } finally {
        await rt.close();
      }
    });
  }
});

describe('socket reads and writes', () => {
  const cases: { rule: string; error?: { code: string; syscall: string } }[] = [
    { rule: 'recv:ECONNRESET:1:1', error: { code: 'ECONNRESET', syscall: 'read' } },
    { rule: 'send:EPIPE:1:1', error: { code: 'EPIPE', syscall: 'write' } },
    { rule: 'send:ENOBUFS:1:1', error: { code: 'ENOBUFS', syscall: 'write' } },
    { rule: 'send:EAGAIN:0.9' },
    { rule: 'recv:EAGAIN:0.9' },
  ];
  for (const { rule, error } of cases) {
    it(`${rule}: ${error ? 'one socket fails with a clear error' : 'a storm only slows things down'}, the others keep every byte`, async () => {
      const rt = await server();
      try {
        const port = await call<number>(rt, 'listen', { kind: 'echo' });
        injectFaults(rule);
        const size = 512 * 1024;
        const out = await clients(port, 8, size);
        const closes = await call<Close[]>(rt, 'closes', { count: 8 });
        injectFaults('');
        const failed = closes.filter((c) => c.error);
        expectReconciled(closes);
        if (error) {
          expect(failed).toHaveLength(1);
          expect(failed[0]!.error).toMatchObject(error);
          expect(failed[0]!.error!.message).toContain(error.code);
          expect(out.filter((o) => o.got === o.sent)).toHaveLength(7);
        } else {
          expect(failed).toEqual([]);
          for (const o of out) expect(o.got).toBe(o.sent);
        }
        for (const c of closes.filter((x) => !x.error)) expect(c.bytesRead).toBe(size);
        const [st] = await rt.stats();
        expect(st!.bytesIn).toBe(closes.reduce((a, c) => a + c.bytesRead, 0));
      } finally {
        await rt.close();
      }
    });
  }
});

describe('sendFile and pipes', () => {
  // FreeBSD's sendfile with SF_NODISKIO says EBUSY for a range not in the page cache (sendfile.cc):
  // the disk pool reads it ahead, the socket waits for that, and sendfile goes on. The FreeBSD
  // call is review-only here; the injected EBUSY runs everything after it on every build.
  it('sendfile EBUSY (not cached, under SF_NODISKIO): the pool reads the range ahead and every download is whole', async () => {
    const path = join(dir, 'send-EBUSY');
    const data = randomBytes(3 << 20);
    writeFileSync(path, data);
    const rt = await server();
    try {
      const port = await call<number>(rt, 'listen', { kind: 'sendfile', path });
      injectFaults('sendfile:EBUSY:1:3');
      const out = await clients(port, 6, 0);
      const closes = await call<Close[]>(rt, 'closes', { count: 6 });
      expect(closes.map((c) => c.result)).toEqual(Array(6).fill({ sent: data.length }));
      expect(out.filter((o) => o.got === sha(data))).toHaveLength(6);
      expect(faultCounts().sendfile).toBe(3);
      expect((await rt.stats())[0]!.readAheads).toBe(3);
    } finally {
      await rt.close();
    }
  });

  for (const code of ['EIO', 'ENOMEM']) {
    it(`sendfile ${code}: that sendFile() rejects with what was sent, the other downloads are whole`, async () => {
      const path = join(dir, `send-${code}`);
      const data = randomBytes(3 << 20);
      writeFileSync(path, data);
      const rt = await server();
      try {
        const port = await call<number>(rt, 'listen', { kind: 'sendfile', path });
        injectFaults(`sendfile:${code}:1:1:3`);
        const out = await clients(port, 6, 0);
        const closes = await call<Close[]>(rt, 'closes', { count: 6 });
        const failed = closes.filter((c) => c.result?.error);
        expect(failed).toHaveLength(1);
        expect(failed[0]!.result!.error).toMatchObject({ code, syscall: 'sendfile' });
        expect(failed[0]!.result!.bytesSent).toBe(failed[0]!.bytesWritten);
        for (const c of closes.filter((x) => !x.result?.error)) expect(c.result).toEqual({ sent: data.length });
        // The failed call may have been the last one (which finds the end of the file): its
        // client then has it all. Otherwise it has at most what sendFile() said it sent.
        const bytesSent = failed[0]!.result!.bytesSent as number;
        const whole = out.filter((o) => o.got === sha(data));
        expect(whole.length).toBe(bytesSent === data.length ? 6 : 5);
        for (const o of out.filter((x) => x.got !== sha(data))) expect(o.bytes).toBeLessThanOrEqual(bytesSent);
      } finally {
        await rt.close();
      }
    });

    it(`splice ${code}: that proxy rejects and closes both ends, the other proxies deliver every byte${build.calls.splice ? '' : ' (on this build: the recv/send fallback)'}`, async () => {
      const rt = await server();
      try {
        const upstream = await call<number>(rt, 'listen', { kind: 'echo' });
        const port = await call<number>(rt, 'listen', { kind: 'proxy', upstream });
        injectFaults(`splice:${code}:1:1:5`);
        const size = 1 << 20;
        const out = await clients(port, 6, size);
        // Six proxy results and six upstream sockets.
        const reports = await call<Close[]>(rt, 'closes', { count: 12 });
        const results = reports.filter((r) => r.result).map((r) => r.result!);
        const failed = results.filter((r) => r.error);
        expect(failed).toHaveLength(1);
        expect(failed[0]!.error).toMatchObject({ code });
        expect(pipeCalls).toContain(failed[0]!.error!.syscall);
        expect(results.filter((r) => !r.error)).toEqual(Array(5).fill({ aToB: size, bToA: size }));
        expect(out.filter((o) => o.got === o.sent)).toHaveLength(5);
        expectReconciled(reports.filter((r) => !r.result));
      } finally {
        await rt.close();
      }
    });
  }
});

describe(`${build.pollctl} (${build.poller})`, () => {
  it('ENOMEM on a new socket: that socket closes with the error, the others are served', async () => {
    const rt = await server();
    try {
      const port = await call<number>(rt, 'listen', { kind: 'echo' });
      // One connection first: the listener is then registered, and the fault can only hit a socket.
      await clients(port, 1, 10);
      await call<Close[]>(rt, 'closes', { count: 1 });
      injectFaults('pollctl:ENOMEM:1:1');
      const out = await clients(port, 5, 64 * 1024);
      const closes = await call<Close[]>(rt, 'closes', { count: 5 });
      const failed = closes.filter((c) => c.error);
      expect(failed.map((c) => c.error)).toMatchObject([{ code: 'ENOMEM', syscall: build.pollctl }]);
      expect(out.filter((o) => o.got === o.sent)).toHaveLength(4);
      expectReconciled(closes);
    } finally {
      await rt.close();
    }
  });

  it('ENOMEM on a listener: it is paused, reported and retried', async () => {
    const rt = await server();
    const reported: string[] = [];
    rt.on('accept-error', (e: { error: { code: string } }) => reported.push(e.error.code));
    try {
      injectFaults('pollctl:ENOMEM:1:1');
      const port = await call<number>(rt, 'listen', { kind: 'echo' });
      const out = await clients(port, 3, 1000);
      for (const o of out) expect(o.got).toBe(o.sent);
      expect(reported).toEqual(['ENOMEM']);
    } finally {
      await rt.close();
    }
  });

  it('ENOMEM when a timer fd is registered: that allocation throws, later ones work and fire', async () => {
    const rt = await server();
    try {
      const r = await call<{ out: (string | Err)[]; fired: number }>(rt, 'timers', { count: 3, ms: 5, rules: 'pollctl:ENOMEM:1:1' });
      expect(r.out[0]).toMatchObject({ code: 'ENOMEM', syscall: build.pollctl });
      expect(r.out.slice(1)).toEqual(['ok', 'ok']);
      expect(r.fired).toBe(2);
    } finally {
      await rt.close();
    }
  });
});

describe('disk', () => {
  for (const diskEngine of ['io_uring', 'pool'] as const) {
    const ring = diskEngine === 'io_uring';
    // io_uring where the build and the kernel have it (test/features.ts): elsewhere the case is
    // skipped, saying why, instead of failing to start the engine; the pool runs everywhere.
    const test = (name: string, fn: () => Promise<void>): void => (ring ? itWithFeature('io_uring', name, fn) : it(name, fn));
    test(`${diskEngine}: a read, a write and a sync that fail reject with the error; the others in flight complete`, async () => {
      const rt = await createRuntime({ module: fixture('faults.mjs'), threads: 1, diskEngine });
      try {
        // Of 16 reads and then 16 writes in flight, the 6th read fails with EIO, the 5th write with
        // ENOSPC, and the sync after them with EIO.
        const r = await call<{ reads: (boolean | Err)[]; writes: (number | Err)[]; sync: string | Err; whole: boolean; engine: string; injected: number }>(
          rt,
          'disk',
          { path: join(dir, `disk-${diskEngine}`), size: 1 << 20, rules: 'disk:EIO:1:1:5,disk:ENOSPC:1:1:20,disk:EIO:1:1:32' },
        );
        expect(r.engine).toBe(diskEngine);
        expect(r.reads.filter((x) => x === true)).toHaveLength(15);
        expect(r.reads.filter((x) => typeof x === 'object')).toMatchObject([{ code: 'EIO', syscall: 'pread' }]);
        expect(r.writes.filter((x) => x === 65536)).toHaveLength(15);
        expect(r.writes.filter((x) => typeof x === 'object')).toMatchObject([{ code: 'ENOSPC', syscall: 'pwrite', message: expect.stringContaining('the filesystem is full') }]);
        expect(r.sync).toMatchObject({ code: 'EIO', syscall: 'fsync' });
        // The write that "failed" was the same bytes: the file is still whole.
        expect(r.whole).toBe(true);
        expect(r.injected).toBe(3);
      } finally {
        await rt.close();
      }
    });
  }
});

describe('wakers and threads', () => {
  it(`${build.poller === 'kqueue' ? 'EVFILT_USER trigger' : 'eventfd write'} EAGAIN loses no wake: every message between threads arrives`, async () => {
    const rt = await server();
    try {
      injectFaults('waker:EAGAIN');
      const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => call<number>(rt, 'ping', i)));
      for (let i = 0; i < 50; i++) answers.push(await call<number>(rt, 'ping', 300 + i));
      expect(answers).toEqual(Array.from({ length: 350 }, (_, i) => i));
      expect(faultCounts().waker).toBeGreaterThan(0);
    } finally {
      await rt.close();
    }
  });

  it('EAGAIN starting a loop thread: createRuntime rejects with it, and the threads already started are closed', async () => {
    injectFaults('thread:EAGAIN:1:1:2');
    await expect(createRuntime({ module: fixture('faults.mjs'), threads: 3 })).rejects.toMatchObject({
      code: 'EAGAIN',
      syscall: 'pthread_create',
      message: expect.stringContaining('loop thread 2'),
    });
    const rt = await server();
    expect(await call<string>(rt, 'ping', 'again')).toBe('again');
    await rt.close();
  });

  it('EAGAIN starting the first disk thread: that open rejects with it, the next one works', () => {
    // A fresh process, so that no disk thread exists yet; the loop thread's start goes through.
    const script = join(dir, 'first-disk-thread.mjs');
    writeFileSync(script, `
      import { createRuntime, injectFaults } from ${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)};
      const rt = await createRuntime({ module: ${JSON.stringify(fixture('faults.mjs'))}, threads: 1 });
      injectFaults('thread:EAGAIN:1:1');
      console.log(JSON.stringify(await rt.call(0, 'openTwice', { path: ${JSON.stringify(fixture('faults.mjs'))} })));
      await rt.close();`);
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toMatch(/^iapp: fault injection ON \(pid \d+\): thread:EAGAIN:1:1:0: these syscalls will fail on purpose\n$/);
    const out = JSON.parse(r.stdout) as (string | Err)[];
    expect(out[0]).toMatchObject({ code: 'EAGAIN' });
    expect(out[1]).toBe('ok');
  });
});
