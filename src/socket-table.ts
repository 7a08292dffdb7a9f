// A loop's sockets, listeners, UDP sockets and dialers by native id, and the records that reach
// them (data, accepts, connects, ends, drains, closes, hand-offs, sendFile completions, accept
// pauses, datagrams, dialer ends).
import type { Dialer } from './dialer.js';
import type { Listener } from './listener.js';
import { native as addon, ReadMode, Rec } from './native.js';
import type { RecordTable } from './records.js';
import { Socket, type SocketHost } from './socket.js';
import type { UdpSocket } from './udp.js';

/** @internal */
export class SocketTable {
  readonly sockets = new Map<number, Socket>();
  readonly listeners = new Map<number, Listener>();
  readonly udps = new Map<number, UdpSocket>();
  readonly dialers = new Map<number, Dialer>();
  readonly #modes = new Map<number, ReadMode>();
  readonly #host: SocketHost;
  #arena: Buffer | undefined;
  /** The loop's lent arena (onData's borrow): announced once, read into again after each batch. */
  #lent: Buffer | undefined;
  #blob: Buffer | undefined;

  constructor(host: SocketHost) {
    this.#host = host;
  }

  /** A new Socket object for native socket `id`, kept until its Close or Detached record. */
  add(id: number, mode: ReadMode, connecting: boolean): Socket {
    const socket = new Socket(this.#host, id, mode, connecting);
    this.sockets.set(id, socket);
    return socket;
  }

  /** A listener whose accepted sockets start in `mode`. */
  addListener(l: Listener, mode: ReadMode): void {
    this.listeners.set(l.id, l);
    this.#modes.set(l.id, mode);
  }

  deleteListener(l: Listener): void {
    this.listeners.delete(l.id);
    this.#modes.delete(l.id);
  }

  /** `owner` names the socket a handler that throws must close. */
  register(t: RecordTable & { owner: Socket | undefined }): void {
    const sockets = this.sockets;
    const socketOf = (id: number): Socket | undefined => (t.owner = sockets.get(id));
    t.on(Rec.Data, (id, r, o) => socketOf(id)?._data(this.#arena!.subarray(r[o + 2]!, r[o + 2]! + r[o + 3]!)));
    t.on(Rec.Arena, () => (this.#arena = t.takeArena()));
    t.on(Rec.LentData, (id, r, o) => socketOf(id)?._data(this.#lent!.subarray(r[o + 2]!, r[o + 2]! + r[o + 3]!), true));
    t.on(Rec.LentArena, () => (this.#lent = t.takeArena()));
    t.on(Rec.Accept, (id, r, o) => {
      const l = this.listeners.get(id);
      const socket = (t.owner = this.add(r[o + 2]!, this.#modes.get(id) ?? ReadMode.Data, false));
      if (l) l._accepted(socket);
      else socket.destroy({ reset: true }); // accepted just before its listener closed
    });
    t.on(Rec.Connect, (id) => socketOf(id)?._connected());
    t.on(Rec.End, (id, r, o) => socketOf(id)?._end(r[o + 2] === 1));
    t.on(Rec.Drain, (id) => socketOf(id)?._drain());
    t.on(Rec.Close, (id, r, o) => {
      const socket = sockets.get(id);
      sockets.delete(id);
      socket?._closed(r[o + 2]!, addon.syscallNames[r[o + 3]!] ?? '', r[o + 4]!, r[o + 5]!, r[o + 6]!);
    });
    t.on(Rec.Detached, (id) => {
      const socket = sockets.get(id);
      sockets.delete(id);
      socket?._detached();
    });
    t.on(Rec.SendFile, (id, r, o) => sockets.get(id)?._sendFileDone(r[o + 2]!, r[o + 3]!, r[o + 4]!, addon.syscallNames[r[o + 5]!] ?? ''));
    t.on(Rec.ListenPaused, (id, r, o) => this.listeners.get(id)?._paused(r[o + 2]!, r[o + 3]!));
    t.on(Rec.Blob, () => (this.#blob = t.takeArena()));
    t.on(Rec.Datagram, (id, r, o) => this.udps.get(id)?._message(this.#blob!, r, o));
    t.on(Rec.UdpDrain, (id) => this.udps.get(id)?._drain());
    t.on(Rec.Dialer, (id) => this.dialers.get(id)?._done());
  }
}
