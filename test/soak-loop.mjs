// What every loop thread of the soak (test/soak.mjs) runs. info.data.role is 'server' (an echo
// server with backpressure) or 'client' (connection churn against it); both roles also post
// numbered messages to the other loops of their runtime and keep random timers busy.
//
// Everything here is driven by the main thread through calls (start, stopClients, quiesce,
// stopPump, verifyMessages, finishTimers, report); counters reach main through loop.onStats.
// Each check that fails is recorded with enough detail to find the case again.

import { MEMBERSHIP } from '../dist/src/index.js';

// Failures kept with full detail; beyond that only counted, so a broken run stays readable and
// bounded in memory.
const KEEP_FAILURES = 20;

/** A small seeded generator (xorshift on 32 bits), so a failing run can be replayed with --seed. */
function prng(seed) {
  let x = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  for (let i = 0; i < 8; i++) next(); // spread small seeds
  return {
    u32: next,
    /** [0, 1) */
    float: () => next() / 2 ** 32,
    /** integer in [lo, hi] */
    int: (lo, hi) => lo + Math.floor((next() / 2 ** 32) * (hi - lo + 1)),
  };
}

export function setup(loop, info) {
  const d = info.data;
  const rnd = prng((d.seed ^ Math.imul(info.index + 1, 0x85ebca6b) ^ (d.role === 'server' ? 0x5bd1e995 : 0)) >>> 0);
  const failures = [];
  let failureCount = 0;
  const fail = (kind, detail) => {
    failureCount++;
    if (failures.length < KEEP_FAILURES) failures.push({ kind, role: d.role, thread: info.index, ...detail });
  };

  const peers = [...Array(info.threads).keys()].filter((i) => i !== info.index);
  const timers = timerStorm(loop, rnd, fail, d);
  const msg = messaging(loop, peers, rnd, fail, d, timers.poke);
  const role = d.role === 'server' ? echoServer(loop, fail, d, timers.poke) : churnClient(loop, rnd, fail, d, timers.poke);

  // This loop's V8 heap goes with the counters: RSS growth is read against it at the end.
  const heap = () => ({ heapTotal: process.memoryUsage().heapTotal });
  loop.onStats(() => ({ ...role.counters(), ...msg.counters(), ...timers.counters(), ...heap() }));
  loop.handle('start', () => {
    msg.start();
    timers.start();
    role.start?.();
  });
  loop.handle('report', () => ({
    ...role.counters(),
    ...msg.counters(),
    ...timers.counters(),
    ...heap(),
    failures,
    failureCount,
  }));
  loop.handle('stopPump', () => msg.stop());
  loop.handle('verifyMessages', () => msg.verify());
  loop.handle('finishTimers', (graceMs) => timers.finish(graceMs));
  loop.onClose(() => {
    msg.close();
    timers.close();
  });
  return role.result?.();
}

// ---------------------------------------------------------------------------------------------
// Server: echo with backpressure; every socket's bytes are reconciled at its close.

