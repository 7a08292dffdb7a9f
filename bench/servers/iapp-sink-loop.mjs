// The loop module of bench/servers/iapp-sink.mjs: every loop thread listens on the same port. In
// sink mode there is no connection handler, so sockets are accepted and drained natively with no
// JavaScript per connection; in data mode every byte reaches JavaScript (one call per loop wake),
// in fresh Buffers or, with --borrow, in the loop's one lent arena (onData(fn, { borrow: true })).
export function setup(loop, { data }) {
  const options = { host: '127.0.0.1', port: data?.port ?? 0, mode: data?.mode ?? 'sink', ...(data?.lowWaterMark ? { lowWaterMark: data.lowWaterMark } : {}) };
  const borrow = { borrow: data?.borrow === true };
  const listener = options.mode === 'data' ? loop.listen(options, (socket) => socket.onData(() => {}, borrow)) : loop.listen(options);
  return { port: listener.port };
}
