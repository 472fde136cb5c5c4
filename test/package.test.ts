/**
 * The package as a consumer gets it: what the tarball holds, types that
 * resolve under every TypeScript module resolution, and a clear error when
 * the native part was never built.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadAddon } from '../lib/native';
import { projectRoot } from './fixtures/helpers';

const npmEnv = { ...process.env, npm_config_loglevel: 'error' };

t.test('the tarball holds what a consumer needs, and nothing else', async (t) => {
  const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: projectRoot, env: npmEnv, encoding: 'utf8' }));
  const files: string[] = pack.files.map((f: { path: string }) => f.path);
  for (const needed of ['LICENSE', 'README.md', 'binding.gyp', 'native/preinit.c', 'native/preinit.h', 'native/addon.cc',
    'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/reexec/index.d.ts', 'dist/testing/index.d.ts']) {
    t.ok(files.includes(needed), `ships ${needed}`);
  }
  // What the build reads: binding.gyp's sources and every file they #include, transitively (an install builds them).
  const gyp = readFileSync(join(projectRoot, 'binding.gyp'), 'utf8');
  const needed = [...gyp.matchAll(/"(native\/[^"]+\.(?:c|cc))"/g)].map((m) => m[1]);
  for (let i = 0; i < needed.length; i++) {
    for (const [, inc] of readFileSync(join(projectRoot, needed[i]), 'utf8').matchAll(/^#include "([^"]+)"/gm)) {
      const file = join('native', inc);
      if (!needed.includes(file)) needed.push(file);
    }
  }
  t.ok(needed.length >= 4, `the build reads ${needed.join(', ')}`);
  t.same(needed.filter((f) => !files.includes(f)), [], 'the tarball holds every source the install builds');
  t.same(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts')), [], 'no TypeScript sources');
  t.same(files.filter((f) => /^(native\/(fuzz|test)\/|test\/|bench\/|examples\/|scripts\/|tsconfig)/.test(f)), [], 'no fuzz corpus, drivers, tests or build config');
});

t.test('types resolve for node10, node16/nodenext and bundler consumers', async (t) => {
  const app = mkdtempSync(join(tmpdir(), 'gons-consumer-'));
  t.teardown(() => rmSync(app, { recursive: true, force: true }));
  const tarball = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', app], { cwd: projectRoot, env: npmEnv, encoding: 'utf8' }).trim().split('\n').at(-1)!;
  const pkg = join(app, 'node_modules', 'gons');
  mkdirSync(pkg, { recursive: true });
  execFileSync('tar', ['xzf', join(app, tarball), '-C', pkg, '--strip-components=1']);
  for (const dep of ['debug', '@types', 'ms', 'nan']) symlinkSync(join(projectRoot, 'node_modules', dep), join(app, 'node_modules', dep));
  writeFileSync(join(app, 'consumer.ts'), [
    "import { status, type Namespace } from 'gons';",
    "import { register, runReexecAction, ReexecError, type ReexecOptions } from 'gons/reexec';",
    "import { createNamespaces } from 'gons/testing';",
    "const ns: Namespace[] = [{ type: 'net', path: '/proc/1/ns/net' }];",
    "const o: ReexecOptions = { namespaces: ns, timeout: 1000 };",
    "register('x', () => 1);",
    'export const all = [status, runReexecAction, ReexecError, createNamespaces, o];',
  ].join('\n'));
  const tsc = join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const [module, resolution] of [['commonjs', 'node10'], ['node16', 'node16'], ['nodenext', 'nodenext'], ['esnext', 'bundler']]) {
    const args = [tsc, '--noEmit', '--strict', '--skipLibCheck', '--types', 'node', '--module', module, '--moduleResolution', resolution, '--target', 'es2022', '--ignoreDeprecations', '5.0', '--traceResolution', 'consumer.ts'];
    let out = '';
    try {
      out = execFileSync(process.execPath, args, { cwd: app, encoding: 'utf8' });
    } catch (err) {
      t.fail(`${resolution}: tsc failed`, { stdout: (err as { stdout?: string }).stdout?.split('\n').filter((l) => /error/.test(l)) });
      continue;
    }
    const resolved = [...out.matchAll(/Module name '(gons[^']*)' was successfully resolved to '([^']+)'/g)].map((m) => [m[1], m[2].replace(`${pkg}/`, '')]);
    t.same(Object.fromEntries(resolved), {
      gons: 'dist/lib/index.d.ts', 'gons/reexec': 'dist/reexec/index.d.ts', 'gons/testing': 'dist/testing/index.d.ts',
    }, `${resolution}: every entry point resolves to the shipped declarations`);
  }
});

t.test('an install that skipped the build says to run npm rebuild', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'gons-unbuilt-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  t.throws(() => loadAddon(empty), { code: 'ERR_GONS_NOT_BUILT', message: /is missing, e\.g\. after npm install --ignore-scripts\): run `npm rebuild gons`/ });
});
