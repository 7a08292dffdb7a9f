import { isIP } from 'node:net';
import { endianness } from 'node:os';

import type { NativeAddress, NativeLoop } from './native.js';

// A UDP socket's native methods.
declare module './native.js' {
  interface NativeLoop {
    /** 0 paused, 1 native sink, 2 datagrams to JS. */
    udpRead(id: number, mode: number): void;
    /** 1 under the high-water mark, 0 at it (a UdpDrain record follows). */
    udpSendBatch(id: number, staging: Uint8Array, length: number, count: number): number;
    udpPackAddress(host: string): Uint8Array | null;
    udpPush(id: number, chunk: Uint8Array | null): void;
    udpCounters(id: number, out: Float64Array): boolean;
    udpClose(id: number): void;
  }
}

const counters = new Float64Array(5);
const LE = endianness() === 'LE';
/** Bytes before each datagram in a send batch (native/udp.h kUdpHeader). */
const HEADER = 24;
const STAGE = 256 * 1024;
const MAX_DATAGRAM = 65507; // 65535 − 8 (UDP header) − 20 (IPv4 header)
const MAX_CACHED = 4096;

/** A datagram's sender (and where `sendTo` can send). */
export interface UdpAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/** Where `sendTo` sends: a numeric address (no name lookups) and a port. */
export type UdpTarget = { host: string; port: number } | { address: string; port: number };

// The bytes 4..23 of a datagram's header in a send batch (family, port, address), kept on every
// address object this module makes, so a reply to a sender costs no parsing.
const PACKED = Symbol('iapp.udp.packed');
type Packed = Uint8Array & { length: 20 };

function packed(family: 4 | 6, port: number, addr: Uint8Array): Packed {
  const p = new Uint8Array(20) as Packed;
  p[0] = family;
  new DataView(p.buffer).setUint16(2, port, LE);
  p.set(addr.subarray(0, family === 4 ? 4 : 16), 4);
  return p;
}

function ipv4Bytes(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}

