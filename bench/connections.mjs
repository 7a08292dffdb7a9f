// The connections scenario: memory per idle connection when one machine holds 32,768 of them.
//
//   node bench/connections.mjs [--quick] [--conns N] [--systems iapp,net] [--client auto|clt|net]
//                              [--rate R] [--hold S] [--json] [--out FILE]
//
// Systems (servers, each in 2 processes because of the 20,000-fd-per-process limit):
//   iapp-srv sink  node dist/srv/main.js --mode sink --procs 2 --threads 2
//                  --listen 127.0.0.1:0 --listen 127.0.0.2:0 --json
//   node:net       bench/peers/net-hold.mjs, one process per address (Node 20's net.Server has no
//                  reusePort), counting bytes in 'data'
// Load (the same for both): iapp-clt --procs 2 --threads 8 --mode echo --size 64 (every
// connection sends one 64-byte request; a sink never answers, so the connection then sits idle),
// or, when iapp-clt is not built or with --client net, 2 processes of bench/peers/net-connect.mjs
// (node:net, one 64-byte write per connection, then idle). Connections are spread round-robin over
// both server addresses, so no (source, destination) pair needs more than half the 28,232
// ephemeral ports.
//
// One run: start the server, wait for its listening line, sample the RSS of its process tree
// (VmRSS of the main pid and every descendant, summed) every 0.5 s from 10 s after start (past
// V8's memory reducer) until 5 samples span < 1 MB;
// their median = before. Start the client; wait until the server reports N open connections; hold
// them idle --hold seconds, sampling RSS every 0.5 s; the median = peak (held).
// bytes per connection = (peak - before) / connections held.
// Then SIGTERM the client (it ends its connections), wait for the server to see them close,
// SIGTERM the server and reconcile the summaries: client txBytes == server rxBytes, client
// connected == server accepted.
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenOverflows, median, now } from './lib/harness.mjs';
import { fdHardLimit, meminfo, pollUntil, startJsonProc, stopForSummaries, treeRss } from './lib/procs.mjs';
import { log, logResultsFile, logTable, newResults, parseOptions, writeJsonLines, writeResults } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, '..');
const node = process.execPath;
const SRV = join(root, 'dist', 'srv', 'main.js');
const CLT = join(root, 'dist', 'clt', 'main.js');
const ADDRS = ['127.0.0.1', '127.0.0.2'];
// V8's memory reducer shrinks a fresh Node process's heap ~8-9 s after start (~3 MB per process
// for iapp-srv); sampling "before" earlier would credit that drop to the connections.
const SETTLE_MIN_S = 12; // seconds after the listening line before the first "before" sample
const SETTLE_MAX_S = 25; // at most this long waiting for the server's RSS to settle
const STABLE_BYTES = 1 << 20;
const PEER = 'node:net';
const IAPP = 'iapp-srv sink';

const USAGE = `usage: node bench/connections.mjs [options]
  --quick            4,096 connections (under a minute)
  --conns N          connections in total (default 32768; 4096 with --quick)
  --systems LIST     iapp,net (default both)
  --client WHICH     auto (iapp-clt if dist/clt/main.js runs, else node:net), clt, net
  --rate R           new connections per second, all client processes together
                     (default conns/20, at least 1000: ramps in about 20 s)
  --hold S           seconds to hold every connection idle while sampling RSS (default 4)
  --json             one JSON line per system on stdout
  --out FILE         results file (default bench/results/connections.json)`;