function echoServer(loop, fail, d, poke) {
  const c = {
    accepted: 0,
    open: 0,
    closedClean: 0,
    closedError: {},
    srvRead: 0,
    srvWritten: 0,
    srvUnsent: 0,
    // Bytes a write() refused because the socket had already failed natively in this batch
    // (documented: write throws ERR_SOCKET_CLOSED once the socket is closed or ended).
    srvRefused: 0,
  };
  let quiet;
  let reads = 0;
  // How the server's side ends after the client's end. 'auto': the library's default
  // (allowHalfOpen: false), where the socket ends itself after the end handler, once the bytes
  // read with the FIN went through onData (this soak found that it used to end first and lose
  // their echo). 'manual': allowHalfOpen and end() from onEnd.
  const manual = d.halfClose === 'manual';
  const listener = loop.listen({ host: '127.0.0.1', port: 0, name: 'soak', allowHalfOpen: manual }, (s) => {
    c.accepted++;
    c.open++;
    let jsRead = 0;
    let refused = 0;
    s.onData((chunk) => {
      jsRead += chunk.length;
      if ((++reads & 63) === 0) poke();
      let ok;
      try {
        ok = s.write(chunk);
      } catch (e) {
        if (e.code !== 'ERR_SOCKET_CLOSED') throw e;
        refused += chunk.length;
        return;
      }
      if (!ok) s.pause();
    });
    s.onDrain(() => s.resume());
    if (manual) s.onEnd(() => s.end());
    s.onClose((ci) => {
      c.open--;
      c.srvRead += ci.bytesRead;
      c.srvWritten += ci.bytesWritten;
      c.srvUnsent += ci.unsent;
      c.srvRefused += refused;
      if (ci.error) c.closedError[ci.error.code] = (c.closedError[ci.error.code] ?? 0) + 1;
      else c.closedClean++;
      // Every byte read was handed to JavaScript, and every byte JavaScript got was either sent
      // back, or counted as unsent when the socket failed, or refused by a closed socket.
      if (ci.bytesRead !== jsRead) fail('server-read', { detail: `socket ${s.id}: closeInfo.bytesRead ${ci.bytesRead} but onData got ${jsRead}` });
      if (jsRead !== ci.bytesWritten + ci.unsent + refused)
        fail('server-echo', {
          detail: `socket ${s.id}: read ${jsRead} ≠ written ${ci.bytesWritten} + unsent ${ci.unsent} + refused ${refused} (error ${ci.error?.code ?? 'none'})`,
        });
      if (!ci.error && ci.unsent !== 0) fail('server-unsent', { detail: `socket ${s.id}: clean close with ${ci.unsent} bytes unsent` });
      // A refused write is only legitimate on a socket that failed: on a clean close, it is an
      // echo its client never got.
      if (!ci.error && refused !== 0) fail('server-refused', { detail: `socket ${s.id}: closed cleanly, but write() refused ${refused} of the ${jsRead} bytes read` });
      if (c.open === 0) quiet?.();
    });
  });
  // Resolves once no server socket is open (main calls it after every client has finished).
  loop.handle('quiesce', () => (c.open === 0 ? undefined : new Promise((r) => (quiet = r))));
  loop.handle('openSockets', () => c.open);
  return {
    counters: () => ({ ...c, closedError: { ...c.closedError } }),
    result: () => ({ port: listener.port }),
  };
}

// ---------------------------------------------------------------------------------------------
// Client: opens connections with bounded concurrency; each picks an outcome at random.

