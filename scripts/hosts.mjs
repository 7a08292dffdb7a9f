#!/usr/bin/env node
// Test hosts on one machine: network namespaces joined by veth pairs to a bridge, each with its
// own address on a private subnet that exists only between them, so a fleet of iapp-srv,
// sharded iapp-clt and the run bus (nats-server) runs as if on separate hosts. The bridge lives in
// a namespace of its own too: nothing is added to the machine's own network namespace, and no
// packet of the fleet can leave the namespaces made here. Needs root (CI is root) and ip(8).
//
//   node scripts/hosts.mjs [--clt-hosts 2] [--srv-threads 2] [--srv-procs 1] [--threads 4]
//                          [--procs 1] [--conns 8] [--rate 1000] [--duration 2] [--size 65536]
//
// makes the hosts (bus, srv, clt0, clt1, …), runs the fleet across them (srv and the bus
// first, then one clt shard per client host, then the controller), prints the controller's
// summary and srv's, and removes every namespace it made, also when the run fails or is
// interrupted. test/hosts.test.ts and the `hosts` bench scenario use the same functions.
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../', import.meta.url));
/** The private subnet between the hosts (inside the namespaces only). */
export const SUBNET = '10.77.0';

/** Cleanups of the runs in progress, for a signal to run before exiting. */
const active = new Set();

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }).toString();

/**
 * Makes one namespace per name in `names` plus a switch namespace holding the bridge, and a veth
 * pair from each host to the bridge. Host k gets SUBNET.(k+1)/24 on its eth0. Returns the
 * hosts' namespaces and addresses, a command prefix to run a program in one, and remove(),
 * which kills what still runs in them and deletes them (safe to call more than once). On a
 * failure part-way, what was made is removed before the error is thrown.
 */
export function makeHosts(names, { prefix = `iapp${process.pid}` } = {}) {
  const made = [];
  const nsOf = (h) => `${prefix}-${h}`;
  const sw = nsOf('sw');
  const remove = () => {
    for (const ns of made.splice(0).reverse()) {
      // Processes still in the namespace (started by this run): killed by pid, then the namespace goes.
      let pids = '';
      try {
        pids = ip('netns', 'pids', ns);
      } catch {
        // already gone
      }
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  };
  try {
    ip('netns', 'add', sw);
    made.push(sw);
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
    const hosts = {};
    names.forEach((h, k) => {
      const ns = nsOf(h);
      ip('netns', 'add', ns);
      made.push(ns);
      // Made directly in the two namespaces: no interface ever exists in the machine's own.
      ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `v-${h}`, 'netns', sw);
      ip('-n', sw, 'link', 'set', `v-${h}`, 'master', 'br0');
      ip('-n', sw, 'link', 'set', `v-${h}`, 'up');
      const addr = `${SUBNET}.${k + 1}`;
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts[h] = { ns, addr, exec: ['ip', 'netns', 'exec', ns] };
    });
    return { hosts, namespaces: () => [...made], remove };
  } catch (e) {
    remove();
    throw e;
  }
}

/** The namespaces whose names start with `prefix` (to check that none is left). */
export function namespacesWith(prefix) {
  return ip('netns', 'list')
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n && n.startsWith(prefix));
}

