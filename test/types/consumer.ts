// A program written against the published types, as a user writes one: `import … from 'iapp'`
// (resolved through package.json's "exports", as from node_modules). test/types.test.ts compiles
// it with tsc; it is never run. The `@ts-expect-error` lines are the other half of the contract:
// internal members must not type-check from outside, and tsc fails if one of them does.
import {
  connectionCounts,
  createRuntime,
  IappError,
  listenFds,
  listenSocket,
  liveHandles,
  MEMBERSHIP,
  type CloseInfo,
  type DialerStats,
  type Loop,
  type LoopInfo,
  type LoopStats,
  type MembershipEvent,
  type ProxyError,
  type SendFileError,
  type Socket,
} from 'iapp';

export async function setup(loop: Loop, info: LoopInfo): Promise<{ port: number | undefined }> {
  const listener = loop.listen({ host: '127.0.0.1', port: 0, mode: 'data' }, (socket: Socket) => {
    socket.onData((chunk: Buffer) => {
      if (!socket.write(chunk)) socket.pause().onDrain(() => socket.resume());
    });
    socket.onClose((c: CloseInfo) => void (c.error instanceof IappError && c.error.code));
  });
  const upstream = await loop.connect({ host: '127.0.0.1', port: 7000, timeout: 1000 });
  upstream.push(Buffer.alloc(512));
  const sent: number = (await upstream.closed).bytesWritten;

  const dialer = loop.dial({ targets: [{ host: '127.0.0.1', port: 7000 }], count: 4, rate: 100, then: 'hold' });
  const ds: DialerStats = dialer.stats();
  const udp = loop.udp({ host: '127.0.0.1', port: 0, mode: 'sink' });
  const tick = loop.timer({ priority: 1 }, (expirations: number) => void expirations);
  tick.armInterval(1000);
  tick.arm({ at: loop.now('realtime') + 1_000_000_000n });
  const child = loop.spawn('true', [], { stdio: 'ignore' });
  const { code, signal } = await child.exited;
  const file = await loop.open('/tmp/x', { flags: 'w+' });
  await file.write('x', 0);
  const copied: number = await loop.copyFile(file, '/tmp/y', { length: 1 });
  try {
    await upstream.sendFile(file, { offset: 0 });
  } catch (e) {
    const bytesSent: number = (e as SendFileError).bytesSent;
    void bytesSent;
  }
  try {
    await loop.proxy(upstream, upstream);
  } catch (e) {
    void (e as ProxyError).aToB;
  }
  loop.handle('get', (key: string) => key.length);
  loop.subscribe(MEMBERSHIP, (ev: MembershipEvent) => void ev.thread);
  const answer: unknown = await loop.call(0, 'get', 'a', { timeoutMs: 1000 });
  const stats: LoopStats = loop.setTurnBudget(250).stats();
  void [sent, ds.peak, udp.datagramsIn, code, signal, copied, answer, stats.turnsCut, info.index];

  // Internal members are not part of the published types.
  // @ts-expect-error native is internal
  void loop.native;
  // @ts-expect-error handlerError is internal
  loop.handlerError(new Error('x'));
  // @ts-expect-error acceptError is internal
  void loop.acceptError;
  // @ts-expect-error listenerClosed is internal
  loop.listenerClosed(listener);
  // @ts-expect-error _ready is internal
  loop._ready();
  // @ts-expect-error the socket's record handlers are internal
  upstream._data(Buffer.alloc(1));
  // @ts-expect-error fromErrno is internal
  IappError.fromErrno(111, 'connect');
  return { port: listener.port };
}

export async function main(): Promise<void> {
  const rt = await createRuntime({ module: new URL(import.meta.url), threads: 2, turnBudgetUs: 500 });
  rt.on('exit', ({ thread, error }: { thread: number; error?: Error }) => void (error && thread));
  rt.closeOnSignals({ timeoutMs: 5000 });
  const { open, peak } = connectionCounts();
  const passed = listenFds();
  const sock = listenSocket({ host: '127.0.0.1', port: 0 });
  sock.close();
  const live = liveHandles();
  const summary = await rt.close({ timeoutMs: 1000 });
  void [open, peak, passed, live.sockets, summary.reset, rt.results, rt.limits.hard];
  // @ts-expect-error the runtime's start is internal (use createRuntime)
  await rt._start({ module: 'x' });
}
