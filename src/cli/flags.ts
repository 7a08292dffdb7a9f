// A program's flags as one table: each entry names its flag and says how its value is read and
// what it is when absent, so adding a flag is one entry (and its line in --help). Checks that
// involve several flags come after, in the program's parse().
import { parseFlags } from './args.js';

/** One flag of a table: how parseArgs takes it and how its value(s) become the entry's value. */
export interface Flag<T> {
  readonly flag: string;
  readonly short?: string;
  readonly kind: 'switch' | 'one' | 'many';
  /** The entry's value from what parseArgs found (undefined: the flag was absent). */
  readonly read: (raw: undefined | boolean | string | string[]) => T;
}

/** A switch (`--json`): true when given. */
export function on(flag: string, short?: string): Flag<boolean> {
  return { flag, short, kind: 'switch', read: (raw) => raw === true };
}

/**
 * A flag with a value (`--threads 4`), read by `parse(value, flag)`; `fallback` (a value, or a
 * function computing it) when the flag is absent.
 */
export function one<T>(flag: string, parse: (value: string, flag: string) => T, fallback: NoInfer<T> | (() => NoInfer<T>), short?: string): Flag<T> {
  const absent = (): T => (typeof fallback === 'function' ? (fallback as () => T)() : fallback);
  return { flag, short, kind: 'one', read: (raw) => (raw === undefined ? absent() : parse(raw as string, flag)) };
}

/** A flag with a value that may be absent (then undefined), read by `parse(value, flag)`. */
export function maybe<T>(flag: string, parse: (value: string, flag: string) => T, short?: string): Flag<T | undefined> {
  return { flag, short, kind: 'one', read: (raw) => (raw === undefined ? undefined : parse(raw as string, flag)) };
}

/** A repeatable flag (`-l A -l B`): its values in order, each read by `parse(value, flag)`. */
export function many<T>(flag: string, parse: (value: string, flag: string) => T, short?: string): Flag<T[]> {
  return { flag, short, kind: 'many', read: (raw) => ((raw as string[] | undefined) ?? []).map((v) => parse(v, flag)) };
}

/** The values a flag table reads, by entry. */
export type FlagValues<F extends Record<string, Flag<unknown>>> = { [K in keyof F]: F[K] extends Flag<infer T> ? T : never };

/**
 * Reads `argv` with the table `flags`: unknown flags and positionals are UsageErrors; then, if
 * the table's `help` entry is on, 'help' (whatever else the line holds); else each entry's value
 * is read in table order (a bad value throws the entry's UsageError). `given` holds the entries
 * whose flag was on the command line.
 */
export function readFlags<F extends Record<string, Flag<unknown>>>(argv: string[], flags: F): { values: FlagValues<F>; given: Set<keyof F> } | 'help' {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const f of Object.values(flags))
    spec[f.flag] = { type: f.kind === 'switch' ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}), ...(f.kind === 'many' ? { multiple: true } : {}) };
  const raw = parseFlags(argv, spec) as Record<string, undefined | boolean | string | string[]>;
  if (flags.help !== undefined && raw[flags.help.flag] === true) return 'help';
  const values: Record<string, unknown> = {};
  const given = new Set<keyof F>();
  for (const [key, f] of Object.entries(flags)) {
    if (raw[f.flag] !== undefined) given.add(key);
    values[key] = f.read(raw[f.flag]);
  }
  return { values: values as FlagValues<F>, given };
}
