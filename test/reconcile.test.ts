// Nothing lost: after a clean run (clt ends and closes its sockets, srv drains), the bytes
// iapp-clt says it sent are exactly the bytes iapp-srv says it received, over TCP and Unix
// sockets, for several thread and process counts on both sides.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { killAll, root, run } from './proc.js';

const SRV = 'dist/srv/main.js';
const CLT = 'dist/clt/main.js';

afterEach(killAll);

/** Runs srv on `listen`, clt against it, stops srv, and returns both summaries. */
async function reconcile(listen: string, srvArgs: string[], cltArgs: string[], faults?: { srv: string; clt: string }) {
  const srv = run(SRV, ['--json', '--listen', listen, ...srvArgs], faults && { IAPP_FAULTS: faults.srv });
  const listening = await srv.json('listening');
  const target = (listening.addresses as { text: string }[])[0]!.text;
  const clt = run(CLT, ['--json', '--duration', '1', '--rate', '1000', '--target', target, ...cltArgs], faults && { IAPP_FAULTS: faults.clt });
  const sent = await clt.json('summary');
  expect((await clt.exited).code, clt.stderr()).toBe(0);
  srv.child.kill('SIGTERM');
  const received = await srv.json('summary');
  expect((await srv.exited).code, srv.stderr()).toBe(0);
  return { sent, received };
}

describe.skipIf(!existsSync(join(root, SRV)))('clt and srv reconcile', () => {
  it.each([
    ['TCP, 2 clt threads, 1 srv thread', '127.0.0.1:0', ['--threads', '1'], ['--threads', '2', '--conns', '4']],
    ['TCP, 4 clt threads in 2 processes, 2 srv threads', '127.0.0.1:0', ['--threads', '2'], ['--threads', '4', '--procs', '2', '--conns', '4']],
    ['TCP, 3 clt threads, srv in 2 processes', '127.0.0.1:0', ['--threads', '2', '--procs', '2'], ['--threads', '3', '--conns', '5']],
    ['Unix, 2 clt threads in 2 processes, 2 srv threads', `unix:${join(tmpdir(), `clt-rec-${process.pid}.sock`)}`, ['--threads', '2'], ['--threads', '2', '--procs', '2', '--conns', '4']],
  ])('%s: txBytes of clt = rxBytes of srv', async (_name, listen, srvArgs, cltArgs) => {
    const { sent, received } = await reconcile(listen, srvArgs, cltArgs);
    expect(sent.failed).toBe(0);
    expect(sent.connected).toBeGreaterThan(0);
    expect(sent.reset).toBe(0);
    expect(sent.txBytes).toBeGreaterThan(0);
    expect(received.rxBytes).toBe(sent.txBytes);
  });

  it('with EAGAIN storms on both sides and EMFILE on accept (injected): still exact, and srv reports the pauses', async () => {
    const { sent, received } = await reconcile(
      '127.0.0.1:0',
      ['--threads', '2'],
      ['--threads', '2', '--conns', '6'],
      { srv: 'recv:EAGAIN:0.5,accept:EMFILE:1:2', clt: 'send:EAGAIN:0.5' },
    );
    expect(sent).toMatchObject({ failed: 0, reset: 0, connected: 12 });
    expect(sent.txBytes).toBeGreaterThan(0);
    expect(received.rxBytes).toBe(sent.txBytes);
    expect(received.accepted).toBe(12);
    // Each injected EMFILE once, in the total and in the threads (it used to count twice).
    expect(received.errors).toEqual({ EMFILE: 2 });
    const perThread = received.perThread as { errors: Record<string, number> }[];
    expect(perThread.reduce((a, t) => a + (t.errors.EMFILE ?? 0), 0)).toBe(2);
  });

  it('UDP: datagrams pushed natively; srv gets at most what clt sent (UDP may drop)', async () => {
    const srv = run(SRV, ['--json', '--udp', '127.0.0.1:0', '--threads', '1']);
    const target = ((await srv.json('listening')).addresses as { text: string }[])[0]!.text.replace(/^udp /, '');
    const clt = run(CLT, ['--json', '--udp', '--duration', '1', '--threads', '2', '--size', '1400', '--target', target]);
    const sent = await clt.json('summary');
    expect((await clt.exited).code, clt.stderr()).toBe(0);
    srv.child.kill('SIGTERM');
    const received = await srv.json('summary');
    expect(sent).toMatchObject({ mode: 'udp', connected: 2, failed: 0 });
    expect(sent.datagramsOut).toBeGreaterThan(0);
    expect(sent.txBytes).toBe(sent.datagramsOut * 1400);
    expect(received.datagramsIn).toBeGreaterThan(0);
    expect(received.datagramsIn).toBeLessThanOrEqual(sent.datagramsOut);
    expect(received.rxBytes).toBe(received.datagramsIn * 1400);
  });
});
