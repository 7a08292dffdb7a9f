#!/usr/bin/env node
// A bounded soak: an echo server runtime and a churning client runtime in this process, over
// 127.0.0.1, with messages and timers kept busy on every loop, for --duration seconds. At the end
// it checks that nothing was lost and nothing leaked, prints a summary, and exits 1 if a check
// failed. `npm run soak`, `npm run soak -- --duration 300`, `--help` for the flags.
import { readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

// Loaded in main(), so that a library not built yet is one clear line rather than a stack.
let createRuntime;
let liveHandles;

const MiB = 1024 * 1024;
const HELP = `usage: npm run soak -- [flags]

Runs an echo server (2 loop threads) and a client (2 loop threads) in one process over
127.0.0.1: connections opened and closed continuously (echoed with backpressure, half-closed
early, or reset mid-stream), messages posted between the loops of each runtime, timers armed,
re-armed and cancelled at random. Then checks that every byte, message and timer is accounted
for, that fds are back to their starting count and that RSS stayed bounded. Exit 0: all checks
passed; 1: a check failed (each failure says which and why); 2: bad flags.

  --duration S      seconds of load (default 60; the run takes a few seconds more to drain)
  --concurrency N   connections open at once, at most (default 64)
  --max-size BYTES  the most one connection sends (default 4m; k and m suffixes)
  --seed N          seed of the random choices (default: random; printed, to replay a run)
  --half-close M    how the server ends its side after the client's: 'auto' (default: the
                    library's default, allowHalfOpen: false) or 'manual' (allowHalfOpen and
                    end() from onEnd)
  --json            one JSON summary line on stdout (the table then goes to stderr)
  -h, --help        this text
`;

class UsageError extends Error {}

// Thread deaths and handler errors, from either runtime: checked at the end, and printed if the
// run cannot get that far (a call to a dead loop rejects).
const problems = [];

function parseFlags(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        concurrency: { type: 'string' },
        'max-size': { type: 'string' },
        seed: { type: 'string' },
        'half-close': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError(e.message);
  }
  const num = (flag, text, { min, max, integer }) => {
    if (text === undefined) return undefined;
    const v = Number(text);
    if (text.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max)
      throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got '${text}'`);
    return v;
  };
  const bytes = (flag, text) => {
    if (text === undefined) return undefined;
    const m = /^(\d+)([km]?)$/i.exec(text.trim());
    const v = m ? Number(m[1]) * { '': 1, k: 1024, m: MiB }[m[2].toLowerCase()] : NaN;
    if (!(v >= 1 && v <= 64 * MiB)) throw new UsageError(`--${flag} must be a byte count from 1 to 64m (k and m suffixes), got '${text}'`);
    return v;
  };
  const halfClose = values['half-close'] ?? 'auto';
  if (halfClose !== 'manual' && halfClose !== 'auto') throw new UsageError(`--half-close must be 'manual' or 'auto', got '${halfClose}'`);
  return {
    halfClose,
    help: values.help === true,
    json: values.json === true,
    duration: num('duration', values.duration, { min: 0.5, max: 86_400 }) ?? 60,
    concurrency: num('concurrency', values.concurrency, { min: 1, max: 1024, integer: true }) ?? 64,
    maxSize: bytes('max-size', values['max-size']) ?? 4 * MiB,
    seed: num('seed', values.seed, { min: 0, max: 2 ** 32 - 1, integer: true }) ?? Math.floor(Math.random() * 2 ** 32),
  };
}

/** Open fds of this process: /proc on Linux, /dev/fd on the BSDs and macOS. */
function fdCount() {
  for (const dir of ['/proc/self/fd', '/dev/fd']) {
    try {
      return readdirSync(dir).length - (dir === '/dev/fd' ? 1 : 0); // /dev/fd lists its own fd
    } catch {
      // try the next one
    }
  }
  return -1;
}

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const mib = (b) => `${(b / MiB).toFixed(1)} MiB`;
const gb = (b) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
const add = (a, b) => {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
  return a;
};

/** Sums the app counters of every loop (numbers add up, maxima take the max, maps merge). */
function total(apps) {
  const t = {};
  for (const a of apps) {
    for (const [k, v] of Object.entries(a ?? {})) {
      if (typeof v === 'number') t[k] = k.startsWith('timersMax') ? Math.max(t[k] ?? 0, v) : (t[k] ?? 0) + v;
      else if (v && typeof v === 'object' && !Array.isArray(v)) t[k] = add(t[k] ?? {}, v);
    }
  }
  return t;
}

/** Rejects with a clear message if `p` takes longer than `ms`: nothing here may hang. */
function within(ms, what, p) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function main() {
  let opts;
  try {
    opts = parseFlags(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`soak: ${e.message}\n(npm run soak -- --help for the flags)\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    ({ createRuntime, liveHandles } = await import('../dist/src/index.js'));
  } catch (e) {
    process.stderr.write(`soak: cannot load the library (${e.code ?? e.message}): build it first with npm run build\n`);
    return 1;
  }
  const out = opts.json ? process.stderr : process.stdout;
  const tty = process.stderr.isTTY === true;
  const log = (line) => process.stderr.write(`${line}\n`);

  // Never more than this in all: the load, the drain and every bounded wait below. Anything still
  // running past it is a hang, and the process says so and exits.
  const hardStop = setTimeout(() => {
    log(`soak: FAILED: still running ${opts.duration + 90} s after the start (a hang); exiting`);
    process.exit(1);
  }, (opts.duration + 90) * 1000);
  hardStop.unref();

  const fdsStart = fdCount();
  const handlesStart = liveHandles();
  const watch = (rt, name) => {
    rt.on('exit', ({ thread, error }) => error && problems.unshift(`${name} loop ${thread} died: ${error.stack ?? error.message}`));
    rt.on('handler-error', ({ thread, error }) => problems.push(`${name} loop ${thread}: a handler threw: ${error.stack ?? error.message}`));
  };
  const common = {
    seed: opts.seed,
    maxSize: opts.maxSize,
    concurrency: opts.concurrency,
    halfClose: opts.halfClose,
    msgBatch: 32, // messages per 1 ms tick per peer: ~32,000/s each way, a load, not a flood
    timers: 128, // one-shots per loop
    timerActs: 4, // random timer actions per 1 ms tick (plus those from message and socket handlers)
  };
  const module = new URL('./soak-loop.mjs', import.meta.url);
  const server = await createRuntime({ module, threads: 2, data: { ...common, role: 'server' } });
  watch(server, 'server');
  const { port } = server.results[0];
  let client;
  try {
    client = await createRuntime({ module, threads: 2, data: { ...common, role: 'client', port } });
  } catch (e) {
    await server.close({ timeoutMs: 1000 });
    throw e;
  }
  watch(client, 'client');
  const runtimes = [
    ['server', server],
    ['client', client],
  ];
  const onAll = (name, payload, ms = 30_000) =>
    Promise.all(runtimes.flatMap(([, rt]) => [0, 1].map((i) => rt.call(i, name, payload, { timeoutMs: ms }))));

  log(
    `soak: ${opts.duration} s, server and client runtimes of 2 loop threads each on 127.0.0.1:${port}, ` +
      `≤ ${opts.concurrency} connections of ≤ ${mib(opts.maxSize)}, server half-close ${opts.halfClose}, seed ${opts.seed}`,
  );
  const checks = [];
  const check = (name, ok, detail) => checks.push({ name, ok: Boolean(ok), detail });
  let rssStart;
  let rssMax = process.memoryUsage.rss();
  let last = {};
  // The live line reads the loops' counters once a second; it is a report, nothing waits on it.
  const snapshot = async () => {
    const stats = (await Promise.all(runtimes.map(([, rt]) => rt.stats()))).flat();
    last = total(stats.map((s) => s.app));
    return last;
  };
  const t0 = performance.now();
  await onAll('start');
  // Warm-up: a quarter of the run, at most 60 s. RSS climbs steeply for the first 10–20 s: V8
  // sizes each loop's heap to the allocation rate (the four heaps went from ~40 to ~160 MiB in
  // all) and the write queues reach their working set; it then settles over a minute or two
  // (+14 MiB from 2 to 10 minutes in a 600 s run of 1.9 million connections). What grows after
  // the warm-up is what the run leaks or fragments.
  const warmupMs = Math.min(60, opts.duration / 4) * 1000;
  let heapStart;
  const warm = setTimeout(() => {
    rssStart = process.memoryUsage.rss();
    snapshot().then(
      (s) => (heapStart = s.heapTotal + process.memoryUsage().heapTotal),
      () => {},
    );
  }, warmupMs);
  const progress = setInterval(async () => {
    const rss = process.memoryUsage.rss();
    rssMax = Math.max(rssMax, rss);
    let s;
    try {
      s = await snapshot();
    } catch {
      return; // a runtime closing under us: the end checks say what happened
    }
    const churned = (s.echo ?? 0) + (s.early ?? 0) + (s.reset ?? 0) + (s.bad ?? 0);
    const line =
      `${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s  conns ${fmt(churned)} (open ${s.active ?? 0})  ` +
      `sent ${gb(s.cltWritten ?? 0)}  echoed ${gb(s.cltEchoed ?? 0)}  msgs ${fmt(s.msgsReceived ?? 0)}  ` +
      `timer fires ${fmt(s.timerFires ?? 0)}  rss ${mib(rss)}${s.failureCount || problems.length ? '  FAILURES' : ''}`;
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  }, 1000);
  await new Promise((r) => setTimeout(r, opts.duration * 1000));
  clearInterval(progress);
  clearTimeout(warm);
  if (tty) process.stderr.write('\n');
  const loadS = (performance.now() - t0) / 1000;
  rssStart ??= process.memoryUsage.rss();

  // ---- draining: clients stop opening and finish what is open; the server's sockets close ----
  log('soak: stopping: finishing open connections, then messages and timers');
  // A connection still open 20 s after the stop is stuck (the largest takes well under a second):
  // it is reported with what it had sent and received, then reset so the run can end.
  const stuck = [];
  try {
    await within(20_000, 'the open client connections', Promise.all([0, 1].map((i) => client.call(i, 'stopClients', undefined, { timeoutMs: 0 }))));
  } catch (e) {
    const left = [];
    for (const i of [0, 1]) left.push(await client.call(i, 'abortClients'));
    stuck.push(`${e.message}: ${JSON.stringify(left)}`);
  }
  try {
    await within(20_000, 'closing the server sockets', Promise.all([0, 1].map((i) => server.call(i, 'quiesce', undefined, { timeoutMs: 0 }))));
  } catch (e) {
    const open = await Promise.all([0, 1].map((i) => server.call(i, 'openSockets')));
    stuck.push(`${e.message}: ${open.join(' + ')} still open`);
  }
  // Messages: every loop stops posting first, then asks its peers what arrived last.
  await onAll('stopPump');
  const msgVerdicts = (await onAll('verifyMessages')).flat();
  const timerVerdicts = await onAll('finishTimers', 2000);
  const reports = await onAll('report');
  const drainS = (performance.now() - t0) / 1000 - loadS;
  const rssEnd = process.memoryUsage.rss();
  rssMax = Math.max(rssMax, rssEnd, process.resourceUsage().maxRSS * 1024);

  const closeSummaries = {};
  for (const [name, rt] of [runtimes[1], runtimes[0]]) closeSummaries[name] = await rt.close({ timeoutMs: 2000 });
  // Worker threads release their own fds (event loop, inbox eventfd) as they exit; close() has
  // joined them, so the count is final here.
  const fdsEnd = fdCount();
  const handlesEnd = liveHandles();

  const srv = total(reports.slice(0, 2));
  const clt = total(reports.slice(2));
  const all = total(reports);
  const failures = reports.flatMap((r) => r.failures);
  const failureCount = reports.reduce((n, r) => n + r.failureCount, 0);

  // ---- the checks ----
  check('no loop thread died, no handler threw', problems.length === 0, problems.slice(0, 5).join('\n'));
  check('the load drained: every connection closed within 20 s of the stop', stuck.length === 0, stuck.join('\n'));
  const connFailures = failures.filter((f) => f.kind.startsWith('client') || f.kind.startsWith('server'));
  check(
    'no lost byte: every echoed or early-half-closed connection got back exactly what it sent',
    clt.bad === 0 && clt.cleanSent === clt.cleanEchoed && connFailures.length === 0,
    `${fmt(clt.bad)} connections did not reconcile; clean sent ${fmt(clt.cleanSent)}, echoed ${fmt(clt.cleanEchoed)}` +
      connFailures.slice(0, 5).map((f) => `\n    ${JSON.stringify(f)}`).join(''),
  );
  check(
    'server bytes reconcile: read = written back + unsent at failure + refused after close',
    srv.srvRead === srv.srvWritten + srv.srvUnsent + srv.srvRefused,
    `read ${fmt(srv.srvRead)}, written ${fmt(srv.srvWritten)}, unsent ${fmt(srv.srvUnsent)}, refused ${fmt(srv.srvRefused)}`,
  );
  const connected = clt.opened - Object.values(clt.connectFailed).reduce((a, b) => a + b, 0);
  check(
    'every connection was established, accepted and closed',
    Object.keys(clt.connectFailed).length === 0 && srv.accepted === connected && srv.open === 0 && clt.active === 0,
    `opened ${fmt(clt.opened)}, connect failures ${JSON.stringify(clt.connectFailed)}, server accepted ${fmt(srv.accepted)}, ` +
      `still open: ${srv.open} server, ${clt.active} client`,
  );
  const msgBad = failures.filter((f) => f.kind.startsWith('message') || f.kind === 'call');
  const msgSent = msgVerdicts.reduce((n, v) => n + v.sent, 0);
  check(
    'messages all delivered, each sender’s in order',
    all.msgsOutOfOrder === 0 && all.msgsBadPayload === 0 && all.callsBad === 0 && msgBad.length === 0 &&
      msgVerdicts.every((v) => v.last === v.sent - 1) && all.msgsReceived === msgSent && msgSent > 0,
    `sent ${fmt(msgSent)}, received ${fmt(all.msgsReceived)}, out of order ${all.msgsOutOfOrder}, bad payloads ${all.msgsBadPayload}, ` +
      `calls failed ${all.callsBad}` + msgBad.slice(0, 5).map((f) => `\n    ${JSON.stringify(f)}`).join(''),
  );
  const expectedFires = all.timersArmed - all.timersSuperseded - all.timersCancelled;
  const timerBad = failures.filter((f) => f.kind.startsWith('timer'));
  check(
    'timers fired exactly as expected (once per arming not re-armed or cancelled, never early)',
    all.timerFires === expectedFires && all.timersUnexpected === 0 && all.timersEarly === 0 &&
      timerVerdicts.every((v) => v.missing === 0) && timerBad.length === 0,
    `armed ${fmt(all.timersArmed)} − superseded ${fmt(all.timersSuperseded)} − cancelled ${fmt(all.timersCancelled)} = ` +
      `${fmt(expectedFires)} expected, ${fmt(all.timerFires)} fired, unexpected ${all.timersUnexpected}, early ${all.timersEarly}` +
      timerBad.slice(0, 5).map((f) => `\n    ${JSON.stringify(f)}`).join(''),
  );
  const otherFailures = failures.filter((f) => !connFailures.includes(f) && !msgBad.includes(f) && !timerBad.includes(f));
  check('no other failure recorded by a loop', otherFailures.length === 0, otherFailures.slice(0, 5).map((f) => JSON.stringify(f)).join('\n'));
  const cut = [closeSummaries.client, closeSummaries.server].reduce((n, c) => n + c.sockets + c.reset + c.unsent + (c.unadopted ?? 0), 0);
  check('both runtimes closed with nothing left open', cut === 0, `client ${JSON.stringify({ ...closeSummaries.client, stats: undefined })}, server ${JSON.stringify({ ...closeSummaries.server, stats: undefined })}`);
  check('fds back to the starting count after both runtimes closed', fdsEnd === fdsStart, `start ${fdsStart}, end ${fdsEnd}`);
  // Disk threads are left out: they stay, parked, until the process exits (this run starts none).
  const handles = (h) => JSON.stringify({ ...h, diskThreads: 0 });
  check('native handles (loops, sockets, listeners, files, pipes, groups) back to the start after close', handles(handlesEnd) === handles(handlesStart), `start ${handles(handlesStart)}, end ${handles(handlesEnd)}`);

  // RSS: after the warm-up every per-connection structure exists up to the concurrency (≤ 64
  // sockets with queues of up to --max-size each, the read arenas, the inboxes) and V8's heaps have
  // grown to the load. What may still add up without a leak is the allocator keeping freed memory
  // (the high-water mark of coincident multi-MiB queues creeps up as rarer coincidences happen)
  // and V8 resizing its heaps, which in 60–600 s runs stayed within a few tens of MiB; 64 MiB
  // covers that, and 25% of the start scales it for a larger process. A leak of 100 bytes per
  // connection, or of 4 bytes per message, passes it within ten minutes of this load. Before
  // 30 s of load the warm-up is too short for RSS to have settled, and the check is skipped.
  const rssChecked = opts.duration >= 30;
  const rssBound = rssStart + Math.max(64 * MiB, rssStart / 4);
  const heapEnd = all.heapTotal + process.memoryUsage().heapTotal;
  const rssDetail =
    `start ${mib(rssStart)}, end ${mib(rssEnd)} (+${mib(rssEnd - rssStart)}), bound ${mib(rssBound)}; ` +
    `V8 heaps ${heapStart === undefined ? '?' : mib(heapStart)} → ${mib(heapEnd)}`;
  if (rssChecked) check('bounded RSS growth: end ≤ start + max(64 MiB, 25%)', rssEnd <= rssBound, rssDetail);
  else checks.push({ name: 'bounded RSS growth (runs of 30 s or more)', ok: true, skipped: true, detail: rssDetail });

  const churned = clt.echo + clt.early + clt.reset + clt.bad;
  const summary = {
    type: 'summary',
    ok: checks.every((c) => c.ok),
    seed: opts.seed,
    halfClose: opts.halfClose,
    durationS: Math.round(loadS * 100) / 100,
    drainS: Math.round(drainS * 100) / 100,
    connections: { churned, echo: clt.echo, early: clt.early, reset: clt.reset, bad: clt.bad, connectFailed: clt.connectFailed },
    serverCloses: { clean: srv.closedClean, ...srv.closedError },
    bytes: {
      sent: clt.cltWritten,
      echoed: clt.cltEchoed,
      cleanSent: clt.cleanSent,
      cleanEchoed: clt.cleanEchoed,
      lost: clt.cleanSent - clt.cleanEchoed,
      serverRead: srv.srvRead,
      serverWritten: srv.srvWritten,
      serverUnsent: srv.srvUnsent,
      serverRefused: srv.srvRefused,
    },
    messages: { sent: msgSent, received: all.msgsReceived, outOfOrder: all.msgsOutOfOrder, calls: all.callsOk, callsFailed: all.callsBad, inboxFull: all.inboxFull },
    timers: {
      armed: all.timersArmed,
      superseded: all.timersSuperseded,
      cancelled: all.timersCancelled,
      expected: expectedFires,
      fires: all.timerFires,
      unexpected: all.timersUnexpected,
      early: all.timersEarly,
      maxLateMs: all.timersMaxLateMs,
      intervalExpirations: all.tickExpirations,
    },
    rss: { start: rssStart, end: rssEnd, max: rssMax, bound: rssBound, checked: rssChecked, heapStart: heapStart ?? null, heapEnd },
    fds: { start: fdsStart, end: fdsEnd },
    failures: failureCount + problems.length + stuck.length,
    checks: checks.map(({ name, ok, skipped }) => ({ name, ok, ...(skipped && { skipped }) })),
  };

  // ---- report ----
  const rows = [
    ['duration', `${loadS.toFixed(1)} s`, `then ${drainS.toFixed(1)} s draining; seed ${opts.seed}`],
    ['connections', fmt(churned), `echo ${fmt(clt.echo)}, early half-close ${fmt(clt.early)}, reset ${fmt(clt.reset)}, bad ${fmt(clt.bad)}`],
    ['server closes', fmt(srv.accepted), Object.entries(summary.serverCloses).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')],
    ['bytes sent', gb(clt.cltWritten), `${fmt(clt.cltWritten)} (kernel-accepted, all connections)`],
    ['bytes echoed', gb(clt.cltEchoed), `${fmt(clt.cleanEchoed)} of ${fmt(clt.cleanSent)} on clean connections`],
    ['server bytes', gb(srv.srvRead), `read ${fmt(srv.srvRead)} = written ${fmt(srv.srvWritten)} + unsent ${fmt(srv.srvUnsent)} + refused ${fmt(srv.srvRefused)}`],
    ['messages', fmt(all.msgsReceived), `of ${fmt(msgSent)} sent; ${fmt(all.callsOk)} calls; inbox full ${fmt(all.inboxFull)} times`],
    ['timer fires', fmt(all.timerFires), `of ${fmt(expectedFires)} expected (${fmt(all.timersArmed)} armed, ${fmt(all.timersSuperseded)} re-armed, ${fmt(all.timersCancelled)} cancelled); max late ${all.timersMaxLateMs} ms`],
    ['RSS', `${mib(rssEnd)}`, `start ${mib(rssStart)} (after ${warmupMs / 1000} s), end ${mib(rssEnd)}, max ${mib(rssMax)}; V8 heaps ${heapStart === undefined ? '?' : mib(heapStart)} → ${mib(heapEnd)}`],
    ['fds', `${fdsEnd}`, `start ${fdsStart}, end ${fdsEnd}`],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  out.write(`\n${rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`).join('\n')}\n\n`);
  for (const c of checks) out.write(`${c.skipped ? 'skip' : c.ok ? 'ok  ' : 'FAIL'}  ${c.name}${c.ok ? '' : `\n      ${c.detail}`}\n`);
  if (failureCount > failures.length) out.write(`(${failureCount - failures.length} more failures recorded; the first ${failures.length} are shown above)\n`);
  out.write(summary.ok ? '\nsoak: passed\n' : `\nsoak: FAILED (replay the choices with --seed ${opts.seed})\n`);
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    // Something the checks did not foresee (a call to a dead loop, a setup that threw): the
    // runtimes may still hold the process open, so it ends here.
    process.stderr.write(`soak: FAILED: ${e.stack ?? e}\n`);
    for (const p of problems.slice(0, 10)) process.stderr.write(`  ${p.split('\n').slice(0, 3).join('\n  ')}\n`);
    process.exit(1);
  },
);
