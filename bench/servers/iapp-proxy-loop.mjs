// The loop module of bench/servers/iapp-proxy.mjs: listen, and per accepted socket `a` connect to
// the target and loop.proxy(a, b). Both sockets start paused, so nothing is read into JavaScript
// before the proxy takes them (the pipe decides when each is read). Counters in stats().app:
// proxies finished, bytes each way, failures by error code.
export function setup(loop, { data }) {
  const st = { proxied: 0, aToB: 0, bToA: 0, failed: 0, errors: {} };
  const fail = (e) => {
    st.failed++;
    const code = e?.code ?? 'unknown';
    st.errors[code] = (st.errors[code] ?? 0) + 1;
  };
  loop.onStats(() => st);
  const listener = loop.listen({ host: '127.0.0.1', port: data.port, mode: 'paused' }, async (a) => {
    let b;
    try {
      b = await loop.connect({ host: data.target.host, port: data.target.port, mode: 'paused' });
    } catch (e) {
      fail(e);
      a.destroy({ reset: true });
      return;
    }
    try {
      const r = await loop.proxy(a, b);
      st.proxied++;
      st.aToB += r.aToB;
      st.bToA += r.bToA;
    } catch (e) {
      fail(e);
      st.aToB += e.aToB ?? 0;
      st.bToA += e.bToA ?? 0;
    }
  });
  return { port: listener.port };
}