/** RFC 5952 text of 16 address bytes: the longest run of two or more zero groups becomes `::`. */
export function formatIPv6(b: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** An address object with its packed form, frozen. */
function addressOf(family: 4 | 6, address: string, port: number, p: Packed): UdpAddress {
  const a = { address, port, family: family === 4 ? 'IPv4' : 'IPv6' } as UdpAddress;
  Object.defineProperty(a, PACKED, { value: p });
  return Object.freeze(a);
}

/**
 * A UDP socket owned by one loop (made by `loop.udp()`), usable only on that loop's thread.
 * Datagrams reach JavaScript in batches (`onMessage`: one call into JavaScript per loop turn
 * for all of them, not one per datagram) and leave it in batches (`send`/`sendTo` stage them;
 * they are handed over in one call and sent with sendmmsg). For load, `sink()` counts what
 * arrives natively and `push()` sends one buffer again and again, with no JavaScript at all.
 * UDP may drop datagrams anywhere on the way: compare `datagramsOut` of the sender with
 * `datagramsIn` of the receiver to see how many.
 */
export class UdpSocket {
  readonly id: number;
  /** The bound address and port. */
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6' | 'unix';
  #native: NativeLoop;
  #onClose: () => void;
  #closed = false;
  #final: number[] | undefined;
  #onMessage: ((data: Buffer, from: UdpAddress) => void) | undefined;
  #onDrain: (() => void) | undefined;
  #onError: (e: unknown) => void;
  #stage: Uint8Array | undefined;
  #view: DataView | undefined;
  #staged = 0;
  #count = 0;
  #flushQueued = false;
  #writable = true;
  readonly #highWater: number;
  #from4 = new Map<number, UdpAddress>();
  #from6 = new Map<string, UdpAddress>();
  #targets = new Map<string, Packed>();

  /** @internal Made by Loop.udp(). */
  constructor(native: NativeLoop, info: NativeAddress & { id: number }, onClose: () => void, onError: (e: unknown) => void, highWater: number) {
    this.#native = native;
    this.#onClose = onClose;
    this.#onError = onError;
    this.#highWater = highWater;
    this.id = info.id;
    this.address = info.address ?? '';
    this.port = info.port ?? 0;
    this.family = info.family ?? 'IPv4';
  }

  /**
   * Calls `fn(data, from)` for every datagram that arrives, in batches: each loop turn hands all
   * the datagrams it received to JavaScript in one call. `data` is a view of a buffer shared by
   * the batch: copy it to keep it past the handler. `from` objects are cached per sender and
   * frozen; pass one to `sendTo` to answer (no parsing). A handler that throws is reported and
   * the socket goes on. Replaces `sink()` or `pause()`.
   */
  onMessage(fn: (data: Buffer, from: UdpAddress) => void): this {
    if (typeof fn !== 'function') throw new TypeError('onMessage needs a function');
    this.#onMessage = fn;
    if (!this.#closed) this.#native.udpRead(this.id, 2);
    return this;
  }

  /** Calls `fn` when the send queue has emptied after `send`/`sendTo` returned false. */
  onDrain(fn: () => void): this {
    this.#onDrain = fn;
    return this;
  }

  /** Drains received datagrams natively, counting them (`datagramsIn`, `bytesIn`). */
  sink(): this {
    if (!this.#closed) this.#native.udpRead(this.id, 1);
    return this;
  }

  /** Stops reading: datagrams queue in the kernel, then are dropped by it. */
  pause(): this {
    if (!this.#closed) this.#native.udpRead(this.id, 0);
    return this;
  }

  /**
   * Sends `chunk` as datagrams to the connected peer again and again, natively, whenever the
   * socket can take more, until `stopPush()` or `close()`. At most 65,507 bytes (IPv4).
   * Send errors (ECONNREFUSED after an ICMP port-unreachable) are counted in the loop's errors.
   */
  push(chunk: Uint8Array): this {
    if (this.#closed) throw new TypeError('push on a closed UDP socket');
    if (!ArrayBuffer.isView(chunk) || chunk.byteLength === 0 || chunk.byteLength > MAX_DATAGRAM)
      throw new RangeError(`a UDP datagram is 1 to 65,507 bytes, got ${chunk?.byteLength}`);
    this.#native.udpPush(this.id, chunk);
    return this;
  }

  stopPush(): this {
    if (!this.#closed) this.#native.udpPush(this.id, null);
    return this;
  }

  /**
   * Sends one datagram to the connected peer (see `loop.udp({ peer })`). Like `sendTo`: queued
   * in order and sent with the turn's others; false when the queue is at its high-water mark.
   */
  send(chunk: Uint8Array): boolean {
    return this.#stageOne(chunk, undefined);
  }

  /**
   * Sends one datagram to `to` (a numeric address and port, or a sender's `from`). Datagrams are
   * staged and handed over together at the end of the current turn of JavaScript (or when 256 KiB
   * are staged), then sent with sendmmsg; what the socket cannot take now is queued, in order.
   * Returns false when the queue is at its high-water mark (`highWaterMark`, default 1 MiB):
   * the datagram is queued anyway; wait for `onDrain` before sending more. Datagrams the kernel
   * refuses (EMSGSIZE, ENETUNREACH, ECONNREFUSED after an ICMP error) are counted by errno in
   * the loop's `stats().errors` and in `sendErrors`, not thrown. Throws TypeError for a target
   * that is not a numeric address and port, RangeError for a datagram over 65,507 bytes.
   */
  sendTo(chunk: Uint8Array, to: UdpTarget | UdpAddress): boolean {
    return this.#stageOne(chunk, this.#pack(to));
  }

  #pack(to: UdpTarget | UdpAddress): Packed {
    const known = (to as { [PACKED]?: Packed })?.[PACKED];
    if (known) return known;
    const host = (to as { host?: unknown }).host ?? (to as { address?: unknown }).address;
    const port = (to as { port?: unknown }).port;
    if (typeof host !== 'string' || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new TypeError(`sendTo needs { host, port } with a numeric address and a port from 1 to 65535, got ${String(host)}:${String(port)}`);
    const key = `${host}|${port}`;
    const hit = this.#targets.get(key);
    if (hit) return hit;
    const v = isIP(host);
    if (v === 0) throw new TypeError(`sendTo needs a numeric IP address (resolve names first), got '${host}'`);
    const bytes = this.#native.udpPackAddress(host);
    if (bytes === null) throw new TypeError(`sendTo: '${host}' is not an address this system can send to`);
    if (this.#targets.size >= MAX_CACHED) this.#targets.clear();
    const p = packed(v === 4 ? 4 : 6, port, bytes);
    this.#targets.set(key, p);
    return p;
  }

  #stageOne(chunk: ArrayBufferView, to: Packed | undefined): boolean {
    if (this.#closed) throw new TypeError('send on a closed UDP socket');
    if (!ArrayBuffer.isView(chunk) || chunk.byteLength > MAX_DATAGRAM)
      throw new RangeError(`a UDP datagram is 0 to 65,507 bytes, got ${chunk?.byteLength}`);
    const n = chunk.byteLength;
    if (this.#staged + HEADER + n > STAGE) this.#flush();
    this.#stage ??= new Uint8Array(STAGE);
    this.#view ??= new DataView(this.#stage.buffer);
    const at = this.#staged;
    this.#view.setUint32(at, n, LE);
    if (to) this.#stage.set(to, at + 4);
    else this.#stage.fill(0, at + 4, at + HEADER);
    this.#stage.set(new Uint8Array(chunk.buffer, chunk.byteOffset, n), at + HEADER);
    this.#staged += HEADER + n;
    this.#count++;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
    return this.#writable && this.#staged < this.#highWater;
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#count === 0 || this.#closed) return;
    const r = this.#native.udpSendBatch(this.id, this.#stage!, this.#staged, this.#count);
    this.#staged = 0;
    this.#count = 0;
    this.#writable = r === 1;
  }

  /** Closes the socket (staged datagrams go first). Counters keep their last values. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#final = [0, 1, 2, 3, 4].map((i) => this.#counter(i));
    this.#closed = true;
    this.#native.udpClose(this.id);
    this.#onClose();
  }

  get closed(): boolean {
    return this.#closed;
  }
  get datagramsIn(): number {
    return this.#counter(0);
  }
  get bytesIn(): number {
    return this.#counter(1);
  }
  get datagramsOut(): number {
    return this.#counter(2);
  }
  get bytesOut(): number {
    return this.#counter(3);
  }
  /** Datagrams the kernel refused to send, or errors it reported for earlier sends (ICMP). */
  get sendErrors(): number {
    return this.#counter(4);
  }

  /** @internal A datagram record (see native/loop.h kRecDatagram). */
  _message(blob: Buffer, r: Float64Array, o: number): void {
    const fn = this.#onMessage;
    if (!fn) return;
    const off = r[o + 2]!;
    const data = blob.subarray(off, off + r[o + 3]!);
    const port = r[o + 5]!;
    let from: UdpAddress;
    if (r[o + 4] === 4) {
      const a = r[o + 6]!;
      const key = a * 65536 + port;
      from = this.#from4.get(key) ?? this.#remember4(key, a, port);
    } else {
      const at = r[o + 6]!;
      const bytes = blob.subarray(at, at + 16);
      const key = `${bytes.toString('hex')}|${port}`;
      from = this.#from6.get(key) ?? this.#remember6(key, bytes, port);
    }
    try {
      fn(data, from);
    } catch (e) {
      this.#onError(e);
    }
  }

  #remember4(key: number, a: number, port: number): UdpAddress {
    if (this.#from4.size >= MAX_CACHED) this.#from4.clear();
    const from = addressOf(4, `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`, port, packed(4, port, ipv4Bytes(a)));
    this.#from4.set(key, from);
    return from;
  }

  #remember6(key: string, bytes: Uint8Array, port: number): UdpAddress {
    if (this.#from6.size >= MAX_CACHED) this.#from6.clear();
    const from = addressOf(6, formatIPv6(bytes), port, packed(6, port, bytes));
    this.#from6.set(key, from);
    return from;
  }

  /** @internal The send queue emptied after a send reported backpressure. */
  _drain(): void {
    this.#writable = true;
    try {
      this.#onDrain?.();
    } catch (e) {
      this.#onError(e);
    }
  }

  #counter(i: number): number {
    if (this.#final) return this.#final[i]!;
    return this.#native.udpCounters(this.id, counters) ? counters[i]! : 0;
  }
}
