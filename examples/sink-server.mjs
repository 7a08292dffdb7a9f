// A loop module: every loop thread listens on the same port and discards what it receives natively.
export function setup(loop, { data }) {
  const listener = loop.listen({ host: '127.0.0.1', port: data?.port ?? 0, mode: data?.mode ?? 'sink' }, (socket) => {
    if (data?.mode === 'data') socket.onData(() => {}); // bytes reach JS, one call per loop wake
  });
  return { port: listener.port };
}
