// How messages travel between threads: the native inboxes' calls and what they return, the
// message types and header layout of native/inbox.h, and payload encodings. A payload is bytes
// in an inbox with a flag saying how to read them back: bytes go as they are; common small
// values and plain JSON-able objects skip the v8 serializer, which costs about a microsecond a
// value; anything else is structured-cloned. src/messaging.ts builds endpoints on this.
import { endianness } from 'node:os';
import { deserialize, serialize } from 'node:v8';

import { PostResult } from './native.js';
import { plainJson } from './plain.js';

// The messaging native calls: inboxes, groups, names.
declare module './native.js' {
  interface NativeLoop {
    attach(group: number, self: number): void;
    announce(): void;
    /** Microseconds of inbox polling after activity before sleeping (0: never). */
    setBusyPoll(us: number): void;
    setInboxPriority(priority: number): void;
    /** 0, -1 inbox full, -2 target exited (or this endpoint is closed), -3 no such endpoint. */
    post(target: number, type: number, name: number, seq: number, flags: number, payload: Uint8Array | undefined, bounded: boolean): number;
    cancel(target: number, seq: number): boolean;
    postBatch(target: number, staging: Uint8Array, length: number, count: number): number;
    gauges(): ArrayBuffer;
    subscribe(topic: number, on: boolean): void;
    broadcast(topic: number, seq: number, flags: number, payload: Uint8Array | undefined, reached: Float64Array, bounded: boolean): number[];
    members(): number[];
  }
  interface Addon {
    createGroup(size: number, maxMessages: number, maxBytes: number): number;
    releaseGroup(id: number): number;
    intern(name: string): number;
    internedName(id: number): string;
  }
}

// Message types; mirrors native/inbox.h.
export const enum Msg {
  Post = 1,
  Call = 2,
  Reply = 3,
  ReplyError = 4,
  Broadcast = 5,
  Space = 6,
  Started = 7,
  Exited = 8,
  Subscribed = 9,
  Unsubscribed = 10,
}
/** What post() returns (besides 0): the inbox is full, the target exited, out of memory. */
export const FULL = PostResult.Full;
export const EXITED = PostResult.Exited;
export const NO_MEMORY = PostResult.NoMemory;
// Posts are staged per target and handed over in one native call per target and turn (at the
// next microtask, or when the staging buffer fills): a native call per message would cost more
// than everything else a post does. The layout is native/inbox.h's MsgHeader, in host order.
export const HEADER = 24;
export const STAGE_BYTES = 64 * 1024;
export const DIRECT_BYTES = 8 * 1024; // bigger payloads go straight to the inbox (after what is staged)

/** Host byte order: message headers and numbers are written in it (one host, one order). */
export const LE = endianness() === 'LE';

export const enum Enc {
  None = 0,
  Bytes = 1,
  Clone = 2,
  // Common small values skip the v8 serializer (which costs about a microsecond a value).
  Number = 3,
  String = 4,
  True = 5,
  False = 6,
  Null = 7,
  // Small plain objects and arrays as JSON text (src/plain.ts says when that equals a clone).
  Json = 8,
}

const num = new Float64Array(1);
const numBytes = new Uint8Array(num.buffer);

const MAX_PAYLOAD = 2 ** 31 - 1;

/**
 * What a payload travels as: bytes, or text that is written as UTF-8 straight into the staging
 * buffer (a Buffer made for it first would cost as much as the JSON text itself).
 */
export type Encoded = Uint8Array | string | undefined;

// Buffer's own UTF-8 methods, without toString()/write()'s argument checks, which cost as much
// as the copy for a message's few bytes (Node has them on every line we support; the fallbacks
// keep this working if one ever goes).
type Utf8 = { utf8Write?(s: string, at: number, max: number): number; utf8Slice?(from: number, to: number): string };
const proto = Buffer.prototype as unknown as Utf8;
const utf8Write = proto.utf8Write ?? function (this: Buffer, s: string, at: number, max: number) { return this.write(s, at, max); };
const utf8Slice = proto.utf8Slice ?? function (this: Buffer, from: number, to: number) { return this.toString('utf8', from, to); };

const isWellFormed: (this: string) => boolean =
  (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed ??
  function (this: string) {
    return !/\p{Surrogate}/u.test(this);
  };

/** Writes `s` as UTF-8 into `buf` at `at` (at most `max` bytes); returns the bytes written. */
export function writeText(buf: Buffer, s: string, at: number, max: number): number {
  return utf8Write.call(buf, s, at, max);
}

/** The UTF-8 text in `buf` from `from` to `to`. */
export function readText(buf: Buffer, from: number, to: number): string {
  return utf8Slice.call(buf, from, to);
}

/** Bytes for the calls that take the payload as it is (direct posts, broadcasts). */
export function bytesOf(e: Encoded): Uint8Array | undefined {
  return typeof e === 'string' ? Buffer.from(e) : e;
}

/** The flag and bytes (or text) of `payload`; throws TypeError/RangeError for what cannot travel. */
export function encode(payload: unknown): [Enc, Encoded] {
  if (payload === undefined) return [Enc.None, undefined];
  if (payload instanceof Uint8Array) {
    if (payload.byteLength > MAX_PAYLOAD) throw new RangeError(`a message payload is limited to 2 GiB, got ${payload.byteLength} bytes`);
    return [Enc.Bytes, payload];
  }
  switch (typeof payload) {
    case 'number':
      num[0] = payload;
      return [Enc.Number, numBytes]; // copied into the staging buffer right away
    case 'string':
      // UTF-8 cannot carry a lone surrogate (it would arrive as U+FFFD); JSON escapes it.
      return isWellFormed.call(payload) ? [Enc.String, payload] : [Enc.Json, JSON.stringify(payload)];
    case 'boolean':
      return [payload ? Enc.True : Enc.False, undefined];
  }
  if (payload === null) return [Enc.Null, undefined];
  const json = plainJson(payload);
  if (json !== undefined) return [Enc.Json, json];
  let bytes: Buffer;
  try {
    bytes = serialize(payload);
  } catch (e) {
    throw new TypeError(
      `a message payload must be bytes or a structured-cloneable value (${(e as Error).message}); ` +
        'functions, symbols and SharedArrayBuffers do not travel in messages: share a SharedArrayBuffer through createRuntime({ data })',
    );
  }
  if (bytes.byteLength > MAX_PAYLOAD) throw new RangeError(`a message payload is limited to 2 GiB, got ${bytes.byteLength} bytes serialized`);
  return [Enc.Clone, bytes];
}

/** Whether a payload of encoding `flags` is read back as text (see `decode`). */
export function isText(flags: number): boolean {
  return flags === Enc.Json || flags === Enc.String;
}

/** The value `bytes` of encoding `flags` stand for; text encodings come as the text itself. */
export function decode(flags: number, bytes: Buffer | string | undefined): unknown {
  switch (flags) {
    case Enc.Bytes:
      return bytes;
    case Enc.Clone:
      return deserialize(bytes as Buffer);
    case Enc.Json:
      return JSON.parse(bytes as string);
    case Enc.Number:
      return LE ? (bytes as Buffer).readDoubleLE(0) : (bytes as Buffer).readDoubleBE(0);
    case Enc.String:
      return bytes ?? '';
    case Enc.True:
      return true;
    case Enc.False:
      return false;
    case Enc.Null:
      return null;
  }
  return undefined;
}
