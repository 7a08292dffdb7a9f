#!/usr/bin/env node
// iapp-proxy: a TCP (and Unix socket) proxy. Every loop thread accepts clients, connects each to
// a target and moves the bytes both ways with splice (no JavaScript per chunk); this main thread
// prints the traffic each interval and a summary when it stops.
import { formatEndpoint, type Endpoint } from '../src/cli/args.js';
import { runCli } from '../src/cli/run.js';
import { claimListenPaths, ownUnixPath } from '../src/cli/unix-path.js';
import { appStats, totals } from '../src/cli/totals.js';
import { Output, formatBytes, formatCount, formatErrors, formatRate } from '../src/cli/report.js';
import { connectionCounts, createRuntime, listenFds, setConnectionLimits, type ActivatedSocket, type Runtime, type ThreadStats } from '../src/index.js';
import { HELP, parse } from './proxy-config.js';
import type { ProxyLoopData, ProxyStats } from './proxy-loop.js';

const noProxyStats = (): ProxyStats => ({ proxied: 0, unreachable: {}, failed: {}, active: 0, peak: 0, up: 0, down: 0 });

function totalsOf(stats: ThreadStats[]): { accepted: number; rx: number; tx: number; app: ProxyStats } {
  const t = totals(stats, () => ({ accepted: 0, rx: 0, tx: 0 }), (s) => ({ accepted: s.accepted, rx: s.bytesIn, tx: s.bytesOut }));
  return { ...t, app: totals(stats, noProxyStats, (s) => appStats<ProxyStats>(s)) };
}

