// Process-tree helpers for the bench scenarios that drive multi-process CLIs (iapp-srv, iapp-clt):
// JSON-lines children, memory and CPU of a whole process tree, bounded waits. Linux (/proc).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { lineReader, procCpuSeconds, track as trackChild } from './harness.mjs';

function killTree(pid, signal = 'SIGKILL') {
  for (const p of treePids(pid).reverse()) {
    try {
      process.kill(p, signal);
    } catch {}
  }
}
/** Registers a child so that an interrupted harness kills its whole tree. */
const track = (child) => trackChild(child, (c) => killTree(c.pid));

/** `pid` and all its descendants (from /proc/<pid>/task/<tid>/children), parents first. */
export function treePids(pid) {
  const out = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.shift();
    out.push(p);
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) todo.push(Number(c));
      } catch {}
    }
  }
  return out;
}

function statusField(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Kernel events of the live processes of the tree, cumulative: `faults`, minor page faults (first
 * touches of fresh memory; /proc/<pid>/stat counts every thread), and `sleeps`, voluntary context
 * switches summed over every thread (/proc/<pid>/task/<tid>/status): each is a thread that blocked,
 * in epoll_wait mostly, so each is a wake-up to come.
 */
export function treeKernelEvents(pid) {
  let faults = 0;
  let sleeps = 0;
  for (const p of treePids(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command (which may hold spaces): state is field 3, minflt field 10.
      faults += Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/task/${tid}/status`, 'utf8'));
        if (m) sleeps += Number(m[1]);
      }
    } catch {
      // exited meanwhile: not counted, as treeCpuSeconds does
    }
  }
  return { faults, sleeps };
}

/** RSS in bytes of every process of the tree: { total, byPid: { pid: bytes } }. */
export function treeRss(pid) {
  const byPid = {};
  let total = 0;
  for (const p of treePids(pid)) {
    const kb = statusField(p, 'VmRSS');
    if (!Number.isFinite(kb)) continue;
    byPid[p] = kb * 1024;
    total += kb * 1024;
  }
  return { total, byPid };
}

/** User+system CPU seconds of the live processes of the tree (a process that exited is not counted). */
export function treeCpuSeconds(pid) {
  let s = 0;
  for (const p of treePids(pid)) {
    const c = procCpuSeconds(p);
    if (Number.isFinite(c)) s += c;
  }
  return s;
}

/** /proc/meminfo fields in bytes: { MemAvailable, Slab, ... }. */
export function meminfo() {
  const out = {};
  try {
    for (const line of readFileSync('/proc/meminfo', 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+)\s*kB/.exec(line);
      if (m) out[m[1]] = Number(m[2]) * 1024;
    }
  } catch {}
  return out;
}

/** Process-wide open-file hard limit (what a child can raise its soft limit to). */
export function fdHardLimit() {
  try {
    const m = /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Starts a child that prints JSON objects, one per line, on stdout. `prefix` (e.g. taskset) is put
 * in front of the command. With `timeCpu`, the command runs under GNU time (`/usr/bin/time`),
 * which reports the CPU of the whole tree once it ends (wait4 rusage, waited-for grandchildren
 * included): `result.cpu = { userS, sysS, maxRssKB }`. Signals go to the command itself, not to
 * the time wrapper.
 *
 * Returns a handle: pid (the command's), objects (every JSON object seen), last(type), waitFor(pred,
 * timeoutS), signal(sig), done (resolves { code, signal, cpu, objects } when it exits), kill().
 */
export function startJsonProc({ name, cmd, args, cwd, prefix = [], timeCpu = false, env }) {
  let timeFile;
  let full = [cmd, ...args];
  if (timeCpu) {
    const dir = mkdtempSync(join(tmpdir(), 'iapp-bench-'));
    timeFile = join(dir, 'time.json');
    full = ['/usr/bin/time', '-o', timeFile, '-f', '{"userS":%U,"sysS":%S,"maxRssKB":%M}', ...full];
  }
  full = [...prefix, ...full];
  const child = track(spawn(full[0], full.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  const objects = [];
  const waiters = new Set();
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let nonJson = [];
  lineReader(child.stdout, (line) => {
    const t = line.trim();
    if (!t.startsWith('{')) {
      if (t) nonJson = [...nonJson, t].slice(-20);
      return;
    }
    let o;
    try {
      o = JSON.parse(t);
    } catch {
      return;
    }
    objects.push(o);
    for (const w of waiters) w.check(o);
  }, { flushEnd: true });
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once('error', (e) => {
      stderr += `\ncannot start ${full[0]}: ${e.message}`;
      exitInfo = { code: -1, signal: null };
      resolve(exitInfo);
    });
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  const done = exited.then(async (e) => {
    await new Promise((r) => (child.stdout.readableEnded || child.stdout.destroyed ? r() : child.stdout.once('close', r)));
    for (const w of waiters) w.fail(new Error(`${name} exited (${e.signal ?? `code ${e.code}`})${errTail()}`));
    let cpu = null;
    if (timeFile) {
      try {
        const txt = readFileSync(timeFile, 'utf8').trim().split('\n').pop();
        const c = JSON.parse(txt);
        cpu = { ...c, cpuS: c.userS + c.sysS };
      } catch {}
      rmSync(join(timeFile, '..'), { recursive: true, force: true });
    }
    return { ...e, cpu, objects };
  });
  const errTail = () => (stderr.trim() ? `; stderr: ${stderr.trim().split('\n').slice(-4).join(' | ')}` : '');
  // The command's pid: under time (and taskset, which execs), the first child of the spawned pid.
  const commandPid = () => {
    if (!timeCpu) return child.pid;
    const kids = treePids(child.pid);
    return kids[1] ?? child.pid;
  };
  const h = {
    name,
    get pid() {
      return commandPid();
    },
    spawnPid: child.pid,
    objects,
    get exit() {
      return exitInfo;
    },
    get stderr() {
      return stderr;
    },
    get otherLines() {
      return nonJson;
    },
    errTail,
    last(type) {
      for (let i = objects.length - 1; i >= 0; i--) if (type === undefined || objects[i].type === type) return objects[i];
      return undefined;
    },
    /** Resolves with the first object (already seen or coming) for which pred(o) is true. */
    waitFor(pred, timeoutS, what = 'the expected output') {
      const seen = objects.find(pred);
      if (seen) return Promise.resolve(seen);
      if (exitInfo) return Promise.reject(new Error(`${name} exited (${exitInfo.signal ?? `code ${exitInfo.code}`}) before ${what}${errTail()}`));
      return new Promise((resolve, reject) => {
        const w = {
          check(o) {
            if (!pred(o)) return;
            clear();
            resolve(o);
          },
          fail(err) {
            clear();
            reject(err);
          },
        };
        const timer = setTimeout(() => w.fail(new Error(`${name}: no ${what} within ${timeoutS} s${errTail()}`)), timeoutS * 1000);
        const clear = () => {
          clearTimeout(timer);
          waiters.delete(w);
        };
        waiters.add(w);
      });
    },
    signal(sig = 'SIGTERM') {
      try {
        process.kill(commandPid(), sig);
      } catch {}
    },
    /** Sends `sig`, waits up to timeoutS for the exit, then SIGKILLs the tree. */
    async stop({ sig = 'SIGTERM', timeoutS = 10 } = {}) {
      if (!exitInfo) h.signal(sig);
      const r = await Promise.race([done, sleep(timeoutS * 1000, null, { ref: false })]);
      if (r) return r;
      killTree(child.pid);
      const d = await done;
      return { ...d, killed: true };
    },
    kill() {
      killTree(child.pid);
      return done;
    },
    done,
  };
  return h;
}

/** Polls fn() every `everyMs` until it returns a truthy value or `timeoutS` passes (then returns null). */
export async function pollUntil(fn, { timeoutS, everyMs = 250 }) {
  const t0 = performance.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() - t0 >= timeoutS * 1000) return null;
    await sleep(everyMs);
  }
}

/**
 * Stops every handle (SIGTERM, SIGKILL after `timeoutS`) and returns each one's last
 * {"type":"summary"} object, or null; what went wrong goes to `notes`.
 */
export async function stopForSummaries(procs, { timeoutS, notes }) {
  const res = await Promise.all(procs.map((p) => p.stop({ timeoutS })));
  const summaries = res.map((r) => r.objects.filter((o) => o.type === 'summary').pop() ?? null);
  for (const [i, r] of res.entries()) {
    if (r.killed) notes.push(`${procs[i].name} did not exit within ${timeoutS} s of SIGTERM (killed)`);
    else if (r.code !== 0) notes.push(`${procs[i].name} exited ${r.signal ?? `code ${r.code}`}${procs[i].errTail()}`);
    if (!summaries[i]) notes.push(`${procs[i].name} printed no summary`);
  }
  return summaries;
}
