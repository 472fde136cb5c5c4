/**
 * The package's typings document every export and every public member of the
 * classes and interfaces it exports: editors show these, and they are the API.
 * And the user's documentation (README.md, docs/) names every export and every
 * error code, links only to what exists, and stays navigable.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { errorCodes } from '../lib/errors';
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

// The user's documentation: README.md (short) and docs/*.md (one page per topic). These checks keep the pages in step
// with the code and with each other: what a page names must exist, and what the code has must be on a page.
const read = (rel: string) => readFileSync(join(projectRoot, rel), 'utf8');
const pages = ['README.md', ...readdirSync(join(projectRoot, 'docs'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.md')).map((f) => join('docs', f))].sort();

/** GitHub's anchor for a heading: lower case, punctuation (backticks, parentheses, `?`, `:`…) dropped, spaces to `-`. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
const anchors = (md: string) => new Set([...md.replace(/```[\s\S]*?```/g, '').matchAll(/^#+\s+(.*)$/gm)].map((m) => slug(m[1])));
/** The inline links of a page, code blocks and code spans left out. */
const links = (md: string) => [...md.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);

t.test('every export of gons, gons/reexec and gons/testing is named in docs/api.md', async (t) => {
  const program = ts.createProgram(entries, { strict: true, skipLibCheck: true, noEmit: true });
  const checker = program.getTypeChecker();
  // The identifiers inside the page's code spans: `createNamespacePool(options)`, `class ReexecError`, …
  const named = new Set([...read('docs/api.md').matchAll(/`([^`\n]+)`/g)].flatMap((m) => m[1].match(/[A-Za-z_$][\w$]*/g) ?? []));
  const missing: string[] = [];
  let count = 0;
  for (const file of entries) {
    const mod = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
    for (const exported of checker.getExportsOfModule(mod)) {
      count++;
      if (!named.has(exported.name)) missing.push(`${file.slice(projectRoot.length + 1)}: ${exported.name}`);
    }
  }
  t.ok(count > 60, `looked at ${count} exports`);
  t.same(missing, [], 'none missing from docs/api.md');
});

t.test('every ERR_GONS_* code of the sources is in docs/errors.md, and the page names no other', async (t) => {
  const codes = new Set<string>();
  for (const dir of ['lib', 'reexec', 'testing']) {
    for (const f of readdirSync(join(projectRoot, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))) {
      for (const [code] of read(join(dir, f)).matchAll(/ERR_GONS_[A-Z0-9_]*[A-Z0-9]/g)) codes.add(code);
    }
  }
  const page = read('docs/errors.md');
  const documented = new Set([...page.matchAll(/`(ERR_GONS_[A-Z0-9_]*[A-Z0-9])`/g)].map((m) => m[1]));
  t.ok(codes.size > 25, `the sources use ${codes.size} codes`);
  t.same([...codes].filter((c) => !documented.has(c)).sort(), [], 'each is documented');
  t.same([...documented].filter((c) => !codes.has(c)).sort(), [], 'no documented code is gone from the sources');
  // One table: every row of it names a code, and no code has two rows.
  const rows = [...page.matchAll(/^\| (`ERR_GONS_\w+`|`ABORT_ERR`|errno name)[^|]*\|/gm)].map((m) => m[0]);
  t.ok(rows.length >= codes.size - 10, `${rows.length} rows`);
  const firstCodes = rows.map((r) => /`(ERR_GONS_\w+)`/.exec(r)?.[1]).filter(Boolean);
  t.same(firstCodes.filter((c, i) => firstCodes.indexOf(c) !== i), [], 'no code has two rows');
  // The code's own table (lib/errors.ts), Node's codes included, is the page's too.
  const all = Object.keys(errorCodes);
  t.ok(all.length > 30, `errorCodes has ${all.length} codes`);
  t.same(all.filter((c) => !page.includes(`\`${c}\``)), [], 'every code of errorCodes is on the page');
});

t.test('every relative link of README.md and docs/ resolves, anchors included', async (t) => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    for (const link of links(read(page))) {
      if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:
      checked++;
      const [path, anchor] = link.split('#');
      const target = path ? join(dirname(page), path) : page;
      if (!existsSync(join(projectRoot, target))) {
        broken.push(`${page}: ${link} (no ${target})`);
      } else if (anchor !== undefined && target.endsWith('.md') && !anchors(read(target)).has(anchor)) {
        broken.push(`${page}: ${link} (no heading #${anchor} in ${target})`);
      }
    }
  }
  t.ok(checked > 40, `checked ${checked} links on ${pages.length} pages`);
  t.same(broken, [], 'none broken');
});

t.test('README.md stays short, its testing example is the one the suite runs, and it links every docs page', async (t) => {
  const readme = read('README.md');
  const lines = readme.split('\n').length;
  t.ok(lines < 300, `README.md has ${lines} lines (< 300: the rest belongs in docs/)`);
  const example = /```js\n\/\/ test\/ns\.test\.mjs\n([\s\S]*?)```/.exec(readme)?.[1];
  const suite = read('test/example.test.mjs').replace(/^(\/\/.*\n)+/, '');
  t.equal(example, suite, 'the README\'s testing example is test/example.test.mjs, verbatim');
  const linked = new Set(links(readme).map((l) => l.split('#')[0]));
  const index = new Set(links(read('docs/README.md')).map((l) => join('docs', l.split('#')[0])));
  const topics = pages.filter((p) => p.startsWith('docs/') && !p.startsWith('docs/benchmarks/') && p !== 'docs/README.md');
  t.same(topics.filter((p) => !linked.has(p) && !index.has(p)), [], 'each topic page is linked from the README or the docs index');
});

t.test('benchmark tables are generated: each docs/benchmarks file says by which script, and docs/performance.md links it', async (t) => {
  const dir = join(projectRoot, 'docs', 'benchmarks');
  const tables = readdirSync(dir).filter((f) => f.endsWith('.md'));
  t.ok(tables.length >= 3, `docs/benchmarks holds ${tables.join(', ')}`);
  const performance = new Set(links(read('docs/performance.md')));
  for (const f of tables) {
    const [first, second] = read(join('docs', 'benchmarks', f)).split('\n');
    const name = f.replace(/\.md$/, '');
    t.match(`${first}\n${second}`, new RegExp(`Generated by \`npm run bench(:${name})?\` on Node v\\d+\\.\\d+\\.\\d+, nproc \\d+`), `${f} says what wrote it`);
    t.ok(performance.has(`benchmarks/${f}`), `docs/performance.md links benchmarks/${f}`);
  }
  for (const name of ['bench', 'cold', 'visit']) {
    t.match(read(`bench/${name}.ts`), new RegExp(`writeReport\\('${name}', 'npm run bench${name === 'bench' ? '' : `:${name}`}'`), `bench/${name}.ts writes docs/benchmarks/${name}.md`);
  }
});

t.test('the tarball ships the pages the README links to', async (t) => {
  const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: projectRoot, env: { ...process.env, npm_config_loglevel: 'error' }, encoding: 'utf8',
  }));
  const files = new Set((pack.files as Array<{ path: string }>).map((f) => f.path));
  const wanted = pages.filter((p) => p.startsWith('docs/'));
  t.same(wanted.filter((p) => !files.has(p)), [], `ships ${wanted.length} docs pages`);
});
