// The benchmark's output contract: ratios in `--json` lines mean "> 1 is better for iapp" for
// rates and costs alike, and the charts are well-formed SVG. (The benchmarks themselves are run
// by `npm run bench`, not by the tests: speeds are never asserted here.)
import { describe, expect, it } from 'vitest';

// @ts-expect-error: plain ESM without types
import { lineChart } from '../bench/lib/chart.mjs';
// @ts-expect-error: plain ESM without types
import { caseJsonLines, summarizeSystems } from '../bench/lib/report.mjs';

describe('bench --json lines', () => {
  it('orient ratios so that > 1 means iapp is better, for throughput and for CPU per GB', () => {
    const rows = [1, 2, 3].flatMap((run) => [
      { system: 'iapp-sink', run, ok: true, flags: {}, gbps: 4 + run / 10, cpuPerGB: 0.2 },
      { system: 'net-sink', run, ok: true, flags: {}, gbps: 2, cpuPerGB: 0.5 },
    ]);
    const systems = [
      { name: 'iapp-sink', kind: 'iapp' },
      { name: 'net-sink', kind: 'peer' },
    ];
    const summary = summarizeSystems(rows, systems, { metrics: { throughput: 'gbps', cpuPerGB: 'cpuPerGB' }, peers: ['net-sink'] });
    const lines = caseJsonLines('sink', 'conns=64,size=65536', summary, { peer: 'net-sink' }) as Record<string, unknown>[];
    const of = (system: string, metric: string): Record<string, unknown> => lines.find((l) => l.system === system && l.metric === metric)!;
    for (const l of lines) for (const k of ['scenario', 'case', 'system', 'metric', 'value', 'unit']) expect(l, k).toHaveProperty(k);
    expect(of('iapp-sink', 'throughput')).toMatchObject({ peer: 'net-sink', ratio: 2.1, ratioMin: 2.05, ratioMax: 2.15 });
    expect(of('iapp-sink', 'cpuPerGB').ratio).toBeCloseTo(2.5); // 0.5 / 0.2: less CPU is better
    expect(of('net-sink', 'throughput')).not.toHaveProperty('ratio'); // peers carry no ratio
  });
});

describe('bench charts', () => {
  it('draws a line per system on a log-scale connection axis, as standalone SVG', () => {
    const svg = lineChart({
      title: 'sink, 64 KiB writes: throughput',
      x: { label: 'connections', scale: 'log', values: [1, 64, 1024, 4096] },
      y: { label: 'GB/s' },
      series: [
        { name: 'iapp-sink', points: [1, 64, 1024, 4096].map((x, i) => ({ x, y: 3 + i, min: 2 + i, max: 4 + i })) },
        { name: 'node:net', points: [1, 64, 1024, 4096].map((x) => ({ x, y: 1 })) },
      ],
    }) as string;
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('iapp-sink');
    expect(svg).toContain('node:net');
    expect(svg).toContain('4K');
  });
});
