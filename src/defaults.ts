// The library's default values, each written once. Options' TSDoc says them in words for
// readers; the code takes them from here. (The turn budget is native/loop.h's, read from the addon.)
import { native } from './native.js';

/** A socket's write queue size at which `write()` returns false (`SocketOptions.highWaterMark`). */
export const SOCKET_HIGH_WATER_MARK = 256 * 1024;
/** A UDP socket's queued send bytes at which `send` returns false (`UdpOptions.highWaterMark`). */
export const UDP_HIGH_WATER_MARK = 1 << 20;
/** Kernel accept queue length (`ListenOptions.backlog`, `listenSocket`). */
export const LISTEN_BACKLOG = 4096;
/** `loop.connect()`'s `timeout`, ms. */
export const CONNECT_TIMEOUT_MS = 30_000;
/** `loop.dial()`'s connect `timeoutMs`. */
export const DIAL_TIMEOUT_MS = 10_000;
/** `call()`'s `timeoutMs`. */
export const CALL_TIMEOUT_MS = 30_000;
/** `createRuntime()`'s `startTimeoutMs`. */
export const START_TIMEOUT_MS = 30_000;
/** The grace period of a graceful close (`loop.close`, `runtime.close`, `closeOnSignals`), ms. */
export const CLOSE_TIMEOUT_MS = 5000;
/** Bounds of every thread's inbox (`InboxOptions`). */
export const INBOX_MESSAGES = 65536;
export const INBOX_BYTES = 64 * 1024 * 1024;
/** Native work per loop turn, µs (`turnBudgetUs`; defined once, in native/loop.h). */
export const TURN_BUDGET_US = native.constants.defaultTurnBudgetUs;
