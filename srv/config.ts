// iapp-srv's command line: its flags (one table entry each), its --help text, and parse(),
// which turns argv into a Config or throws a UsageError naming the flag.
import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';

import { UsageError, parseChoice, parseEndpoint, parseInteger, parseSeconds, type Endpoint } from '../src/cli/args.js';
import { many, maybe, on, one, readFlags, type FlagValues } from '../src/cli/flags.js';
import { parseBus, type BusConfig } from '../src/cli/bus.js';
import { parseUnixMode } from '../src/cli/unix-path.js';
import { MAX_BODY_BYTES } from './http.js';

export const DEFAULT_LISTEN = '[::]:7000';
/** How long a stop waits for connections to close before resetting them. */
export const DRAIN_MS = 2000;
// Larger than any Content-Length a client could send in practice, so "no limit" in effect.
const MAX_BODY_CAP = 2 ** 50;

/** Defaults of the flags that take a number: --help says them and parse() uses them. */
const DEFAULTS = { procs: 1, statsS: 1, headerTimeoutS: 10, bodyTimeoutS: 60, keepaliveTimeoutS: 75, fileCache: 1024, fileCacheValidS: 1 } as const;

export const HELP = `Usage: iapp-srv [options]

A TCP/UDP sink server for load tests: accepts connections on every loop thread and discards
(or counts, echoes, answers HTTP), printing throughput each interval and a summary at the end.

Options:
  -l, --listen HOST:PORT   TCP address to listen on; [IPv6]:PORT, unix:/path too; repeatable.
                           Default ${DEFAULT_LISTEN} (all IPv6 and IPv4 addresses) unless --udp is
                           given or sockets are passed by socket activation. Port 0 picks one.
  -u, --udp HOST:PORT      UDP address; repeatable. Datagrams are discarded natively (sink, http,
                           file), counted in JavaScript (data) or sent back to their sender (echo)
  -m, --mode MODE          sink: discard natively (default); data: deliver to JavaScript and count;
                           echo: send back what is read; http: answer HTTP/1.1 requests with 200;
                           file: serve the files under --root to HTTP/1.1 GET, with sendfile
      --root DIR           file mode: the directory whose regular files are served; every path
                           is opened beneath it by the kernel, so nothing outside it (a symlink
                           pointing out: 403) is ever served
      --dotfiles HOW       file mode: a path with a segment starting with '.' (.env, .git/…):
                           ignore: 404 (default), deny: 403, allow: served
      --file-cache N       file mode: files each thread keeps open with their stat, least recently
                           used out first (default ${DEFAULTS.fileCache}; 0: open and stat every request)
      --file-cache-valid S file mode: answer from a cached file for S seconds, then open it again
                           (default ${DEFAULTS.fileCacheValidS}): a file changed or removed meanwhile may be served as it was
  -t, --threads N          loop threads over all processes (default: CPUs, here ${availableParallelism()})
  -p, --procs P            processes to spread the threads over (default ${DEFAULTS.procs}; more to pass one
                           process's fd limit)
      --accept HOW         reuseport: one listening socket per thread, the kernel spreads
                           connections (default); shared: one socket all threads wait on
  -d, --duration S         stop after S seconds (default: run until SIGINT/SIGTERM)
      --idle-exit S        exit 0 after S seconds with no open connection and no new one
  -i, --stats S            seconds between live lines (default ${DEFAULTS.statsS})
      --header-timeout S   http and file modes: close a connection whose request head is not complete in S
                           seconds, with 408 (default ${DEFAULTS.headerTimeoutS})
      --body-timeout S     http mode: a request body must arrive within S seconds of its head,
                           else 408 and close (default ${DEFAULTS.bodyTimeoutS}: about 17 KB/s for a 1 MiB body)
      --keepalive-timeout S  http and file modes: close a connection with no byte either way
                           for S seconds, between requests or in one (default ${DEFAULTS.keepaliveTimeoutS})
      --max-body BYTES     http and file modes: a request declaring a longer body (Content-Length)
                           is answered 413 and the connection closed (k/m/g suffixes, 0 refuses
                           every body; default 1m)
      --max-conns N        accept at most N connections open at once, over every thread and
                           process (exact); one more is reset at once and counted as refused
      --max-conns-per-addr N
                           at most N open at once from one source address (IPv4 address, IPv6
                           /64), exact over every thread and process; more are reset and counted
      --unix-mode MODE     permission bits of unix:/path socket files, in octal (e.g. 660: owner
                           and group may connect); default: what the umask leaves
      --rcvlowat BYTES     sink and data modes: wake for a connection only once BYTES are queued
                           (SO_RCVLOWAT; k/m suffixes). Fewer wakes let one fast sender go much
                           faster; smaller amounts are counted when more arrive or at close
      --inetd              serve the socket inetd passed as fd 0: a connection ("nowait", then
                           exit when it closes) or a listening or datagram socket ("wait", with
                           --idle-exit); output goes to stderr, as stdout is the same socket
      --bus nats://H:P     join a run coordinated over this NATS server (with --run): announce
                           this server, publish its counts, answer the controller's requests
      --run ID             the run's name on the bus, the same for every instance of one run
      --json               one JSON object per line on stdout: "listening", "stats", "summary"
  -v, --verbose            a live line per thread too
  -h, --help               this text

Socket activation: when started by systemd (or systemd-socket-activate) with LISTEN_FDS, the
passed sockets are served (listening stream sockets as TCP/Unix, datagram sockets as UDP,
connections from Accept=yes or --accept by one thread) and --listen/--udp add to them. With
passed connections and nothing to listen on, it exits once they have closed. SIGINT/SIGTERM stop accepting, drain for up to ${DRAIN_MS / 1000} s and print the
summary; a second signal exits at once.

Exit status: 0 when stopped by signal, --duration or --idle-exit; 1 on a runtime failure
(address in use, no permission…); 2 on a bad flag or a --bus it cannot reach.`;

