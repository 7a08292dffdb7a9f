// Reporting shared by the bench scenarios: option parsing, the interleaved run loop with its
// quiet-machine checks and repeats, per-system summaries with paired ratios, the printed tables,
// the `--json` lines and the results file.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { buildReferences } from './reference.mjs';
import { machineInfo, now, summarize, waitQuiet } from './harness.mjs';

/** Share of a core other processes may use during a run before it counts as disturbed. */
export const FOREIGN_MAX = 0.25;

/** Options of the interleaved scenarios (sink, push); each adds its own. */
export const interleavedOptions = {
  quick: { type: 'boolean', default: false },
  duration: { type: 'string' },
  runs: { type: 'string' },
  'only-conns': { type: 'string' },
  systems: { type: 'string' },
  'noise-floor': { type: 'boolean', default: false },
  'no-pin': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  out: { type: 'string' },
};

/** Progress and tables go to stderr; stdout carries only the `--json` lines. */
export const log = (s = '') => process.stderr.write(`${s}\n`);

/** Number with `d` decimals, or '-'. */
export const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
/** A summarize() result as "median (min-max)", or '-'. */
export const rng = (s, d = 2) => (s.n ? `${f(s.median, d)} (${f(s.min, d)}-${f(s.max, d)})` : '-');
/** A summarize() result's median as a percentage, or '-'. */
export const pct = (s) => (s.n ? `${Math.round(s.median * 100)}%` : '-');

/**
 * parseArgs over `options` (plus -h/--help); prints `usage` and exits 2 on a bad option, or 0
 * after printing it for --help. Returns the values.
 */
