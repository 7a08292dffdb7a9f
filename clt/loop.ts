// What every loop thread of iapp-clt runs: opens connections at a steady rate up to its share,
// keeps them open (reopening any the server drops), and pushes data, holds them idle, or (connect
// mode) ends each one as soon as it is established and opens the next: all natively, with a
// dialer (loop.dial: no JavaScript per connection, paced by a native timer that the loop's turn
// budget keeps on time however busy its sockets are). Echo request/response (with a latency
// histogram) and UDP run here in JavaScript. The runtime's close ends every socket; this module
// then reports the thread's exact final counts as its stats (`app`), which the close hands back.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { constants } from 'node:os';
import { performance } from 'node:perf_hooks';

import type { Endpoint } from '../src/cli/args.js';
import type { DialerStats } from '../src/dialer.js';
import { IappError } from '../src/errors.js';
import type { Loop, LoopInfo } from '../src/loop.js';
import type { CloseInfo, Socket } from '../src/socket.js';
import type { UdpSocket } from '../src/udp.js';
import { formatEndpoint } from '../src/cli/args.js';
import { addErrors } from '../src/cli/report.js';
import { Latency } from './latency.js';
import { pick } from './preflight.js';

/** What the main process hands every thread (`info.data`). */
export interface LoopData {
  targets: Endpoint[];
  sources: string[];
  mode: 'push' | 'echo' | 'hold' | 'connect';
  udp: boolean;
  /** Bytes per write (push), per request (echo) or per datagram (UDP). */
  size: number;
  /** New connections per second for this thread. */
  rate: number;
  /** Connections (or UDP sockets) this thread keeps open. */
  conns: number;
  /** Global index of this process's first thread, and all threads of the run. */
  firstThread: number;
  totalThreads: number;
  connectTimeoutMs: number;
}

/** The first connect failure of a thread, for the "cannot connect" message. */
export interface FirstError {
  target: string;
  code: string;
  message: string;
}

/** A thread's counters, live (`stats().app` while running) and final (after the close). */
export interface ThreadCounts {
  thread: number;
  /** Connections that were established (UDP: sockets opened). */
  established: number;
  /** Connect attempts that failed. */
  failed: number;
  /** Established connections that closed while the run went on (the server closed or reset them). */
  dropped: number;
  /** Connect mode: connections ended by clt once established, and closed. */
  cycled: number;
  /** Connections open now, and at most at once. */
  open: number;
  peak: number;
  /** Failures by code: connect failures and errors of established connections. */
  errors: Record<string, number>;
  /** Echo responses received. */
  responses: number;
  /** Milliseconds from this thread's start until all its `conns` were open at once (not in connect mode). */
  rampMs?: number;
  firstError?: FirstError;
}

/**
 * The final counts: bytes exact from each socket's close info (UDP: each socket's counters),
 * and the encoded histogram.
 */
export interface ThreadReport extends ThreadCounts {
  txBytes: number;
  rxBytes: number;
  datagramsOut: number;
  latency: string;
}

const TICK_MS = 10;
/** onData options of handlers that keep no chunk past the call. */
const BORROW = Object.freeze({ borrow: true });

