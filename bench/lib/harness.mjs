// Process and measurement helpers shared by the bench scenarios. Linux-specific parts (/proc)
// degrade to "unknown" elsewhere. Every wait here is bounded by a timeout.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Children still running, each with how to kill it, so that an interrupted harness does not leave
 * servers behind (bench/lib/procs.mjs registers whole process trees here too).
 */
const live = new Map();
let exitHooked = false;
export function track(child, kill = (c) => c.kill('SIGKILL')) {
  live.set(child, kill);
  child.once('exit', () => live.delete(child));
  if (!exitHooked) {
    exitHooked = true;
    const killAll = () => {
      for (const [c, k] of live) {
        try {
          k(c);
        } catch {}
      }
    };
    process.once('exit', killAll);
    for (const sig of ['SIGINT', 'SIGTERM']) {
      process.once(sig, () => {
        process.stderr.write(`\n${sig}: stopping ${live.size} child process(es)\n`);
        killAll();
        process.exit(130);
      });
    }
  }
  return child;
}

export const now = () => performance.now() / 1000;

/** Ticks per second for /proc/<pid>/stat times. */
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** User+system CPU seconds of a process, all its threads (from /proc/<pid>/stat), or NaN. */
export function procCpuSeconds(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 (utime) and 15 (stime)
  } catch {
    return NaN;
  }
}

/** Per-CPU { busy, softirq } seconds since boot from /proc/stat (busy = all but idle and iowait), or null. */
export function cpuTimes() {
  try {
    const out = [];
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const v = m[2].trim().split(/\s+/).map(Number); // user nice system idle iowait irq softirq steal ...
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      out[Number(m[1])] = { busy: (total - v[3] - v[4]) / CLK_TCK, softirq: v[6] / CLK_TCK };
    }
    return out;
  } catch {
    return null;
  }
}

/** CPU-seconds per second used on all CPUs together between two cpuTimes() samples. */
export function busyBetween(a, b) {
  if (!a || !b) return NaN;
  return b.reduce((sum, c, i) => sum + (c.busy - (a[i]?.busy ?? c.busy)), 0);
}

/**
 * Waits until the machine is quiet: fewer than `maxBusyCores` cores' worth of CPU used during a
 * `sampleMs` window (other work on a 2-core machine distorts both sides of a benchmark). Gives up
 * after `timeoutS`. Resolves to { quiet: true|false|null, busyCores, waitedS }.
 */
export async function waitQuiet({ sampleMs = 200, maxBusyCores = 0.3, timeoutS = 5 } = {}) {
  const t0 = now();
  for (;;) {
    const a = cpuTimes();
    await sleep(sampleMs);
    const b = cpuTimes();
    const busyCores = busyBetween(a, b) / (sampleMs / 1000);
    if (!Number.isFinite(busyCores)) return { quiet: null, busyCores, waitedS: now() - t0 };
    if (busyCores <= maxBusyCores) return { quiet: true, busyCores, waitedS: now() - t0 };
    if (now() - t0 >= timeoutS) return { quiet: false, busyCores, waitedS: now() - t0 };
  }
}

/** TcpExt ListenOverflows (system-wide in this network namespace), or NaN. */
export function listenOverflows() {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      if (!lines[i].startsWith('TcpExt:') || !lines[i + 1].startsWith('TcpExt:')) continue;
      const names = lines[i].trim().split(/\s+/);
      const values = lines[i + 1].trim().split(/\s+/);
      const k = names.indexOf('ListenOverflows');
      return k < 0 ? NaN : Number(values[k]);
    }
  } catch {}
  return NaN;
}

/**
 * Bytes still queued on loopback TCP connections to `port` (IPv4, /proc/net/tcp): unread bytes in
 * the server sockets' receive queues and unacknowledged bytes in the clients' send queues (closed
 * client sockets stay listed while their data is in flight). A pending FIN counts 1 in either
 * queue, so a socket holding at most 1 counts as empty. Returns null if /proc/net/tcp is unreadable.
 */
export function tcpQueued(port) {
  let text;
  try {
    text = readFileSync('/proc/net/tcp', 'latin1');
  } catch {
    return null;
  }
  const hp = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let queued = 0;
  let sockets = 0;
  let start = text.indexOf('\n') + 1;
  while (start > 0 && start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (!line.includes(hp)) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[3] === '0A') continue; // 0A: LISTEN
    const [txq, rxq] = f[4].split(':').map((h) => parseInt(h, 16));
    if (f[1].endsWith(hp)) {
      sockets++;
      if (rxq > 1) queued += rxq; // server side: unread
    } else if (f[2].endsWith(hp)) {
      sockets++;
      if (txq > 1) queued += txq; // client side: not yet acknowledged
    }
  }
  return { queued, sockets };
}

