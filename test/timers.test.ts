// Loop timers, priorities, child processes and signals.
//
// What it proves: 10,000 timers armed and disarmed a million times without a throw; equal deadlines
// in arming order, a higher priority first, a disarmed one never; monotonic timers over many of the
// native wheel's buckets and past it, re-armed at random, in (deadline, arming order) and never
// early; intervals and their expiration counts (missed periods counted, never more than have
// passed); a timer re-armed before it fired fires once, for the later arming, and a slot reused
// never runs the old timer's record; realtime timers across clock jumps back and forward (through a
// test hook that drives the same code as the kernel's notification; the machine's clock is never
// touched); argument errors; a control message before 1,000 ready reads with priorities, and
// libuv's order without them; child exit codes, signals, ENOENT, ESRCH; SIGTERM then SIGKILL for a
// child that ignores SIGTERM (readiness by a loopback connection, not by timing); a signal
// forwarded to a loop; a runtime in a child process closing on SIGTERM (reset at the deadline) and
// forced by a second SIGTERM with a one-minute grace period.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createRuntime, type Runtime, type RuntimeOptions } from '../dist/src/index.js';
import { fdCount, fixture } from './helpers.js';

// One child-watch test refuses the pidfd's registration with an injected pollctl fault
// (test/fixtures/timers.mjs); fault injection is a switch tests turn on explicitly. Loop threads
// copy the environment when they start.
process.env.IAPP_FAULT_INJECTION = '1';

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = fdCount();
});
afterAll(() => {
  expect(fdCount()).toBe(fdsBefore);
});

async function withLoop<T>(fn: (rt: Runtime) => Promise<T>, opts: Partial<RuntimeOptions> = {}): Promise<T> {
  const rt = await createRuntime({ module: fixture('timers.mjs'), threads: 1, ...opts });
  try {
    return await fn(rt);
  } finally {
    await rt.close({ timeoutMs: 1000 });
  }
}

