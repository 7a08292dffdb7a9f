// A loop module: opens data.connections sockets to data.port and writes data.size-byte buffers,
// honouring backpressure, for data.durationMs; then ends them and reports what it sent.
export async function setup(loop, { data }) {
  const chunk = Buffer.alloc(data.size, 0x61);
  const deadline = Date.now() + data.durationMs;
  const one = async () => {
    const s = await loop.connect({ host: '127.0.0.1', port: data.port });
    const closed = s.closed;
    const pump = () => {
      if (Date.now() >= deadline) return s.end();
      while (s.write(chunk)) if (Date.now() >= deadline) return s.end();
      s.onDrain(pump);
    };
    pump();
    const info = await closed;
    return { sent: info.bytesWritten, unsent: info.unsent, error: info.error?.code };
  };
  const results = await Promise.all(Array.from({ length: data.connections }, one));
  return {
    txBytes: results.reduce((a, r) => a + r.sent, 0),
    unsent: results.reduce((a, r) => a + r.unsent, 0),
    errors: results.filter((r) => r.error).map((r) => r.error),
  };
}
