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
 * `selfIsOwn`, this harness's CPU is the run's too), `flags` and `notes`. The flags get
 * `ListenOverflows` when the kernel's count grew since `overflowsSince` (a listenOverflows()
 * taken before the run's servers started) by the time body returns, and 'other load (% of a
 * core)' above `foreignMax`.
 */
export async function measureRun(body, { foreignMax = FOREIGN_MAX, selfIsOwn = false, overflowsSince } = {}) {
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
  if (overflowsSince !== undefined) {
    const ovf = listenOverflows() - overflowsSince;
    if (ovf > 0) flags.ListenOverflows = ovf;
  }
  if (foreign > foreignMax) flags['other load (% of a core)'] = Math.round(foreign * 100);
  return { wallS: end.wallS, ...row, foreign, flags, notes: flagNotes(flags) };
}
