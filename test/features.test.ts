// The optional kernel features this machine has, as the probe sees them (test/features.ts).
//
// What it proves: the probe runs and answers for io_uring, pidfd, SO_REUSEPORT and network namespaces; each missing
// feature shows as a skipped test with the reason in its name; a feature IAPP_REQUIRE_FEATURES
// names (CI sets it) fails here when missing, and only known names are accepted.
import { describe, expect, it } from 'vitest';

import { FEATURES, features, itWithFeature, requiredFeatures } from './features.js';

describe('kernel features', () => {
  for (const f of FEATURES) itWithFeature(f, `${f} is available`, async () => expect(features()[f].has).toBe(true));

  it('names only known features in IAPP_REQUIRE_FEATURES', () => {
    expect(() => requiredFeatures()).not.toThrow();
    const saved = process.env.IAPP_REQUIRE_FEATURES;
    try {
      process.env.IAPP_REQUIRE_FEATURES = 'io_uring,uring';
      expect(() => requiredFeatures()).toThrow(/unknown feature 'uring'/);
    } finally {
      if (saved === undefined) delete process.env.IAPP_REQUIRE_FEATURES;
      else process.env.IAPP_REQUIRE_FEATURES = saved;
    }
  });
});
