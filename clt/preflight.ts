// Checks a planned run against the machine before any socket is opened: a run that cannot fit
// (too few fds per process, too few ephemeral ports toward one destination) is refused with the
// numbers and a fix, instead of failing with EMFILE or EADDRNOTAVAIL thousands of sockets later.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

import { formatEndpoint, type Endpoint } from '../src/cli/args.js';
import { threadsOf } from '../src/cli/spread.js';

/** Fds a process keeps for itself besides the sockets: stdio, the addon's pollers, Node's own. */
export const SPARE_FDS = 64;

/** What a run asks for. */
export interface Plan {
  threads: number;
  procs: number;
  /** Connections (or UDP sockets) per thread. */
  conns: number;
  targets: Endpoint[];
  /** Local addresses to bind; empty lets the kernel choose. */
  sources: string[];
  udp: boolean;
}

/** What the machine allows. `undefined` where it could not be read: that check is skipped. */
export interface Machine {
  /** RLIMIT_NOFILE hard limit per process (the runtime raises the soft limit to it). */
  fileLimit: number | undefined;
  /** Ephemeral port range, inclusive. */
  portRange: { low: number; high: number } | undefined;
}

/** The verdict: `error` set means refuse (one line per problem found); `warnings` are worth printing either way. */
export interface Verdict {
  error?: string;
  warnings: string[];
}

/** Parses the `Max open files` line of /proc/self/limits (hard limit). */
export function parseFileLimit(limits: string): number | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) return undefined;
  return m[2] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[2]);
}

/** Parses /proc/sys/net/ipv4/ip_local_port_range (`32768\t60999`). */
export function parsePortRange(text: string): { low: number; high: number } | undefined {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (!m) return undefined;
  const low = Number(m[1]);
  const high = Number(m[2]);
  return high >= low ? { low, high } : undefined;
}

/** Reads the limits of this machine (Linux /proc; elsewhere both are unknown). */
export function readMachine(): Machine {
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  const limits = read('/proc/self/limits');
  const range = read('/proc/sys/net/ipv4/ip_local_port_range');
  return {
    fileLimit: limits === undefined ? undefined : parseFileLimit(limits),
    portRange: range === undefined ? undefined : parsePortRange(range),
  };
}

const n = (v: number): string => v.toLocaleString('en-US');

/** Fds process `p` needs: its threads' sockets plus a spare. */
export function fdsNeeded(plan: Pick<Plan, 'threads' | 'procs' | 'conns'>, p: number): number {
  return threadsOf(plan.threads, plan.procs, p) * plan.conns + SPARE_FDS;
}

/**
 * Which (source, target) pair the k-th connection uses. Targets rotate fastest, so that with S
 * sources and T targets every one of the S × T pairs gets its share (k % S would pair source i
 * with target i only when S and T share a factor).
 */
export function pick(k: number, targets: number, sources: number): { target: number; source: number } {
  return { target: k % targets, source: sources === 0 ? -1 : Math.floor(k / targets) % sources };
}

/**
 * Connections per (source address, destination address and port) when `total` connections are
 * spread with `pick`, keyed by a phrase naming the pair. Unix targets are left out: they use no ports.
 */
export function connectionsPerPair(total: number, targets: Endpoint[], sources: string[]): Map<string, number> {
  const slots = targets.length * Math.max(1, sources.length);
  const full = Math.floor(total / slots);
  const rem = total % slots;
  const out = new Map<string, number>();
  for (let j = 0; j < slots; j++) {
    const { target, source } = pick(j, targets.length, sources.length);
    const t = targets[target]!;
    if (t.path !== undefined) continue;
    const key = `${source < 0 ? 'from one local address' : `from ${sources[source]}`} to ${formatEndpoint(t)}`;
    out.set(key, (out.get(key) ?? 0) + full + (j < rem ? 1 : 0));
  }
  return out;
}

