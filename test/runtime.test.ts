// The runtime (main thread): starting and stopping loop threads, and what happens when things go
// wrong.
//
// What it proves: setup runs on every thread and its results come back; a setup that throws rejects
// createRuntime (the others are stopped); options are validated; a loop thread that dies is
// reported while the others keep serving, also with data flowing into it; a handler that throws
// closes its socket only; close() flushes queued writes and resets peers that do not close by the
// deadline; EMFILE under a lowered fd limit (in a child process) pauses accepting without
// spinning (wakeups counted over round trips, not time) and service resumes once fds free up;
// IappError carries code, errno, syscall and a message that says what to do; a process fleet's
// children deliver their closing summaries whole, however large, to a parent busy as they send.
// (Idle CPU is measured by bench/idle.mjs, not asserted here.)
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startFleet } from '../dist/src/cli/fleet.js';
import { createRuntime, IappError, type ThreadExit } from '../dist/src/index.js';
import { fdCount, fixture, netExchange, startServer } from './helpers.js';

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = fdCount();
});
afterAll(() => {
  expect(fdCount()).toBe(fdsBefore);
});

describe('runtime', () => {
  it('runs setup on every thread and hands back what it returned', async () => {
    const { rt } = await startServer('echo', { host: '127.0.0.1', port: 0 }, { threads: 3 });
    try {
      expect(rt.threads).toBe(3);
      expect(rt.results).toHaveLength(3);
      // Port 0 on every loop of one runtime: one port, shared through SO_REUSEPORT.
      const ports = new Set((rt.results as { port: number }[]).map((r) => r.port));
      expect(ports.size).toBe(1);
      expect(rt.limits.soft).toBe(rt.limits.hard);
    } finally {
      const s = await rt.close();
      expect(s.terminated).toBe(0);
    }
  });

  it('rejects createRuntime when a setup throws, and stops the other threads', async () => {
    await expect(createRuntime({ module: fixture('bad-setup.mjs'), threads: 2 })).rejects.toThrow('setup failed on purpose');
  });

  it("emits 'idle' once nothing has happened for its timeout; an open connection, even silent, keeps it away", async () => {
    const { rt, port } = await startServer('echo', { host: '127.0.0.1', port: 0 }, { threads: 2 });
    try {
      const idles: number[] = [];
      const idle = new Promise<void>((r) => rt.on('idle', (e: { idleMs: number }) => (idles.push(e.idleMs), r())));
      const c = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => c.once('connect', r));
      const t0 = performance.now();
      rt.setIdleTimeout(300);
      // Held open and silent for 900 ms: three timeouts' worth, and no 'idle'.
      await new Promise((r) => setTimeout(r, 900));
      expect(idles).toEqual([]);
      c.destroy();
      await idle;
      expect(performance.now() - t0).toBeGreaterThan(1100); // 900 ms held, then at least 300 idle
      expect(idles[0]).toBeGreaterThanOrEqual(300);
      expect(() => rt.setIdleTimeout(-1)).toThrow(RangeError);
    } finally {
      await rt.close();
    }
  });

  it('validates its options', async () => {
    await expect(startServer('echo', { path: '/tmp/x.sock', accept: 'reuseport' }, { threads: 1 })).rejects.toThrow(TypeError);
    await expect(createRuntime({ module: fixture('server.mjs'), threads: 0 })).rejects.toThrow(RangeError);
    await expect(createRuntime({} as never)).rejects.toThrow(TypeError);
  });

  it('reports a loop thread that dies; the others keep serving', async () => {
    const exits: ThreadExit[] = [];
    const { rt, port, ev: startServerEv } = await startServer('echo', { host: '127.0.0.1', port: 0 }, { threads: 2, data: { crashThread: 1 } });
    const exited = new Promise<ThreadExit>((r) => rt.on('exit', (e: ThreadExit) => (exits.push(e), r(e))));
    startServerEv.send({ type: 'crash' });
    try {
      const e = await exited;
      expect(e.thread).toBe(1);
      expect(e.error?.message).toBe('thread 1 boom');
      for (let i = 0; i < 20; i++) {
        const { reply } = await netExchange({ host: '127.0.0.1', port }, `after ${i}`);
        expect(reply.toString()).toBe(`after ${i}`);
      }
      const stats = await rt.stats();
      expect(stats.map((s) => s.thread)).toEqual([0]);
      expect(stats[0]!.accepted).toBe(20);
    } finally {
      startServerEv.close();
      await rt.close();
    }
  });

  it('a thread that dies while data flows into it does not take the process down', async () => {
    // Its env is torn down mid-stream: the native loop must stop calling into JS and close its
    // fds instead of throwing (and aborting) from the drain path.
    const { rt, port, ev } = await startServer('echo', { host: '127.0.0.1', port: 0 }, { threads: 2, data: { crashThread: 0 } });
    const exited = new Promise<ThreadExit>((r) => rt.on('exit', r));
    const clients: net.Socket[] = [];
    const chunk = Buffer.alloc(1 << 16, 1);
    for (let i = 0; i < 16; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {}); // the dead thread's sockets are closed under the client
      const pump = (): void => {
        while (c.write(chunk));
      };
      c.on('connect', pump).on('drain', pump).resume();
      clients.push(c);
    }
    await Promise.all(clients.map((c) => new Promise((r) => c.once('connect', r))));
    ev.send({ type: 'crash' });
    try {
      const e = await exited;
      expect(e.thread).toBe(0);
      expect(e.error?.message).toBe('thread 0 boom');
      const { reply } = await netExchange({ host: '127.0.0.1', port }, 'still here');
      expect(reply.toString()).toBe('still here');
    } finally {
      for (const c of clients) c.destroy();
      ev.close();
      await rt.close();
    }
  });

  it('a handler that throws closes its socket, is reported, and the loop goes on', async () => {
    const { rt, port } = await startServer('throw', { host: '127.0.0.1', port: 0 }, { threads: 1 });
    const reported = new Promise<{ thread: number; error: Error }>((r) => rt.on('handler-error', r));
    try {
      const bad = await netExchange({ host: '127.0.0.1', port }, 'boom');
      expect(bad.reply.length).toBe(0);
      const { error, thread } = await reported;
      expect(thread).toBe(0);
      expect(error.message).toBe('handler boom');
      const ok = await netExchange({ host: '127.0.0.1', port }, 'fine');
      expect(ok.reply.toString()).toBe('fine');
    } finally {
      await rt.close();
    }
  });

  it('close() flushes queued writes before ending, and resets peers that do not close by the deadline', async () => {
    const bytes = 32 << 20;
    const { rt, port, ev } = await startServer('blast', { host: '127.0.0.1', port: 0 }, { threads: 1, data: { bytes } });
    // A client that reads everything but never closes its side.
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = 0;
    // Settles on close too, so a reset shows as a failed assertion rather than a hang.
    const ended = new Promise<void>((r) => (c.on('end', r), c.on('close', () => r())));
    c.on('error', () => {});
    c.on('data', (d) => (got += d.length));
    const queued = await ev.waitFor((m) => m.type === 'queued');
    expect(queued.buffered as number).toBeGreaterThan(0);
    // The peer never closes, so the deadline is always reached and the test always takes it.
    // 5 s: 32 MiB over loopback takes tens of milliseconds on an idle machine, so a loaded one has
    // a hundredfold margin to flush before the FIN; if it ever did not, the count below still
    // holds (nothing lost silently) and the flush assertion says how much was left.
    const summary = await rt.close({ timeoutMs: 5000 });
    await ended;
    expect(got + summary.unsent).toBe(bytes);
    expect(got).toBe(bytes);
    // Everything queued was sent before the FIN; the peer never closed, so it was reset.
    expect(summary).toMatchObject({ sockets: 1, reset: 1, unsent: 0, terminated: 0 });
    c.destroy();
  });

});