async function main(argv: string[]): Promise<number> {
  const cfg = parse(argv);
  if (cfg === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const out = new Output(cfg.json);
  const target = (e: Endpoint): ProxyLoopData['targets'][number] => (e.path !== undefined ? { path: e.path } : { host: e.host, port: e.port });
  // Sockets a service manager passed: the listening ones are served (a proxy has no use for
  // anything else a manager could pass).
  let passed: ActivatedSocket[];
  try {
    passed = listenFds();
  } catch (e) {
    process.stderr.write(`iapp-proxy: ${(e as Error).message}\n`);
    return 1;
  }
  const activated = passed.filter((a) => a.kind === 'listening');
  for (const a of passed.filter((x) => x.kind !== 'listening')) process.stderr.write(`iapp-proxy: ignoring passed fd ${a.fd} (${a.name}): a ${a.kind} socket, not a listening one\n`);
  if (cfg.listen === undefined && activated.length === 0) {
    process.stderr.write("iapp-proxy: --listen HOST:PORT is required (no listening socket was passed by socket activation)\nRun 'iapp-proxy --help' for the flags.\n");
    return 2;
  }
  const listen: ProxyLoopData['listen'] =
    cfg.listen === undefined
      ? { fds: activated.map((a) => a.fd) }
      : cfg.listen.path !== undefined && cfg.unixMode !== undefined
        ? { path: cfg.listen.path, permissions: cfg.unixMode }
        : target(cfg.listen);
  let rt: Runtime;
  let bound: { address: string; port?: number }[];
  try {
    // A socket file left by a proxy that was killed is removed; one in use stops us here.
    await claimListenPaths([cfg.listen], (line) => out.note(line));
    // Clients only: the connections to targets are this process's own and are not bounded.
    if (cfg.maxConns > 0 || cfg.maxConnsPerAddr > 0) setConnectionLimits({ total: cfg.maxConns, perAddress: cfg.maxConnsPerAddr });
    rt = await createRuntime({
      module: new URL('./proxy-loop.js', import.meta.url),
      threads: cfg.threads,
      data: {
        listen,
        targets: cfg.targets.map(target),
        connectTimeoutMs: Math.round(cfg.connectTimeoutS * 1000),
      } satisfies ProxyLoopData,
    });
    bound = rt.results as { address: string; port?: number }[];
  } catch (e) {
    process.stderr.write(`iapp-proxy: ${(e as Error).message}\n`);
    return 1;
  }
  // Removed at exit if still ours, whatever the exit (a normal stop has removed it already).
  if (cfg.listen?.path !== undefined) ownUnixPath(cfg.listen.path);
  // Signals are taken before the address is announced: whoever reads it may send one at once.
  const stopped = new Promise<string>((resolve) => {
    if (cfg.durationS !== undefined) setTimeout(() => resolve(`${cfg.durationS} s elapsed`), cfg.durationS * 1000).unref();
    if (cfg.idleExitS !== undefined) {
      rt.setIdleTimeout(Math.round(cfg.idleExitS * 1000));
      rt.once('idle', () => resolve(`idle for ${cfg.idleExitS} s`));
    }
    rt.closeOnSignals({ timeoutMs: 5000 });
    rt.once('signal', ({ signal }: { signal: string }) => resolve(signal));
  });
  const where =
    cfg.listen?.path !== undefined
      ? `unix:${cfg.listen.path}`
      : bound[0]!.port === undefined
        ? `unix:${bound[0]!.address}`
        : formatEndpoint({ host: bound[0]!.address, port: bound[0]!.port });
  if (cfg.listen === undefined) for (const a of activated) out.line(`serving passed socket fd ${a.fd} (${a.name}, ${a.family})`);
  out.line(`iapp-proxy: ${cfg.threads} thread${cfg.threads > 1 ? 's' : ''}, listening on ${where}, to ${cfg.targets.map(formatEndpoint).join(', ')}`);
  out.record({ type: 'listening', address: bound[0]!.address, port: bound[0]!.port, targets: cfg.targets.map(formatEndpoint) });

  const started = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  let prev = { t: 0, rx: 0, tx: 0 };
  const tick = setInterval(() => {
    void rt.stats().then((stats) => {
      const t = elapsed();
      const tot = totalsOf(stats);
      const dt = t - prev.t || 1;
      const up = (tot.rx - prev.rx) / dt;
      const down = (tot.tx - prev.tx) / dt;
      prev = { t, rx: tot.rx, tx: tot.tx };
      const c = connectionCounts();
      const refused = { maxConns: c.refusedMaxConnections, perAddress: c.refusedPerAddress };
      out.record({ type: 'stats', t, active: tot.app.active, accepted: tot.accepted, rxBytes: tot.rx, txBytes: tot.tx, rxPerS: up, txPerS: down, refused });
      out.line(
        `${t.toFixed(1).padStart(7)}s  active ${formatCount(tot.app.active)}  accepted ${formatCount(tot.accepted)}` +
          `  in ${formatRate(up)}  out ${formatRate(down)}  total ${formatBytes(tot.rx)}` +
          (refused.maxConns + refused.perAddress > 0 ? `  refused ${formatCount(refused.maxConns + refused.perAddress)}` : ''),
      );
    }, () => {});
  }, cfg.statsS * 1000);

  const reason = await stopped;
  clearInterval(tick);
  out.line(`stopping (${reason}): open connections get up to 5 s`);
  const summary = await rt.close({ timeoutMs: 5000 });
  const stats = summary.stats ?? [];
  const tot = totalsOf(stats);
  const t = elapsed();
  const errors = formatErrors({ ...Object.fromEntries(Object.entries(tot.app.unreachable).map(([k, n]) => [`unreachable ${k}`, n])), ...tot.app.failed });
  out.table(
    stats.map((s) => {
      const a = s.app as ProxyStats | undefined;
      return { thread: s.thread, accepted: s.accepted, proxied: a?.proxied ?? 0, 'client->target': a?.up ?? 0, 'target->client': a?.down ?? 0 };
    }),
  );
  out.line(`total: ${formatCount(tot.app.proxied)} connections proxied, ${formatBytes(tot.app.up)} up and ${formatBytes(tot.app.down)} down in ${t.toFixed(2)} s`);
  out.line(`errors: ${errors}`);
  if (summary.reset > 0) out.line(`reset at stop: ${formatCount(summary.reset)} connections still open after 5 s`);
  const c = connectionCounts();
  const refused = { maxConns: c.refusedMaxConnections, perAddress: c.refusedPerAddress };
  if (refused.maxConns + refused.perAddress > 0 || cfg.maxConns > 0 || cfg.maxConnsPerAddr > 0)
    out.line(`refused: ${formatCount(refused.maxConns)} over --max-conns, ${formatCount(refused.perAddress)} over --max-conns-per-addr (reset at once)`);
  out.record({ type: 'summary', reason, seconds: t, accepted: tot.accepted, proxied: tot.app.proxied, up: tot.app.up, down: tot.app.down, unreachable: tot.app.unreachable, failed: tot.app.failed, reset: summary.reset, refused });
  return 0;
}

await runCli('iapp-proxy', main);