function churnClient(loop, rnd, fail, d, poke) {
  const c = {
    opened: 0,
    active: 0,
    connectFailed: {},
    echo: 0, // (a) written with backpressure, then end(): got everything back
    early: 0, // (b) everything queued and end() at once, read afterwards: got everything back
    reset: 0, // (c) destroyed mid-stream
    bad: 0, // a connection whose bytes did not reconcile (details in failures)
    cltWritten: 0, // what the kernel accepted from the clients (closeInfo.bytesWritten)
    cltEchoed: 0, // what came back to the clients
    cleanSent: 0, // of which on connections that had to get everything back
    cleanEchoed: 0,
  };
  // One pool of random bytes per loop; each connection sends a slice of it at a random offset,
  // so nothing is generated per connection and every byte received can be compared in place.
  const pool = Buffer.allocUnsafe(d.maxSize * 2 + 1);
  for (let i = 0; i + 4 <= pool.length; i += 4) pool.writeUInt32LE(rnd.u32(), i);
  const limit = Math.max(1, Math.floor(d.concurrency / loop.threads) + (loop.index < d.concurrency % loop.threads ? 1 : 0));
  const live = new Set(); // connections in progress, for the stuck report
  let stopping = false;
  let idle;
  let reads = 0;

  // Sizes are log-uniform from 1 byte to maxSize (and sometimes 0): many small connections for
  // churn, a few large ones for queues and backpressure.
  const pickSize = () => (rnd.float() < 0.02 ? 0 : Math.min(d.maxSize, Math.floor(Math.exp(rnd.float() * Math.log(d.maxSize + 1)))));

  const fill = () => {
    while (!stopping && c.active < limit) {
      c.active++;
      c.opened++;
      const r = rnd.float();
      const mode = r < 0.6 ? 'echo' : r < 0.85 ? 'early' : 'reset';
      const size = pickSize();
      const off = rnd.int(0, pool.length - size);
      const conn = { mode, size, sent: 0, got: 0, stage: 'connecting' };
      live.add(conn);
      one(conn, pool.subarray(off, off + size))
        .catch((e) => {
          c.bad++;
          fail('client-exception', { mode, size, detail: e.stack ?? String(e) });
        })
        .finally(() => {
          live.delete(conn);
          c.active--;
          if (stopping) {
            if (c.active === 0) idle?.();
          } else fill();
        });
    }
  };

  async function one(conn, data) {
    let s;
    try {
      s = await loop.connect({ host: '127.0.0.1', port: d.port, timeout: 10_000, mode: conn.mode === 'early' ? 'paused' : 'data' });
    } catch (e) {
      c.connectFailed[e.code] = (c.connectFailed[e.code] ?? 0) + 1;
      return;
    }
    conn.stage = 'open';
    const closed = s.closed;
    let mismatch;
    let ended = false;
    const onData = (chunk) => {
      if ((++reads & 63) === 0) poke();
      // Compare in place with what was sent: the first divergence is reported by offset.
      if (mismatch === undefined) {
        if (conn.got + chunk.length > conn.sent) mismatch = `received byte ${conn.sent} but only ${conn.sent} were written`;
        else if (!chunk.equals(data.subarray(conn.got, conn.got + chunk.length))) {
          let i = 0;
          while (chunk[i] === data[conn.got + i]) i++;
          mismatch = `byte ${conn.got + i} differs`;
        }
      }
      conn.got += chunk.length;
    };
    s.onEnd(() => (ended = true));

    if (conn.mode === 'early') {
      // Everything queued natively at once (write() copies it), then the half-close right behind
      // it, before a byte was read: the echo then has to come back through a full queue.
      for (let off = 0; off < data.length; ) {
        const n = Math.min(data.length - off, rnd.int(1, 256 * 1024));
        conn.sent += n;
        s.write(data.subarray(off, off + n));
        off += n;
      }
      s.end();
      conn.stage = 'ended';
      s.onData(onData); // starts reading
    } else {
      s.onData(onData);
      const stopAt = conn.mode === 'reset' ? rnd.int(0, data.length) : data.length;
      let off = 0;
      while (off < stopAt) {
        const n = Math.min(stopAt - off, rnd.int(1, 256 * 1024));
        let ok;
        try {
          ok = s.write(data.subarray(off, off + n));
        } catch (e) {
          // The server closed the connection under us: for (a) that is a failure, reported below
          // with the close info.
          if (e.code !== 'ERR_SOCKET_CLOSED') throw e;
          break;
        }
        conn.sent += n;
        off += n;
        if (!ok) {
          conn.stage = 'drain';
          if (await Promise.race([new Promise((r) => s.onDrain(() => r(false))), closed.then(() => true)])) break;
          conn.stage = 'open';
        }
      }
      if (conn.mode === 'reset') {
        // Half of them right away, half once some echo came back, with or without RST.
        if (rnd.float() < 0.5 && conn.sent > 0 && s.readyState === 'open') {
          conn.stage = 'await-echo';
          const want = rnd.int(1, conn.sent);
          await Promise.race([new Promise((r) => s.onData((b) => (onData(b), conn.got >= want && r()))), closed]);
        }
        s.destroy({ reset: rnd.float() < 0.75 });
      } else {
        s.end();
        conn.stage = 'ended';
      }
    }
    const ci = await closed;
    conn.stage = 'closed';
    c.cltWritten += ci.bytesWritten;
    c.cltEchoed += conn.got;
    const where = { mode: conn.mode, size: conn.size, sent: conn.sent, got: conn.got, local: s.localPort };
    let ok = true;
    const bad = (detail) => {
      ok = false;
      fail('client-bytes', { ...where, detail });
    };
    if (mismatch) bad(mismatch);
    // Every byte given to write() was either taken by the kernel or reported as unsent.
    if (ci.bytesWritten + ci.unsent !== conn.sent) bad(`write() took ${conn.sent} but bytesWritten ${ci.bytesWritten} + unsent ${ci.unsent}`);
    if (ci.bytesRead !== conn.got) bad(`closeInfo.bytesRead ${ci.bytesRead} but onData got ${conn.got}`);
    if (conn.mode === 'reset') {
      if (ok) c.reset++;
    } else {
      c.cleanSent += conn.sent;
      c.cleanEchoed += conn.got;
      if (ci.error) bad(`closed with ${ci.error.code}`);
      if (conn.sent !== data.length) bad(`wrote only ${conn.sent} of ${data.length}`);
      if (conn.got !== data.length) bad(`got ${conn.got} of ${data.length} bytes back`);
      if (!ended) bad('no end from the server');
      if (ok) c[conn.mode]++;
    }
    if (!ok) c.bad++;
  }

  // Stops opening connections; resolves once every connection in progress has closed.
  loop.handle('stopClients', () => {
    stopping = true;
    return c.active === 0 ? undefined : new Promise((r) => (idle = r));
  });
  // What is still open (when stopClients did not finish in time), then reset it.
  loop.handle('abortClients', () => {
    const stuck = [...live].slice(0, 10);
    for (const s of loop.sockets.values()) s.destroy({ reset: true });
    return { count: live.size, stuck };
  });
  return {
    start: fill,
    counters: () => ({ ...c, connectFailed: { ...c.connectFailed } }),
  };
}

