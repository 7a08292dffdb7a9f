// Latency histograms in microseconds. HdrHistogram keeps 3 significant digits at any scale in a
// few kB, and its compressed encoding lets each loop thread send its histogram as a string that
// the main process decodes and adds up exactly (no averaging of percentiles).
import hdr from 'hdr-histogram-js';

/** Percentiles of a run, in µs. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** A histogram that records microseconds and travels as a base64 string. */
export class Latency {
  readonly #h = hdr.build({ bitBucketSize: 64, autoResize: true, numberOfSignificantValueDigits: 3 });

  /** Records one latency; sub-microsecond values count as 1 µs so they stay visible. */
  record(us: number): void {
    this.#h.recordValue(Math.max(1, Math.round(us)));
  }

  get count(): number {
    return this.#h.totalCount;
  }

  /** The histogram as a compressed base64 string (structured-clone friendly). */
  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.#h);
  }

  /** Adds a histogram that `encode()` produced. */
  addEncoded(text: string): void {
    if (text === '') return;
    const other = hdr.decodeFromCompressedBase64(text);
    this.#h.add(other);
    other.destroy();
  }

  /** Percentiles; undefined when nothing was recorded. */
  summary(): LatencySummary | undefined {
    const h = this.#h;
    if (h.totalCount === 0) return undefined;
    const at = (p: number): number => h.getValueAtPercentile(p);
    // maxValue is the top of the highest bucket: report at most what p100 says.
    return { count: h.totalCount, p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: at(100) };
  }
}
