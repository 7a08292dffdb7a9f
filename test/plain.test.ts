// Messages carry small plain objects and arrays as JSON text instead of v8.serialize output
// (src/plain.ts). This proves the shortcut never changes what the receiver gets: for generated
// values of every kind a message may carry, whenever JSON is chosen, parsing it back gives what
// structuredClone gives (types, prototypes, -0, holes, key order), and values JSON would change
// (undefined inside, -0, NaN, holes, instances, Dates, Maps, shared or cyclic references) are
// left to the serializer. The common shapes do take the shortcut, and whole messages of both
// kinds arrive intact between loop threads and the main thread.
import { isDeepStrictEqual } from 'node:util';

import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';

import { createRuntime, type Runtime } from '../dist/src/index.js';
import { plainJson } from '../dist/src/plain.js';
import { fixture } from './helpers.js';

/** What the receiver gets over JSON, or undefined where the serializer is used. */
function viaJson(v: unknown): { value: unknown } | undefined {
  const json = plainJson(v);
  return json === undefined ? undefined : { value: JSON.parse(json) };
}

describe('plain values as JSON', () => {
  it('parse back to what structuredClone gives, for generated values of every kind', () => {
    let taken = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything({ withNullPrototype: true, withObjectString: true, withSparseArray: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withBigInt: true, maxDepth: 4 }),
          fc.jsonValue({ maxDepth: 6 }),
          fc.dictionary(fc.string(), fc.oneof(fc.double(), fc.string(), fc.boolean(), fc.constant(null), fc.constant(undefined))),
          fc.array(fc.oneof(fc.double(), fc.integer(), fc.string({ unit: 'binary' })), { maxLength: 40 }),
        ),
        (v) => {
          const got = viaJson(v);
          if (got === undefined) return true;
          taken++;
          expect(isDeepStrictEqual(got.value, structuredClone(v))).toBe(true);
          expect(Object.keys(got.value as object ?? {})).toEqual(Object.keys(structuredClone(v) as object ?? {}));
          return true;
        },
      ),
      { numRuns: 2000 },
    );
    expect(taken).toBeGreaterThan(500); // the generators above mostly make plain values
  });

  it('is taken for the shapes messages usually have', () => {
    for (const v of [{ i: 1, s: 'abc' }, [1, 2, 3], { a: { b: [true, null, 'x'] }, n: 1.5 }, { '': 0, 'é\u{1F600}': 'lone \uD800 surrogate' }, []]) {
      expect(viaJson(v)?.value).toEqual(v);
    }
  });

  it('is not taken where JSON would change the value', () => {
    const shared = { x: 1 };
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    class Point {
      x = 1;
    }
    const withExtra = Object.assign([1, 2], { extra: 3 });
    const cases: [string, unknown][] = [
      ['undefined in an object', { a: undefined }],
      ['undefined in an array', [undefined]],
      ['-0', { z: -0 }],
      ['NaN', [NaN]],
      ['Infinity', { i: Infinity }],
      ['a hole', [1, , 3]], // eslint-disable-line no-sparse-arrays
      ['an array with a named property', withExtra],
      ['a class instance', new Point()],
      ['a Date', { d: new Date(0) }],
      ['a Map', new Map([[1, 2]])],
      ['a typed array inside', { b: new Uint8Array(2) }],
      ['a bigint', { n: 1n }],
      ['an object reached twice', { a: shared, b: shared }],
      ['a cycle', cyclic],
      ['deep nesting', deep],
      ['a big array', Array.from({ length: 1000 }, (_, i) => i)],
    ];
    for (const [what, v] of cases) expect(plainJson(v), what).toBeUndefined();
  });
});

describe('messages of plain and other values', () => {
  let rt: Runtime | undefined;
  afterEach(async () => {
    await rt?.close();
    rt = undefined;
  });

  it('arrive as their structured clones, both ways between the main thread and a loop', async () => {
    rt = await createRuntime({ module: fixture('messaging.mjs'), threads: 1 });
    const shared = { k: 'v' };
    const values: unknown[] = [
      { i: 1, s: 'abc' },
      [1, [2, [3]], { x: 'y' }],
      { a: shared, b: shared },
      { d: new Date(5), z: -0, u: undefined },
      [1, , 3], // eslint-disable-line no-sparse-arrays
      { nested: { deeper: { list: ['é', '\u{1F600}', 0.1] } } },
    ];
    for (const v of values) {
      const back = (await rt.call(0, 'echo', v)) as { p: unknown };
      expect(isDeepStrictEqual(back.p, structuredClone(v))).toBe(true);
    }
    const sharedBack = ((await rt.call(0, 'echo', { a: shared, b: shared })) as { p: { a: object; b: object } }).p;
    expect(sharedBack.a).toBe(sharedBack.b); // one object, as a clone keeps it
  });
});
