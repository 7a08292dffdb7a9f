#!/usr/bin/env node
// iapp-srv: a TCP/UDP sink server for load tests. Loop threads (over one or more processes)
// accept connections and discard, count, echo or answer HTTP; this main thread samples the
// counters, prints them, and prints a reconciled summary when it stops. Its flags are
// config.ts's; what it prints, output.ts's.
import { closeSync, openSync, readFileSync } from 'node:fs';

import { listenFds, socketKind, type ActivatedSocket } from '../src/activation.js';
import { IdleTracker } from '../src/idle.js';
import { UsageError, formatEndpoint, parseEndpoint, type Endpoint } from '../src/cli/args.js';
import { startFleet, type Fleet, type FleetThreadStats, type ProcContext } from '../src/cli/fleet.js';
import { setConnectionLimits } from '../src/conns.js';
import { claimListenPaths, ownUnixPath } from '../src/cli/unix-path.js';
import { listenSocket, type ListeningSocket } from '../src/listen-socket.js';
import { runCli } from '../src/cli/run.js';
import type { Member } from '../src/cli/bus.js';
import { Output } from '../src/cli/report.js';
import { DEFAULT_LISTEN, DRAIN_MS, HELP, parse, type Config } from './config.js';
import type { BoundAddress, SrvLoopData, SrvLoopResult, TcpSpec, UdpSpec } from './loop.js';
import { addressText, announce, num, printSample, printSummary, refusedOf, totalsOf } from './output.js';

/** Kernel-wide count of connections dropped because an accept queue was full (TcpExt). */
function listenOverflows(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/netstat', 'latin1').split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      if (!lines[i]!.startsWith('TcpExt:') || !lines[i + 1]!.startsWith('TcpExt:')) continue;
      const names = lines[i]!.trim().split(/\s+/);
      const values = lines[i + 1]!.trim().split(/\s+/);
      const k = names.indexOf('ListenOverflows');
      return k < 0 ? undefined : Number(values[k]);
    }
  } catch {
    // not Linux
  }
  return undefined;
}

/**
 * One listening socket made here for every process to serve (`loop.listen({ fd })`): a Unix path
 * cannot be bound by several processes, and `--accept shared` means one socket.
 */
function makeShared(e: Endpoint, unixMode: number | undefined): ListeningSocket {
  const what = formatEndpoint(e);
  try {
    return listenSocket(e.path !== undefined ? { path: e.path, ...(unixMode !== undefined ? { permissions: unixMode } : {}) } : { host: e.host, port: e.port });
  } catch (err) {
    throw new RuntimeError(`--listen ${what}: ${(err as Error).message}`);
  }
}

/** A failure to report in one line with exit code 1. */
class RuntimeError extends Error {}

/**
 * The sockets passed to this server: by socket activation (LISTEN_FDS) and, with --inetd, fd 0.
 * Throws for a passed socket it cannot serve.
 */
function activatedSockets(cfg: Config): ActivatedSocket[] {
  let activated: ActivatedSocket[];
  try {
    activated = listenFds();
  } catch (e) {
    throw new RuntimeError((e as Error).message);
  }
  if (cfg.inetd) {
    // inetd passes the socket as fds 0 and 1. Output goes to stderr, and fd 1 is pointed at
    // /dev/null: a peer sees the end only when no fd holds its connection.
    const kind = (() => {
      try {
        return socketKind(0);
      } catch {
        return undefined;
      }
    })();
    // "nowait" services get a connection; "wait" ones the listening or datagram socket itself.
    if (kind === undefined || (kind.kind !== 'connected' && kind.kind !== 'listening' && kind.kind !== 'datagram'))
      throw new UsageError(
        `--inetd: fd 0 is ${kind === undefined ? 'not open' : kind.kind === 'other' ? 'not a socket' : 'a stream socket neither listening nor connected'}; ` +
          'inetd passes a connection, a listening or a datagram socket as stdin',
      );
    closeSync(1);
    const nul = openSync('/dev/null', 'w');
    if (nul !== 1) closeSync(nul); // fd 1 was taken by something else meanwhile: leave it closed
    activated.unshift({ fd: 0, name: 'inetd', ...kind });
  }
  for (const a of activated) {
    if (a.kind === 'stream' || a.kind === 'other')
      throw new RuntimeError(
        `socket activation: fd ${a.fd} (${a.name}) is ${a.kind === 'stream' ? 'a stream socket neither listening nor connected' : 'not a socket iapp-srv can serve'}: ` +
          'pass listening, datagram or accepted sockets',
      );
  }
  return activated;
}

