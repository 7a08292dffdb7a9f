// The module every iapp-proxy loop thread runs: accepts clients, connects each to a target and
// moves the bytes both ways natively (loop.proxy), counting what ended well and what did not.
import type { Loop, LoopInfo, Socket } from '../src/index.js';

/** `info.data` of every proxy thread. */
export interface ProxyLoopData {
  /** Where to accept: an address, or listening sockets a service manager passed (fds). */
  listen: { host: string; port: number } | { path: string; permissions?: number } | { fds: number[] };
  /** Connections go to these in turn. */
  targets: ({ host: string; port: number } | { path: string })[];
  connectTimeoutMs: number;
}

/** What the proxy adds to the loop's stats (`stats().app`). */
export interface ProxyStats {
  /** Client connections whose target connected. */
  proxied: number;
  /** Clients dropped because the target could not be reached, by error code. */
  unreachable: Record<string, number>;
  /** Proxied connections that ended with an error (reset, …), by code. */
  failed: Record<string, number>;
  /** Proxied connections open now, and the most at once. */
  active: number;
  peak: number;
  /** Bytes of finished connections, client to target and back. */
  up: number;
  down: number;
}

export function setup(loop: Loop, info: LoopInfo): { address: string; port?: number } {
  const d = info.data as ProxyLoopData;
  const st: ProxyStats = { proxied: 0, unreachable: {}, failed: {}, active: 0, peak: 0, up: 0, down: 0 };
  let next = info.index; // threads start at different targets
  const count = (into: Record<string, number>, e: unknown): void => {
    const code = (e as { code?: string }).code ?? 'ERROR';
    into[code] = (into[code] ?? 0) + 1;
  };

  const serve = async (client: Socket): Promise<void> => {
    // Bytes the client sends before the target answers are held (up to 1 MiB, then reading
    // pauses) and go first once the pipe starts.
    const target = d.targets[next++ % d.targets.length]!;
    let upstream: Socket;
    try {
      upstream = await loop.connect({ ...target, timeout: d.connectTimeoutMs });
    } catch (e) {
      count(st.unreachable, e);
      client.destroy({ reset: true });
      return;
    }
    if (client.readyState !== 'open') {
      upstream.destroy();
      return;
    }
    st.proxied++;
    if (++st.active > st.peak) st.peak = st.active;
    try {
      const r = await loop.proxy(client, upstream);
      st.up += r.aToB;
      st.down += r.bToA;
    } catch (e) {
      count(st.failed, e);
      const p = e as { aToB?: number; bToA?: number };
      st.up += p.aToB ?? 0;
      st.down += p.bToA ?? 0;
    } finally {
      st.active--;
    }
  };

  const specs = 'fds' in d.listen ? d.listen.fds.map((fd) => ({ fd })) : ['path' in d.listen ? { ...d.listen, accept: 'shared' as const } : { host: d.listen.host, port: d.listen.port }];
  const ls = specs.map((spec) => loop.listen(spec, (s) => void serve(s)));
  loop.onStats(() => st);
  return { address: ls[0]!.address, port: ls[0]!.port };
}