const endpoint = (value: string, flag: string): Endpoint => parseEndpoint(flag, value, { allowPortZero: true, defaultHost: '::' });
const seconds = (value: string, flag: string): number => parseSeconds(flag, value);
const count = (value: string, flag: string): number => parseInteger(flag, value, 1, 2 ** 31 - 1);
const text = (value: string): string => value;

/** The flags, in the order their values are read and checked. */
const FLAGS = {
  help: on('help', 'h'),
  threads: one('threads', (v, f) => parseInteger(f, v, 1, 1024), availableParallelism, 't'),
  procs: one('procs', (v, f) => parseInteger(f, v, 1, 256), DEFAULTS.procs, 'p'),
  tcp: many('listen', endpoint, 'l'),
  udp: many('udp', endpoint, 'u'),
  accept: one('accept', (v, f) => parseChoice(f, v, ['reuseport', 'shared'] as const), 'reuseport'),
  mode: one('mode', (v, f) => parseChoice(f, v, ['sink', 'data', 'echo', 'http', 'file'] as const), 'sink', 'm'),
  root: maybe('root', text),
  dotfiles: one('dotfiles', (v, f) => parseChoice(f, v, ['ignore', 'deny', 'allow'] as const), 'ignore'),
  fileCache: one('file-cache', (v, f) => parseInteger(f, v, 0, 1 << 20), DEFAULTS.fileCache),
  fileCacheValidS: one('file-cache-valid', (v, f) => parseSeconds(f, v, true), DEFAULTS.fileCacheValidS),
  rcvlowat: maybe('rcvlowat', (v, f) => parseInteger(f, v, 1, 1 << 30, true)),
  maxBodyBytes: one('max-body', (v, f) => parseInteger(f, v, 0, MAX_BODY_CAP, true), MAX_BODY_BYTES),
  maxConns: one('max-conns', count, 0),
  maxConnsPerAddr: one('max-conns-per-addr', count, 0),
  unixMode: maybe('unix-mode', text),
  durationS: maybe('duration', seconds, 'd'),
  idleExitS: maybe('idle-exit', seconds),
  statsS: one('stats', seconds, DEFAULTS.statsS, 'i'),
  headerTimeoutS: one('header-timeout', seconds, DEFAULTS.headerTimeoutS),
  bodyTimeoutS: one('body-timeout', seconds, DEFAULTS.bodyTimeoutS),
  keepaliveTimeoutS: one('keepalive-timeout', seconds, DEFAULTS.keepaliveTimeoutS),
  inetd: on('inetd'),
  json: on('json'),
  verbose: on('verbose', 'v'),
  busUrl: maybe('bus', text),
  run: maybe('run', text),
};