/**
 * Settles what the flags left open once the passed sockets are known (threads, the default
 * address), claims Unix socket paths and sets the connection bounds. Returns the passed
 * connections, and whether there is nothing else to serve.
 */
async function prepare(cfg: Config, activated: ActivatedSocket[], out: Output): Promise<{ passed: ActivatedSocket[]; onlyPassed: boolean }> {
  const passed = activated.filter((a) => a.kind === 'connected');
  if (passed.length > 0 && cfg.procs > 1)
    throw new UsageError(`--procs ${cfg.procs}: a passed connection is served by one process; drop --procs`);
  // Only passed connections: one thread serves them and the server exits when they close.
  const onlyPassed = passed.length === activated.length && passed.length > 0 && cfg.tcp.length === 0 && cfg.udp.length === 0;
  if (onlyPassed && !cfg.threadsGiven) cfg.threads = 1;
  if (cfg.tcp.length === 0 && cfg.udp.length === 0 && activated.length === 0)
    cfg.tcp.push(parseEndpoint('listen', DEFAULT_LISTEN, { allowPortZero: true }));
  // A socket file left by a server that was killed is removed; one in use stops us here.
  try {
    await claimListenPaths(cfg.tcp, (line) => out.note(line));
  } catch (err) {
    throw new RuntimeError((err as Error).message);
  }
  if (cfg.maxConns > 0 || cfg.maxConnsPerAddr > 0) {
    // Before any process exists: the fleet's shared counts carry the bounds to every process.
    setConnectionLimits({ total: cfg.maxConns, perAddress: cfg.maxConnsPerAddr });
  }
  return { passed, onlyPassed };
}

/** What each process's loop threads are given: `made` holds the sockets made here to share, by index in cfg.tcp. */
function loopData(cfg: Config, activated: ActivatedSocket[], made: Map<number, ListeningSocket>): (ctx: ProcContext) => SrvLoopData {
  return (ctx) => {
    const first = ctx.first as SrvLoopResult[] | undefined;
    let sharedSeen = 0;
    const tcp: TcpSpec[] = cfg.tcp.map((e, i) => {
      if (made.has(i)) return { fd: ctx.fds[activated.length + sharedSeen++]! };
      if (e.path !== undefined) return { path: e.path, ...(cfg.unixMode !== undefined ? { permissions: cfg.unixMode } : {}) };
      // Port 0 across processes: the others join the port process 0 got.
      const port = e.port === 0 && first ? (first[0]!.tcp[i]!.port ?? 0) : e.port;
      return { host: e.host, port, name: `listen${i}` };
    });
    const udp: UdpSpec[] = cfg.udp.map((e, i) => {
      const port = e.port === 0 && first ? (first[0]!.udp[i]!.port ?? 0) : e.port!;
      return { host: e.host!, port, name: `udp${i}` };
    });
    return {
      mode: cfg.mode,
      accept: cfg.accept,
      tcp,
      udp,
      activated: activated.map((a, i) => ({ fd: ctx.fds[i]!, name: a.name, kind: a.kind as 'listening' | 'connected' | 'datagram' })),
      headerTimeoutMs: Math.round(cfg.headerTimeoutS * 1000),
      bodyTimeoutMs: Math.round(cfg.bodyTimeoutS * 1000),
      keepaliveTimeoutMs: Math.round(cfg.keepaliveTimeoutS * 1000),
      maxBodyBytes: cfg.maxBodyBytes,
      ...(cfg.root !== undefined
        ? { root: cfg.root, dotfiles: cfg.dotfiles, fileCache: cfg.fileCache, fileCacheValidMs: Math.round(cfg.fileCacheValidS * 1000) }
        : {}),
      ...(cfg.rcvlowat !== undefined ? { rcvlowat: cfg.rcvlowat } : {}),
      firstThread: ctx.firstThread,
      proc: ctx.proc,
    } satisfies SrvLoopData;
  };
}

/** On the run bus (--bus): closed at the end, also when the start fails. */
let member: Member | undefined;

