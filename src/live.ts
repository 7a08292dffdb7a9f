// Counts of live native objects, for leak checks in tests and for users chasing a leak.
import { native } from './native.js';

/** Native objects alive in this process, all loops together. */
export interface LiveHandles {
  /** Loops opened and not yet closed (a runtime has one per thread and one on the main thread). */
  loops: number;
  sockets: number;
  listeners: number;
  udp: number;
  /** Child process watches. */
  children: number;
  /** Open files, including ranges queued by sendFile() that still hold a closed File's fd. */
  files: number;
  pipes: number;
  /** Message groups (one per runtime). */
  groups: number;
  /** Disk pool threads started so far; they stay, parked, until the process exits. */
  diskThreads: number;
}

declare module './native.js' {
  interface Addon {
    liveHandles(): LiveHandles;
  }
}

/** What is alive now. Every count but `diskThreads` returns to its start once all runtimes are closed. */
export function liveHandles(): LiveHandles {
  return native.liveHandles();
}
