// A child process of a Fleet (fleet.ts): runs a Runtime with its share of the loop threads and
// answers the parent over the IPC channel. Not imported by users.
import { shareConnectionCounts } from '../conns.js';
import { createRuntime, type Runtime } from '../runtime.js';
import type { FromChild, ToChild } from './fleet.js';

const send = (m: FromChild): void => {
  if (process.connected) process.send!(m);
};
// Disconnecting twice throws ERR_IPC_DISCONNECTED as an uncaught error: a failed start
// disconnects, and the 'disconnect' that follows closes (and would disconnect) again.
const disconnect = (): void => {
  if (process.connected) process.disconnect();
};
// The last message, then the channel closed: only once it was written, because closing the
// channel cancels a write still queued (a big summary to a busy parent lost its summary:
// "N thread(s) did not report").
const sendLast = (m: FromChild): void => {
  if (!process.connected) return;
  process.send!(m, undefined, {}, () => disconnect());
};
let rt: Runtime | undefined;
let closing = false;

// Ctrl-C reaches the whole process group: the parent decides when and how its children stop.
process.on('SIGINT', () => {});

async function close(timeoutMs: number): Promise<void> {
  if (closing) return;
  closing = true;
  const summary = rt ? await rt.close({ timeoutMs }) : { sockets: 0, reset: 0, unsent: 0, terminated: 0, stats: [] };
  sendLast({ type: 'closed', summary });
}

process.on('message', (m: ToChild) => {
  switch (m.type) {
    case 'start':
      try {
        shareConnectionCounts(m.connsFd, m.connsSlot); // before any loop opens a connection
      } catch (e) {
        const err = e as Error & { code?: string };
        sendLast({ type: 'failed', error: { message: err.message, ...(err.code ? { code: err.code } : {}) } });
        break;
      }
      createRuntime({ module: m.module, threads: m.threads, data: m.data, ...(m.startTimeoutMs ? { startTimeoutMs: m.startTimeoutMs } : {}) }).then(
        (r) => {
          rt = r;
          for (const name of ['exit', 'handler-error', 'accept-error'] as const)
            r.on(name, (e: Record<string, unknown>) => {
              const err = e.error as (Error & { code?: string }) | undefined;
              const payload = { ...e, error: err ? { message: err.message, code: err.code, stack: err.stack } : undefined };
              send({ type: 'event', name, payload });
            });
          send({ type: 'ready', results: r.results, limits: r.limits });
        },
        (e: Error & { code?: string }) => {
          sendLast({ type: 'failed', error: { message: e.message, ...(e.code ? { code: e.code } : {}) } });
        },
      );
      break;
    case 'stats':
      void (rt ? rt.stats() : Promise.resolve([])).then((stats) => send({ type: 'stats', seq: m.seq, stats }));
      break;
    case 'close':
      void close(m.timeoutMs);
      break;
  }
});

// The parent went away without closing us: stop serving rather than linger.
process.on('disconnect', () => void close(1000));
