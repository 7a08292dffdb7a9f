// iapp file reads for bench/disk.mjs (the same reads and output as bench/peers/node-fs-read.mjs,
// the fs.promises baseline). One case per process:
//
//   node bench/servers/iapp-disk.mjs --engine io_uring|pool [--disk-threads N] --path FILE
//        --size BYTES --pattern rand|seq --block BYTES --qd N [--duration S] [--warmup-s S]
//        [--full-every K] [--case LABEL]
//
// createRuntime({ threads: 1, diskEngine, diskThreads }): one loop thread runs the reads
// (bench/servers/iapp-disk-loop.mjs); this main thread only calls it and waits. With
// --engine io_uring the loop's reads go through its ring (the run fails if loop.diskEngine is not
// 'io_uring'); with pool through the process-wide disk pool (--disk-threads, default 4).
// Prints one JSON line on stdout: {"system", "case", "engine", ...the loop's figures..., "cpuTotalS"}.
import { parseArgs } from 'node:util';
import { RUN_USAGE, failAndExit, giveUpAfter, runArgs, runOptions } from '../peers/node-fs-read.mjs';

const who = 'iapp-disk';
const usage = `usage: node bench/servers/iapp-disk.mjs --engine io_uring|pool [--disk-threads N] ${RUN_USAGE}`;
let values;
try {
  ({ values } = parseArgs({ options: { ...runOptions, engine: { type: 'string' }, 'disk-threads': { type: 'string' } } }));
} catch (err) {
  console.error(`${who}: ${err.message}\n${usage}`);
  process.exit(2);
}
const { args: a, error } = runArgs(values);
const engine = values.engine;
const diskThreads = values['disk-threads'] === undefined ? undefined : Number(values['disk-threads']);
if (error || !['io_uring', 'pool'].includes(engine) || !(diskThreads === undefined || (Number.isInteger(diskThreads) && diskThreads >= 1 && diskThreads <= 1024))) {
  console.error(`${who}: ${error ?? (engine ? '--disk-threads: 1..1024' : '--engine: io_uring or pool')}\n${usage}`);
  process.exit(2);
}
process.on('uncaughtException', (e) => failAndExit(`${who} (${engine})`, e));
process.on('unhandledRejection', (e) => failAndExit(`${who} (${engine})`, e));
giveUpAfter(who, a);

const { createRuntime } = await import('../../dist/src/index.js');
const rt = await createRuntime({ module: new URL('./iapp-disk-loop.mjs', import.meta.url), threads: 1, diskEngine: engine, ...(diskThreads ? { diskThreads } : {}) });
rt.on?.('handler-error', ({ error: e }) => failAndExit(`${who} (${engine})`, e));
const r = await rt.call(0, 'run', { engine, path: a.path, size: a.size, pattern: a.pattern, block: a.block, qd: a.qd, durationS: a.durationS, warmS: a.warmS, fullEvery: a.fullEvery }, { timeoutMs: Math.max(60, 3 * (a.durationS + a.warmS) + 30) * 1000 });
if (r.engine !== engine) failAndExit(`${who} (${engine})`, new Error(`ran on '${r.engine}'`));
const u = process.cpuUsage();
const out = { system: `iapp-${engine === 'io_uring' ? 'uring' : 'pool'}`, case: a.label, ...r, diskThreads: diskThreads ?? 4, cpuTotalS: (u.user + u.system) / 1e6 };
process.stdout.write(`${JSON.stringify(out)}\n`);
await rt.close({ timeoutMs: 2000 });
process.exit(0);