/** What iapp-srv was asked to do. */
export interface Config extends Omit<FlagValues<typeof FLAGS>, 'help' | 'unixMode' | 'busUrl' | 'run'> {
  /** --bus and --run: the run bus this server joins, if any. */
  bus: BusConfig | undefined;
  /** file mode: the directory served, absolute. */
  root: string | undefined;
  /** --unix-mode's permission bits. */
  unixMode: number | undefined;
  /** --threads was given (else a server with only passed connections runs one thread). */
  threadsGiven: boolean;
}

/**
 * Reads iapp-srv's command line (without node and the script): 'help' for --help, else the
 * Config. Throws UsageError, naming the flag and what to do, for anything wrong; never exits.
 * Reads the file system only to check that --root is a directory.
 */
export function parse(argv: string[]): Config | 'help' {
  const read = readFlags(argv, FLAGS);
  if (read === 'help') return 'help';
  const { values: v, given } = read;
  const { help: _help, ...flags } = v;
  if (v.procs > v.threads) throw new UsageError(`--procs ${v.procs}: more processes than threads (${v.threads}); raise --threads`);
  for (const u of v.udp) if (u.path !== undefined) throw new UsageError(`--udp unix:${u.path}: UDP needs HOST:PORT`);
  let root: string | undefined;
  if (v.mode === 'file') {
    if (v.root === undefined) throw new UsageError('--mode file needs --root DIR: the directory to serve');
    root = resolve(v.root);
    let isDir = false;
    try {
      isDir = statSync(root).isDirectory();
    } catch {
      throw new UsageError(`--root ${v.root}: no such directory`);
    }
    if (!isDir) throw new UsageError(`--root ${v.root}: not a directory`);
  } else if (v.root !== undefined) {
    throw new UsageError('--root is for --mode file');
  }
  if (given.has('dotfiles') && v.mode !== 'file') throw new UsageError('--dotfiles is for --mode file');
  for (const [key, flag] of [['fileCache', 'file-cache'], ['fileCacheValidS', 'file-cache-valid']] as const)
    if (given.has(key) && v.mode !== 'file') throw new UsageError(`--${flag} is for --mode file`);
  if (v.rcvlowat !== undefined && v.mode !== 'sink' && v.mode !== 'data')
    throw new UsageError(`--rcvlowat is for --mode sink or data: a ${v.mode} reply would wait for more bytes than a request has`);
  if (given.has('maxBodyBytes') && v.mode !== 'http' && v.mode !== 'file') throw new UsageError('--max-body is for --mode http or file');
  if (v.maxConns > 0 && v.maxConnsPerAddr > v.maxConns)
    throw new UsageError(`--max-conns-per-addr ${v.maxConnsPerAddr} is above --max-conns ${v.maxConns}: it would never apply`);
  const unixMode = parseUnixMode(v.unixMode, v.tcp);
  const { busUrl, run, ...rest } = flags;
  return { ...rest, root, unixMode, threadsGiven: given.has('threads'), bus: parseBus(busUrl, run) };
}
