// FileCache on a loop thread, with real files in a temporary directory: hits answer from the file
// opened first; gets at once share an open; a replaced file is served as it was until invalidated;
// the least recently used entry goes past max, and one still held stays open until released;
// failed opens are not kept; confinement beneath the root holds; close and validMs 0 close every
// file (the loop's open-file count returns to where it was). Bad options are refused.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createRuntime, type Runtime } from '../dist/src/index.js';
import { fixture } from './helpers.js';

let base = '';
let rt: Runtime;
beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'iapp-file-cache-'));
  mkdirSync(join(base, 'root'));
  for (const [name, text] of [['a.txt', 'A1'], ['b.txt', 'B'], ['c.txt', 'C']]) writeFileSync(join(base, 'root', name!), text!);
  writeFileSync(join(base, 'outside.txt'), 'OUTSIDE');
  rt = await createRuntime({ module: fixture('file-cache.mjs'), threads: 1 });
});
afterAll(async () => {
  await rt.close({ timeoutMs: 2000 });
  rmSync(base, { recursive: true, force: true });
});

describe('FileCache', () => {
  it('answers from files kept open, bounded, and closes each once no one holds it', async () => {
    const r = (await rt.call(0, 'cache', { dir: join(base, 'root') }, { timeoutMs: 30_000 })) as Record<string, unknown>;
    expect(r).toMatchObject({ sameFile: true, a: 'A1', aSize: 2, afterHit: { hits: 1, opens: 1, evictions: 0, size: 1 } });
    expect(r).toMatchObject({ sharedOpen: 1, afterShared: { opens: 2, size: 2 } });
    expect(r).toMatchObject({ stale: 'A1', fresh: 'A2' });
    expect(r).toMatchObject({ afterEvict: { evictions: 1, size: 2 }, heldOpenAfterEvict: true, heldReadable: 'A2', closedOnRelease: true, releasedUse: 'Error' });
    expect(r).toMatchObject({ missing: 'IappError ENOENT', madeLater: 'N', outside: 'IappError EXDEV', afterClose: 'Error' });
    expect(r).toMatchObject({ everyDistinct: true, everyClosed: true, everyStats: { opens: 2, hits: 0, size: 0 }, plain: 'C' });
    expect(r).toMatchObject({ badMax: 'RangeError', badValid: 'RangeError', badBeneath: 'TypeError' });
    expect(r.filesLeft).toBe(0);
  });
});
