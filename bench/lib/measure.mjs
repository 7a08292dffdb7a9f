// The measuring every scenario's runOnce shares: the wall time of the measured part of a run,
// the machine's CPU over it (to tell load from other processes), optionally the kernel's
// listen-queue overflows, and the flags these raise.
import { busyBetween, cpuTimes, listenOverflows, now } from './harness.mjs';
import { FOREIGN_MAX, flagNotes } from './report.mjs';

/**
 * Runs `body(window)` as one measured run. The window opens as body starts (`window.t0`) and
 * closes at `window.close()`, which returns its wall seconds (or when body returns). body returns
 * its row with `ownCpuS`, the CPU-seconds in the window of the run's own processes (server,
 * client), and its `flags`. Returns the row with `wallS` (the window's, unless the row has its
 * own), `foreign` (the CPU of everything else per second of the window, in cores; with
 * `selfIsOwn`, this harness's CPU is the run's too), `flags` (plus `ListenOverflows` with
 * `overflows`, and 'other load (% of a core)' above `foreignMax`) and `notes`.
 */
export async function measureRun(body, { foreignMax = FOREIGN_MAX, selfIsOwn = false, overflows = false } = {}) {
  const ovf0 = overflows ? listenOverflows() : 0;
  const cores0 = cpuTimes();
  const self0 = process.cpuUsage();
  const t0 = now();
  let end;
  const window = {
    t0,
    close() {
      end ??= { wallS: now() - t0, cores: cpuTimes(), self: process.cpuUsage(self0) };
      return end.wallS;
    },
  };
  const { ownCpuS, flags = {}, ...row } = await body(window);
  window.close();
  const selfS = selfIsOwn ? (end.self.user + end.self.system) / 1e6 : 0;
  const foreign = (busyBetween(cores0, end.cores) - ownCpuS - selfS) / end.wallS;
  if (overflows) {
    const ovf = listenOverflows() - ovf0;
    if (ovf > 0) flags.ListenOverflows = ovf;
  }
  if (foreign > foreignMax) flags['other load (% of a core)'] = Math.round(foreign * 100);
  return { wallS: end.wallS, ...row, foreign, flags, notes: flagNotes(flags) };
}
