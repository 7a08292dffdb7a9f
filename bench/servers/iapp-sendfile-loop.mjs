// The loop module of bench/servers/iapp-sendfile.mjs: the file is opened once per loop and closed
// with the loop; each connection gets `length` bytes from offset 0 with socket.sendFile()
// (sendfile(2) from the page cache, no bytes through JavaScript), then end(). Counters in
// stats().app.
export async function setup(loop, { data }) {
  const file = await loop.open(data.path);
  const { size } = await file.stat();
  const length = data.length ?? size;
  if (length > size) throw new RangeError(`--length ${length} is more than ${data.path}'s ${size} bytes`);
  loop.onClose(() => file.close());
  const st = { served: 0, txBytes: 0, failed: 0, errors: {} };
  loop.onStats(() => st);
  const listener = loop.listen({ host: '127.0.0.1', port: data.port }, async (socket) => {
    try {
      const n = await socket.sendFile(file, { offset: 0, length }); // (not `st.txBytes += await`: that reads the sum before the await)
      st.txBytes += n;
      st.served++;
      socket.end();
    } catch (e) {
      st.failed++;
      st.txBytes += e.bytesSent ?? 0;
      st.errors[e.code ?? 'unknown'] = (st.errors[e.code ?? 'unknown'] ?? 0) + 1;
      socket.destroy();
    }
  });
  return { port: listener.port, size, length };
}
