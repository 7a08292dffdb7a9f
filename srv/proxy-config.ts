// iapp-proxy's command line: its flags (one table entry each), its --help text, and parse(),
// which turns argv into a Config or throws a UsageError naming the flag.
import { availableParallelism } from 'node:os';

import { UsageError, parseEndpoint, parseInteger, parseSeconds } from '../src/cli/args.js';
import { many, maybe, on, one, readFlags, type FlagValues } from '../src/cli/flags.js';
import { parseUnixMode } from '../src/cli/unix-path.js';

/** Defaults of the flags that take a number: --help says them and parse() uses them. */
const DEFAULTS = { connectTimeoutS: 10, statsS: 1 } as const;

export const HELP = `Usage: iapp-proxy --listen HOST:PORT --target HOST:PORT [options]
       iapp-proxy --target HOST:PORT [options]   (listening sockets passed by socket activation)

A TCP proxy: accepts connections on every loop thread and connects each to a target, moving the
bytes both ways natively (splice on Linux: no copy through user space, no JavaScript per chunk),
with backpressure (at most 256 KiB held per direction) and half-closes passed on.

Options:
  -l, --listen HOST:PORT     address to accept on ([IPv6]:PORT and unix:/path too); required
                             unless a service manager passes listening sockets (LISTEN_FDS,
                             systemd or systemd-socket-activate), which are served instead
  -T, --target HOST:PORT     where to connect each client; repeat to spread clients over several
                             targets in turn; required
  -t, --threads N            loop threads (default: CPUs, here ${availableParallelism()})
      --max-conns N          at most N clients connected at once (exact over every thread); one
                             more is reset at once and counted as refused
      --max-conns-per-addr N at most N at once from one source address (IPv4 address, IPv6 /64)
      --unix-mode MODE       permission bits of a unix:/path --listen socket file, in octal
                             (e.g. 660: owner and group may connect); default: what the umask leaves
      --connect-timeout S    give up on a target that does not answer in S seconds (default ${DEFAULTS.connectTimeoutS});
                             the client is then reset
  -d, --duration S           stop after S seconds (default: until SIGINT/SIGTERM)
      --idle-exit S          exit 0 after S seconds with no open connection and no new one
                             (for a proxy started on demand by socket activation)
  -i, --stats S              seconds between live lines (default ${DEFAULTS.statsS})
      --json                 one JSON object per line on stdout: "listening", "stats", "summary"
  -h, --help                 this text

SIGINT/SIGTERM stop accepting, let open connections finish for up to 5 s, then reset them and
print the summary; a second signal cuts that short.

Exit status: 0 when stopped by signal or --duration; 1 on a runtime failure (address in use…);
2 on a bad flag.`;

const seconds = (value: string, flag: string): number => parseSeconds(flag, value);
const count = (value: string, flag: string): number => parseInteger(flag, value, 1, 2 ** 31 - 1);

/** The flags, in the order their values are read and checked. */
const FLAGS = {
  help: on('help', 'h'),
  targets: many('target', (v, f) => parseEndpoint(f, v), 'T'),
  maxConns: one('max-conns', count, 0),
  maxConnsPerAddr: one('max-conns-per-addr', count, 0),
  listen: maybe('listen', (v, f) => parseEndpoint(f, v, { allowPortZero: true, defaultHost: '::' }), 'l'),
  threads: one('threads', (v, f) => parseInteger(f, v, 1, 1024), availableParallelism, 't'),
  unixMode: maybe('unix-mode', (v) => v),
  connectTimeoutS: one('connect-timeout', seconds, DEFAULTS.connectTimeoutS),
  durationS: maybe('duration', seconds, 'd'),
  idleExitS: maybe('idle-exit', seconds),
  statsS: one('stats', seconds, DEFAULTS.statsS, 'i'),
  json: on('json'),
};

/** What iapp-proxy was asked to do. */
export interface Config extends Omit<FlagValues<typeof FLAGS>, 'help' | 'unixMode'> {
  /** --unix-mode's permission bits. */
  unixMode: number | undefined;
}

/**
 * Reads iapp-proxy's command line (without node and the script): 'help' for --help, else the
 * Config. Throws UsageError, naming the flag and what to do, for anything wrong; never exits.
 */
export function parse(argv: string[]): Config | 'help' {
  const read = readFlags(argv, FLAGS);
  if (read === 'help') return 'help';
  const { values: v } = read;
  const { help: _help, ...config } = v;
  if (v.targets.length === 0) throw new UsageError('--target HOST:PORT is required: where to send them');
  if (v.maxConns > 0 && v.maxConnsPerAddr > v.maxConns)
    throw new UsageError(`--max-conns-per-addr ${v.maxConnsPerAddr} is above --max-conns ${v.maxConns}: it would never apply`);
  return { ...config, unixMode: parseUnixMode(v.unixMode, [v.listen]) };
}
