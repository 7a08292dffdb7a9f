// The run bus (docs/bus.md) against a real nats-server on loopback: iapp-srv and sharded
// iapp-clt instances join a run, the controller (iapp-clt --control) starts them together,
// prints the fleet's live line, collects the summaries and reconciles the bytes.
//
// What it proves: the controller waits for --expect instances before anyone sends a byte, then
// the clients' bytes sent (collected by request/reply) equal the servers' bytes received over
// the run exactly, and equal what srv itself reports; a stale, repeated stats message (lower
// sequence number, absurd counts) published into the run does not change the fleet's sums; an
// instance killed mid-run fails the run (exit 1, naming it) within 3 of its intervals, and the
// other clients are told to stop and end cleanly; a controller killed mid-run makes the clients
// stop by themselves; bad --bus/--run/--control/--expect values and an unreachable bus are flag
// errors (exit 2) naming the flag; without --bus the programs never load the nats client.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { killAll, root, run, type Proc } from './proc.js';
import { itWithTool } from './tools.js';
import { startNats, type Nats } from './nats.js';

const SRV = 'dist/srv/main.js';
const CLT = 'dist/clt/main.js';

let nats: Nats | undefined;
afterEach(async () => {
  killAll();
  await nats?.stop();
  nats = undefined;
});

async function exitCode(p: Proc): Promise<number | null> {
  return (await p.exited).code;
}

/** srv and `shards` clt shards on run `id`, each joined to the bus; returns them once srv listens. */
async function fleet(url: string, id: string, shards: number, cltArgs: string[]) {
  const srv = run(SRV, ['--json', '--listen', '127.0.0.1:0', '--threads', '1', '--stats', '0.2', '--bus', url, '--run', id]);
  const target = ((await srv.json('listening')).addresses as { text: string }[])[0]!.text;
  const clts = Array.from({ length: shards }, (_, i) =>
    run(CLT, ['--json', '--threads', '3', '--conns', '4', '--rate', '1000', '--stats', '0.2', '--target', target, '--shard', `${i}/${shards}`, '--bus', url, '--run', id, ...cltArgs]),
  );
  return { srv, clts };
}

describe('iapp-clt --control with srv and clt shards on a nats-server', () => {
  itWithTool('nats-server', 'starts them together, shows the fleet, collects the summaries and reconciles the bytes exactly; a stale message changes nothing', async () => {
    nats = await startNats();
    const { srv, clts } = await fleet(nats.url, 'rec', 2, ['--duration', '1.5']);
    // Nobody connects before the start: the clients wait for it, and a server's stats line after
    // both said so shows no connection yet.
    await Promise.all(clts.map((c) => c.json('waiting')));
    const seenBefore = srv.lines.length;
    const before = JSON.parse(await srv.line((l) => l.includes('"type":"stats"') && srv.lines.indexOf(l) >= seenBefore, 'a stats line after the clients wait')) as Record<string, number>;
    expect(before.accepted).toBe(0);
    const ctl = run(CLT, ['--control', '--expect', '3', '--json', '--stats', '0.2', '--bus', nats.url, '--run', 'rec']);
    const start = await ctl.json('start');
    const ids = (start.instances as { id: string; role: string }[]).map((i) => i.id);
    expect((start.instances as { role: string }[]).map((i) => i.role).sort()).toEqual(['clt', 'clt', 'srv']);
    // A stale stats message for a client (sequence 1, absurd counts): the newest one wins.
    const first = await ctl.jsonWhere((o) => o.type === 'fleet' && o.txBytes > 0, 'a fleet line with bytes');
    const { connect } = await import('nats');
    const nc = await connect({ servers: nats.url });
    const clt0 = (start.instances as { id: string; role: string }[]).find((i) => i.role === 'clt')!.id;
    nc.publish('iapp.rec.stats', new TextEncoder().encode(JSON.stringify({ id: clt0, role: 'clt', seq: 1, state: 'running', counts: { txBytes: 1e15, open: 1e6 } })));
    await nc.flush();
    await nc.close();
    const summary = await ctl.json('summary');
    expect(await exitCode(ctl), ctl.stderr()).toBe(0);
    const fleetLines = ctl.lines.filter((l) => l.includes('"type":"fleet"')).map((l) => JSON.parse(l) as Record<string, number>);
    expect(fleetLines.length).toBeGreaterThan(1);
    expect(fleetLines.every((f) => f.txBytes < 1e15 && f.connections <= 12)).toBe(true);
    // Cumulative: the fleet's bytes never go down.
    expect(fleetLines.map((f) => f.txBytes)).toEqual([...fleetLines.map((f) => f.txBytes)].sort((a, b) => a - b));
    expect(first.connections).toBeLessThanOrEqual(12);
    const sent = await Promise.all(clts.map((c) => c.json('summary')));
    for (const c of clts) expect(await exitCode(c), c.stderr()).toBe(0);
    expect(summary.clients).toBe(2);
    expect(summary.servers).toBe(1);
    expect(summary.connected).toBe(12);
    expect(summary.txBytes).toBe(sent[0]!.txBytes + sent[1]!.txBytes);
    expect(summary.txBytes).toBeGreaterThan(0);
    expect(summary.srvRxBytes).toBe(summary.txBytes);
    expect(summary.reconciled).toBe(true);
    expect(summary.complete).toBe(true);
    expect(ids).toHaveLength(3);
    srv.child.kill('SIGTERM');
    const own = await srv.json('summary');
    expect(await exitCode(srv), srv.stderr()).toBe(0);
    expect(own.rxBytes).toBe(summary.txBytes);
    expect(own.accepted).toBe(12);
  }, 60_000);

  itWithTool('nats-server', 'an instance killed mid-run fails the run within 3 of its intervals, and the others are stopped', async () => {
    nats = await startNats();
    const { clts } = await fleet(nats.url, 'kill', 2, []);
    const ctl = run(CLT, ['--control', '--expect', '3', '--json', '--stats', '0.2', '--bus', nats.url, '--run', 'kill']);
    await ctl.jsonWhere((o) => o.type === 'fleet' && o.connections === 12, 'all 12 connections open');
    const killedAt = performance.now();
    clts[1]!.child.kill('SIGKILL');
    const error = await ctl.json('error');
    const tookS = (performance.now() - killedAt) / 1000;
    expect(await exitCode(ctl)).toBe(1);
    expect(error.message).toMatch(/^clt-\S+ \(clt on \S+\) has been silent for \d+\.\d s, 3 of its 0.2 s intervals$/);
    expect(ctl.stderr()).toMatch(/silent .* the run failed/);
    // 3 intervals of 0.2 s, checked every 0.25 s: well under 5 s even on a loaded machine.
    expect(tookS).toBeLessThan(5);
    // The other client was told to stop: it ends its connections, prints its summary, exits 0.
    const s0 = await clts[0]!.json('summary');
    expect(s0.connected).toBe(8);
    expect(await exitCode(clts[0]!), clts[0]!.stderr()).toBe(0);
    expect(clts[0]!.stderr()).toMatch(/stop from the controller/);
  }, 60_000);

  itWithTool('nats-server', 'a controller killed mid-run: the clients stop by themselves and leave', async () => {
    nats = await startNats();
    const { clts } = await fleet(nats.url, 'lost', 1, []);
    const ctl = run(CLT, ['--control', '--expect', '2', '--json', '--stats', '0.2', '--bus', nats.url, '--run', 'lost']);
    await ctl.jsonWhere((o) => o.type === 'fleet' && o.connections === 12, 'all 12 connections open');
    ctl.child.kill('SIGKILL');
    const s = await clts[0]!.json('summary');
    expect(s.connected).toBe(12);
    expect(clts[0]!.stderr()).toMatch(/the controller has been silent for \d+\.\d s: stopping/);
    expect(await exitCode(clts[0]!)).toBe(0);
    expect(clts[0]!.stderr()).toMatch(/leaving without the controller/);
  }, 60_000);
});