/**
 * Waits until nothing is queued toward `port`; bounded by `timeoutS`. Reading /proc/net/tcp costs
 * ~1.5 ms per 1000 sockets listed (TIME_WAIT ones included), so polls are spaced to keep the
 * harness under ~25% of a core. The drain is taken to have ended midway between the last poll
 * that still saw bytes (or `since`, when the first poll sees none) and the first that saw none.
 * Resolves to { drained: true|false|null, queued, endS, polls }; endS is on the now() clock.
 */
export async function waitDrained(port, { since = now(), timeoutS = 3, minGapMs = 5 } = {}) {
  let lastBusy = since;
  let polls = 0;
  let last = null;
  for (;;) {
    const a = now();
    last = tcpQueued(port);
    const b = now();
    polls++;
    if (last === null) {
      await sleep(500); // cannot observe: a fixed grace period instead
      return { drained: null, queued: NaN, endS: now(), polls };
    }
    const at = (a + b) / 2;
    if (last.queued === 0) return { drained: true, queued: 0, endS: (lastBusy + at) / 2, polls };
    lastBusy = at;
    if (b - since >= timeoutS) return { drained: false, queued: last.queued, endS: b, polls };
    await sleep(Math.max(minGapMs, 3 * (b - a) * 1000));
  }
}

/** CPUs this process may run on (from /proc/self/status), or null. */
export function allowedCpus() {
  try {
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (!m) return null;
    const cpus = new Set();
    for (const part of m[1].split(',')) {
      const [a, b] = part.split('-').map(Number);
      for (let c = a; c <= (b ?? a); c++) cpus.add(c);
    }
    return cpus;
  } catch {
    return null;
  }
}

/**
 * Pinning plan: server on CPU `srvCpu`, client on CPU `cltCpu`, with taskset, if taskset runs and
 * both CPUs are allowed. Returns { server: prefix[], client: prefix[], note }.
 */
export function pinningPlan({ srvCpu = 0, cltCpu = 1, disabled = false } = {}) {
  const ncpu = os.availableParallelism?.() ?? os.cpus().length;
  const none = (why) => ({ server: [], client: [], pinned: false, note: `not pinned (${why}); ${ncpu} CPUs` });
  if (disabled) return none('--no-pin');
  const cpus = allowedCpus();
  if (!cpus || !cpus.has(srvCpu) || !cpus.has(cltCpu)) return none(`CPUs ${srvCpu} and ${cltCpu} not both allowed`);
  const r = spawnSync('taskset', ['-c', String(srvCpu), 'true'], { stdio: 'ignore', timeout: 5000 });
  if (r.error || r.status !== 0) return none('taskset not available');
  return {
    server: ['taskset', '-c', String(srvCpu)],
    client: ['taskset', '-c', String(cltCpu)],
    pinned: true,
    note: `server pinned to CPU ${srvCpu}, client to CPU ${cltCpu} (taskset); harness unpinned and mostly asleep; ${ncpu} CPUs on this machine`,
  };
}

function withPrefix(prefix, cmd, args) {
  return prefix.length ? [prefix[0], [...prefix.slice(1), cmd, ...args]] : [cmd, args];
}

/** Keeps the last `max` characters of a stream. */
function tail(stream, max = 4000) {
  const t = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    t.text = (t.text + d).slice(-max);
  });
  return t;
}

/** Calls onLine for every complete line of a stream; with `flushEnd`, also for an unterminated last one. */
export function lineReader(stream, onLine, { flushEnd = false } = {}) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  if (flushEnd) stream.on('end', () => buf && onLine(buf));
}

