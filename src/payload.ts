// How a message payload travels: as bytes in a native inbox, with a flag saying how to read them
// back. Bytes go as they are; common small values and plain JSON-able objects skip the v8
// serializer, which costs about a microsecond a value; anything else is structured-cloned.
import { endianness } from 'node:os';
import { deserialize, serialize } from 'node:v8';

import { plainJson } from './plain.js';

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

/** The flag and bytes of `payload`; throws TypeError/RangeError for what cannot travel. */
export function encode(payload: unknown): [Enc, Uint8Array | undefined] {
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
      return [Enc.String, Buffer.from(payload)];
    case 'boolean':
      return [payload ? Enc.True : Enc.False, undefined];
  }
  if (payload === null) return [Enc.Null, undefined];
  const json = plainJson(payload);
  if (json !== undefined) return [Enc.Json, Buffer.from(json)];
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

/** The value `bytes` of encoding `flags` stand for. */
export function decode(flags: number, bytes: Buffer | undefined): unknown {
  switch (flags) {
    case Enc.Bytes:
      return bytes;
    case Enc.Clone:
      return deserialize(bytes!);
    case Enc.Json:
      return JSON.parse(bytes!.toString());
    case Enc.Number:
      return LE ? bytes!.readDoubleLE(0) : bytes!.readDoubleBE(0);
    case Enc.String:
      return bytes === undefined ? '' : bytes.toString();
    case Enc.True:
      return true;
    case Enc.False:
      return false;
    case Enc.Null:
      return null;
  }
  return undefined;
}