describe('fd exhaustion', () => {
  it('EMFILE pauses accepting without spinning, and service resumes once fds free up', async () => {
    // The child's soft and hard limit: room for Node, the loop and a few connections.
    const limit = 60;
    const child = spawn('sh', ['-c', `ulimit -n ${limit} && exec "${process.execPath}" "${fixture('emfile-server.mjs')}"`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async (): Promise<Record<string, unknown>> => JSON.parse((await lines.next()).value as string);
    const ask = async (cmd: string): Promise<Record<string, number & Record<string, number>>> => {
      child.stdin.write(`${cmd}\n`);
      return (await next()) as never;
    };
    const clients: net.Socket[] = [];
    try {
      const { port, limits } = (await next()) as { port: number; limits: { hard: number } };
      expect(limits.hard).toBe(limit);
      // More connections than the child has fds: the first ones are served, the rest wait.
      const n = 80;
      const echoed: Promise<string>[] = [];
      for (let i = 0; i < n; i++) {
        const c = net.connect(port, '127.0.0.1');
        clients.push(c);
        echoed.push(new Promise((res, rej) => c.once('data', (d) => res(d.toString())).once('error', rej)));
        c.write(`c${i}`);
      }
      let s = await ask('stats');
      while (s.acceptPaused === 0) s = await ask('stats');
      expect(s.errors.EMFILE).toBeGreaterThan(0);
      // The paused listener does not spin: over 20 round trips to the loop (each one or two
      // wakes of its own) it wakes a few times more at most, for the backoff's resumes; a
      // listener left readable would wake it thousands of times in that span. Counted in round
      // trips, not in sleeps, so a slow machine changes nothing.
      const w1 = s.wakeups;
      for (let i = 0; i < 20; i++) s = await ask('stats');
      expect(s.wakeups - w1).toBeLessThan(100);
      // Free fds: close the connections that were served; the waiting ones get in.
      const served = await Promise.all(echoed.slice(0, 10));
      expect(served[0]).toBe('c0');
      // s.sockets is how many connections fit under the limit at once; the rest wait.
      const capacity = s.sockets;
      expect(capacity).toBeLessThan(n);
      // Keep fewer clients than fit and close all others: every kept one must now be served.
      const keep = capacity - 5;
      for (const c of clients.slice(0, n - keep)) c.destroy();
      const rest = await Promise.all(echoed.slice(n - keep));
      rest.forEach((r, i) => expect(r).toBe(`c${n - keep + i}`));
      s = await ask('stats');
      expect(s.accepted).toBeGreaterThanOrEqual(capacity + keep);
      expect(s.acceptErrors).toBeGreaterThan(0);
    } finally {
      for (const c of clients) c.destroy();
      child.stdin.end('close\n');
      await new Promise((r) => child.on('exit', r));
    }
  });
});

describe('errors', () => {
  it('IappError carries code, errno, syscall and works with instanceof', () => {
    const e = IappError.fromErrno(111, 'connect', '127.0.0.1:9');
    expect(e).toBeInstanceOf(IappError);
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('ECONNREFUSED');
    expect(e.errno).toBe(-111);
    expect(e.syscall).toBe('connect');
    expect(e.message).toMatch(/^connect ECONNREFUSED 127.0.0.1:9: nothing is listening there/);
  });
});

describe('process fleet', () => {
  it('each child delivers its closing summary whole, however large, to a parent busy while it is sent', async () => {
    // A child closed its IPC channel right after sending (a summary still queued behind a full
    // pipe was dropped), and the parent settled on the child's 'exit' (a summary still unread
    // in the pipe was lost): "thread(s) did not report".
    const fleet = await startFleet({ module: fixture('big-stats.mjs'), threads: 2, procs: 2, data: () => ({}) });
    // Busy in slices, so that a child's exit and its last bytes often become ready in the same
    // slice: a parent that settled on 'exit' then lost the summary still in the pipe.
    let settled = false;
    const closing = fleet.close({ timeoutMs: 1000 }).finally(() => (settled = true));
    const busy = (): void => {
      const until = Date.now() + 5;
      while (Date.now() < until);
      if (!settled) setImmediate(busy);
    };
    busy();
    const summary = await closing;
    expect(summary.stats.map((t) => t.proc)).toEqual([0, 1]);
    for (const t of summary.stats) expect((t.app as string).length).toBe(4 << 20);
  });
});
