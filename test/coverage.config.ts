// The suite as `npm run coverage` runs it (scripts/coverage.mjs): the same tests, with the
// library loaded by Node itself (not vitest's module runner), so that V8's coverage of the test
// processes names dist/ files that c8 maps back to src/ through their source maps; and test
// processes that exit when stopped, so that Node writes that coverage.
import { defineConfig, mergeConfig } from 'vitest/config';

import base from '../vitest.config';

export default mergeConfig(
  base,
  defineConfig({
    test: {
      server: { deps: { external: [/\/dist\//] } },
      setupFiles: ['test/setup/exit-on-term.ts'],
    },
  }),
);
