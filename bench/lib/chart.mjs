// A small SVG line chart for the bench report: axes with ticks, a linear or log-scale x (connection
// counts) or categorical x (cases), a linear y from 0 or a log y (latencies), one line per series with optional min-max
// bars, and a legend. On a categorical x the points are not joined: each series' markers sit side
// by side within their category. Dashed series get hollow markers. No dependencies; the output is
// a standalone SVG string.
//
//   lineChart({ title, x: { label, scale: 'log' | 'linear' | 'category', categories },
//               y: { label, scale: 'linear' | 'log' }, series: [{ name, color?, dash?, points: [{ x, y, min?, max? }] }] })
// color: a CSS colour or an index into the palette (default: the series' own index).

const W = 640;
const H = 380;
const M = { top: 40, right: 170, bottom: 50, left: 64 }; // the legend sits in the right margin
const CHAR_W = 7; // about the width of a 12 px sans-serif character

/** Splits a label into lines of at most `max` characters, at spaces. */
function wrap(label, max) {
  const lines = [];
  for (const w of String(label).split(' ')) {
    if (lines.length && `${lines.at(-1)} ${w}`.length <= max) lines[lines.length - 1] += ` ${w}`;
    else lines.push(w);
  }
  return lines;
}
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const num = (v) => (Math.round(v * 10) / 10).toString();

/** Tick label: 1, 64, 1K, 4K, 1M for counts; up to 3 significant digits otherwise. */
function fmtTick(v) {
  if (v !== 0 && Math.abs(v) >= 1000 && Number.isInteger(v)) {
    for (const [d, s] of [[1 << 20, 'M'], [1 << 10, 'K'], [1e6, 'M'], [1e3, 'k']]) if (v % d === 0) return `${v / d}${s}`;
  }
  return String(Number(v.toPrecision(3)));
}

/** About `n` round linear ticks from 0 to at least `max`: [ticks, top]. */
function linearTicks(max, n = 5) {
  if (!(max > 0)) return [[0, 1], 1];
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const top = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return [ticks, top];
}

export function lineChart({ title, x, y, series }) {
  const cat = x.scale === 'category';
  const labelLines = cat ? Math.max(...x.categories.map((c) => wrap(c, Math.floor((W - M.left - M.right) / x.categories.length / CHAR_W)).length)) : 1;
  const bottom = M.bottom + (labelLines - 1) * 14;
  const h = H + (labelLines - 1) * 14;
  const pw = W - M.left - M.right;
  const ph = h - M.top - bottom;
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  // x scale
  let sx;
  let xTicks;
  let step = 0;
  if (cat) {
    const cats = x.categories;
    step = pw / cats.length;
    sx = (v) => M.left + step * (cats.indexOf(v) + 0.5);
    xTicks = cats.map((c) => [sx(c), c]);
  } else {
    const xs = pts.map((p) => p.x);
    let lo = Math.min(...xs);
    let hi = Math.max(...xs);
    if (x.scale === 'log') {
      const a = Math.log(lo);
      const b = Math.log(hi);
      const pad = (b - a || 1) * 0.06;
      sx = (v) => M.left + ((Math.log(v) - (a - pad)) / (b - a + 2 * pad)) * pw;
      xTicks = [...new Set(xs)].sort((p, q) => p - q).map((v) => [sx(v), fmtTick(v)]); // the measured counts
    } else {
      if (hi === lo) hi = lo + 1;
      sx = (v) => M.left + ((v - lo) / (hi - lo)) * pw;
      xTicks = linearTicks(hi)[0].filter((v) => v >= lo).map((v) => [sx(v), fmtTick(v)]);
    }
  }
  // y scale: linear from 0, or log over whole decades (ticks 1, 2, 5 x 10^k when they are few)
  const yMax = Math.max(...pts.map((p) => Math.max(p.y, p.max ?? p.y)), 0);
  let sy;
  let yTicks;
  if (y.scale === 'log') {
    const yMin = Math.min(...pts.map((p) => Math.min(p.y, p.min ?? p.y)).filter((v) => v > 0));
    const d0 = Math.floor(Math.log10(yMin));
    const d1 = Math.max(d0 + 1, Math.ceil(Math.log10(yMax)));
    sy = (v) => M.top + ph - ((Math.log10(Math.max(v, 10 ** d0)) - d0) / (d1 - d0)) * ph;
    yTicks = [];
    for (let d = d0; d <= d1; d++) for (const m of d1 - d0 <= 2 ? [1, 2, 5] : [1]) if (d < d1 || m === 1) yTicks.push(Number((m * 10 ** d).toPrecision(3)));
  } else {
    const [ticks, yTop] = linearTicks(yMax);
    sy = (v) => M.top + ph - (v / yTop) * ph;
    yTicks = ticks;
  }

  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${h}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // grid and axes
  for (const v of yTicks) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${num(sy(v))}" y2="${num(sy(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${num(sy(v) + 4)}" text-anchor="end">${fmtTick(v)}</text>`);
  }
  for (const [px, label] of xTicks) {
    out.push(`<line x1="${num(px)}" x2="${num(px)}" y1="${M.top + ph}" y2="${M.top + ph + 5}" stroke="#333"/>`);
    const ls = cat ? wrap(label, Math.floor(step / CHAR_W)) : [label];
    ls.forEach((l, i) => out.push(`<text x="${num(px)}" y="${M.top + ph + 18 + i * 14}" text-anchor="middle">${esc(l)}</text>`));
  }
  out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${M.top + ph}" y2="${M.top + ph}" stroke="#333"/>`);
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}" stroke="#333"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${h - 10}" text-anchor="middle">${esc(x.label)}</text>`);
  out.push(`<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(y.label)}</text>`);
  // series
  // side by side: markers within a category; only the min-max bars on a numeric x
  const gap = cat ? Math.min(16, step / (series.length + 1)) : 5;
  series.forEach((s, i) => {
    const color = typeof s.color === 'string' ? s.color : COLORS[(s.color ?? i) % COLORS.length];
    const dash = s.dash ? ' stroke-dasharray="6 4"' : '';
    const off = (i - (series.length - 1) / 2) * gap;
    const ps = s.points.filter((p) => Number.isFinite(p.y)).sort((p, q) => sx(p.x) - sx(q.x));
    if (!cat && ps.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${ps.map((p) => `${num(sx(p.x))},${num(sy(p.y))}`).join(' ')}"/>`);
    for (const p of ps) {
      const px = sx(p.x) + off;
      if (Number.isFinite(p.min) && Number.isFinite(p.max) && p.max > p.min) {
        out.push(`<line x1="${num(px)}" x2="${num(px)}" y1="${num(sy(p.min))}" y2="${num(sy(p.max))}" stroke="${color}" stroke-opacity="0.45" stroke-width="4"/>`);
      }
      const cx = cat ? px : sx(p.x);
      out.push(`<circle cx="${num(cx)}" cy="${num(sy(p.y))}" r="${cat ? 4.5 : 3.5}" fill="${s.dash ? 'white' : color}" stroke="${color}" stroke-width="2"/>`);
    }
    const ly = M.top + 10 + i * 20;
    out.push(`<line x1="${W - M.right + 16}" x2="${W - M.right + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${W - M.right + 46}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