/** Starts `cmd` and collects its stdout lines and stderr; `json(type)` waits for a JSON line. */
function start(cmd, what) {
  const child = spawn(cmd[0], cmd.slice(1), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const waiters = [];
  let err = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    for (const l of parts) {
      lines.push(l);
      for (const w of [...waiters]) if (w.test(l)) waiters.splice(waiters.indexOf(w), 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const parse = (l) => {
    try {
      return l.startsWith('{') ? JSON.parse(l) : undefined;
    } catch {
      return undefined;
    }
  };
  const json = (type) =>
    new Promise((resolve, reject) => {
      const test = (l) => {
        const o = parse(l);
        if (o?.type !== type) return false;
        resolve(o);
        return true;
      };
      if (lines.some(test)) return;
      waiters.push({ test });
      void exited.then(({ code, signal }) => reject(new Error(`${what} exited (${code ?? signal}) before a "${type}" line; stderr:\n${err}`)));
    });
  const errText = () => err;
  return { child, lines, json, exited, stderr: errText, what };
}

/**
 * Runs a fleet across test hosts: nats-server on `bus`, iapp-srv on `srv`, one iapp-clt shard
 * on each of `cltHosts` client hosts, the controller on `bus`. Resolves with the controller's
 * summary, srv's own summary and each client's summary; rejects if any part fails or the run
 * passes `timeoutS`. Every process and namespace is gone when it settles.
 */
export async function runFleet(o = {}) {
  const cfg = { cltHosts: 2, srvThreads: 2, srvProcs: 1, threads: 4, procs: 1, conns: 8, rate: 1000, duration: 2, size: 65536, stats: 0.5, timeoutS: 120, prefix: `iapp${process.pid}`, extraClt: [], loopback: false, ...o };
  const names = ['bus', 'srv', ...Array.from({ length: cfg.cltHosts }, (_, i) => `clt${i}`)];
  // loopback: the same fleet with every "host" on this machine's loopback (no namespaces; the
  // kernel picks the ports), to compare a run across the bridge with the same run without it.
  const net = cfg.loopback
    ? { hosts: Object.fromEntries(names.map((h) => [h, { ns: undefined, addr: '127.0.0.1', exec: [] }])), namespaces: () => [], remove: () => {} }
    : makeHosts(names, { prefix: cfg.prefix });
  const procs = [];
  let timer;
  const killAll = () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  };
  const cleanup = () => (killAll(), net.remove());
  active.add(cleanup);
  try {
    const { hosts } = net;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the fleet did not finish within ${cfg.timeoutS} s`)), cfg.timeoutS * 1000);
    });
    const race = (p) => Promise.race([p, deadline]);
    // The bus: its client port on the bus host's address.
    const nats = start([...hosts.bus.exec, 'nats-server', '-a', hosts.bus.addr, '-p', cfg.loopback ? '-1' : '4222'], 'nats-server');
    procs.push(nats);
    const url = await race(
      new Promise((resolve, reject) => {
        const check = () => {
          const m = /Listening for client connections on (\S+):(\d+)/.exec(nats.stderr());
          if (m) resolve(`nats://${m[1]}:${m[2]}`);
        };
        nats.child.stderr.on('data', check);
        void nats.exited.then(() => reject(new Error(`nats-server exited: ${nats.stderr()}`)));
      }),
    );
    const node = (h, script, args, what) => start([...hosts[h].exec, process.execPath, script, ...args], what);
    const run = `hosts${process.pid}`;
    const srv = node('srv', 'dist/srv/main.js', ['--json', '--listen', `${hosts.srv.addr}:${cfg.loopback ? 0 : 7000}`, '--threads', String(cfg.srvThreads), '--procs', String(cfg.srvProcs), '--stats', String(cfg.stats), '--bus', url, '--run', run], 'iapp-srv');
    procs.push(srv);
    const listening = await race(srv.json('listening'));
    const target = listening.addresses[0].text;
    const clts = Array.from({ length: cfg.cltHosts }, (_, i) =>
      node(
        `clt${i}`,
        'dist/clt/main.js',
        ['--json', '--target', target, '--threads', String(cfg.threads), '--procs', String(cfg.procs), '--conns', String(cfg.conns), '--rate', String(cfg.rate), '--size', String(cfg.size), '--duration', String(cfg.duration), '--stats', String(cfg.stats), '--shard', `${i}/${cfg.cltHosts}`, '--bus', url, '--run', run, ...cfg.extraClt],
        `iapp-clt shard ${i}/${cfg.cltHosts}`,
      ),
    );
    procs.push(...clts);
    const ctl = node('bus', 'dist/clt/main.js', ['--control', '--expect', String(cfg.cltHosts + 1), '--json', '--stats', String(cfg.stats), '--bus', url, '--run', run], 'the controller');
    procs.push(ctl);
    const control = await race(ctl.json('summary'));
    const ctlExit = await race(ctl.exited);
    const cltSummaries = await race(Promise.all(clts.map((c) => c.json('summary'))));
    const cltExits = await race(Promise.all(clts.map((c) => c.exited)));
    srv.child.kill('SIGTERM');
    const server = await race(srv.json('summary'));
    await race(srv.exited);
    for (const [p, e] of [[ctl, ctlExit], ...clts.map((c, i) => [c, cltExits[i]])])
      if (e.code !== 0) throw new Error(`${p.what} exited ${e.code ?? e.signal}: ${p.stderr()}`);
    return { control, server, clients: cltSummaries, fleet: ctl.lines.filter((l) => l.includes('"type":"fleet"')).map((l) => JSON.parse(l)), hosts };
  } finally {
    clearTimeout(timer);
    killAll();
    await Promise.all(procs.map((p) => p.exited));
    net.remove();
    active.delete(cleanup);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values: v } = parseArgs({
    options: Object.fromEntries(['clt-hosts', 'srv-threads', 'srv-procs', 'threads', 'procs', 'conns', 'rate', 'duration', 'size', 'stats', 'timeout'].map((k) => [k, { type: 'string' }])),
  });
  const num = (k) => (v[k] === undefined ? undefined : Number(v[k]));
  const o = Object.fromEntries(
    Object.entries({ cltHosts: num('clt-hosts'), srvThreads: num('srv-threads'), srvProcs: num('srv-procs'), threads: num('threads'), procs: num('procs'), conns: num('conns'), rate: num('rate'), duration: num('duration'), size: num('size'), stats: num('stats'), timeoutS: num('timeout') }).filter(([, x]) => x !== undefined),
  );
  // An interrupt kills the children and removes the namespaces before exiting.
  for (const sig of ['SIGINT', 'SIGTERM'])
    process.on(sig, () => {
      for (const c of active) c();
      process.stderr.write(`hosts: ${sig}: the fleet was stopped and its namespaces removed\n`);
      process.exit(130);
    });
  const r = await runFleet(o).catch((e) => {
    process.stderr.write(`hosts: ${e.message}\n`);
    process.exit(1);
  });
  process.stdout.write(`${JSON.stringify({ type: 'hosts', control: r.control, server: { rxBytes: r.server.rxBytes, accepted: r.server.accepted, peakConnections: r.server.peakConnections } })}\n`);
}
