// Argument checks shared by the primitives' option parsers.

/** Throws TypeError unless `v` is undefined or an integer, RangeError unless it is in [min, max]. */
export function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${String(v)}`);
  if (v < min || v > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${v}`);
}
