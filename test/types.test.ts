// The published types are the public API. `npm test` compiles src/ with stripInternal, so the
// declarations in dist/ carry no member marked @internal (the loop's native handle, its handler
// and accept error hooks, record handlers, constructors users must not call). This proves it three
// ways: no `@internal` is left in any shipped .d.ts; a consumer program (test/types/consumer.ts)
// compiles with tsc, strict and without skipLibCheck, and the internal members it names fail to
// type-check (its @ts-expect-error lines); and the whole surface, every export and member with its
// type (test/types/surface.mjs), equals test/types/public-api.txt, so any change to the API shows
// in review. After a deliberate change: `IAPP_UPDATE_API=1 npx vitest run test/types.test.ts`.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { publicSurface } from './types/surface.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const API = join(root, 'test/types/public-api.txt');

function declarationFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? declarationFiles(join(dir, e.name)) : e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

describe('the published types', () => {
  it('carry nothing marked @internal', () => {
    const files = declarationFiles(join(root, 'dist/src'));
    expect(files.length).toBeGreaterThan(10);
    expect(files.filter((f) => readFileSync(f, 'utf8').includes('@internal'))).toEqual([]);
  });

  it('compile a consumer program, strictly, and refuse its uses of internal members', () => {
    const r = spawnSync(process.execPath, [tsc, '-p', 'test/types/tsconfig.json'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);

  it('are the surface in test/types/public-api.txt, member by member', () => {
    const now = publicSurface();
    if (process.env.IAPP_UPDATE_API === '1') writeFileSync(API, now);
    expect(now).toBe(readFileSync(API, 'utf8'));
    // What the issue named, checked by name as well.
    expect(now).not.toMatch(/^Loop\.(native|handlerError|acceptError|listenerClosed):/m);
    expect(now).toMatch(/^Loop\.dial: /m);
  }, 30_000);
});
