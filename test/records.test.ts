// The record dispatcher (src/records.ts) fed synthetic records, without a kernel: each record
// reaches the handler its kind registered, in order; a handler that throws is reported with the
// socket it named and the records after it still run; arenas are handed out in announcement
// order; a kind takes one handler.
import { describe, expect, it } from 'vitest';

import { native } from '../dist/src/native.js';
import { Records } from '../dist/src/records.js';

const STRIDE = native.constants.recordStride;

/** Writes records [kind, id, ...fields] into the table's view; returns their count. */
function fill(t: Records<unknown>, records: number[][]): number {
  records.forEach((rec, i) => t.view.set(rec, i * STRIDE));
  return records.length;
}

describe('the record dispatcher', () => {
  it('calls the handler of each record kind, in record order, with the id and the fields', () => {
    const t = new Records<unknown>((e) => {
      throw e;
    });
    const seen: string[] = [];
    t.on(1, (id, r, o) => seen.push(`a${id}:${r[o + 2]}`));
    t.on(2, (id) => seen.push(`b${id}`));
    t.dispatch(fill(t, [[1, 7, 70], [2, 8], [9, 9], [1, 10, 100]]), undefined);
    expect(seen).toEqual(['a7:70', 'b8', 'a10:100']); // kind 9 has no handler: skipped
  });

  it('reports a throwing handler with the owner it named, and goes on with the next records', () => {
    const errors: [string, unknown][] = [];
    const t = new Records<{ name: string }>((e, owner) => errors.push([(e as Error).message, owner]));
    const ran: number[] = [];
    t.on(1, (id) => {
      t.owner = { name: `socket ${id}` };
      throw new Error(`boom ${id}`);
    });
    t.on(2, (id) => {
      ran.push(id);
      if (id === 4) throw new Error('no owner');
    });
    t.dispatch(fill(t, [[1, 1], [2, 2], [1, 3], [2, 4], [2, 5]]), undefined);
    expect(errors).toEqual([
      ['boom 1', { name: 'socket 1' }],
      ['boom 3', { name: 'socket 3' }],
      ['no owner', undefined], // the owner of a record is never the previous record's
    ]);
    expect(ran).toEqual([2, 4, 5]);
  });

  it('hands out the batch arenas in the order records announce them', () => {
    const t = new Records<unknown>((e) => {
      throw e;
    });
    const got: string[] = [];
    t.on(1, () => got.push(t.takeArena().toString()));
    const arenas = [Buffer.from('first'), Buffer.from('second')];
    t.dispatch(fill(t, [[1, 0], [1, 0]]), arenas);
    expect(got).toEqual(['first', 'second']);
    t.dispatch(fill(t, [[1, 0]]), [Buffer.from('next batch')]);
    expect(got.at(-1)).toBe('next batch');
  });

  it('takes one handler per kind', () => {
    const t = new Records<unknown>(() => {});
    t.on(5, () => {});
    expect(() => t.on(5, () => {})).toThrow(/kind 5 has a handler already/);
  });
});