/** Smallest process count whose largest process fits in `limit` fds, or undefined if none ≤ threads does. */
export function procsNeeded(threads: number, conns: number, limit: number): number | undefined {
  for (let p = 1; p <= threads; p++) if (Math.ceil(threads / p) * conns + SPARE_FDS <= limit) return p;
  return undefined;
}

/** Checks `plan` against `machine`. Pure: the caller reads the machine (`readMachine`). */
export function preflight(plan: Plan, machine: Machine): Verdict {
  const warnings: string[] = [];
  const errors: string[] = [];
  const total = plan.threads * plan.conns;

  for (const s of plan.sources) {
    for (const t of plan.targets) {
      if (t.path !== undefined) continue;
      const tf = isIP(t.host);
      if (tf !== 0 && tf !== isIP(s))
        return { warnings, error: `--source ${s} is IPv${isIP(s)} but --target ${formatEndpoint(t)} is IPv${tf}: source and target must be of one family` };
    }
  }

  const limit = machine.fileLimit;
  if (limit !== undefined) {
    const need = fdsNeeded(plan, 0); // process 0 gets the most threads
    if (need > limit) {
      const per = threadsOf(plan.threads, plan.procs, 0);
      const head =
        `${n(total)} sockets (${plan.threads} threads × ${n(plan.conns)}) over ${plan.procs} process${plan.procs > 1 ? 'es' : ''} ` +
        `need ${n(need)} open files in one process (${per} thread${per > 1 ? 's' : ''} × ${n(plan.conns)} + ${SPARE_FDS} spare), ` +
        `but the limit is ${n(limit)} per process (RLIMIT_NOFILE hard limit; \`ulimit -Hn\`, raising it needs root).`;
      const p = procsNeeded(plan.threads, plan.conns, limit);
      let fix: string;
      if (p !== undefined) {
        fix = `Use --procs ${p} to spread the threads over ${p} processes.`;
      } else {
        // Even one thread per process is too many sockets: keep the total, use more, smaller threads.
        const procs = Math.ceil(total / (limit - SPARE_FDS));
        const conns = Math.ceil(total / procs);
        fix = `One thread of ${n(plan.conns)} sockets does not fit in one process: use --threads ${procs} --procs ${procs} --conns ${conns} (the same ${n(total)} sockets), or lower --conns to at most ${n(limit - SPARE_FDS)}.`;
      }
      errors.push(`${head} ${fix}`);
    }
  }

  const range = machine.portRange;
  if (range !== undefined && !plan.udp) {
    const ports = range.high - range.low + 1;
    let worst: [string, number] | undefined;
    for (const [key, count] of connectionsPerPair(total, plan.targets, plan.sources)) {
      if (!worst || count > worst[1]) worst = [key, count];
      if (count > ports / 2 && count <= ports)
        warnings.push(`${n(count)} connections ${key} use more than half of the ${n(ports)} ephemeral ports: connects slow down; more --source or --target addresses help`);
    }
    if (worst && worst[1] > ports) {
      const tcp = plan.targets.filter((t) => t.path === undefined);
      const tcpTotal = Math.ceil((total * tcp.length) / plan.targets.length);
      const sourcesNeeded = Math.ceil(tcpTotal / (ports * tcp.length));
      const example = Array.from({ length: Math.max(2, sourcesNeeded) }, (_, i) => `--source 127.0.0.${i + 1}`).join(' ');
      errors.push(
          `${n(worst[1])} connections ${worst[0]} need ${n(worst[1])} local ports, but the ephemeral port range has ${n(ports)} ` +
          `(net.ipv4.ip_local_port_range ${range.low}-${range.high}); connects past it fail with EADDRNOTAVAIL. ` +
          `Bind ${sourcesNeeded} or more local addresses (for loopback targets: ${example}), or add --target addresses.`,
      );
    }
  }
  return errors.length > 0 ? { warnings, error: errors.join('\n') } : { warnings };
}