export function parseOptions(options, usage) {
  let opts;
  try {
    ({ values: opts } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h', default: false } } }));
  } catch (err) {
    console.error(`${err.message}\n${usage}`);
    process.exit(2);
  }
  if (opts.help) {
    console.error(usage);
    process.exit(0);
  }
  return opts;
}

/** Builds the C references ({ sink, push, connect, udpecho }) or exits 1 with `<scenario> bench: <why>`. */
export function referencesOrExit(scenario) {
  try {
    return buildReferences({ log });
  } catch (err) {
    console.error(`${scenario} bench: ${err.message}`);
    process.exit(1);
  }
}

/** The systems named in a `--systems` list (all if none), in their own order; exits 2 on an unknown name. */
export function selectSystems(systems, list) {
  if (!list) return systems;
  const want = list.split(',').map((s) => s.trim());
  const unknown = want.filter((w) => !systems.some((s) => s.name === w));
  if (unknown.length) {
    console.error(`--systems: unknown ${unknown.join(', ')} (known: ${systems.map((s) => s.name).join(', ')})`);
    process.exit(2);
  }
  return systems.filter((s) => want.includes(s.name));
}

/** The results object's head: { scenario, started, machine, config, ...rest }. */
/**
 * The systems a scenario can run: `selected` (from selectSystems) without those that need the
 * library (`needsLibrary(system)`, default: kind 'iapp') when `index` (dist/src/index.js) is not
 * built, said in a NOTE. Exits 2 when nothing is left.
 */
export function runnableSystems(selected, index, needsLibrary = (s) => s.kind === 'iapp') {
  let systems = selected;
  const skipped = systems.filter(needsLibrary);
  if (skipped.length && !existsSync(index)) {
    log(`NOTE: ${index} not built (npx tsc -p tsconfig.json): skipping ${skipped.map((s) => s.name).join(' and ')}`);
    systems = systems.filter((s) => !needsLibrary(s));
  }
  if (!systems.length) {
    console.error('no systems to run');
    process.exit(2);
  }
  return systems;
}

export function newResults(scenario, config, rest = { runs: [], summary: [] }) {
  return { scenario, started: new Date().toISOString(), machine: machineInfo(), config, ...rest };
}

/** Writes the results file (pretty JSON, one space indent), creating its folder. */
export function writeResults(outFile, results) {
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 1)}\n`);
}

/** The closing `Results: <file> (<s> s)` line. */
export function logResultsFile(outFile, elapsedS) {
  log(`Results: ${relative(process.cwd(), outFile)} (${Math.round(elapsedS)} s)`);
}

/** Prints a table: `cols` is [[heading, width], ...] (last width 0), `rows` arrays of cell values. */
export function logTable(cols, rows) {
  log(cols.map(([h, w]) => h.padEnd(w)).join(' '));
  for (const vals of rows) log(vals.map((v, i) => String(v).padEnd(cols[i][1])).join(' '));
}

/** Writes each object as one JSON line on stdout. */
export function writeJsonLines(objects) {
  for (const o of objects) process.stdout.write(`${JSON.stringify(o)}\n`);
}

/** "name value" for every flag of a run. */
export const flagNotes = (flags) => Object.entries(flags).map(([k, v]) => `${k} ${v}`);

/**
 * summarize() of the per-run ratios sys/peer of `key`, pairing runs of the same round, with
 * `inverse`: summarize() of the same rounds' peer/sys (what the `--json` lines give for a metric
 * where lower is better, so that their ratio > 1 always means the system beats its peer).
 */
export function pairedRatios(rows, sys, peer, key) {
  const out = [];
  for (const r of rows.filter((x) => x.system === sys && x.ok)) {
    const p = rows.find((x) => x.system === peer && x.run === r.run && x.ok);
    if (p && p[key] > 0) out.push(r[key] / p[key]);
  }
  return { ...summarize(out), inverse: summarize(out.filter((x) => x > 0).map((x) => 1 / x)) };
}

/**
 * The cost metrics (lower is better) of sink and push: their summaries' ratios are system/peer,
 * so their `--json` ratio is inverted to peer/system (caseJsonLines `costMetrics`); bench/http.mjs
 * passes its own list (latency percentiles and CPU per request).
 */
export const COST_METRICS = ['cpuPerGB', 'cpuPerGBAll'];

/** A pairedRatios() result turned into peer/system: {median, min, max, n}. */
export function invertedRatio(r) {
  return r.inverse ?? { median: 1 / r.median, min: 1 / r.max, max: 1 / r.min, n: r.n };
}

/**
 * One summary per system over a case's rows: { system, kind, runs, failedRuns, [errors,]
 * <metric>: summarize(...) for each of `metrics` (name -> row key or row => value), notes, vs }.
 * notes: "flag in k/n runs", with " (max v)" if `flagMax`. vs[peer]: paired ratios of `ratios`
 * (name -> row key) against each of `peers` that ran, in that order.
 */
export function summarizeSystems(rows, systems, { metrics, peers, ratios = { throughput: 'gbps', cpuPerGB: 'cpuPerGB' }, errors = false, flagMax = false }) {
  return systems.map((s) => {
    const mine = rows.filter((r) => r.system === s.name && r.ok);
    const failed = rows.filter((r) => r.system === s.name && !r.ok);
    const sum = { system: s.name, kind: s.kind, runs: mine.length, failedRuns: failed.length };
    if (errors) sum.errors = failed.map((r) => r.error);
    for (const [name, key] of Object.entries(metrics)) sum[name] = summarize(mine.map(typeof key === 'function' ? key : (r) => r[key]));
    sum.notes = [...new Set(mine.flatMap((r) => Object.keys(r.flags)))].map((k) => {
      const vs = mine.filter((r) => k in r.flags).map((r) => r.flags[k]);
      if (!flagMax) return `${k} in ${vs.length}/${mine.length}`;
      const big = vs.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a));
      return `${k} in ${vs.length}/${mine.length} (max ${big})`;
    });
    sum.vs = {};
    for (const peer of peers) {
      if (peer === s.name || !systems.some((x) => x.name === peer)) continue;
      sum.vs[peer] = Object.fromEntries(Object.entries(ratios).map(([name, key]) => [name, pairedRatios(rows, s.name, peer, key)]));
    }
    return sum;
  });
}

/** A table cell for a summary's ratio to `peer`: "median (min-max)", '1' for the peer itself, else '-'. */
export const ratioCell = (s, peer, metric) => (s.vs[peer] ? rng(s.vs[peer][metric]) : s.system === peer ? '1' : '-');
/** Table columns of the ratios to `peers`: GB/s for each, then CPU/GB for each. */
export const ratioColumns = (peers, width) => [...peers.map((p) => [`GB/s ÷${p}`, width]), ...peers.map((p) => [`CPU/GB ÷${p}`, width])];
/** The cells under ratioColumns(peers) for one summary. */
export const ratioCells = (s, peers) => [...peers.map((p) => ratioCell(s, p, 'throughput')), ...peers.map((p) => ratioCell(s, p, 'cpuPerGB'))];

/**
 * The `--json` lines of one case: per system that ran and metric, {scenario, case, system, metric,
 * value, unit, min, max, runs}, plus {peer, ratio, ratioMin, ratioMax} for kinds in `peerKinds` and
 * {refPeer, refRatio, refRatioMin, refRatioMax} for kinds in `refKinds`. Ratios are oriented so
 * that > 1 means the system is better than the peer: system/peer for throughput, peer/system for
 * the metrics in `costMetrics` (CPU-s/GB); min-max are the per-round extremes of that ratio. (The
 * printed tables keep system/peer, headed "÷peer", where lower is better for CPU/GB.)
 */
export function caseJsonLines(
  scenario,
  label,
  summary,
  {
    peer,
    ref,
    peerKinds = ['iapp'],
    refKinds = ['iapp'],
    costMetrics = COST_METRICS,
    metrics = [
      ['throughput', 'GB/s'],
      ['cpuPerGB', 'CPU-s/GB'],
    ],
  },
) {
  const lines = [];
  for (const s of summary) {
    if (!s.runs) continue;
    for (const [metric, unit] of metrics) {
      const st = s[metric];
      const o = { scenario, case: label, system: s.system, metric, value: st.median, unit, min: st.min, max: st.max, runs: st.n };
      if (peerKinds.includes(s.kind) && s.vs[peer]) {
        const r = costMetrics.includes(metric) ? invertedRatio(s.vs[peer][metric]) : s.vs[peer][metric];
        Object.assign(o, { peer, ratio: r.median, ratioMin: r.min, ratioMax: r.max });
      }
      if (refKinds.includes(s.kind) && s.vs[ref]) {
        const r = costMetrics.includes(metric) ? invertedRatio(s.vs[ref][metric]) : s.vs[ref][metric];
        Object.assign(o, { refPeer: ref, refRatio: r.median, refRatioMin: r.min, refRatioMax: r.max });
      }
      lines.push(o);
    }
  }
  return lines;
}

/**
 * The interleaved run loop (A B C A B C ...). Before each run it waits (up to `quietWaitS`, and
 * `quietBudgetS` in all) for a quiet machine; a run during which other processes used more than
 * `foreignMax` of a core (row.foreign) is repeated once, at most `maxRetriesShare` of
 * `plannedRuns` in all; a system that fails twice in a row is skipped from then on. Every row,
 * replaced ones included, goes to `results.runs`.
 *
 * Options: `recordBusy` puts busyBefore (cores) in each row and a busy machine into the flags as
 * well as the notes; `progress` shows the run under way on a TTY; `failIndent` prefixes the
 * failure lines.
 */
export function interleavedRunner({ results, plannedRuns, foreignMax = FOREIGN_MAX, maxRetriesShare, quietWaitS = 5, quietBudgetS = 30, recordBusy = false, progress = false, failIndent = '' }) {
  const failures = new Map(); // consecutive failures per system
  const st = { retries: 0, disturbed: 0, quietWaitedS: 0, tStart: now() };
  const clearLine = () => {
    if (progress && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  };
  /**
   * Runs `runs` rounds of `systems` for one case; `runOnce(sys)` measures a run (returning
   * { ...measures, foreign, flags, notes }), `logRow(row)` prints it. Returns the case's rows.
   */
  async function runCase({ label, base: caseBase, systems, runs, runOnce, logRow }) {
    const rows = [];
    for (let run = 1; run <= runs; run++) {
      for (const sys of systems) {
        if ((failures.get(sys.name) ?? 0) >= 2) continue;
        let row;
        for (let attempt = 0; ; attempt++) {
          if (progress && process.stderr.isTTY) process.stderr.write(`\r\x1b[K${label} run ${run}/${runs} ${sys.name}...`);
          const q = await waitQuiet({ timeoutS: Math.min(quietWaitS, Math.max(0, quietBudgetS - st.quietWaitedS)) });
          st.quietWaitedS += Math.max(0, q.waitedS - 0.2);
          const base = { case: label, ...caseBase, system: sys.name, run, attempt };
          if (recordBusy) base.busyBefore = q.busyCores;
          try {
            row = { ...base, ok: true, ...(await runOnce(sys)) };
            if (!q.quiet && q.quiet !== null) {
              if (recordBusy) row.flags['busy before (cores)'] = Number(f(q.busyCores));
              row.notes.push(`busy before ${f(q.busyCores)} cores`);
            }
            failures.set(sys.name, 0);
          } catch (err) {
            row = { ...base, ok: false, error: err.message, flags: {}, notes: [] };
            const n = (failures.get(sys.name) ?? 0) + 1;
            failures.set(sys.name, n);
            clearLine();
            log(`${failIndent}${sys.name} ${label} run ${run} failed: ${err.message}${n >= 2 ? ` (skipping ${sys.name} from now on)` : ''}`);
            break;
          }
          clearLine();
          logRow(row);
          if (!(row.foreign > foreignMax)) break;
          st.disturbed++;
          if (attempt >= 1 || st.retries >= maxRetriesShare * plannedRuns) break;
          st.retries++;
          row.replaced = true;
          results.runs.push(row);
          log(`  (other processes used ${Math.round(row.foreign * 100)}% of a core during that run: repeating it)`);
        }
        rows.push(row);
        results.runs.push(row);
      }
    }
    clearLine();
    return rows;
  }
  return {
    runCase,
    stats: st,
    /** Sets finished, elapsedS, disturbedRuns, repeatedRuns (and quietWaitS if asked) on the results. */
    finish({ quietWait = false } = {}) {
      results.finished = new Date().toISOString();
      results.elapsedS = now() - st.tStart;
      results.disturbedRuns = st.disturbed;
      results.repeatedRuns = st.retries;
      if (quietWait) results.quietWaitS = st.quietWaitedS;
    },
    /** The closing line about disturbed runs, if there were any. */
    logDisturbed() {
      if (st.disturbed) log(`${st.disturbed} run(s) saw other load (> ${foreignMax * 100}% of a core); ${st.retries} repeated. Noisy machine: treat with care.`);
    },
  };
}