const opts = parseOptions(
  {
    quick: { type: 'boolean', default: false },
    conns: { type: 'string' },
    systems: { type: 'string', default: 'iapp,net' },
    client: { type: 'string', default: 'auto' },
    rate: { type: 'string' },
    hold: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
  USAGE,
);
const conns = Number(opts.conns ?? (opts.quick ? 4096 : 32768));
if (!Number.isInteger(conns) || conns < 16 || conns > 2 * 28232) {
  console.error(`--conns must be an integer from 16 to ${2 * 28232} (two destination addresses' ephemeral ports)`);
  process.exit(2);
}
const rate = Number(opts.rate ?? Math.max(1000, Math.ceil(conns / 20)));
const holdS = Number(opts.hold);
if (!(rate > 0) || !(holdS > 0 && holdS <= 60)) {
  console.error('--rate must be > 0 and --hold in (0, 60]');
  process.exit(2);
}
const wantSystems = opts.systems.split(',').map((s) => s.trim());
for (const s of wantSystems) {
  if (!['iapp', 'net'].includes(s)) {
    console.error(`--systems: unknown ${s} (known: iapp, net)`);
    process.exit(2);
  }
}
const outFile = opts.out ?? join(benchDir, 'results', 'connections.json');
const fdLimit = fdHardLimit();
const perProcFds = Number.isFinite(fdLimit) ? fdLimit - 100 : 19_900;
// Server and client processes: enough that none needs more fds than the limit; at least 2.
const srvProcs = Math.max(2, Math.ceil(conns / perProcFds));
const cltProcs = Math.max(2, Math.ceil(conns / perProcFds));
const cltThreads = 8;
const caseLabel = `${conns} idle`;
const rampTimeoutS = Math.min(150, Math.ceil(conns / rate) * 3 + 20);

// ---- the client -------------------------------------------------------------------------------
function cltUsable() {
  if (!existsSync(CLT)) return { ok: false, why: `${relative(root, CLT)} not built` };
  return { ok: true };
}
let clientKind = opts.client;
let clientNote = '';
if (clientKind === 'auto') {
  const u = cltUsable();
  clientKind = u.ok ? 'clt' : 'net';
  if (!u.ok) clientNote = `iapp-clt not usable (${u.why}): using bench/peers/net-connect.mjs`;
} else if (clientKind === 'clt' && !cltUsable().ok) {
  console.error(`--client clt: ${cltUsable().why}`);
  process.exit(2);
} else if (!['clt', 'net'].includes(clientKind)) {
  console.error('--client must be auto, clt or net');
  process.exit(2);
}
const clientDesc =
  clientKind === 'clt'
    ? `iapp-clt --procs ${cltProcs} --threads ${cltThreads} --conns ${Math.ceil(conns / cltThreads)} --rate ${Math.ceil(rate / cltThreads)} --mode echo --size 64`
    : `${cltProcs} x bench/peers/net-connect.mjs (node:net) --conns ${Math.ceil(conns / cltProcs)} --rate ${Math.ceil(rate / cltProcs)} --size 64`;

/** Starts the client(s) against `targets` (["host:port", ...]); returns { procs, connected() }. */
function startClient(targets) {
  const tArgs = targets.flatMap((t) => ['--target', t]);
  if (clientKind === 'clt') {
    // The per-thread share is rounded up; the thread count divides evenly for the defaults.
    const p = startJsonProc({
      name: 'iapp-clt',
      cmd: node,
      args: [CLT, ...tArgs, '--procs', String(cltProcs), '--threads', String(cltThreads), '--conns', String(Math.ceil(conns / cltThreads)),
        '--rate', String(Math.ceil(rate / cltThreads)), '--mode', 'echo', '--size', '64', '--json', '--stats', '1'],
      cwd: root,
    });
    return { procs: [p], total: Math.ceil(conns / cltThreads) * cltThreads };
  }
  const per = Math.ceil(conns / cltProcs);
  const procs = [];
  for (let i = 0; i < cltProcs; i++) {
    const n = Math.min(per, conns - i * per);
    // Rotate the target list so each process starts on a different address.
    const rot = [...targets.slice(i % targets.length), ...targets.slice(0, i % targets.length)];
    procs.push(
      startJsonProc({
        name: `net-connect[${i}]`,
        cmd: node,
        args: [join(benchDir, 'peers', 'net-connect.mjs'), ...rot.flatMap((t) => ['--target', t]), '--conns', String(n),
          '--rate', String(Math.ceil(rate / cltProcs)), '--size', '64', '--stats', '1'],
        cwd: root,
      }),
    );
  }
  return { procs, total: conns };
}

// ---- the servers ------------------------------------------------------------------------------
/** Starts a system; resolves { procs: [handle], targets: ["host:port"], connections() }. */
async function startSystem(sys) {
  if (sys === 'iapp') {
    const p = startJsonProc({
      name: 'iapp-srv',
      cmd: node,
      args: [SRV, '--mode', 'sink', '--procs', String(srvProcs), '--threads', String(srvProcs), ...ADDRS.flatMap((a) => ['--listen', `${a}:0`]), '--json', '--stats', '1'],
      cwd: root,
    });
    const l = await p.waitFor((o) => o.type === 'listening', 30, 'listening line');
    const targets = l.addresses.filter((a) => a.proto === undefined || a.proto === 'tcp').map((a) => a.text ?? `${a.address}:${a.port}`);
    return { name: IAPP, procs: [p], targets, connections: () => p.last('stats')?.connections ?? 0 };
  }
  const procs = [];
  const targets = [];
  for (let i = 0; i < srvProcs; i++) {
    const p = startJsonProc({ name: `net-hold[${i}]`, cmd: node, args: [join(benchDir, 'peers', 'net-hold.mjs'), '--listen', `${ADDRS[i % ADDRS.length]}:0`], cwd: root });
    procs.push(p);
  }
  for (const p of procs) {
    const l = await p.waitFor((o) => o.type === 'listening', 30, 'listening line');
    targets.push(...l.addresses.map((a) => a.text));
  }
  return { name: PEER, procs, targets, connections: () => procs.reduce((s, p) => s + (p.last('stats')?.connections ?? 0), 0) };
}

const rssOf = (procs) => procs.reduce((s, p) => s + treeRss(p.pid).total, 0);
const procCount = (procs) => procs.reduce((s, p) => s + Object.keys(treeRss(p.pid).byPid).length, 0);
const sumField = (objs, k) => objs.reduce((s, o) => s + (Number(o?.[k]) || 0), 0);

async function runSystem(sys) {
  const row = { system: sys === 'iapp' ? IAPP : PEER, conns, ok: false, notes: [] };
  const ovf0 = listenOverflows();
  const srv = await startSystem(sys);
  let cl = null;
  try {
    row.targets = srv.targets;
    row.serverProcesses = procCount(srv.procs);
    // Settle: node processes allocate and collect for a while after start (V8 moves RssAnon by
    // a few MB). Wait until 5 samples 0.5 s apart span less than STABLE_BYTES (at most SETTLE_MAX_S).
    const tSettle = now();
    await sleep(Math.max(0, SETTLE_MIN_S - 2) * 1000);
    const before = [];
    for (;;) {
      before.push(rssOf(srv.procs));
      const w = before.slice(-5);
      if (w.length === 5 && Math.max(...w) - Math.min(...w) < STABLE_BYTES) break;
      if (now() - tSettle >= SETTLE_MAX_S) {
        row.notes.push(`server RSS not stable before the run (last 2 s spanned ${fmtB(Math.max(...w) - Math.min(...w))})`);
        break;
      }
      await sleep(500);
    }
    row.settleS = now() - tSettle;
    row.rssBeforeSamples = before.slice(-5);
    row.rssBefore = median(before.slice(-5));
    const mem0 = meminfo();
    const t0 = now();
    cl = startClient(srv.targets);
    const expected = Math.min(conns, cl.total);
    let lastLog = 0;
    const full = await pollUntil(
      () => {
        const n = srv.connections();
        if (now() - lastLog >= 5) {
          lastLog = now();
          log(`  ${row.system}: ${n} / ${expected} connections after ${Math.round(now() - t0)} s`);
        }
        for (const p of [...srv.procs, ...cl.procs]) if (p.exit) throw new Error(`${p.name} exited early (${p.exit.signal ?? `code ${p.exit.code}`})${p.errTail()}`);
        return n >= expected ? n : null;
      },
      { timeoutS: rampTimeoutS, everyMs: 250 },
    );
    row.rampS = now() - t0;
    if (!full) {
      row.notes.push(`only ${srv.connections()} of ${expected} connections after ${rampTimeoutS} s`);
      log(`  ${row.system}: ${row.notes.at(-1)}; measuring what is held`);
    }
    // Hold idle and sample.
    const samples = [];
    const tHold = now();
    while (now() - tHold < holdS) {
      samples.push(rssOf(srv.procs));
      await sleep(500);
    }
    samples.push(rssOf(srv.procs));
    const held = srv.connections();
    const mem1 = meminfo();
    // The plateau: the median of the samples while holding (GC moves single samples by MBs).
    row.rssPeak = median(samples);
    row.rssMax = Math.max(...samples);
    row.rssSamples = samples;
    row.held = held;
    row.bytesPerConn = held > 0 ? (row.rssPeak - row.rssBefore) / held : NaN;
    row.slabPerConn = held > 0 && mem1.Slab && mem0.Slab ? (mem1.Slab - mem0.Slab) / held : NaN; // both ends' kernel sockets
    row.memAvailDropPerConn = held > 0 && mem1.MemAvailable ? (mem0.MemAvailable - mem1.MemAvailable) / held : NaN;
    row.rssByPid = srv.procs.map((p) => treeRss(p.pid).byPid);
    // Stop the client, then the server.
    row.clientSummaries = await stopForSummaries(cl.procs, { timeoutS: 20, notes: row.notes });
    await pollUntil(() => srv.connections() === 0, { timeoutS: 10, everyMs: 250 });
    row.serverSummaries = await stopForSummaries(srv.procs, { timeoutS: 15, notes: row.notes });
    // Reconcile.
    const c = row.clientSummaries;
    const s = row.serverSummaries;
    row.txBytes = sumField(c, 'txBytes');
    row.rxBytes = sumField(s, 'rxBytes');
    row.connected = sumField(c, 'connected');
    row.failed = sumField(c, 'failed');
    row.accepted = sumField(s, 'accepted');
    row.serverPeak = sumField(s, 'peakConnections');
    row.clientPeak = sumField(c, 'peakConnections');
    row.clientErrors = Object.assign({}, ...c.map((x) => x?.errors ?? {}));
    row.serverErrors = Object.assign({}, ...s.map((x) => x?.errors ?? {}));
    row.listenOverflows = listenOverflows() - ovf0;
    row.reconciled = row.txBytes === row.rxBytes && row.connected === row.accepted;
    if (row.txBytes !== row.rxBytes) row.notes.push(`client txBytes ${row.txBytes} != server rxBytes ${row.rxBytes}`);
    if (row.connected !== row.accepted) row.notes.push(`client connected ${row.connected} != server accepted ${row.accepted}`);
    if (row.failed) row.notes.push(`${row.failed} connects failed ${JSON.stringify(row.clientErrors)}`);
    if (row.listenOverflows > 0) row.notes.push(`ListenOverflows +${row.listenOverflows}`);
    const noise = (2 * STABLE_BYTES) / Math.max(1, held);
    if (Math.abs(row.bytesPerConn) < noise) row.notes.push(`within the RSS noise (±${Math.round(noise)} B/conn at this count: use more connections)`);
    row.ok = held > 0 && Number.isFinite(row.bytesPerConn);
    return row;
  } catch (err) {
    row.error = err.message;
    if (cl) await Promise.all(cl.procs.map((p) => p.kill()));
    await Promise.all(srv.procs.map((p) => p.kill()));
    return row;
  }
}

// ---- main -------------------------------------------------------------------------------------
const fmtB = (b) => (Number.isFinite(b) ? (Math.abs(b) >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${Math.round(b)} B`) : '-');
const tStart = now();
log(`connections bench: ${conns} connections, ${srvProcs} server processes, hold ${holdS} s, ramp at ${rate}/s (timeout ${rampTimeoutS} s)`);
log(`client: ${clientDesc}${clientNote ? `\nNOTE: ${clientNote}` : ''}`);
if (wantSystems.includes('iapp') && !existsSync(SRV)) {
  console.error(`${relative(root, SRV)} not built (npx tsc -p tsconfig.json)`);
  process.exit(1);
}
const results = newResults(
  'connections',
  {
    conns,
    rate,
    holdS,
    serverProcesses: srvProcs,
    addresses: ADDRS,
    client: clientDesc,
    clientNote,
    fdLimit,
    definitions: {
      rssPerConn: 'bytes: (median VmRSS sum of the server process tree while holding every connection - median of the settled samples before the client started) / connections held',
      slabPerConn: 'bytes: /proc/meminfo Slab growth / connections held: kernel memory of both ends (client and server sockets), for context',
      ratio: 'node:net bytes per connection / iapp bytes per connection (> 1: iapp uses less)',
    },
  },
  { runs: [] },
);
const order = ['iapp', 'net'].filter((s) => wantSystems.includes(s));
for (const sys of order) {
  log(`-- ${sys === 'iapp' ? IAPP : PEER}`);
  const row = await runSystem(sys);
  results.runs.push(row);
  if (row.error) log(`  FAILED: ${row.error}`);
  else log(`  ${row.held} held: RSS ${fmtB(row.rssBefore)} -> ${fmtB(row.rssPeak)} = ${fmtB(row.bytesPerConn)}/conn; ramp ${row.rampS.toFixed(1)} s${row.notes.length ? `; ${row.notes.join('; ')}` : ''}`);
}
const iappRow = results.runs.find((r) => r.system === IAPP && r.ok);
const peerRow = results.runs.find((r) => r.system === PEER && r.ok);
const ratio = iappRow && peerRow && iappRow.bytesPerConn > 0 ? peerRow.bytesPerConn / iappRow.bytesPerConn : NaN;
results.ratio = ratio;
results.finished = new Date().toISOString();
results.elapsedS = now() - tStart;
writeResults(outFile, results);

log('');
log(`== connections: ${caseLabel} (${clientKind === 'clt' ? 'iapp-clt' : 'node:net client'}), server RSS per connection`);
const cols = [
  ['system', 14],
  ['held', 7],
  ['procs', 6],
  ['RSS before', 11],
  ['RSS peak', 11],
  ['RSS/conn', 9],
  ['vs node:net', 12],
  ['slab/conn*', 11],
  ['ramp', 7],
  ['tx=rx', 6],
  ['notes', 0],
];
logTable(
  cols,
  results.runs.map((r) =>
    r.error
      ? [r.system, '-', '-', '-', '-', '-', '-', '-', '-', '-', `FAILED: ${r.error}`]
      : [
          r.system,
          r.held,
          r.serverProcesses,
          fmtB(r.rssBefore),
          fmtB(r.rssPeak),
          fmtB(r.bytesPerConn),
          r.system === IAPP ? (Number.isFinite(ratio) ? `${ratio.toFixed(2)}x less` : '-') : r.system === PEER ? '1' : '-',
          fmtB(r.slabPerConn),
          `${r.rampS.toFixed(1)} s`,
          r.reconciled ? 'yes' : 'NO',
          r.notes.join('; '),
        ],
  ),
);
log(`RSS: VmRSS summed over the server's processes (main + children); median of 0.5 s samples while holding minus the settled`);
log(`median before the client started (GC moves single samples by a few MB: about ±${fmtB((2 * STABLE_BYTES) / conns)} per connection at this count).`);
log(`* slab/conn: kernel Slab growth per connection, both ends (client and server sockets), for context.`);
if (iappRow) log(`target: iapp sink <= 1 KB per connection: ${iappRow.bytesPerConn <= 1024 ? 'met' : `NOT met (${fmtB(iappRow.bytesPerConn)})`}`);
logResultsFile(outFile, results.elapsedS);
if (opts.json) {
  writeJsonLines(
    results.runs
      .filter((r) => r.ok)
      .map((r) => {
        const o = { scenario: 'connections', case: caseLabel, system: r.system, metric: 'rss-per-conn', value: Math.round(r.bytesPerConn), unit: 'bytes', held: r.held };
        if (r.system === IAPP && Number.isFinite(ratio)) Object.assign(o, { peer: PEER, ratio: Number(ratio.toFixed(3)) });
        return o;
      }),
  );
}
process.exit(results.runs.every((r) => r.ok) ? 0 : 1);
