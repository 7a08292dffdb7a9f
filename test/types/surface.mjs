// The package's public type surface, as a consumer sees it: every name `import … from 'iapp'`
// offers, and for classes and interfaces every member with its type, read from the published
// declarations (dist/src/index.d.ts) with TypeScript's own checker. test/types.test.ts compares it
// with public-api.txt, so a member that appears (an internal one no longer stripped) or changes
// is seen in review. `node test/types/surface.mjs` prints it.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';

export function publicSurface(entry = fileURLToPath(new URL('../../dist/src/index.d.ts', import.meta.url))) {
  const program = ts.createProgram([entry], { strict: true, types: ['node'], module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  const blocks = [];
  let lines;
  const flags = ts.TypeFormatFlags.NoTruncation;
  const str = (type) => checker.typeToString(type, undefined, flags);
  const dist = dirname(entry);
  const ours = (p) => (p.declarations ?? []).some((d) => d.getSourceFile().fileName.startsWith(dist));
  const members = (prefix, type, decl) => {
    // Members declared by this package, own or inherited from one of its classes; what comes from
    // Error or EventEmitter is Node's (the `extends` line says so). `#private` fields show as a
    // name starting with '#', which no consumer can reach.
    for (const p of checker.getPropertiesOfType(type)) {
      if (!ours(p) || p.getName().startsWith('#') || p.getName() === 'prototype') continue;
      // Well-known symbols are named `__@hasInstance@543` inside the checker (the number varies).
      const key = p.getName().replace(/^__@(\w+)@\d+$/, '[Symbol.$1]');
      lines.push(`${prefix}.${key}: ${str(checker.getTypeOfSymbolAtLocation(p, decl))}`);
    }
  };
  for (const exp of checker.getExportsOfModule(checker.getSymbolAtLocation(source))) {
    const sym = exp.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exp) : exp;
    const decl = sym.declarations[0];
    const name = exp.getName();
    lines = [];
    blocks.push([name, lines]);
    if (sym.flags & ts.SymbolFlags.Class) {
      const ctorType = checker.getTypeOfSymbolAtLocation(sym, decl);
      // A constructor marked @internal is stripped, which leaves the implicit one (or, for
      // Runtime, EventEmitter's): listed as it is, since that is what a consumer's types allow.
      const ctors = ctorType.getConstructSignatures().map((s) => checker.signatureToString(s));
      const bases = checker.getBaseTypes(checker.getDeclaredTypeOfSymbol(sym)).map((t) => ` extends ${str(t)}`).join('');
      lines.push(`class ${name}${bases}: new ${ctors.join(' | ')}`);
      members(`${name} static`, ctorType, decl);
      members(name, checker.getDeclaredTypeOfSymbol(sym), decl);
    } else if (sym.flags & ts.SymbolFlags.Interface) {
      lines.push(`interface ${name}`);
      members(name, checker.getDeclaredTypeOfSymbol(sym), decl);
    } else if (sym.flags & ts.SymbolFlags.TypeAlias) {
      lines.push(`type ${name} = ${checker.typeToString(checker.getDeclaredTypeOfSymbol(sym), undefined, flags | ts.TypeFormatFlags.InTypeAlias)}`);
    } else {
      lines.push(`${sym.flags & ts.SymbolFlags.Function ? 'function' : 'const'} ${name}: ${str(checker.getTypeOfSymbolAtLocation(sym, decl))}`);
    }
  }
  blocks.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return blocks.map(([, l]) => [l[0], ...l.slice(1).sort()].join('\n')).join('\n\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(publicSurface());
