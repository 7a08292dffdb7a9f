// The messaging scenario's payload, the same for every system: 16 bytes (Uint8Array(16)), or with
// BENCH_MESSAGE_PAYLOAD=object a small object `{ i: 1, s: 'abc' }` (both systems clone it).
export const PAYLOADS = { bytes: 'Uint8Array(16)', object: "{ i: 1, s: 'abc' }" };

export function benchPayload() {
  return process.env.BENCH_MESSAGE_PAYLOAD === 'object' ? { i: 1, s: 'abc' } : new Uint8Array(16).fill(7);
}
