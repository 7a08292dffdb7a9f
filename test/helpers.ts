import { readdirSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

import { createRuntime, type Runtime, type RuntimeOptions } from '../dist/src/index.js';

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Open fds of this process (Linux). */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

let channels = 0;
/** A BroadcastChannel the fixtures post events to, with a way to wait for one. */
export function events(): {
  name: string;
  seen: Record<string, unknown>[];
  waitFor: (pred: (m: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>>;
  send: (m: unknown) => void;
  close: () => void;
} {
  const name = `iapp-test-${process.pid}-${++channels}`;
  const bc = new BroadcastChannel(name);
  const seen: Record<string, unknown>[] = [];
  const waiters: { pred: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }[] = [];
  bc.onmessage = (ev: MessageEvent) => {
    const m = ev.data as Record<string, unknown>;
    seen.push(m);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.pred(m)) {
        waiters[i]!.resolve(m);
        waiters.splice(i, 1);
      }
    }
  };
  return {
    name,
    seen,
    waitFor: (pred) => {
      const hit = seen.find(pred);
      return hit ? Promise.resolve(hit) : new Promise((resolve) => waiters.push({ pred, resolve }));
    },
    send: (m) => bc.postMessage(m),
    close: () => bc.close(),
  };
}

export async function startServer(
  kind: string,
  listen: Record<string, unknown> = { host: '127.0.0.1', port: 0 },
  extra: Partial<RuntimeOptions> & { data?: Record<string, unknown> } = {},
): Promise<{ rt: Runtime; port: number; address: string; ev: ReturnType<typeof events> }> {
  const ev = events();
  const rt = await createRuntime({
    module: fixture('server.mjs'),
    threads: extra.threads ?? 2,
    data: { kind, listen, channel: ev.name, ...extra.data },
  });
  const r = rt.results[0] as { port: number; address: string };
  return { rt, port: r.port, address: r.address, ev };
}

/** Sends `data` over node:net, half-closes, and collects everything the server sends back. */
export function netExchange(
  opts: net.NetConnectOpts,
  data: Buffer | string,
  { allowHalfOpen = false } = {},
): Promise<{ reply: Buffer; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ ...opts, allowHalfOpen } as net.NetConnectOpts);
    const parts: Buffer[] = [];
    let ended = false;
    c.on('data', (d) => parts.push(d));
    c.on('end', () => {
      ended = true;
      if (allowHalfOpen) c.end();
    });
    c.on('close', () => resolve({ reply: Buffer.concat(parts), ended }));
    c.on('error', reject);
    c.end(data);
  });
}
