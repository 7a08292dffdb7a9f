// Optional kernel features (io_uring, pidfd, SO_REUSEPORT) and network namespaces (root): one probe each
// (test/fixtures/features.mjs, run once per test file that asks), and itWithFeature() for a test
// that needs one: where the feature is missing the test is skipped with the probe's reason in its
// name. IAPP_REQUIRE_FEATURES (a comma-separated list; CI names what its machine has) turns such a
// skip into a failure, so a feature CI has cannot go untested there.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { it } from 'vitest';

export type Feature = 'io_uring' | 'pidfd' | 'reuseport' | 'netns';
export const FEATURES: readonly Feature[] = ['io_uring', 'pidfd', 'reuseport', 'netns'];

let probed: Record<Feature, { has: boolean; why?: string }> | undefined;

/** What the probe found, run on first use (a child process: a few hundred ms). */
export function features(): Record<Feature, { has: boolean; why?: string }> {
  if (!probed) {
    const script = fileURLToPath(new URL('./fixtures/features.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`the feature probe failed (exit ${r.status ?? r.signal}): ${r.stderr}`);
    probed = JSON.parse(r.stdout) as Record<Feature, { has: boolean; why?: string }>;
  }
  return probed;
}

/** The features IAPP_REQUIRE_FEATURES names (unknown names are an error, not ignored). */
export function requiredFeatures(): Feature[] {
  const list = (process.env.IAPP_REQUIRE_FEATURES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const f of list) if (!FEATURES.includes(f as Feature)) throw new Error(`IAPP_REQUIRE_FEATURES: unknown feature '${f}' (known: ${FEATURES.join(', ')})`);
  return list as Feature[];
}

/** `it(name, fn)` for a test that needs `feature`. */
export function itWithFeature(feature: Feature, name: string, fn: () => Promise<void>, timeout?: number): void {
  const f = features()[feature];
  if (f.has) it(name, fn, timeout);
  else if (requiredFeatures().includes(feature))
    it(name, () => {
      throw new Error(`${feature} is missing (${f.why}), and IAPP_REQUIRE_FEATURES says this run must have it`);
    });
  else it.skip(`${name} [skipped: no ${feature}: ${f.why}]`, fn);
}
