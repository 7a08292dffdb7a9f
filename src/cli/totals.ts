// Totals over loop threads: every program sums its threads' counters the same way.

/** Counters: numbers, maps of numbers by name (errors by code), and anything else, left alone. */
type Counters = object;

/**
 * Adds `from` into `into`, field by field, for the fields `into` has: numbers are summed, maps of
 * numbers are summed key by key; other fields (and fields `into` lacks) are left as they are.
 * Returns `into`.
 */
export function addCounters<T extends Counters>(into: T, from: Partial<T> | undefined): T {
  if (from === undefined) return into;
  const to = into as Record<string, unknown>;
  for (const [k, v] of Object.entries(from)) {
    const have = to[k];
    if (typeof have === 'number' && typeof v === 'number') to[k] = have + v;
    else if (have !== null && typeof have === 'object' && v !== null && typeof v === 'object') {
      const map = have as Record<string, number>;
      for (const [name, n] of Object.entries(v as Record<string, unknown>)) if (typeof n === 'number') map[name] = (map[name] ?? 0) + n;
    }
  }
  return into;
}

/**
 * The totals of `rows` (one per thread): `zero()` is the empty total, `pick(row)` the counters a
 * row adds to it (see addCounters).
 */
export function totals<R, T extends Counters>(rows: readonly R[], zero: () => T, pick: (row: R) => Partial<T> | undefined): T {
  const t = zero();
  for (const r of rows) addCounters(t, pick(r));
  return t;
}

/**
 * What a program's loop returned from `loop.onStats` (the `app` of a thread's stats), typed as
 * the program's loop module declares it: the one place that trusts that shape.
 */
export function appStats<A>(row: { app?: unknown }): A | undefined {
  return row.app as A | undefined;
}
