// Timers of a loop (native/timers.cc). A timer is allocated once (the only step that can fail)
// and then armed and disarmed by plain stores into arrays the native loop reads before it next
// waits: arming calls nothing native, allocates nothing native and cannot fail.
import { checkInt } from './check.js';
import { IappError } from './errors.js';
import type { NativeLoop } from './native.js';

// Timers: slots in shared arrays, and the loop's clocks.
declare module './native.js' {
  interface NativeLoop {
    timerViews(rel: Float64Array, abs: BigInt64Array, period: Float64Array, ctl: Int32Array, dirty: Int32Array, flags: Uint8Array, order: Float64Array): void;
    /** Allocates up to out.length timers of that clock and priority into `out`; how many (>= 1). */
    timerAlloc(clock: number, priority: number, out: Int32Array): number;
    timerFree(slot: number): void;
    now(clock: number): bigint;
    testClockJump(ns: bigint): void;
  }
}

/** `'monotonic'`: durations, unaffected by changes to the system clock. `'realtime'`: instants of the system (wall) clock. */
export type ClockName = 'monotonic' | 'realtime';

/**
 * A duration: a `number` of milliseconds (a safe integer >= 0) or a `bigint` of nanoseconds.
 * Never a fraction: time is integer nanoseconds throughout.
 */
export type Duration = number | bigint;

/** When a timer fires: after a duration from now, or `{ at }` an instant (ns) of its clock (see `loop.now()`). */
export type When = Duration | { at: bigint };

export interface TimerOptions {
  /** Default `'monotonic'`. */
  clock?: ClockName;
  /** Dispatch order within one drained batch, -128 to 127, higher first. Default 0. */
  priority?: number;
}

/** Called when a timer fires; `expirations` > 1 when an interval timer missed periods. */
export type TimerCallback = (expirations: number, timer: Timer) => void;

const clockOf = (c: ClockName | undefined): number => (c === 'realtime' ? 1 : 0);

/** `loop.timer(fn)`'s options: one object, not one per timer. */
export const NO_OPTIONS: TimerOptions = Object.freeze({});

/** Most slots allocated in one native call. */
const MAX_BATCH = 256;
/** Most spare slots kept per clock and priority; closing more frees them natively. */
const MAX_SPARE = 4096;

