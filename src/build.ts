// What the loaded addon was built for: its poller and the fast calls it uses. Programs need not
// care (every primitive works on every build); tests and benchmarks say which build they ran.
import { native } from './native.js';

/** The loaded addon's build (native/platform.h decides it; docs/platforms.md tabulates it). */
export interface BuildInfo {
  /** The poller backend: epoll (Linux) or kqueue (FreeBSD, macOS; on Linux over libkqueue). */
  poller: 'epoll' | 'kqueue';
  /** A kqueue build over libkqueue's emulation on Linux (npm run test:kqueue). */
  libkqueue: boolean;
  /** Built with IAPP_PORTABLE: the portable fallback of every Linux-only call. */
  portable: boolean;
  /** Which fast calls it uses; where false, the portable fallback runs. */
  calls: { msgTrunc: boolean; splice: boolean; ioUring: boolean; copyFileRange: boolean; mmsg: boolean };
  /** The syscall a refused registration names in its error: 'epoll_ctl' or 'kevent'. */
  pollctl: string;
}

declare module './native.js' {
  interface Addon {
    build: BuildInfo;
  }
}

/** The loaded addon's build. */
export function buildInfo(): BuildInfo {
  return native.build;
}
