// The loop module of bench/servers/iapp-fairness.mjs: one loop thread kept busy with native work
// while it measures how late its own 10 ms interval timer fires. The main thread drives it:
//   'ping'   (call)  answers at once with loop.now(): the main thread times these round trips
//   'open'   (call)  push: connects `conns` sockets to the C sink at data.peerPort; resolves with
//                    the count. The sockets are all open before any byte is pushed.
//   'listen' (call)  sink and proxy: listens on 127.0.0.1 port 0 and resolves with the port; the
//                    C push client connects there. Once every connection is there (proxy: and
//                    its upstream connection to the C sink at data.peerPort), the loop starts
//                    measuring and posts 'loaded' { t0, budgetUs } to the main thread.
//   'go'     (call)  push: starts pushing `size`-byte chunks on every socket and starts measuring;
//                    idle: starts measuring with no load. Resolves with { t0, budgetUs }.
//   'stop'   (call)  takes the end snapshot, stops the timer, destroys the sockets (the load ends
//                    with them) and resolves with the figures (see `figures`).
// Measuring: at t0 (loop.now(), CLOCK_MONOTONIC ns) the loop snapshots its stats and arms an
// interval timer whose periods are due at exactly t0 + k * 10 ms (an absolute first deadline, so
// the due times do not depend on when the arming reached the native timer set). Each callback
// notes which periods it stands for (more than one, `expirations`, when it is late by more than
// a period) and when it ran. Only periods due inside the main thread's window (sent with 'stop')
// count: a callback's lateness is its time minus the due time of the oldest of its periods in
// the window; periods due in it that have not fired when 'stop' runs count at their age then
// (a lower bound). Throughput: stats bytes between the
// first timer callback after the warm-up (or t0) and 'stop'.
const PERIOD_NS = 10_000_000n;

export function setup(loop, { data }) {
  const { kase, conns, size, peerPort, warmS, quiet } = data;
  const sockets = [];
  let listener = null;
  const m = {
    t0: 0n,
    timer: null,
    k: 0, // index of the next period due
    samples: [], // per callback: first period index, expirations, ns since t0
    start: null, // stats snapshot at the first callback due after the warm-up
    s0: null, // stats snapshot at t0
  };
  const warmNs = BigInt(Math.round(warmS * 1e9));
  const snap = () => {
    const st = loop.stats();
    return { t: loop.now(), bytesIn: st.bytesIn, bytesOut: st.bytesOut, turnsCut: st.turnsCut, wakeups: st.wakeups, jsCalls: st.jsCalls };
  };
  const begin = () => {
    m.s0 = snap();
    m.t0 = m.s0.t;
    if (quiet) return m.t0; // throughput alone: no timer (see the run script's --quiet)
    m.timer = loop.timer((expirations) => {
      const now = loop.now();
      const first = m.k + 1; // period index of the oldest period this callback stands for
      m.k += expirations;
      m.samples.push(first, expirations, Number(now - m.t0));
      if (!m.start && now >= m.t0 + warmNs) m.start = snap();
    });
    m.timer.armInterval(10, { first: { at: m.t0 + PERIOD_NS } });
    return m.t0;
  };
  const fail = (e) => {
    // A peer that goes away mid-run is the harness's business (it checks the bytes); an error
    // on the way in must not pass for a result.
    loop.post('main', 'failed', `${e?.code ?? ''} ${e?.message ?? e}`);
  };

  // When it ran: the main thread splits the round trip into the way there and the way back.
  loop.handle('ping', () => String(loop.now()));

  loop.handle('open', async () => {
    const all = [];
    for (let i = 0; i < conns; i++) all.push(loop.connect({ host: '127.0.0.1', port: peerPort, mode: 'sink' }).then((s) => sockets.push(s)));
    await Promise.all(all);
    return sockets.length;
  });

  loop.handle('listen', () => {
    let ready = 0;
    const loaded = () => {
      if (++ready === conns) loop.post('main', 'loaded', { t0: String(begin()), budgetUs: loop.turnBudgetUs });
    };
    if (kase === 'sink') {
      listener = loop.listen({ host: '127.0.0.1', port: 0, mode: 'sink' }, (s) => {
        sockets.push(s);
        loaded();
      });
    } else {
      // Both sides paused: nothing is read into JS before the proxy owns the pair.
      listener = loop.listen({ host: '127.0.0.1', port: 0, mode: 'paused' }, async (a) => {
        sockets.push(a);
        let b;
        try {
          b = await loop.connect({ host: '127.0.0.1', port: peerPort, mode: 'paused' });
        } catch (e) {
          fail(e);
          return;
        }
        sockets.push(b);
        loop.proxy(a, b).catch(() => {}); // ends with an error when 'stop' destroys the pair
        loaded();
      });
    }
    return listener.port;
  });

  loop.handle('go', () => {
    if (kase === 'push') {
      const chunk = Buffer.alloc(size, 0x61);
      for (const s of sockets) s.push(chunk);
    }
    return { t0: String(begin()), budgetUs: loop.turnBudgetUs };
  });

  loop.handle('stop', ({ windowStartNs, windowEndNs }) => {
    const end = snap();
    m.timer?.close();
    listener?.close();
    for (const s of sockets) s.destroy();
    return figures(m, end, BigInt(windowStartNs), BigInt(windowEndNs));
  });
  return {};
}

/**
 * What 'stop' returns (times in ms, relative to t0 where they are instants):
 *   late     per callback standing for a period due inside the window: its time minus the due
 *            time of the oldest such period
 *   pending  periods due inside the window not yet fired at 'stop', at their age then
 *   missed   periods due inside the window that a callback covered along with an older one
 *   span     { fromMs, toMs, bytesIn, bytesOut, turnsCut, wakeups, jsCalls } between the start
 *            snapshot (the first callback after the warm-up, or t0 if that one came less than
 *            half a window before 'stop') and 'stop'
 */
function figures(m, end, ws, we) {
  const P = Number(PERIOD_NS);
  // Period k is due at t0 + k * P; the window holds periods lo..hi.
  const lo = Math.max(1, Math.ceil(Number(ws - m.t0) / P));
  const hi = Math.floor(Number(we - m.t0) / P);
  const late = [];
  let missed = 0;
  const s = m.samples;
  for (let i = 0; i < s.length; i += 3) {
    const a = Math.max(s[i], lo);
    const b = Math.min(s[i] + s[i + 1] - 1, hi);
    if (a > b) continue;
    late.push((s[i + 2] - a * P) / 1e6);
    missed += b - a;
  }
  const endNs = Number(end.t - m.t0);
  const pending = [];
  for (let k = Math.max(m.k + 1, lo); k <= hi && k * P <= endNs; k++) pending.push((endNs - k * P) / 1e6);
  // A start snapshot too close to the end (a loop without a budget runs callbacks seconds
  // apart) says little: then from t0.
  const a = m.start && end.t - m.start.t >= (we - ws) / 2n ? m.start : m.s0;
  return {
    t0: String(m.t0),
    late,
    pending,
    missed,
    callbacks: s.length / 3,
    stopAtMs: endNs / 1e6,
    span: {
      fromMs: Number(a.t - m.t0) / 1e6,
      toMs: endNs / 1e6,
      bytesIn: end.bytesIn - a.bytesIn,
      bytesOut: end.bytesOut - a.bytesOut,
      turnsCut: end.turnsCut - a.turnsCut,
      wakeups: end.wakeups - a.wakeups,
      jsCalls: end.jsCalls - a.jsCalls,
    },
  };
}
