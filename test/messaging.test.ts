// Messages between threads (loops and main) and sockets moved between loops.
//
// What it proves: payload kinds (bytes, numbers, strings, structured clones) through posts and
// calls; per-sender order with three loops and main sending to one loop at once through a small
// inbox bound; ERR_INBOX_FULL at exactly the bound and space() after; cancel() of a staged post, of
// a queued one (the target held by Atomics.wait, not by timing) and after it ran; handler errors,
// ERR_NO_HANDLER, ERR_CALL_TIMEOUT, ERR_NO_SUCH_THREAD; calls pending on a loop that dies reject
// with ERR_THREAD_EXITED (from main and from another loop) and posts to it throw at once;
// membership (started of a loop seen by another, subscriptions, exited); broadcast from main and
// from a loop, and a loop's members() equal to the runtime's; the same
// answers with busy polling, and timers firing while a loop busy-polls; messages a loop took but
// never ran counted as dropped; offload results on the loop that asked; an acceptor handing six
// connections to two workers while the clients keep sending (every byte once, in order, by SHA-256,
// with 1 MiB the acceptor had queued); an adopting loop told that the peer had already ended; a
// detached socket nobody adopted closed at runtime close (no fd leak).
import { createHash } from 'node:crypto';
import net from 'node:net';
import { isDeepStrictEqual } from 'node:util';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createRuntime, IappError, MEMBERSHIP, type MembershipEvent, type Runtime, type RuntimeOptions } from '../dist/src/index.js';
import { fdCount, fixture } from './helpers.js';

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = fdCount();
});
afterAll(() => {
  expect(fdCount()).toBe(fdsBefore);
});

async function withRuntime<T>(opts: Partial<RuntimeOptions>, fn: (rt: Runtime) => Promise<T>): Promise<T> {
  // Threads share a SharedArrayBuffer through `data` (messages cannot carry one).
  const sab = new SharedArrayBuffer(8);
  const rt = await createRuntime({ module: fixture('messaging.mjs'), threads: 2, ...opts, data: { ...(opts.data as object), sab } });
  sabs.set(rt, sab);
  try {
    return await fn(rt);
  } finally {
    await rt.close({ timeoutMs: 1000 });
  }
}

const sabs = new WeakMap<Runtime, SharedArrayBuffer>();

/** Holds loop `thread` inside a handler until release() (no timing involved). */
async function block(rt: Runtime, thread: number): Promise<{ release: () => void; done: Promise<unknown> }> {
  const flag = new Int32Array(sabs.get(rt)!);
  flag.fill(0);
  const done = rt.call(thread, 'block', undefined, { timeoutMs: 0 });
  await Atomics.waitAsync(flag, 0, 0).value;
  return {
    release: () => {
      Atomics.store(flag, 1, 1);
      Atomics.notify(flag, 1);
    },
    done,
  };
}

const codeOf = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => 'resolved',
    (e: { code?: string }) => e.code,
  );

