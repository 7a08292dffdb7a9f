// Coverage runs only (test/coverage.config.ts): vitest stops its test processes with SIGTERM,
// which would end them before Node writes their V8 coverage (NODE_V8_COVERAGE); exiting instead
// writes it. Loop threads write theirs when their runtime closes.
process.once('SIGTERM', () => process.exit(0));
