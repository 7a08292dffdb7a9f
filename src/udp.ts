import type { NativeAddress, NativeLoop } from './native.js';

const counters = new Float64Array(4);

/**
 * A UDP socket owned by one loop (made by `loop.udp()`), usable only on that loop's thread.
 * Datagrams are counted natively: `sink()` drains with recvmmsg and `push()` sends with sendmmsg,
 * with no JS per datagram. UDP may drop datagrams anywhere on the way: compare `datagramsOut` of
 * the sender with `datagramsIn` of the receiver to see how many.
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

  /** @internal Made by Loop.udp(). */
  constructor(native: NativeLoop, info: NativeAddress & { id: number }, onClose: () => void) {
    this.#native = native;
    this.#onClose = onClose;
    this.id = info.id;
    this.address = info.address ?? '';
    this.port = info.port ?? 0;
    this.family = info.family ?? 'IPv4';
  }

  /** Drains received datagrams natively, counting them (`datagramsIn`, `bytesIn`). */
  sink(): this {
    if (!this.#closed) this.#native.udpSink(this.id, true);
    return this;
  }

  /** Stops reading: datagrams queue in the kernel, then are dropped by it. */
  pause(): this {
    if (!this.#closed) this.#native.udpSink(this.id, false);
    return this;
  }

  /**
   * Sends `chunk` as datagrams to the connected peer again and again, natively, whenever the
   * socket can take more, until `stopPush()` or `close()`. At most 65,507 bytes (IPv4).
   * Send errors (ECONNREFUSED after an ICMP port-unreachable) are counted in the loop's errors.
   */
  push(chunk: Uint8Array): this {
    if (this.#closed) throw new TypeError('push on a closed UDP socket');
    if (!ArrayBuffer.isView(chunk) || chunk.byteLength === 0 || chunk.byteLength > 65507)
      throw new RangeError(`a UDP datagram is 1 to 65,507 bytes, got ${chunk?.byteLength}`);
    this.#native.udpPush(this.id, chunk);
    return this;
  }

  stopPush(): this {
    if (!this.#closed) this.#native.udpPush(this.id, null);
    return this;
  }

  /**
   * Sends one datagram to the connected peer now. Returns false when the socket buffer is full
   * (the datagram was not sent). Throws IappError for other failures (EDESTADDRREQ when not
   * connected, ECONNREFUSED, EMSGSIZE).
   */
  send(chunk: Uint8Array): boolean {
    if (this.#closed) throw new TypeError('send on a closed UDP socket');
    return this.#native.udpSend(this.id, chunk);
  }

  /** Closes the socket. Counters keep their last values. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#final = [0, 1, 2, 3].map((i) => this.#counter(i));
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

  #counter(i: number): number {
    if (this.#final) return this.#final[i]!;
    return this.#native.udpCounters(this.id, counters) ? counters[i]! : 0;
  }
}