describe('bus flags', () => {
  it.each([
    [CLT, ['--bus', 'http://127.0.0.1:4222', '--run', 'a'], /--bus http:\/\/127.0.0.1:4222: expected nats:\/\/HOST:PORT/],
    [CLT, ['--bus', 'nats://127.0.0.1:4222'], /--bus needs --run ID/],
    [CLT, ['--run', 'a'], /--run a needs --bus nats:\/\/HOST:PORT/],
    [CLT, ['--bus', 'nats://127.0.0.1:4222', '--run', 'a.b'], /--run a.b: use 1 to 64 letters, digits, - and _/],
    [CLT, ['--control', '--expect', '2'], /--control needs --bus/],
    [CLT, ['--control', '--bus', 'nats://127.0.0.1:4222', '--run', 'a'], /--control needs --expect N/],
    [CLT, ['--expect', '2'], /--expect is for the controller/],
    [CLT, ['--control', '--expect', '0', '--bus', 'nats://127.0.0.1:4222', '--run', 'a'], /--expect 0/],
    [SRV, ['--bus', 'nats:/x', '--run', 'a'], /--bus nats:\/x: expected nats:\/\/HOST:PORT/],
    [SRV, ['--run', 'a'], /--run a needs --bus/],
  ])('%s %j: exit 2 naming the flag', async (script, args, message) => {
    const p = run(script, args);
    expect(await exitCode(p)).toBe(2);
    expect(p.stderr()).toMatch(message);
  });

  it.each([
    [CLT, ['--threads', '1', '--conns', '1', '--duration', '1']],
    [CLT, ['--control', '--expect', '1']],
    [SRV, ['--listen', '127.0.0.1:0', '--threads', '1', '--duration', '1']],
  ])('%s %j with an unreachable bus: exit 2, saying so and what to do', async (script, args) => {
    // Port 1 on loopback: nothing listens there, so the connect is refused at once.
    const p = run(script, [...args, '--bus', 'nats://127.0.0.1:1', '--run', 'a']);
    expect(await exitCode(p)).toBe(2);
    expect(p.stderr()).toMatch(/--bus nats:\/\/127.0.0.1:1: cannot reach a NATS server there \(CONNECTION_REFUSED\); start one \(apt-get install nats-server\) or correct --bus/);
  });

  it('without --bus, neither program loads the nats client: no compiled module imports it statically', () => {
    // Only src/cli/bus.js names it, in a dynamic import() that runs when --bus is given.
    const names: string[] = [];
    for (const dir of ['dist/src', 'dist/src/cli', 'dist/clt', 'dist/srv']) {
      for (const f of readdirSync(join(root, dir)).filter((f) => f.endsWith('.js'))) {
        const text = readFileSync(join(root, dir, f), 'utf8');
        expect(text, `${dir}/${f}`).not.toMatch(/^import[^(]*from ['"]nats['"]/m);
        if (text.includes("'nats'")) names.push(`${dir}/${f}`);
      }
    }
    expect(names).toEqual(['dist/src/cli/bus.js']);
    expect(readFileSync(join(root, 'dist/src/cli/bus.js'), 'utf8')).toMatch(/await import\('nats'\)/);
  });
});
