// Output shared by the command-line programs: human units, a live status line, tables, and the
// JSON-lines contract (one object per line: `"type":"stats"` each interval, `"type":"summary"` last).

/** Bytes with a decimal unit: `1.50 GB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(2)} ${units[i]}`;
}

/** Bytes per second as bits per second and bytes: `12.3 Gbit/s (1.54 GB/s)`. */
export function formatRate(bytesPerSecond: number): string {
  const bits = bytesPerSecond * 8;
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let v = bits;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 2)} ${units[i]}`;
}

/** A count with thousands separators. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** `{ ECONNRESET: 3, EPIPE: 1 }` → `ECONNRESET 3, EPIPE 1`, or `none`. */
export function formatErrors(errors: Record<string, number>): string {
  const e = Object.entries(errors).filter(([, n]) => n > 0);
  return e.length === 0 ? 'none' : e.map(([k, n]) => `${k} ${n}`).join(', ');
}

/** Adds error counts by code into `into`. */
export function addErrors(into: Record<string, number>, from: Record<string, number> | undefined): Record<string, number> {
  for (const [k, n] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + n;
  return into;
}

/**
 * Where a program's output goes. Human mode: a status line that rewrites itself on a terminal
 * (a plain line per update otherwise) and tables. JSON mode: one object per line on stdout,
 * nothing else on stdout.
 */
const outputGuarded = new WeakSet<NodeJS.WriteStream>();

export class Output {
  readonly json: boolean;
  readonly #tty: boolean;
  readonly #out: NodeJS.WriteStream;
  #statusShown = false;

  /** @param stream - where lines, tables and records go: stdout, or stderr when stdout is not ours (inetd) */
  constructor(json: boolean, stream: NodeJS.WriteStream = process.stdout) {
    this.json = json;
    this.#out = stream;
    this.#tty = !json && stream.isTTY === true;
    // A reader that goes away (`| head -1`) ends the output, not the run with a stack trace.
    if (!outputGuarded.has(stream)) {
      outputGuarded.add(stream);
      stream.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EPIPE') throw e;
      });
    }
  }

  /** One JSON object on its own line (JSON mode only). */
  record(obj: Record<string, unknown>): void {
    if (this.json) this.#out.write(`${JSON.stringify(obj)}\n`);
  }

  /** A line that a terminal overwrites with the next one (progress while ramping up). */
  status(line: string): void {
    if (this.json) return;
    if (this.#tty) {
      this.#out.write(`\r\x1b[K${line}`);
      this.#statusShown = true;
    } else {
      this.#out.write(`${line}\n`);
    }
  }

  /** A line that stays (interval lines, notices). */
  line(text: string): void {
    if (this.json) return;
    this.#endStatus();
    this.#out.write(`${text}\n`);
  }

  /**
   * A notice for humans that must not pollute JSON output: goes to stderr in JSON mode (and is
   * left out when the records themselves go to stderr).
   */
  note(text: string): void {
    if (!this.json) this.line(text);
    else if (this.#out !== process.stderr) process.stderr.write(`${text}\n`);
  }

  /** A table with aligned columns; numbers right-aligned. */
  table(rows: Record<string, string | number>[]): void {
    if (this.json || rows.length === 0) return;
    this.#endStatus();
    const cols = Object.keys(rows[0]!);
    const cell = (v: string | number | undefined): string => (v === undefined ? '' : typeof v === 'number' ? formatCount(v) : v);
    const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
    const fmt = (vals: (string | number | undefined)[]): string =>
      vals
        .map((v, i) => (typeof v === 'number' ? cell(v).padStart(width[i]!) : cell(v).padEnd(width[i]!)))
        .join('  ')
        .trimEnd();
    this.#out.write(`${fmt(cols)}\n${width.map((w) => '-'.repeat(w)).join('  ')}\n`);
    for (const r of rows) this.#out.write(`${fmt(cols.map((c) => r[c]))}\n`);
  }

  #endStatus(): void {
    if (this.#statusShown) {
      this.#out.write('\n');
      this.#statusShown = false;
    }
  }
}
