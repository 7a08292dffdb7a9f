// A real nats-server for the bus tests (Debian's nats-server package): started on a port the
// kernel picks, on loopback or inside a namespace the test made (`prefix`: ip netns exec …), and
// ready once it says where it listens. The caller stops it (stop() kills it and waits for the exit).
import { spawn } from 'node:child_process';

import { track } from './proc.js';

export interface Nats {
  url: string;
  stop: () => Promise<void>;
}

export async function startNats(host = '127.0.0.1', prefix: string[] = []): Promise<Nats> {
  const cmd = [...prefix, 'nats-server', '-a', host, '-p', '-1'];
  const child = track(spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] }));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      log += d;
      const m = /Listening for client connections on (\S+):(\d+)/.exec(log);
      if (m) resolve(`nats://${m[1]}:${m[2]}`);
    });
    void exited.then(() => reject(new Error(`nats-server exited before listening:\n${log}`)));
  });
  return {
    url,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