describe('messaging', () => {
  it('posts and calls with bytes, cloned values and nothing; a call gets what the handler returned', async () => {
    await withRuntime({}, async (rt) => {
      expect(await rt.call(0, 'echo', { a: [1, 2], m: new Map([[1, 'x']]) })).toEqual({
        p: { a: [1, 2], m: new Map([[1, 'x']]) },
        from: 'main',
        isBuffer: false,
        me: 0,
      });
      const bytes = (await rt.call(1, 'echo', new Uint8Array([1, 2, 3]))) as { p: Uint8Array; isBuffer: boolean };
      expect(bytes.isBuffer).toBe(true);
      expect([...bytes.p]).toEqual([1, 2, 3]);
      expect(await rt.call(1, 'echo')).toMatchObject({ p: undefined, from: 'main' });
      rt.post(0, 'count');
      rt.post(0, 'count');
      // FIFO per pair: the call comes after the two posts.
      expect(await rt.call(0, 'counts')).toEqual({ count: 2 });
      // Loop to loop.
      expect(await rt.call(0, 'callLoop', { target: 1, name: 'hello' })).toEqual({ ok: 'hi' });
      expect(rt.members().sort()).toEqual([0, 1, 'main'].sort());
    });
  });

  it('carries strings and plain objects exactly as structuredClone would: any UTF-16, any length, staged or direct', async () => {
    // Text is written into the staging buffer as UTF-8 and read back from the arena in place;
    // a lone surrogate cannot be UTF-8 and must still arrive as itself. Lengths straddle the
    // 3-bytes-a-unit bound (2,731 units) and the 8 KiB direct-post limit.
    const units = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 3000 }).map((c) => String.fromCharCode(...c));
    const text = fc.oneof(units, fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('', '\ud800', 'a\udc00b', '😀', 'x'.repeat(2731), 'é'.repeat(5000), 'ü'.repeat(4100)));
    const value = fc.oneof(text, fc.record({ i: fc.integer(), s: text }), fc.array(text, { maxLength: 3 }), fc.jsonValue({ maxDepth: 3 }));
    await withRuntime({}, async (rt) => {
      await fc.assert(
        fc.asyncProperty(value, async (v) => {
          // main -> loop 0 (a post from main) and back (the reply from the loop).
          const got = (await rt.call(0, 'echo', v)) as { p: unknown };
          expect(isDeepStrictEqual(got.p, structuredClone(v))).toBe(true);
          // The value itself as the reply (a top-level string travels as text, not inside JSON).
          expect(isDeepStrictEqual(await rt.call(0, 'echoRaw', v), structuredClone(v))).toBe(true);
        }),
        { numRuns: 300 },
      );
      // Loop to loop, many in one staged batch.
      const batch = ['', 'a', '\ud83d', 'ünï', 'y'.repeat(3000), { s: '\udfff', n: 1 }];
      expect(await rt.call(0, 'callLoopMany', { target: 1, values: batch })).toEqual(batch.map((p) => structuredClone(p)));
    });
  });

  it('keeps each sender’s order under concurrent senders, and respects the inbox bound', async () => {
    const n = 20_000;
    await withRuntime({ threads: 4, inbox: { messages: 256 } }, async (rt) => {
      await Promise.all([0, 1, 2].map((t) => rt.call(t, 'sendSeq', { target: 3, n })));
      const seq = Buffer.alloc(4);
      for (let i = 0; i < n; i++) {
        seq.writeUInt32LE(i, 0);
        while (!rt.tryPost(3, 'seq', seq)) await rt.space(3);
      }
      // The last post may have filled the inbox, and a call to a full inbox is refused at once
      // (ERR_INBOX_FULL): then wait for room and call again, as the error says.
      const seqReport = async (): Promise<unknown> => {
        for (;;) {
          try {
            return await rt.call(3, 'seqReport');
          } catch (e) {
            if ((e as { code?: string }).code !== 'ERR_INBOX_FULL') throw e;
            await rt.space(3);
          }
        }
      };
      const report = (await seqReport()) as { outOfOrder: number; last: Record<string, number> };
      expect(report.outOfOrder).toBe(0);
      expect(report.last).toEqual({ 0: n - 1, 1: n - 1, 2: n - 1, main: n - 1 });
      const stats = await rt.stats();
      expect(stats[3]!.messagesIn).toBeGreaterThanOrEqual(4 * n);
    });
  });

  it('refuses posts past the bound with ERR_INBOX_FULL, then tells the sender when there is space', async () => {
    await withRuntime({ inbox: { messages: 100 } }, async (rt) => {
      const b = await block(rt, 1);
      let accepted = 0;
      while (rt.tryPost(1, 'count')) accepted++;
      expect(accepted).toBe(100);
      let err: unknown;
      try {
        rt.post(1, 'count');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(IappError);
      expect((err as IappError).code).toBe('ERR_INBOX_FULL');
      expect(await codeOf(rt.call(1, 'counts'))).toBe('ERR_INBOX_FULL');
      const space = rt.space(1);
      b.release();
      await space;
      await b.done;
      expect(await rt.call(1, 'counts')).toEqual({ count: 100 });
    });
  });

  it('cancel() removes a message not yet taken (staged or queued), and says false once it has run', async () => {
    await withRuntime({}, async (rt) => {
      // Still staged on this thread.
      expect(rt.post(0, 'count').cancel()).toBe(true);
      // Queued in the target's inbox while the target is busy.
      const b = await block(rt, 0);
      const h = rt.post(0, 'count');
      await Promise.resolve(); // the staged post reaches the inbox
      expect(h.cancel()).toBe(true);
      const ran = rt.post(0, 'count');
      b.release();
      await b.done;
      expect(await rt.call(0, 'counts')).toEqual({ count: 1 });
      expect(ran.cancel()).toBe(false);
    });
  });

  it('rejects calls with the handler error, ERR_NO_HANDLER, ERR_CALL_TIMEOUT and ERR_NO_SUCH_THREAD', async () => {
    await withRuntime({}, async (rt) => {
      const e1 = (await rt.call(0, 'boom').catch((e: unknown) => e)) as Error & { code?: string; thread?: unknown };
      expect(e1.message).toBe('handler failed on purpose');
      expect(e1.code).toBe('E_ON_PURPOSE');
      expect(e1.thread).toBe(0);
      const e2 = (await rt.call(1, 'reject').catch((e: unknown) => e)) as Error;
      expect(e2.name).toBe('RangeError');
      expect(e2.message).toBe('async handler failed');
      expect(await codeOf(rt.call(0, 'no-such-handler'))).toBe('ERR_NO_HANDLER');
      expect(await codeOf(rt.call(0, 'never', undefined, { timeoutMs: 50 }))).toBe('ERR_CALL_TIMEOUT');
      expect(await codeOf(rt.call(7, 'hello'))).toBe('ERR_NO_SUCH_THREAD');
      expect(() => rt.post(-1, 'count')).toThrow(/no thread -1/);
      // A post to a missing handler is reported, not dropped silently.
      const reported = new Promise<{ thread: unknown; error: Error }>((r) => rt.once('handler-error', r));
      rt.post(1, 'no-such-handler');
      const rep = await reported;
      expect(rep.thread).toBe(1);
      expect((rep.error as IappError).code).toBe('ERR_NO_HANDLER');
    });
  });

  it('rejects calls pending on a loop that exits with ERR_THREAD_EXITED, and refuses later posts', async () => {
    await withRuntime({ threads: 3, data: { watchMembership: 0 } }, async (rt) => {
      // When the thread has ended, its inbox is closed: a post throws at once, even before the
      // exit notice has reached this thread.
      const postAtExit = new Promise<unknown>((r) =>
        rt.once('exit', () => {
          try {
            rt.post(1, 'count');
            r('posted');
          } catch (e) {
            r((e as IappError).code);
          }
        }),
      );
      const fromMain = rt.call(1, 'never', undefined, { timeoutMs: 0 });
      const fromLoop = rt.call(0, 'callLoop', { target: 1, name: 'never' });
      // Wait until loop 0's call has reached loop 1: loop 1 answers FIFO after it.
      await rt.call(0, 'callLoop', { target: 1, name: 'hello' });
      const exited = new Promise<MembershipEvent>((r) => {
        const off = rt.subscribe(MEMBERSHIP, (ev: MembershipEvent) => {
          if (ev.event === 'exited') {
            off();
            r(ev);
          }
        });
      });
      rt.post(1, 'die');
      expect(await codeOf(fromMain)).toBe('ERR_THREAD_EXITED');
      expect(await fromLoop).toMatchObject({ code: 'ERR_THREAD_EXITED' });
      expect(await exited).toMatchObject({ event: 'exited', thread: 1 });
      expect(await postAtExit).toBe('ERR_THREAD_EXITED');
      expect(() => rt.post(1, 'count')).toThrow(expect.objectContaining({ code: 'ERR_THREAD_EXITED' }));
      expect(rt.members().sort()).toEqual([0, 2, 'main'].sort());
      const seen = (await rt.call(0, 'membership')) as MembershipEvent[];
      expect(seen).toContainEqual(expect.objectContaining({ event: 'exited', thread: 1 }));
    });
  });

  it('announces loops starting and subscriptions coming and going', async () => {
    // Loop 1's setup calls loop 0, which answers only after its own setup (which subscribed to
    // membership) has finished: loop 0 then sees loop 1 start.
    await withRuntime({ data: { watchMembership: 0, helloFrom: 1, helloTo: 0, newsOn: [1] } }, async (rt) => {
      const events: MembershipEvent[] = [];
      rt.subscribe(MEMBERSHIP, (ev: MembershipEvent) => events.push(ev));
      await rt.call(1, 'unsubscribeNews');
      await rt.call(0, 'hello'); // a round trip after the notice was sent
      const seen = (await rt.call(0, 'membership')) as MembershipEvent[];
      expect(seen).toContainEqual({ event: 'started', thread: 1 });
      expect(seen).toContainEqual({ event: 'subscribed', thread: 'main', topic: MEMBERSHIP });
      expect(seen).toContainEqual({ event: 'unsubscribed', thread: 1, topic: 'news' });
      expect(events).toContainEqual({ event: 'unsubscribed', thread: 1, topic: 'news' });
    });
  });

  it('broadcasts once to every subscribed thread', async () => {
    await withRuntime({ threads: 3, data: { newsOn: [0, 2] } }, async (rt) => {
      const mine: unknown[] = [];
      rt.subscribe('news', (p) => mine.push(p));
      expect(rt.broadcast('news', { n: 1 })).toEqual({ reached: 3, skipped: [] });
      await rt.call(2, 'unsubscribeNews');
      expect(rt.broadcast('news', { n: 2 })).toEqual({ reached: 2, skipped: [] });
      expect(await rt.call(0, 'news')).toEqual([
        { p: { n: 1 }, from: 'main' },
        { p: { n: 2 }, from: 'main' },
      ]);
      expect(await rt.call(1, 'news')).toEqual([]);
      expect(await rt.call(2, 'news')).toEqual([{ p: { n: 1 }, from: 'main' }]);
      await rt.call(0, 'hello');
      expect(mine).toEqual([{ n: 1 }, { n: 2 }]);
      // From a loop: it reaches main and loop 0 (loop 2 has unsubscribed, loop 1 never
      // subscribed), and each gets it from loop 1.
      expect(await rt.call(1, 'broadcastNews', { payload: { n: 3 }, check: [0] })).toEqual({ reached: 2, skipped: [] });
      expect(await rt.call(0, 'news')).toEqual([
        { p: { n: 1 }, from: 'main' },
        { p: { n: 2 }, from: 'main' },
        { p: { n: 3 }, from: 1 },
      ]);
      expect(await rt.call(2, 'news')).toEqual([{ p: { n: 1 }, from: 'main' }]);
      expect(mine).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
      // A loop's members() is the runtime's: every thread that takes messages.
      expect(await rt.call(1, 'members')).toEqual(rt.members());
      expect(rt.members()).toEqual(expect.arrayContaining([0, 1, 2]));
    });
  });

  it('gives the same answers with busy polling, and validates the runtime’s messaging options', async () => {
    await withRuntime({ busyPollUs: 50 }, async (rt) => {
      for (let i = 0; i < 100; i++) expect(await rt.call(0, 'callLoop', { target: 1, name: 'hello' })).toEqual({ ok: 'hi' });
    });
    await expect(createRuntime({ module: fixture('messaging.mjs'), busyPollUs: -1 })).rejects.toThrow(RangeError);
    await expect(createRuntime({ module: fixture('messaging.mjs'), inbox: { messages: 0 } })).rejects.toThrow(RangeError);
    await expect(withRuntime({}, async (rt) => rt.call(0, 'echo', () => 1))).rejects.toThrow(/structured-cloneable/);
  });

  it('counts the messages a loop took but never ran when it closes in the middle of a batch', async () => {
    await withRuntime({}, async (rt) => {
      let handled = 0;
      rt.handle('handled', () => void handled++);
      const exited = new Promise<MembershipEvent>((r) => rt.subscribe(MEMBERSHIP, (ev: MembershipEvent) => ev.event === 'exited' && ev.thread === 1 && r(ev)));
      // Everything is queued while loop 1 is held, so it takes it all in one batch.
      const b = await block(rt, 1);
      rt.post(1, 'closeSelf');
      for (let i = 0; i < 10_000; i++) rt.post(1, 'tally');
      await Promise.resolve();
      b.release();
      const ev = await exited;
      expect(handled + ev.dropped!).toBe(10_000);
      expect(ev.dropped).toBeGreaterThan(0);
    });
  });

  it('fires timers armed in a handler while the loop busy-polls its inbox', async () => {
    await withRuntime({ busyPollUs: 200 }, async (rt) => {
      for (let i = 0; i < 5; i++) {
        await rt.call(0, 'callLoop', { target: 1, name: 'hello' });
        expect(await rt.call(1, 'timerWhilePolling', 20, { timeoutMs: 5000 })).toBeGreaterThanOrEqual(20);
      }
    });
  });

  it('runs offloaded work on the pool and resolves on the loop that asked', async () => {
    await withRuntime({ offloadThreads: 1 }, async (rt) => {
      const file = fixture('offload-task.mjs');
      const [a, b] = (await Promise.all([0, 1].map((t) => rt.call(t, 'offload', { file, n: 1000 })))) as {
        loop: number;
        loopThread: number;
        sum: number;
        taskThread: number;
      }[];
      expect(a!.loop).toBe(0);
      expect(b!.loop).toBe(1);
      expect(a!.sum).toBe(499500);
      expect(a!.loopThread).toBe(await rt.call(0, 'threadId'));
      expect(b!.loopThread).toBe(await rt.call(1, 'threadId'));
      expect(a!.taskThread).not.toBe(a!.loopThread);
      expect(a!.taskThread).not.toBe(b!.loopThread);
    });
  });
});

