// iapp-clt's command line: its flags (one table entry each), its --help text, and parse(),
// which turns argv into a Config or throws a UsageError naming the flag.
import { isIP } from 'node:net';

import { UsageError, formatEndpoint, parseChoice, parseEndpoint, parseInteger, parseSeconds } from '../src/cli/args.js';
import { many, maybe, on, one, readFlags, type FlagValues } from '../src/cli/flags.js';
import { parseBus, type BusConfig } from '../src/cli/bus.js';
import { parseControl } from './control.js';
import { parseShard, type Shard } from './shard.js';

export const MAX_UDP_PAYLOAD = 65507; // 65535 − 8 (UDP header) − 20 (IPv4 header)
/** Defaults of the flags: --help says them and parse() uses them. */
const DEFAULTS = { target: '127.0.0.1:7000', threads: 8, procs: 1, conns: 4096, udpConns: 1, rate: 128, size: 65536, statsS: 1, closeTimeoutS: 10 } as const;

export const HELP = `Usage: iapp-clt [options]

Opens connections to iapp-srv (or any TCP/Unix server) at a steady rate and pushes data through
them, or runs request/response (--mode echo) and measures latency. Runs until --duration or
Ctrl-C, then ends every connection, waits for them to close and prints a summary.

Options:
  --target HOST:PORT    where to connect; [IPv6]:PORT and unix:/path too. Repeat to spread
                        connections round-robin (default ${DEFAULTS.target})
  --source ADDR         local address to bind; repeat to use more than one address's
                        ephemeral ports (e.g. --source 127.0.0.1 --source 127.0.0.2)
  --threads N           loop threads in all processes together (default ${DEFAULTS.threads}); with --shard,
                        in all shards together
  --shard I/N           run shard I (from 0) of N instances of this run, e.g. one per host or
                        pod: this one runs its part of the --threads, each with the same
                        --conns and --rate, so the N shards together make the whole run
  --procs P             processes to spread the threads over (default ${DEFAULTS.procs}); each process has
                        its own open-file limit
  --conns N             connections per thread (default ${DEFAULTS.conns}; ${DEFAULTS.udpConns} with --udp)
  --rate N              new connections per second per thread (default ${DEFAULTS.rate})
  --size BYTES          bytes per write, request or datagram; k/m suffixes (default ${DEFAULTS.size})
  --mode MODE           push: send continuously, discard replies (default);
                        echo: one request of --size bytes at a time, wait for the same number
                        of bytes back, report latency percentiles;
                        hold: open the connections and keep them idle;
                        connect: end each connection as soon as it is established and open
                        the next (--conns at once at most): measures connects per second
  --udp                 targets are UDP: push datagrams of --size bytes (at most ${MAX_UDP_PAYLOAD})
  --duration S          stop after S seconds (default: run until interrupted)
  --stats S             seconds between throughput lines (default ${DEFAULTS.statsS})
  --close-timeout S     at the end, how long connections may take to close after being
                        ended (the server reads what is in flight) before they are reset
                        (default ${DEFAULTS.closeTimeoutS})
  --json                JSON lines on stdout: {"type":"stats",...} per interval, then
                        {"type":"summary",...}
  --bus nats://H:P      join a run coordinated over this NATS server (with --run): announce
                        this instance, start when the controller says, publish counts, hand
                        the summary to the controller
  --run ID              the run's name on the bus, the same for every instance of one run
  --control             be the run's controller (with --bus, --run, --expect): wait for the
                        instances, start them, print the fleet's line, reconcile the bytes
  --expect N            --control: instances (clt and srv together) the run has
  -v, --verbose         report per-thread figures and handler errors
  -h, --help            this text

Exit status: 0 after a run (errors of single connections are counted, not fatal); 1 when
nothing could connect or the client failed; 2 for bad flags or a run that cannot fit this
machine's limits (open files per process, ephemeral ports), or a --bus it cannot reach. With
--control: 0 when every client reported and the bytes reconcile, 1 when the run failed.`;