async function main(argv: string[]): Promise<number> {
  const cfg = parse(argv);
  if (cfg === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  // Signals are taken from the start, not once serving: a program that announces its address and
  // only then listens for SIGTERM dies of one sent as soon as the address is read (measured: 6
  // of 10 such starts, because Node loads its signal machinery on the first process.on), and dies
  // without removing its Unix socket files. Before the fleet is up, the first signal is kept for
  // later; a second exits at once, as it does afterwards.
  let signals = 0;
  let running = false;
  let firstSignal: NodeJS.Signals | undefined;
  let stop: (why: string) => Promise<number> = () => Promise.resolve(0);
  let cleanup = (): void => {};
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals > 1) {
      process.stderr.write(`iapp-srv: ${sig} again: exiting without draining\n`);
      cleanup();
      process.exit(1);
    }
    if (running) void stop(sig);
    else firstSignal = sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (cfg.bus) member = await (await import('./bus.js')).joinAsServer(cfg.bus, cfg.statsS, { threads: cfg.threads, procs: cfg.procs, mode: cfg.mode });
  const activated = activatedSockets(cfg);
  const out = new Output(cfg.json, cfg.inetd ? process.stderr : process.stdout);
  const { passed, onlyPassed } = await prepare(cfg, activated, out);

  // Passed to every process as fds 3, 4, …: activated sockets first, then the sockets made here
  // to be shared by the processes (a Unix path cannot be bound by several; a TCP socket with
  // --accept shared is one socket), by index in cfg.tcp.
  const made = new Map<number, ListeningSocket>();
  const inheritFds = activated.map((a) => a.fd);
  let fleet: Fleet | undefined;
  cleanup = (): void => {
    for (const m of made.values()) m.close();
  };

  let overflowsAtStart: number | undefined;
  try {
    if (cfg.procs > 1) {
      for (const [i, e] of cfg.tcp.entries()) {
        if (e.path === undefined && cfg.accept !== 'shared') continue;
        const m = makeShared(e, cfg.unixMode);
        made.set(i, m);
        inheritFds.push(m.fd);
        // From the moment it exists: a crash while the processes start must not leave it.
        if (e.path !== undefined) ownUnixPath(e.path);
      }
    }
    overflowsAtStart = listenOverflows();
    fleet = await startFleet({
      module: new URL('./loop.js', import.meta.url),
      threads: cfg.threads,
      procs: cfg.procs,
      inheritFds,
      data: loopData(cfg, activated, made),
    });
  } catch (e) {
    await fleet?.close({ timeoutMs: 0 });
    cleanup();
    if (e instanceof UsageError || e instanceof RuntimeError) throw e;
    throw new RuntimeError((e as Error).message);
  }

  // Removed at exit if still ours, whatever the exit (a normal stop has removed them already).
  for (const e of cfg.tcp) if (e.path !== undefined) ownUnixPath(e.path);

  const started = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  const first = fleet.results[0] as SrvLoopResult;
  const addresses: BoundAddress[] = [
    ...first.activated,
    ...first.tcp.map((a, i) => {
      const e = cfg.tcp[i]!;
      return e.path !== undefined ? { proto: 'unix' as const, address: e.path } : a;
    }),
    ...first.udp,
  ];

  announce(out, cfg, fleet.limits, first, addresses);
  const bounded = cfg.maxConns > 0 || cfg.maxConnsPerAddr > 0;

  // Only for rate-limiting the messages: the loops count accept errors in their stats already.
  const errorsSeen: Record<string, number> = {};
  let handlerErrors = 0;
  fleet.on('exit', (e: { proc: number; thread?: number; error?: Error }) => {
    if (e.error) process.stderr.write(`iapp-srv: ${e.thread !== undefined ? `thread ${e.thread}` : `process ${e.proc}`} died: ${e.error.message}\n`);
  });
  fleet.on('handler-error', (e: { thread: number; error: Error }) => {
    if (handlerErrors++ < 5) process.stderr.write(`iapp-srv: thread ${e.thread}: handler error: ${e.error.message}\n`);
  });
  fleet.on('accept-error', (e: { thread: number; error: Error & { code?: string }; resumeInMs: number }) => {
    const code = e.error.code ?? 'accept';
    if ((errorsSeen[code] = (errorsSeen[code] ?? 0) + 1) <= 3)
      process.stderr.write(`iapp-srv: thread ${e.thread}: ${e.error.message}; accepting again in ${e.resumeInMs} ms\n`);
  });

  // Sampling: live lines every --stats seconds; idle checks more often when --idle-exit is short.
  let last: FleetThreadStats[] = [];
  let prev = { t: 0, totals: totalsOf([]), perThread: new Map<number, FleetThreadStats>() };
  const idle = new IdleTracker(Date.now());
  let sampling = false;
  let stopping: Promise<number> | undefined;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => (resolveDone = r));

  const sample = async (print: boolean): Promise<void> => {
    if (sampling || stopping) return;
    sampling = true;
    try {
      const stats = await fleet.stats();
      if (stopping) return;
      const t = elapsed();
      // Fleet-wide and exact: counted in the memory every process shares.
      const refused = refusedOf(fleet.connections());
      last = stats;
      const tot = totalsOf(stats);
      const idleMs = idle.sample(stats, Date.now());
      if (print) {
        printSample(out, cfg, bounded, t, stats, tot, refused, prev);
        prev = { t, totals: tot, perThread: new Map(stats.map((s) => [s.thread, s])) };
      }
      if (cfg.idleExitS !== undefined && idleMs >= cfg.idleExitS * 1000) void stop(`idle for ${cfg.idleExitS} s`);
      if (onlyPassed && tot.passedOpen === 0) void stop(`the passed connection${passed.length > 1 ? 's' : ''} closed`);
    } finally {
      sampling = false;
    }
  };

  const statsTimer = setInterval(() => void sample(true), cfg.statsS * 1000);
  const idleTimer =
    cfg.idleExitS !== undefined && cfg.idleExitS / 4 < cfg.statsS
      ? setInterval(() => void sample(false), Math.max(50, (cfg.idleExitS * 1000) / 4))
      : undefined;
  // Only passed connections: checked often, so an inetd-style server exits soon after its peer.
  const passedTimer = onlyPassed ? setInterval(() => void sample(false), 50) : undefined;
  const durationTimer = cfg.durationS !== undefined ? setTimeout(() => void stop(`${cfg.durationS} s elapsed`), cfg.durationS * 1000) : undefined;

  stop = (why: string): Promise<number> => {
    stopping ??= (async () => {
      clearInterval(statsTimer);
      clearInterval(idleTimer);
      clearInterval(passedTimer);
      clearTimeout(durationTimer);
      const durationS = elapsed();
      out.note(`stopping (${why}): draining for up to ${DRAIN_MS / 1000} s`);
      const closeSummary = await fleet.close({ timeoutMs: DRAIN_MS });
      // Final counters, including what was read while draining; a thread that left none (it
      // died or was terminated) counts with its last sample.
      const final = new Map<number, FleetThreadStats>(last.map((s) => [s.thread, s]));
      for (const s of closeSummary.stats) final.set(s.thread, s);
      const perThread = [...final.values()].sort((a, b) => a.thread - b.thread);
      const tot = totalsOf(perThread);
      // Exact, from the counts every loop of every process keeps natively.
      const conns = fleet.connections();
      const peak = conns.peak;
      const refused = refusedOf(conns);
      const overflowsNow = listenOverflows();
      const overflows = overflowsNow !== undefined && overflowsAtStart !== undefined ? overflowsNow - overflowsAtStart : undefined;
      const errors = tot.errors;
      out.record({
        type: 'summary',
        reason: why,
        mode: cfg.mode,
        addresses: addresses.map(addressText),
        threads: cfg.threads,
        procs: cfg.procs,
        durationS: Number(durationS.toFixed(3)),
        rxBytes: tot.rxBytes,
        txBytes: tot.txBytes,
        accepted: tot.accepted,
        ...(passed.length > 0 ? { passed: passed.length } : {}),
        closed: tot.closed,
        peakConnections: peak,
        datagramsIn: tot.datagramsIn,
        ...(cfg.mode !== 'sink' ? { jsBytes: tot.jsBytes } : {}),
        ...((cfg.mode === 'http' || cfg.mode === 'file') ? { requests: tot.requests, httpErrors: tot.httpErrors } : {}),
        refused,
        ...(bounded ? { limits: { maxConns: cfg.maxConns, maxConnsPerAddr: cfg.maxConnsPerAddr } } : {}),
        errors,
        ...(overflows !== undefined ? { listenOverflows: overflows } : {}),
        drain: { sockets: closeSummary.sockets, reset: closeSummary.reset, unsent: closeSummary.unsent, terminated: closeSummary.terminated },
        perThread: perThread.map((s) => ({
          thread: s.thread,
          proc: s.proc,
          accepted: s.accepted,
          closed: s.closed,
          rxBytes: s.bytesIn,
          txBytes: s.bytesOut,
          datagramsIn: num(s.datagramsIn),
          errors: s.errors,
        })),
      });
      if (!cfg.json)
        printSummary(out, cfg, { perThread, tot, durationS, first, passed: passed.length, peak, bounded, refused, reset: closeSummary.reset, overflows });
      cleanup();
      await member?.close();
      return 0;
    })();
    void stopping.then(resolveDone);
    return stopping;
  };

  running = true;
  if (member) {
    const bus = await import('./bus.js');
    const f = fleet;
    bus.serveOnBus(member, async () => bus.serverCounts({ ...totalsOf(await f.stats()) }));
  }
  if (firstSignal !== undefined) void stop(firstSignal); // it came while the fleet was starting
  return done;
}

await runCli('iapp-srv', async (argv) => {
  try {
    return await main(argv);
  } catch (e) {
    void member?.close();
    throw e;
  }
});