describe('socket hand-off', () => {
  it('an acceptor hands connections to workers; every byte arrives once, in order, with queued writes', async () => {
    const greeting = 1 << 20;
    await withRuntime({ threads: 3, data: { acceptor: 0, greeting } }, async (rt) => {
      const port = (await rt.call(0, 'port')) as number;
      const clients = 6;
      const results = await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          const sock = net.connect({ host: '127.0.0.1', port });
          const sent = createHash('sha256');
          let total = 0;
          // The peer keeps sending while the socket moves between loops.
          await new Promise<void>((res, rej) => {
            sock.once('error', rej);
            sock.once('connect', () => {
              let i = 0;
              const more = (): void => {
                while (i < 64) {
                  const chunk = Buffer.alloc(16 * 1024, (c * 64 + i++) & 0xff);
                  sent.update(chunk);
                  total += chunk.length;
                  if (!sock.write(chunk)) return void sock.once('drain', more);
                }
                sock.end();
                res();
              };
              more();
            });
          });
          const got = await new Promise<Buffer>((res, rej) => {
            const parts: Buffer[] = [];
            sock.on('data', (d: Buffer) => parts.push(d));
            sock.once('end', () => res(Buffer.concat(parts)));
            sock.once('error', rej);
          });
          sock.destroy();
          return { got, total, digest: sent.digest('hex') };
        }),
      );
      const by = new Map<number, number>();
      for (const r of results) {
        // The greeting the acceptor queued, then the worker's report.
        expect(r.got.subarray(0, greeting).equals(Buffer.alloc(greeting, 0x61))).toBe(true);
        const [worker, n, digest] = r.got.subarray(greeting).toString().trim().split(' ');
        expect(Number(n)).toBe(r.total);
        expect(digest).toBe(r.digest);
        by.set(Number(worker), (by.get(Number(worker)) ?? 0) + 1);
      }
      // Round robin over loops 1 and 2.
      expect(by).toEqual(new Map([[1, 3], [2, 3]]));
      const stats = await rt.stats();
      expect(stats[0]!.detached).toBe(clients);
      expect(stats[1]!.adopted + stats[2]!.adopted).toBe(clients);
    });
  });

  it('tells the adopting loop that the peer had already ended', async () => {
    await withRuntime({ data: { eofAcceptor: 0, eofWorker: 1 } }, async (rt) => {
      const port = (await rt.call(0, 'eofPort')) as number;
      const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      sock.end('abc');
      const parts: Buffer[] = [];
      sock.on('data', (d: Buffer) => parts.push(d));
      await new Promise((r) => sock.once('end', r));
      sock.destroy();
      expect(Buffer.concat(parts).toString()).toBe('adopted after end: abc');
    });
  });

  it('closes sockets detached and never adopted when the runtime closes', async () => {
    const rt = await createRuntime({ module: fixture('messaging.mjs'), threads: 1 });
    const port = (await rt.call(0, 'detachOnly')) as number;
    const sock = net.connect({ host: '127.0.0.1', port });
    const ended = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    // The detach happens on loop 0; a round trip after it means the token exists.
    while ((await rt.stats())[0]!.detached === 0) await rt.call(0, 'hello');
    const summary = await rt.close();
    expect(summary.unadopted).toBe(1);
    await ended;
  });
});
