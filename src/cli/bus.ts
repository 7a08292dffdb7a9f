// The run bus: iapp-clt and iapp-srv instances on many hosts, and one controller
// (iapp-clt --control), coordinated over a NATS server (--bus nats://HOST:PORT --run ID). The
// protocol is in docs/bus.md. Everything here is loaded only with --bus, and the npm `nats`
// client only then, so a program without --bus runs as before.
//
// Every figure an instance publishes is cumulative since it started (bytes, connections), with
// a sequence number: the controller keeps the newest per instance, so a lost message only delays
// a sum and a repeated or late one cannot change it.
import { hostname } from 'node:os';

import type { Msg, NatsConnection, Subscription } from 'nats';

import { UsageError } from './args.js';

export type Role = 'clt' | 'srv';
/** An instance's state, as it publishes it. */
export type MemberState = 'ready' | 'running' | 'done';

export interface BusConfig {
  url: string;
  run: string;
}

/** Subjects of one run (docs/bus.md). */
export function subjects(run: string) {
  const p = `iapp.${run}`;
  return {
    ready: `${p}.ready`,
    start: `${p}.start`,
    stats: `${p}.stats`,
    fleet: `${p}.fleet`,
    stop: `${p}.stop`,
    end: `${p}.end`,
    summary: (id: string) => `${p}.summary.${id}`,
  };
}

/** instance → all, repeated every interval until `start`. */
export interface ReadyMsg {
  id: string;
  role: Role;
  host: string;
  pid: number;
  /** Seconds between this instance's `stats` messages. */
  statsS: number;
  /** What the instance is (threads, shard, addresses…), for the controller's report. */
  info: Record<string, unknown>;
}
/** instance → controller, every interval: cumulative counts. */
export interface StatsMsg {
  id: string;
  role: Role;
  seq: number;
  state: MemberState;
  counts: Record<string, number>;
}
/** controller → all. */
export interface StartMsg {
  instances: string[];
  at: number;
  /** The controller's interval: its silence is counted from the start, not from its first `fleet`. */
  statsS?: number;
}
/** controller → all, every interval after start: the fleet's sums; also the controller's heartbeat. */
export interface FleetMsg {
  seq: number;
  statsS: number;
  [k: string]: unknown;
}
export interface StopMsg {
  reason: string;
}
export interface EndMsg {
  ok: boolean;
  reason: string;
}

const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Checks --bus and --run (both or neither). Throws UsageError naming the flag and the fix.
 * `program` is for the messages.
 */
export function parseBus(bus: string | undefined, run: string | undefined): BusConfig | undefined {
  if (bus === undefined && run === undefined) return undefined;
  if (bus === undefined) throw new UsageError(`--run ${run} needs --bus nats://HOST:PORT: the NATS server the run is coordinated over`);
  let u: URL;
  try {
    u = new URL(bus.includes('://') ? bus : `nats://${bus}`);
  } catch {
    throw new UsageError(`--bus ${bus}: expected nats://HOST:PORT, a NATS server's client address (port 4222 by default)`);
  }
  if (u.protocol !== 'nats:' || u.hostname === '' || u.pathname.replace(/^\/$/, '') !== '' || u.search !== '')
    throw new UsageError(`--bus ${bus}: expected nats://HOST:PORT, a NATS server's client address (port 4222 by default)`);
  if (run === undefined) throw new UsageError(`--bus needs --run ID: the name every instance and the controller of one run share (letters, digits, - and _)`);
  if (!RUN_ID.test(run)) throw new UsageError(`--run ${run}: use 1 to 64 letters, digits, - and _ (it becomes part of NATS subjects)`);
  return { url: `nats://${u.host || `${u.hostname}:4222`}`, run };
}

const enc = new TextEncoder();
const dec = new TextDecoder();
export const encode = (o: unknown): Uint8Array => enc.encode(JSON.stringify(o));
export function decode<T>(m: Msg): T | undefined {
  try {
    return JSON.parse(dec.decode(m.data)) as T;
  } catch {
    return undefined; // not ours: ignored
  }
}

/** Connects to the bus, or throws UsageError saying it cannot and what to do (exit 2). */
export async function connectBus(cfg: BusConfig, name: string): Promise<NatsConnection> {
  const { connect } = await import('nats');
  try {
    return await connect({ servers: cfg.url, name, timeout: 5000, maxReconnectAttempts: 10, reconnectTimeWait: 1000 });
  } catch (e) {
    const code = (e as { code?: string }).code ?? (e as Error).message;
    throw new UsageError(`--bus ${cfg.url}: cannot reach a NATS server there (${code}); start one (apt-get install nats-server) or correct --bus`);
  }
}

/** A name usable as one NATS subject token. */
const token = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, '_');

/**
 * One clt or srv instance on the bus. It announces itself (`ready`, repeated until `start`),
 * publishes its cumulative counts every interval (`stats`), answers `summary.<id>` requests, and
 * hands `stop` to the program. The controller's `fleet` messages are its heartbeat: a running
 * instance that hears none for 3 of the controller's intervals is told (`onControllerLost`).
 */
export class Member {
  readonly id: string;
  readonly role: Role;
  state: MemberState = 'ready';
  #nc: NatsConnection;
  #s: ReturnType<typeof subjects>;
  #statsS: number;
  #info: Record<string, unknown>;
  #seq = 0;
  #counts: () => Record<string, number> | Promise<Record<string, number>> = () => ({});
  #reply: () => unknown | Promise<unknown> = () => ({ state: this.state });
  #subs: Subscription[] = [];
  #timer: NodeJS.Timeout | undefined;
  #started: { resolve: (m: StartMsg) => void; promise: Promise<StartMsg> };
  #ended: { resolve: (m: EndMsg | undefined) => void; promise: Promise<EndMsg | undefined> };
  #startMsg: StartMsg | undefined;
  #lastFleet: { at: number; statsS: number } | undefined;
  #lostReported = false;
  /** True once the controller has been silent for 3 of its intervals while this instance ran. */
  get controllerLost(): boolean {
    return this.#lostReported;
  }
  #closed = false;
  onStop: (reason: string) => void = () => {};
  onControllerLost: (silentS: number) => void = () => {};
  onNote: (text: string) => void = () => {};

