export { createRuntime, Runtime } from './runtime.js';
export type { CloseSummary, FileLimits, RuntimeOptions, ThreadExit, ThreadStats } from './runtime.js';
export { Loop } from './loop.js';
export type {
  ConnectOptions,
  ListenOptions,
  LoopCloseSummary,
  LoopInfo,
  LoopStats,
  ReadModeName,
  SocketOptions,
  UdpOptions,
} from './loop.js';
export { UdpSocket } from './udp.js';
export type { UdpAddress, UdpTarget } from './udp.js';
export { Dialer } from './dialer.js';
export type { DialOptions, DialerStats } from './dialer.js';
export { Socket } from './socket.js';
export type { CloseInfo } from './socket.js';
export { Listener } from './listener.js';
export { IappError } from './errors.js';
export { listenSocket } from './listen-socket.js';
export type { ListeningSocket } from './listen-socket.js';
export { listenFds, socketKind, LISTEN_FDS_START, type ActivatedSocket } from './activation.js';
export { MEMBERSHIP } from './messaging.js';
export type { BroadcastResult, CallOptions, InboxOptions, MembershipEvent, MessageHandler, PostHandle, ThreadId } from './messaging.js';
export type { SendFileError, SocketToken } from './socket.js';
export { File, confinement, setConfinement } from './file.js';
export { FileCache } from './file-cache.js';
export { faultCounts, faultInjectionEnabled, injectFaults, parseFaults } from './faults.js';
export type { FaultRule, FaultSite } from './faults.js';
export { liveHandles } from './live.js';
export { buildInfo } from './build.js';
export type { BuildInfo } from './build.js';
export { connectionCounts, setConnectionLimits } from './conns.js';
export type { ConnectionCounts, ConnectionLimits } from './conns.js';
export type { LiveHandles } from './live.js';
export type { Confinement, CopyOptions, FileStat, OpenFlags, OpenOptions } from './file.js';
export type { CachedFile, FileCacheOptions, FileCacheStats, FileOpener } from './file-cache.js';
export type { PipeError, PipeResult, ProxyError, ProxyResult } from './pipe.js';
export { Timer } from './timer.js';
export type { ClockName, Duration, TimerCallback, TimerOptions, When } from './timer.js';
export { ChildWatch } from './child.js';
export type { ChildExit, SpawnedChild, SpawnOptions } from './child.js';
