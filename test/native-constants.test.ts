// What native code and TypeScript must agree on, where TS keeps a copy for speed (a const enum
// compiles to literals): the addon exports the definitions, and these tests pin each TS copy to
// them, names and values, both ways.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { native } from '../dist/src/native.js';

const root = join(import.meta.dirname, '..');
const source = (file: string): string => readFileSync(join(root, file), 'utf8');

/** The members of `export const enum <name> { ... }` in a TS source, as { name: value }. */
function constEnum(src: string, name: string): Record<string, number> {
  const body = new RegExp(`export const enum ${name} \\{([^}]*)\\}`).exec(src);
  if (!body) throw new Error(`no const enum ${name}`);
  const out: Record<string, number> = {};
  for (const m of body[1]!.replace(/\/\*\*[\s\S]*?\*\//g, '').matchAll(/(\w+)\s*=\s*(-?\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

describe('native constants', () => {
  const ts = source('src/native.ts');

  it('the reader sees a changed copy, so the pins below can fail', () => {
    const edited = ts.replace(/(export const enum Rec \{[^}]*?Connect = )2/, '$19');
    expect(constEnum(edited, 'Rec').Connect).toBe(9);
    expect(constEnum(edited, 'Rec')).not.toEqual({ ...native.recordKinds });
    const dropped = ts.replace(/\n\s*UdpDrain = 22,/, '');
    expect(constEnum(dropped, 'Rec')).not.toEqual({ ...native.recordKinds });
  });

  it("record kinds: Rec in src/native.ts is the addon's recordKinds", () => {
    const kinds = native.recordKinds;
    expect(Object.isFrozen(kinds)).toBe(true);
    expect(constEnum(ts, 'Rec')).toEqual({ ...kinds });
    // Dense from 1 and distinct: nothing indexes by kind, but a gap or a repeat is a slip.
    const values = Object.values(kinds).sort((a, b) => a - b);
    expect(values).toEqual(values.map((_, i) => i + 1));
  });

  it("post results: PostResult in src/native.ts is the addon's postResults, and the messages' wire format uses it", () => {
    const r = native.postResults;
    expect(Object.isFrozen(r)).toBe(true);
    expect(constEnum(ts, 'PostResult')).toEqual({ Ok: r.ok, Full: r.full, Exited: r.exited, NoEndpoint: r.noEndpoint, NoMemory: r.noMemory });
    const wire = source('src/wire.ts');
    for (const [name, member] of [['FULL', 'Full'], ['EXITED', 'Exited'], ['NO_MEMORY', 'NoMemory']]) expect(wire).toContain(`export const ${name} = PostResult.${member};`);
  });

  it("read modes: ReadMode in src/native.ts is the addon's readModes", () => {
    expect(Object.isFrozen(native.readModes)).toBe(true);
    expect(constEnum(ts, 'ReadMode')).toEqual({ ...native.readModes });
  });

  it('only native/napi/ includes napi.h: the core reaches JS through the slices and deliver.cc (the C API)', () => {
    const core = readdirSync(join(root, 'native')).filter((f) => /\.(cc|h)$/.test(f));
    expect(core.length).toBeGreaterThan(40);
    expect(core.filter((f) => /#include\s+<napi\.h>/.test(source(`native/${f}`)))).toEqual([]);
    const slices = readdirSync(join(root, 'native', 'napi'));
    expect(slices.filter((f) => /#include\s+<napi\.h>/.test(source(`native/napi/${f}`)))).toEqual(['errors.h', 'slice.h']);
  });

  it('syscall names: one per number, none twice, 0 for none', () => {
    expect(native.syscallNames[0]).toBe('');
    expect(native.syscallNames).toContain('sendfile');
    expect(new Set(native.syscallNames).size).toBe(native.syscallNames.length);
  });
});
