// The loop module of bench/servers/iapp-copy.mjs: 'copy' times loop.copyFile(src, dst) on this loop.
export function setup(loop) {
  loop.handle('copy', async ({ src, dst }) => {
    const t0 = process.hrtime.bigint();
    const bytes = await loop.copyFile(src, dst);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { bytes, seconds };
  });
}