function durationNs(d: Duration, what: string): number {
  if (typeof d === 'bigint') {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${what} must be from 0 to 2^53 ns, got ${d}`);
    return Number(d);
  }
  if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
    throw new TypeError(`${what} must be a whole number of milliseconds >= 0 or a bigint of nanoseconds, got ${String(d)}`);
  if (d > 104 * 86_400_000) throw new RangeError(`${what} must be at most 104 days, got ${d} ms`);
  return d * 1_000_000;
}

/** @internal The arrays shared with the native timer set, grown (replaced) as timers are allocated. */
export class TimerTable {
  rel!: Float64Array;
  abs!: BigInt64Array;
  period!: Float64Array;
  ctl!: Int32Array;
  dirty!: Int32Array;
  flags!: Uint8Array;
  order!: Float64Array;
  /** Armings so far: equal deadlines fire in arming order. */
  armings = 0;
  readonly timers: (Timer | undefined)[] = [];
  /** @internal */
  readonly native: NativeLoop;
  /** @internal Reports a callback that threw. */
  readonly onError: (e: unknown) => void;

  // Slots are allocated natively in batches, and a closed timer's slot is kept for the next timer
  // of the same clock and priority: creating and closing timers then costs no native call (one
  // per timer made setTimeout look cheap). Spares are per clock and priority because the native
  // slot holds both; all are given back when no timer is left.
  readonly #spares = new Map<number, number[]>();
  #spareCount = 0;
  /** Slots allocated natively for JS: live timers and spares. */
  #held = 0;
  #live = 0;
  readonly #batch = new Int32Array(MAX_BATCH);
  #lastKey = -1;
  #lastList: number[] | undefined;

  constructor(native: NativeLoop, onError: (e: unknown) => void) {
    this.native = native;
    this.onError = onError;
  }

  /** Timers that exist (spare slots not counted). */
  get live(): number {
    return this.#live;
  }

  /** A slot for a new timer: may allocate, and so fail (ENOMEM, or the clock's creation error). */
  take(clock: number, priority: number): number {
    const key = clock * 256 + priority + 128;
    // Timers made in a row mostly share a clock and priority: skip the map for those.
    let list = key === this.#lastKey ? this.#lastList : this.#spares.get(key);
    if (list === undefined) this.#spares.set(key, (list = []));
    this.#lastKey = key;
    this.#lastList = list;
    if (list.length === 0) {
      // Batches grow with the program: one timer costs one slot, a hundred thousand cost 256 a call.
      const want = Math.min(MAX_BATCH, Math.max(1, this.#live >> 2));
      this.reserve(this.#held + want);
      const got = this.native.timerAlloc(clock, priority, this.#batch.subarray(0, want));
      this.#held += got;
      for (let i = got - 1; i >= 0; i--) list.push(this.#batch[i]!);
      this.#spareCount += got;
    }
    this.#spareCount--;
    this.#live++;
    return list.pop()!;
  }

  /** Gives back a closed timer's slot (disarmed already). */
  release(slot: number, clock: number, priority: number): void {
    this.timers[slot] = undefined;
    this.#live--;
    const list = this.#spares.get(clock * 256 + priority + 128)!;
    if (this.#live > 0 && list.length < MAX_SPARE) {
      list.push(slot);
      this.#spareCount++;
      return;
    }
    this.#free(slot);
    if (this.#live === 0 && this.#spareCount > 0) {
      for (const l of this.#spares.values()) for (const s of l.splice(0)) this.#free(s);
      this.#spareCount = 0;
    }
  }

  /** Spare slots held for the next timers. */
  get spares(): number {
    return this.#spareCount;
  }

  #free(slot: number): void {
    this.native.timerFree(slot);
    this.#held--;
  }

  get capacity(): number {
    return this.rel === undefined ? 0 : this.rel.length;
  }

  /** Room for one more timer: may allocate, and so fail (ENOMEM). */
  reserve(n: number): void {
    if (n <= this.capacity) return;
    const cap = Math.max(64, this.capacity * 2, n);
    let next: [Float64Array, BigInt64Array, Float64Array, Int32Array, Int32Array, Uint8Array, Float64Array];
    try {
      next = [
        new Float64Array(cap),
        new BigInt64Array(cap),
        new Float64Array(cap),
        new Int32Array(2 * cap),
        new Int32Array(cap + 1),
        new Uint8Array(cap),
        new Float64Array(cap),
      ];
    } catch {
      throw new IappError(`cannot allocate room for ${cap} timers`, 'ENOMEM', -12, 'timer');
    }
    if (this.rel !== undefined) {
      next[0].set(this.rel);
      next[1].set(this.abs);
      next[2].set(this.period);
      next[3].set(this.ctl);
      next[4].set(this.dirty);
      next[5].set(this.flags);
      next[6].set(this.order);
    }
    this.native.timerViews(...next);
    [this.rel, this.abs, this.period, this.ctl, this.dirty, this.flags, this.order] = next;
  }

  /** A timer record: runs its callback unless it was re-armed or disarmed since. */
  fire(slot: number, gen: number, expirations: number): void {
    this.timers[slot]?._fire(gen, expirations);
  }
}

/**
 * A timer of one loop. Made by `loop.timer()`; `arm`, `armInterval` and `disarm` cannot fail
 * (with valid arguments) and allocate nothing; the callback runs on the loop's thread. A timer
 * disarmed or re-armed before its callback ran does not run for the earlier arming.
 */
export class Timer {
  readonly clock: ClockName;
  readonly priority: number;
  // Few fields and no closure per timer: a program may hold a hundred thousand of them.
  #t: TimerTable;
  #slot: number;
  #gen = 0;
  #armed = false;
  #interval = false;
  #fn: TimerCallback;

  /** @internal */
  constructor(table: TimerTable, options: TimerOptions, fn: TimerCallback) {
    this.clock = options.clock ?? 'monotonic';
    this.priority = options.priority ?? 0;
    this.#t = table;
    this.#fn = fn;
    this.#slot = table.take(clockOf(this.clock), this.priority);
    // Generations continue per slot: a record still queued for the slot's previous timer can
    // never match this one.
    this.#gen = table.ctl[2 * this.#slot + 1]!;
    table.timers[this.#slot] = this;
  }

  /** Fires once, after `when` (a Duration from now) or at `{ at }`. Re-arming replaces the previous arming. */
  arm(when: When): this {
    this.#set(when, 0, 'arm');
    this.#interval = false;
    return this;
  }

  /** Fires every `period`, first after `first` (default: one period). */
  armInterval(period: Duration, options: { first?: When } = {}): this {
    const p = durationNs(period, 'period');
    if (p === 0) throw new RangeError('period must be > 0');
    this.#set(options.first ?? period, p, 'first');
    this.#interval = true;
    return this;
  }

  /** Stops the timer; its callback will not run for an earlier arming. */
  disarm(): this {
    if (this.#slot < 0) return this;
    this.#armed = false;
    this.#mark(0);
    return this;
  }

  /** True from arm() until it fires (once) or disarm(). */
  get armed(): boolean {
    return this.#armed;
  }

  /** Releases the timer's slot; it cannot be armed again. */
  close(): void {
    if (this.#slot < 0) return;
    this.disarm();
    this.#t.release(this.#slot, clockOf(this.clock), this.priority);
    this.#slot = -1;
  }

  #set(when: When, periodNs: number, what: string): void {
    if (this.#slot < 0) throw new TypeError('the timer is closed');
    const t = this.#t;
    const i = this.#slot;
    if (typeof when === 'object' && when !== null) {
      if (typeof when.at !== 'bigint') throw new TypeError(`${what}: { at } must be a bigint of nanoseconds (see loop.now())`);
      t.rel[i] = NaN;
      t.abs[i] = when.at;
    } else {
      t.rel[i] = durationNs(when, what);
    }
    t.period[i] = periodNs;
    t.order[i] = ++t.armings;
    this.#armed = true;
    this.#mark(1);
  }

  #mark(state: number): void {
    const t = this.#t;
    const i = this.#slot;
    this.#gen = (this.#gen + 1) | 0;
    t.ctl[2 * i] = state;
    t.ctl[2 * i + 1] = this.#gen;
    if (t.flags[i] === 0) {
      t.flags[i] = 1;
      const n = t.dirty[0]!;
      t.dirty[1 + n] = i;
      t.dirty[0] = n + 1;
    }
  }

  /** @internal */
  _fire(gen: number, expirations: number): void {
    if (gen !== this.#gen || !this.#armed) return;
    if (!this.#interval) this.#armed = false;
    try {
      this.#fn(expirations, this);
    } catch (e) {
      this.#t.onError(e);
    }
  }
}

/** @internal `loop.timer()`'s two forms, `(fn)` and `(options, fn)`, checked. */
export function newTimer(table: TimerTable, a: TimerOptions | TimerCallback, b?: TimerCallback): Timer {
  // No array to destructure: a program may make a hundred thousand timers in a row.
  const fn = typeof a === 'function' ? a : b;
  const options = typeof a === 'function' ? NO_OPTIONS : (a ?? NO_OPTIONS);
  checkTimer(options, fn);
  return new Timer(table, options, fn);
}

/** Checks `loop.timer()`'s arguments. */
export function checkTimer(options: TimerOptions, fn: unknown): asserts fn is TimerCallback {
  if (typeof fn !== 'function') throw new TypeError('timer needs a callback');
  if (options === NO_OPTIONS) return;
  if (options.clock !== undefined && options.clock !== 'monotonic' && options.clock !== 'realtime')
    throw new TypeError(`clock must be 'monotonic' or 'realtime', got ${String(options.clock)}`);
  checkInt('priority', options.priority, -128, 127);
}
