// Small plain values travel in messages as JSON text: v8.serialize and deserialize cost about
// 1.6 and 1.0 µs for `{ i: 1, s: 'abc' }` (Node builds a serializer object in JavaScript for each
// call), JSON.stringify and JSON.parse about 0.3 each. JSON is only used where its round trip
// gives exactly what a structured clone gives, which this walk checks first; anything else
// (undefined or -0 inside, holes, class instances, Dates, Maps, typed arrays, an object reached
// twice, cycles, big trees) goes through the serializer as before.

/** Most nodes (values, keys included) a value may have to be sent as JSON. */
const MAX_NODES = 256;
/** Deepest nesting sent as JSON; deeper values (and cycles) take the serializer. */
const MAX_DEPTH = 16;

/**
 * The JSON text of `value` when parsing it back gives the same value a structured clone would
 * (same types, keys in the same order, no shared or cyclic references), else undefined.
 * @internal
 */
export function plainJson(value: unknown): string | undefined {
  const budget = { nodes: MAX_NODES, seen: undefined as Set<object> | undefined };
  return plain(value, 0, budget) ? JSON.stringify(value) : undefined;
}

function plain(v: unknown, depth: number, budget: { nodes: number; seen: Set<object> | undefined }): boolean {
  if (--budget.nodes < 0) return false;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      // JSON has no NaN, Infinity or -0.
      return Number.isFinite(v) && !Object.is(v, -0);
    case 'object':
      break;
    default:
      return false; // undefined (dropped or turned into null), bigint, function, symbol
  }
  if (v === null) return true;
  if (depth >= MAX_DEPTH) return false;
  // A clone keeps one copy of an object reached twice; JSON would make two.
  if (depth > 0) {
    budget.seen ??= new Set();
    if (budget.seen.has(v)) return false;
    budget.seen.add(v);
  }
  const proto = Object.getPrototypeOf(v);
  if (proto === Array.prototype) {
    const a = v as unknown[];
    if (a.length > budget.nodes) return false;
    // Holes and extra named properties survive a clone but not JSON.
    if (Object.keys(a).length !== a.length) return false;
    for (let i = 0; i < a.length; i++) if (!plain(a[i], depth + 1, budget)) return false;
    return true;
  }
  // Plain objects only: a clone of an instance loses its class, JSON may call its toJSON().
  if (proto !== Object.prototype && proto !== null) return false;
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    budget.nodes--;
    if (!plain(o[k], depth + 1, budget)) return false;
  }
  return true;
}
