// How much a syscall and a page fault cost on this machine, measured in ~0.1 s. Virtual machines
// differ here by orders of magnitude (under some hypervisors every guest page fault and syscall
// is a trip through the host), and the difference is not neutral: it taxes most the
// implementation that makes more syscalls or touches more fresh memory per byte (Node streams:
// a read and a write per 64 KiB, a new Buffer per read), so ratios measured on such a machine can
// be larger than on bare metal. The file and proxy scenarios record this next to their figures.
import { closeSync, openSync, readSync } from 'node:fs';

/**
 * { readUs: µs per 1-byte fs.readSync of /dev/zero (a syscall plus Node's binding, ~0.3-0.6 µs on
 * bare metal), faultUs: µs per 4 KiB page of first touch of fresh anonymous memory (fault and
 * zeroing, ~0.1-0.3 µs on bare metal), slow: a note when either is several times that, else
 * undefined }.
 */
export function vmProbe() {
  let readUs = NaN;
  try {
    const fd = openSync('/dev/zero', 'r');
    const b = Buffer.alloc(1);
    try {
      for (let i = 0; i < 1000; i++) readSync(fd, b, 0, 1, null); // warm the path
      const t = performance.now();
      for (let i = 0; i < 20_000; i++) readSync(fd, b, 0, 1, null);
      readUs = ((performance.now() - t) * 1000) / 20_000;
    } finally {
      closeSync(fd);
    }
  } catch {}
  // 16 MiB is above malloc's mmap threshold: a fresh mapping, every page faulted in by fill().
  const n = 16 << 20;
  let t = performance.now();
  const big = Buffer.allocUnsafeSlow(n);
  big.fill(1);
  const first = performance.now() - t;
  t = performance.now();
  big.fill(2);
  const again = performance.now() - t;
  const faultUs = (Math.max(0, first - again) * 1000) / (n / 4096);
  const out = { readUs: Math.round(readUs * 100) / 100, faultUs: Math.round(faultUs * 100) / 100 };
  if (readUs > 1.5 || faultUs > 1)
    out.slow = `syscalls and page faults are slow on this machine (a 1-byte read through Node ${out.readUs} µs, ~0.3-0.6 on bare metal; first touch of a page ${out.faultUs} µs, ~0.1-0.3): this taxes most the side making more syscalls and touching more fresh memory per byte (Node's streams), so ratios can be larger here than on bare metal`;
  return out;
}