  private constructor(nc: NatsConnection, cfg: BusConfig, role: Role, statsS: number, info: Record<string, unknown>) {
    this.#nc = nc;
    this.role = role;
    this.id = token(`${role}-${hostname()}-${process.pid}`);
    this.#s = subjects(cfg.run);
    this.#statsS = statsS;
    this.#info = info;
    let resolveStart: (m: StartMsg) => void = () => {};
    const promise = new Promise<StartMsg>((r) => (resolveStart = r));
    this.#started = { resolve: resolveStart, promise };
    let resolveEnd: (m: EndMsg | undefined) => void = () => {};
    const ended = new Promise<EndMsg | undefined>((r) => (resolveEnd = r));
    this.#ended = { resolve: resolveEnd, promise: ended };
    void nc.closed().then(() => {
      if (!this.#closed) this.onNote('lost the bus (the NATS server went away): going on alone');
      this.#ended.resolve(undefined);
    });
  }

  /** Connects and joins run `cfg.run` as `role`; throws UsageError when the bus cannot be reached. */
  static async join(cfg: BusConfig, role: Role, statsS: number, info: Record<string, unknown>): Promise<Member> {
    const nc = await connectBus(cfg, `iapp-${role}`);
    const m = new Member(nc, cfg, role, statsS, info);
    m.#listen();
    return m;
  }

  #listen(): void {
    const sub = (subject: string, fn: (m: Msg) => void): void => {
      this.#subs.push(this.#nc.subscribe(subject, { callback: (err, m) => (err ? undefined : fn(m)) }));
    };
    sub(this.#s.start, (m) => {
      const s = decode<StartMsg>(m);
      if (s && Array.isArray(s.instances) && this.#startMsg === undefined) {
        this.#startMsg = s;
        // A controller killed between the start and its first `fleet` reaching the bus (a publish
        // is buffered) must still be noticed: its silence counts from the start.
        if (this.#lastFleet === undefined) this.#lastFleet = { at: performance.now(), statsS: s.statsS! > 0 ? s.statsS! : this.#statsS };
        this.#started.resolve(s);
      }
    });
    sub(this.#s.stop, (m) => this.onStop(decode<StopMsg>(m)?.reason ?? 'stopped by the controller'));
    sub(this.#s.end, (m) => this.#ended.resolve(decode<EndMsg>(m) ?? { ok: false, reason: 'unreadable end message' }));
    sub(this.#s.fleet, (m) => {
      const f = decode<FleetMsg>(m);
      if (f && typeof f.statsS === 'number') this.#lastFleet = { at: performance.now(), statsS: f.statsS };
    });
    sub(this.#s.summary(this.id), (m) => {
      void (async () => {
        let body: unknown;
        try {
          body = await this.#reply();
        } catch (e) {
          body = { error: (e as Error).message };
        }
        if (m.reply) m.respond(encode(body));
      })();
    });
    this.#timer = setInterval(() => void this.#beat(), this.#statsS * 1000);
    void this.#beat();
  }

  async #beat(): Promise<void> {
    if (this.#closed || this.#nc.isClosed()) return;
    if (this.#startMsg === undefined) {
      const ready: ReadyMsg = { id: this.id, role: this.role, host: hostname(), pid: process.pid, statsS: this.#statsS, info: this.#info };
      this.#nc.publish(this.#s.ready, encode(ready));
    }
    let counts: Record<string, number>;
    try {
      counts = await this.#counts();
    } catch {
      return; // the program is stopping; its summary says the rest
    }
    if (this.#closed || this.#nc.isClosed()) return;
    const stats: StatsMsg = { id: this.id, role: this.role, seq: ++this.#seq, state: this.state, counts };
    this.#nc.publish(this.#s.stats, encode(stats));
    const f = this.#lastFleet;
    if (f && this.state === 'running' && !this.#lostReported) {
      const silentS = (performance.now() - f.at) / 1000;
      if (silentS > 3 * f.statsS) {
        this.#lostReported = true;
        this.onControllerLost(silentS);
      }
    }
  }

  /** Where the counts in `stats` messages come from (cumulative). */
  counts(fn: () => Record<string, number> | Promise<Record<string, number>>): void {
    this.#counts = fn;
  }

  /** What a `summary.<id>` request is answered with. */
  reply(fn: () => unknown | Promise<unknown>): void {
    this.#reply = fn;
  }

  /**
   * Resolves when the controller starts the run: true if this instance is in it, false if the
   * run started without it (it came late, or more came than the controller expected).
   */
  async started(): Promise<boolean> {
    const s = await this.#started.promise;
    return s.instances.includes(this.id);
  }

  running(): void {
    this.state = 'running';
    void this.#beat();
  }

  /** This instance's run is over: tells the controller at once, so it can collect the summary. */
  done(): void {
    this.state = 'done';
    void this.#beat();
  }

  /** Waits for the controller's `end` (after it has collected the summary), at most `ms`. */
  async ended(ms: number): Promise<EndMsg | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((res) => {
      timer = setTimeout(() => res(undefined), ms);
    });
    const r = await Promise.race([this.#ended.promise, timeout]);
    clearTimeout(timer);
    return r;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      await this.#nc.drain();
    } catch {
      await this.#nc.close().catch(() => {});
    }
  }
}
