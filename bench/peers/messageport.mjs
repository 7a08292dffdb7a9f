// worker_threads MessagePort messaging for bench/messaging.mjs, the Node baseline next to iapp's
// cross-thread messaging. Plain Workers, no iapp. One case per process:
//
//   node bench/peers/messageport.mjs --case oneway --senders S [--duration D] [--n N] [--window K] [--warmup-s W]
//   node bench/peers/messageport.mjs --case rtt [--duration D] [--warmup-s W]
//
// oneway: S sender Workers and one receiver Worker; per sender a MessageChannel made here, one
// port transferred to the sender, the other to the receiver. Each sender posts Uint8Array(16)
// (structured clone, the same array every time, nothing transferred) in a tight loop for D
// seconds (looking at the clock every 4096 posts) or until N/S were posted, then an end marker
// (the number -1, which follows its messages on the port); the receiver counts the messages in
// port.on('message') and notes the time when the last sender's marker arrives. Bounded
// queueing: the receiver acks every K/4 messages per port (cumulative count), and a sender with
// K messages unacked awaits the next ack. A warm-up transfer of W seconds (uncounted) comes
// first. Times are process.hrtime (CLOCK_MONOTONIC, the same clock in every thread): msgs/s =
// messages posted / (first post of the earliest sender -> the last marker handled); the drain
// after the senders stop is in it. The receiver's count must equal what the senders posted.
// rtt: Worker A posts a Uint8Array(16) to Worker B, B posts the message it got back, A measures
// (hrtime before the post -> its 'message' handler) and posts the next: one round trip in flight.
// Warm-up for W s, then D s of samples; p50/p99 from the sorted samples.
//
// Prints one JSON line on stdout:
//   oneway: {"system","case","senders","n","seconds","msgsPerS","cpuS","cores","ackWaits","postS","cpuTotalS"}
// (n: messages posted; postS: first post -> the last sender's last post)
//   rtt:    {"system","case","count","seconds","p50Us","p99Us","meanUs","minUs","maxUs","cpuS","cores","cpuTotalS"}
// cpuS: user+system CPU of the whole process (all threads) during the measured phase; cores =
// cpuS / its wall time; cpuTotalS: the process's CPU from start to the report.
import { MessageChannel, Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { benchPayload } from '../lib/payload.mjs';

const nowNs = () => Number(process.hrtime.bigint());
const cpuS = (u = process.cpuUsage()) => (u.user + u.system) / 1e6;
const CHUNK = 4096; // posts between looks at the clock

if (isMainThread) await main();
else worker(workerData);

async function main() {
  // Any failure ends the process with one line on stderr (the harness shows the last lines).
  const fail = (err) => {
    console.error(`messageport: ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}`);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  const { values } = parseArgs({
    options: {
      case: { type: 'string', default: 'oneway' },
      senders: { type: 'string', default: '1' },
      n: { type: 'string' },
      window: { type: 'string', default: '262144' },
      duration: { type: 'string', default: '1.5' },
      'warmup-s': { type: 'string', default: '0.3' },
    },
  });
  const kase = values.case;
  const senders = Number(values.senders);
  const n = values.n === undefined ? undefined : Number(values.n);
  const window = Number(values.window);
  const durationS = Number(values.duration);
  const warmS = Number(values['warmup-s']);
  if (!['oneway', 'rtt'].includes(kase) || !(Number.isInteger(senders) && senders >= 1 && senders <= 64) || !(n === undefined || (Number.isInteger(n) && n >= senders)) || !(window >= 16) || !(durationS > 0) || !(warmS >= 0)) {
    console.error('usage: messageport.mjs --case oneway|rtt [--senders S] [--duration D] [--n N] [--window K] [--warmup-s W]');
    process.exit(2);
  }
  // Self-termination: a run takes seconds; give up well past what it can need.
  const giveUpS = Math.max(120, 3 * (durationS + warmS) + 60, n === undefined ? 0 : n / 50_000 + 60);
  setTimeout(() => {
    console.error(`messageport: still running after ${Math.round(giveUpS)} s (${kase}): giving up`);
    process.exit(1);
  }, giveUpS * 1000).unref();

  const workers = [];
  const spawnWorker = (data, transferList) => {
    const w = new Worker(new URL(import.meta.url), { workerData: data, transferList });
    w.on('error', (err) => {
      console.error(`messageport: worker ${data.role} failed: ${err.stack ?? err}`);
      process.exit(1);
    });
    workers.push(w);
    return w;
  };
  /** The next control message of `w` that satisfies `pred`. */
  const next = (w, pred = () => true) =>
    new Promise((resolve) => {
      const on = (m) => {
        if (!pred(m)) return;
        w.off('message', on);
        resolve(m);
      };
      w.on('message', on);
    });

  let out;
  if (kase === 'oneway') {
    const chans = Array.from({ length: senders }, () => new MessageChannel());
    const recvPorts = chans.map((c) => c.port2);
    const receiver = spawnWorker({ role: 'receiver', ports: recvPorts, window }, recvPorts);
    const sendWs = chans.map((c, i) => spawnWorker({ role: 'sender', index: i, port: c.port1, window }, [c.port1]));
    await Promise.all([receiver, ...sendWs].map((w) => next(w, (m) => m.type === 'ready')));
    /** One transfer: every sender posts for `secs` (or its share of `total`); returns the figures. */
    const transfer = async (secs, total) => {
      const done = next(receiver, (m) => m.type === 'done');
      receiver.postMessage({ type: 'reset', senders });
      await next(receiver, (m) => m.type === 'reset');
      const cpu0 = cpuS();
      const sent = Promise.all(sendWs.map((w) => next(w, (m) => m.type === 'sent')));
      sendWs.forEach((w, i) => {
        const share = total === undefined ? undefined : Math.floor(total / senders) + (i < total % senders ? 1 : 0);
        w.postMessage({ type: 'go', durationS: secs, n: share });
      });
      const [reps, fin] = await Promise.all([sent, done]);
      const cpu = cpuS() - cpu0;
      const count = reps.reduce((a, r) => a + r.sent, 0);
      if (fin.count !== count) throw new Error(`the receiver counted ${fin.count} messages when every sender's end marker had arrived, the senders posted ${count}`);
      const t0 = Math.min(...reps.map((r) => r.startNs));
      const seconds = (fin.endNs - t0) / 1e9;
      return { n: count, seconds, msgsPerS: count / seconds, cpuS: cpu, cores: cpu / seconds, ackWaits: reps.reduce((a, r) => a + r.ackWaits, 0), postS: (Math.max(...reps.map((r) => r.endNs)) - t0) / 1e9 };
    };
    if (warmS > 0) await transfer(warmS);
    const m = await transfer(durationS, n);
    out = { system: 'MessagePort', case: 'oneway', senders, window, ...m };
  } else {
    const { port1, port2 } = new MessageChannel();
    const pong = spawnWorker({ role: 'pong', port: port2 }, [port2]);
    const ping = spawnWorker({ role: 'ping', port: port1, durationS, warmS }, [port1]);
    await Promise.all([pong, ping].map((w) => next(w, (m) => m.type === 'ready')));
    const cpu0 = cpuS();
    const res = next(ping, (m) => m.type === 'rtt');
    ping.postMessage({ type: 'go' });
    const r = await res;
    const cpu = cpuS() - cpu0; // includes the warm-up: cores is a rate, so that is fine
    out = { system: 'MessagePort', case: 'rtt', ...r.stats, cpuS: cpu, cores: cpu / (r.stats.seconds + r.warmS) };
    delete out.type;
  }
  out.cpuTotalS = cpuS();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  await Promise.all(workers.map((w) => w.terminate()));
  process.exit(0);
}

// ---- the workers -------------------------------------------------------------------------------
function worker(d) {
  if (d.role === 'receiver') return receiver(d);
  if (d.role === 'sender') return sender(d);
  if (d.role === 'ping') return ping(d);
  if (d.role === 'pong') return pong(d);
  throw new Error(`unknown role ${d.role}`);
}

function receiver({ ports, window }) {
  const ackEvery = Math.max(1, window >> 2);
  let count = 0;
  let senders = 1;
  let ends = 0;
  ports.forEach((port) => {
    let got = 0; // cumulative on this port
    port.on('message', (m) => {
      if (typeof m === 'number') {
        if (++ends === senders) parentPort.postMessage({ type: 'done', endNs: nowNs(), count });
        return;
      }
      count++;
      if (++got % ackEvery === 0) port.postMessage(got);
    });
  });
  parentPort.on('message', (m) => {
    if (m.type !== 'reset') return;
    senders = m.senders;
    count = 0;
    ends = 0;
    parentPort.postMessage({ type: 'reset' });
  });
  parentPort.postMessage({ type: 'ready' });
}

function sender({ port, window }) {
  const u8 = benchPayload();
  let sent = 0; // cumulative
  let acked = 0;
  let wake = null;
  port.on('message', (got) => {
    acked = got;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  });
  parentPort.on('message', async (m) => {
    if (m.type !== 'go') return;
    const first = sent;
    const max = sent + (m.n ?? Infinity);
    let ackWaits = 0;
    const startNs = nowNs();
    const endAt = startNs + m.durationS * 1e9;
    for (;;) {
      const stop = Math.min(max, acked + window, sent + CHUNK);
      if (sent >= stop) {
        ackWaits++;
        await new Promise((r) => (wake = r));
        continue;
      }
      while (sent < stop) {
        port.postMessage(u8);
        sent++;
      }
      if (sent >= max || nowNs() >= endAt) break;
    }
    port.postMessage(-1);
    parentPort.postMessage({ type: 'sent', startNs, endNs: nowNs(), sent: sent - first, ackWaits });
  });
  parentPort.postMessage({ type: 'ready' });
}

function pong({ port }) {
  port.on('message', (m) => port.postMessage(m));
  parentPort.postMessage({ type: 'ready' });
}

function ping({ port, durationS, warmS }) {
  const MAX = 4_000_000;
  const samples = new Float64Array(MAX);
  const u8 = benchPayload();
  parentPort.on('message', (m) => {
    if (m.type !== 'go') return;
    let count = 0;
    const warmEnd = nowNs() + warmS * 1e9;
    let tMeasure = 0;
    let end = Infinity;
    let t = 0;
    port.on('message', () => {
      const now = nowNs();
      if (tMeasure) {
        samples[count++] = now - t;
        if (now >= end || count >= MAX) {
          port.removeAllListeners('message');
          parentPort.postMessage({ type: 'rtt', warmS, stats: latencyStats(samples.subarray(0, count), (now - tMeasure) / 1e9) });
          return;
        }
      } else if (now >= warmEnd) {
        tMeasure = now;
        end = now + durationS * 1e9;
      }
      t = nowNs();
      port.postMessage(u8);
    });
    t = nowNs();
    port.postMessage(u8);
  });
  parentPort.postMessage({ type: 'ready' });
}

/** { count, seconds, p50Us, p99Us, meanUs, minUs, maxUs } of round trips in ns. */
function latencyStats(ns, seconds) {
  const s = Float64Array.from(ns).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))] / 1e3;
  let sum = 0;
  for (const x of s) sum += x;
  return { count: s.length, seconds, p50Us: q(0.5), p99Us: q(0.99), meanUs: sum / s.length / 1e3, minUs: s[0] / 1e3, maxUs: s[s.length - 1] / 1e3 };
}
