// Flag values shared by the command-line programs (srv, clt): addresses, counts, durations, and
// the one error type a bad flag becomes.
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A bad flag or flag value: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';

  constructor(message: string) {
    // A value may hold a newline or other control characters: shown escaped, the message stays
    // one line and shows what was typed.
    super(message.replace(/[\u0000-\u001f]/g, (c) => JSON.stringify(c).slice(1, -1)));
  }
}

/**
 * Parses flags strictly (no positionals); a bad flag becomes a UsageError with parseArgs's message
 * ("Unknown option '--foo'") on one line, without its advice about passing positionals after '--'.
 */
type FlagSpec = NonNullable<ParseArgsConfig['options']>;
type Flags<O extends FlagSpec> = ReturnType<typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: O }>>['values'];
export function parseFlags<O extends FlagSpec>(argv: string[], options: O): Flags<O> {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values;
  } catch (e) {
    // One line, as every failure is printed: parseArgs explains an ambiguous value over three.
    const message = (e as Error).message.replace(/\. To specify a positional.*$/s, '').replace(/\s*\n\s*/g, ' ');
    throw new UsageError(message.replace(/\.$/, ''));
  }
}

/** A TCP/UDP endpoint or a Unix socket path, as given on the command line. */
export type Endpoint = { host: string; port: number; path?: undefined } | { path: string; host?: undefined; port?: undefined };

/**
 * Parses `HOST:PORT`, `[V6]:PORT`, `:PORT` (all addresses), `PORT`, or `unix:/path`.
 * `host` stays as written (a name is resolved by whoever connects); `localhost` is kept.
 */
export function parseEndpoint(flag: string, value: string, opts: { allowPortZero?: boolean; defaultHost?: string } = {}): Endpoint {
  const bad = (why: string): never => {
    throw new UsageError(`--${flag} ${value}: ${why} (expected HOST:PORT, [IPv6]:PORT or unix:/path)`);
  };
  if (value.startsWith('unix:')) {
    const path = value.slice(5);
    if (path === '') bad('empty Unix socket path');
    if (Buffer.byteLength(path) > 100) bad('Unix socket paths are limited to about 100 bytes');
    return { path };
  }
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(value);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (isIP(host) !== 6) bad(`'${host}' is not an IPv6 address`);
  } else if (/^\d+$/.test(value)) {
    host = opts.defaultHost ?? '';
    portText = value;
  } else {
    const i = value.lastIndexOf(':');
    if (i < 0) bad('no port');
    host = value.slice(0, i);
    portText = value.slice(i + 1);
    if (host.includes(':')) bad('write IPv6 addresses in brackets, as [::1]:PORT');
  }
  if (host === '') host = opts.defaultHost ?? '';
  if (host === '') bad('no host');
  if (!/^\d+$/.test(portText)) bad(`'${portText}' is not a port number`);
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !opts.allowPortZero)) bad(`port must be from ${opts.allowPortZero ? 0 : 1} to 65535`);
  return { host, port };
}

/** Shows an endpoint the way it is parsed. */
export function formatEndpoint(e: Endpoint): string {
  if (e.path !== undefined) return `unix:${e.path}`;
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** An integer flag within [min, max]. Accepts 64k / 1m suffixes (binary) when `units` is set. */
export function parseInteger(flag: string, value: string, min: number, max: number, units = false): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(value.trim());
  if (!m || (m[2] !== '' && !units))
    throw new UsageError(`--${flag} ${value}: not a whole number${units ? ' (suffixes k, m, g allowed)' : ''}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${flag} ${value}: must be from ${min} to ${max}`);
  return n;
}

/**
 * The longest duration a flag takes: Node's timers hold at most 2^31-1 ms, and a longer delay
 * fires after 1 ms instead (so `--duration 1e7` would stop a run at once).
 */
export const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A duration in seconds (decimals allowed), > 0 unless `allowZero`, at most MAX_SECONDS. */
export function parseSeconds(flag: string, value: string, allowZero = false): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (n === 0 && !allowZero))
    throw new UsageError(`--${flag} ${value}: must be a number of seconds${allowZero ? '' : ' above 0'}`);
  if (n > MAX_SECONDS) throw new UsageError(`--${flag} ${value}: must be at most ${MAX_SECONDS} seconds (about 24 days)`);
  return n;
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value))
    throw new UsageError(`--${flag} ${value}: must be one of ${choices.join(', ')}`);
  return value as T;
}
