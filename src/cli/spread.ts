// How a run's loop threads are spread over its processes. Kept apart from fleet.ts, which loads
// the native addon, so that flag checking (preflight) can use it without the addon.

/** Loop threads of process `p` when `threads` are spread as evenly as possible over `procs`. */
export function threadsOf(threads: number, procs: number, p: number): number {
  return Math.floor(threads / procs) + (p < threads % procs ? 1 : 0);
}