// ---------------------------------------------------------------------------------------------
// Messages: every loop posts numbered messages to every other loop of its runtime, on an
// interval timer, as fast as the inbox bound lets it; receivers check each sender's order.

function messaging(loop, peers, rnd, fail, d, poke) {
  const c = { msgsSent: 0, msgsReceived: 0, msgsOutOfOrder: 0, msgsBadPayload: 0, callsOk: 0, callsBad: 0, inboxFull: 0 };
  const nextSeq = new Map(peers.map((p) => [p, 0]));
  const blocked = new Set();
  const lastSeen = new Map(); // sender -> last sequence number handled
  let pump;
  let ticks = 0;
  let stopped = false;
  const callsInFlight = new Set();
  // A peer that died is reported once by the runtime; posting on to it would only repeat that.
  const gone = new Set();
  loop.subscribe(MEMBERSHIP, (ev) => {
    if (ev.event === 'exited' && peers.includes(ev.thread)) gone.add(ev.thread);
  });

  // Three kinds of payload, so each of the message encodings is in the stream: a plain number,
  // bytes (seq + a pattern derived from it, checked on arrival) and a cloned object.
  const payload = (seq) => {
    const r = rnd.float();
    if (r < 0.7) return seq;
    if (r < 0.9) {
      const b = Buffer.allocUnsafe(4 + (seq % 300));
      b.writeUInt32LE(seq, 0);
      for (let i = 4; i < b.length; i++) b[i] = (seq + i) & 0xff;
      return b;
    }
    return { seq, tag: 'x'.repeat(seq % 50), at: [seq, -seq] };
  };
  const seqOf = (p) => {
    if (typeof p === 'number') return p;
    if (Buffer.isBuffer(p)) {
      const seq = p.readUInt32LE(0);
      for (let i = 4; i < p.length; i++) if (p[i] !== ((seq + i) & 0xff)) return -1;
      return p.length === 4 + (seq % 300) ? seq : -1;
    }
    if (p && typeof p === 'object' && p.tag === 'x'.repeat(p.seq % 50) && p.at[0] === p.seq && p.at[1] === -p.seq) return p.seq;
    return -1;
  };

  loop.handle('seq', (p, from) => {
    if ((++c.msgsReceived & 1023) === 0) poke();
    const seq = seqOf(p);
    if (seq < 0) {
      c.msgsBadPayload++;
      fail('message-payload', { from, detail: `payload corrupted: ${JSON.stringify(p).slice(0, 80)}` });
      return;
    }
    const want = (lastSeen.get(from) ?? -1) + 1;
    if (seq !== want) {
      c.msgsOutOfOrder++;
      fail('message-order', { from, detail: `expected #${want}, got #${seq}` });
    }
    lastSeen.set(from, seq);
  });
  loop.handle('echoSeq', (n) => n);
  // After the sender stopped: FIFO per pair means this call runs after every post it made.
  loop.handle('seqCheck', (sent, from) => ({ last: lastSeen.get(from) ?? -1, sent }));

  // A busy loop sees its 1 ms tick late, with several periods expired: it sends for each of them
  // (up to 8), so the rate holds under load instead of falling with the loop's turn time.
  const tick = (expirations) => {
    ticks++;
    const batch = d.msgBatch * Math.min(expirations, 8);
    for (const p of peers) {
      if (blocked.has(p) || gone.has(p)) continue;
      for (let k = 0; k < batch; k++) {
        const seq = nextSeq.get(p);
        let posted;
        try {
          posted = loop.tryPost(p, 'seq', payload(seq));
        } catch (e) {
          if (e.code !== 'ERR_THREAD_EXITED') throw e;
          gone.add(p); // before the membership event says so
          break;
        }
        if (!posted) {
          // Inbox full: the same number goes again once there is room, so nothing is skipped.
          c.inboxFull++;
          blocked.add(p);
          loop.space(p).then(
            () => blocked.delete(p),
            (e) => fail('message-space', { to: p, detail: e.message }),
          );
          break;
        }
        nextSeq.set(p, seq + 1);
        c.msgsSent++;
      }
      // Now and then a call, which has to come back with what it carried.
      if (ticks % 50 === 0 && callsInFlight.size < 8) {
        const n = rnd.u32();
        const call = loop.call(p, 'echoSeq', n, { timeoutMs: 30_000 }).then(
          (v) => (v === n ? c.callsOk++ : (c.callsBad++, fail('call', { to: p, detail: `sent ${n}, got ${v}` }))),
          (e) => (c.callsBad++, fail('call', { to: p, detail: `${e.code}: ${e.message}` })),
        );
        callsInFlight.add(call);
        call.finally(() => callsInFlight.delete(call));
      }
    }
  };

  return {
    start: () => {
      if (peers.length === 0) return;
      pump = loop.timer(tick);
      pump.armInterval(1);
    },
    stop: async () => {
      stopped = true;
      pump?.close();
      pump = undefined;
      await Promise.all(callsInFlight);
    },
    // Asks every peer what it saw last from this loop; run once every loop has stopped.
    verify: async () => {
      const out = [];
      for (const p of peers) {
        const sent = nextSeq.get(p);
        if (gone.has(p)) {
          fail('message-missing', { to: p, detail: `loop ${p} exited; ${sent} messages were sent to it` });
          continue;
        }
        const r = await loop.call(p, 'seqCheck', sent, { timeoutMs: 30_000 });
        out.push({ to: p, sent, last: r.last });
        if (r.last !== sent - 1) fail('message-missing', { to: p, detail: `sent #0…#${sent - 1}, the receiver's last was #${r.last}` });
      }
      return out;
    },
    counters: () => ({ ...c }),
    close: () => {
      if (!stopped) pump?.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Timers: a set of one-shot timers armed, re-armed, disarmed, closed and reallocated at random
// from the timer tick, from message handlers and from socket handlers alike. A one-shot that was
// armed and neither re-armed, disarmed nor closed before firing must fire exactly once, and not
// before its deadline.

function timerStorm(loop, rnd, fail, d) {
  const c = {
    timersArmed: 0, // arm() calls
    timersSuperseded: 0, // re-armed while still pending: the earlier arming must not fire
    timersCancelled: 0, // disarmed or closed while pending
    timerFires: 0,
    timersUnexpected: 0, // fired while not pending (cancelled, superseded, closed)
    timersEarly: 0,
    timersMaxLateMs: 0,
    tickExpirations: 0,
    tickPeriods: 0,
  };
  const slots = [];
  let pending = 0;
  let driver;
  let driverT0 = 0n;
  let driverLast = 0n;
  let allFired;
  let finishing = false;

  const onFire = (state) => (expirations) => {
    const now = loop.now();
    if (!state.pending || expirations !== 1) {
      c.timersUnexpected++;
      fail('timer-unexpected', { detail: `timer ${state.id} fired (${expirations}) while ${state.pending ? 'pending' : 'not armed'}` });
      return;
    }
    state.pending = false;
    pending--;
    c.timerFires++;
    if (now < state.due) {
      c.timersEarly++;
      fail('timer-early', { detail: `timer ${state.id} fired ${Number(state.due - now) / 1e6} ms before its deadline` });
    } else {
      const late = Number(now - state.due) / 1e6;
      if (late > c.timersMaxLateMs) c.timersMaxLateMs = Math.round(late * 1000) / 1000;
    }
    if (finishing && pending === 0) allFired?.();
  };
  let ids = 0;
  const make = () => {
    const state = { id: ids++, pending: false, due: 0n, timer: undefined };
    state.timer = loop.timer({ priority: rnd.int(-2, 2) }, onFire(state));
    return state;
  };
  const cancel = (st) => {
    if (st.pending) {
      st.pending = false;
      pending--;
      c.timersCancelled++;
    }
  };

  // One random action on one random timer.
  const act = () => {
    const st = slots[rnd.int(0, slots.length - 1)];
    const r = rnd.float();
    if (r < 0.7) {
      const now = loop.now();
      if (st.pending) c.timersSuperseded++;
      else pending++;
      st.pending = true;
      c.timersArmed++;
      const k = rnd.float();
      if (k < 0.6) {
        const ms = rnd.int(0, 30);
        st.due = now + BigInt(ms) * 1_000_000n;
        st.timer.arm(ms);
      } else if (k < 0.8) {
        const ns = BigInt(rnd.int(0, 30_000_000));
        st.due = now + ns;
        st.timer.arm(ns);
      } else {
        st.due = now + BigInt(rnd.int(-5_000_000, 30_000_000)); // an instant, possibly past
        st.timer.arm({ at: st.due });
      }
    } else if (r < 0.93) {
      cancel(st);
      st.timer.disarm();
    } else {
      // Closed and replaced: a fire record still queued for the old slot must not reach anyone.
      cancel(st);
      st.timer.close();
      slots[slots.indexOf(st)] = make();
    }
  };

  let running = false;
  const api = {
    start: () => {
      for (let i = 0; i < d.timers; i++) slots.push(make());
      running = true;
      driver = loop.timer((exp) => {
        driverLast = loop.now();
        c.tickExpirations += exp;
        if (running) for (let i = 0; i < d.timerActs; i++) act();
      });
      driverT0 = loop.now();
      driver.armInterval(1);
    },
    /** A random action from anywhere else (message and socket handlers). */
    poke: () => running && act(),
    // Stops the actions, then waits for every pending one-shot to fire (each is due within
    // 30 ms; graceMs bounds the wait, and what is still pending after it counts as missing).
    finish: async (graceMs) => {
      running = false;
      finishing = true;
      driver?.close();
      // The interval must not have counted more periods than had elapsed (it may lag by what
      // one loop turn takes: it is applied before the loop next waits).
      c.tickPeriods = Number((driverLast - driverT0) / 1_000_000n);
      if (c.tickExpirations > c.tickPeriods)
        fail('timer-interval', { detail: `the 1 ms interval reported ${c.tickExpirations} expirations in ${c.tickPeriods} ms` });
      // Nor fewer, by more than a generous allowance for that first turn and the last dispatch:
      // periods the loop was too busy to see are reported as expirations > 1, not lost.
      if (c.tickExpirations < c.tickPeriods - 250)
        fail('timer-interval', { detail: `the 1 ms interval reported only ${c.tickExpirations} expirations in ${c.tickPeriods} ms` });
      if (pending > 0) {
        let guard;
        await Promise.race([new Promise((r) => (allFired = r)), new Promise((r) => (guard = setTimeout(r, graceMs)))]);
        clearTimeout(guard);
      }
      const missing = pending;
      if (missing > 0) fail('timer-missing', { detail: `${missing} armed one-shots did not fire within ${graceMs} ms of their deadline` });
      for (const st of slots) st.timer.close();
      slots.length = 0;
      return { missing, expected: c.timersArmed - c.timersSuperseded - c.timersCancelled, fires: c.timerFires };
    },
    counters: () => ({ ...c, timersPending: pending }),
    close: () => {
      driver?.close();
      for (const st of slots) st.timer.close();
    },
  };
  return api;
}
