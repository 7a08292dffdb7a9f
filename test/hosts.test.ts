// Test hosts on one machine (scripts/hosts.mjs): network namespaces for the bus, srv and two
// client hosts, joined by veth pairs to a bridge in a namespace of its own, each host with its
// own address on a subnet that exists only between them. Needs root: skipped with the reason
// where namespaces cannot be made (IAPP_REQUIRE_FEATURES=netns, as CI sets, makes that a failure).
// The two fleet runs also need nats-server on PATH: skipped with the reason where it is missing
// (IAPP_REQUIRE_TOOLS=1, as CI sets, makes that a failure).
//
// What it proves: a fleet (nats-server on the bus host, iapp-srv, one iapp-clt shard per client
// host, the controller) runs across the namespaces and reconciles exactly: the controller's
// clients' bytes sent = the servers' bytes received = srv's own summary, every connection of the
// run (both shards) reached srv from the other hosts; each host reaches the others only over the
// bridge (the srv address does not exist in a client's namespace, and nothing of the subnet is
// in the machine's own); every namespace is removed after the run, and also when the run fails.
import { spawnSync } from 'node:child_process';

import { describe, expect } from 'vitest';

import { itWithFeature } from './features.js';
import { itWithTool, onPath } from './tools.js';
import { makeHosts, namespacesWith, runFleet, SUBNET } from '../scripts/hosts.mjs';

const prefix = (tag: string): string => `iapp${process.pid}${tag}`;

/** A test that runs a fleet: it needs network namespaces and nats-server (for the bus host). */
function itWithFleet(name: string, fn: () => Promise<void>, timeout: number): void {
  // Without nats-server the fleet would fail on a spawn error: skip (or, under
  // IAPP_REQUIRE_TOOLS=1, fail) for that reason instead.
  if (onPath('nats-server')) itWithFeature('netns', name, fn, timeout);
  else itWithTool('nats-server', name, fn, timeout);
}

describe('a fleet on test hosts (network namespaces)', () => {
  itWithFleet('bus, srv and two clt shards on four hosts reconcile exactly, and every namespace goes', async () => {
    const p = prefix('a');
    const r = await runFleet({ cltHosts: 2, srvThreads: 1, threads: 2, conns: 6, duration: 1, stats: 0.25, timeoutS: 90, prefix: p });
    expect(namespacesWith(p)).toEqual([]);
    expect(r.control.clients).toBe(2);
    expect(r.control.servers).toBe(1);
    expect(r.control.connected).toBe(12);
    expect(r.control.failed).toBe(0);
    expect(r.control.txBytes).toBeGreaterThan(0);
    expect(r.control.srvRxBytes).toBe(r.control.txBytes);
    expect(r.control.reconciled).toBe(true);
    expect(r.server.rxBytes).toBe(r.control.txBytes);
    expect(r.server.accepted).toBe(12);
    expect(r.clients.map((c: { shard: string; connected: number }) => [c.shard, c.connected])).toEqual([['0/2', 6], ['1/2', 6]]);
    expect(r.fleet.length).toBeGreaterThan(0);
  }, 120_000);

  itWithFeature('netns', 'hosts reach each other only over the bridge; the machine\'s own namespace has none of it', async () => {
    const p = prefix('b');
    const net = makeHosts(['x', 'y'], { prefix: p });
    try {
      const { x, y } = net.hosts;
      const inX = spawnSync('ip', ['-n', x.ns, '-o', 'addr', 'show'], { encoding: 'utf8' }).stdout;
      expect(inX).toContain(`${x.addr}/24`);
      expect(inX).not.toContain(y.addr);
      const own = spawnSync('ip', ['-o', 'addr', 'show'], { encoding: 'utf8' }).stdout;
      expect(own).not.toContain(`${SUBNET}.`);
      // y answers x over the bridge (a TCP connect from x's namespace to a listener in y's).
      const listener = spawnSync('ip', ['netns', 'exec', y.ns, process.execPath, '-e', `
        const net = require('node:net');
        const s = net.createServer((c) => { c.end('hi'); s.close(); }).listen(7100, '${y.addr}', () => {
          require('node:child_process').spawn('ip', ['netns', 'exec', '${x.ns}', process.execPath, '-e',
            "require('node:net').connect(7100, '${y.addr}').on('data', (d) => process.stdout.write(d))"], { stdio: 'inherit' });
        });
      `], { encoding: 'utf8', timeout: 20_000 });
      expect(listener.stdout).toBe('hi');
    } finally {
      net.remove();
    }
    expect(namespacesWith(p)).toEqual([]);
  }, 60_000);

  itWithFleet('a run that fails still removes every namespace and process', async () => {
    const p = prefix('c');
    // --size 0 is a flag error: both clients exit 2, the controller never gets its instances.
    await expect(runFleet({ cltHosts: 2, threads: 2, conns: 2, duration: 1, stats: 0.25, timeoutS: 10, prefix: p, extraClt: ['--size', '0'] })).rejects.toThrow(/did not finish within 10 s|exited/);
    expect(namespacesWith(p)).toEqual([]);
  }, 60_000);
});