describe('timers', () => {
  it('arm and disarm never throw once allocated: 10,000 timers armed and disarmed a million times', async () => {
    const r = (await withLoop((rt) => rt.call(0, 'armMany', { timers: 10_000, arms: 1_000_000 }))) as Record<string, number>;
    expect(r).toEqual({ thrown: 0, allocatedBefore: 10_000, allocatedAfter: 10_000, armed: 5_000, closed: 0 });
  });

  it('fires equal deadlines in arming order, a higher priority first, and not a disarmed one', async () => {
    expect(await withLoop((rt) => rt.call(0, 'order'))).toEqual(['hi', 'a', 'c', 'b']);
  });

  it('repeats an interval, stops when disarmed, and fires a re-armed timer once for its last arming', async () => {
    await withLoop(async (rt) => {
      const iv = (await rt.call(0, 'interval')) as { seen: number; armed: boolean; expirations: number[]; periods: number };
      expect(iv).toMatchObject({ seen: 3, armed: false });
      // Each fire counts the periods since the last: whole numbers ≥ 1; the fire after the
      // callback that held the thread for 5 periods counts at least 5; together no more than
      // the periods that have passed.
      for (const e of iv.expirations) expect(Number.isInteger(e) && e >= 1, `expirations ${iv.expirations}`).toBe(true);
      expect(iv.expirations[1]).toBeGreaterThanOrEqual(5);
      expect(iv.expirations.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(iv.periods);
      const fired = (await rt.call(0, 'rearmBeforeFire')) as number[];
      expect(fired).toHaveLength(1);
      expect(fired[0]).toBeGreaterThanOrEqual(40);
    });
  });

  it('never runs a new timer for a record of the timer whose slot it reused', async () => {
    expect(await withLoop((rt) => rt.call(0, 'slotReuse'))).toEqual({ cFired: false, cArmed: true });
  });

  it('keeps closed timers’ slots for new ones without mixing their clock or priority, and counts only live timers', async () => {
    const r = (await withLoop((rt) => rt.call(0, 'spares'))) as { live: number; order: string[]; end: number; clock: string };
    expect(r.live).toBe(50);
    // Same deadline: the higher priority first although it was armed second.
    expect(r.order.filter((x) => x !== 'wall')).toEqual(['hi', 'lo']);
    expect(r.order).toContain('wall');
    expect(r.end).toBe(0);
  });

  it('fires exactly the last arming of each timer, by deadline then arming order, whatever was armed, disarmed and renewed before', async () => {
    // A model: a timer's last operation decides; armed ones fire once, sorted by (deadline, the
    // order of that arming). Up to 80 timers (past the first 64 slots, so the native arrays grow
    // with old entries in the heap) and up to 25 turns of changes (hundreds of re-armings: the
    // heap compacts its stale entries several times).
    const op = (count: number) =>
      fc.oneof(
        { weight: 6, arbitrary: fc.record({ t: fc.nat(count - 1), d: fc.nat(20) }) },
        { weight: 2, arbitrary: fc.record({ t: fc.nat(count - 1) }) },
        { weight: 1, arbitrary: fc.record({ t: fc.nat(count - 1), renew: fc.constant(true) }) },
      );
    const caseArb = fc.integer({ min: 1, max: 80 }).chain((count) =>
      fc.record({ count: fc.constant(count), groups: fc.array(fc.array(op(count), { maxLength: 60 }), { minLength: 1, maxLength: 25 }) }),
    );
    await withLoop(async (rt) => {
      await fc.assert(
        fc.asyncProperty(caseArb, async ({ count, groups }) => {
          const last = new Map<number, { d: number; seq: number } | undefined>();
          let seq = 0;
          for (const g of groups)
            for (const o of g as { t: number; d?: number; renew?: boolean }[]) last.set(o.t, o.d === undefined ? undefined : { d: o.d, seq: seq++ });
          const expected = [...last]
            .filter((e): e is [number, { d: number; seq: number }] => e[1] !== undefined)
            .sort((a, b) => a[1].d - b[1].d || a[1].seq - b[1].seq)
            .map(([t]) => t);
          const r = (await rt.call(0, 'heapModel', { count, groups })) as { fired: number[]; armedAfter: number };
          expect(r.fired).toEqual(expected);
          expect(r.armedAfter).toBe(0);
        }),
        { numRuns: 40 },
      );
    });
  });

  it('fires monotonic timers over many wheel buckets and past the wheel by deadline then arming order, never early', async () => {
    // Per seed, 2,000 timers and 20,000 changes (the clock's room for entries compacts several
    // times); deadlines 200 to 500 ms ahead, so a seed takes about half a second.
    await withLoop(async (rt) => {
      for (const seed of [1, 7, 1234]) {
        const r = (await rt.call(0, 'wheelModel', { seed, count: 2000, turns: 20, opsPerTurn: 1000 })) as { runs: [number, number, number, number][]; wrong: number; left: number };
        expect(r.wrong).toBe(0);
        expect(r.left).toBe(0);
        expect(r.runs.length).toBeGreaterThan(1000);
        const late = r.runs.filter(([, d, , at]) => at < d);
        expect(late).toEqual([]);
        // Every deadline was at or after "now" when it was armed, so the whole sequence is sorted.
        const unsorted = r.runs.filter((e, k) => k > 0 && (e[1] < r.runs[k - 1]![1] || (e[1] === r.runs[k - 1]![1] && e[2] < r.runs[k - 1]![2])));
        expect(unsorted).toEqual([]);
      }
    });
  });

  it('re-evaluates realtime timers when the system clock jumps, and leaves monotonic ones alone', async () => {
    const hour = 3_600_000_000_000;
    const events = await withLoop((rt) => rt.call(0, 'clockJump', { backNs: hour, forwardNs: 2 * hour }));
    expect(events).toEqual(['checkpoint', 'realtime at now+50ms', 'realtime at now+1h']);
  });

  it('validates arguments: fractions of a millisecond, negative durations, bad instants, clocks and priorities', async () => {
    const r = (await withLoop((rt) => rt.call(0, 'badArgs'))) as { out: string[]; closedArm: string };
    expect(r.out).toEqual([
      expect.stringMatching(/^TypeError: arm must be a whole number of milliseconds/),
      expect.stringMatching(/^TypeError: arm must be a whole number of milliseconds/),
      expect.stringMatching(/^TypeError: arm: \{ at \} must be a bigint/),
      expect.stringMatching(/^RangeError: period must be > 0/),
      expect.stringMatching(/^TypeError: clock must be 'monotonic' or 'realtime'/),
      expect.stringMatching(/^RangeError: priority must be between -128 and 127/),
    ]);
    expect(r.closedArm).toBe('the timer is closed');
  });
});

describe('priorities', () => {
  // Loop 0 is held while 1,000 sockets get a byte and a control message arrives; returns how many
  // of those reads ran before the message.
  async function readsBeforeControl(messagePriority: number | undefined): Promise<number> {
    const sab = new SharedArrayBuffer(8);
    const flag = new Int32Array(sab);
    return withLoop(
      async (rt) => {
        const port = (await rt.call(0, 'port')) as number;
        const n = 1000;
        const clients = await Promise.all(
          Array.from({ length: n }, () => new Promise<net.Socket>((res, rej) => {
            const s = net.connect(port, '127.0.0.1', () => res(s));
            s.once('error', rej);
          })),
        );
        try {
          while ((await rt.call(0, 'sockets')) !== n) await rt.call(0, 'controlSaw');
          const blocked = rt.call(0, 'block', undefined, { timeoutMs: 0 });
          await Atomics.waitAsync(flag, 0, 0).value;
          // While the loop is held: a byte on every socket, then the control message.
          await Promise.all(clients.map((c) => new Promise<void>((r) => c.write('x', () => r()))));
          rt.post(0, 'control');
          await Promise.resolve();
          Atomics.store(flag, 1, 1);
          Atomics.notify(flag, 1);
          await blocked;
          return (await rt.call(0, 'controlSaw')) as number;
        } finally {
          for (const c of clients) c.destroy();
        }
      },
      { data: { listen: true, sab, messagePriority } },
    );
  }

  it('handles a control message before 1,000 pending reads when messages have the higher priority', async () => {
    expect(await readsBeforeControl(10)).toBe(0);
  });

  it('without priorities, handles the message and the reads in an unspecified order', async () => {
    // Messages and sockets then wake the loop separately, in libuv's order: no claim but that
    // the message ran.
    const saw = await readsBeforeControl(undefined);
    expect(saw).toBeGreaterThanOrEqual(0);
    expect(saw).toBeLessThanOrEqual(1000);
  });
});

describe('child processes', () => {
  it('reports exit codes and signals, refuses a missing program, and reports pids it cannot watch', async () => {
    await withLoop(async (rt) => {
      expect(await rt.call(0, 'exitCode')).toEqual({ code: 3, signal: null, killAfterExit: false });
      expect(await rt.call(0, 'killed')).toEqual({ code: null, signal: 'SIGKILL' });
      expect(await rt.call(0, 'missing')).toEqual({ code: 'ENOENT', syscall: 'posix_spawn' });
      expect(await rt.call(0, 'notAChild')).toEqual({ gone: { code: null, error: 'ESRCH' } });
    });
  });

  it('reports the exit of a child whose exit the kernel would not watch (registration refused): the reserved timer polls', async () => {
    const r = await withLoop((rt) => rt.call(0, 'attachRefused'));
    expect(r).toEqual({ code: 7, error: null, injected: 1 });
  });

  it('sends SIGTERM, then SIGKILL when the child ignores it past the grace period', async () => {
    const r = await withLoop((rt) => rt.call(0, 'termThenKill', { node: process.execPath, graceMs: 100 }, { timeoutMs: 20_000 }));
    expect(r).toEqual({ steps: ['SIGTERM', 'SIGKILL'], exit: { code: null, signal: 'SIGKILL' } });
  });
});

describe('signals', () => {
  it('forwards a signal to the loops that asked for it', async () => {
    await withLoop(async (rt) => {
      expect(await rt.call(0, 'signals')).toBe('listening');
      const seen = new Promise<void>((r) => process.once('SIGUSR2', () => r()));
      process.kill(process.pid, 'SIGUSR2');
      await seen; // the runtime's listener ran before this one: the broadcast is on its way
      expect(await rt.call(0, 'got')).toEqual(['SIGUSR2']);
    });
  });

  async function runUntilClosed(graceMs: number, signals: number): Promise<{ lines: Record<string, unknown>[]; code: number | null }> {
    const child = spawn(process.execPath, [fixture('signal-runtime.mjs'), String(graceMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: Record<string, unknown>[] = [];
    const waiters: [(l: Record<string, unknown>) => boolean, () => void][] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const l = JSON.parse(line) as Record<string, unknown>;
      lines.push(l);
      for (const [pred, res] of waiters) if (pred(l)) res();
    });
    const waitFor = (pred: (l: Record<string, unknown>) => boolean): Promise<void> =>
      lines.some(pred) ? Promise.resolve() : new Promise((r) => waiters.push([pred, r]));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitFor((l) => 'port' in l);
    const port = lines.find((l) => 'port' in l)!.port as number;
    // A peer that answers but never closes: only a reset ends it.
    const peer = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    peer.on('error', () => {});
    peer.write('ping');
    await new Promise((r) => peer.once('data', r));
    child.kill('SIGTERM');
    await waitFor((l) => l.signal === 'SIGTERM');
    if (signals > 1) child.kill('SIGTERM');
    await waitFor((l) => 'closed' in l);
    const code = await exited;
    peer.destroy();
    return { lines, code };
  }

  it('closes gracefully on SIGTERM and resets what is left at the deadline', async () => {
    const { lines, code } = await runUntilClosed(200, 1);
    expect(lines.find((l) => 'closed' in l)).toEqual({ closed: { sockets: 1, reset: 1, forced: false } });
    expect(code).toBe(0);
  });

  it('a second SIGTERM forces the close at once (the grace period is a minute)', async () => {
    const { lines, code } = await runUntilClosed(60_000, 2);
    expect(lines).toContainEqual({ signal: 'SIGTERM', forced: true });
    expect(lines.find((l) => 'closed' in l)).toEqual({ closed: { sockets: 1, reset: 1, forced: true } });
    expect(code).toBe(0);
  });
});
