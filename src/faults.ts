// Fault injection for tests: makes chosen syscalls of the native layer fail with a chosen errno at
// a chosen rate (native/faults.cc). Set by IAPP_FAULTS when the main thread loads iapp, or by
// injectFaults(). Process-wide: every loop thread and the disk pool see the same spec.
//
// A switch that makes a production process fail syscalls at will must not be thrown by accident:
// rules are honoured only where IAPP_FAULT_INJECTION=1 is in the environment as well (tests set
// both), and every time rules come into force one line on stderr says so. IAPP_FAULTS without
// the second variable is ignored, with one line saying why.
import { constants } from 'node:os';
import { isMainThread, threadId } from 'node:worker_threads';

import { iappError } from './errors.js';
import { native } from './native.js';

// Fault injection.
declare module './native.js' {
  interface Addon {
    /** [site, errno, rate, max, after] per rule; false if there are too many. */
    setFaults(entries: number[][]): boolean;
    faultCounts(): number[];
    fault(site: number): number;
    faultSites: string[];
  }
}

/** The environment variable that must be `1` for fault rules to be honoured. */
export const FAULTS_SWITCH = 'IAPP_FAULT_INJECTION';

/** Whether fault injection is switched on for this process (IAPP_FAULT_INJECTION=1). */
export function faultInjectionEnabled(): boolean {
  return process.env[FAULTS_SWITCH] === '1';
}

/** Where a fault can be injected. */
export type FaultSite =
  /** accept4 on listeners: as if the kernel refused a waiting connection (EMFILE, ENFILE, ENOBUFS…). */
  | 'accept'
  /** recv on sockets: reads in data and sink modes (ECONNRESET, EAGAIN…). */
  | 'recv'
  /** sendmsg on sockets: write(), writev, push (EPIPE, ENOBUFS, EAGAIN…). */
  | 'send'
  /** sendfile(2) behind socket.sendFile() (EIO, ENOMEM…). */
  | 'sendfile'
  /** splice(2) behind loop.pipe() and loop.proxy() (EIO, ENOMEM…). */
  | 'splice'
  /** epoll_ctl when a socket, listener or timer fd is watched or its interest changes (ENOMEM…). */
  | 'pollctl'
  /** The eventfd write that wakes another loop (EAGAIN): the write still happens. */
  | 'waker'
  /** Starting a loop thread or a disk pool thread (EAGAIN). */
  | 'thread'
  /** File reads, writes and syncs, on either disk engine: the kernel's answer replaced (EIO, ENOSPC…). */
  | 'disk';

/**
 * One rule: at `site`, after letting `after` calls through, fail with `code` on a share `rate`
 * of calls, at most `max` times.
 */
export interface FaultRule {
  site: FaultSite;
  /** An errno name, e.g. `'EMFILE'`. */
  code: string;
  /** Probability per call, 0..1. Default 1. */
  rate?: number;
  /** Most injections by this rule. Default: no limit. */
  max?: number;
  /** Calls at this site to let through first (every call counts, whichever rule injects). Default 0. */
  after?: number;
}

const SITES: readonly string[] = native.faultSites;

/**
 * Parses a spec such as `accept:EMFILE:0.5,send:EAGAIN:0.9:1000` (site:ERRNO[:rate[:max[:after]]],
 * comma-separated). Throws a TypeError naming the bad part.
 */
export function parseFaults(spec: string): FaultRule[] {
  const rules: FaultRule[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [site, code, rate, max, after, extra] = part.split(':');
    const bad = (why: string): TypeError =>
      new TypeError(`iapp: bad fault rule '${part}': ${why} (expected site:ERRNO[:rate[:max[:after]]], sites: ${SITES.join(', ')})`);
    if (extra !== undefined || !site || !code) throw bad('wrong number of fields');
    const rule: FaultRule = { site: site as FaultSite, code };
    if (rate !== undefined) rule.rate = Number(rate);
    if (max !== undefined) rule.max = Number(max);
    if (after !== undefined) rule.after = Number(after);
    check(rule, bad);
    rules.push(rule);
  }
  return rules;
}

function check(rule: FaultRule, bad: (why: string) => TypeError): number[] {
  const site = SITES.indexOf(rule.site);
  if (site < 0) throw bad(`unknown site '${rule.site}'`);
  const errno = (constants.errno as Record<string, number>)[rule.code];
  if (errno === undefined) throw bad(`unknown errno name '${rule.code}'`);
  const rate = rule.rate ?? 1;
  if (!(rate >= 0 && rate <= 1)) throw bad(`rate must be between 0 and 1, not ${rule.rate}`);
  const max = rule.max ?? 0;
  if (!Number.isSafeInteger(max) || max < 0) throw bad(`max must be a whole number ≥ 0, not ${rule.max}`);
  const after = rule.after ?? 0;
  if (!Number.isSafeInteger(after) || after < 0) throw bad(`after must be a whole number ≥ 0, not ${rule.after}`);
  return [site, errno, rate, max, after];
}

// A rule as IAPP_FAULTS would spell it, every field given (max 0: no limit).
const describeRule = (r: FaultRule): string => `${r.site}:${r.code}:${r.rate ?? 1}:${r.max ?? 0}:${r.after ?? 0}`;

/**
 * Replaces the fault rules in force (an empty list or string turns injection off) and zeroes
 * the counts. A test switch: rules are refused with `ERR_FAULTS_DISABLED` unless
 * `IAPP_FAULT_INJECTION=1` is in the environment (turning injection off always works), and each
 * call that puts rules in force writes one line to stderr naming them. Throws a TypeError on a
 * bad rule, leaving the previous rules in force.
 */
export function injectFaults(rules: string | readonly FaultRule[]): void {
  const list = typeof rules === 'string' ? parseFaults(rules) : rules;
  const entries = list.map((r) => check(r, (why) => new TypeError(`iapp: bad fault rule ${JSON.stringify(r)}: ${why}`)));
  if (entries.length > 0 && !faultInjectionEnabled())
    throw iappError(
      'ERR_FAULTS_DISABLED',
      `iapp: fault injection is off: set ${FAULTS_SWITCH}=1 in the environment to make syscalls fail on purpose (a test switch, never for production)`,
    );
  if (!native.setFaults(entries)) throw new TypeError(`iapp: at most 16 fault rules, not ${entries.length}`);
  if (entries.length > 0)
    process.stderr.write(
      `iapp: fault injection ON (pid ${process.pid}${isMainThread ? '' : `, thread ${threadId}`}): ${list.map(describeRule).join(',')}: these syscalls will fail on purpose\n`,
    );
}

/** Injections since the rules were last set, by site. */
export function faultCounts(): Record<FaultSite, number> {
  const counts = native.faultCounts();
  return Object.fromEntries(SITES.map((s, i) => [s, counts[i]!])) as Record<FaultSite, number>;
}

/** @internal The errno to inject at a site JS owns (starting a loop thread), or 0. */
export function faultAt(site: FaultSite): number {
  return native.fault(SITES.indexOf(site));
}

// Loop threads share the process's rules: only the main thread reads the environment, once.
if (isMainThread && process.env.IAPP_FAULTS) {
  if (faultInjectionEnabled()) injectFaults(process.env.IAPP_FAULTS);
  else {
    process.stderr.write(`iapp: IAPP_FAULTS is set but ignored: fault injection is a test switch; set ${FAULTS_SWITCH}=1 as well to make syscalls fail on purpose\n`);
  }
}
