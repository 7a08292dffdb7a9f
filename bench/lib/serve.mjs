// What the benchmark's server processes share: the READY line, the JSON summary on SIGTERM or
// SIGINT, and counting failures by code. A scenario script starts a server, reads `READY <port>`,
// drives it, signals it and parses the last line.

/** Counts a failure (`st.failed`, `st.errors[code]`) once per connection. */
export function countFailure(st, err) {
  st.failed++;
  const code = err?.code ?? 'unknown';
  st.errors[code] = (st.errors[code] ?? 0) + 1;
}

/** Runs a node:net server on 127.0.0.1:port; prints READY, then `st` as JSON when signalled. */
export function serveNet(name, server, port, st) {
  server.on('error', (err) => {
    console.error(`${name}: ${err.message}`);
    process.exit(1);
  });
  server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => process.stdout.write(`READY ${server.address().port}\n`));
  onStop(() => process.stdout.write(`${JSON.stringify(st)}\n`, () => process.exit(0)));
}

/**
 * An iapp runtime whose loop threads listen (setup returns `{ port }`); prints READY, then, when
 * signalled, the sum of the loops' `stats().app` fields `fields` with `accepted` and `errors`.
 */
export async function serveRuntime(name, options, fields) {
  const { createRuntime } = await import('../../dist/src/index.js');
  const rt = await createRuntime(options);
  rt.on('handler-error', ({ error }) => console.error(`${name}: handler error: ${error.message}`));
  console.log(`READY ${rt.results[0].port}`);
  onStop(async () => {
    const stats = await rt.stats();
    await rt.close({ timeoutMs: 500 });
    const app = stats.map((s) => s.app ?? {});
    const out = { accepted: stats.reduce((a, s) => a + s.accepted, 0) };
    for (const k of fields) out[k] = app.reduce((a, x) => a + (x[k] ?? 0), 0);
    out.errors = {};
    for (const x of app) for (const [k, v] of Object.entries(x.errors ?? {})) out.errors[k] = (out.errors[k] ?? 0) + v;
    console.log(JSON.stringify(out));
    process.exit(0);
  });
}

/** Exits with a usage line (status 2). */
export function usage(name, text) {
  console.error(`${name}: ${text}`);
  process.exit(2);
}

/** Parses a numeric IPv4 `HOST:PORT` or exits with a usage line. */
export function parseTarget(name, value) {
  const m = /^([\d.]+):(\d+)$/.exec(value ?? '');
  if (!m) usage(name, '--target HOST:PORT (numeric IPv4) is required');
  return { host: m[1], port: Number(m[2]) };
}

function onStop(fn) {
  process.once('SIGTERM', fn);
  process.once('SIGINT', fn);
}