function exited(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

const errTail = (t) => (t.text.trim() ? `; stderr: ${t.text.trim().split('\n').slice(-3).join(' | ')}` : '');

/**
 * Starts a server that prints `READY <port>` and, on SIGTERM, a JSON line. Resolves to a handle
 * { pid, port, stop() } once READY is seen; rejects if it exits or is silent for `readyTimeoutS`.
 */
export async function startServer({ name, cmd, args, cwd, env }, { prefix = [], readyTimeoutS = 20 } = {}) {
  const [c, a] = withPrefix(prefix, cmd, args);
  const child = track(spawn(c, a, { cwd, env: env ? { ...process.env, ...env } : undefined, stdio: ['ignore', 'pipe', 'pipe'] }));
  const stderr = tail(child.stderr);
  const lines = [];
  let onReady;
  const ready = new Promise((resolve) => (onReady = resolve));
  lineReader(child.stdout, (line) => {
    lines.push(line);
    const m = /^READY (\d+)\s*$/.exec(line);
    if (m) onReady(Number(m[1]));
  });
  const spawnErr = new Promise((_, reject) => child.once('error', (e) => reject(new Error(`${name}: cannot start ${c}: ${e.message}`))));
  let timer;
  const port = await Promise.race([
    ready,
    spawnErr,
    exited(child).then(({ code, signal }) => {
      throw new Error(`${name} exited (${signal ?? `code ${code}`}) before READY${errTail(stderr)}`);
    }),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name}: no READY within ${readyTimeoutS} s${errTail(stderr)}`)), readyTimeoutS * 1000);
    }),
  ]).catch((err) => {
    clearTimeout(timer);
    child.kill('SIGKILL');
    throw err;
  });
  clearTimeout(timer);
  return {
    pid: child.pid,
    port,
    /** SIGTERM, then the last JSON line on stdout; SIGKILL and reject after `timeoutS`. */
    async stop({ timeoutS = 5 } = {}) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} died during the run${errTail(stderr)}`);
      child.kill('SIGTERM');
      let t;
      const res = await Promise.race([
        exited(child),
        new Promise((resolve) => {
          t = setTimeout(() => resolve(null), timeoutS * 1000);
        }),
      ]);
      clearTimeout(t);
      if (res === null) {
        child.kill('SIGKILL');
        await exited(child);
        throw new Error(`${name} did not exit within ${timeoutS} s of SIGTERM${errTail(stderr)}`);
      }
      await new Promise((r) => (child.stdout.readableEnded ? r() : child.stdout.once('close', r)));
      const json = lines.filter((l) => l.trim().startsWith('{')).pop();
      if (res.code !== 0) throw new Error(`${name} exited with ${res.signal ?? `code ${res.code}`} on SIGTERM${errTail(stderr)}`);
      if (!json) throw new Error(`${name} printed no JSON line on SIGTERM${errTail(stderr)}`);
      return JSON.parse(json);
    },
    kill() {
      child.kill('SIGKILL');
      return exited(child);
    },
  };
}

/** Runs a client to completion (bounded by `timeoutS`) and parses the last JSON line of its stdout. */
export async function runClient({ name, cmd, args, cwd, env }, { prefix = [], timeoutS = 60 } = {}) {
  const [c, a] = withPrefix(prefix, cmd, args);
  const child = track(spawn(c, a, { cwd, env: env ? { ...process.env, ...env } : undefined, stdio: ['ignore', 'pipe', 'pipe'] }));
  const stderr = tail(child.stderr);
  const out = tail(child.stdout, 100_000);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutS * 1000);
  const res = await Promise.race([
    exited(child),
    new Promise((_, reject) => child.once('error', (e) => reject(new Error(`${name}: cannot start ${c}: ${e.message}`)))),
  ]).finally(() => clearTimeout(timer));
  await new Promise((r) => (child.stdout.readableEnded ? r() : child.stdout.once('close', r)));
  if (timedOut) throw new Error(`${name} killed after ${timeoutS} s${errTail(stderr)}`);
  const json = out.text.split('\n').filter((l) => l.trim().startsWith('{')).pop();
  if (!json) throw new Error(`${name} exited (${res.signal ?? `code ${res.code}`}) without a JSON line${errTail(stderr)}`);
  return { ...JSON.parse(json), exitCode: res.code, stderr: stderr.text.trim() };
}

export function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** { median, min, max, n } over the finite values. */
export function summarize(xs) {
  const s = xs.filter(Number.isFinite);
  return { median: median(s), min: s.length ? Math.min(...s) : NaN, max: s.length ? Math.max(...s) : NaN, n: s.length };
}

export function machineInfo() {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  return {
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    cpu: cpuModel,
    cpus: os.availableParallelism?.() ?? os.cpus().length,
    hostname: os.hostname(),
  };
}