const seconds = (value: string, flag: string): number => parseSeconds(flag, value);
const amount = (value: string, flag: string): number => parseInteger(flag, value, 1, 10_000_000, true);
const source = (value: string, flag: string): string => {
  if (isIP(value) === 0) throw new UsageError(`--${flag} ${value}: not a numeric IPv4 or IPv6 address`);
  return value;
};

/** The flags, in the order their values are read and checked. */
const FLAGS = {
  help: on('help', 'h'),
  udp: on('udp'),
  targets: many('target', (v, f) => parseEndpoint(f, v, { defaultHost: '127.0.0.1' })),
  sources: many('source', source),
  threads: one('threads', (v, f) => parseInteger(f, v, 1, 1024), DEFAULTS.threads),
  procs: one('procs', (v, f) => parseInteger(f, v, 1, 1024), DEFAULTS.procs),
  conns: maybe('conns', amount),
  rate: one('rate', amount, DEFAULTS.rate),
  size: one('size', (v, f) => parseInteger(f, v, 1, 1 << 30, true), DEFAULTS.size),
  mode: one('mode', (v, f) => parseChoice(f, v, ['push', 'echo', 'hold', 'connect'] as const), 'push'),
  durationS: maybe('duration', seconds),
  statsS: one('stats', seconds, DEFAULTS.statsS),
  closeTimeoutS: one('close-timeout', (v, f) => parseSeconds(f, v, true), DEFAULTS.closeTimeoutS),
  json: on('json'),
  verbose: on('verbose', 'v'),
  shard: maybe('shard', (v) => v),
  busUrl: maybe('bus', (v) => v),
  run: maybe('run', (v) => v),
  control: on('control'),
  expect: maybe('expect', (v) => v),
};

/** Everything a run is, after flags are checked. */
export interface Config extends Omit<FlagValues<typeof FLAGS>, 'help' | 'conns' | 'shard' | 'busUrl' | 'run' | 'control' | 'expect'> {
  /** Loop threads of this instance (its shard's part of --threads). */
  threads: number;
  /** This instance's part of the run (the whole run without --shard). */
  shard: Shard;
  /** --bus and --run: the run bus this instance joins, if any. */
  bus: BusConfig | undefined;
  /** --control: the instances to wait for. */
  expect: number | undefined;
  /** Connections (UDP: sockets) per thread: --conns, else 4096 (UDP: 1). */
  conns: number;
}

/**
 * Reads iapp-clt's command line (without node and the script): 'help' for --help, else the
 * Config. Throws UsageError, naming the flag and what to do, for anything wrong; never exits.
 */
export function parse(argv: string[]): Config | 'help' {
  const read = readFlags(argv, FLAGS);
  if (read === 'help') return 'help';
  const { values: v } = read;
  const { help: _help, shard: shardFlag, busUrl, run, control, expect: expectFlag, ...flags } = v;
  const bus = parseBus(busUrl, run);
  const expect = parseControl({ control, expect: expectFlag }, bus);
  const shard = parseShard(shardFlag, v.threads);
  const threads = shard.threads;
  if (v.procs > threads)
    throw new UsageError(
      `--procs ${v.procs}: at most ${shard.count > 1 ? `this shard's threads (${threads} of --threads ${shard.totalThreads})` : `--threads (${threads})`}; every process runs at least one thread`,
    );
  const targets = v.targets.length > 0 ? v.targets : [parseEndpoint('target', DEFAULTS.target)];
  if (v.udp) {
    if (v.mode !== 'push') throw new UsageError(`--mode ${v.mode} is for TCP and Unix targets; with --udp, clt pushes datagrams`);
    if (v.size > MAX_UDP_PAYLOAD) throw new UsageError(`--size ${v.size}: a UDP datagram carries at most ${MAX_UDP_PAYLOAD} bytes`);
    const unix = targets.find((t) => t.path !== undefined);
    if (unix) throw new UsageError(`--target ${formatEndpoint(unix)}: --udp needs HOST:PORT targets`);
    if (v.sources.length > 0) throw new UsageError('--source is for TCP connections; with --udp the kernel picks the local address');
  }
  return { ...flags, threads, shard, bus, expect, targets, conns: v.conns ?? (v.udp ? DEFAULTS.udpConns : DEFAULTS.conns) };
}
