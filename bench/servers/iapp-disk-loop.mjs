// The loop module of bench/servers/iapp-disk.mjs: file reads through the loop's File, measured on
// the loop's own thread. One handler:
//   'run' (call) { engine, path, size, pattern, block, qd, durationS, warmS, fullEvery }
//         -> { engine, ...measureReads() }
// The driver is bench/peers/node-fs-read.mjs's measureReads(), the same JavaScript the node-fs
// peer runs; here each read is `file.readv([buf], pos)` into the slot's own Buffer (the
// counterpart of Node's filehandle.read(buf, 0, len, pos); `file.read(len, pos)` would allocate
// a Buffer per read). The loop's disk engine must be the one asked for: the run fails otherwise.
import { measureReads } from '../peers/node-fs-read.mjs';

export function setup(loop) {
  loop.handle('run', async (a) => {
    const engine = loop.diskEngine; // throws if 'io_uring' was asked for and the kernel has no ring
    if (engine !== a.engine) throw new Error(`loop.diskEngine is '${engine}', the run asked for '${a.engine}'`);
    const file = await loop.open(a.path);
    try {
      const st = await file.stat();
      if (st.size !== a.size) throw new Error(`${a.path} has ${st.size} bytes, expected ${a.size}`);
      const r = await measureReads({ ...a, read: (_slot, buf, pos) => file.readv([buf], pos) });
      return { engine: loop.diskEngine, ...r };
    } finally {
      await file.close();
    }
  });
  return {};
}
