// The dispatcher of a loop's event records: one native call per loop wake hands JS every event of
// the wake, as fixed-size records in a shared Float64Array (native/loop.h). Each primitive
// registers the handlers of its record kinds here (`on`); the dispatcher only walks the records.
import { native as addon, type Rec } from './native.js';

const STRIDE = addon.constants.recordStride;

/**
 * Handles one record: `r[o]` is its kind, `r[o + 1]` the id of the object it is for, `r[o + 2]`…
 * its fields (native/loop.h says which).
 */
export type RecordHandler = (id: number, r: Float64Array, o: number) => void;

/** Where a primitive registers the handlers of its record kinds. */
export interface RecordTable {
  /** Registers the handler of records of `kind` (one per kind). */
  on(kind: Rec, fn: RecordHandler): RecordTable;
  /** The batch's next arena (records Arena, MsgArena and Blob each announce one, in order). */
  takeArena(): Buffer;
}

/** @internal One loop's record table and the batch it is dispatching. */
export class Records<Owner> implements RecordTable {
  /** The records the native loop writes and `dispatch` reads. */
  readonly view = new Float64Array(addon.constants.recordCapacity * STRIDE);
  /**
   * The socket the current record is for, set by its handler before it calls the application:
   * a handler that throws closes that socket (and only that one), and the loop goes on.
   */
  owner: Owner | undefined;
  readonly #handlers: (RecordHandler | undefined)[] = [];
  readonly #onError: (e: unknown, owner: Owner | undefined) => void;
  #arenas: Buffer[] | undefined;
  #nextArena = 0;

  constructor(onError: (e: unknown, owner: Owner | undefined) => void) {
    this.#onError = onError;
  }

  /** Registers the handler of records of `kind` (one per kind). */
  on(kind: Rec, fn: RecordHandler): this {
    if (this.#handlers[kind] !== undefined) throw new Error(`record kind ${kind} has a handler already`);
    this.#handlers[kind] = fn;
    return this;
  }

  /** The batch's next arena (records Arena, MsgArena and Blob each announce one, in order). */
  takeArena(): Buffer {
    return this.#arenas![this.#nextArena++]!;
  }

  /**
   * One call per loop wake: every event of the wake, in order. A handler that throws closes its
   * own socket and is reported; the others still run.
   */
  dispatch(count: number, arenas: Buffer[] | undefined): void {
    const r = this.view;
    const handlers = this.#handlers;
    this.#arenas = arenas;
    this.#nextArena = 0;
    for (let i = 0, o = 0; i < count; i++, o += STRIDE) {
      this.owner = undefined;
      try {
        handlers[r[o]!]?.(r[o + 1]!, r, o);
      } catch (e) {
        this.#onError(e, this.owner);
      }
    }
    this.#arenas = undefined;
    this.owner = undefined;
  }
}