export async function setup(loop: Loop, info: LoopInfo): Promise<{ thread: number }> {
  const d = info.data as LoopData;
  const thread = d.firstThread + info.index;
  if (!d.udp && d.mode !== 'echo') return dialing(loop, d, thread);
  const chunk = Buffer.alloc(d.size, 0x61);
  const startedAt = performance.now();
  const latency = new Latency();
  const counts: ThreadCounts = { thread, established: 0, failed: 0, dropped: 0, cycled: 0, open: 0, peak: 0, errors: {}, responses: 0 };
  let txBytes = 0;
  let rxBytes = 0;
  let pending = 0;
  let seq = 0;
  let stopping = false;
  const udps: UdpSocket[] = [];

  const count = (code: string): void => {
    counts.errors[code] = (counts.errors[code] ?? 0) + 1;
  };

  // Every thread walks the same global sequence of (source, target) pairs, interleaved by thread,
  // so the whole run spreads evenly over all pairs, as preflight assumed.
  const next = (): { target: Endpoint; source: string | undefined } => {
    const k = seq++ * d.totalThreads + thread;
    const p = pick(k, d.targets.length, d.sources.length);
    return { target: d.targets[p.target]!, source: p.source < 0 ? undefined : d.sources[p.source] };
  };

  const opened = (): void => {
    counts.established++;
    counts.open++;
    if (counts.open > counts.peak) counts.peak = counts.open;
    if (counts.open === d.conns && counts.rampMs === undefined) counts.rampMs = performance.now() - startedAt;
  };

  const closed = (ci: CloseInfo): void => {
    counts.open--;
    txBytes += ci.bytesWritten;
    rxBytes += ci.bytesRead;
    if (ci.error) count(ci.error.code);
    if (!stopping && !loop.closing) counts.dropped++;
    refill(); // its place goes to the next connection at once, if the rate allows
  };

  // One request outstanding: send `size` bytes, wait for `size` bytes back, time it, repeat.
  const startEcho = (s: Socket): void => {
    let got = 0;
    let sentAt = 0;
    const send = (): void => {
      if (stopping || loop.closing || !s.writable) return;
      sentAt = performance.now();
      s.write(chunk);
    };
    // Only counted: borrowed chunks (docs/api/socket.md#borrowed-chunks).
    s.onData((b) => {
      got += b.length;
      while (got >= d.size) {
        got -= d.size;
        latency.record((performance.now() - sentAt) * 1000);
        counts.responses++;
        send();
      }
    }, BORROW);
    send();
  };

  const openTcp = async (): Promise<void> => {
    const { target, source } = next();
    pending++;
    let s: Socket;
    try {
      s = await loop.connect({
        ...(target.path !== undefined ? { path: target.path } : { host: target.host, port: target.port }),
        ...(source !== undefined ? { localAddress: source } : {}),
        mode: 'data',
        timeout: d.connectTimeoutMs,
      });
    } catch (e) {
      const err = e as Error & { code?: string };
      // Closing: connects are refused or cancelled, which is not a failure of the target.
      if (err.code === 'ERR_LOOP_CLOSED' || err.code === 'ERR_SOCKET_CLOSED' || stopping) {
        stopping = true;
        return;
      }
      counts.failed++;
      const code = err.code ?? 'ERR_UNKNOWN';
      count(code);
      counts.firstError ??= { target: formatEndpoint(target), code, message: err.message };
      refill();
      return;
    } finally {
      pending--;
    }
    opened();
    s.onClose(closed);
    startEcho(s);
  };

  const openUdp = (): void => {
    const { target, source } = next();
    try {
      const u = loop.udp({ ...(source !== undefined ? { host: source } : {}), peer: { host: target.host!, port: target.port! } });
      u.push(chunk);
      udps.push(u);
      opened();
    } catch (e) {
      const err = e as Error & { code?: string };
      counts.failed++;
      const code = err.code ?? 'ERR_UNKNOWN';
      count(code);
      counts.firstError ??= { target: formatEndpoint(target), code, message: err.message };
    }
  };

  // Token bucket, as the dialer's: `rate` per second on average, taken on every tick and whenever
  // a connection leaves a place free; up to a second's worth at once, so a thread whose CPU was
  // taken by other processes catches up. The tick is a native loop timer.
  let tokens = 1;
  let last = performance.now();
  const burst = Math.max(1, d.rate);
  const refill = (): void => {
    const now = performance.now();
    tokens = Math.min(burst, tokens + ((now - last) * d.rate) / 1000);
    last = now;
    while (!stopping && !loop.closing && tokens >= 1 && counts.open + pending < d.conns) {
      tokens--;
      if (d.udp) openUdp();
      else void openTcp();
    }
  };
  const ticker = loop.timer(refill);
  ticker.armInterval(TICK_MS);
  refill();

  let final: ThreadReport | undefined;
  loop.onStats(() => final ?? { ...counts, errors: { ...counts.errors } });

  loop.onClose(() => {
    stopping = true;
    ticker.close();
    // The loop closed its UDP sockets; their counters keep the final values.
    let datagramsOut = 0;
    for (const u of udps) {
      u.close();
      txBytes += u.bytesOut;
      rxBytes += u.bytesIn;
      datagramsOut += u.datagramsOut;
    }
    if (d.udp) {
      // UDP send errors (ECONNREFUSED after an ICMP port-unreachable) are counted natively.
      try {
        addErrors(counts.errors, loop.stats().errors);
      } catch {
        // the native loop is gone: the summary has the connect-side errors only
      }
    }
    final = { ...counts, txBytes, rxBytes, datagramsOut, latency: latency.count > 0 ? latency.encode() : '' };
  });

  return { thread };
}

/** Push, hold and connect modes: the connections are a dialer's, native from end to end. */
async function dialing(loop: Loop, d: LoopData, thread: number): Promise<{ thread: number }> {
  // The dialer takes numeric addresses: names are resolved once, here.
  const targets = await Promise.all(
    d.targets.map(async (t) => (t.path !== undefined ? { path: t.path } : { host: isIP(t.host!) ? t.host! : (await lookup(t.host!)).address, port: t.port! })),
  );
  const dialer = loop.dial({
    targets,
    sources: d.sources,
    count: d.conns,
    rate: d.rate,
    then: d.mode === 'push' ? 'push' : d.mode === 'connect' ? 'end' : 'hold',
    ...(d.mode === 'push' ? { chunk: Buffer.alloc(d.size, 0x61) } : {}),
    timeoutMs: d.connectTimeoutMs,
    // Every thread walks the same global sequence of (source, target) pairs, interleaved by
    // thread, so the whole run spreads evenly over all pairs, as preflight assumed.
    sequence: { first: thread, stride: d.totalThreads },
  });
  const counts = (s: DialerStats): ThreadCounts => {
    const c: ThreadCounts = { thread, established: s.established, failed: s.failed, dropped: s.dropped, cycled: s.cycled, open: s.open, peak: s.peak, errors: s.errors, responses: 0 };
    if (s.rampMs !== null) c.rampMs = s.rampMs;
    if (s.established === 0 && s.failed > 0) {
      // For "cannot connect": the commonest failure, worded as the library words a failed connect.
      const [code] = Object.entries(s.errors).sort((a, b) => b[1] - a[1])[0] ?? ['ECONNREFUSED'];
      const t = d.targets[0]!;
      const errno = (constants.errno as Record<string, number>)[code] ?? 0;
      c.firstError = { target: formatEndpoint(t), code, message: IappError.fromErrno(errno, 'connect', formatEndpoint(t)).message };
    }
    return c;
  };
  let final: ThreadReport | undefined;
  loop.onStats(() => final ?? counts(dialer.stats()));
  // After the loop's close (which ended the dialer's connections): the exact final counts.
  loop.onClose(() => {
    const s = dialer.stats();
    final = { ...counts(s), txBytes: s.bytesOut, rxBytes: s.bytesIn, datagramsOut: 0, latency: '' };
  });
  return { thread };
}
