// Tests that need a program from outside Node (socat, systemd-socket-activate): where it is not
// on PATH the test is skipped, with the reason and the fix in its name, so `npm test` passes on a
// machine with only Node, npm, python3, make and g++. CI sets IAPP_REQUIRE_TOOLS=1: there a
// missing program fails the test instead, so nothing can skip silently where it must run.
import { spawnSync } from 'node:child_process';

import { it } from 'vitest';

/** Debian packages that provide each program the tests use. */
const PACKAGES: Record<string, string> = { socat: 'socat', 'systemd-socket-activate': 'systemd', ss: 'iproute2', ip: 'iproute2', 'nats-server': 'nats-server' };

export const toolsRequired = process.env.IAPP_REQUIRE_TOOLS === '1';

/** Whether `cmd` is on PATH (POSIX `command -v`: no program is run). */
export function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1" >/dev/null', 'sh', cmd], { stdio: 'ignore', timeout: 5000 }).status === 0;
}

/** `it(name, fn)` for a test that runs `cmd`. */
export function itWithTool(cmd: string, name: string, fn: () => Promise<void>, timeout?: number): void {
  if (onPath(cmd)) {
    it(name, fn, timeout);
  } else if (toolsRequired) {
    it(name, () => {
      throw new Error(`${cmd} is not on PATH, and IAPP_REQUIRE_TOOLS=1 says this run must have it (apt-get install ${PACKAGES[cmd] ?? cmd})`);
    });
  } else {
    // Skipped, not failed: the reason is in the test's name, and CI (IAPP_REQUIRE_TOOLS=1) runs it.
    it.skip(`${name} [skipped: ${cmd} is not on PATH; apt-get install ${PACKAGES[cmd] ?? cmd} to run it]`, fn);
  }
}

/**
 * `it(name, fn)` for a test of a call only some builds make (io_uring, say): where `has` is
 * false it is skipped, with `reason` in its name. The kqueue build (npm run test:kqueue) takes the
 * portable fallbacks; each of those has its own test, which runs there.
 */
export function itOnBuild(has: boolean, reason: string, name: string, fn: () => Promise<void>, timeout?: number): void {
  if (has) it(name, fn, timeout);
  else it.skip(`${name} [skipped: ${reason}]`, fn);
}
