/**
 * The package's typings document every export and every public member of the
 * classes and interfaces it exports: editors show these, and they are the API.
 */
import { join } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { projectRoot } from './fixtures/helpers';

const entries = ['dist/lib/index.d.ts', 'dist/reexec/index.d.ts', 'dist/testing/index.d.ts'].map((f) => join(projectRoot, f));

t.test('every export and every public member in the .d.ts has a doc comment', async (t) => {
  const program = ts.createProgram(entries, { strict: true, skipLibCheck: true, noEmit: true });
  const checker = program.getTypeChecker();
  const doc = (s: ts.Symbol) => ts.displayPartsToString(s.getDocumentationComment(checker)).trim();
  const internal = (s: ts.Symbol) => s.getJsDocTags(checker).some((tag) => tag.name === 'internal');
  const missing: string[] = [];
  const seen = new Set<ts.Symbol>();
  let members = 0;
  for (const file of entries) {
    const mod = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
    for (const exported of checker.getExportsOfModule(mod)) {
      const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      if (seen.has(sym)) continue;
      seen.add(sym);
      if (!doc(sym)) missing.push(sym.name);
      if (!(sym.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface))) continue;
      sym.members?.forEach((m) => {
        const decl = m.declarations?.[0];
        if (String(m.escapedName).startsWith('__') || internal(m)) return; // constructors, #private
        if (decl && ts.getCombinedModifierFlags(decl as ts.Declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) return;
        members++;
        if (!doc(m)) missing.push(`${sym.name}.${m.name}`);
      });
    }
  }
  t.ok(seen.size > 30 && members > 60, `looked at ${seen.size} exports and ${members} members`);
  t.same(missing, [], 'none undocumented');
});
